import type { Command } from "commander";
import { callCluster, endpointsOption, EXIT, integerIn } from "./client-options.js";

interface MembersOptions {
  readonly endpoints: string[];
  readonly json: boolean;
}

interface Member {
  readonly id: number;
  readonly role: string;
  readonly peer: string;
  readonly http: string | null;
}

/**
 * `synod members list|add|remove|promote`: the membership API (`/v1/members`) from the
 * command line. Any node takes a change (a follower passes it to the leader); the command
 * returns once the change is in force.
 */
export function registerMembersCommand(program: Command, setExitCode: (code: number) => void): void {
  const members = program.command("members").description("list and change the cluster's members");
  const id = (what: string) => integerIn(what, 1, Number.MAX_SAFE_INTEGER);
  const common = (command: Command): Command => command.addOption(endpointsOption()).option("--json", "print the API's JSON answer", false);

  common(members.command("list").description("the members, their roles (voter, learner, leaving) and addresses"))
    .option("--stale", "the first node's own view, without confirming it with the leader (works without a leader)", false)
    .action(async (opts: MembersOptions & { stale: boolean }) => setExitCode(await run("list", opts, "GET", opts.stale ? "/v1/members?consistency=stale" : "/v1/members")));

  common(
    members
      .command("add")
      .description("add a node: as a voter, or as a learner that receives the log without voting")
      .argument("<id>", "the new member's node id", id("<id>"))
      .requiredOption("--peer <host:port>", "where the new node listens for peers")
      .option("--http <url>", "the new node's HTTP API, e.g. http://127.0.0.1:7004")
      .option("--learner", "add it as a learner", false)
      .option("--promote <when>", "a learner's promotion to voter: auto (once caught up) or manual", "manual"),
  )
    .addHelpText(
      "after",
      `
Examples:
  synod members add 4 --peer 127.0.0.1:7104 --http http://127.0.0.1:7004 --learner --promote auto
  synod members add 4 --peer 127.0.0.1:7104 --http http://127.0.0.1:7004     # a voter at once`,
    )
    .action(async (memberId: number, opts: MembersOptions & { peer: string; http?: string; learner: boolean; promote: string }) => {
      if (opts.promote !== "auto" && opts.promote !== "manual") {
        process.stderr.write(`synod members add: --promote is auto or manual, not ${JSON.stringify(opts.promote)}\n`);
        return setExitCode(EXIT.usage);
      }
      const body = { id: memberId, peer: opts.peer, http: opts.http ?? null, learner: opts.learner, promote: opts.promote };
      setExitCode(await run("add", opts, "POST", "/v1/members", body));
    });

  common(members.command("remove").description("remove a member (the leader too: it hands over first)").argument("<id>", "the member's node id", id("<id>"))).action(
    async (memberId: number, opts: MembersOptions) => setExitCode(await run("remove", opts, "DELETE", `/v1/members/${memberId}`)),
  );

  common(members.command("promote").description("make a learner a voter").argument("<id>", "the learner's node id", id("<id>"))).action(async (memberId: number, opts: MembersOptions) =>
    setExitCode(await run("promote", opts, "POST", `/v1/members/${memberId}/promote`)),
  );
}

function run(name: string, opts: MembersOptions, method: string, path: string, body?: object): Promise<number> {
  return callCluster(`members ${name}`, opts, body === undefined ? { method, path } : { method, path, body }, (answer) => printMembers(answer["members"] as Member[] | undefined, answer["ms"]));
}

function printMembers(members: readonly Member[] | undefined, ms: unknown): void {
  if (ms !== undefined) process.stdout.write(`done in ${String(ms)} ms\n`);
  for (const member of members ?? []) process.stdout.write(`${String(member.id).padEnd(4)} ${member.role.padEnd(8)} peer ${member.peer.padEnd(22)} http ${member.http ?? "-"}\n`);
}

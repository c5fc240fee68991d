import { Option, type Command } from "commander";
import { normalizeEndpoint } from "../client/api.js";
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
      .description("add a node: by default as a learner (it receives the log without voting) promoted to voter once it has caught up; with --voter, a voter at once")
      .argument("<id>", "the new member's node id", id("<id>"))
      .requiredOption("--peer <host:port>", "where the new node listens for peers")
      .option("--http <url>", "the new node's HTTP API, e.g. http://127.0.0.1:7004")
      .addOption(new Option("--promote <when>", "a learner's promotion to voter: auto (once caught up) or manual (synod members promote ID)").choices(["auto", "manual"]).default("auto"))
      .addOption(new Option("--voter", "add a voter at once, counted in the quorum from then on: only if the node answers at --http").default(false).conflicts("promote"))
      .addOption(new Option("--learner", "(the default; kept for scripts that say it)").default(false).hideHelp()),
  )
    .addHelpText(
      "after",
      `
Examples:
  synod members add 4 --peer 127.0.0.1:7104 --http http://127.0.0.1:7004                  # a learner, a voter once caught up
  synod members add 4 --peer 127.0.0.1:7104 --http http://127.0.0.1:7004 --promote manual # a learner until "synod members promote 4"
  synod members add 4 --peer 127.0.0.1:7104 --http http://127.0.0.1:7004 --voter          # a voter at once: node 4 must be running

A learner cannot weaken the cluster: it does not count in any quorum until it is promoted,
and is promoted only once it holds the log, so adding a node that is not running yet (or
mistyped) changes nothing. A voter added at once counts in the quorum at once: a voter that
does not exist makes every write wait for one more of the others, so --voter first checks
that node <id> answers at --http.`,
    )
    .action(async (memberId: number, opts: MembersOptions & { peer: string; http?: string; voter: boolean; promote: "auto" | "manual" }) => {
      if (opts.voter) {
        const refusal = await checkNewVoter(memberId, opts.http, opts.endpoints);
        if (refusal !== null) {
          process.stderr.write(`synod members add: ${refusal}\n`);
          return setExitCode(EXIT.usage);
        }
      }
      const body = { id: memberId, peer: opts.peer, http: opts.http ?? null, learner: !opts.voter, promote: opts.voter ? "manual" : opts.promote };
      const added = opts.voter
        ? `node ${memberId} added as a voter: it answered at ${opts.http ?? ""}, and counts in the quorum from now on`
        : opts.promote === "auto"
          ? `node ${memberId} added as a learner: it receives the log without voting, and becomes a voter by itself once it has caught up (synod members list shows when)`
          : `node ${memberId} added as a learner: it receives the log without voting, and stays a learner until: synod members promote ${memberId}`;
      setExitCode(await run("add", opts, "POST", "/v1/members", body, added));
    });

  common(members.command("remove").description("remove a member (the leader too: it hands over first)").argument("<id>", "the member's node id", id("<id>"))).action(
    async (memberId: number, opts: MembersOptions) => setExitCode(await run("remove", opts, "DELETE", `/v1/members/${memberId}`)),
  );

  common(members.command("promote").description("make a learner a voter").argument("<id>", "the learner's node id", id("<id>"))).action(async (memberId: number, opts: MembersOptions) =>
    setExitCode(await run("promote", opts, "POST", `/v1/members/${memberId}/promote`)),
  );
}

function run(name: string, opts: MembersOptions, method: string, path: string, body?: object, done?: string): Promise<number> {
  return callCluster(`members ${name}`, opts, body === undefined ? { method, path } : { method, path, body }, (answer) => {
    if (done !== undefined) process.stdout.write(`${done}\n`);
    printMembers(answer["members"] as Member[] | undefined, answer["ms"]);
  });
}

/** How long the new voter and the cluster have to answer the check. */
const VOTER_CHECK_TIMEOUT_MS = 3_000;

/**
 * Why node `memberId` must not become a voter at once, or null when it may: it must answer
 * `GET {http}/v1/status` as that node, and of the same cluster as the endpoints (when both
 * name their cluster id).
 */
export async function checkNewVoter(memberId: number, http: string | undefined, endpoints: readonly string[]): Promise<string | null> {
  const later = `start it first, or add it without --voter: as a learner, promoted once it has caught up`;
  if (http === undefined) return `--voter needs --http URL: a voter counts in the quorum at once, so node ${memberId} must be shown to answer there first (or add it without --voter, as a learner promoted once it has caught up)`;
  let url: string;
  try {
    url = normalizeEndpoint(http);
  } catch (error) {
    return `--http: ${(error as Error).message}`;
  }
  const answer = await statusOf(url);
  if ("failure" in answer) return `--voter adds a voter at once, counted in every quorum from then on, so node ${memberId} must be running: nothing answers at ${url} (${answer.failure}); ${later}`;
  if (answer.status["id"] !== memberId) return `the node at ${url} is node ${String(answer.status["id"])}, not node ${memberId}: check --http and the id`;
  const theirs = answer.status["clusterId"];
  for (const endpoint of endpoints) {
    const ours = await statusOf(endpoint);
    if ("failure" in ours) continue;
    const cluster = ours.status["clusterId"];
    if (typeof cluster === "string" && typeof theirs === "string" && cluster !== theirs) return `the node at ${url} belongs to another cluster (cluster id ${theirs}, not ${cluster}): its peers would refuse it`;
    break;
  }
  return null;
}

async function statusOf(url: string): Promise<{ status: Record<string, unknown> } | { failure: string }> {
  try {
    const response = await fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(VOTER_CHECK_TIMEOUT_MS) });
    const body = (await response.json()) as unknown;
    if (response.status !== 200 || typeof body !== "object" || body === null) return { failure: `HTTP ${response.status}` };
    return { status: body as Record<string, unknown> };
  } catch (error) {
    const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
    if (typeof cause?.code === "string") return { failure: cause.code };
    if (error instanceof Error && error.name === "TimeoutError") return { failure: `no answer within ${VOTER_CHECK_TIMEOUT_MS / 1000} s` };
    return { failure: typeof cause?.message === "string" ? cause.message : (error as Error).message };
  }
}

function printMembers(members: readonly Member[] | undefined, ms: unknown): void {
  if (ms !== undefined) process.stdout.write(`done in ${String(ms)} ms\n`);
  for (const member of members ?? []) process.stdout.write(`${String(member.id).padEnd(4)} ${member.role.padEnd(8)} peer ${member.peer.padEnd(22)} http ${member.http ?? "-"}\n`);
}

import type { Command } from "commander";
import { callCluster, endpointsOption, integerIn } from "./client-options.js";
import { UsageError } from "./usage-error.js";

interface ShardsOptions {
  readonly endpoints: string[];
  readonly json: boolean;
}

interface Shard {
  readonly id: number;
  readonly start: string;
  readonly end: string | null;
  readonly epoch: number;
  readonly leader?: number | null;
  readonly replicas?: readonly number[];
  readonly keys?: number;
  readonly appliedIndex?: number;
}

/**
 * `synod shards list|move|split`: the cluster's ranges (`GET /v1/shards`, docs/sharding.md)
 * from the command line: moving a range's leadership or one of its replicas, and splitting a
 * range in two.
 */
export function registerShardsCommand(program: Command, setExitCode: (code: number) => void): void {
  const shards = program.command("shards").description("list the cluster's ranges (shards), move their leaderships and replicas, split them");
  const common = (command: Command): Command => command.addOption(endpointsOption()).option("--json", "print the API's JSON answer", false);
  const rangeId = integerIn("<id>", 0, 0xffff_ffff);

  common(shards.command("list").description("every range: its keys [start, end), epoch, leader, replicas and key count")).action(async (opts: ShardsOptions) =>
    setExitCode(await callCluster("shards list", opts, { method: "GET", path: "/v1/shards" }, (answer) => printShards(answer["shards"] as Shard[] | undefined, answer["zones"] as Record<string, string> | undefined))),
  );

  common(
    shards
      .command("move")
      .description("move a range's leadership (--leader N), or one of its replicas from a node to another (--from F --to T, with --replicas); ranges also spread both by themselves")
      .argument("<id>", "the range's id (synod shards list)", rangeId)
      .option("--leader <node>", "the node that should lead the range", integerIn("--leader", 1, Number.MAX_SAFE_INTEGER))
      .option("--from <node>", "the node whose replica of the range moves", integerIn("--from", 1, Number.MAX_SAFE_INTEGER))
      .option("--to <node>", "the node it moves to (a learner first, then a voter; then the one on --from goes)", integerIn("--to", 1, Number.MAX_SAFE_INTEGER)),
  ).action(async (id: number, opts: ShardsOptions & { leader?: number; from?: number; to?: number }) => {
    const replica = opts.from !== undefined || opts.to !== undefined;
    if (replica === (opts.leader !== undefined)) throw new UsageError("synod shards move takes --leader N (a leadership), or --from F --to T (a replica)");
    if (!replica) {
      setExitCode(
        await callCluster("shards move", opts, { method: "POST", path: `/v1/leader/transfer?range=${id}`, body: { to: opts.leader } }, (answer) =>
          process.stdout.write(`range ${id} is led by node ${String(answer["leader"])} (term ${String(answer["term"])}, ${String(answer["ms"])} ms)\n`),
        ),
      );
      return;
    }
    if (opts.from === undefined || opts.to === undefined) throw new UsageError("a replica move takes both --from F and --to T");
    // The new replica catches up before the answer: up to 30 s (MOVE_CATCH_UP_MS), and the request's own time.
    const request = { method: "POST", path: `/v1/shards/${id}/move`, body: { from: opts.from, to: opts.to }, timeoutMs: 45_000 };
    setExitCode(
      await callCluster("shards move", opts, request, (answer) =>
        process.stdout.write(`range ${id}'s replica moved from node ${opts.from} to node ${opts.to}: voters ${(answer["voters"] as number[] | undefined)?.join(",") ?? "-"} (${String(answer["ms"])} ms)\n`),
      ),
    );
  });

  common(
    shards
      .command("split")
      .description("split a range in two at a key (default: its middle key); the new range takes the keys from it on")
      .argument("<id>", "the range's id (synod shards list)", rangeId)
      .option("--at <key>", "the first key of the new range"),
  ).action(async (id: number, opts: ShardsOptions & { at?: string }) =>
    setExitCode(await callCluster("shards split", opts, { method: "POST", path: `/v1/shards/${id}/split`, body: opts.at === undefined ? {} : { key: opts.at } }, (answer) => printSplit(answer))),
  );
}

function printSplit(answer: Record<string, unknown>): void {
  process.stdout.write(`range ${String(answer["range"])} split at ${JSON.stringify(answer["at"])}: range ${String(answer["child"])} holds the keys from there on (epoch ${String(answer["epoch"])}, revision ${String(answer["revision"])})\n`);
  printShards(answer["ranges"] as Shard[] | undefined);
}

/** The ranges as a table; with `zones` (members' `--zone`), each replica is shown with its zone, as `1@a`. */
function printShards(shards: readonly Shard[] | undefined, zones?: Readonly<Record<string, string>>): void {
  const show = (key: string | null): string => (key === null ? "(end)" : key === "" ? '""' : JSON.stringify(key));
  process.stdout.write(`${"id".padEnd(5)} ${"start".padEnd(12)} ${"end".padEnd(12)} ${"epoch".padEnd(6)} ${"leader".padEnd(7)} ${"replicas".padEnd(12)} keys\n`);
  for (const shard of shards ?? []) {
    const replicas = shard.replicas?.map((id) => (zones?.[String(id)] === undefined ? String(id) : `${id}@${zones[String(id)]}`)).join(",") ?? "-";
    process.stdout.write(`${String(shard.id).padEnd(5)} ${show(shard.start).padEnd(12)} ${show(shard.end).padEnd(12)} ${String(shard.epoch).padEnd(6)} ${String(shard.leader ?? "-").padEnd(7)} ${replicas.padEnd(12)} ${String(shard.keys ?? "-")}\n`);
  }
}

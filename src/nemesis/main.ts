/**
 * `npm run nemesis`: real partitions of real processes. Starts `synod node` processes, each in
 * a network namespace of its own, runs a seeded schedule of faults while clients record a
 * history, heals, and checks the history is linearizable, no acknowledged write was lost and
 * every node caught up (see docs/security.md, "Real partitions"). Needs root and iproute2.
 *
 *   npm run nemesis                                        seed from the clock, 3 nodes, raft, 30 s
 *   npm run nemesis -- --seed 1 --duration-ms 60000        repeat a schedule
 *   npm run nemesis -- --seed 7 --nodes 5 --engine paxos
 *
 * Exit code 0: passed; 1: a violation; 2: the run could not be made (no root, no ip, ...).
 */
import { Command, Option } from "commander";
import { integerAtLeast } from "../cli/client-options.js";
import { netnsUnavailableReason } from "./netns.js";
import { runNemesis } from "./runner.js";


async function main(): Promise<void> {
  const program = new Command("nemesis")
    .description("partition, kill and freeze real synod nodes in network namespaces; exit 1 if the history is not linearizable, an acknowledged write was lost or a node did not catch up")
    .option("--seed <n>", "the schedule's seed (default: from the clock, printed)", integerAtLeast("--seed", 0))
    .option("--duration-ms <ms>", "how long faults go on", integerAtLeast("--duration-ms", 2000), 30_000)
    .addOption(new Option("--nodes <n>", "cluster size").choices(["3", "5"]).default("3"))
    .addOption(new Option("--engine <name>", "the consensus protocol (synod node --consensus)").choices(["raft", "paxos"]).default("raft"))
    .option("--keep-data", "keep the data directories and node logs after a pass (a failure keeps them always)", false)
    .parse();
  const options = program.opts<{ seed?: number; durationMs: number; nodes: "3" | "5"; engine: "raft" | "paxos"; keepData: boolean }>();
  const unavailable = netnsUnavailableReason();
  if (unavailable !== null) {
    console.error(`nemesis: cannot run here: ${unavailable}`);
    process.exitCode = 2;
    return;
  }
  const seed = options.seed ?? Date.now() % 2 ** 31;
  let report: Awaited<ReturnType<typeof runNemesis>>;
  try {
    report = await runNemesis({ seed, durationMs: options.durationMs, nodes: options.nodes === "5" ? 5 : 3, consensus: options.engine, keepData: options.keepData });
  } catch (error) {
    // The run could not be made or finished (a namespace refused, no leader at the start):
    // not a verdict on synod. Everything it made is gone by now.
    console.error(`nemesis: the run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 2;
    return;
  }
  const faults = new Map<string, number>();
  for (const fault of report.faults) faults.set(fault.kind, (faults.get(fault.kind) ?? 0) + 1);
  console.log(`nemesis: ${report.verdict.pass ? "PASS" : "FAIL"} seed ${seed}: ${report.operations} operations, ${report.faults.length} faults (${[...faults].map(([kind, n]) => `${n} ${kind}`).join(", ")}), ${(report.wallMs / 1000).toFixed(1)} s${report.dataRoot === null ? "" : `; node logs in ${report.dataRoot}`}`);
  if (!report.verdict.pass) console.log(`repeat with: npm run nemesis -- --seed ${seed} --duration-ms ${options.durationMs} --nodes ${options.nodes} --engine ${options.engine}`);
  process.exitCode = report.verdict.pass ? 0 : 1;
}

await main();

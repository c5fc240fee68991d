/**
 * `npm run nemesis:bank`: the bank under kill -9 (src/nemesis/bank.ts) for a minute, or as
 * long as asked: transfers by interactive transactions across the four ranges of three real
 * nodes, audits of every account in one transaction, and the leader of each range killed in
 * turn every few seconds.
 *
 *   npm run nemesis:bank                                   60 s, a kill every 4 s
 *   npm run nemesis:bank -- --duration-ms 300000 --kill-every-ms 3000 --seed 7
 *
 * Exit code 0: passed; 1: a violation; 2: the run could not be made.
 */
import { Command } from "commander";
import { integerAtLeast } from "../cli/client-options.js";
import { runBankUnderKills } from "./bank.js";


async function main(): Promise<void> {
  const program = new Command("nemesis:bank")
    .description("a bank over the ranges of three real nodes, its transfers by interactive transactions, its leaders killed with SIGKILL in turn; exit 1 if money was made or lost, an intent was left, or a committed transfer is missing")
    .option("--duration-ms <ms>", "how long the clients transfer and the killer kills", integerAtLeast("--duration-ms", 1000), 60_000)
    .option("--kill-every-ms <ms>", "the time between kills", integerAtLeast("--kill-every-ms", 500), 4_000)
    .option("--down-ms <ms>", "how long a killed node stays down", integerAtLeast("--down-ms", 0), 1_500)
    .option("--clients <n>", "clients transferring at once", integerAtLeast("--clients", 1), 4)
    .option("--accounts <n>", "accounts, spread over the four ranges", integerAtLeast("--accounts", 2), 8)
    .option("--seed <n>", "the transfers' seed", integerAtLeast("--seed", 0), 1)
    .parse();
  const options = program.opts<{ durationMs: number; killEveryMs: number; downMs: number; clients: number; accounts: number; seed: number }>();
  const started = Date.now();
  let report: Awaited<ReturnType<typeof runBankUnderKills>>;
  try {
    report = await runBankUnderKills({ ...options, log: (line) => console.log(`${((Date.now() - started) / 1000).toFixed(1)} s  ${line}`) });
  } catch (error) {
    console.error(`nemesis:bank: the run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 2;
    return;
  }
  const t = report.transfers;
  console.log(`nemesis:bank: ${report.violations.length === 0 ? "PASS" : "FAIL"}: ${report.kills.length} kills, ${t.committed} transfers committed (${t.declined} declined, ${t.gaveUp} gave up, ${t.unknown} unknown, ${t.errors} failed), ${t.runs} runs (conflict rate ${(100 * t.conflictRate).toFixed(1)}%), ${report.audits} audits of every account (${report.auditsConflicted} read again after a conflict, ${report.auditsFailed} failed by the faults), intents all resolved ${report.settleMs} ms after the faults stopped`);
  for (const violation of report.violations) console.log(`  violation: ${violation}`);
  process.exitCode = report.violations.length === 0 ? 0 : 1;
}

await main();

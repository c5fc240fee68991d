// `npm run bench:txn`: interactive transactions (`client.transaction`) under contention, on a
// real cluster (`synod cluster --nodes 3 --shards 4` on free ports, a fresh data directory).
// `--clients` clients (each its own Client) make `--transfers` transfers each, one at a
// time, between `--accounts` accounts spread over the four ranges (bench/bank.ts: read two
// balances, write both). It prints what committed, the runs each transfer took, and the
// conflict rate (the share of runs that had to run again), then checks the total.
//
// A benchmark prints numbers; it asserts nothing but the bank's total.
//
//   npm run bench:txn
//   npm run bench:txn -- --clients 8 --accounts 32 --transfers 100
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Client } from "../client/client.js";
import { accountKeys, openAccounts, readBalances, summarize, transferLoop } from "./bank.js";
import { BenchCluster } from "./bench-cluster.js";
import { significant } from "./kv-load.js";
import { runBench } from "./run-bench.js";

const START = 1_000;
const RANGES_WAIT_MS = 30_000;

interface Settings {
  readonly clients: number;
  readonly accounts: number;
  readonly transfers: number;
  readonly retries: number;
  readonly seed: number;
}

function settings(): Settings {
  const { values } = parseArgs({ options: { clients: { type: "string" }, accounts: { type: "string" }, transfers: { type: "string" }, retries: { type: "string" }, seed: { type: "string" } } });
  const integer = (text: string | undefined, fallback: number, flag: string, min: number, max: number): number => {
    const value = Number(text ?? fallback);
    if (!Number.isSafeInteger(value) || value < min || value > max) throw new Error(`${flag} must be an integer from ${min} to ${max}`);
    return value;
  };
  return {
    clients: integer(values.clients, 4, "--clients", 1, 256),
    accounts: integer(values.accounts, 8, "--accounts", 2, 10_000),
    transfers: integer(values.transfers, 50, "--transfers", 1, 100_000),
    retries: integer(values.retries, 30, "--retries", 0, 100),
    seed: integer(values.seed, 1, "--seed", 0, 1_000_000),
  };
}

/** Until every range has a leader (a transfer across ranges needs them all). */
async function rangesLed(endpoint: string): Promise<void> {
  const deadlineMs = performance.now() + RANGES_WAIT_MS;
  while (performance.now() < deadlineMs) {
    const shards = await fetch(`${endpoint}/v1/shards`, { signal: AbortSignal.timeout(1_000) })
      .then(async (response) => ((await response.json()) as { shards?: { leader: number | null }[] }).shards)
      .catch(() => undefined);
    if (shards !== undefined && shards.length > 0 && shards.every((shard) => shard.leader !== null)) return;
    await sleep(100);
  }
  throw new Error(`the ranges had no leaders within ${RANGES_WAIT_MS / 1000} s`);
}

async function main(): Promise<void> {
  const options = settings();
  const cluster = await BenchCluster.start({ nodes: 3, consensus: "raft", shards: 4 });
  const clients: Client[] = [];
  try {
    await rangesLed(cluster.endpoints[0] as string);
    const client = (): Client => {
      const made = new Client({ endpoints: cluster.endpoints, healthCheckIntervalMs: 0 });
      clients.push(made);
      return made;
    };
    const accounts = accountKeys(options.accounts);
    const admin = client();
    await openAccounts(admin, accounts, START);
    process.stdout.write(`${options.clients} clients, ${options.transfers} transfers each, ${options.accounts} accounts over 4 ranges, 3 nodes\n`);
    const bank = { accounts, transfersPerClient: options.transfers, durationMsMax: 10 * 60_000, retries: options.retries, seed: options.seed };
    const startedMs = performance.now();
    const tallies = await Promise.all(Array.from({ length: options.clients }, (_, i) => transferLoop(client(), bank, i)));
    const wallMs = performance.now() - startedMs;
    const summary = summarize(tallies);
    const balances = await readBalances(admin, accounts);
    const total = [...balances.values()].reduce((sum, balance) => sum + balance, 0);
    const lines = [
      `committed        ${summary.committed} (${significant((summary.committed * 1000) / wallMs)}/s over ${significant(wallMs / 1000)} s)`,
      `declined         ${summary.declined} (the payer had too little: read-only, validated)`,
      `gave up          ${summary.gaveUp} (TransactionConflictError after ${options.retries + 1} runs)`,
      `outcome unknown  ${summary.unknown}, other errors ${summary.errors}${summary.errors > 0 ? `: ${tallies.flatMap((tally) => tally.errors)[0]}` : ""}`,
      `runs             ${summary.runs}: ${significant(summary.runsPerTransfer)} per transfer that ended`,
      `conflict rate    ${significant(summary.conflictRate * 100)}% of runs ran again`,
      `total            ${total} (${total === START * accounts.length ? "held" : `EXPECTED ${START * accounts.length}`})`,
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
    if (total !== START * accounts.length) process.exitCode = 1;
  } finally {
    for (const made of clients) await made.close();
    await cluster.stop();
  }
}

await runBench("txn.bench", main);

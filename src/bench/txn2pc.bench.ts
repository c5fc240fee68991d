// `npm run bench:txn2pc`: non-interactive transactions (`POST /v1/txn`) on a real cluster
// (`synod cluster --nodes 3 --shards 4` on free ports, a fresh data directory), and the time
// to resolve the transactions of a coordinator killed with SIGKILL.
//
// Throughput: a transfer is one request that compares two balances and writes both (its
// failure branch reads them, so a client whose belief was stale learns them from the answer
// and tries again with them). For each span (both keys in one range, or in two ranges) and
// contention (`none`: each client its own two keys; `hot`: every client over `--hot` keys
// per range, 2 by default, so 8 keys in all) and each concurrency (clients, one request
// outstanding each), `--ops` requests in all or `--duration`, whichever ends first. A request
// goes to the leader of its first key's range, as the SDK sends it; a transfer across ranges
// is coordinated by that node. Latencies are of the answered transactions (committed, or
// failed compare), from sending to the last byte; aborted ones (409 txn_aborted) and other
// errors are counted, not timed, and not retried but by the client's next request: at once,
// or with `--backoff-ms-base B` after a full-jitter pause (a random 0 .. min(1,000, B·2^n) ms
// after its n+1-th abort in a row, as the SDK's transactions back off; 25 there). After each
// phase the balances are summed: a transfer moves money, so the sum must not change.
//
// Recovery (txn-recovery.ts): `--rounds` rounds, each on a fresh cluster, of `--in-flight`
// clients posting transfers across two ranges to one node, that node killed after 1.5 s, and
// the time until every key they touched is free again.
//
// A benchmark prints numbers; it asserts nothing.
//
//   npm run bench:txn2pc                                     # throughput, then 3 recovery rounds
//   npm run bench:txn2pc -- --mode throughput --concurrency 1,8,32 --ops 2000 --duration 6s
//   npm run bench:txn2pc -- --mode throughput --fresh-cluster          # each phase on a new cluster
//   npm run bench:txn2pc -- --mode throughput --contention hot --backoff-ms-base 25
//   npm run bench:txn2pc -- --mode throughput --span two --contention none --concurrency 8,8,8,8
//   npm run bench:txn2pc -- --mode recovery --rounds 5 --in-flight 32 --verbose
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Prng } from "../core/common/prng.js";
import { BenchCluster, cpuPercent } from "./bench-cluster.js";
import { LatencyHistogram } from "./histogram.js";
import { parseDurationMs, significant } from "./kv-load.js";
import { keyIn, Pools, putAll, rangeOfKey, rangesLed, sumOf, transfer, RANGES, type ShardView } from "./txn-load.js";
import { recoveryRound, type RecoveryRound } from "./txn-recovery.js";
import { runBench } from "./run-bench.js";

const START = 1_000;
const WARM_UP_MS = 1_500;
/** The longest pause after aborts in a row (the SDK's `backoffMsMax`). */
const BACKOFF_MS_MAX = 1_000;

type Span = "one range" | "two ranges";
type Contention = "none" | "hot";

interface Settings {
  readonly mode: "all" | "throughput" | "recovery";
  readonly concurrencies: readonly number[];
  readonly contentions: readonly Contention[];
  readonly spans: readonly Span[];
  /** Each phase on its own fresh cluster (else all on one, in order). */
  readonly freshCluster: boolean;
  /** After an abort, a full-jitter pause from this base (0: none). */
  readonly backoffMsBase: number;
  readonly ops: number;
  readonly durationMs: number;
  readonly hot: number;
  readonly rounds: number;
  readonly inFlight: number;
  readonly seed: number;
  /** Recovery: list each recovery the survivors logged. */
  readonly verbose: boolean;
}

function settings(): Settings {
  const { values } = parseArgs({
    options: { mode: { type: "string" }, concurrency: { type: "string" }, contention: { type: "string" }, span: { type: "string" }, "fresh-cluster": { type: "boolean" }, "backoff-ms-base": { type: "string" }, ops: { type: "string" }, duration: { type: "string" }, hot: { type: "string" }, rounds: { type: "string" }, "in-flight": { type: "string" }, seed: { type: "string" }, verbose: { type: "boolean" } },
  });
  const integer = (text: string | undefined, fallback: number, flag: string, min: number, max: number): number => {
    const value = Number(text ?? fallback);
    if (!Number.isSafeInteger(value) || value < min || value > max) throw new Error(`${flag} must be an integer from ${min} to ${max}`);
    return value;
  };
  const mode = values.mode ?? "all";
  if (mode !== "all" && mode !== "throughput" && mode !== "recovery") throw new Error("--mode is all, throughput or recovery");
  return {
    mode,
    concurrencies: (values.concurrency ?? "1,8,32").split(",").map((text) => integer(text, 0, "--concurrency (each)", 1, 256)),
    contentions: (values.contention ?? "none,hot").split(",").map((text) => {
      if (text !== "none" && text !== "hot") throw new Error("--contention is none, hot or none,hot");
      return text;
    }),
    spans: (values.span ?? "one,two").split(",").map((text): Span => {
      if (text !== "one" && text !== "two") throw new Error("--span is one, two or one,two (keys in one range, or in two)");
      return text === "one" ? "one range" : "two ranges";
    }),
    freshCluster: values["fresh-cluster"] ?? false,
    backoffMsBase: integer(values["backoff-ms-base"], 0, "--backoff-ms-base", 0, BACKOFF_MS_MAX),
    ops: integer(values.ops, 2_000, "--ops", 1, 1_000_000),
    durationMs: parseDurationMs(values.duration ?? "6s"),
    hot: integer(values.hot, 2, "--hot", 2, 1_000),
    rounds: integer(values.rounds, 3, "--rounds", 0, 20),
    inFlight: integer(values["in-flight"], 32, "--in-flight", 1, 256),
    seed: integer(values.seed, 1, "--seed", 0, 1_000_000),
    verbose: values.verbose ?? false,
  };
}

interface Phase {
  readonly span: Span;
  readonly contention: Contention;
  readonly concurrency: number;
}

interface PhaseResult extends Phase {
  readonly requests: number;
  readonly committed: number;
  readonly failedCompare: number;
  readonly errors: ReadonlyMap<string, number>;
  readonly wallMs: number;
  /** Latencies of the answered transactions (committed or failed compare), µs. */
  readonly latency: LatencyHistogram;
  readonly totalHeld: boolean;
  /** Each node's CPU over the phase, and the benchmark's own, as % of one core. */
  readonly nodeCpuPercent: readonly number[];
  readonly benchCpuPercent: number;
}

/** The keys of a phase: with no contention, each client's own pair; hot, `hot` keys per range shared by all. */
function phaseKeys(phase: Phase, tag: string, hot: number): { pairs: (readonly [string, string])[]; hotKeys: string[][] } {
  if (phase.contention === "hot") {
    const hotKeys = Array.from({ length: RANGES }, (_, range) => Array.from({ length: hot }, (_, i) => keyIn(range, `${tag}-hot-${i}`)));
    return { pairs: [], hotKeys };
  }
  const second = phase.span === "one range" ? 0 : 1;
  const pairs = Array.from({ length: phase.concurrency }, (_, w) => [keyIn(w % RANGES, `${tag}-w${w}-a`), keyIn((w + second) % RANGES, `${tag}-w${w}-b`)] as const);
  return { pairs, hotKeys: [] };
}

/** Two distinct hot keys: of one random range, or of two different ranges; in a random order. */
function hotPair(random: Prng, span: Span, hotKeys: readonly string[][]): [string, string] {
  const first = random.int(0, RANGES - 1);
  const second = span === "one range" ? first : (first + random.int(1, RANGES - 1)) % RANGES;
  const a = random.pick(hotKeys[first] as string[]);
  let b = random.pick(hotKeys[second] as string[]);
  while (b === a) b = random.pick(hotKeys[second] as string[]);
  return random.chance(0.5) ? [a, b] : [b, a];
}

async function runPhase(cluster: BenchCluster, pools: Pools, phase: Phase, tag: string, options: Settings): Promise<PhaseResult> {
  const shards: ShardView[] = await rangesLed(cluster.endpoints[0] as string);
  const leaderOf = (key: string): string => shards[rangeOfKey(key)]?.leaderHttp as string;
  const { pairs, hotKeys } = phaseKeys(phase, tag, options.hot);
  const keys = [...pairs.flat(), ...hotKeys.flat()];
  await putAll(pools.get(cluster.endpoints[0] as string), keys, START);
  const latency = new LatencyHistogram();
  const errors = new Map<string, number>();
  let started = 0;
  let committed = 0;
  let failedCompare = 0;
  const cpuBefore = await cluster.cpuSeconds();
  const benchCpuBefore = process.cpuUsage();
  const startedMs = performance.now();
  const deadlineMs = startedMs + options.durationMs;
  const client = async (w: number): Promise<void> => {
    const random = new Prng(options.seed * 1_000 + w);
    const believed = new Map(keys.map((key) => [key, START]));
    let abortsInRow = 0;
    while (started < options.ops && performance.now() < deadlineMs) {
      started++;
      const [from, to] = phase.contention === "hot" ? hotPair(random, phase.span, hotKeys) : (pairs[w] as [string, string]);
      const sentMs = performance.now();
      const outcome = await transfer(pools.get(leaderOf(from)), from, to, [believed.get(from) as number, believed.get(to) as number]);
      if (outcome.kind === "error") {
        errors.set(outcome.code, (errors.get(outcome.code) ?? 0) + 1);
        if (outcome.code === "txn_aborted" && options.backoffMsBase > 0) await sleep(random.float() * Math.min(BACKOFF_MS_MAX, options.backoffMsBase * 2 ** abortsInRow++));
        continue;
      }
      abortsInRow = 0;
      latency.record((performance.now() - sentMs) * 1000);
      if (outcome.kind === "committed") {
        committed++;
        believed.set(from, (believed.get(from) as number) - 1);
        believed.set(to, (believed.get(to) as number) + 1);
      } else {
        failedCompare++;
        believed.set(from, outcome.balances[0]);
        believed.set(to, outcome.balances[1]);
      }
    }
  };
  await Promise.all(Array.from({ length: phase.concurrency }, (_, w) => client(w)));
  const wallMs = performance.now() - startedMs;
  const benchCpu = process.cpuUsage(benchCpuBefore);
  const nodeCpuPercent = cpuPercent(cpuBefore, await cluster.cpuSeconds(), wallMs);
  const total = await sumOf(pools.get(cluster.endpoints[0] as string), keys);
  const benchCpuPercent = ((benchCpu.user + benchCpu.system) / 1000 / wallMs) * 100;
  return { ...phase, requests: started, committed, failedCompare, errors, wallMs, latency, totalHeld: total === START * keys.length, nodeCpuPercent, benchCpuPercent };
}

const percent = (part: number, whole: number): string => (whole === 0 ? "-" : `${significant((part * 100) / whole)}%`);
const ms = (micros: number): string => significant(micros / 1000);

function phaseRow(result: PhaseResult): string {
  const aborted = result.errors.get("txn_aborted") ?? 0;
  const others = [...result.errors].filter(([code]) => code !== "txn_aborted");
  return [
    result.span,
    result.contention === "none" ? "none (own keys)" : "hot",
    String(result.concurrency),
    String(result.requests),
    significant((result.committed * 1000) / result.wallMs),
    significant((result.requests * 1000) / result.wallMs),
    ms(result.latency.percentile(50)),
    ms(result.latency.percentile(99)),
    percent(result.failedCompare, result.requests),
    percent(aborted, result.requests),
    others.length === 0 ? "0" : others.map(([code, count]) => `${code} ${count}`).join(", "),
    result.nodeCpuPercent.map((cpu) => cpu.toFixed(0)).join("+"),
    result.benchCpuPercent.toFixed(0),
    result.totalHeld ? "held" : "CHANGED",
  ].join(" | ");
}

/** A fresh cluster, its ranges led and warmed up (unreported: the JIT, the connections, the ranges woken); stopped after `run`. */
async function withCluster(options: Settings, run: (cluster: BenchCluster, pools: Pools, warmUpRequests: number) => Promise<void>): Promise<void> {
  const cluster = await BenchCluster.start({ nodes: 3, consensus: "raft", shards: RANGES });
  const pools = new Pools(Math.max(...options.concurrencies));
  try {
    await rangesLed(cluster.endpoints[0] as string);
    const warmUp = await runPhase(cluster, pools, { span: "two ranges", contention: "none", concurrency: 8 }, "warm", { ...options, ops: 1_000_000, durationMs: WARM_UP_MS });
    await run(cluster, pools, warmUp.requests);
  } finally {
    await pools.close();
    await cluster.stop();
  }
}

async function throughput(options: Settings): Promise<void> {
  const backoff = options.backoffMsBase === 0 ? "no backoff" : `full-jitter backoff from ${options.backoffMsBase} ms after an abort`;
  const cluster = options.freshCluster ? "a fresh cluster for each phase" : "one cluster for all phases";
  process.stdout.write(`3 nodes, ${RANGES} ranges, ${cluster}; ${options.ops} requests or ${options.durationMs / 1000} s per phase; ${options.hot} hot keys per range; ${backoff}; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
  const header = "span | contention | clients | requests | committed/s | requests/s | p50 ms | p99 ms | failed compare | aborted (409) | other errors | node CPU % | bench CPU % | total | txns across ranges before";
  process.stdout.write(`${header}\n`);
  const phases = options.contentions.flatMap((contention) => options.spans.flatMap((span) => options.concurrencies.map((concurrency): Phase => ({ span, contention, concurrency }))));
  const rows: string[] = [];
  // Each range keeps the outcome of every transaction across ranges for 10 minutes, and
  // rewrites them all at each phase (intents.ts): the count so far is printed with each phase.
  const runPhases = async (cluster: BenchCluster, pools: Pools, todo: readonly Phase[], warmUpRequests: number): Promise<void> => {
    let crossRangeBefore = warmUpRequests;
    for (const phase of todo) {
      const result = await runPhase(cluster, pools, phase, `p${rows.length}`, options);
      const row = `${phaseRow(result)} | ${crossRangeBefore}`;
      if (phase.span === "two ranges") crossRangeBefore += result.requests;
      rows.push(row);
      process.stdout.write(`${row}\n`);
    }
  };
  if (options.freshCluster) for (const phase of phases) await withCluster(options, (cluster, pools, warmUp) => runPhases(cluster, pools, [phase], warmUp));
  else await withCluster(options, (cluster, pools, warmUp) => runPhases(cluster, pools, phases, warmUp));
  process.stdout.write(`\n| ${header} |\n|${header.split("|").map(() => "---").join("|")}|\n${rows.map((row) => `| ${row} |`).join("\n")}\n`);
}

function median(values: readonly number[]): number {
  const sorted = values.filter((value) => !Number.isNaN(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

async function recovery(options: Settings): Promise<void> {
  process.stdout.write(`\nrecovery: ${options.inFlight} clients post transfers across two ranges to one node, which is killed (SIGKILL) after 1.5 s; ${options.rounds} rounds, each on a fresh cluster\n`);
  const rounds: RecoveryRound[] = [];
  for (let round = 0; round < options.rounds; round++) {
    const run = await recoveryRound(1 + (round % 3), options.inFlight);
    rounds.push(run);
    const s = (value: number): string => (Number.isNaN(value) ? "-" : (value / 1000).toFixed(2));
    process.stdout.write(
      `round ${round + 1}: killed node ${run.victim} (led ranges ${run.victimLed.join(",") || "none"}), ${run.committedBeforeKill} committed before, ${run.inFlightAtKill} in flight, at most ${run.intentsPeak} intents held` +
        `${run.errorsBeforeKill.length > 0 ? `, ${run.errorsBeforeKill.length} not committed before the kill (the first: ${run.errorsBeforeKill[0]})` : ""}; ` +
        `survivor leads every range after ${s(run.electedMs)} s, ${run.handoversAfterKill} leaderships handed over after the kill; every key free after ${s(run.allKeysFreeMs)} s (its ranges ${s(run.victimLedKeysFreeMs)} s, the others ${s(run.survivorLedKeysFreeMs)} s); ` +
        `no intent after ${s(run.intentsZeroMs)} s; ${run.recoveries} recoveries logged from ${s(run.firstRecoveryMs)} to ${s(run.lastRecoveryMs)} s; total ${run.total === run.totalExpected ? "held" : `${run.total}, EXPECTED ${run.totalExpected}`}\n`,
    );
    if (options.verbose) for (const logged of run.recoveryLog) process.stdout.write(`  ${s(logged.ms)} s  node ${logged.node} resolved range ${logged.range} (anchor ${logged.anchor})\n`);
  }
  const summary = (name: string, pick: (run: RecoveryRound) => number): string => {
    const values = rounds.map(pick).filter((value) => !Number.isNaN(value));
    return `${name}: min ${(Math.min(...values) / 1000).toFixed(2)} s, median ${(median(values) / 1000).toFixed(2)} s, max ${(Math.max(...values) / 1000).toFixed(2)} s`;
  };
  if (rounds.length > 0) {
    process.stdout.write(`${summary("every key free", (run) => run.allKeysFreeMs)}\n${summary("keys of ranges the victim led", (run) => run.victimLedKeysFreeMs)}\n${summary("keys of ranges survivors led", (run) => run.survivorLedKeysFreeMs)}\n${summary("every range led by a survivor", (run) => run.electedMs)}\n${summary("no intent left", (run) => run.intentsZeroMs)}\n`);
  }
}

async function main(): Promise<void> {
  const options = settings();
  if (options.mode !== "recovery") await throughput(options);
  if (options.mode !== "throughput") await recovery(options);
  process.stdout.write(`load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
}

await runBench("txn2pc.bench", main);

// `npm run bench:watch`: what watch fan-out delivers and what it costs the writes, on a
// real three-node cluster (`synod cluster`, free ports, a fresh data directory).
//
// 1. No watchers: a closed loop of puts to the leader (`--concurrency`, 100-byte values,
//    bounded by `--duration` and `--writes`): writes/s and their latency, the nodes' CPU.
// 2. `--watchers` streams (`GET /v1/watch?prefix=...`, spread evenly over the nodes (or
//    over the followers only, `--watchers-on followers`), in a
//    worker thread), then the same closed loop: the same numbers, plus the changes delivered
//    per second in total and each change's delay from its write's acknowledgement to its
//    arrival at a watcher (p50, p99).
// 3. The same watchers, writes at a fixed `--rate`: the delivery delay when the cluster is
//    not saturated.
//
// A benchmark prints numbers; it asserts nothing.
//
//   npm run bench:watch
//   npm run bench:watch -- --watchers 200 --duration 5s --rate 50 --consensus paxos
//   npm run bench:watch -- --watchers-on followers      # the leader serves no watcher
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { BenchCluster, cpuPercent } from "./bench-cluster.js";
import { parseDurationMs, significant } from "./kv-load.js";
import { runWriter, type WriterOptions, type WriterResult } from "./probe-writer.js";
import type { WatchPhaseReport, WatchWorkerData, WatchWorkerMessage } from "./watch-worker.js";
import { runBench } from "./run-bench.js";

const PREFIX = "bench/watch/";
const KEYS = 100;
const VALUE_BYTES = 100;
/** How long the changes of a phase may take to reach every watcher after its last write. */
const DRAIN_MS_MAX = 15_000;
const WATCHERS_READY_MS_MAX = 30_000;
const WARM_UP_MS = 2_000;

interface Settings {
  readonly watchers: number;
  readonly durationMs: number;
  readonly writesMax: number;
  readonly concurrency: number;
  readonly ratePerSecond: number;
  readonly consensus: string;
  /** Which nodes serve the watchers: every node, or only the followers (the leader then only writes). */
  readonly watchersOn: "all" | "followers";
}

function settings(): Settings {
  const { values } = parseArgs({ options: { watchers: { type: "string" }, duration: { type: "string" }, writes: { type: "string" }, concurrency: { type: "string" }, rate: { type: "string" }, consensus: { type: "string" }, "watchers-on": { type: "string" } } });
  const integer = (text: string | undefined, fallback: number, flag: string, max: number): number => {
    const value = Number(text ?? fallback);
    if (!Number.isSafeInteger(value) || value < 1 || value > max) throw new Error(`${flag} must be an integer from 1 to ${max}`);
    return value;
  };
  const consensus = values.consensus ?? "raft";
  if (consensus !== "raft" && consensus !== "paxos") throw new Error("--consensus is raft or paxos");
  const watchersOn = values["watchers-on"] ?? "all";
  if (watchersOn !== "all" && watchersOn !== "followers") throw new Error("--watchers-on is all or followers");
  return {
    watchersOn,
    watchers: integer(values.watchers, 1000, "--watchers", 9000),
    durationMs: parseDurationMs(values.duration ?? "10s"),
    writesMax: integer(values.writes, 20_000, "--writes", 1_000_000),
    concurrency: integer(values.concurrency, 16, "--concurrency", 1024),
    ratePerSecond: integer(values.rate, 20, "--rate", 100_000),
    consensus,
  };
}

interface PhaseResult {
  readonly name: string;
  readonly writer: WriterResult;
  readonly cpu: number[];
  /** This process's CPU (writer and watchers' thread), % of one core. */
  readonly benchCpu: number;
  readonly watch: WatchPhaseReport | null;
  /** Changes the watchers should have received: writes acknowledged times watchers. */
  readonly expected: number;
}

/** The watchers' thread, with a way to wait for its next message. */
class Watchers {
  private readonly worker: Worker;
  private waiting: ((message: WatchWorkerMessage) => void) | null = null;

  constructor(data: WatchWorkerData) {
    this.worker = new Worker(new URL("./watch-worker.js", import.meta.url), { workerData: data });
    this.worker.on("message", (message: WatchWorkerMessage) => this.waiting?.(message));
    this.worker.on("error", (error) => process.stderr.write(`the watchers' thread failed: ${error.message}\n`));
  }

  async ready(): Promise<void> {
    const timeout = sleep(WATCHERS_READY_MS_MAX).then(() => {
      throw new Error(`the watchers were not all streaming within ${WATCHERS_READY_MS_MAX / 1000} s`);
    });
    await Promise.race([this.next("ready"), timeout]);
  }

  reset(): void {
    this.worker.postMessage({ type: "reset" });
  }

  async report(acked: ReadonlyMap<number, number>): Promise<WatchPhaseReport> {
    const answer = this.next("report");
    this.worker.postMessage({ type: "report", acked: [...acked] });
    const message = await answer;
    if (message.type !== "report") throw new Error("the watchers' thread answered out of turn");
    return message.report;
  }

  async stop(): Promise<void> {
    this.worker.postMessage({ type: "stop" });
    await Promise.race([new Promise((resolve) => this.worker.once("exit", resolve)), sleep(2_000)]);
    await this.worker.terminate();
  }

  private next(type: WatchWorkerMessage["type"]): Promise<WatchWorkerMessage> {
    return new Promise((resolve) => {
      this.waiting = (message) => {
        if (message.type !== type) return;
        this.waiting = null;
        resolve(message);
      };
    });
  }
}

async function phase(name: string, cluster: BenchCluster, watchers: Watchers | null, count: number, writer: WriterOptions): Promise<PhaseResult> {
  process.stdout.write(`${name}...\n`);
  watchers?.reset();
  const cpuBefore = await cluster.cpuSeconds();
  const benchCpuBefore = process.cpuUsage();
  const startedMs = performance.now();
  const result = await runWriter(writer);
  const expected = result.writes * count;
  let report: WatchPhaseReport | null = null;
  if (watchers !== null) {
    // Until every change reached every watcher (or the drain bound): the delivery counts in.
    const drainUntilMs = performance.now() + DRAIN_MS_MAX;
    for (;;) {
      report = await watchers.report(result.ackedAtMs);
      if (report.events >= expected || performance.now() > drainUntilMs) break;
      await sleep(250);
    }
  }
  const wallMs = performance.now() - startedMs;
  const benchCpuUsed = process.cpuUsage(benchCpuBefore);
  const cpu = cpuPercent(cpuBefore, await cluster.cpuSeconds(), wallMs);
  return { name, writer: result, cpu, benchCpu: ((benchCpuUsed.user + benchCpuUsed.system) / 1000 / wallMs) * 100, watch: report, expected };
}

function table(results: readonly PhaseResult[]): string {
  const header = ["phase", "writes/s", "write p50 ms", "write p99 ms", "changes delivered/s", "delivered of expected", "ack→watcher p50 ms", "p99 ms", "node CPU %", "bench CPU %"];
  const rows = results.map((r) => {
    const w = r.watch;
    const spanS = w === null ? 0 : (w.lastAtMs - w.firstAtMs) / 1000;
    return [
      r.name,
      r.writer.writesPerSecond.toFixed(0),
      significant(r.writer.latencyMs.p50),
      significant(r.writer.latencyMs.p99),
      w === null ? "—" : (w.events / Math.max(spanS, 0.001)).toFixed(0),
      w === null ? "—" : `${w.events} of ${r.expected}`,
      w === null ? "—" : significant(w.latencyMs.p50),
      w === null ? "—" : significant(w.latencyMs.p99),
      r.cpu.map((percent) => percent.toFixed(0)).join(" / "),
      r.benchCpu.toFixed(0),
    ];
  });
  const line = (cells: readonly string[]): string => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

function details(results: readonly PhaseResult[]): string {
  return results
    .map((r) => {
      const w = r.watch;
      const writes = `${r.name}: ${r.writer.writes} writes in ${r.writer.seconds.toFixed(1)} s (${r.writer.errors} failed), max ${significant(r.writer.latencyMs.max)} ms`;
      if (w === null) return writes;
      return `${writes}; ${w.events} changes delivered in ${((w.lastAtMs - w.firstAtMs) / 1000).toFixed(1)} s, ${w.beforeAck} before the writer had the answer, ${w.untimed} untimed, delay max ${significant(w.latencyMs.max)} ms; streams cut ${w.canceled}, reopened ${w.reconnects}`;
    })
    .join("\n");
}

async function main(): Promise<void> {
  const setup = settings();
  process.stdout.write(`npm run bench:watch: 3-node ${setup.consensus} cluster, ${setup.watchers} watchers on ${PREFIX}, writes of ${VALUE_BYTES} B to ${KEYS} keys\n`);
  const cluster = await BenchCluster.start({ nodes: 3, consensus: setup.consensus });
  let watchers: Watchers | null = null;
  try {
    const leader = await cluster.leader();
    process.stdout.write(`leader: ${leader}\n`);
    const closedLoop: WriterOptions = { url: leader, prefix: PREFIX, keys: KEYS, valueBytes: VALUE_BYTES, durationMs: setup.durationMs, writesMax: setup.writesMax, concurrency: setup.concurrency };
    // Unreported: the JIT and the nodes' caches warm up, so the first phase is not the slower for it.
    await runWriter({ ...closedLoop, durationMs: WARM_UP_MS });
    const results: PhaseResult[] = [];
    results.push(await phase(`0 watchers, ${setup.concurrency} writes outstanding`, cluster, null, 0, closedLoop));
    const watched = setup.watchersOn === "all" ? cluster.endpoints : cluster.endpoints.filter((url) => url !== leader);
    watchers = new Watchers({ endpoints: watched, watchers: setup.watchers, prefix: PREFIX });
    await watchers.ready();
    process.stdout.write(`${setup.watchers} watchers streaming from ${watched.join(", ")}\n`);
    results.push(await phase(`${setup.watchers} watchers, ${setup.concurrency} writes outstanding`, cluster, watchers, setup.watchers, closedLoop));
    results.push(await phase(`${setup.watchers} watchers, ${setup.ratePerSecond} writes/s`, cluster, watchers, setup.watchers, { ...closedLoop, ratePerSecond: setup.ratePerSecond }));
    process.stdout.write(`\n${details(results)}\n\n${table(results)}\n`);
  } catch (error) {
    process.stderr.write(`npm run bench:watch: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  } finally {
    await watchers?.stop();
    await cluster.stop();
  }
}

await runBench("watch.bench", main);

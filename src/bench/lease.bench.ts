// `npm run bench:leases`: what keeping many leases alive costs, on a real three-node
// cluster (`synod cluster`, free ports, a fresh data directory).
//
// 1. No leases: a closed loop of puts to the leader (`--concurrency`, 100-byte values,
//    bounded by `--duration`): writes/s, their latency, the nodes' CPU.
// 2. `--leases` leases granted with `--ttl` (default 60 s) through the SDK (`client.lease`),
//    each kept alive by the SDK in the background (a keep-alive every third of the time to
//    live: there is no batched keep-alive in the API, so each is one request and one log
//    entry). Then the same closed loop of puts for one renewal interval (a third of the
//    time to live, at least `--duration`), in which every lease is renewed once: the same
//    numbers, plus the keep-alive requests per second the nodes answered (from their
//    /metrics) and the leases the SDK reports lost, with why.
//
// A benchmark prints numbers; it asserts nothing.
//
//   npm run bench:leases
//   npm run bench:leases -- --ttl 10                  # 3,000 keep-alives/s
//   npm run bench:leases -- --leases 2000 --ttl 5 --duration 5s
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Client } from "../client/client.js";
import type { Lease } from "../client/lease.js";
import { BenchCluster, cpuPercent } from "./bench-cluster.js";
import { parseDurationMs, significant } from "./kv-load.js";
import { runWriter, type WriterOptions, type WriterResult } from "./probe-writer.js";
import { runBench } from "./run-bench.js";

const PREFIX = "bench/lease-probe/";
const KEYS = 100;
const VALUE_BYTES = 100;
/** Grants in flight at once. */
const GRANT_CONCURRENCY = 256;
const WARM_UP_MS = 2_000;
const KEEPALIVE_ROUTE = 'route="/v1/leases/{id}/keepalive"';
const REQUESTS_METRIC = "synod_http_request_duration_seconds_count";

interface Settings {
  readonly leases: number;
  readonly ttlSeconds: number;
  readonly durationMs: number;
  readonly concurrency: number;
  readonly consensus: string;
}

function settings(): Settings {
  const { values } = parseArgs({ options: { leases: { type: "string" }, ttl: { type: "string" }, duration: { type: "string" }, concurrency: { type: "string" }, consensus: { type: "string" } } });
  const integer = (text: string | undefined, fallback: number, flag: string, max: number): number => {
    const value = Number(text ?? fallback);
    if (!Number.isSafeInteger(value) || value < 1 || value > max) throw new Error(`${flag} must be an integer from 1 to ${max}`);
    return value;
  };
  const consensus = values.consensus ?? "raft";
  if (consensus !== "raft" && consensus !== "paxos") throw new Error("--consensus is raft or paxos");
  return {
    leases: integer(values.leases, 10_000, "--leases", 100_000),
    // etcd's sessions (clientv3/concurrency) default to 60 s.
    ttlSeconds: integer(values.ttl, 60, "--ttl", 3600),
    durationMs: parseDurationMs(values.duration ?? "10s"),
    concurrency: integer(values.concurrency, 16, "--concurrency", 1024),
    consensus,
  };
}

interface PhaseResult {
  readonly name: string;
  readonly writer: WriterResult;
  readonly cpu: number[];
  /** This process's CPU (the writer, and the SDK keeping the leases alive), % of one core. */
  readonly benchCpu: number;
  readonly keepAlivesPerSecond: number;
}

async function phase(name: string, cluster: BenchCluster, writer: WriterOptions): Promise<PhaseResult> {
  process.stdout.write(`${name}...\n`);
  const cpuBefore = await cluster.cpuSeconds();
  const keepAlivesBefore = await cluster.metricSum(REQUESTS_METRIC, KEEPALIVE_ROUTE);
  const benchCpuBefore = process.cpuUsage();
  const startedMs = performance.now();
  const result = await runWriter(writer);
  const wallMs = performance.now() - startedMs;
  const benchCpuUsed = process.cpuUsage(benchCpuBefore);
  const keepAlives = (await cluster.metricSum(REQUESTS_METRIC, KEEPALIVE_ROUTE)) - keepAlivesBefore;
  const benchCpu = ((benchCpuUsed.user + benchCpuUsed.system) / 1000 / wallMs) * 100;
  return { name, writer: result, cpu: cpuPercent(cpuBefore, await cluster.cpuSeconds(), wallMs), benchCpu, keepAlivesPerSecond: (keepAlives * 1000) / wallMs };
}

/**
 * Grants `count` leases, GRANT_CONCURRENCY at a time; the SDK keeps each alive from then on.
 * A grant that fails is counted, not retried: a cluster that cannot keep up is a result.
 */
async function grant(client: Client, count: number, ttlSeconds: number): Promise<{ leases: Lease[]; failed: number; firstFailure: string | null }> {
  const leases: Lease[] = [];
  let next = 0;
  let failed = 0;
  let firstFailure: string | null = null;
  await Promise.all(Array.from({ length: GRANT_CONCURRENCY }, async () => {
    while (next < count) {
      next++;
      try {
        leases.push(await client.lease(ttlSeconds));
      } catch (error) {
        failed++;
        firstFailure ??= error instanceof Error ? error.message : String(error);
      }
    }
  }));
  return { leases, failed, firstFailure };
}

/** How many leases the SDK says are lost, by why. */
async function lostReasons(leases: readonly Lease[]): Promise<Map<string, number>> {
  const reasons = new Map<string, number>();
  for (const lease of leases) {
    if (lease.alive) continue;
    const error = await Promise.race([lease.lost, sleep(0).then(() => null)]);
    const reason = error === null ? "not alive" : `${error.reason}: ${error.message.replace(/lease \d+/g, "lease N")}`;
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
  }
  return reasons;
}

function table(results: readonly PhaseResult[]): string {
  const header = ["phase", "writes/s", "write p50 ms", "write p99 ms", "keep-alives/s", "node CPU %", "bench CPU %"];
  const rows = results.map((r) => [r.name, r.writer.writesPerSecond.toFixed(0), significant(r.writer.latencyMs.p50), significant(r.writer.latencyMs.p99), r.keepAlivesPerSecond.toFixed(0), r.cpu.map((percent) => percent.toFixed(0)).join(" / "), r.benchCpu.toFixed(0)]);
  const line = (cells: readonly string[]): string => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

async function main(): Promise<void> {
  const setup = settings();
  process.stdout.write(`npm run bench:leases: 3-node ${setup.consensus} cluster, ${setup.leases} leases of ${setup.ttlSeconds} s\n`);
  const cluster = await BenchCluster.start({ nodes: 3, consensus: setup.consensus });
  const holder = new Client({ endpoints: [...cluster.endpoints], concurrency: GRANT_CONCURRENCY });
  try {
    const leader = await cluster.leader();
    process.stdout.write(`leader: ${leader}\n`);
    const writer: WriterOptions = { url: leader, prefix: PREFIX, keys: KEYS, valueBytes: VALUE_BYTES, durationMs: setup.durationMs, writesMax: 10_000_000, concurrency: setup.concurrency };
    // Unreported: the JIT and the nodes' caches warm up, so the first phase is not the slower for it.
    await runWriter({ ...writer, durationMs: WARM_UP_MS });
    const results = [await phase(`no leases, ${setup.concurrency} writes outstanding`, cluster, writer)];
    const grantStartedMs = performance.now();
    const { leases, failed, firstFailure } = await grant(holder, setup.leases, setup.ttlSeconds);
    const grantSeconds = (performance.now() - grantStartedMs) / 1000;
    const failures = failed === 0 ? "" : `; ${failed} grants failed, the first with: ${firstFailure}`;
    process.stdout.write(`granted ${leases.length} leases in ${grantSeconds.toFixed(1)} s (${(leases.length / grantSeconds).toFixed(0)}/s)${failures}\n`);
    // One renewal interval from the last grant: each lease is renewed once inside it, in bursts
    // as dense as the grants were, so the average and the bursts both count.
    const renewalMs = Math.max(setup.durationMs, (setup.ttlSeconds * 1000) / 3);
    results.push(await phase(`${leases.length} leases kept alive, ${setup.concurrency} writes outstanding`, cluster, { ...writer, durationMs: renewalMs }));
    const lost = await lostReasons(leases);
    const lostCount = [...lost.values()].reduce((sum, n) => sum + n, 0);
    const writes = results.map((r) => `${r.name}: ${r.writer.writes} writes in ${r.writer.seconds.toFixed(1)} s (${r.writer.errors} failed), max ${significant(r.writer.latencyMs.max)} ms`);
    const why = [...lost].map(([reason, count]) => `\n  ${count}× ${reason}`).join("");
    process.stdout.write(`\n${writes.join("\n")}\nleases the SDK reports lost: ${lostCount} of ${leases.length}${why}\n\n${table(results)}\n`);
  } catch (error) {
    process.stderr.write(`npm run bench:leases: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  } finally {
    await holder.close();
    await cluster.stop();
  }
}

await runBench("lease.bench", main);

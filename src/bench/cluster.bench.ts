// `npm run bench`: a real three-node cluster on loopback, loaded through its HTTP API.
// It starts `synod cluster --nodes 3` as a child process on free ports (from --base-port)
// with a fresh data directory (bench-cluster.ts), waits (at most 30 s) until the nodes name
// a leader, runs 100-byte puts and
// then linearizable gets at concurrency 64 against the leader (the load generator of
// `synod bench`, in this process), prints both, stops the cluster (SIGINT, SIGKILL after
// 5 s) and removes the directory. A benchmark prints numbers; it asserts nothing.
//
//   npm run bench -- --duration 3s --concurrency 32 --base-port 18101
//   BENCH_DURATION=3s npm run bench
import { parseArgs } from "node:util";
import { BenchCluster } from "./bench-cluster.js";
import { formatBenchResult, parseDurationMs, runKvBench, significant, type BenchOp, type BenchResult } from "./kv-load.js";

const NODES = 3;

interface Settings {
  readonly durationMs: number;
  readonly concurrency: number;
  readonly basePort: number;
}

function settings(): Settings {
  const { values } = parseArgs({ options: { duration: { type: "string" }, concurrency: { type: "string" }, "base-port": { type: "string" } } });
  const concurrency = Number(values.concurrency ?? 64);
  const basePort = Number(values["base-port"] ?? process.env["BENCH_BASE_PORT"] ?? 17101);
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new Error("--concurrency must be a positive integer");
  if (!Number.isSafeInteger(basePort) || basePort < 1024 || basePort > 65_000) throw new Error("--base-port must be from 1024 to 65000");
  return { durationMs: parseDurationMs(values.duration ?? process.env["BENCH_DURATION"] ?? "10s"), concurrency, basePort };
}

async function measure(cluster: BenchCluster, op: BenchOp, setup: Settings): Promise<BenchResult> {
  process.stdout.write(`${op}: ${setup.durationMs / 1000} s at concurrency ${setup.concurrency}...\n`);
  return runKvBench({
    endpoints: cluster.endpoints,
    durationMs: setup.durationMs,
    concurrency: setup.concurrency,
    valueBytes: 100,
    op,
    mixedGetRatio: 0.5,
    consistency: "linearizable",
    target: "leader",
    maxOps: 10_000_000,
  });
}

function table(results: readonly BenchResult[]): string {
  const header = ["op", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"];
  const rows = results.map((r) => [
    r.op === "get" ? `get (${r.consistency})` : r.op,
    r.opsPerSecond.toFixed(0),
    significant(r.latencyMs.p50),
    significant(r.latencyMs.p90),
    significant(r.latencyMs.p99),
    significant(r.latencyMs.max),
    String(Object.values(r.errors).reduce((sum, n) => sum + n, 0)),
  ]);
  const line = (cells: readonly string[]): string => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

async function main(): Promise<void> {
  const setup = settings();
  const cluster = await BenchCluster.start({ nodes: NODES, consensus: "raft", basePort: setup.basePort });
  const leader = await cluster.leader();
  process.stdout.write(`npm run bench: ${NODES}-node cluster at ${cluster.endpoints.join(", ")}; leader ${leader}\n`);
  // Ctrl-C reaches the cluster too (same process group); this only waits for it and cleans up.
  const onInterrupt = (): void => {
    void cluster.stop().finally(() => process.exit(130));
  };
  process.once("SIGINT", onInterrupt);
  try {
    const results = [await measure(cluster, "put", setup), await measure(cluster, "get", setup)];
    process.stdout.write(`\n${results.map(formatBenchResult).join("\n")}\n\n${table(results)}\n`);
  } catch (error) {
    process.stderr.write(`npm run bench: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  } finally {
    process.off("SIGINT", onInterrupt);
    await cluster.stop();
  }
}

try {
  await main();
} catch (error) {
  process.stderr.write(`npm run bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}

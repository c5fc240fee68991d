// `npm run bench`: a real three-node cluster on loopback, loaded through its HTTP API.
// It starts `synod cluster --nodes 3` as a child process on a free base port with a fresh
// data directory, waits (at most 30 s) until a node names a leader, runs 100-byte puts and
// then linearizable gets at concurrency 64 against the leader (the load generator of
// `synod bench`, in this process), prints both, stops the cluster (SIGINT, SIGKILL after
// 5 s) and removes the directory. A benchmark prints numbers; it asserts nothing.
//
//   npm run bench -- --duration 3s --concurrency 32 --base-port 18101
//   BENCH_DURATION=3s npm run bench
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ConnectionError, NoLeaderError } from "../client/errors.js";
import { findLeader, formatBenchResult, parseDurationMs, runKvBench, significant, type BenchOp, type BenchResult } from "./kv-load.js";

const NODES = 3;
const LEADER_WAIT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const KILL_WAIT_MS = 2_000;
/** Base ports tried, 10 apart, before giving up. */
const BASE_PORT_TRIES = 20;
/** Lines of the cluster's output kept, to show when it fails. */
const OUTPUT_LINES_KEPT = 40;

const bin = fileURLToPath(new URL("../../bin/synod.js", import.meta.url));

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

/** True when nothing listens on 127.0.0.1:port. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A base port whose HTTP ports (base .. base+2) are free. The peer ports the cluster
 * command derives from it are its own business; a clash there shows in its output.
 */
async function freeBasePort(first: number): Promise<number> {
  for (let i = 0; i < BASE_PORT_TRIES; i++) {
    const base = first + 10 * i;
    const free = await Promise.all(Array.from({ length: NODES }, (_, n) => portFree(base + n)));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no free base port from ${first} in ${BASE_PORT_TRIES} tries`);
}

class Cluster {
  private readonly output: string[] = [];
  private exited: Promise<void>;
  private running = true;

  private constructor(
    private readonly child: ChildProcess,
    readonly endpoints: readonly string[],
  ) {
    const keep = (chunk: Buffer): void => {
      this.output.push(...chunk.toString("utf8").split("\n").filter((line) => line !== ""));
      if (this.output.length > OUTPUT_LINES_KEPT) this.output.splice(0, this.output.length - OUTPUT_LINES_KEPT);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.exited = new Promise((resolve) =>
      child.once("exit", () => {
        this.running = false;
        resolve();
      }),
    );
  }

  static start(basePort: number, dataDir: string): Cluster {
    const child = spawn(process.execPath, [bin, "cluster", "--nodes", String(NODES), "--base-port", String(basePort), "--data-dir", dataDir], { stdio: ["ignore", "pipe", "pipe"] });
    const endpoints = Array.from({ length: NODES }, (_, i) => `http://127.0.0.1:${basePort + i}`);
    return new Cluster(child, endpoints);
  }

  /** The leader's endpoint, once a node names one; at most `waitMs`. */
  async leader(waitMs: number): Promise<string> {
    const deadlineMs = performance.now() + waitMs;
    while (this.running && performance.now() < deadlineMs) {
      try {
        return await findLeader(this.endpoints, 1_000);
      } catch (error) {
        if (!(error instanceof NoLeaderError || error instanceof ConnectionError)) throw error;
      }
    }
    throw new Error(this.running ? `no leader after ${waitMs / 1000} s` : `the cluster exited (code ${this.child.exitCode ?? this.child.signalCode})`);
  }

  /** SIGINT, then SIGKILL if it has not exited after the grace period. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill("SIGINT");
    const stopped = await Promise.race([this.exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
    if (stopped) return;
    process.stderr.write(`the cluster did not stop within ${STOP_GRACE_MS / 1000} s of SIGINT; killing it\n`);
    this.child.kill("SIGKILL");
    await Promise.race([this.exited, sleep(KILL_WAIT_MS)]);
  }

  lastOutput(): string {
    return this.output.join("\n");
  }
}

async function measure(cluster: Cluster, op: BenchOp, setup: Settings): Promise<BenchResult> {
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
  const basePort = await freeBasePort(setup.basePort);
  const dataDir = mkdtempSync(join(tmpdir(), "synod-bench-"));
  process.stdout.write(`npm run bench: ${NODES}-node cluster on 127.0.0.1:${basePort}-${basePort + NODES - 1}, data in ${dataDir}\n`);
  const cluster = Cluster.start(basePort, dataDir);
  // Ctrl-C reaches the cluster too (same process group); this only waits for it and cleans up.
  const onInterrupt = (): void => {
    void cluster.stop().finally(() => {
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once("SIGINT", onInterrupt);
  try {
    const leader = await cluster.leader(LEADER_WAIT_MS);
    process.stdout.write(`leader: ${leader}\n`);
    const results = [await measure(cluster, "put", setup), await measure(cluster, "get", setup)];
    process.stdout.write(`\n${results.map(formatBenchResult).join("\n")}\n\n${table(results)}\n`);
  } catch (error) {
    process.stderr.write(`npm run bench: ${error instanceof Error ? error.message : String(error)}\nthe cluster's last output:\n${cluster.lastOutput()}\n`);
    process.exitCode = 1;
  } finally {
    process.off("SIGINT", onInterrupt);
    await cluster.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();

// A local cluster for the benchmarks (cluster.bench.ts, watch.bench.ts, lease.bench.ts):
// `synod cluster --nodes 3` as a child process on free
// ports with a fresh data directory, its leader found through the nodes' status, each
// node's CPU time read from its /metrics (prom-client's process_cpu_seconds_total, so no
// pid is needed), and a clean stop that removes the directory. A benchmark that kills a node
// (txn2pc.bench.ts) takes its pid from the cluster's output and reads its log file.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const LEADER_WAIT_MS = 30_000;
const STATUS_TIMEOUT_MS = 1_000;
const STOP_GRACE_MS = 5_000;
const KILL_WAIT_MS = 2_000;
/** Lines of the cluster's output kept, to show when it fails. */
const OUTPUT_LINES_KEPT = 40;
/** The peer ports are the HTTP ports plus this (the cluster command's default). */
const PEER_PORT_OFFSET = 100;

const bin = fileURLToPath(new URL("../../bin/synod.js", import.meta.url));

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A base port whose HTTP and peer ports are all free, from `first` or a random start (other runs may be on the machine). */
async function freeBasePort(nodes: number, first?: number): Promise<number> {
  for (let base = first ?? 23_000 + Math.floor(Math.random() * 300) * 10; base < 60_000; base += 10) {
    const ports = Array.from({ length: nodes }, (_, i) => [base + i, base + PEER_PORT_OFFSET + i]).flat();
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error("no free ports");
}

export interface BenchClusterOptions {
  readonly nodes: number;
  readonly consensus: string;
  /** The first base port to try (HTTP ports from it, peer ports 100 above); default: a random one. */
  readonly basePort?: number;
  /** `--shards`: ranges the key space is cut into; default 1. */
  readonly shards?: number;
  /** The nodes' `--log-level`; default warn. */
  readonly logLevel?: string;
}

export class BenchCluster {
  private readonly output: string[] = [];
  /** Each node's pid, from the cluster's line `node N  URL  peer ...  pid P`. */
  private readonly pids = new Map<number, number>();
  private readonly exited: Promise<void>;
  private running = true;

  private constructor(
    private readonly child: ChildProcess,
    private readonly dataDir: string,
    readonly endpoints: readonly string[],
  ) {
    const keep = (chunk: Buffer): void => {
      const lines = chunk.toString("utf8").split("\n").filter((line) => line !== "");
      for (const line of lines) {
        const started = /^\s*node (\d+)\s.*\spid (\d+)/.exec(line);
        if (started !== null) this.pids.set(Number(started[1]), Number(started[2]));
      }
      this.output.push(...lines);
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

  /** Starts the cluster and waits (at most 30 s) until every node names the same leader. */
  static async start(options: BenchClusterOptions): Promise<BenchCluster> {
    const basePort = await freeBasePort(options.nodes, options.basePort);
    const dataDir = mkdtempSync(join(tmpdir(), "synod-bench-"));
    const args = [bin, "cluster", "--nodes", String(options.nodes), "--base-port", String(basePort), "--data-dir", dataDir, "--consensus", options.consensus, "--log-level", options.logLevel ?? "warn", ...(options.shards === undefined ? [] : ["--shards", String(options.shards)])];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    const endpoints = Array.from({ length: options.nodes }, (_, i) => `http://127.0.0.1:${basePort + i}`);
    const cluster = new BenchCluster(child, dataDir, endpoints);
    try {
      await cluster.leader();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** The leader's URL, once every node names it; at most `waitMs`. */
  async leader(waitMs = LEADER_WAIT_MS): Promise<string> {
    const deadlineMs = performance.now() + waitMs;
    while (this.running && performance.now() < deadlineMs) {
      const statuses = await Promise.all(this.endpoints.map((url) => this.status(url)));
      const leaders = new Set(statuses.map((status) => status?.leader ?? null));
      const [leader] = [...leaders];
      if (leaders.size === 1 && typeof leader === "number") {
        const url = this.endpoints[leader - 1];
        if (url !== undefined) return url;
      }
      await sleep(100);
    }
    throw new Error(`${this.running ? `no leader within ${waitMs / 1000} s` : "the cluster exited"}; its last output:\n${this.output.join("\n")}`);
  }

  /** Each node's CPU time so far (user + system), in seconds, in the order of `endpoints`. */
  async cpuSeconds(): Promise<number[]> {
    return Promise.all(this.endpoints.map(async (url) => (await this.metric(url, "synod_process_cpu_seconds_total")) ?? Number.NaN));
  }

  /** The sum, over the nodes, of every sample of `name` whose labels include `labelText` (e.g. `route="..."`). */
  async metricSum(name: string, labelText: string): Promise<number> {
    const texts = await Promise.all(this.endpoints.map((url) => fetch(`${url}/metrics`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS * 5) }).then((response) => response.text())));
    let sum = 0;
    for (const text of texts) {
      for (const line of text.split("\n")) {
        if (!line.startsWith(`${name}{`) || !line.includes(labelText)) continue;
        sum += Number(line.slice(line.lastIndexOf(" ") + 1));
      }
    }
    return sum;
  }

  /** Kills node `id` (1-based, as in `endpoints`) with SIGKILL; the cluster command keeps the others running. */
  killNode(id: number): void {
    const pid = this.pids.get(id);
    if (pid === undefined) throw new Error(`no pid for node ${id} in the cluster's output:\n${this.output.join("\n")}`);
    process.kill(pid, "SIGKILL");
  }

  /** Node `id`'s log so far (the cluster writes each node's output to node-ID.log in its data directory). */
  nodeLog(id: number): string {
    try {
      return readFileSync(join(this.dataDir, `node-${id}.log`), "utf8");
    } catch {
      return "";
    }
  }

  /** SIGINT (the cluster stops its nodes), SIGKILL after a grace period; removes the data directory. */
  async stop(): Promise<void> {
    if (this.running) {
      this.child.kill("SIGINT");
      const stopped = await Promise.race([this.exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
      if (!stopped) {
        this.child.kill("SIGKILL");
        await Promise.race([this.exited, sleep(KILL_WAIT_MS)]);
      }
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  private async status(url: string): Promise<{ leader: number | null } | null> {
    try {
      const response = await fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
      return (await response.json()) as { leader: number | null };
    } catch {
      return null;
    }
  }

  private async metric(url: string, name: string): Promise<number | null> {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS * 5) })).text();
    const line = text.split("\n").find((candidate) => candidate.startsWith(`${name} `));
    return line === undefined ? null : Number(line.slice(name.length + 1));
  }
}

/** CPU used by each node between two `cpuSeconds()` readings, as a percentage of one core over `wallMs`. */
export function cpuPercent(before: readonly number[], after: readonly number[], wallMs: number): number[] {
  return after.map((seconds, i) => ((seconds - (before[i] ?? Number.NaN)) * 1000 * 100) / wallMs);
}

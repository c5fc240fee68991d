/**
 * Real-process clusters for tests: each node is `synod node` in its own child process, on
 * loopback ports, with its own data directory; tests talk to it over HTTP and kill it with
 * real signals.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NodeStatus } from "../../client/api.js";

const SYNOD_BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "bin", "synod.js");

/**
 * Ports for test nodes come from a block of PORTS_PER_BLOCK this test process claims for
 * itself (a file in the temp directory names its pid), below the kernel's ephemeral range.
 * Asking the kernel for port 0 and handing the number on is a race once test files run two
 * at a time: another file's node could take the port between its release and its use (seen
 * in CI: a node of one file's cluster answered another's handshake), and an outgoing
 * connection can take an ephemeral port too.
 */
const PORTS_FROM = 20_000;
const PORTS_PER_BLOCK = 200;
const PORT_BLOCKS = 60;
let portBlock: { readonly first: number; next: number } | null = null;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function claimPortBlock(): { readonly first: number; next: number } {
  const dir = join(tmpdir(), "synod-test-ports");
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < PORT_BLOCKS; i++) {
    const block = (process.pid + i) % PORT_BLOCKS;
    const file = join(dir, `block-${block}`);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(file, String(process.pid), { flag: "wx" });
        process.once("exit", () => rmSync(file, { force: true }));
        return { first: PORTS_FROM + block * PORTS_PER_BLOCK, next: 0 };
      } catch {
        // Taken: free it if its owner is gone, and try once more.
        const owner = Number(readFileSync(file, { encoding: "utf8", flag: "r" }) || "0");
        if (owner !== 0 && processAlive(owner)) break;
        rmSync(file, { force: true });
      }
    }
  }
  throw new Error(`no free block of test ports in ${dir}: ${PORT_BLOCKS} test processes at once?`);
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** The first of `count` consecutive free ports of this process's block, for `synod cluster --base-port`. */
export async function freePortRange(count: number): Promise<number> {
  portBlock ??= claimPortBlock();
  for (let tried = 0; tried < PORTS_PER_BLOCK; tried++) {
    if ((portBlock.next % PORTS_PER_BLOCK) + count > PORTS_PER_BLOCK) portBlock.next += PORTS_PER_BLOCK - (portBlock.next % PORTS_PER_BLOCK);
    const first = portBlock.first + (portBlock.next % PORTS_PER_BLOCK);
    portBlock.next += count;
    const free = await Promise.all(Array.from({ length: count }, (_, i) => bindable(first + i)));
    if (free.every(Boolean)) return first;
  }
  throw new Error(`no ${count} consecutive free ports left in this test process's block`);
}

/** `count` free loopback ports of this process's block (see claimPortBlock). */
export async function freePorts(count: number): Promise<number[]> {
  portBlock ??= claimPortBlock();
  const ports: number[] = [];
  for (let tried = 0; ports.length < count; tried++) {
    if (tried >= PORTS_PER_BLOCK) throw new Error(`fewer than ${count} free ports left in this test process's block from ${portBlock.first}`);
    const port = portBlock.first + (portBlock.next++ % PORTS_PER_BLOCK);
    if (await bindable(port)) ports.push(port);
  }
  return ports;
}

export interface NodeProcess {
  readonly id: number;
  readonly http: string;
  readonly dataDir: string;
  process: ChildProcess | null;
  output: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null;
}

/**
 * The consensus protocols the real-process tests run: each suite that loops over these runs
 * once per protocol, on a cluster of its own (`synod node --consensus NAME`).
 */
export const CONSENSUS_UNDER_TEST = ["raft", "paxos"] as const;

/**
 * For suites whose behaviour lives above the engine (client sessions, the lock service: the
 * KV state machine both engines run the same way): Raft alone in `npm test`, both engines
 * under `npm run test:all` (SYNOD_TEST_ALL_ENGINES=1). Suites where the engines differ
 * (elections, membership, transfer, snapshots, recovery, linearizability) always run both.
 */
export const CONSENSUS_FOR_ENGINE_AGNOSTIC: readonly (typeof CONSENSUS_UNDER_TEST)[number][] = process.env["SYNOD_TEST_ALL_ENGINES"] === "1" ? CONSENSUS_UNDER_TEST : ["raft"];

export interface ClusterOptions {
  /** Nodes that bootstrap the cluster (`--peers`), started at once. */
  readonly size: number;
  /** `--consensus` for every node (default: the node's default, raft). */
  readonly consensus?: string;
  /** More nodes, given ports and directories but not started: they join with `joinNode`. */
  readonly spare?: number;
  /** Extra `synod node` flags for every node. */
  readonly flags?: readonly string[];
  /** Extra `synod node` flags for node `id` alone (after `flags`). */
  readonly nodeFlags?: (id: number) => readonly string[];
  /**
   * Runs before any node starts, with the nodes (their data directories not yet created)
   * and the `--peers` list they will be started with: to seed their data directories.
   */
  readonly prepare?: (nodes: readonly NodeProcess[], peers: string) => Promise<void>;
}

export class ProcessCluster {
  readonly nodes: NodeProcess[] = [];
  readonly root: string;
  private readonly peerPorts: number[];
  private readonly flags: readonly string[];
  private readonly bootstrapSize: number;
  private readonly nodeFlags: (id: number) => readonly string[];

  private constructor(root: string, httpPorts: number[], peerPorts: number[], flags: readonly string[], bootstrapSize: number, nodeFlags: (id: number) => readonly string[] = () => []) {
    this.root = root;
    this.peerPorts = peerPorts;
    this.flags = flags;
    this.nodeFlags = nodeFlags;
    this.bootstrapSize = bootstrapSize;
    httpPorts.forEach((port, i) => {
      this.nodes.push({ id: i + 1, http: `http://127.0.0.1:${port}`, dataDir: join(root, `node-${i + 1}`), process: null, output: "", exit: null });
    });
  }

  static async start(options: ClusterOptions): Promise<ProcessCluster> {
    const total = options.size + (options.spare ?? 0);
    const ports = await freePorts(total * 2);
    const flags = [...(options.consensus === undefined ? [] : ["--consensus", options.consensus]), ...(options.flags ?? [])];
    const cluster = new ProcessCluster(mkdtempSync(join(tmpdir(), "synod-cluster-")), ports.slice(0, total), ports.slice(total), flags, options.size, options.nodeFlags);
    await options.prepare?.(cluster.nodes, cluster.bootstrapPeers());
    for (const node of cluster.nodes.slice(0, options.size)) cluster.startNode(node.id);
    return cluster;
  }

  node(id: number): NodeProcess {
    const node = this.nodes[id - 1];
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** Node `id`'s peer address, `127.0.0.1:PORT`, as a membership change names it. */
  peerAddress(id: number): string {
    const port = this.peerPorts[id - 1];
    if (port === undefined) throw new Error(`no node ${id}`);
    return `127.0.0.1:${port}`;
  }

  /** Starts (or restarts) node `id` with the same ports and data directory; `override` flags come last and win. */
  startNode(id: number, override: readonly string[] = []): NodeProcess {
    const node = this.node(id);
    if (node.process !== null) throw new Error(`node ${id} is running`);
    return this.spawnNode(node, ["--peers", this.bootstrapPeers(), ...override]);
  }

  /** The `--peers` list of the nodes that bootstrap the cluster. */
  bootstrapPeers(): string {
    return this.peerPorts.slice(0, this.bootstrapSize).map((port, i) => `${i + 1}=127.0.0.1:${port}`).join(",");
  }

  /** Starts node `id` with `--join` through the member at `via` (an HTTP URL), instead of `--peers`. */
  joinNode(id: number, via: string, override: readonly string[] = []): NodeProcess {
    const node = this.node(id);
    if (node.process !== null) throw new Error(`node ${id} is running`);
    return this.spawnNode(node, ["--join", via, ...override]);
  }

  /** Restarts node `id` with neither `--peers` nor `--join`: a node that joined needs neither. */
  restartJoined(id: number, override: readonly string[] = []): NodeProcess {
    const node = this.node(id);
    if (node.process !== null) throw new Error(`node ${id} is running`);
    return this.spawnNode(node, override);
  }

  private spawnNode(node: NodeProcess, extra: readonly string[]): NodeProcess {
    const id = node.id;
    const args = [SYNOD_BIN, "node", "--id", String(id), "--http", node.http.slice("http://".length), "--peer", `127.0.0.1:${this.peerPorts[id - 1]}`, "--data-dir", node.dataDir, "--log-level", "warn", ...this.flags, ...this.nodeFlags(id), ...extra];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    node.process = child;
    node.output = "";
    const collect = (chunk: Buffer): void => {
      node.output += chunk.toString("utf8");
      if (node.output.length > 200_000) node.output = node.output.slice(-100_000);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    node.exit = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        node.process = null;
        resolve({ code, signal });
      });
    });
    return node;
  }

  /** kill -9. */
  async kill(id: number): Promise<void> {
    const node = this.node(id);
    node.process?.kill("SIGKILL");
    await node.exit;
  }

  /** A clean stop (SIGTERM); resolves with the exit code. */
  async stop(id: number): Promise<number | null> {
    const node = this.node(id);
    node.process?.kill("SIGTERM");
    const exit = await node.exit;
    return exit?.code ?? null;
  }

  /** Waits (bounded) for node `id`'s process to exit by itself; its output and exit code. */
  async exited(id: number, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
    const node = this.node(id);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)));
    const exit = await Promise.race([node.exit, timeout]);
    clearTimeout(timer);
    if (exit === null) throw new Error(`node ${id} did not exit within ${timeoutMs} ms:\n${node.output.slice(-3000)}`);
    return { code: exit?.code ?? null, signal: exit?.signal ?? null, output: node.output };
  }

  async status(id: number): Promise<Status | null> {
    try {
      const response = await fetch(`${this.node(id).http}/v1/status`, { signal: AbortSignal.timeout(1000) });
      return (await response.json()) as Status;
    } catch {
      return null;
    }
  }

  /** The leader that every running node agrees on, waited for up to `timeoutMs`. */
  async waitForLeader(timeoutMs = 10_000, among: readonly number[] = this.nodes.map((node) => node.id)): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const statuses = await Promise.all(among.map((id) => this.status(id)));
      const leaders = new Set(statuses.map((status) => status?.leader ?? null));
      const leader = [...leaders][0];
      if (leaders.size === 1 && leader !== null && leader !== undefined && among.includes(leader) && statuses.some((status) => status?.role === "leader")) return leader;
      await sleep(50);
    }
    throw new Error(`no leader among ${among.join(",")} within ${timeoutMs} ms:\n${this.nodes.map((node) => `node ${node.id}: ${node.output.slice(-2000)}`).join("\n")}`);
  }

  /** Node `id`'s `GET /v1/shards`: the ranges as it sees them; null when it does not answer 200. */
  async shards(id: number): Promise<ShardView[] | null> {
    const answer = await request("GET", `${this.node(id).http}/v1/shards`).catch(() => null);
    return answer?.status === 200 ? (answer.body["shards"] as ShardView[]) : null;
  }

  /** Waits until node `via` sees `count` ranges, each with a leader. */
  async waitForRangeLeaders(count: number, timeoutMs = 15_000, via = 1): Promise<ShardView[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const shards = await this.shards(via);
      if (shards?.length === count && shards.every((shard) => shard.leader !== null)) return shards;
      if (Date.now() > deadline) throw new Error(`node ${via} does not see ${count} ranges with leaders after ${timeoutMs} ms: ${JSON.stringify(shards)}`);
      await sleep(50);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((node) => (node.process === null ? Promise.resolve() : this.kill(node.id))));
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** A range as `GET /v1/shards` shows it (docs/sharding.md): what the tests read of it. */
export interface ShardView {
  readonly id: number;
  readonly start: string;
  readonly end: string | null;
  readonly epoch: number;
  readonly leader: number | null;
  readonly replicas?: readonly number[];
  readonly keys: number;
  readonly appliedIndex: number;
  /** Transactions across ranges in flight in the range (prepared, not resolved). */
  readonly intents?: number;
}

/** What `GET /v1/status` answers (the client's view of it). */
export type Status = NodeStatus;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * `promise`'s outcome, or `fallback()`'s after `ms` if it has not settled by then. Unlike a
 * race with `sleep(ms)`, the timer goes with the race: a pending timer keeps a test file's
 * process alive until it fires (a race with a 60 s sleep cost a file 55 s after its tests).
 */
export async function within<T, F>(promise: Promise<T>, ms: number, fallback: () => F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<F>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(fallback());
      } catch (error) {
        reject(error as Error);
      }
    }, ms);
  });
  try {
    return await Promise.race([promise, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly text: string;
  readonly headers: Headers;
}

/** One HTTP request with a timeout; a connection failure answers status 0. */
export async function request(method: string, url: string, body?: string | Uint8Array, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  try {
    const response = await fetch(url, { method, ...(body === undefined ? {} : { body }), headers, signal: AbortSignal.timeout(8000) });
    const text = await response.text();
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON (a raw value)
    }
    return { status: response.status, body: parsed, text, headers: response.headers };
  } catch (error) {
    return { status: 0, body: { error: String(error) }, text: "", headers: new Headers() };
  }
}

/** Runs `synod ARGS...` to its end (bounded by `timeoutMs`, then killed); its exit code and output. */
export async function runSynod(args: readonly string[], timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const child = spawn(process.execPath, [SYNOD_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [code, signal] = (await new Promise((resolve) => child.once("exit", (...result) => resolve(result)))) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, signal, output };
}

/** What `runSynodApart` gives: the exit code, stdout and stderr apart, and how long it took. */
export interface SynodRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/**
 * `synod ARGS` to its end, stdout and stderr apart, killed after `timeoutMs`; run as a user
 * would, without the endpoints and CA the test process may have in its environment.
 */
export function runSynodApart(args: readonly string[], timeoutMs = 60_000): Promise<SynodRun> {
  const startedMs = Date.now();
  const env = { ...process.env };
  delete env["SYNOD_ENDPOINTS"];
  delete env["SYNOD_CACERT"];
  const child = spawn(process.execPath, [SYNOD_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve) =>
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - startedMs });
    }),
  );
}

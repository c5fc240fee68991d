/**
 * The nemesis's nodes: real `synod node` processes, each started with `ip netns exec` in its
 * own namespace. `ip netns exec` execs the command (the pid spawned is the node's), and each
 * node leads a process group of its own, so SIGKILL, SIGSTOP and SIGCONT go to the group and
 * reach the node whatever ip does. A node's output goes to a log file in its data directory.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync, type WriteStream } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NodeStatus } from "../client/api.js";
import type { Network } from "./netns.js";

const SYNOD_BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "synod.js");
const HTTP_PORT = 7001;
const PEER_PORT = 7101;

export interface NodeOptions {
  readonly consensus: "raft" | "paxos";
  /** Where each node's data directory (node-<id>) and log (node-<id>.log) go. */
  readonly root: string;
  readonly requestTimeoutMs: number;
}

interface RunningNode {
  child: ChildProcess;
  paused: boolean;
  exited: Promise<void>;
}

export class NemesisCluster {
  private readonly running = new Map<number, RunningNode>();
  private readonly logs = new Map<number, WriteStream>();

  constructor(
    private readonly network: Network,
    readonly size: number,
    private readonly options: NodeOptions,
  ) {}

  get ids(): number[] {
    return Array.from({ length: this.size }, (_, i) => i + 1);
  }

  url(id: number): string {
    return `http://${this.network.address(id)}:${HTTP_PORT}`;
  }

  dataDir(id: number): string {
    return join(this.options.root, `node-${id}`);
  }

  logFile(id: number): string {
    return join(this.options.root, `node-${id}.log`);
  }

  isRunning(id: number): boolean {
    return this.running.has(id);
  }

  isPaused(id: number): boolean {
    return this.running.get(id)?.paused === true;
  }

  /** Starts node `id` (again: same data directory, same address). */
  start(id: number): void {
    if (this.running.has(id)) throw new Error(`node ${id} is running`);
    mkdirSync(this.dataDir(id), { recursive: true });
    const peers = this.ids.map((peer) => `${peer}=${this.network.address(peer)}:${PEER_PORT}`).join(",");
    const argv = this.network.commandIn(id, [
      process.execPath, SYNOD_BIN, "node", "--id", String(id),
      "--http", `${this.network.address(id)}:${HTTP_PORT}`, "--peer", `${this.network.address(id)}:${PEER_PORT}`,
      "--peers", peers, "--data-dir", this.dataDir(id), "--consensus", this.options.consensus,
      "--request-timeout-ms", String(this.options.requestTimeoutMs), "--log-level", "warn", "--log-format", "json",
    ]);
    // SYNOD_STOP_WITH_PARENT: the node stops when its stdin closes, so a runner that dies
    // however it dies leaves no node behind (a paused one stops once continued, or is killed
    // by the next run's clean-up of leftovers).
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], detached: true, env: { ...process.env, SYNOD_STOP_WITH_PARENT: "1" } });
    let log = this.logs.get(id);
    if (log === undefined) this.logs.set(id, (log = createWriteStream(this.logFile(id), { flags: "a" })));
    log.write(`--- started at ${new Date().toISOString()}\n`);
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const node: RunningNode = { child, paused: false, exited };
    this.running.set(id, node);
    void exited.then(() => {
      if (this.running.get(id) === node) this.running.delete(id);
    });
  }

  /** kill -9 of node `id`'s process group; resolves once it has exited. */
  async kill(id: number): Promise<void> {
    const node = this.running.get(id);
    if (node === undefined) return;
    this.signal(node, "SIGKILL");
    await node.exited;
  }

  /**
   * SIGSTOP; resolves once the kernel reports the node's own process stopped (state T in
   * /proc), which proves the signal reached the node and not only a wrapper around it.
   */
  async pause(id: number): Promise<void> {
    const node = this.running.get(id);
    if (node === undefined || node.paused) return;
    this.signal(node, "SIGSTOP");
    node.paused = true;
    const pid = node.child.pid as number;
    const deadline = Date.now() + 2000;
    let state = processState(pid);
    while (state !== "T" && state !== null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      state = processState(pid);
    }
    const command = state === null ? null : readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    if (state !== null && (state !== "T" || command !== "node")) throw new Error(`SIGSTOP did not stop node ${id}'s process: pid ${pid} (${command}) is in state ${state}`);
  }

  resume(id: number): void {
    const node = this.running.get(id);
    if (node === undefined || !node.paused) return;
    this.signal(node, "SIGCONT");
    node.paused = false;
  }

  /** Node `id`'s own view, or null when it does not answer within `timeoutMs`. */
  async status(id: number, timeoutMs = 1000): Promise<NodeStatus | null> {
    try {
      const response = await fetch(`${this.url(id)}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
      return response.ok ? ((await response.json()) as NodeStatus) : null;
    } catch {
      return null;
    }
  }

  /** The node that says it leads, at the highest term among those that answer; null if none. */
  async leader(): Promise<number | null> {
    const statuses = await Promise.all(this.ids.filter((id) => this.isRunning(id) && !this.isPaused(id)).map((id) => this.status(id)));
    let best: NodeStatus | null = null;
    for (const status of statuses) if (status !== null && status.role === "leader" && (best === null || status.term > best.term)) best = status;
    return best?.id ?? null;
  }

  /** Waits up to `timeoutMs` for a leader; null if none. */
  async waitForLeader(timeoutMs: number): Promise<number | null> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const leader = await this.leader();
      if (leader !== null) return leader;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return null;
  }

  /** Kills every node (SIGKILL reaches a stopped process too) and waits for them to exit. */
  async killAll(): Promise<void> {
    await Promise.all([...this.running.keys()].map((id) => this.kill(id)));
    for (const log of this.logs.values()) log.end();
    this.logs.clear();
  }

  /** For a signal handler: SIGKILL to every node's group, at once, without waiting. */
  killAllNow(): void {
    for (const node of this.running.values()) this.signal(node, "SIGKILL");
  }

  /** Node `id`'s pid, while it runs. */
  pid(id: number): number | null {
    return this.running.get(id)?.child.pid ?? null;
  }

  private signal(node: RunningNode, signal: NodeJS.Signals): void {
    const pid = node.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // The group is gone: the node has already exited.
    }
  }
}

/** A process's state letter from /proc (R, S, D, T, Z, ...); null when it is gone. */
function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) S ...": the command may hold spaces and parentheses, the state follows the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return null;
  }
}

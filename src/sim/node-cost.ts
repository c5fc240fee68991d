/**
 * The per-node service-time model (`synod sim --node-cost-us N`; off by default): each
 * simulated node is one server that handles its inputs one at a time, in the order they
 * arrive, and each costs it virtual time. Without it a node handles any number of inputs
 * in the same instant, so more nodes cannot show more throughput; with it a node's
 * throughput is bounded, and a node that leads many groups becomes the bottleneck.
 *
 * What it models: the CPU a node spends on
 * - a peer message received: `inputMicros`, plus `entryMicros` for each log entry it carries
 *   (decoding, checking, appending; an append acknowledgement or a heartbeat carries none);
 * - a client request received (or one forwarded by another node): `inputMicros`;
 * - a disk sync completed: `inputMicros` (the write's completion, handed to every group that
 *   waited for it: one sync serves many groups with group commit).
 * An input waits while the node serves the ones before it; it takes effect (the replica
 * steps, its answers and messages leave) when its service ends. What the node then does
 * in the same instant (the replica's Ready loop, applying entries, answering clients) is
 * part of the input's cost. Timer ticks cost nothing (their heartbeats cost their
 * receivers). Deterministic: no draws, only the arrival order, which the seed fixes.
 *
 * What it leaves out: a node has one core (no parallel handling), sends cost nothing, a
 * disk's bandwidth is not modelled (a sync's latency is the seed's, however much it writes),
 * and a paused node's queued inputs replay for free on waking (pauses are a fault; cost
 * runs are about throughput). A crash loses the queue: inputs that arrived for an earlier
 * incarnation are dropped, and a new incarnation starts idle.
 */
import { assert } from "../core/common/assert.js";
import type { NodeId } from "../core/engine/contract.js";
import type { Scheduler } from "./scheduler.js";

/** What each input costs a node, in virtual microseconds. */
export interface NodeCostOptions {
  /** Every input: a peer message, a client request, a completed disk sync. */
  readonly inputMicros: number;
  /** Added for each log entry a peer message carries. */
  readonly entryMicros: number;
}

/** The largest cost an input may have (1 s): a larger one is a typo, and would stall every election. */
export const NODE_COST_MICROS_MAX = 1_000_000;

/** Why the cost options cannot run as asked, or null when they can. */
export function nodeCostConflict(options: NodeCostOptions): string | null {
  for (const [name, value] of [["--node-cost-us", options.inputMicros], ["--entry-cost-us", options.entryMicros]] as const) {
    if (!Number.isSafeInteger(value) || value < 0 || value > NODE_COST_MICROS_MAX) return `${name} must be an integer from 0 to ${NODE_COST_MICROS_MAX}, got ${value}`;
  }
  if (options.inputMicros === 0) return `--node-cost-us must be at least 1 (the cost of every input)${options.entryMicros > 0 ? "; --entry-cost-us goes with it" : ""}`;
  return null;
}

/** A node's server, as the model sees it: which incarnation it is serving, and until when. */
interface Server {
  incarnation: number;
  busyUntilMicros: number;
}

/** The log entries a peer message carries (a protocol's message with an `entries` list: Raft's append, Paxos's accept). */
export function entriesIn(message: unknown): number {
  if (typeof message !== "object" || message === null) return 0;
  const entries = (message as { readonly entries?: unknown }).entries;
  return Array.isArray(entries) ? entries.length : 0;
}

/**
 * Every node's server. `serve` queues an input behind the node's earlier ones and runs it
 * when its service ends; busy time is counted per node inside `[windowFromMicros,
 * windowToMicros)` (set by a throughput run), for the utilisation it reports.
 */
export class NodeCosts {
  private readonly servers = new Map<NodeId, Server>();
  private readonly busyInWindow = new Map<NodeId, number>();
  /** Inputs served over the run. */
  inputs = 0;
  /** The longest an input waited behind others, in microseconds. */
  waitMicrosMax = 0;
  private window: { readonly fromMicros: number; readonly toMicros: number } | null = null;

  constructor(
    private readonly options: NodeCostOptions,
    private readonly scheduler: Scheduler,
  ) {
    assert(nodeCostConflict(options) === null, `bad node cost options: ${nodeCostConflict(options)}`);
  }

  /** Counts each node's busy time in `[fromMicros, toMicros)` from now on. */
  measureBusyIn(fromMicros: number, toMicros: number): void {
    this.window = { fromMicros, toMicros };
  }

  /**
   * Queues an input of node `node` (its incarnation `incarnation` now) carrying `entries`
   * log entries; `action` runs when the node has served it, and not at all if the node has
   * crashed since (its queue was lost with it).
   */
  serve(node: { readonly id: NodeId; readonly incarnation: number; readonly up: boolean }, entries: number, action: () => void): void {
    const now = this.scheduler.now;
    let server = this.servers.get(node.id);
    if (server === undefined || server.incarnation !== node.incarnation) {
      server = { incarnation: node.incarnation, busyUntilMicros: now };
      this.servers.set(node.id, server);
    }
    const costMicros = this.options.inputMicros + entries * this.options.entryMicros;
    const start = Math.max(now, server.busyUntilMicros);
    const done = start + costMicros;
    server.busyUntilMicros = done;
    this.inputs++;
    this.waitMicrosMax = Math.max(this.waitMicrosMax, start - now);
    this.countBusy(node.id, start, done);
    const incarnation = node.incarnation;
    this.scheduler.at(done, () => {
      if (node.up && node.incarnation === incarnation) action();
    });
  }

  private countBusy(id: NodeId, start: number, done: number): void {
    if (this.window === null) return;
    const overlap = Math.min(done, this.window.toMicros) - Math.max(start, this.window.fromMicros);
    if (overlap > 0) this.busyInWindow.set(id, (this.busyInWindow.get(id) ?? 0) + overlap);
  }

  /** By node (ids 1..nodes): the share of the measured window it spent serving inputs, 0 to 1. */
  busyShares(nodes: number): number[] {
    const window = this.window;
    if (window === null) return [];
    const length = window.toMicros - window.fromMicros;
    return Array.from({ length: nodes }, (_, i) => Math.round(((this.busyInWindow.get(i + 1) ?? 0) / length) * 1000) / 1000);
  }
}

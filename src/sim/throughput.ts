/**
 * Throughput runs (`synod sim --throughput`): a closed-loop write load that keeps enough
 * writes in flight to saturate the cluster, over a fault-free, reliable world, measured
 * over a fixed virtual window — committed writes per virtual second, and their latency.
 * With the per-node service-time model (node-cost.ts) the numbers are bounded by what the
 * nodes can handle, so they show what more nodes and more ranges buy; without it, only
 * by the latencies of the links and the disk.
 *
 * The run is an ordinary run with fixed parameters (so a 3-node and a 9-node run of one seed
 * differ only in what they were asked): the engine's production defaults (not the seed's
 * tuning, which may send one entry per message), no faults, links that keep order and never lose
 * (0.1 ms + exp(0.4 ms) each way), a fast disk (fsync 0.1 ms + exp(0.2 ms)), `clients`
 * sticky clients writing (put only) one at a time with no think time, 8 keys per group,
 * one retry for a refused write (to the leader the refusal names), a snapshot every 1,000
 * entries. The fault phase is the warm-up (1 s: elections, clients learning the leaders);
 * the heal phase (nothing to heal) is the measured window. Every checker runs as in any
 * other run: linearizability and no lost writes per group, liveness (which needs writes 2 s
 * into the heal phase: the window is at least 2.5 s).
 */
import type { Operation } from "./history.js";
import { RELIABLE_LINK } from "./network.js";
import type { NodeCosts } from "./node-cost.js";
import type { SimParams } from "./params.js";

export interface ThroughputOptions {
  /** Closed-loop clients, each with one write in flight at a time. */
  readonly clients: number;
  /** The measured window of virtual time, after the warm-up. */
  readonly windowMicros: number;
}

/** What a throughput run measured, over its window. */
export interface ThroughputStats {
  readonly windowMicros: number;
  /** Writes acknowledged to their client inside the window. */
  readonly writes: number;
  readonly writesPerSecond: number;
  /** From the client's call to its answer, in virtual microseconds, of the writes counted. */
  readonly latencyMicrosP50: number;
  readonly latencyMicrosP99: number;
  /** Writes answered in the window with a refusal, or timed out, or left unanswered at its end. */
  readonly notAcknowledged: number;
  /** With the service-time model: by node, the share of the window it spent serving inputs. */
  readonly busyShares?: readonly number[];
}

export const THROUGHPUT_WARMUP_MICROS = 1_000_000;
export const THROUGHPUT_WINDOW_MICROS_MIN = 2_500_000;
export const THROUGHPUT_WINDOW_MICROS_MAX = 60_000_000;
/** Client ids run from 1001 and the lease clients' from 1501: at most 400 leaves room. */
export const THROUGHPUT_CLIENTS_MAX = 400;
const THROUGHPUT_KEYS_PER_GROUP = 8;

/** Why a throughput run cannot run as asked, or null when it can. */
export function throughputConflict(throughput: ThroughputOptions, asked: { readonly faults: readonly string[] | undefined; readonly scenario: string; readonly workload: string | undefined; readonly stateMachine: boolean; readonly hotGroups: number | undefined; readonly quiesce: boolean }): string | null {
  const { clients, windowMicros } = throughput;
  if (!Number.isSafeInteger(clients) || clients < 1 || clients > THROUGHPUT_CLIENTS_MAX) return `--clients must be an integer from 1 to ${THROUGHPUT_CLIENTS_MAX}, got ${clients}`;
  if (!Number.isSafeInteger(windowMicros) || windowMicros < THROUGHPUT_WINDOW_MICROS_MIN || windowMicros > THROUGHPUT_WINDOW_MICROS_MAX) return `--window-ms must be an integer from ${THROUGHPUT_WINDOW_MICROS_MIN / 1000} to ${THROUGHPUT_WINDOW_MICROS_MAX / 1000} (liveness is checked 2 s into it), got ${windowMicros / 1000}`;
  if (asked.faults !== undefined && asked.faults.length > 0) return "--throughput measures a fault-free cluster: leave out --faults (or give none)";
  if (asked.scenario !== "random" && asked.scenario !== "mixed") return `--throughput measures a fault-free cluster; scenario ${asked.scenario} brings its own faults`;
  if (asked.stateMachine || (asked.workload !== undefined && asked.workload !== "kv")) return "--throughput runs the KV workload only (its writes are what it counts)";
  if (asked.quiesce) return "--throughput measures the engines' production defaults; it does not run with --quiesce";
  if (asked.hotGroups !== undefined) return "--throughput spreads its writes over every group; it does not run with --hot-groups";
  return null;
}

/** A run's parameters, fixed for a throughput run (see the module's comment); the rest stay the seed's. */
export function throughputParams(params: SimParams, throughput: ThroughputOptions | undefined): SimParams {
  if (throughput === undefined) return params;
  const link = { ...RELIABLE_LINK, delayMinMicros: 100 };
  return {
    ...params,
    faults: [],
    clients: throughput.clients,
    roamingClients: 0,
    clientThinkMicrosMean: 0,
    clientRetries: 1,
    clientTimeoutMicros: 2_000_000,
    opMix: { get: 0, put: 1, delete: 0, cas: 0 },
    keys: THROUGHPUT_KEYS_PER_GROUP,
    nodeLink: link,
    clientLink: link,
    fsyncMicrosMin: 100,
    fsyncMicrosMean: 200,
    snapshotEveryEntries: 1000,
    historyRevisions: 500,
    faultPhaseMicros: THROUGHPUT_WARMUP_MICROS,
    healPhaseMicros: throughput.windowMicros,
  };
}

/** The value at `fraction` of the sorted `values` (nearest rank), 0 when empty. */
function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))] as number;
}

/**
 * What the window `[fromMicros, toMicros)` saw: the writes whose client was told they took
 * effect then, their rate and latency (from call to answer), and the writes that were not.
 */
export function measureThroughput(history: readonly Operation[], fromMicros: number, toMicros: number, costs: NodeCosts | undefined, nodes: number): ThroughputStats {
  const latencies: number[] = [];
  let notAcknowledged = 0;
  for (const op of history) {
    if (op.op === "get") continue;
    const answered = op.status === "ok" && op.return >= fromMicros && op.return < toMicros;
    if (answered) latencies.push(op.return - op.call);
    else if (op.status !== "ok" && op.call < toMicros && op.return >= fromMicros) notAcknowledged++;
  }
  latencies.sort((a, b) => a - b);
  const windowMicros = toMicros - fromMicros;
  return {
    windowMicros,
    writes: latencies.length,
    writesPerSecond: Math.round((latencies.length / windowMicros) * 1e6),
    latencyMicrosP50: percentile(latencies, 0.5),
    latencyMicrosP99: percentile(latencies, 0.99),
    notAcknowledged,
    ...(costs === undefined ? {} : { busyShares: costs.busyShares(nodes) }),
  };
}

/** A run's `stats.throughput` (none: `{}`), over the heal phase: the window. */
export function throughputStats(throughput: ThroughputOptions | undefined, history: readonly Operation[], costs: NodeCosts | undefined, params: SimParams): { readonly throughput?: ThroughputStats } {
  if (throughput === undefined) return {};
  return { throughput: measureThroughput(history, params.faultPhaseMicros, params.faultPhaseMicros + params.healPhaseMicros, costs, params.nodes) };
}

/** One line for a person: the rate, the latencies, and how busy each node was. */
export function describeThroughput(stats: ThroughputStats): string {
  const ms = (micros: number): string => `${(micros / 1000).toFixed(1)} ms`;
  const busy = stats.busyShares === undefined ? "" : `; nodes busy ${stats.busyShares.map((share) => `${Math.round(share * 100)}%`).join(" ")}`;
  return `${stats.writesPerSecond} writes/s (${stats.writes} in ${ms(stats.windowMicros)}), latency p50 ${ms(stats.latencyMicrosP50)} p99 ${ms(stats.latencyMicrosP99)}, ${stats.notAcknowledged} not acknowledged${busy}`;
}

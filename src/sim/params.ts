import { Prng } from "../core/common/prng.js";
import type { LinkModel } from "./network.js";

export const FAULT_CLASSES = ["drop", "duplicate", "reorder", "delay", "partition", "crash", "pause"] as const;
export type FaultClass = (typeof FAULT_CLASSES)[number];

/** Every parameter of a run. All of them derive from the seed (and the chosen fault classes). */
export interface SimParams {
  readonly seed: number;
  readonly nodes: number;
  /**
   * The first this many nodes bootstrap the cluster as its voters; the others start empty,
   * outside the configuration, for a scenario to add (membership changes).
   */
  readonly bootstrapVoters: number;
  readonly clients: number;
  readonly keys: number;
  readonly tickMicros: number;
  /** Per node: its tick interval relative to the nominal one (clock drift), e.g. 1.01. */
  readonly clockRates: readonly number[];
  readonly nodeLink: LinkModel;
  readonly clientLink: LinkModel;
  readonly fsyncMicrosMin: number;
  readonly fsyncMicrosMean: number;
  readonly tornWriteProbability: number;
  /** Each node snapshots its state machine and compacts its log every this many entries (0: never). */
  readonly snapshotEveryEntries: number;
  /** Revisions of MVCC history the KV store keeps (the leader compacts older ones); 0: all. */
  readonly historyRevisions: number;
  readonly faultPhaseMicros: number;
  readonly healPhaseMicros: number;
  readonly faultIntervalMicrosMean: number;
  readonly faults: readonly FaultClass[];
  readonly clientTimeoutMicros: number;
  /**
   * How often a client sends a write again (same session, same sequence, another node)
   * after a timeout or a refusal, before it gives up on it: 0 to 3. Client sessions must
   * make every retried write take effect once.
   */
  readonly clientRetries: number;
  /** How many of the clients roam (a random node per request) rather than stick to the leader. */
  readonly roamingClients: number;
  /** The scenario the run plays (see scenarios.ts): its nemesis and its own checks. */
  readonly scenario: string;
  readonly clientThinkMicrosMean: number;
  /** Share of operations by kind: get, put, delete, cas (cumulative thresholds are derived). */
  readonly opMix: { readonly get: number; readonly put: number; readonly delete: number; readonly cas: number };
  /** The engine configuration the seed chose (for protocols that offer tuning), described. */
  readonly engineTuning: string;
  /**
   * How many consensus groups every node hosts (`synod sim --groups`, default 1), each over
   * the same members and `keys` keys of its own. Asked for, not drawn from the seed.
   */
  readonly groups: number;
}

export interface ParamOptions {
  readonly faults?: readonly FaultClass[];
  /** Forces the cluster size (a protocol that runs only on one node, or a user's choice). */
  readonly nodes?: number;
}

export function deriveParams(seed: number, options: ParamOptions = {}): SimParams {
  const prng = new Prng(seed);
  const faults = options.faults ?? FAULT_CLASSES;
  const has = (fault: FaultClass): boolean => faults.includes(fault);
  const nodes = options.nodes ?? prng.pick([3, 3, 5]);
  const delayMinMicros = prng.int(50, 500);
  const nodeLink: LinkModel = {
    delayMinMicros,
    delayMeanMicros: has("delay") ? prng.int(200, 5000) : 300,
    dropProbability: has("drop") ? prng.pick([0, 0.01, 0.05, 0.1]) : 0,
    duplicateProbability: has("duplicate") ? prng.pick([0, 0.01, 0.05]) : 0,
    longDelayProbability: has("reorder") ? prng.pick([0, 0.01, 0.05]) : 0,
    longDelayMaxMicros: prng.chance(0.3) ? prng.int(400_000, 2_000_000) : prng.int(50_000, 400_000),
  };
  // A client's link is one TCP connection: it loses and delays, never duplicates. Retried
  // requests applied twice are a real problem, solved by client sessions, not by the network.
  const clientLink: LinkModel = {
    ...nodeLink,
    duplicateProbability: 0,
    dropProbability: nodeLink.dropProbability / 2,
    longDelayProbability: nodeLink.longDelayProbability / 2,
  };
  const opMix = prng.pick([
    { get: 0.4, put: 0.3, delete: 0.1, cas: 0.2 },
    { get: 0.7, put: 0.2, delete: 0.05, cas: 0.05 },
    { get: 0.25, put: 0.35, delete: 0.1, cas: 0.3 },
  ]);
  const clients = prng.int(2, 6);
  const drawn: SimParams = {
    seed,
    nodes,
    bootstrapVoters: nodes,
    clients,
    roamingClients: prng.pick([0, Math.ceil(clients / 2), clients]),
    scenario: "mixed",
    keys: prng.int(1, 5),
    tickMicros: 10_000,
    clockRates: Array.from({ length: nodes }, () => 1 + (prng.float() - 0.5) * 0.02),
    nodeLink,
    clientLink,
    fsyncMicrosMin: prng.int(50, 500),
    fsyncMicrosMean: prng.int(100, 3000),
    tornWriteProbability: 0.3,
    snapshotEveryEntries: prng.pick([0, 5, 20, 100]),
    faultPhaseMicros: prng.int(5, 15) * 1_000_000,
    healPhaseMicros: 5_000_000,
    faultIntervalMicrosMean: prng.int(200, 1500) * 1000,
    faults,
    clientTimeoutMicros: prng.int(300, 1500) * 1000,
    clientThinkMicrosMean: prng.int(1, 20) * 1000,
    opMix,
    // Drawn last, so the draws above (and the seeds' runs they shape) stay as they were.
    clientRetries: prng.pick([0, 0, 1, 3]),
    historyRevisions: prng.pick([0, 50, 500]),
    engineTuning: "defaults",
    groups: 1,
  };
  // History kept in full ("all") only where snapshots are rare: every snapshot carries the
  // retained history, so one every 5 or 20 entries of a history that never shrinks costs time
  // quadratic in the run (one seed took a minute, nearly all of it encoding snapshots).
  const frequentSnapshots = drawn.snapshotEveryEntries === 5 || drawn.snapshotEveryEntries === 20;
  return frequentSnapshots && drawn.historyRevisions === 0 ? { ...drawn, historyRevisions: 500 } : drawn;
}

/** The parameters as short `name=value` lines, for the run's header and its report. */
export function describeParams(params: SimParams): string[] {
  const link = params.nodeLink;
  const ms = (micros: number): string => `${(micros / 1000).toFixed(1)}ms`;
  return [
    `seed=${params.seed} scenario=${params.scenario} nodes=${params.nodes}${params.bootstrapVoters < params.nodes ? ` (${params.bootstrapVoters} bootstrap voters)` : ""} clients=${params.clients} keys=${params.keys}${params.groups > 1 ? ` groups=${params.groups} (${params.keys} key(s) each)` : ""}`,
    `faults=${params.faults.join(",") || "none"}`,
    `network: delay=${ms(link.delayMinMicros)}+exp(${ms(link.delayMeanMicros)}) drop=${link.dropProbability} dup=${link.duplicateProbability} reorder=${link.longDelayProbability} (up to ${ms(link.longDelayMaxMicros)})`,
    `disk: fsync=${ms(params.fsyncMicrosMin)}+exp(${ms(params.fsyncMicrosMean)}) torn=${params.tornWriteProbability} snapshot-every=${params.snapshotEveryEntries || "never"} history=${params.historyRevisions || "all"}`,
    `phases: fault=${ms(params.faultPhaseMicros)} heal=${ms(params.healPhaseMicros)} fault-every~${ms(params.faultIntervalMicrosMean)}`,
    `engine: ${params.engineTuning}`,
    `clients: roaming=${params.roamingClients}/${params.clients} timeout=${ms(params.clientTimeoutMicros)} retries=${params.clientRetries} think~${ms(params.clientThinkMicrosMean)} mix=get:${params.opMix.get},put:${params.opMix.put},delete:${params.opMix.delete},cas:${params.opMix.cas}`,
  ];
}

/**
 * What a simulator scenario is made of: the context its nemesis and checks act through,
 * the scenario's shape, and the helpers the catalogue's scenarios share (parameter
 * presets, quorum arithmetic, the commit and transfer allowances, the serving windows a
 * progress check is conditioned on). The catalogue itself is in scenarios.ts.
 */
import type { Prng } from "../core/common/prng.js";
import type { EngineStatus, Membership, MembershipChange, NodeId, TuningHints } from "../core/engine/contract.js";
import { PARTITION_SHAPES, RELIABLE_LINK, type LinkModel, type PartitionShape } from "./network.js";
import { formatTime } from "./history.js";
import type { ServingWindow } from "./opportunity.js";
import type { FaultClass, SimParams } from "./params.js";
import type { SplitApplied } from "./node-splits.js";

/** What a scenario's nemesis and checks may do and see. Times are virtual microseconds. */
export interface ScenarioContext {
  readonly params: SimParams;
  /** The fault stream: every random choice a scenario makes draws from it. */
  readonly prng: Prng;
  readonly nodeIds: readonly NodeId[];
  now(): number;
  /** Runs `action` after `delayMicros`, unless the fault phase has ended by then. */
  during(delayMicros: number, action: () => void): void;
  /** Runs `action` again and again, exp(`meanMicros`) apart, until the fault phase ends. */
  repeat(meanMicros: number, action: () => void): void;
  /** The up node leading the highest term, if any. */
  leader(): NodeId | null;
  isUp(id: NodeId): boolean;
  status(id: NodeId): EngineStatus | null;
  /** Crashes a node now; it restarts after a random 0.1–3 s unless `restart` is "never". */
  crash(id: NodeId, restart?: "later" | "never"): void;
  /** Crashes a node inside its next fsync (after its messages left, before its write is durable). */
  armCrash(id: NodeId): void;
  restart(id: NodeId): void;
  /** Asks node `from` to change the configuration; false if not taken (not the leader, a change in flight). */
  changeMembership(from: NodeId, change: MembershipChange): boolean;
  /** The configuration node `id` acts on (null: down, or an engine without membership). */
  membership(id: NodeId): Membership | null;
  /** Asks node `from` to hand its leadership to `to` (null: its pick); false if not taken. */
  transferLeadership(from: NodeId, to: NodeId | null): boolean;
  pause(id: NodeId, micros: number): void;
  partition(shape: PartitionShape): void;
  /** Nodes talk only within their group. */
  partitionGroups(groups: readonly (readonly NodeId[])[]): void;
  healPartition(): void;
  /** Keeps every packet sent from `from` to `to` on the wire (a stalled connection) ... */
  holdLink(from: NodeId, to: NodeId): void;
  /** ... until released: then they arrive, in the order sent. The heal releases every link. */
  releaseLink(from: NodeId, to: NodeId): void;
  isPartitioned(): boolean;
  /**
   * Node-to-node messages sent so far, by kind: their description up to " term=" (for Raft
   * "append", "append ok", "append rejected", "vote request", "pre-vote granted", ...).
   */
  messagesByKind(): ReadonlyMap<string, number>;
  /** How many nodes sent a message of a kind matching `pattern` (as messagesByKind counts them). */
  messageSenders(pattern: RegExp): number;
  /** Snapshots each node installed from a leader, so far. */
  snapshotInstalls(id: NodeId): number;
  /** The serving windows so far (see opportunity.ts), the last one cut off now. */
  servingWindows(): readonly ServingWindow[];
  /**
   * The largest group of `among`, holding `including` and at least `minimum` strong, whose
   * members were all running and linked with each other throughout [from, to] (empty: none).
   */
  connectedGroup(fromMicros: number, toMicros: number, among: readonly NodeId[], minimum: number, including?: readonly NodeId[]): NodeId[];
  /** Configuration entries committed so far (the first time any node applied one). */
  configsCommitted(): readonly { readonly index: number; readonly atMicros: number }[];
  /** The term of a node's log entry at `index` (null: not held, or the node is down). */
  entryTerm(id: NodeId, index: number): number | null;
  /** Calls `watcher` each time a node's status may have changed (after each of its Readies), until the heal. */
  onStatus(watcher: (id: NodeId, status: EngineStatus) => void): void;
  /** Calls `watcher` each time a node applies a split (`--splits`), until the heal: from inside the apply, so a fault it causes must wait for `during`. */
  onSplitApplied(watcher: (split: SplitApplied) => void): void;
  /** Leaderships seen so far (a node leading a term counts once). */
  leaderTerms(): number;
  /** Fails the run with a scenario-specific violation. */
  fail(message: string): never;
  /** Adds a line to the run's story (trace and failure report): why a check did not apply, say. */
  note(text: string): void;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** How often `random` picks it, relative to the others (0: only when asked for by name). */
  readonly weight: number;
  /** Whether it needs engines that compact their logs (its checks are about snapshots). */
  readonly needsCompaction?: boolean;
  /** Whether its faults are about splits (`--splits`; without them it would test nothing). */
  readonly needsSplits?: boolean;
  /** Whether it changes the cluster's membership (engines that reconfigure only). */
  readonly needsMembership?: boolean;
  /**
   * The protocols it applies to, when not every one: its checks are about one protocol's
   * mechanics (Raft's message names, its commit rule). Absent: any protocol.
   */
  readonly protocols?: readonly string[];
  /** Whether its checks read `messagesByKind` (counting costs a description per message). */
  readonly countsMessages?: boolean;
  /** What the seed-drawn engine configuration should favour (see TuningHints). */
  readonly tuning?: TuningHints;
  /** Adjusts the seed's parameters: cluster size, network, fault classes, snapshots. */
  readonly params?: (params: SimParams, prng: Prng) => SimParams;
  /** Starts the nemesis (it schedules its own events) and any checks of its own. */
  readonly start: (ctx: ScenarioContext) => void;
}

// ---- parameter helpers ----

/** A network that delivers everything, promptly and in order-ish; no fault classes. */
export function reliable(params: SimParams): SimParams {
  return { ...params, faults: [], nodeLink: RELIABLE_LINK, clientLink: RELIABLE_LINK };
}

/** A network that drops, duplicates and reorders, with long delays (up to 2 s). */
export function unreliable(params: SimParams, prng: Prng): SimParams {
  const nodeLink: LinkModel = {
    delayMinMicros: 100,
    delayMeanMicros: prng.int(500, 3000),
    dropProbability: prng.pick([0.02, 0.1]),
    duplicateProbability: prng.pick([0.01, 0.05]),
    longDelayProbability: prng.pick([0.02, 0.1]),
    longDelayMaxMicros: prng.int(200_000, 2_000_000),
  };
  return { ...params, nodeLink, clientLink: { ...nodeLink, duplicateProbability: 0, dropProbability: nodeLink.dropProbability / 2 } };
}

export function withNodes(params: SimParams, nodes: number, prng: Prng): SimParams {
  if (params.nodes === nodes) return params;
  return { ...params, nodes, bootstrapVoters: nodes, clockRates: Array.from({ length: nodes }, () => 1 + (prng.float() - 0.5) * 0.02) };
}

/** Narrows the fault classes; the network keeps only the misbehaviours still listed. */
export function withFaults(params: SimParams, faults: readonly FaultClass[]): SimParams {
  const narrow = (link: LinkModel): LinkModel => ({
    ...link,
    dropProbability: faults.includes("drop") ? link.dropProbability : 0,
    duplicateProbability: faults.includes("duplicate") ? link.duplicateProbability : 0,
    longDelayProbability: faults.includes("reorder") ? link.longDelayProbability : 0,
    delayMeanMicros: faults.includes("delay") ? link.delayMeanMicros : Math.min(link.delayMeanMicros, 300),
  });
  return { ...params, faults, nodeLink: narrow(params.nodeLink), clientLink: narrow(params.clientLink) };
}

export function quorum(ctx: ScenarioContext): number {
  return Math.floor(ctx.nodeIds.length / 2) + 1;
}

export function upCount(ctx: ScenarioContext): number {
  return ctx.nodeIds.filter((id) => ctx.isUp(id)).length;
}

export function followers(ctx: ScenarioContext): NodeId[] {
  const leader = ctx.leader();
  return ctx.nodeIds.filter((id) => id !== leader && ctx.isUp(id));
}

/** Cuts `id` off from every other node (replacing any partition). */
export function isolate(ctx: ScenarioContext, id: NodeId): void {
  ctx.partitionGroups([[id], ctx.nodeIds.filter((other) => other !== id)]);
}

/** Runs a scenario's own check just before the fault phase ends. */
export function atFaultPhaseEnd(ctx: ScenarioContext, check: () => void): void {
  ctx.during(ctx.params.faultPhaseMicros - 1000, check);
}

export function countKinds(ctx: ScenarioContext, pattern: RegExp): number {
  let count = 0;
  for (const [kind, n] of ctx.messagesByKind()) if (pattern.test(kind)) count += n;
  return count;
}

export function maxCommit(ctx: ScenarioContext): number {
  let max = 0;
  for (const id of ctx.nodeIds) max = Math.max(max, ctx.status(id)?.commitIndex ?? 0);
  return max;
}

/**
 * Checks, `afterMicros` from now, that a leader other than `deposed` leads a higher term —
 * when the run let a majority without it elect one: nodes running and linked with each
 * other all along.
 */
export function expectNewLeader(ctx: ScenarioContext, deposed: NodeId, term: number, afterMicros: number): void {
  const cutMicros = ctx.now();
  ctx.during(afterMicros, () => {
    const leader = ctx.leader();
    const status = leader === null ? null : ctx.status(leader);
    if (leader !== null && leader !== deposed && status !== null && status.term > term) return;
    const group = ctx.connectedGroup(cutMicros, ctx.now(), ctx.nodeIds.filter((id) => id !== deposed), quorum(ctx));
    if (group.length === 0) return; // no majority could elect: the run offered no chance
    ctx.fail(`no new leader ${afterMicros / 1000} ms after leader ${deposed} (term ${term}) was cut off, though nodes ${group.join(",")} were running and linked with each other from ${formatTime(cutMicros)} on`);
  });
}

/**
 * How long a leader with a connected majority, in a run without faults, may take to commit
 * at all. Everyone starts together there, so no follower has a backlog to catch up: a
 * commit takes a round trip or two. 1 s is a wide margin.
 */
export const COMMIT_ALLOWANCE_MICROS = 1_000_000;
/** Snapshots a node may install in snapshot-catch-up: one to come back, one more if leadership moved meanwhile. */
export const SNAPSHOT_CATCH_UP_INSTALLS_MAX = 2;

/** The longest serving window (see opportunity.ts) in which `id`, if given, stayed reachable; null if none. */
export function longestWindow(ctx: ScenarioContext, id: NodeId | null = null, fromMicros = 0): ServingWindow | null {
  let best: ServingWindow | null = null;
  for (const window of ctx.servingWindows()) {
    if (id !== null && !window.reachable.includes(id)) continue;
    const clipped = window.fromMicros >= fromMicros ? window : window.toMicros > fromMicros ? { ...window, fromMicros } : null;
    if (clipped !== null && (best === null || clipped.toMicros - clipped.fromMicros > best.toMicros - best.fromMicros)) best = clipped;
  }
  return best;
}

/** The longest serving window, if it lasted long enough for a commit; null otherwise. */
export function commitChance(ctx: ScenarioContext, id: NodeId | null = null, fromMicros = 0): ServingWindow | null {
  const window = longestWindow(ctx, id, fromMicros);
  return window !== null && window.toMicros - window.fromMicros >= COMMIT_ALLOWANCE_MICROS ? window : null;
}

// ---- the random nemeses ----

/** Any enabled fault at random: partitions of every shape, crashes, pauses. */
export function mixedNemesis(ctx: ScenarioContext): void {
  const classes = ctx.params.faults.filter((f) => f === "crash" || f === "pause" || (f === "partition" && ctx.nodeIds.length > 1));
  if (classes.length === 0) return;
  const prng = ctx.prng;
  ctx.repeat(ctx.params.faultIntervalMicrosMean, () => {
    const up = ctx.nodeIds.filter((id) => ctx.isUp(id));
    switch (prng.pick(classes)) {
      case "partition":
        if (ctx.isPartitioned() && prng.chance(0.4)) ctx.healPartition();
        else ctx.partition(prng.pick(PARTITION_SHAPES));
        return;
      case "crash": {
        if (up.length === 0) return;
        const leader = ctx.leader();
        const victim = leader !== null && prng.chance(0.5) ? leader : prng.pick(up);
        // Half the crashes strike at once, half inside the victim's next fsync.
        if (prng.chance(0.5)) ctx.crash(victim);
        else ctx.armCrash(victim);
        return;
      }
      case "pause":
        if (up.length > 0) ctx.pause(prng.pick(up), prng.int(50_000, 2_000_000));
        return;
      default:
        return;
    }
  });
}

/** Crashes every node at once (some inside an fsync) and restarts them all soon after. */
export function restartAllNemesis(ctx: ScenarioContext): void {
  ctx.repeat(1_500_000, () => {
    for (const id of ctx.nodeIds) {
      if (!ctx.isUp(id)) continue;
      if (ctx.prng.chance(0.3)) ctx.armCrash(id);
      else ctx.crash(id, "never");
    }
    ctx.during(ctx.prng.int(50_000, 500_000), () => {
      for (const id of ctx.nodeIds) if (!ctx.isUp(id)) ctx.restart(id);
    });
  });
}

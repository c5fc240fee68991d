/**
 * Simulator scenarios: what the nemesis does during the fault phase, and what must hold
 * besides the standard checkers (linearizability, no lost write, liveness after healing,
 * and the engine invariants the protocol claims). Each scenario runs over many seeds;
 * `random` — the default — lets each seed pick one, so a long run covers them all.
 *
 * The catalogue follows the classic Raft test suites (the paper's sections, the MIT
 * 6.5840 labs, etcd-io/raft's tests): elections, agreement, failures, partitions, Figure 8,
 * churn, snapshots — each as a fault schedule plus the property it is there to show.
 */
import type { Prng } from "../core/common/prng.js";
import type { EngineStatus, Membership, MembershipChange, NodeId, TuningHints } from "../core/engine/contract.js";
import { isMember } from "../core/engine/membership.js";
import { PARTITION_SHAPES, RELIABLE_LINK, type LinkModel, type PartitionShape } from "./network.js";
import { formatTime } from "./history.js";
import { SIM_CATCH_UP_ENTRIES } from "./node.js";
import { describeWindow, type ServingWindow } from "./opportunity.js";
import type { FaultClass, SimParams } from "./params.js";

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
function reliable(params: SimParams): SimParams {
  return { ...params, faults: [], nodeLink: RELIABLE_LINK, clientLink: RELIABLE_LINK };
}

/** A network that drops, duplicates and reorders, with long delays (up to 2 s). */
function unreliable(params: SimParams, prng: Prng): SimParams {
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

function withNodes(params: SimParams, nodes: number, prng: Prng): SimParams {
  if (params.nodes === nodes) return params;
  return { ...params, nodes, bootstrapVoters: nodes, clockRates: Array.from({ length: nodes }, () => 1 + (prng.float() - 0.5) * 0.02) };
}

/** Narrows the fault classes; the network keeps only the misbehaviours still listed. */
function withFaults(params: SimParams, faults: readonly FaultClass[]): SimParams {
  const narrow = (link: LinkModel): LinkModel => ({
    ...link,
    dropProbability: faults.includes("drop") ? link.dropProbability : 0,
    duplicateProbability: faults.includes("duplicate") ? link.duplicateProbability : 0,
    longDelayProbability: faults.includes("reorder") ? link.longDelayProbability : 0,
    delayMeanMicros: faults.includes("delay") ? link.delayMeanMicros : Math.min(link.delayMeanMicros, 300),
  });
  return { ...params, faults, nodeLink: narrow(params.nodeLink), clientLink: narrow(params.clientLink) };
}

function quorum(ctx: ScenarioContext): number {
  return Math.floor(ctx.nodeIds.length / 2) + 1;
}

function upCount(ctx: ScenarioContext): number {
  return ctx.nodeIds.filter((id) => ctx.isUp(id)).length;
}

function followers(ctx: ScenarioContext): NodeId[] {
  const leader = ctx.leader();
  return ctx.nodeIds.filter((id) => id !== leader && ctx.isUp(id));
}

/** Cuts `id` off from every other node (replacing any partition). */
function isolate(ctx: ScenarioContext, id: NodeId): void {
  ctx.partitionGroups([[id], ctx.nodeIds.filter((other) => other !== id)]);
}

/** Runs a scenario's own check just before the fault phase ends. */
function atFaultPhaseEnd(ctx: ScenarioContext, check: () => void): void {
  ctx.during(ctx.params.faultPhaseMicros - 1000, check);
}

function countKinds(ctx: ScenarioContext, pattern: RegExp): number {
  let count = 0;
  for (const [kind, n] of ctx.messagesByKind()) if (pattern.test(kind)) count += n;
  return count;
}

function maxCommit(ctx: ScenarioContext): number {
  let max = 0;
  for (const id of ctx.nodeIds) max = Math.max(max, ctx.status(id)?.commitIndex ?? 0);
  return max;
}

/**
 * Checks, `afterMicros` from now, that a leader other than `deposed` leads a higher term —
 * when the run let a majority without it elect one: nodes running and linked with each
 * other all along.
 */
function expectNewLeader(ctx: ScenarioContext, deposed: NodeId, term: number, afterMicros: number): void {
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
const COMMIT_ALLOWANCE_MICROS = 1_000_000;
/** Snapshots a node may install in snapshot-catch-up: one to come back, one more if leadership moved meanwhile. */
const SNAPSHOT_CATCH_UP_INSTALLS_MAX = 2;

/** The longest serving window (see opportunity.ts) in which `id`, if given, stayed reachable; null if none. */
function longestWindow(ctx: ScenarioContext, id: NodeId | null = null, fromMicros = 0): ServingWindow | null {
  let best: ServingWindow | null = null;
  for (const window of ctx.servingWindows()) {
    if (id !== null && !window.reachable.includes(id)) continue;
    const clipped = window.fromMicros >= fromMicros ? window : window.toMicros > fromMicros ? { ...window, fromMicros } : null;
    if (clipped !== null && (best === null || clipped.toMicros - clipped.fromMicros > best.toMicros - best.fromMicros)) best = clipped;
  }
  return best;
}

/** The longest serving window, if it lasted long enough for a commit; null otherwise. */
function commitChance(ctx: ScenarioContext, id: NodeId | null = null, fromMicros = 0): ServingWindow | null {
  const window = longestWindow(ctx, id, fromMicros);
  return window !== null && window.toMicros - window.fromMicros >= COMMIT_ALLOWANCE_MICROS ? window : null;
}

// ---- the random nemeses ----

/** Any enabled fault at random: partitions of every shape, crashes, pauses. */
function mixedNemesis(ctx: ScenarioContext): void {
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

/** Keeps deposing leaders: isolate or crash whoever leads, every few hundred milliseconds. */
/**
 * Leadership transfer under faults: the leader is asked again and again to hand over, to a
 * chosen member or one it picks, while crashes and partitions strike now and then, so
 * transfers race with elections, lost timeout-now messages and deposed leaders. Every
 * checker runs as usual; the scenario also asks that leadership did move.
 */
function leaderTransferNemesis(ctx: ScenarioContext): void {
  const canPartition = ctx.params.faults.includes("partition") && ctx.nodeIds.length > 1;
  const canCrash = ctx.params.faults.includes("crash");
  const transfers: Transfer[] = [];
  const leaderships = watchLeaderships(ctx);
  ctx.repeat(ctx.params.faultIntervalMicrosMean, () => {
    const roll = ctx.prng.float();
    if (ctx.isPartitioned() && roll < 0.5) return ctx.healPartition();
    const leader = ctx.leader();
    if (leader === null) return;
    if (roll < 0.8) {
      const others = ctx.nodeIds.filter((id) => id !== leader);
      const to = ctx.prng.chance(0.25) ? null : ctx.prng.pick(others);
      const request = { atMicros: ctx.now(), leader, term: ctx.status(leader)?.term ?? 0, to };
      if (ctx.transferLeadership(leader, to)) transfers.push(request);
    } else if (canCrash && roll < 0.9) ctx.crash(ctx.prng.pick(ctx.nodeIds));
    else if (canPartition) ctx.partition(ctx.prng.pick(["isolate-leader", "isolate-one", "split"] as const));
  });
  atFaultPhaseEnd(ctx, () => {
    const chances = transfers.map((t) => ({ transfer: t, chance: transferOpportunity(ctx, t) })).filter((c) => c.chance !== null);
    const moved = chances.filter(({ transfer: t }) => leaderships.some((l) => l.leader !== t.leader && l.term > t.term && l.atMicros > t.atMicros && l.atMicros <= t.atMicros + TRANSFER_ALLOWANCE_MICROS));
    if (chances.length >= TRANSFER_CHANCES_MIN && moved.length === 0) {
      ctx.fail(`${transfers.length} transfers were started, ${chances.length} of them with every chance to succeed, and leadership moved within ${formatTime(TRANSFER_ALLOWANCE_MICROS)} of none; the first: ${chances[0]?.chance}`);
    }
  });
}

interface Transfer extends Request {
  /** The member asked for, or null for the leader's pick. */
  readonly to: NodeId | null;
}

/** Every leadership seen during the fault phase: who, which term, from when. */
function watchLeaderships(ctx: ScenarioContext): readonly { readonly leader: NodeId; readonly term: number; readonly atMicros: number }[] {
  const seen: { leader: NodeId; term: number; atMicros: number }[] = [];
  const keys = new Set<string>();
  ctx.onStatus((id, status) => {
    if (status.role !== "leader" || keys.has(`${id}:${status.term}`)) return;
    keys.add(`${id}:${status.term}`);
    seen.push({ leader: id, term: status.term, atMicros: ctx.now() });
  });
  return seen;
}

/**
 * How long a transfer may take: the target catches up (the leader takes no proposals
 * meanwhile), is told to campaign, and wins one round of votes. Raft abandons a transfer
 * after an election timeout (100–200 ms here); 1 s is a wide margin.
 */
const TRANSFER_ALLOWANCE_MICROS = 1_000_000;
/** A correct engine may abandon a transfer whose target lags too far: only a pattern counts. */
const TRANSFER_CHANCES_MIN = 2;

/**
 * Why transfer `t` had every chance to move leadership, or null if it had not: the leader
 * was settled in a serving window when asked, and for TRANSFER_ALLOWANCE_MICROS after it, a
 * majority of the nodes including the leader and the target stayed running and linked with
 * each other (the target could learn the log, campaign and win).
 */
function transferOpportunity(ctx: ScenarioContext, t: Transfer): string | null {
  const window = ctx.servingWindows().find((w) => w.leader === t.leader && w.term === t.term && w.fromMicros <= t.atMicros && t.atMicros < w.toMicros);
  if (window === undefined || window.settledMicros === null || window.settledMicros > t.atMicros) return null;
  const end = t.atMicros + TRANSFER_ALLOWANCE_MICROS;
  if (end >= ctx.now()) return null;
  const needed = t.to === null ? [t.leader] : [t.leader, t.to];
  const group = ctx.connectedGroup(t.atMicros, end, ctx.nodeIds, quorum(ctx), needed);
  if (group.length === 0) return null;
  return `node ${t.leader} (term ${t.term}, settled at ${formatTime(window.settledMicros)}) was asked at ${formatTime(t.atMicros)} to hand over to ${t.to === null ? "its pick" : `node ${t.to}`}, and nodes ${group.join(",")} stayed running and linked with each other until ${formatTime(end)}`;
}

const NO_CONTEXT = new Uint8Array(0);


/**
 * Random reconfigurations (thesis chapter 4) of a cluster of 5 or 6 nodes that starts with
 * 3 voters, mixed with every fault of the mixed nemesis. Every few hundred ms the leader is
 * asked for one change: add a learner (half of them marked for automatic promotion),
 * promote one, add or remove a voter, remove itself, replace several voters at once
 * (joint consensus, left automatically or on a later request), or hand leadership over.
 * Requests come whether or not the previous change has committed: refusing them is the
 * engine's job.
 */
function reconfigurationNemesis(ctx: ScenarioContext): void {
  mixedNemesis(ctx);
  const prng = ctx.prng;
  /** Every change asked for, and every transfer: a leader handing over may refuse changes meanwhile. */
  const requests: Request[] = [];
  const transfers: Request[] = [];
  let leaderless = 0;
  ctx.repeat(ctx.params.faultIntervalMicrosMean / 2, () => {
    const leader = ctx.leader();
    const m = leader === null ? null : ctx.membership(leader);
    if (leader === null || m === null) {
      leaderless++;
      return;
    }
    const asked = (list: Request[]): void => {
      list.push({ atMicros: ctx.now(), leader, term: ctx.status(leader)?.term ?? 0 });
    };
    const ask = (voters: readonly NodeId[], learners: readonly NodeId[], extra: Partial<MembershipChange> = {}): void => {
      asked(requests);
      ctx.changeMembership(leader, { voters, learners, context: NO_CONTEXT, ...extra });
    };
    if (m.outgoing.length > 0) {
      if (!m.autoLeave && prng.chance(0.5)) ask(m.voters, m.learners);
      return;
    }
    const outsiders = ctx.nodeIds.filter((id) => !isMember(m, id));
    const without = (list: readonly NodeId[], id: NodeId): NodeId[] => list.filter((x) => x !== id);
    const roll = prng.float();
    if (roll < 0.2 && outsiders.length > 0) {
      const id = prng.pick(outsiders);
      ask(m.voters, [...m.learners, id], { autoPromote: prng.chance(0.5) ? [...m.autoPromote, id] : m.autoPromote });
    } else if (roll < 0.32 && m.learners.length > 0) {
      const id = prng.pick(m.learners);
      ask([...m.voters, id], without(m.learners, id), { autoPromote: without(m.autoPromote, id) });
    } else if (roll < 0.42 && outsiders.length > 0) {
      ask([...m.voters, prng.pick(outsiders)], m.learners, { autoPromote: m.autoPromote });
    } else if (roll < 0.57 && m.voters.length > 1) {
      const victim = prng.pick([...m.voters, ...m.learners]);
      ask(without(m.voters, victim), without(m.learners, victim), { autoPromote: without(m.autoPromote, victim) });
    } else if (roll < 0.65 && m.voters.length > 1) {
      ask(without(m.voters, leader), m.learners, { autoPromote: m.autoPromote }); // the leader removes itself
    } else if (roll < 0.8) {
      const size = prng.int(1, Math.min(5, ctx.nodeIds.length));
      const voters = prng.shuffle([...ctx.nodeIds]).slice(0, size);
      const learners = m.learners.filter((id) => !voters.includes(id));
      ask(voters, learners, { joint: true, autoLeave: prng.chance(0.7), autoPromote: m.autoPromote.filter((id) => learners.includes(id)) });
    } else {
      asked(transfers);
      ctx.transferLeadership(leader, prng.chance(0.3) ? null : prng.pick(m.voters));
    }
  });
  atFaultPhaseEnd(ctx, () => {
    if (ctx.configsCommitted().length > 0) return;
    const chance = changeOpportunity(ctx, requests, transfers);
    if (chance !== null) ctx.fail(`no configuration change committed in the fault phase, though the run offered the chance: ${chance}`);
    const longest = longestWindow(ctx);
    const settled = longest === null ? "" : longest.settledMicros === null ? ", never settled" : `, settled at ${formatTime(longest.settledMicros)}`;
    ctx.note(
      `no configuration change committed, and none of ${requests.length} request(s) (${leaderless} more times there was no leader to ask) had the chance: a leader settled in a serving window that lasted ${formatTime(CHANGE_COMMIT_ALLOWANCE_MICROS)} more` +
        ` (the longest serving window: ${longest === null ? "none" : `${describeWindow(longest)}${settled}`})`,
    );
  });
}

/** A request of the nemesis to a leader: when, to whom, in which of its terms. */
interface Request {
  readonly atMicros: number;
  readonly leader: NodeId;
  readonly term: number;
}

/**
 * How long a settled leader may take to commit a requested configuration change. Measured
 * on the correct engine over seeds 1-300 of this scenario (208 requests with the chance),
 * after the replica core and pipelined Readies: p99 131 ms, at most 631 ms (seed 197: a
 * joint change whose new majority waited on a follower caught up one entry per message,
 * one message in flight); 1 s leaves a margin.
 */
const CHANGE_COMMIT_ALLOWANCE_MICROS = 1_000_000;

/**
 * The first request that had every chance to produce a committed change, described; null
 * if there was none. A chance: the leader was asked in a serving window (it and a majority
 * of its configuration running and linked, see opportunity.ts) after it had settled
 * (committed an entry of its term, so the change is not refused for that), had not been
 * asked to hand over in that term (a transfer under way refuses changes), and the window
 * lasted at least CHANGE_COMMIT_ALLOWANCE_MICROS more. A change that is refused because
 * another is in flight is no excuse: that one commits in such a window.
 */
function changeOpportunity(ctx: ScenarioContext, requests: readonly Request[], transfers: readonly Request[]): string | null {
  const windows = ctx.servingWindows();
  for (const request of requests) {
    const window = windows.find((w) => w.leader === request.leader && w.term === request.term && w.fromMicros <= request.atMicros && request.atMicros < w.toMicros);
    if (window === undefined || window.settledMicros === null || window.settledMicros > request.atMicros) continue;
    if (window.toMicros - request.atMicros < CHANGE_COMMIT_ALLOWANCE_MICROS) continue;
    if (transfers.some((t) => t.leader === request.leader && t.term === request.term && t.atMicros <= request.atMicros)) continue;
    const settled = `it had committed an entry of its term at ${formatTime(window.settledMicros)}`;
    return `${describeWindow(window)}; ${settled}, and was asked for a change at ${formatTime(request.atMicros)}, ${formatTime(window.toMicros - request.atMicros)} before the window closed (a settled leader commits a change within ${formatTime(CHANGE_COMMIT_ALLOWANCE_MICROS)})`;
  }
  return null;
}

/**
 * The history two configuration changes in flight allow (thesis 4.1): the leader L of
 * {L,A,B} is cut off with the two empty nodes X and Y, and asked at once to add X, then Y.
 * Were both accepted, {L,X,Y} would be a majority of {L,A,B,X,Y} and commit writes that
 * {A,B}, a majority of {L,A,B} that never heard of either change, elect a leader without.
 * Done: only the first may be taken, and L's side commits nothing until the partition
 * heals. Repeated every 3 s, with the partition lifted for the last second of each cycle.
 */
function membershipAdversary(ctx: ScenarioContext): void {
  for (let t = 400_000; t + 2_600_000 < ctx.params.faultPhaseMicros; t += 3_000_000) {
    ctx.during(t, () => {
      const leader = ctx.leader();
      const m = leader === null ? null : ctx.membership(leader);
      if (leader === null || m === null || m.outgoing.length > 0) return;
      const others = m.voters.filter((id) => id !== leader);
      const outsiders = ctx.nodeIds.filter((id) => !isMember(m, id));
      const [x, y] = outsiders;
      if (x === undefined || y === undefined) return;
      ctx.partitionGroups([[leader, ...outsiders], [...others, ...m.learners]]);
      ctx.changeMembership(leader, { voters: [...m.voters, x], learners: [], context: NO_CONTEXT });
      ctx.changeMembership(leader, { voters: [...m.voters, x, y], learners: [], context: NO_CONTEXT });
    });
    ctx.during(t + 1_600_000, () => ctx.healPartition());
    // Back to three voters for the next round: the leader removes what it added, if it can.
    ctx.during(t + 2_000_000, () => {
      const leader = ctx.leader();
      const m = leader === null ? null : ctx.membership(leader);
      if (leader === null || m === null || m.outgoing.length > 0 || m.voters.length <= 3) return;
      const keep = m.voters.slice(0, 3).includes(leader) ? m.voters.slice(0, 3) : [leader, ...m.voters.filter((id) => id !== leader).slice(0, 2)];
      ctx.changeMembership(leader, { voters: keep, learners: [], joint: true, context: NO_CONTEXT });
    });
  }
}

/**
 * The history counting learners' votes allows: the leader L of {L,A,B} gets two learners X
 * and Y, then is cut off with A, while B is cut off with the learners. L goes on committing
 * with A. B campaigns; were the learners' votes counted, B, X and Y would make it a leader
 * that lacks L's latest commits. Done: B cannot win. Repeated every 3 s.
 */
function learnerVoteAdversary(ctx: ScenarioContext): void {
  for (let t = 300_000; t + 2_700_000 < ctx.params.faultPhaseMicros; t += 3_000_000) {
    const addLearner = (): void => {
      const leader = ctx.leader();
      const m = leader === null ? null : ctx.membership(leader);
      if (leader === null || m === null) return;
      const outsider = ctx.nodeIds.find((id) => !isMember(m, id));
      if (outsider !== undefined) ctx.changeMembership(leader, { voters: m.voters, learners: [...m.learners, outsider], context: NO_CONTEXT });
    };
    ctx.during(t, addLearner);
    ctx.during(t + 300_000, addLearner);
    ctx.during(t + 600_000, () => {
      const leader = ctx.leader();
      const m = leader === null ? null : ctx.membership(leader);
      if (leader === null || m === null || m.learners.length < 2) return;
      const [a, b] = m.voters.filter((id) => id !== leader);
      if (a === undefined || b === undefined) return;
      ctx.partitionGroups([[leader, a], [b, ...m.learners]]);
    });
    ctx.during(t + 2_000_000, () => ctx.healPartition());
    ctx.during(t + 2_400_000, () => {
      const leader = ctx.leader();
      const m = leader === null ? null : ctx.membership(leader);
      if (leader !== null && m !== null && m.learners.length > 0 && m.outgoing.length === 0) ctx.changeMembership(leader, { voters: m.voters, learners: [], context: NO_CONTEXT });
    });
  }
}

/**
 * Leadership transfer against a lease: the leader L is asked to hand over to T while every
 * link into L holds its packets, so L keeps its lease clock running from the last answers it
 * got and never hears of T's term. T wins at once (its voters waive L's lease for a
 * transfer) and takes writes; clients of L keep reading. Had L kept its lease, it would
 * answer them from a state T's writes have left behind. The links open after 400 ms.
 */
function transferLeaseAdversary(ctx: ScenarioContext): void {
  // The old leader must not hear that it was succeeded: from the start every answer to it is
  // held but the target's (whose acknowledgements the transfer waits for: holding them too
  // would stall the handover, as it did for most seeds), and the target's from the moment it
  // campaigns (its status shows the new term before that Ready's messages leave). Meanwhile
  // the old leader's clients keep reading the one key the others' clients write.
  let pending: { readonly leader: NodeId; readonly target: NodeId; readonly term: number } | null = null;
  ctx.onStatus((id, status) => {
    if (pending === null || id !== pending.target || status.term <= pending.term) return;
    ctx.holdLink(pending.target, pending.leader);
    pending = null;
  });
  for (let t = 300_000; t + 1_000_000 < ctx.params.faultPhaseMicros; t += 1_000_000) {
    ctx.during(t, () => {
      const leader = ctx.leader();
      const term = leader === null ? null : ctx.status(leader)?.term;
      if (leader === null || term === undefined || term === null) return;
      const others = ctx.nodeIds.filter((id) => id !== leader);
      const target = ctx.prng.pick(others);
      for (const other of others) if (other !== target) ctx.holdLink(other, leader);
      if (ctx.transferLeadership(leader, target)) pending = { leader, target, term };
      ctx.during(400_000, () => {
        pending = null;
        for (const other of others) ctx.releaseLink(other, leader);
      });
    });
  }
}

function leaderChurnNemesis(ctx: ScenarioContext): void {
  const canPartition = ctx.params.faults.includes("partition") && ctx.nodeIds.length > 1;
  const canCrash = ctx.params.faults.includes("crash");
  ctx.repeat(ctx.params.faultIntervalMicrosMean, () => {
    const leader = ctx.leader();
    const roll = ctx.prng.float();
    if (leader === null || (ctx.isPartitioned() && roll < 0.4)) {
      if (ctx.isPartitioned()) ctx.healPartition();
      return;
    }
    if (canPartition && (!canCrash || roll < 0.75)) {
      ctx.partition("isolate-leader");
      if (canCrash && ctx.prng.chance(0.5)) {
        // The others are about to elect: a crash inside a voter's next fsync hits the
        // durable vote, the write that one-vote-per-term rests on.
        const voters = followers(ctx);
        if (voters.length > 0) ctx.armCrash(ctx.prng.pick(voters));
      }
    } else if (canCrash) {
      if (ctx.prng.chance(0.5)) ctx.crash(leader);
      else ctx.armCrash(leader);
    }
  });
}

/**
 * Raft's Figure 8 history, generalised (as in the MIT labs' Figure 8 tests): leaders crash
 * again and again soon after election, with the others restarted just often enough to keep a
 * quorum sometimes up, so logs diverge across many terms and a new leader often holds
 * entries of earlier terms it must not commit by counting.
 */
function figure8Nemesis(ctx: ScenarioContext): void {
  // The adversary also watches for the moment Figure 8 is about: a leader whose commit
  // index has just moved onto an entry of an earlier term. A correct leader never does that
  // (it commits older entries only together with one of its own term), so this never
  // fires on a correct engine; when it does, the leader is cut off at once, before its own
  // entries spread, and a rival with a newer last term may win and overwrite.
  // It also cuts off some leaders the moment they are elected, before their term's first
  // entry spreads: the node keeps an entry of a newer term nobody else has (Figure 8's S5),
  // which later lets it win an election against logs holding older committed entries.
  const lastCommit = new Map<NodeId, number>();
  const leadTerm = new Map<NodeId, number>();
  ctx.onStatus((id, status) => {
    const previous = lastCommit.get(id) ?? 0;
    lastCommit.set(id, status.commitIndex);
    if (status.role === "leader" && leadTerm.get(id) !== status.term) {
      leadTerm.set(id, status.term);
      if (!ctx.isPartitioned() && ctx.prng.chance(0.3)) {
        isolate(ctx, id);
        ctx.during(ctx.prng.int(50_000, 300_000), () => ctx.healPartition());
        return;
      }
    }
    if (status.role !== "leader" || status.commitIndex <= previous || ctx.isPartitioned()) return;
    const term = ctx.entryTerm(id, status.commitIndex);
    if (term !== null && term < status.term) {
      isolate(ctx, id);
      ctx.during(ctx.prng.int(200_000, 800_000), () => ctx.healPartition());
    }
  });
  ctx.repeat(ctx.prng.int(30_000, 150_000), () => {
    const leader = ctx.leader();
    if (leader !== null && ctx.prng.chance(0.6)) {
      if (ctx.prng.chance(0.5)) ctx.crash(leader, "never");
      else ctx.armCrash(leader);
    }
    if (upCount(ctx) < quorum(ctx) || ctx.prng.chance(0.3)) {
      const down = ctx.nodeIds.filter((id) => !ctx.isUp(id));
      if (down.length > 0) ctx.restart(ctx.prng.pick(down));
    }
  });
}

/**
 * Figure 8 staged by an adversary that watches the cluster, in cycles of 2.5 s:
 * (a) the leader A and one follower B are cut off from the other three; A takes writes it
 *     can replicate to B only;
 * (b) the moment the three elect a leader S, S is cut off alone — its term's first entry
 *     reaches nobody (a partition also drops what is in flight);
 * (c) A and B rejoin the remaining two; one of them leads a newer term and brings its old
 *     entries to them. If its commit index ever lands on an entry of an older term (which a
 *     correct leader never does), it is cut off at once
 * (d) and S rejoins the others: its last term is newer than theirs, so it can win and
 *     overwrite what they hold — which the cut-off leader already applied.
 */
function figure8Adversary(ctx: ScenarioContext): void {
  let stage: "idle" | "split" | "old-leader" | "done" = "idle";
  let s: NodeId | null = null;
  let cycleTerm = 0;
  const lastCommit = new Map<NodeId, number>();
  ctx.onStatus((id, status) => {
    const previousCommit = lastCommit.get(id) ?? 0;
    lastCommit.set(id, status.commitIndex);
    if (status.role !== "leader" || status.term <= cycleTerm) return;
    if (stage === "split") {
      // (b) a new leader on the majority side: cut it off before its entry spreads.
      s = id;
      cycleTerm = status.term;
      stage = "old-leader";
      isolate(ctx, id);
    } else if (stage === "old-leader" && id !== s) {
      const term = ctx.entryTerm(id, status.commitIndex);
      if (term !== null && term < status.term && status.commitIndex > previousCommit) {
        // (c) caught committing an older entry by counting: (d) cut it off, let S back in.
        stage = "done";
        isolate(ctx, id);
      }
    }
  });
  for (let cycle = 0; (cycle + 1) * 2_500_000 < ctx.params.faultPhaseMicros; cycle++) {
    const t = cycle * 2_500_000;
    ctx.during(t + 200_000, () => {
      const a = ctx.leader();
      if (a === null) return;
      const b = ctx.prng.pick(ctx.nodeIds.filter((id) => id !== a));
      cycleTerm = ctx.status(a)?.term ?? 0;
      stage = "split";
      s = null;
      ctx.partitionGroups([[a, b], ctx.nodeIds.filter((id) => id !== a && id !== b)]);
    });
    ctx.during(t + 2_300_000, () => {
      stage = "idle";
      ctx.healPartition();
    });
  }
}

/**
 * Stale answers staged on purpose, in cycles of 3 s, after the scripted test "a leader
 * ignores append answers from an earlier term":
 * (a) the leader A and a follower B are cut off from the rest; A takes writes and sends them
 *     to B, whose answers stay on the wire (a stalled connection);
 * (b) at 0.3 s B joins the majority, whose new leader rewrites B's log;
 * (c) at 0.45 s A rejoins too and its log is rewritten the same way — now shorter than the
 *     one A had in (a), when clients were writing to it;
 * (d) from 0.55 s every new leader other than A is cut off the moment it is elected, until A
 *     leads; (e) then B's old answers arrive, claiming entries neither A nor B holds any more.
 */
function staleAnswersAdversary(ctx: ScenarioContext): void {
  const others = (id: NodeId): NodeId[] => ctx.nodeIds.filter((other) => other !== id);
  let stage: "idle" | "a" | "b" | "hunt" = "idle";
  let a: NodeId | null = null;
  let b: NodeId | null = null;
  /** A's last index and term when it was cut off with B: the entries B's held answers claim. */
  let claimed = { index: 0, term: 0 };
  let cutTerm = 0;
  const release = (): void => {
    if (a !== null && b !== null) ctx.releaseLink(b, a);
  };
  const rewritten = (id: NodeId): boolean => ctx.entryTerm(id, claimed.index) !== claimed.term;
  ctx.onStatus((id, status) => {
    if (a === null || b === null) return;
    if (stage === "a" && status.role === "leader" && id !== a && status.term > claimed.term) {
      // (b) the majority elected M: B joins it (A stays alone), so M rewrites B's log.
      stage = "b";
      cutTerm = status.term;
      isolate(ctx, a);
    } else if (stage === "b" && rewritten(b)) {
      // (c) B's log no longer holds A's entries: A rejoins, M is cut off.
      stage = "hunt";
      const m = ctx.leader();
      if (m !== null && m !== a) isolate(ctx, m);
      else ctx.healPartition();
    } else if (stage === "hunt" && status.role === "leader" && status.term > cutTerm) {
      if (id === a) {
        // (e) A leads again, with a rewritten log: B's old answers arrive now.
        stage = "idle";
        release();
      } else if (rewritten(a)) {
        // (d) a leader other than A, once it has rewritten A's log too, is cut off.
        cutTerm = status.term;
        isolate(ctx, id);
      }
    }
  });
  for (let t = 300_000; t + 2_900_000 < ctx.params.faultPhaseMicros; t += 3_000_000) {
    ctx.during(t, () => {
      a = ctx.leader();
      if (a === null) return;
      const leader = a;
      const status = ctx.status(leader);
      b = ctx.prng.pick(others(leader));
      // (a) A and B alone; B's answers stall on the wire.
      stage = "a";
      ctx.partitionGroups([[leader, b], others(leader).filter((id) => id !== b)]);
      ctx.holdLink(b, leader);
      ctx.during(250_000, () => {
        const last = ctx.status(leader)?.lastIndex ?? 0;
        claimed = { index: last, term: ctx.entryTerm(leader, last) ?? status?.term ?? 0 };
      });
    });
    ctx.during(t + 2_700_000, () => {
      stage = "idle";
      release();
      ctx.healPartition();
    });
  }
}

/**
 * A promise that answers an older ballot arrives late (the MyPaxos #18 history), in cycles
 * of 3 s on three nodes: every link into node C holds its packets, so C hears no leader and
 * prepares; the other two promise it (no lease holds them back: CheckQuorum and probes are
 * off), their answers stuck on the wire. C freezes while the two elect a leader of their own
 * and choose values; it wakes, campaigns again at a higher ballot, and then the held answers
 * arrive — promises to its old ballot first. Counted toward the new ballot, one of them
 * completes a majority that reports nothing of what was chosen meanwhile, and C's proposals
 * overwrite it. A correct candidate waits for promises to the ballot it runs.
 */
function stalePromiseAdversary(ctx: ScenarioContext): void {
  for (let t = 300_000; t + 2_900_000 < ctx.params.faultPhaseMicros; t += 3_000_000) {
    let c: NodeId | null = null;
    const others = (): NodeId[] => ctx.nodeIds.filter((id) => id !== c);
    ctx.during(t, () => {
      const leader = ctx.leader();
      if (leader === null) return;
      c = ctx.prng.pick(ctx.nodeIds.filter((id) => id !== leader));
      for (const other of others()) ctx.holdLink(other, c);
    });
    ctx.during(t + 700_000, () => {
      if (c !== null) ctx.pause(c, 900_000);
    });
    ctx.during(t + 1_800_000, () => {
      if (c === null) return;
      for (const other of others()) ctx.releaseLink(other, c);
      c = null;
    });
  }
}

/**
 * An acceptance lost in a crash (PMS 2.3: an acceptor answers only once what it accepted is
 * durable), every 1.5 s on three nodes with clients writing: follower A is set to crash
 * inside its next fsync — after the Ready's early messages left, before its writes are
 * durable — while the leader's accepts to the third node B are held on the wire. Had A
 * answered before its slot was durable, the leader would choose the slot with A and answer
 * its client; then the leader is cut off, A restarts without the slot, and A and B elect a
 * leader that puts something else there.
 */
function lostAcceptanceAdversary(ctx: ScenarioContext): void {
  for (let t = 200_000; t + 1_400_000 < ctx.params.faultPhaseMicros; t += 1_500_000) {
    let cut: { leader: NodeId; a: NodeId; b: NodeId } | null = null;
    ctx.during(t, () => {
      const leader = ctx.leader();
      if (leader === null) return;
      const [a, b] = ctx.prng.shuffle(ctx.nodeIds.filter((id) => id !== leader));
      if (a === undefined || b === undefined) return;
      cut = { leader, a, b };
      ctx.holdLink(leader, b);
      ctx.armCrash(a);
    });
    ctx.during(t + ctx.prng.int(60_000, 150_000), () => {
      if (cut === null) return;
      ctx.partitionGroups([[cut.leader], [cut.a, cut.b]]);
      ctx.releaseLink(cut.leader, cut.b);
      ctx.restart(cut.a);
    });
    ctx.during(t + 1_200_000, () => {
      cut = null;
      ctx.healPartition();
    });
  }
}

/**
 * The leader's own acceptance, lost: one follower is cut off while the leader and the other
 * choose values, the leader crashes inside one of its fsyncs (slow disks, so answers come
 * back while it runs), and the follower that was cut off elects a new leader with the
 * restarted one. A leader that counted its own acceptance before it was durable announced a
 * slot chosen that only the third node holds, and the new leader fills it differently.
 */
function ownAcceptanceAdversary(ctx: ScenarioContext): void {
  for (let t = 200_000; t + 1_400_000 < ctx.params.faultPhaseMicros; t += 1_500_000) {
    let cut: { leader: NodeId; a: NodeId; b: NodeId } | null = null;
    ctx.during(t, () => {
      const leader = ctx.leader();
      if (leader === null) return;
      const [a, b] = ctx.prng.shuffle(ctx.nodeIds.filter((id) => id !== leader));
      if (a === undefined || b === undefined) return;
      cut = { leader, a, b };
      ctx.partitionGroups([[leader, a], [b]]);
      ctx.armCrash(leader);
    });
    ctx.during(t + ctx.prng.int(60_000, 150_000), () => {
      if (cut === null) return;
      ctx.partitionGroups([[cut.a], [cut.leader, cut.b]]);
      ctx.restart(cut.leader);
    });
    ctx.during(t + 1_200_000, () => {
      cut = null;
      ctx.healPartition();
    });
  }
}

/** Any node crashes, restarts, is cut off or rejoins, every ~100 ms. */
function churnNemesis(ctx: ScenarioContext): void {
  ctx.repeat(100_000, () => {
    const prng = ctx.prng;
    const up = ctx.nodeIds.filter((id) => ctx.isUp(id));
    const down = ctx.nodeIds.filter((id) => !ctx.isUp(id));
    const roll = prng.float();
    if (roll < 0.3 && up.length > 0) ctx.crash(prng.pick(up), "never");
    else if (roll < 0.6 && down.length > 0) ctx.restart(prng.pick(down));
    else if (roll < 0.8) ctx.partition(prng.pick(["isolate-one", "isolate-leader", "split"] as const));
    else ctx.healPartition();
  });
}

/** Crashes every node at once (some inside an fsync) and restarts them all soon after. */
function restartAllNemesis(ctx: ScenarioContext): void {
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

// ---- the catalogue ----

export const SCENARIOS: readonly Scenario[] = [
  {
    name: "mixed",
    description: "any enabled fault at random: partitions of every shape, crashes (half inside an fsync), pauses, over a lossy network",
    weight: 12,
    start: mixedNemesis,
  },
  {
    name: "leader-churn",
    description: "keeps deposing leaders, isolating or crashing whoever leads every few hundred ms, crashing voters inside the vote's fsync",
    weight: 5,
    params: (p, prng) => ({ ...withNodes(p, prng.pick([3, 5, 5]), prng), faultIntervalMicrosMean: prng.int(80, 300) * 1000 }),
    start: leaderChurnNemesis,
  },
  {
    name: "leader-transfer",
    description: "hands leadership from member to member every few hundred ms (thesis 3.10), on a lossy network with crashes and partitions",
    weight: 3,
    params: (p, prng) => ({ ...withNodes(p, prng.pick([3, 5]), prng), faultIntervalMicrosMean: prng.int(100, 400) * 1000 }),
    start: leaderTransferNemesis,
  },
  {
    name: "reconfiguration",
    needsMembership: true,
    description: "random membership changes — learners, promotions, adds, removes (the leader's too), joint changes, transfers — under every fault (chapter 4)",
    weight: 4,
    params: (p, prng) => ({ ...withNodes(p, prng.pick([5, 6]), prng), bootstrapVoters: 3, faultIntervalMicrosMean: prng.int(200, 800) * 1000 }),
    start: reconfigurationNemesis,
  },
  {
    name: "membership-adversary",
    needsMembership: true,
    description: "a leader cut off with two empty nodes is asked to add both at once: a second change in flight would let them commit writes the old majority elects a leader without (4.1)",
    weight: 2,
    // Sticky clients keep writing to the cut-off leader.
    params: (p, prng) => ({ ...withFaults(reliable(withNodes(p, 5, prng)), ["partition"]), bootstrapVoters: 3, roamingClients: 0 }),
    start: membershipAdversary,
  },
  {
    name: "learner-vote-adversary",
    needsMembership: true,
    description: "a voter cut off with two learners campaigns while the leader commits with the other voter: learners' votes must not make it leader (4.2.1)",
    weight: 2,
    params: (p, prng) => ({ ...withFaults(reliable(withNodes(p, 5, prng)), ["partition"]), bootstrapVoters: 3, roamingClients: 0 }),
    start: learnerVoteAdversary,
  },
  {
    name: "transfer-lease-adversary",
    description: "a leader with a lease hands over while every answer to it is held on the wire: it must not go on serving lease reads once its successor writes (3.10, 6.4.1)",
    weight: 2,
    tuning: { checkQuorum: true, leaseReads: true },
    // Clients stay with their node, so some keep reading from the old leader: mostly reads
    // (a write sent to it waits there until the client gives up), of one key.
    params: (p, prng) => ({ ...withFaults(reliable(withNodes(p, prng.pick([3, 5]), prng)), ["partition", "delay"]), roamingClients: 0, clientThinkMicrosMean: 3000, keys: 1, opMix: { get: 0.95, put: 0.05, delete: 0, cas: 0 } }),
    start: transferLeaseAdversary,
  },
  {
    name: "stale-promise-adversary",
    protocols: ["paxos"],
    description: "promises to a candidate's old ballot are held on the wire while others choose values, and arrive when it campaigns again: they must not count (MyPaxos #18)",
    weight: 2,
    tuning: { checkQuorum: false, preVote: false },
    params: (p, prng) => ({ ...withFaults(reliable(withNodes(p, 3, prng)), ["partition", "pause", "delay"]), clientThinkMicrosMean: 2000 }),
    start: stalePromiseAdversary,
  },
  {
    name: "lost-acceptance-adversary",
    protocols: ["paxos"],
    description: "a follower crashes inside the fsync of an acceptance, the leader is cut off, and the crashed node elects a new leader with the third: an acceptance sent before it was durable loses a chosen value (PMS 2.3)",
    weight: 2,
    params: (p, prng) => ({ ...withFaults(reliable(withNodes(p, 3, prng)), ["partition", "crash"]), clientThinkMicrosMean: 1000, roamingClients: 0 }),
    start: lostAcceptanceAdversary,
  },
  {
    name: "own-acceptance-adversary",
    protocols: ["paxos"],
    description: "the leader crashes inside the fsync of its own acceptance while one follower is cut off, and that follower elects a new leader with the restarted one: a leader that counted its acceptance before it was durable loses a chosen value (Ongaro's thesis 10.2.1)",
    weight: 2,
    params: (p, prng) => ({ ...withFaults(reliable(withNodes(p, 3, prng)), ["partition", "crash"]), fsyncMicrosMin: 2_000, fsyncMicrosMean: 4_000, clientThinkMicrosMean: 1000, roamingClients: 0 }),
    start: ownAcceptanceAdversary,
  },
  {
    name: "initial-election",
    protocols: ["raft"],
    countsMessages: true,
    description: "a healthy cluster elects one leader, within a message budget, and then no other (5.2)",
    weight: 1,
    params: (p) => reliable(p),
    start: (ctx) => {
      const n = ctx.nodeIds.length;
      atFaultPhaseEnd(ctx, () => {
        if (ctx.leaderTerms() > 1) ctx.fail(`${ctx.leaderTerms()} leaderships on a healthy network; one election should have been enough`);
        if (ctx.leaderTerms() === 0) {
          const group = ctx.connectedGroup(0, ctx.now(), ctx.nodeIds, quorum(ctx));
          if (group.length > 0) ctx.fail(`no leader elected, though nodes ${group.join(",")} were running and linked with each other from the start`);
        }
        // A PreVote and a vote round, each a request and an answer per peer, per node whose
        // timer ran out before it heard a leader — two nodes, or more when timers fire
        // together (randomized timeouts make that rare, not impossible) — and each once more
        // after a split vote. Beyond that, an engine campaigns or answers more than it must.
        const electionMessages = countKinds(ctx, /^(pre-)?vote /);
        const candidates = Math.max(2, ctx.messageSenders(/^(pre-)?vote request/));
        const budget = 2 * 4 * (n - 1) * candidates;
        if (electionMessages > budget) ctx.fail(`the election took ${electionMessages} messages; the budget is ${budget} (two PreVote and vote rounds for each of the ${candidates} candidates)`);
      });
    },
  },
  {
    name: "reelection",
    description: "a leader cut off from the rest is replaced within two seconds; it rejoins as a follower (5.2)",
    weight: 1,
    params: (p) => reliable(p),
    start: (ctx) => {
      // Cycles of 3 s: cut the leader off at 0.5 s, expect a successor by 2.5 s, heal at 2.6 s.
      for (let cycle = 0; (cycle + 1) * 3_000_000 < ctx.params.faultPhaseMicros; cycle++) {
        const t = cycle * 3_000_000;
        ctx.during(t + 500_000, () => {
          const leader = ctx.leader();
          if (leader === null) return;
          const term = ctx.status(leader)?.term ?? 0;
          ctx.partition("isolate-leader");
          expectNewLeader(ctx, leader, term, 2_000_000);
        });
        ctx.during(t + 2_600_000, () => ctx.healPartition());
      }
    },
  },
  {
    name: "many-elections",
    description: "random minorities cut off every ~300 ms; a majority always elects and serves",
    weight: 1,
    params: (p) => reliable(p),
    start: (ctx) => {
      ctx.repeat(300_000, () => {
        const cut = ctx.prng.shuffle([...ctx.nodeIds]).slice(0, ctx.prng.int(0, quorum(ctx) - 1));
        const rest = ctx.nodeIds.filter((id) => !cut.includes(id));
        ctx.partitionGroups([rest, ...cut.map((id) => [id])]);
      });
    },
  },
  {
    name: "basic-agreement",
    protocols: ["raft"],
    countsMessages: true,
    description: "no faults: every request succeeds, every node applies the same entries, within a message budget per entry (5.3)",
    weight: 1,
    params: (p) => reliable(p),
    start: (ctx) => {
      const n = ctx.nodeIds.length;
      atFaultPhaseEnd(ctx, () => {
        const committed = maxCommit(ctx);
        // An entry costs an append and its answer per follower, plus at most as many again
        // for the empty append that tells idle followers the new commit index.
        const replication = countKinds(ctx, /^append( ok)?$/);
        const budget = 4 * (n - 1) * committed + 50 * n;
        const chance = commitChance(ctx);
        if (committed < 10 && chance !== null) ctx.fail(`only ${committed} entries committed in a fault-free phase, though ${describeWindow(chance)}`);
        if (replication > budget) ctx.fail(`${replication} append messages for ${committed} entries; the budget is ${budget}`);
      });
    },
  },
  {
    name: "follower-failure",
    description: "followers crash and restart one at a time; the leader keeps committing (5.3, 5.5)",
    weight: 1,
    params: (p) => withFaults(p, ["crash"]),
    start: (ctx) => {
      ctx.repeat(800_000, () => {
        const candidates = followers(ctx);
        if (candidates.length > 0 && upCount(ctx) > quorum(ctx)) ctx.crash(ctx.prng.pick(candidates));
      });
    },
  },
  {
    name: "leader-failure",
    description: "the leader crashes again and again; a new one takes over and nothing acknowledged is lost (5.4)",
    weight: 1,
    params: (p) => withFaults(p, ["crash"]),
    start: (ctx) => {
      ctx.repeat(800_000, () => {
        const leader = ctx.leader();
        if (leader !== null && upCount(ctx) >= quorum(ctx)) ctx.crash(leader);
      });
    },
  },
  {
    name: "no-quorum",
    description: "with only a minority connected to each other, nothing commits; after healing, everything resumes (5.2, 5.3)",
    weight: 1,
    params: (p, prng) => reliable(withNodes(p, prng.pick([3, 5]), prng)),
    start: (ctx) => {
      // Cycles of 3 s: cut off at 0.5 s, measure at 0.6 s, check at 2.1 s, heal at 2.5 s.
      for (let cycle = 0; (cycle + 1) * 3_000_000 < ctx.params.faultPhaseMicros; cycle++) {
        const t = cycle * 3_000_000;
        let before = -1;
        ctx.during(t + 500_000, () => {
          const leader = ctx.leader();
          if (leader === null) return;
          // The leader keeps fewer than a majority with it; everyone else is alone.
          const others = ctx.prng.shuffle(ctx.nodeIds.filter((id) => id !== leader));
          const keep = quorum(ctx) - 2;
          ctx.partitionGroups([[leader, ...others.slice(0, keep)], ...others.slice(keep).map((id) => [id])]);
          // Messages already on the wire may still land; after that, no commit anywhere.
          ctx.during(100_000, () => (before = maxCommit(ctx)));
        });
        ctx.during(t + 2_100_000, () => {
          if (before >= 0 && maxCommit(ctx) > before) ctx.fail(`the commit index moved from ${before} to ${maxCommit(ctx)} with no majority connected`);
        });
        ctx.during(t + 2_500_000, () => ctx.healPartition());
      }
    },
  },
  {
    name: "concurrent-proposals",
    description: "many clients at once with no think time; every request answered, agreement kept (5.3)",
    weight: 1,
    params: (p) => ({ ...reliable(p), clients: 10, roamingClients: 5, keys: 10, clientThinkMicrosMean: 2000 }),
    start: () => {},
  },
  {
    name: "rejoin-partitioned-leader",
    description: "a leader cut off keeps taking proposals it cannot commit; on rejoining, its uncommitted entries are overwritten (5.3, Figure 7)",
    weight: 1,
    params: (p) => ({ ...reliable(p), roamingClients: 0 }),
    start: (ctx) => {
      ctx.repeat(1_500_000, () => {
        if (ctx.isPartitioned()) ctx.healPartition();
        else ctx.partition("isolate-leader");
      });
    },
  },
  {
    name: "fast-backup",
    protocols: ["raft"],
    countsMessages: true,
    description: "leaders cut off with one follower take many uncommitted entries, the majority commits others; logs that diverge by many entries are repaired in a few round trips (5.3)",
    weight: 1,
    // Without CheckQuorum a cut-off leader keeps leading its minority and taking writes, so
    // logs diverge by many entries.
    tuning: { checkQuorum: false },
    params: (p, prng) => ({ ...reliable(withNodes(p, 5, prng)), roamingClients: 0, clientThinkMicrosMean: 1000 }),
    start: (ctx) => {
      let repairs = 0;
      ctx.repeat(1_200_000, () => {
        if (ctx.isPartitioned()) {
          ctx.healPartition();
          repairs++;
          return;
        }
        const leader = ctx.leader();
        if (leader === null) return;
        const others = ctx.prng.shuffle(ctx.nodeIds.filter((id) => id !== leader));
        ctx.partitionGroups([[leader, others[0] as NodeId], others.slice(1)]);
      });
      atFaultPhaseEnd(ctx, () => {
        // Fast backtracking: one rejection per divergent term, not one per entry.
        const rejections = countKinds(ctx, /^append rejected$/);
        const budget = 3 * (ctx.nodeIds.length - 1) * (repairs + 1);
        if (rejections > budget) ctx.fail(`${rejections} append rejections over ${repairs} repairs; the budget is ${budget}`);
      });
    },
  },
  {
    name: "stale-messages",
    description: "fast-backup's rotating partitions over a network that delivers a few packets up to 1–4 s late: answers from terms long gone reach leaders that lead again",
    weight: 2,
    params: (p, prng) => {
      const base = withNodes(p, 5, prng);
      const nodeLink: LinkModel = { ...RELIABLE_LINK, fifo: false, longDelayProbability: prng.pick([0.02, 0.05, 0.1]), longDelayMaxMicros: prng.int(1_000_000, 4_000_000) };
      return { ...base, faults: ["partition", "reorder"], nodeLink, clientLink: RELIABLE_LINK, roamingClients: 0, clientThinkMicrosMean: 1000 };
    },
    start: (ctx) => {
      ctx.repeat(ctx.prng.int(300, 1200) * 1000, () => {
        if (ctx.isPartitioned()) return ctx.healPartition();
        const leader = ctx.leader();
        if (leader === null) return;
        const others = ctx.prng.shuffle(ctx.nodeIds.filter((id) => id !== leader));
        ctx.partitionGroups([[leader, others[0] as NodeId], others.slice(1)]);
      });
    },
  },
  {
    name: "stale-answers-adversary",
    description: "a follower's answers stall on the wire while its leader is deposed, both their logs rewritten, and that leader elected again; then they arrive: old answers must not count (Figure 2)",
    weight: 3,
    // Five nodes, so A and B are a minority and A's writes in (a) stay uncommitted; many
    // patient clients stuck to A, so A's log in (a) grows longer than the majority's.
    params: (p, prng) => ({
      ...withFaults(reliable(withNodes(p, 5, prng)), ["partition", "delay"]),
      clients: 10,
      keys: 10,
      roamingClients: 0,
      clientTimeoutMicros: 2_500_000,
      clientThinkMicrosMean: 1000,
    }),
    start: staleAnswersAdversary,
  },
  {
    name: "restart-all",
    description: "every node crashes at once (some inside an fsync) and restarts: terms, votes and logs come back from disk (5.1, 5.6)",
    weight: 1,
    params: (p) => withFaults(p, ["crash"]),
    start: restartAllNemesis,
  },
  {
    name: "restart-leader",
    description: "the leader crashes and restarts quickly, again and again",
    weight: 1,
    params: (p) => withFaults(p, ["crash"]),
    start: (ctx) => {
      ctx.repeat(600_000, () => {
        const leader = ctx.leader();
        if (leader === null) return;
        ctx.crash(leader, "never");
        ctx.during(ctx.prng.int(20_000, 300_000), () => ctx.restart(leader));
      });
    },
  },
  {
    name: "restart-partitioned-leader",
    description: "a leader is cut off, crashes while cut off, restarts and rejoins",
    weight: 1,
    params: (p) => withFaults(p, ["crash", "partition"]),
    start: (ctx) => {
      // Cycles of 2 s: cut the leader off, crash it while cut off, restart it, heal.
      for (let t = 200_000; t + 2_000_000 < ctx.params.faultPhaseMicros; t += 2_000_000) {
        let leader: NodeId | null = null;
        ctx.during(t, () => {
          leader = ctx.leader();
          if (leader !== null) ctx.partition("isolate-leader");
        });
        ctx.during(t + ctx.prng.int(100_000, 500_000), () => {
          if (leader !== null) ctx.crash(leader, "never");
        });
        ctx.during(t + ctx.prng.int(600_000, 1_200_000), () => {
          if (leader !== null) ctx.restart(leader);
        });
        ctx.during(t + ctx.prng.int(1_300_000, 1_900_000), () => ctx.healPartition());
      }
    },
  },
  {
    name: "figure-8",
    description: "Figure 8: leaders crash soon after election, again and again, over a reliable network (5.4.2)",
    weight: 2,
    params: (p, prng) => withFaults(reliable(withNodes(p, 5, prng)), ["crash"]),
    start: figure8Nemesis,
  },
  {
    name: "figure-8-adversary",
    protocols: ["raft"],
    description: "Figure 8 staged on purpose, again and again: an old entry on a minority, a newer-term leader cut off at once, an old leader bringing the old entry to a majority (5.4.2)",
    weight: 3,
    tuning: { smallMessages: true },
    params: (p, prng) => withFaults(reliable(withNodes(p, 5, prng)), ["partition"]),
    start: figure8Adversary,
  },
  {
    name: "figure-8-unreliable",
    description: "Figure 8 over a network that drops, duplicates and reorders with delays up to 2 s (5.4.2)",
    weight: 2,
    params: (p, prng) => withFaults(unreliable(withNodes(p, 5, prng), prng), ["crash", "drop", "duplicate", "reorder", "delay"]),
    start: figure8Nemesis,
  },
  {
    name: "churn",
    description: "any node crashes, restarts, is cut off or rejoins every ~100 ms, over a reliable network",
    weight: 1,
    params: (p) => withFaults(reliable(p), ["crash", "partition"]),
    start: churnNemesis,
  },
  {
    name: "churn-unreliable",
    description: "churn over a network that drops, duplicates and reorders",
    weight: 2,
    params: (p, prng) => withFaults(unreliable(p, prng), ["crash", "partition", "drop", "duplicate", "reorder", "delay"]),
    start: churnNemesis,
  },
  {
    name: "snapshot-basic",
    needsCompaction: true,
    description: "no faults, a snapshot every 5 entries: every node compacts, and the state machine survives it (7)",
    weight: 1,
    params: (p) => ({ ...reliable(p), snapshotEveryEntries: 5 }),
    start: (ctx) => {
      atFaultPhaseEnd(ctx, () => {
        for (const id of ctx.nodeIds) {
          if ((ctx.status(id)?.snapshotIndex ?? 0) > 0) continue;
          // Compacting needs 5 applied entries: a leader that reached this node long enough to commit them.
          const chance = commitChance(ctx, id);
          if (chance !== null) ctx.fail(`node ${id} never compacted its log, though ${describeWindow(chance)}`);
        }
      });
    },
  },
  {
    name: "snapshot-install",
    needsCompaction: true,
    description: "a follower cut off while the others compact catches up by installing the leader's snapshot (7)",
    weight: 1,
    params: (p) => ({ ...reliable(p), snapshotEveryEntries: 10 }),
    start: (ctx) => {
      let victim: NodeId | null = null;
      ctx.during(500_000, () => {
        victim = followers(ctx)[0] ?? null;
        if (victim !== null) isolate(ctx, victim);
      });
      const healMicros = 3_000_000;
      ctx.during(healMicros, () => ctx.healPartition());
      atFaultPhaseEnd(ctx, () => {
        if (victim === null || ctx.snapshotInstalls(victim) > 0) return;
        // Catching up needs a leader that reached the victim after the heal, long enough.
        const chance = commitChance(ctx, victim, healMicros);
        if (chance !== null) ctx.fail(`node ${victim} installed no snapshot, though it was cut off while the others compacted and then ${describeWindow(chance)}`);
      });
    },
  },
  {
    name: "snapshot-catch-up",
    needsCompaction: true,
    description:
      "a follower cut off while the others compact comes back to snapshots that take longer to send than the log takes to outgrow them: it installs one and catches up from the leader's log, instead of chasing newer snapshots (7; etcd's catch-up entries)",
    weight: 1,
    tuning: { smallSnapshotChunks: true },
    // A hundred keys, written without pause, make snapshots of some kilobytes (hundreds of
    // round trips in 32-byte chunks) while the leader compacts every 5 entries.
    params: (p) => ({
      ...reliable(p),
      keys: 100,
      clientThinkMicrosMean: 1000,
      roamingClients: 0,
      opMix: { get: 0.1, put: 0.8, delete: 0.05, cas: 0.05 },
      snapshotEveryEntries: 5,
      historyRevisions: 50,
      faultPhaseMicros: Math.max(p.faultPhaseMicros, 8_000_000),
    }),
    start: (ctx) => {
      let victim: NodeId | null = null;
      ctx.during(500_000, () => {
        victim = followers(ctx)[0] ?? null;
        if (victim !== null) isolate(ctx, victim);
      });
      const healMicros = 1_500_000;
      ctx.during(healMicros, () => ctx.healPartition());
      atFaultPhaseEnd(ctx, () => {
        // One snapshot brings the follower that was away past what was compacted meanwhile;
        // after it, the leader's log. A node that installs one after another chases them.
        for (const id of ctx.nodeIds) {
          const installs = ctx.snapshotInstalls(id);
          if (installs <= SNAPSHOT_CATCH_UP_INSTALLS_MAX) continue;
          ctx.fail(
            `node ${id} installed ${installs} snapshots${id === victim ? " after it came back" : ""}, where one brings a node past what was compacted: ` +
              `it chases the leader's newer snapshots instead of catching up from the log`,
          );
          return;
        }
      });
    },
  },
  {
    name: "snapshot-unreliable",
    description: "snapshots every 5 entries while the network drops, duplicates and reorders chunks, and partitions come and go (7)",
    weight: 2,
    params: (p, prng) => ({ ...withFaults(unreliable(p, prng), ["partition", "drop", "duplicate", "reorder", "delay"]), snapshotEveryEntries: 5 }),
    start: mixedNemesis,
  },
  {
    name: "snapshot-crash",
    description: "snapshots every 5 entries with crashes (half inside an fsync) (7)",
    weight: 1,
    params: (p) => ({ ...withFaults(p, ["crash"]), snapshotEveryEntries: 5 }),
    start: mixedNemesis,
  },
  {
    name: "snapshot-restart-all",
    description: "snapshots every 5 entries and every node crashing at once, again and again (7)",
    weight: 1,
    params: (p) => ({ ...withFaults(p, ["crash"]), snapshotEveryEntries: 5 }),
    start: restartAllNemesis,
  },
  {
    name: "snapshot-bounded-log",
    needsCompaction: true,
    description: "with a snapshot every 20 entries, no node's log ever holds more than a bounded number of entries: the interval, the catch-up entries kept for a follower a little behind, and a margin (7)",
    weight: 1,
    params: (p) => ({ ...reliable(p), snapshotEveryEntries: 20 }),
    start: (ctx) => {
      const bound = 20 + SIM_CATCH_UP_ENTRIES + 200;
      ctx.repeat(100_000, () => {
        for (const id of ctx.nodeIds) {
          const status = ctx.status(id);
          if (status !== null && status.lastIndex - status.snapshotIndex > bound) {
            ctx.fail(`node ${id} holds ${status.lastIndex - status.snapshotIndex} log entries; with a snapshot every 20 and ${SIM_CATCH_UP_ENTRIES} catch-up entries the bound is ${bound}`);
          }
        }
      });
    },
  },
];

export const SCENARIO_NAMES: readonly string[] = ["random", ...SCENARIOS.map((s) => s.name)];

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}

/** Whether `scenario` applies to the protocol named `protocol` (see Scenario.protocols). */
export function scenarioApplies(scenario: Scenario, protocol: string): boolean {
  return scenario.protocols === undefined || scenario.protocols.includes(protocol);
}

/** `random`: a scenario drawn by weight, among those the protocol can play. */
export function pickScenario(prng: Prng, compacts = true, reconfigures = true, protocol = "raft"): Scenario {
  const candidates = SCENARIOS.filter((s) => (compacts || s.needsCompaction !== true) && (reconfigures || s.needsMembership !== true) && scenarioApplies(s, protocol));
  const total = candidates.reduce((sum, s) => sum + s.weight, 0);
  let roll = prng.float() * total;
  for (const scenario of candidates) {
    roll -= scenario.weight;
    if (roll < 0) return scenario;
  }
  return candidates[0] as Scenario;
}

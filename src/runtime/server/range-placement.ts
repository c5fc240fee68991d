/**
 * Ranges on some members only (docs/sharding.md, "Placement"). With `--replicas N` and more
 * than N members, each range but range 0 keeps N replicas, and the rule in
 * core/multi/placement.ts says where: this module runs it on a node.
 *
 * - The directory. Each node tells its peers, every second over the peer connections (a
 *   group id no range uses), the ranges it hosts: span, epoch, term, role, leader, voters,
 *   learners, indexes. A node routes a range it does not host by what its peers say of it,
 *   the freshest (highest epoch, then term, then the leader's own word) first. A stale view
 *   costs a forwarded request a retry, never a wrong answer: every range refuses, when it
 *   applies, a command on a key outside its span.
 * - Moves. Every PLACEMENT_INTERVAL_MS, each node takes the step the rule gives each range it
 *   leads: a learner added (its leader promotes it once caught up) or a replica removed; a
 *   leader that must remove itself hands its leadership to another voter first. A member
 *   unreachable for `replaceAfterMs` counts as dead, and its replicas are made again elsewhere.
 * - Leaving. A range whose configuration here no longer holds this node (it did, once) is
 *   dropped: its replica stops, its records and log go. One that missed its own removal
 *   (the leader stopped sending before it got there) learns it from its leader's
 *   description, when the leader has applied past the end of this replica's log.
 */
import type { Logger } from "pino";
import { setTimeout as sleep } from "node:timers/promises";
import { MembershipChangeInProgressError, SynodError } from "../../core/common/errors.js";
import type { Membership, MembershipChange, NodeId } from "../../core/engine/contract.js";
import { isMember } from "../../core/engine/membership.js";
import { DEFAULT_GROUP, GROUP_ID_MAX, type GroupId } from "../../core/multi/group.js";
import { isZoneName, moveRefusal, placementPlan, type PlacementStep } from "../../core/multi/placement.js";
import { adoptable, counts, fresher, removedFrom, snapshotFloor, strayReplica, type RangeDescription } from "../../core/multi/placement-directory.js";
import type { RangeDescriptor } from "../../core/multi/ranges.js";
import type { GroupRouter } from "../../core/multi/router.js";
import type { Network } from "../../core/replica/contract.js";
import { WriteOutcomeUnknownError } from "../../core/replica/errors.js";
import type { GroupReplica } from "./group-replica.js";
import type { NodeRanges, OtherRanges } from "./node-ranges.js";

/** The group id the directory travels on: the one below the liveness pings', which no range is given. */
export const DIRECTORY_GROUP: GroupId = GROUP_ID_MAX - 1;
/** How often a node tells its peers the ranges it hosts. */
export const DIRECTORY_INTERVAL_MS = 1000;
/** A peer's description older than this is not counted (the peer stopped, or cannot reach here). */
const DIRECTORY_STALE_MS = 5000;
/** How often a node looks at the ranges it leads for a placement step. */
export const PLACEMENT_INTERVAL_MS = 500;
/** How long a range hosted for a message waits for its state before its leader's word that this node is not a replica counts. */
const STATELESS_WAIT_MS = 10_000;
/** Configuration changes one node has under way at once. */
export const PLACEMENT_STEPS_MAX = 2;

/** How long a replica move waits for its new replica to catch up and become a voter. */
export const MOVE_CATCH_UP_MS = 30_000;
/** How often a move looks whether its learner was promoted. */
const MOVE_POLL_MS = 100;

/** A replica move that cannot be made (409): the message says why and what to do. */
export class MoveRefusedError extends SynodError {
  constructor(message: string) {
    super("move_refused", message);
    this.name = "MoveRefusedError";
  }
}

/** What a replica move answers: the range's replicas after it. */
export interface MoveAnswer {
  readonly range: GroupId;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly ms: number;
}

/** How long a move's configuration change waits for one before it (the learner's promotion, another step) to commit. */
const CHANGE_WAIT_MS = 10_000;

/**
 * Proposes `change()` (read again on each try) once the range's previous configuration
 * change has committed: the engine takes one at a time, and a move follows the promotion
 * of its own learner, or a step the range took just before.
 */
async function changeWhenFree(replica: GroupReplica, change: () => MembershipChange): Promise<void> {
  const startedMs = Date.now();
  for (;;) {
    try {
      await replica.driver.changeMembership(change());
      return;
    } catch (error) {
      if (!(error instanceof MembershipChangeInProgressError) || Date.now() - startedMs > CHANGE_WAIT_MS) throw error;
      await sleep(MOVE_POLL_MS);
    }
  }
}

/** A range this node may host with no state (RangePlacement.adoptable): its span, the term it starts in, and the least index of the snapshot it waits for. */
export interface AdoptableSpan {
  readonly start: string;
  readonly end: string | null;
  readonly term: number;
  readonly awaitFrom: number;
}

/** One range as the node hosting it describes it. */
export interface RangeEntry extends RangeDescription {
  readonly id: GroupId;
  readonly start: string;
  readonly end: string | null;
  readonly epoch: number;
}

interface DirectoryMessage {
  readonly type: "ranges";
  readonly ranges: readonly RangeEntry[];
  /** The sender's zone (`--zone`); absent: none, or a node from before zones. */
  readonly zone?: string;
}

function isDirectoryMessage(message: unknown): message is DirectoryMessage {
  const m = message as { type?: unknown; ranges?: unknown } | null;
  return m !== null && typeof m === "object" && m.type === "ranges" && Array.isArray(m.ranges);
}

/** Whether `value` is a well-formed entry (a peer's message is checked, never trusted to crash the node). */
function isRangeEntry(value: unknown): value is RangeEntry {
  const e = value as Partial<Record<keyof RangeEntry, unknown>> | null;
  const ids = (list: unknown): boolean => Array.isArray(list) && list.every((id) => Number.isSafeInteger(id));
  return (
    e !== null &&
    typeof e === "object" &&
    Number.isSafeInteger(e.id) &&
    typeof e.start === "string" &&
    (e.end === null || typeof e.end === "string") &&
    Number.isSafeInteger(e.epoch) &&
    Number.isSafeInteger(e.term) &&
    typeof e.role === "string" &&
    (e.leader === null || Number.isSafeInteger(e.leader)) &&
    ids(e.voters) &&
    ids(e.learners) &&
    Number.isSafeInteger(e.applied) &&
    (e.spanSince === undefined || Number.isSafeInteger(e.spanSince))
  );
}

export interface PlacementHost {
  readonly self: NodeId;
  /** The replicas each range keeps (`--replicas`, above 0). */
  readonly replicationFactor: number;
  readonly replaceAfterMs: number;
  /** This node's zone (`--zone`; null: none, a zone of its own for placement). */
  readonly zone: string | null;
  readonly ranges: NodeRanges;
  readonly groups: GroupRouter<unknown>;
  /** Group 0's configuration: the cluster's members. */
  membership(): Membership;
  /** The members this node reaches now, itself among them. */
  reachable(): readonly NodeId[];
  /** Stops hosting range `id` and removes what this node keeps of it, but for a tombstone of its hard state marked with `applied`, what its replica applied (EngineFactory.tombstone). */
  drop(id: GroupId, applied: number): Promise<void>;
  /** Whether the node is stopping. */
  stopping(): boolean;
  readonly log: Logger;
  /** A placement step taken, for the dashboard's events. */
  readonly record?: (step: PlacementStep) => void;
}

/** The configuration in force at what `replica` applied (its latest, where the engine cannot say). */
function appliedMembership(replica: GroupReplica): Membership {
  try {
    return replica.engine.membershipAt?.(replica.kv.applied) ?? replica.membership();
  } catch {
    return replica.membership();
  }
}

export class RangePlacement implements OtherRanges {
  private readonly network: Network<unknown>;
  private readonly peers = new Map<NodeId, { readonly at: number; readonly ranges: ReadonlyMap<GroupId, RangeEntry>; readonly zone: string | null }>();
  /** When each unreachable member was first seen unreachable. */
  private readonly downSince = new Map<NodeId, number>();
  private readonly stepping = new Set<GroupId>();
  /** Ranges whose configuration has held this node since it hosted them (only those are dropped when it no longer does). */
  private readonly wasMember = new Set<GroupId>();
  private readonly dropping = new Set<GroupId>();
  /** The applied index past which a range dropped here was no longer this node's: an older description cannot bring it back. */
  private readonly droppedAt = new Map<GroupId, number>();
  /** When each range hosted with no state was first seen so (one its leader does not count this node in is dropped after a while). */
  private readonly statelessSince = new Map<GroupId, number>();
  /** Ranges whose replica here holds a state whose configuration leaves this node out, and that the directory does not count it in either (strayReplica): since when. */
  private readonly straySince = new Map<GroupId, number>();
  private directoryTimer: NodeJS.Timeout | null = null;
  private placementTimer: NodeJS.Timeout | null = null;
  /** Every range's freshest description, merged again after each message sent or received. */
  private merged: Map<GroupId, RangeEntry> | null = null;

  constructor(private readonly host: PlacementHost) {
    this.network = host.groups.host(DIRECTORY_GROUP, (from, message) => this.receive(from, message));
    host.ranges.describeOthers(this);
  }

  start(): void {
    this.directoryTimer = setInterval(() => this.broadcast(), DIRECTORY_INTERVAL_MS);
    this.directoryTimer.unref();
    this.placementTimer = setInterval(() => this.placeOnce(), PLACEMENT_INTERVAL_MS);
    this.placementTimer.unref();
    this.broadcast();
  }

  stop(): void {
    if (this.directoryTimer !== null) clearInterval(this.directoryTimer);
    if (this.placementTimer !== null) clearInterval(this.placementTimer);
    this.directoryTimer = this.placementTimer = null;
  }

  /**
   * Whether ranges are placed now: the cluster has more members than the replicas each range
   * keeps (a joining learner counts, so the ranges do not all follow it first; it is given
   * replicas once it is a voter).
   */
  active(): boolean {
    const membership = this.host.membership();
    return membership.voters.length + membership.learners.length > this.host.replicationFactor;
  }

  /** Every range as this node and its peers describe it, the freshest description of each. */
  entries(): ReadonlyMap<GroupId, RangeEntry> {
    if (this.merged !== null) return this.merged;
    const merged = new Map<GroupId, RangeEntry>();
    const now = Date.now();
    for (const { at, ranges } of this.peers.values()) {
      if (now - at > DIRECTORY_STALE_MS) continue;
      for (const entry of ranges.values()) {
        const known = merged.get(entry.id);
        merged.set(entry.id, known === undefined ? entry : fresher(known, entry));
      }
    }
    for (const entry of this.local()) {
      const known = merged.get(entry.id);
      merged.set(entry.id, known === undefined ? entry : fresher(known, entry));
    }
    this.merged = merged;
    return merged;
  }

  descriptors(): readonly RangeDescriptor[] {
    return [...this.entries().values()].map(({ id, start, end, epoch }) => ({ id, start, end, epoch }));
  }

  view(id: GroupId): { readonly leader: NodeId | null; readonly [field: string]: unknown } | undefined {
    const entry = this.entries().get(id);
    if (entry === undefined) return undefined;
    return { leader: entry.leader, term: entry.term, voters: entry.voters, learners: entry.learners, replicas: [...entry.voters, ...entry.learners].sort((a, b) => a - b) };
  }

  /**
   * The span of range `id`, when the directory says this node is one of its replicas, at a
   * later index than any at which this node dropped it; null otherwise (node-range-admin.ts
   * hosts a range a member's message names only then). Undefined: the directory has no word of it.
   */
  adoptable(id: GroupId): AdoptableSpan | null | undefined {
    const entry = this.entries().get(id);
    if (entry === undefined) return undefined;
    if (!adoptable(entry, this.host.self, this.droppedAt.get(id))) return null;
    // The term it starts in, at least (a replica dropped here before starts from its tombstone's, if later: node-range-admin.ts).
    return { start: entry.start, end: entry.end, term: entry.term, awaitFrom: snapshotFloor(entry) };
  }

  /** The nodes that host range `id`, its leader first: where a request for it is sent. */
  hostsOf(id: GroupId): NodeId[] {
    const entry = this.entries().get(id);
    if (entry === undefined) return [];
    const hosts = [...entry.voters, ...entry.learners].filter((node) => node !== this.host.self);
    return entry.leader !== null && hosts.includes(entry.leader) ? [entry.leader, ...hosts.filter((node) => node !== entry.leader)] : hosts;
  }

  /** Every range's leader and voters, for spreading leaderships over the voters of each. */
  leadership(): { readonly leaders: ReadonlyMap<GroupId, NodeId | null>; readonly voters: ReadonlyMap<GroupId, readonly NodeId[]> } {
    const leaders = new Map<GroupId, NodeId | null>();
    const voters = new Map<GroupId, readonly NodeId[]>();
    for (const entry of this.entries().values()) {
      leaders.set(entry.id, entry.leader);
      voters.set(entry.id, entry.voters);
    }
    return { leaders, voters };
  }

  /** The ranges this node hosts with their state, described as its peers are told. */
  private local(): RangeEntry[] {
    const { ranges } = this.host;
    return ranges
      .all()
      .filter((replica) => ranges.holdsState(replica))
      .map((replica) => {
        const status = replica.engine.status();
        const membership = replica.membership();
        const span = replica.kv.backend.span ?? { start: "", end: null };
        return {
          id: replica.group,
          start: span.start,
          end: span.end,
          epoch: replica.kv.rangeEpoch,
          term: status.term,
          role: status.role,
          leader: status.leader,
          voters: [...membership.voters],
          learners: [...membership.learners],
          applied: replica.kv.applied,
          spanSince: replica.kv.spanSince,
        };
      });
  }

  private broadcast(): void {
    if (this.host.stopping()) return;
    this.merged = null;
    this.host.ranges.changed();
    const message: DirectoryMessage = { type: "ranges", ranges: this.local(), ...(this.host.zone === null ? {} : { zone: this.host.zone }) };
    for (const peer of this.host.membership().voters.concat(this.host.membership().learners)) if (peer !== this.host.self) this.network.send(peer, message);
  }

  private receive(from: NodeId, message: unknown): void {
    if (!isDirectoryMessage(message)) return;
    const ranges = new Map<GroupId, RangeEntry>();
    for (const entry of message.ranges) if (isRangeEntry(entry)) ranges.set(entry.id, entry);
    this.peers.set(from, { at: Date.now(), ranges, zone: typeof message.zone === "string" && isZoneName(message.zone) ? message.zone : null });
    this.merged = null;
    this.host.ranges.changed();
  }

  /** Each member's zone, as it last said (this node's own included); a member that said none is in none. */
  zones(): Map<NodeId, string> {
    const zones = new Map<NodeId, string>();
    for (const [id, { zone }] of this.peers) if (zone !== null) zones.set(id, zone);
    if (this.host.zone !== null) zones.set(this.host.self, this.host.zone);
    return zones;
  }

  /** Members unreachable for at least `replaceAfterMs`: their replicas are made again elsewhere. */
  private dead(now: number): NodeId[] {
    const reachable = new Set(this.host.reachable());
    const dead: NodeId[] = [];
    for (const id of this.host.membership().voters) {
      if (reachable.has(id)) {
        this.downSince.delete(id);
        continue;
      }
      const since = this.downSince.get(id) ?? now;
      this.downSince.set(id, since);
      if (now - since >= this.host.replaceAfterMs) dead.push(id);
    }
    return dead;
  }

  private placeOnce(): void {
    if (this.host.stopping()) return;
    const now = Date.now();
    const dead = this.dead(now);
    this.leaveRemoved(now);
    if (!this.active()) return;
    const entries = this.entries();
    // Ranges this node leads are described as its replica holds them now.
    const led = new Map(this.host.ranges.all().filter((replica) => replica.group !== DEFAULT_GROUP && replica.engine.status().role === "leader").map((replica) => [replica.group, replica]));
    const view = {
      replicationFactor: this.host.replicationFactor,
      members: this.host.membership().voters,
      live: this.host.reachable(),
      dead,
      zones: this.zones(),
      ranges: [...entries.values()]
        .filter((entry) => entry.id !== DEFAULT_GROUP)
        .map((entry) => {
          const replica = led.get(entry.id);
          const membership = replica?.membership();
          return membership === undefined ? entry : { id: entry.id, voters: membership.voters, learners: membership.learners };
        }),
    };
    for (const step of placementPlan(view)) {
      const replica = led.get(step.range);
      if (replica === undefined || this.stepping.has(step.range) || this.stepping.size >= PLACEMENT_STEPS_MAX) continue;
      this.take(replica, step);
    }
  }

  /**
   * Moves range `id`'s replica from node `from` to node `to` (`POST /v1/shards/{id}/move`), on
   * the range's leader: a learner on `to` (promoted by the leader once caught up), then the
   * voter on `from` removed. The range's own placement steps wait meanwhile. Later, the
   * rule may rebalance the counts again (a move changes two nodes' counts by one each), but
   * not this range back for its own sake.
   */
  async move(replica: GroupReplica, from: NodeId, to: NodeId): Promise<MoveAnswer> {
    const startedMs = Date.now();
    const id = replica.group;
    if (id === DEFAULT_GROUP) throw new MoveRefusedError("range 0 is on every member (it holds the cluster's configuration): its replicas do not move");
    if (!this.active()) throw new MoveRefusedError(`every member hosts every range (the cluster has no more members than --replicas ${this.host.replicationFactor}): there is no replica to move`);
    if (this.stepping.has(id)) throw new MoveRefusedError(`range ${id} is changing already (a placement step is under way): retry shortly`);
    const membership = replica.membership();
    const refusal = moveRefusal({ id, voters: membership.voters, learners: membership.learners }, from, to, { members: this.host.membership().voters, live: this.host.reachable() }, this.host.self);
    if (refusal !== null) throw new MoveRefusedError(refusal);
    this.stepping.add(id);
    const context = this.host.membership().context;
    try {
      this.host.log.info({ range: id, from, to }, "moving a range's replica: a learner first");
      await changeWhenFree(replica, () => {
        const now = replica.membership();
        return { voters: now.voters, learners: [...now.learners.filter((node) => node !== to), to], autoPromote: [...now.autoPromote.filter((node) => node !== to), to], context };
      });
      this.host.record?.({ range: id, kind: "add", node: to, why: "moved-by-request" });
      while (!replica.membership().voters.includes(to)) {
        if (replica.engine.status().role !== "leader") throw new WriteOutcomeUnknownError(`this node stopped leading range ${id} while node ${to} caught up; node ${from} was not removed (the range's placement decides from here)`);
        if (Date.now() - startedMs > MOVE_CATCH_UP_MS) throw new WriteOutcomeUnknownError(`node ${to}, added to range ${id}, had not caught up after ${MOVE_CATCH_UP_MS / 1000} s; node ${from} was not removed (the range's placement decides from here)`);
        await sleep(MOVE_POLL_MS);
      }
      const without = (list: readonly NodeId[]): NodeId[] => list.filter((node) => node !== from);
      await changeWhenFree(replica, () => {
        const promoted = replica.membership();
        return { voters: without(promoted.voters), learners: without(promoted.learners), autoPromote: without(promoted.autoPromote), context };
      });
      this.host.record?.({ range: id, kind: "remove", node: from, why: "moved-by-request" });
      const after = replica.membership();
      const sorted = (list: readonly NodeId[]): NodeId[] => [...list].sort((a, b) => a - b);
      return { range: id, from, to, voters: sorted(after.voters), learners: sorted(after.learners), ms: Date.now() - startedMs };
    } finally {
      this.stepping.delete(id);
      this.merged = null;
    }
  }

  private take(replica: GroupReplica, step: PlacementStep): void {
    const { log, self } = this.host;
    const membership = replica.membership();
    if (membership.outgoing.length > 0) return;
    this.stepping.add(step.range);
    const context = this.host.membership().context;
    let change: Promise<unknown>;
    if (step.kind === "remove" && step.node === self) {
      // A leader does not remove itself: it hands the range to another live voter, which decides again.
      const live = new Set(this.host.reachable());
      const to = membership.voters.find((id) => id !== self && live.has(id));
      if (to === undefined) {
        this.stepping.delete(step.range);
        return;
      }
      log.info({ range: step.range, to, why: step.why }, "handing over a range's leadership before its replica here is removed");
      change = replica.driver.transferLeadership(to);
    } else if (step.kind === "add") {
      log.info({ range: step.range, node: step.node, why: step.why }, "adding a learner to a range (promoted once caught up)");
      change = replica.driver.changeMembership({
        voters: membership.voters,
        learners: [...membership.learners, step.node],
        autoPromote: [...membership.autoPromote, step.node],
        context,
      });
    } else {
      log.info({ range: step.range, node: step.node, why: step.why }, "removing a range's replica");
      change = replica.driver.changeMembership({
        voters: membership.voters.filter((id) => id !== step.node),
        learners: membership.learners.filter((id) => id !== step.node),
        autoPromote: membership.autoPromote.filter((id) => id !== step.node),
        context,
      });
    }
    change
      .then(() => this.host.record?.(step))
      .catch((error: unknown) => log.info({ err: error, range: step.range, step }, "the placement step did not happen; the next look decides again"))
      .finally(() => {
        this.stepping.delete(step.range);
        this.merged = null;
      });
  }

  /**
   * Drops the ranges this node was removed from: its replica applied a configuration without
   * it, or the range's leader describes one at a later index than this replica applied.
   */
  private leaveRemoved(now: number): void {
    const { ranges, self } = this.host;
    const entries = this.entries();
    for (const replica of ranges.all()) {
      const id = replica.group;
      if (id === DEFAULT_GROUP || this.dropping.has(id)) continue;
      const entry = entries.get(id);
      if (!ranges.holdsState(replica)) {
        // Hosted for a message, and never sent its state: once its leader has long not counted this node in, it goes.
        const since = this.statelessSince.get(id) ?? now;
        this.statelessSince.set(id, since);
        const counted = entry === undefined || counts(entry, self);
        if (!counted && now - since > STATELESS_WAIT_MS) this.dropReplica(id, entry?.applied ?? 0, "a range hosted for its leader's message was never sent its state, and its leader does not count this node in");
        continue;
      }
      this.statelessSince.delete(id);
      const membership = replica.membership();
      if (isMember(membership, self)) this.wasMember.add(id);
      if (!this.wasMember.has(id)) {
        // Never a member since it was hosted: a stray once its range has long not counted it in.
        if (!strayReplica({ membership, appliedMembership: appliedMembership(replica) }, entry, self)) this.straySince.delete(id);
        else {
          const since = this.straySince.get(id) ?? now;
          this.straySince.set(id, since);
          if (now - since > STATELESS_WAIT_MS) this.dropReplica(id, Math.max(replica.kv.applied, entry?.applied ?? 0), "this node's replica of the range was sent a state whose configuration leaves this node out, and the range does not count it in either; dropping it");
        }
        continue;
      }
      const removed = removedFrom({ membership, appliedMembership: appliedMembership(replica), lastIndex: replica.engine.status().lastIndex }, entry, self);
      if (removed === null) continue;
      this.wasMember.delete(id);
      this.dropReplica(id, Math.max(replica.kv.applied, removed === "by-leader" ? (entry?.applied ?? 0) : 0), "this node's replica of the range was removed (the range moved); dropping it");
    }
  }

  private dropReplica(id: GroupId, applied: number, why: string): void {
    this.dropping.add(id);
    this.droppedAt.set(id, applied);
    this.statelessSince.delete(id);
    this.straySince.delete(id);
    this.host.log.info({ range: id, applied }, why);
    void this.host
      .drop(id, applied)
      .catch((error: unknown) => this.host.log.error({ err: error, range: id }, "could not drop a range this node was removed from"))
      .finally(() => {
        this.dropping.delete(id);
        this.merged = null;
      });
  }
}

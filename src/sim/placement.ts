/**
 * Ranges on some nodes only, in the simulator (`synod sim --groups G --nodes N --replicas R`),
 * with the production rule (core/multi/placement.ts) a sharded node runs, taken the way
 * runtime/server/range-placement.ts takes it, on virtual time:
 *
 * - The directory. Every half second of its clock a node tells each peer, over the link
 *   between them (so partitions, losses and delays apply), the groups it hosts: term, role,
 *   leader, voters, learners, applied index. A peer heard from recently is reachable; a
 *   member unreachable for REPLACE_AFTER_TICKS counts as dead, and its replicas are made
 *   again elsewhere. A node that does not host a key's group forwards the request to a node
 *   the directory says hosts it (sim/node.ts).
 * - Moves. Every half second, a node takes the step the rule gives each group it leads: a
 *   learner added with autoPromote (the Raft leader promotes it once caught up) or a replica
 *   removed; a leader that must remove itself hands its leadership to another voter first.
 *   Every step is a configuration change through the production replica and engine.
 * - Leaving. A group whose configuration here no longer holds this node (it did, once) is
 *   dropped: its replica stops and its records leave the disk. One that missed its own
 *   removal learns it from its leader's description, when the leader has applied past the
 *   end of this replica's log. A replica made for a stray message (a node hosts a group when
 *   a member's message for it arrives: that is how an added learner comes to exist) that is
 *   never given the group's state is dropped after a while, and so is one given a state
 *   whose configuration had removed it already, once its group's description leaves it out
 *   too (`strayReplica`).
 *
 * Group 0 stays on every node (it holds the cluster's configuration, as in production): its
 * voters are the members the rule places ranges on.
 */
import { adoptable, counts, fresher, removedFrom, strayReplica, type RangeDescription } from "../core/multi/placement-directory.js";
import type { SimNodeTimers } from "./node-timers.js";
import type { Membership, MembershipChange, NodeId } from "../core/engine/contract.js";
import { isMember } from "../core/engine/membership.js";
import { DEFAULT_GROUP, type GroupId } from "../core/multi/group.js";
import { placementPlan, type PlacementMutant, type PlacementStep } from "../core/multi/placement.js";

/** Ticks between two directory messages, and between two looks for a step (half a second at 10 ms ticks). */
export const DIRECTORY_EVERY_TICKS = 50;
export const PLACE_EVERY_TICKS = 50;
/** A peer last heard from longer ago than this is unreachable. */
export const DIRECTORY_STALE_TICKS = 150;
/** A member unreachable this long is dead: its replicas are made again elsewhere (production's --replace-after-ms). */
export const REPLACE_AFTER_TICKS = 150;
/** A replica hosted for a message, never given state, and not counted in by its group, goes after this long. */
const STATELESS_WAIT_TICKS = 300;
/** Configuration changes one node has under way at once (as production's PLACEMENT_STEPS_MAX). */
const PLACEMENT_STEPS_MAX = 2;

/** One group as the node hosting it describes it to its peers. */
export interface SimRangeEntry extends RangeDescription {
  readonly group: GroupId;
  /** With splits (`--splits`): the range's keys, as production's description has them (its epoch is RangeDescription's). */
  readonly start?: string;
  readonly end?: string | null;
}

/** What this node's replica of a group says of itself. */
export interface LocalRange {
  readonly term: number;
  readonly role: string;
  readonly leader: NodeId | null;
  readonly lastIndex: number;
  readonly applied: number;
  /** The latest configuration in its log, and the one in force at what it applied. */
  readonly membership: Membership;
  readonly appliedMembership: Membership;
  /** With splits: the range's keys and epoch, once this replica holds its state. */
  readonly range?: { readonly start: string; readonly end: string | null; readonly epoch: number; readonly spanSince: number };
}

/** What placement needs of the node that runs it. */
export interface PlacementNode extends SimNodeTimers {
  /** Whether steps may still be taken (the run stops moving ranges when its clients stop, so the end state settles). */
  stepsAllowed(): boolean;
  /** The groups this incarnation hosts, group 0 among them. */
  hostedGroups(): readonly GroupId[];
  /** This node's replica of `group`, described (null: not hosted). */
  local(group: GroupId): LocalRange | null;
  sendDirectory(to: NodeId, entries: readonly SimRangeEntry[]): void;
  /** Asks `group`'s replica for a configuration change; `done` runs when it ends, with whether it committed. False if refused at once. */
  changeMembership(group: GroupId, change: MembershipChange, done: (committed: boolean) => void): boolean;
  /** Starts a transfer of `group`'s leadership; `done` runs when it ends. False if refused at once. */
  transfer(group: GroupId, to: NodeId, done: (moved: boolean) => void): boolean;
  /** Stops hosting `group` and removes its records from the disk, but for a tombstone: its hard state, marked with what it had applied (EngineFactory.tombstone). */
  drop(group: GroupId, applied: number): void;
  trace(text: string): void;
}

/** What one incarnation knows: lost with the process, as production's in-memory directory is. */
interface IncarnationState {
  ticks: number;
  readonly peers: Map<NodeId, { readonly atTick: number; readonly entries: readonly SimRangeEntry[] }>;
  readonly downSince: Map<NodeId, number>;
  readonly stepping: Set<GroupId>;
  readonly statelessSince: Map<GroupId, number>;
  /** Replicas with state that were never members since hosted, and that nothing counts in: since when (strayReplica). */
  readonly straySince: Map<GroupId, number>;
}

/** Counts over a node's incarnations. */
export interface PlacementCounts {
  /** Learners added and replicas removed (configuration changes that committed). */
  readonly moves: number;
  /** Leaderships handed over by a leader about to be removed. */
  readonly transfers: number;
  /** Replicas this node dropped after leaving their group. */
  readonly drops: number;
}

/** One node's placement over its incarnations. */
export class SimPlacement {
  private counts = { moves: 0, transfers: 0, drops: 0 };
  /** Groups whose configuration has held this node since it hosted them (only those are dropped when it no longer does). */
  private readonly wasMember = new Set<GroupId>();
  /** The applied index past which each group dropped here was no longer this node's: an older description cannot bring it back. */
  private readonly droppedAt = new Map<GroupId, number>();
  private state: IncarnationState | null = null;

  constructor(
    private readonly node: PlacementNode,
    private readonly replicationFactor: number,
    private readonly mutant: PlacementMutant | null,
    private readonly zones?: ReadonlyMap<NodeId, string>,
  ) {}

  get placementCounts(): PlacementCounts {
    return { ...this.counts };
  }

  /** Incarnation `incarnation` started: a fresh directory, a look every tick of its clock. */
  start(incarnation: number): void {
    const { node } = this;
    const state: IncarnationState = { ticks: 0, peers: new Map(), downSince: new Map(), stepping: new Set(), statelessSince: new Map(), straySince: new Map() };
    this.state = state;
    const fire = (): void => {
      if (!node.alive(incarnation)) return;
      node.after(node.tickIntervalMicros, fire);
      if (node.paused()) return;
      state.ticks++;
      if (state.ticks % DIRECTORY_EVERY_TICKS === 0) this.broadcast();
      if (state.ticks % PLACE_EVERY_TICKS === 0) this.placeOnce(state);
    };
    node.after(node.tickIntervalMicros, fire);
  }

  /** A peer's directory message arrived (in this incarnation, through the node's inputs). */
  hear(from: NodeId, entries: readonly SimRangeEntry[]): void {
    this.state?.peers.set(from, { atTick: this.state.ticks, entries });
  }

  /**
   * Whether a message for `group`, which this node does not host, may make it host a
   * replica: the freshest description of the group counts this node in, at a later applied
   * index than any at which it dropped it; with no description, unless it dropped it once.
   * (A stale replica's vote request must not bring back a replica the group removed.)
   */
  adoptable(group: GroupId): boolean {
    const entry = this.entries().get(group);
    if (entry === undefined) return !this.droppedAt.has(group);
    return adoptable(entry, this.node.id, this.droppedAt.get(group));
  }

  /**
   * As `adoptable`, with the description that counts this node in (production's
   * RangePlacement.adoptable): null when none does, undefined when the directory has no
   * word of the group (and this node never dropped it).
   */
  adoptableEntry(group: GroupId): SimRangeEntry | null | undefined {
    const entry = this.entries().get(group);
    if (entry === undefined) return this.droppedAt.has(group) ? null : undefined;
    return adoptable(entry, this.node.id, this.droppedAt.get(group)) ? entry : null;
  }

  /**
   * The nodes that host `group`, as the directory says: where a request for it is forwarded.
   * Its leader first, then its voters, those heard from recently before the others.
   */
  hostsOf(group: GroupId): NodeId[] {
    const entry = this.entries().get(group);
    if (entry === undefined) return [];
    const hosts = [...entry.voters, ...entry.learners].filter((id) => id !== this.node.id);
    const ordered = entry.leader !== null && hosts.includes(entry.leader) ? [entry.leader, ...hosts.filter((id) => id !== entry.leader)] : hosts;
    const reachable = new Set(this.state === null ? [] : this.reachable(this.state));
    return [...ordered.filter((id) => reachable.has(id)), ...ordered.filter((id) => !reachable.has(id))];
  }

  /** The groups this node hosts with their state, described as its peers are told. */
  private localEntries(): SimRangeEntry[] {
    const entries: SimRangeEntry[] = [];
    for (const group of this.node.hostedGroups()) {
      const local = this.node.local(group);
      if (local === null || local.lastIndex === 0) continue;
      const range = local.range === undefined ? {} : { start: local.range.start, end: local.range.end, epoch: local.range.epoch, spanSince: local.range.spanSince };
      entries.push({ group, term: local.term, role: local.role, leader: local.leader, voters: [...local.membership.voters], learners: [...local.membership.learners], applied: local.applied, ...range });
    }
    return entries;
  }

  /** Every group's freshest description, from the peers heard from recently and this node. */
  private entries(): Map<GroupId, SimRangeEntry> {
    const merged = new Map<GroupId, SimRangeEntry>();
    const add = (entry: SimRangeEntry): void => {
      const known = merged.get(entry.group);
      merged.set(entry.group, known === undefined ? entry : this.mutant === "directory-trusts-term" ? byTerm(known, entry) : fresher(known, entry));
    };
    const state = this.state;
    if (state !== null) for (const { atTick, entries } of state.peers.values()) if (state.ticks - atTick <= DIRECTORY_STALE_TICKS) entries.forEach(add);
    this.localEntries().forEach(add);
    return merged;
  }

  private broadcast(): void {
    const entries = this.localEntries();
    for (const peer of this.node.peerIds) if (peer !== this.node.id) this.node.sendDirectory(peer, entries);
  }

  /** This node and the peers heard from recently. */
  private reachable(state: IncarnationState): NodeId[] {
    return this.node.peerIds.filter((id) => id === this.node.id || (state.peers.has(id) && state.ticks - (state.peers.get(id)?.atTick ?? 0) <= DIRECTORY_STALE_TICKS));
  }

  /** Members unreachable for at least REPLACE_AFTER_TICKS. */
  private dead(state: IncarnationState, members: readonly NodeId[], reachable: ReadonlySet<NodeId>): NodeId[] {
    const dead: NodeId[] = [];
    for (const id of members) {
      if (reachable.has(id)) {
        state.downSince.delete(id);
        continue;
      }
      const since = state.downSince.get(id) ?? state.ticks;
      state.downSince.set(id, since);
      if (state.ticks - since >= REPLACE_AFTER_TICKS) dead.push(id);
    }
    return dead;
  }

  private placeOnce(state: IncarnationState): void {
    const members = this.node.local(DEFAULT_GROUP)?.membership.voters ?? [];
    const live = this.reachable(state);
    const dead = this.dead(state, members, new Set(live));
    const entries = this.entries();
    this.leaveRemoved(state, entries);
    if (members.length <= this.replicationFactor || !this.node.stepsAllowed()) return;
    // Groups this node leads are described as its replica holds them now.
    const led = new Map<GroupId, LocalRange>();
    for (const group of this.node.hostedGroups()) {
      const local = this.node.local(group);
      if (group !== DEFAULT_GROUP && local !== null && local.role === "leader") led.set(group, local);
    }
    const ranges = [...entries.values()]
      .filter((entry) => entry.group !== DEFAULT_GROUP)
      .map((entry) => {
        const membership = led.get(entry.group)?.membership;
        return { id: entry.group, voters: membership?.voters ?? entry.voters, learners: membership?.learners ?? entry.learners };
      });
    const steps = placementPlan({ replicationFactor: this.replicationFactor, members, live, dead, ranges, ...(this.zones === undefined ? {} : { zones: this.zones }) }, this.mutant);
    for (const step of steps) {
      const local = led.get(step.range);
      if (local === undefined || state.stepping.has(step.range) || state.stepping.size >= PLACEMENT_STEPS_MAX) continue;
      this.take(state, local, step, live);
    }
  }

  private take(state: IncarnationState, local: LocalRange, step: PlacementStep, live: readonly NodeId[]): void {
    const { node } = this;
    const membership = local.membership;
    if (membership.outgoing.length > 0) return;
    const done = (ok: boolean, counted: "moves" | "transfers"): void => {
      state.stepping.delete(step.range);
      if (ok) this.counts[counted]++;
    };
    let started: boolean;
    if (step.kind === "remove" && step.node === node.id) {
      // A leader does not remove itself: it hands the group to another live voter, which decides again.
      const to = membership.voters.find((id) => id !== node.id && live.includes(id));
      if (to === undefined) return;
      node.trace(`[g${step.range}] placement: handing leadership to node ${to} before this replica is removed (${step.why})`);
      started = node.transfer(step.range, to, (moved) => done(moved, "transfers"));
    } else if (step.kind === "add") {
      node.trace(`[g${step.range}] placement: adding node ${step.node} as a learner, promoted once caught up (${step.why})`);
      started = node.changeMembership(step.range, { voters: membership.voters, learners: [...membership.learners, step.node], autoPromote: [...membership.autoPromote, step.node], context: membership.context }, (committed) => done(committed, "moves"));
    } else {
      node.trace(`[g${step.range}] placement: removing node ${step.node} (${step.why})`);
      started = node.changeMembership(
        step.range,
        {
          voters: membership.voters.filter((id) => id !== step.node),
          learners: membership.learners.filter((id) => id !== step.node),
          autoPromote: membership.autoPromote.filter((id) => id !== step.node),
          context: membership.context,
        },
        (committed) => done(committed, "moves"),
      );
    }
    if (started) state.stepping.add(step.range);
  }

  /**
   * Drops the groups this node was removed from: its replica applied a configuration without
   * it, or the group's leader describes one at a later index than this replica's log ends.
   */
  private leaveRemoved(state: IncarnationState, entries: ReadonlyMap<GroupId, SimRangeEntry>): void {
    const self = this.node.id;
    for (const group of this.node.hostedGroups()) {
      if (group === DEFAULT_GROUP) continue;
      const local = this.node.local(group);
      if (local === null) continue;
      const entry = entries.get(group);
      if (local.lastIndex === 0) {
        // Hosted for a message and never sent its state: once its group has long not counted this node in, it goes.
        const since = state.statelessSince.get(group) ?? state.ticks;
        state.statelessSince.set(group, since);
        const counted = entry === undefined || counts(entry, self);
        if (!counted && state.ticks - since > STATELESS_WAIT_TICKS) this.drop(state, group, entry?.applied ?? 0, "a replica made for a stray message was never sent its group's state");
        continue;
      }
      state.statelessSince.delete(group);
      if (isMember(local.membership, self)) this.wasMember.add(group);
      if (!this.wasMember.has(group)) {
        // Never a member since it was hosted: a stray once its group has long not counted it in.
        if (!strayReplica(local, entry, self)) state.straySince.delete(group);
        else {
          const since = state.straySince.get(group) ?? state.ticks;
          state.straySince.set(group, since);
          if (state.ticks - since > STATELESS_WAIT_TICKS) this.drop(state, group, Math.max(local.applied, entry?.applied ?? 0), "its state's configuration leaves this node out, and so does its group's");
        }
        continue;
      }
      const removed = removedFrom(local, entry, self);
      if (removed !== null) this.drop(state, group, Math.max(local.applied, removed === "by-leader" ? (entry?.applied ?? 0) : 0), removed === "here" ? "removed from the group" : "its leader describes the group without this node");
    }
  }

  private drop(state: IncarnationState, group: GroupId, applied: number, why: string): void {
    this.wasMember.delete(group);
    this.droppedAt.set(group, applied);
    state.statelessSince.delete(group);
    state.straySince.delete(group);
    state.stepping.delete(group);
    this.counts.drops++;
    this.node.trace(`[g${group}] placement: dropping this node's replica (${why})`);
    this.node.drop(group, applied);
  }
}

/** The `directory-trusts-term` mutant's ranking: `fresher` as it was, term before whether a leader is known. */
function byTerm<D extends RangeDescription>(a: D, b: D): D {
  if ((a.epoch ?? 0) !== (b.epoch ?? 0) || a.term === b.term) return fresher(a, b);
  return a.term > b.term ? a : b;
}

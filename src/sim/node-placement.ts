/**
 * How a simulated node hosts groups when they are placed on some nodes only (`synod sim
 * --replicas`): which groups an incarnation hosts from its start and with which bootstrap
 * voters, adopting a group when a member's message for it arrives, dropping one it left for
 * good, and what placement (placement.ts) sees of the node. The node (node.ts) keeps its
 * replicas; this module decides when one is made or dropped.
 */
import type { DurableState, NodeId } from "../core/engine/contract.js";
import { DEFAULT_GROUP, type GroupId } from "../core/multi/group.js";
import type { PlacementMutant } from "../core/multi/placement.js";
import type { Replica } from "../core/replica/replica.js";
import type { SimDisk } from "./disk.js";
import { admissionOf } from "./node-requests.js";
import { SimPlacement, type LocalRange, type PlacementCounts, type PlacementNode, type SimRangeEntry } from "./placement.js";

/** How a node takes part in placing groups on some nodes only. */
export interface SimNodePlacement {
  /** The replicas each group but group 0 keeps. */
  readonly replicationFactor: number;
  /** The voters group `group` starts with (every node for group 0); the node hosts it from the start when it is one. */
  initialVoters(group: GroupId): readonly NodeId[];
  readonly mutant: PlacementMutant | null;
  /** Each node's zone (`--zones`; absent: every node its own). */
  readonly zones?: ReadonlyMap<NodeId, string>;
  /** Whether steps may still be taken now. */
  stepsAllowed(): boolean;
}

/** What hosting needs of the node: its clock, its links, and its replicas of this incarnation. */
export interface HostingNode<M> {
  readonly id: NodeId;
  /** How many groups the run has: groups 0 .. groupCount - 1. */
  readonly groupCount: number;
  /** The node's disk, every group's records on it. */
  readonly disk: SimDisk<unknown>;
  /** Every node of the run. */
  readonly peerIds: readonly NodeId[];
  /** Virtual time between two of the node's ticks, in microseconds. */
  readonly tickIntervalMicros: number;
  after(delayMicros: number, action: () => void): void;
  alive(incarnation: number): boolean;
  paused(): boolean;
  /** The groups this incarnation hosts. */
  hostedGroups(): readonly GroupId[];
  /** This incarnation's replica of `group` (null: not hosted). */
  replica(group: GroupId): Replica<M, unknown, unknown> | null;
  /** What `group`'s KV store applied (undefined: not hosted, or the node runs a user's state machine). */
  kvApplied(group: GroupId): number | undefined;
  /** With splits: `group`'s keys and epoch as this node's replica holds them (null: no state yet, or no splits). */
  rangeOf(group: GroupId): { readonly start: string; readonly end: string | null; readonly epoch: number; readonly spanSince: number } | null;
  /** Hosts a replica of `group` in this incarnation, from its durable state (not started). */
  host(group: GroupId, durable: DurableState<unknown>): { start(): void };
  /** Stops `group`'s replica and forgets it (its records stay on the disk); false if not hosted. */
  unhost(group: GroupId): boolean;
  /** The hard state kept for a group whose replica, having applied `applied`, was dropped (EngineFactory.tombstone). */
  tombstone(last: unknown, applied: number): unknown;
  /** Sends this node's directory entries to `to`, over the link between the nodes. */
  sendDirectory(to: NodeId, entries: readonly SimRangeEntry[]): void;
  /** Traces about the node, and about one of its groups. */
  trace(text: string): void;
  traceGroup(group: GroupId, text: string): void;
  /** The status of `group`'s replica here may have changed. */
  onStatus(group: GroupId): void;
  /** The node dropped its replica of `group`: it left the group. */
  groupDropped(group: GroupId): void;
}

/** A node's hosting of placed groups, over its incarnations. */
export class SimNodeHosting<M> {
  /** Placing groups on some nodes only (`--replicas`), over every incarnation. */
  private readonly placement: SimPlacement;
  /**
   * Groups this node was a first voter of and has since left: durable knowledge (a real node
   * keeps it with the range's files gone), so a replica made again is not a bootstrap voter.
   */
  private readonly leftInitialGroups = new Set<GroupId>();

  constructor(
    private readonly node: HostingNode<M>,
    private readonly options: SimNodePlacement,
  ) {
    this.placement = new SimPlacement(this.placementNode(), options.replicationFactor, options.mutant, options.zones);
  }

  /** Placement's counts over every incarnation. */
  get placementCounts(): PlacementCounts {
    return this.placement.placementCounts;
  }

  /** Incarnation `incarnation` started (see SimPlacement.start). */
  start(incarnation: number): void {
    this.placement.start(incarnation);
  }

  /** A peer's directory message arrived (in this incarnation, through the node's inputs). */
  hear(from: NodeId, entries: readonly SimRangeEntry[]): void {
    this.placement.hear(from, entries);
  }

  /** The directory's description of `group` when it counts this node in (SimPlacement.adoptableEntry). */
  adoptableEntry(group: GroupId): SimRangeEntry | null | undefined {
    return this.placement.adoptableEntry(group);
  }

  /** The nodes the directory says host `group`, its leader first: where a request for it is forwarded. */
  hostsOf(group: GroupId): NodeId[] {
    return this.placement.hostsOf(group);
  }

  /**
   * Of `all` the groups, those an incarnation hosts from its start: group 0, those it is a
   * first voter of (unless it left them since), and those with records on its disk.
   */
  groupsAtStart(all: readonly GroupId[]): GroupId[] {
    const onDisk = new Set(this.node.disk.groupsWithLog());
    return all.filter((group) => group === DEFAULT_GROUP || onDisk.has(group) || (!this.leftInitialGroups.has(group) && this.options.initialVoters(group).includes(this.node.id)));
  }

  /** The voters `group`'s engine starts from when its disk holds no configuration: none for a group it joins later. */
  bootstrapPeers(group: GroupId): readonly NodeId[] {
    const initial = this.options.initialVoters(group);
    return initial.includes(this.node.id) && !this.leftInitialGroups.has(group) ? initial : [];
  }

  /**
   * A member's message for a group this node does not host: when the directory counts this
   * node in (at a later index than any where it left the group), the node hosts it now, with
   * nothing, and the group's leader sends it a snapshot or the log, as to a learner it added.
   * A stray message's replica is dropped later (placement.ts).
   */
  adopt(group: GroupId): void {
    const { node } = this;
    if (group < 0 || group >= node.groupCount || node.replica(group) !== null || !this.placement.adoptable(group)) return;
    // Nothing but the tombstone of a group it left: the term and vote it must keep.
    const durable = node.disk.replay(group);
    if (durable.snapshot !== null || durable.entries.length > 0) throw new Error(`node ${node.id} holds a log of group ${group} it does not host`);
    const hosted = node.host(group, durable);
    node.traceGroup(group, "hosting a replica for a member's message");
    hosted.start();
    node.onStatus(group);
  }

  /** Stops hosting `group` for good: its replica stops, the router forgets it, its records leave the disk. */
  private dropGroup(group: GroupId, applied: number): void {
    const { node } = this;
    if (!node.unhost(group)) return;
    node.disk.dropGroup(group, (last) => node.tombstone(last, applied));
    if (this.options.initialVoters(group).includes(node.id)) this.leftInitialGroups.add(group);
    node.groupDropped(group);
  }

  /** What placement sees of this node: its clock, its hosted groups, their configuration changes, its links. */
  private placementNode(): PlacementNode {
    const { node } = this;
    const replicaOf = (group: GroupId): Replica<M, unknown, unknown> => {
      const replica = node.replica(group);
      if (replica === null) throw new Error(`node ${node.id} hosts no replica of group ${group}`);
      return replica;
    };
    const describe = (group: GroupId): LocalRange | null => {
      const replica = node.replica(group);
      if (replica === null) return null;
      const engine = replica.engine;
      const status = engine.status();
      const membership = engine.membership?.();
      if (membership === undefined) return null;
      const applied = node.kvApplied(group) ?? status.commitIndex;
      let appliedMembership = membership;
      try {
        appliedMembership = engine.membershipAt?.(applied) ?? membership;
      } catch {
        // Compacted past: the latest is what this replica holds.
      }
      const range = node.rangeOf(group);
      return { term: status.term, role: status.role, leader: status.leader, lastIndex: status.lastIndex, applied, membership, appliedMembership, ...(range === null ? {} : { range }) };
    };
    return {
      id: node.id,
      peerIds: node.peerIds,
      tickIntervalMicros: node.tickIntervalMicros,
      after: (delayMicros, action) => node.after(delayMicros, action),
      alive: (incarnation) => node.alive(incarnation),
      paused: () => node.paused(),
      stepsAllowed: () => this.options.stepsAllowed(),
      hostedGroups: () => node.hostedGroups(),
      local: describe,
      sendDirectory: (to, entries) => node.sendDirectory(to, entries),
      changeMembership: (group, change, done) =>
        admissionOf<{ readonly index: number }>((waiter) => replicaOf(group).changeMembership(change, { resolve: (result) => (waiter.resolve(result), done(true)), reject: (error) => (waiter.reject(error), done(false)) })).accepted,
      transfer: (group, to, done) =>
        admissionOf<{ readonly leader: NodeId; readonly term: number }>((waiter) => replicaOf(group).transferLeadership(to, { resolve: (moved) => (waiter.resolve(moved), done(true)), reject: (error) => (waiter.reject(error), done(false)) })).accepted,
      drop: (group, applied) => this.dropGroup(group, applied),
      trace: (text) => node.trace(text),
    };
  }
}

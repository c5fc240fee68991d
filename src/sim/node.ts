import type { Admission, DurableState, Engine, LogEntry, MembershipChange, NodeId } from "../core/engine/contract.js";
import { KvReplica } from "../core/kv/kv-replica.js";
import type { Applied } from "../core/kv/model.js";
import { SELF_ASSIGNED_SESSIONS_FROM, type KvStore } from "../core/kv/store.js";
import { createKvStore, isTxnCoordinatorMutant, isTxnStoreMutant } from "../core/kv/mutants.js";
import type { TxnPhaseOperation } from "../core/kv/txn-coordinator.js";
import { SimTxnService, type PhaseAnswer, type SimTxnRequest, type SimTxnResponse } from "./txn-node.js";
import type { LeaseRequest } from "./lease-workload.js";
import type { LockRequest, LockResponse } from "./lock-workload.js";
import { admissionOf, refuseKvRequest, serveKvRequest, serveLeaseRequest, serveLockRequest } from "./node-requests.js";
import type { LogStorage, Network, ReplicaObserver } from "../core/replica/contract.js";
import type { Replica } from "../core/replica/replica.js";
import { EmbeddedReplica, EmbeddedStateMachine, highestSequenceIn, type EmbeddedApplied } from "../core/replica/embedded.js";
import { GroupCommit } from "../core/multi/group-commit.js";
import { DEFAULT_GROUP, groupOfKey, type GroupEnvelope, type GroupId } from "../core/multi/group.js";
import { HeldBirths } from "../core/multi/held-births.js";
import { heldFirstStateOf } from "../core/kv/split.js";
import { SimLeaderBalancing, type BalancingNode } from "./leader-balancing.js";
import { createRouter } from "../core/multi/mutants.js";
import type { GroupRouter } from "../core/multi/router.js";
import type { SimDisk } from "./disk.js";
import { SimProcessIo } from "./node-io.js";
import { kvStateOf, type ReplicaState } from "./check/replica-state.js";
import type { ClientRequest } from "./messages.js";
import { SimNodeLiveness, type QuiescenceCounts } from "./node-liveness.js";
import type { PlacementCounts, SimRangeEntry } from "./placement.js";
import { SimNodeHosting, type HostingNode } from "./node-placement.js";
import { SimNodeSplits, type SplitsNode } from "./node-splits.js";
import type { NodeHost, SimNodeApplication, SimNodeOptions } from "./node-contract.js";

export type { QuiescenceCounts, SimQuiesceOptions } from "./node-liveness.js";
export type { SimNodePlacement } from "./node-placement.js";
export type { NodeHost, SimNodeApplication, SimNodeOptions } from "./node-contract.js";

/**
 * The leader's log keeps up to this many entries a live follower still needs (the replica's
 * catch-up entries): fewer than production's 5,000, to fit runs of seconds.
 */
export const SIM_CATCH_UP_ENTRIES = 1000;


/** What a node runs above its replica: the KV request layer, or a user's state machine's. */
interface HostedReplica<M> {
  readonly replica: Replica<M, unknown, unknown>;
  start(): void;
}

const PENDING_REQUESTS_MAX = 1_000_000;
/**
 * Results that are no client's write taking effect: a clock entry (a node's own, with a no-op
 * result), a command rejected (nothing applied); with splits, a range id or a split (a node's
 * own commands, which a new leader may propose again, the second then rejected), and a write
 * refused as a range mismatch (nothing applied).
 */
const NOT_CLIENT_WRITES: ReadonlySet<string> = new Set(["noop", "clock", "rejected", "range-id", "split", "range-mismatch"]);

export function requestKey(clientId: number, sequence: number): string {
  return `${clientId}:${sequence}`;
}

/**
 * One simulated process: the production replica (core/replica) and KV request layer
 * (core/kv/kv-replica.ts), run over a disk that survives crashes, simulated links and
 * virtual time. What is here is only what is simulation: crashes (the process and its
 * volatile state are lost; a new incarnation recovers from the disk), pauses (the process
 * freezes; inputs queue and its timers do not fire; on waking it catches up the ticks its
 * monotonic clock says it missed, then handles what queued), and fsync latency.
 */
export class SimNode<M> {
  readonly id: NodeId;
  /** One disk for every group the node hosts (records tagged by group), as the node's WAL. */
  readonly disk: SimDisk<unknown>;
  /** How many groups the node hosts a replica of: groups 0 .. groupCount - 1. */
  readonly groupCount: number;
  /** By group: request keys of every write applied by this incarnation's state machine. */
  private appliedByGroup: Set<string>[] = [];
  up = true;
  paused = false;
  incarnation = 0;
  /**
   * Snapshots group 0's replica installed from a leader, over every incarnation: the group
   * the scenarios steer and watch (the others install their own, which a scenario's
   * per-group bound must not count).
   */
  snapshotsInstalled = 0;
  /** Counts pauses, so a timer set for one pause cannot end a later one. */
  pauses = 0;
  /** By group: this incarnation's replica of each group it hosts. */
  private hosted = new Map<GroupId, HostedReplica<M>>();
  /** By group: the KV request layer (empty when the node runs a user's state machine). */
  private kvNodes = new Map<GroupId, KvReplica<M, unknown>>();
  /** With splits: the ranges this incarnation started from a held first state, and the splits their parents keep (core/multi/held-births.ts). */
  private heldBirths = new HeldBirths();
  /** This incarnation's group commit (null with one group). */
  private commit: GroupCommit | null = null;
  /** Hosting groups placed on some nodes only (`--replicas`), over every incarnation. */
  private readonly placement: SimNodeHosting<M> | null;
  /** With splits: the ranges' spans, their children, and the requests named for them (null without). */
  readonly splitting: SimNodeSplits<M> | null;
  /** Hands each arriving envelope to its group's replica; one per incarnation. */
  private router: GroupRouter<M>;
  /** The process's clock, disk and group commit as its replicas see them. */
  private readonly io: SimProcessIo;
  private appNode: EmbeddedReplica<M, unknown, unknown> | null = null;
  /** The node-level liveness that wakes quiet groups, over every incarnation (quiescence only). */
  private readonly liveness: SimNodeLiveness | null;
  /** Spreading leaderships, over every incarnation (`--balance-leaders` only). */
  private readonly balancing: SimLeaderBalancing | null;
  /** Inputs that arrived while paused, replayed in order on resume. */
  private deferred: (() => void)[] = [];
  private startedIncarnation = -1;
  /** This incarnation's coordinator of transactions across groups (txn workloads only). */
  private txnService: SimTxnService | null = null;

  constructor(
    private readonly options: SimNodeOptions<M>,
    disk: SimDisk<unknown>,
    private readonly host: NodeHost<M>,
  ) {
    this.id = options.id;
    this.disk = disk;
    this.groupCount = options.groups ?? 1;
    if (this.groupCount > 1 && options.application !== undefined) throw new Error("a user's state machine runs in one group only");
    this.io = new SimProcessIo({ now: () => host.now(), after: (delayMicros, action) => host.after(delayMicros, action), afterFsync: (action) => host.afterFsync(this, action) }, { alive: (incarnation) => this.alive(incarnation), paused: () => this.paused, input: (incarnation, action) => this.input(incarnation, action) }, disk, options.clockRate, this.groupCount);
    this.placement = options.placement === undefined || options.placement === null ? null : new SimNodeHosting(this.hostingNode(), options.placement);
    this.splitting = options.splits === undefined || options.splits === null ? null : new SimNodeSplits(this.splitsNode(), options.splits);
    this.router = this.createReplicas();
    this.liveness = options.quiesce === undefined || options.quiesce === null ? null : new SimNodeLiveness(options.quiesce, this.livenessNode());
    this.balancing = options.balanceLeaders === true ? new SimLeaderBalancing(this.balancingNode()) : null;
  }

  /** Leadership moves this node started, over every incarnation (`--balance-leaders`). */
  get leadershipMoves(): number {
    return this.balancing?.moves ?? 0;
  }

  /** What leadership balancing sees of this node: its clock, who leads its groups, and transfers. */
  private balancingNode(): BalancingNode {
    return {
      id: this.id,
      peerIds: this.options.peerIds ?? [],
      tickIntervalMicros: Math.max(1, Math.round(this.options.tickMicros * this.options.clockRate)),
      after: (delayMicros, action) => this.host.after(delayMicros, action),
      alive: (incarnation) => this.alive(incarnation),
      paused: () => this.paused,
      suspects: (peer) => this.liveness?.suspects(peer) ?? false,
      leaders: () => new Map([...this.hosted].map(([group, hosted]) => [group, hosted.replica.engine.status().leader] as const)),
      transfer: (group, to, done) => {
        const admission = admissionOf<{ readonly leader: NodeId; readonly term: number }>((waiter) =>
          this.replicaOf(group).transferLeadership(to, { resolve: (moved) => (waiter.resolve(moved), done()), reject: (error) => (waiter.reject(error), done()) }),
        );
        return admission.accepted;
      },
    };
  }

  /** Group 0's engine: the one the scenarios steer. */
  get engine(): Engine<M, unknown> {
    return this.engineOf(DEFAULT_GROUP);
  }

  engineOf(group: GroupId): Engine<M, unknown> {
    return this.replicaOf(group).engine;
  }

  /** Request keys of every write group 0's state machine applied (this incarnation). */
  get appliedRequests(): Set<string> {
    return this.appliedRequestsOf(DEFAULT_GROUP);
  }

  appliedRequestsOf(group: GroupId): Set<string> {
    return this.appliedByGroup[group] ?? new Set();
  }

  get kv(): KvStore {
    return this.kvLayer(DEFAULT_GROUP).kv;
  }

  /** `group`'s KV state here, as a snapshot with the index it applied (null: not hosted, no state yet, or a user's state machine). */
  kvStateOf(group: GroupId): Omit<ReplicaState, "node"> | null {
    if (this.splitting !== null) return this.splitting.stateOf(group);
    const kv = this.kvNodes.get(group)?.kv;
    return kv === undefined ? null : kvStateOf(kv);
  }

  /** The groups this incarnation hosts, by increasing id (splits add to them). */
  hostedGroups(): GroupId[] {
    return [...this.hosted.keys()].sort((a, b) => a - b);
  }

  /** Whether this incarnation hosts a replica of `group` (always, unless groups are placed on some nodes only). */
  hosts(group: GroupId): boolean {
    return this.hosted.has(group);
  }

  /** Placement's counts over every incarnation (zeros without --replicas). */
  get placementCounts(): PlacementCounts {
    return this.placement?.placementCounts ?? { moves: 0, transfers: 0, drops: 0 };
  }

  private replicaOf(group: GroupId): Replica<M, unknown, unknown> {
    const hosted = this.hosted.get(group);
    if (hosted === undefined) throw new Error(`node ${this.id} hosts no replica of group ${group}`);
    return hosted.replica;
  }

  private kvLayer(group: GroupId): KvReplica<M, unknown> {
    const kvNode = this.kvNodes.get(group);
    if (kvNode === undefined) throw new Error(`node ${this.id} runs a user's state machine, not the KV store`);
    return kvNode;
  }

  /** Starts the process (its replicas' timers): at boot, and at each restart. */
  start(): void {
    if (!this.up || this.startedIncarnation === this.incarnation) return;
    this.startedIncarnation = this.incarnation;
    for (const hosted of this.hosted.values()) hosted.start();
    this.liveness?.start(this.incarnation);
    this.placement?.start(this.incarnation);
    this.balancing?.start(this.incarnation);
    this.txnService?.start();
  }

  /** Quiescence's counts over every incarnation (zeros without quiescence). */
  get quiescenceCounts(): QuiescenceCounts {
    return this.liveness?.quiescenceCounts ?? { pings: 0, groupTicks: 0, quietGroupTicks: 0, wakes: 0 };
  }

  /** What the node-level liveness sees of this node: its clock, its links, its replicas. */
  private livenessNode() {
    return {
      id: this.id,
      peerIds: this.options.peerIds ?? [],
      tickIntervalMicros: Math.max(1, Math.round(this.options.tickMicros * this.options.clockRate)),
      after: (delayMicros: number, action: () => void) => this.host.after(delayMicros, action),
      sendPing: (to: NodeId, answer: boolean) => this.host.sendPing(this.id, to, answer),
      alive: (incarnation: number) => this.alive(incarnation),
      paused: () => this.paused,
      replicas: () => [...this.hosted].map(([group, hosted]) => ({ group, replica: hosted.replica })),
    };
  }

  /** A liveness ping from `from` arrived, or the answer to one of this node's (see SimNodeLiveness.hearPing). */
  hearPing(from: NodeId, answer: boolean): void {
    this.input(this.incarnation, () => this.liveness?.hearPing(from, answer));
  }

  /** This incarnation's replica of every group it hosts, recovered from the shared disk, and the router between them and the peers. */
  private createReplicas(): GroupRouter<M> {
    const id = this.id;
    const router = createRouter<M>({ send: (to, envelope) => (this.host.sendToPeer(id, to, envelope), true) }, this.options.routerMutant ?? null);
    this.router = router;
    this.commit = this.io.groupCommit(this.incarnation);
    this.hosted = new Map();
    this.kvNodes = new Map();
    this.appliedByGroup = [];
    this.appNode = null;
    this.heldBirths = new HeldBirths();
    for (const group of this.groupsAtStart()) {
      const durable = this.disk.recover(group);
      this.hostGroup(group, this.splitting?.recovered(group, durable) ?? durable);
    }
    this.txnService = this.createTxnService();
    return router;
  }

  /**
   * The groups an incarnation hosts from its start: every group; or, with groups placed on
   * some nodes only, group 0, those it is a first voter of (unless it left them since), and
   * those with records on its disk.
   */
  private groupsAtStart(): GroupId[] {
    const all = Array.from({ length: this.groupCount }, (_, group) => group);
    const placed = this.placement === null ? all : this.placement.groupsAtStart(all);
    if (this.splitting === null) return placed;
    // With both, a range the cluster started with is hosted where placement says; one born of a split, where its disk has it.
    const atStart = new Set(placed);
    return this.splitting.groupsAtStart().filter((group) => !this.splitting?.isFirstRange(group) || atStart.has(group));
  }

  /** The voters `group`'s engine starts from when its disk holds no configuration: none for a group it joins later. */
  private bootstrapPeers(group: GroupId): readonly NodeId[] {
    const placed = this.placement === null ? this.options.peers : this.placement.bootstrapPeers(group);
    return this.splitting === null ? placed : this.splitting.bootstrapPeers(group, placed);
  }

  /** Hosts a replica of `group` in this incarnation, from its durable state (waiting for a leader's snapshot at `awaitSnapshot` or later, when given). */
  private hostGroup(group: GroupId, durable: DurableState<unknown>, awaitSnapshot?: number): HostedReplica<M> {
    const router = this.router;
    // The replica is created after the router knows the group, so receive reads it lazily.
    const network = router.host(group, (from, message) => this.replicaOf(group).receive(from, message));
    const storage = this.commit === null ? this.io.storage(this.incarnation) : this.commit.storage(this.io.groupStorage(this.incarnation, group));
    if (this.options.application !== undefined) {
      this.appNode = this.createAppReplica(durable, this.options.application, network, storage);
      this.hosted.set(group, this.appNode);
      return this.appNode;
    }
    const kvNode = this.createKvReplica(durable, group, network, storage, awaitSnapshot);
    this.kvNodes.set(group, kvNode);
    this.hosted.set(group, kvNode);
    return kvNode;
  }

  /** The hard state kept for a group whose replica was dropped here (EngineFactory.tombstone). */
  private tombstone(last: unknown, applied: number): unknown {
    const { factory } = this.options;
    const kept = factory.tombstone === undefined ? last : factory.tombstone(last, applied);
    if (this.options.splits?.mutant !== "split-readded-replica-votes" || typeof kept !== "object" || kept === null) return kept;
    // The mutant: the tombstone keeps the term and vote, not what the replica applied (RaftHardState.forgot).
    const { forgot: _forgot, ...promises } = kept as Record<string, unknown>;
    return promises;
  }

  /** What hosting placed groups sees of this node: its clock, its links, its replicas (placement only). */
  private hostingNode(): HostingNode<M> {
    return {
      id: this.id,
      groupCount: this.groupCount,
      disk: this.disk,
      tombstone: (last, applied) => this.tombstone(last, applied),
      peerIds: this.options.peerIds ?? [],
      tickIntervalMicros: Math.max(1, Math.round(this.options.tickMicros * this.options.clockRate)),
      after: (delayMicros, action) => this.host.after(delayMicros, action),
      alive: (incarnation) => this.alive(incarnation),
      paused: () => this.paused,
      hostedGroups: () => [...this.hosted.keys()],
      replica: (group) => this.hosted.get(group)?.replica ?? null,
      kvApplied: (group) => this.kvNodes.get(group)?.kv.applied,
      rangeOf: (group) => {
        const range = this.splitting?.describe(group) ?? null;
        return range === null ? null : { start: range.start, end: range.end, epoch: range.epoch, spanSince: this.splitting?.spanSinceOf(group) ?? 0 };
      },
      host: (group, durable) => this.hostGroup(group, durable),
      unhost: (group) => this.unhostGroup(group),
      sendDirectory: (to, entries) => this.host.overNodeLink(this.id, to, (node) => node.hearDirectory(this.id, entries)),
      trace: (text) => this.host.trace(this.id, text),
      traceGroup: (group, text) => this.host.trace(this.id, this.groupText(group, text)),
      onStatus: (group) => this.host.onStatus(this, group),
      groupDropped: (group) => this.host.groupDropped(this, group),
    };
  }

  /** What the split glue sees of this node (splits only; node-splits.ts). */
  private splitsNode(): SplitsNode<M> {
    return {
      id: this.id,
      disk: this.disk,
      incarnation: () => this.incarnation,
      hostedGroups: () => [...this.hosted.keys()],
      replica: (group) => this.hosted.get(group)?.replica ?? null,
      layer: (group) => this.kvNodes.get(group) ?? null,
      host: (group, durable, awaitSnapshot) => this.hostGroup(group, durable, awaitSnapshot),
      onStatus: (group) => this.host.onStatus(this, group),
      soon: (action) => {
        const incarnation = this.incarnation;
        this.host.after(0, () => this.input(incarnation, action));
      },
      after: (delayMicros, action) => {
        const incarnation = this.incarnation;
        this.host.after(delayMicros, () => this.input(incarnation, action));
      },
      askRange: (to, group, answer) => {
        const incarnation = this.incarnation;
        this.host.overNodeLink(this.id, to, (peer) => peer.runInProcess(() => {
          // As production's GET /v1/shards: the range's span and epoch, the index its replica there applied, and the one its span was set at.
          const range = peer.splitting?.describe(group) ?? null;
          const applied = peer.splitting?.appliedOf(group) ?? 0;
          const spanSince = peer.splitting?.spanSinceOf(group) ?? 0;
          this.host.overNodeLink(to, this.id, (back) => back === this && this.input(incarnation, () => answer(range === null ? null : { ...range, applied, spanSince })));
        }));
      },
      trace: (group, text) => this.host.trace(this.id, this.groupText(group, text)),
    };
  }

  /** Stops `group`'s replica and forgets it: the router, the KV layer, what it applied (placement only; see SimNodeHosting). */
  private unhostGroup(group: GroupId): boolean {
    const hosted = this.hosted.get(group);
    if (hosted === undefined) return false;
    hosted.replica.stop();
    this.router.unhost(group);
    this.hosted.delete(group);
    this.kvNodes.delete(group);
    this.heldBirths.release(group);
    this.splitting?.dropped(group);
    this.appliedByGroup[group] = new Set();
    return true;
  }

  /** A peer's directory message arrived (placement only). */
  hearDirectory(from: NodeId, entries: readonly SimRangeEntry[]): void {
    this.input(this.incarnation, () => this.placement?.hear(from, entries));
  }

  private createEngine(durable: DurableState<unknown>, appliedIndex: number, peers: readonly NodeId[], awaitSnapshot?: number): Engine<M, unknown> {
    const { id, factory, mutant } = this.options;
    const engineOptions = { id, peers, durable, appliedIndex, seed: this.options.engineSeed(), ...(awaitSnapshot === undefined ? {} : { awaitSnapshot }) };
    return mutant === null ? factory.create(engineOptions) : factory.create(engineOptions, mutant);
  }

  /** A user's state machine over the same replica: fresh, restored from the disk's snapshot. */
  private createAppReplica(durable: DurableState<unknown>, application: SimNodeApplication<M>, network: Network<M>, storage: LogStorage<unknown>): EmbeddedReplica<M, unknown, unknown> {
    const { id, peers, factory } = this.options;
    const stateMachine = new EmbeddedStateMachine(application.createStateMachine(), id);
    if (durable.snapshot !== null) stateMachine.restore(durable.snapshot);
    this.appliedByGroup[DEFAULT_GROUP] = durable.snapshot === null ? new Set() : this.host.requestsThrough(durable.snapshot.index, DEFAULT_GROUP);
    const engine = this.createEngine(durable, stateMachine.appliedIndex, peers);
    const incarnation = this.incarnation;
    const validate = factory.validateMessage;
    return new EmbeddedReplica<M, unknown, unknown>({
      engine,
      ...(validate === undefined ? {} : { validateMessage: (value: unknown) => validate.call(factory, value) }),
      storage,
      stateMachine,
      network,
      clock: this.io.clock(incarnation),
      tickMs: this.options.tickMicros / 1000,
      requestTimeoutMs: this.options.requestTimeoutMicros / 1000,
      snapshotEntries: this.options.snapshotEveryEntries,
      catchUpEntries: SIM_CATCH_UP_ENTRIES,
      pendingRequestsMax: PENDING_REQUESTS_MAX,
      peerCount: Math.max(0, peers.length - 1),
      // Above every sequence an earlier incarnation used, as the runtime's wall clock is.
      firstSequence: Math.max(this.host.now() + 1, highestSequenceIn(durable.entries, id) + 1),
      firstReadId: 1 + this.options.engineSeed() * 65_536,
      observer: {
        ...this.observer(DEFAULT_GROUP),
        applied: (entries, results) => {
          for (let i = 0; i < entries.length; i++) this.noteAppApplied(application, entries[i] as LogEntry, results[i] as EmbeddedApplied<unknown>);
        },
      },
      replicaMutant: this.options.replicaMutant,
      onFatal: (error) => {
        throw error;
      },
    });
  }

  private noteAppApplied(application: SimNodeApplication<M>, entry: LogEntry, applied: EmbeddedApplied<unknown>): void {
    const request = applied.outcome === "applied" && applied.proposer !== null && applied.sequence !== null ? application.requestOf(applied.proposer, applied.sequence) : null;
    if (request !== null) this.appliedRequestsOf(DEFAULT_GROUP).add(request);
    this.host.onApply(this.id, entry, request, null, DEFAULT_GROUP);
    application.applied(this.id, entry, applied, request);
  }

  private createKvReplica(durable: DurableState<unknown>, group: GroupId, network: Network<M>, storage: LogStorage<unknown>, awaitSnapshot?: number): KvReplica<M, unknown> {
    const { id, factory } = this.options;
    const peers = this.bootstrapPeers(group);
    // With placement, the replica may be a learner of a group it did not start in: its peers are the run's.
    const peerCount = this.options.placement === undefined || this.options.placement === null ? Math.max(0, peers.length - 1) : Math.max(0, (this.options.peerIds ?? []).length - 1);
    const kvMutant = this.options.kvMutant ?? null;
    const txnMutant = this.options.txn?.mutant;
    const storeMutant = txnMutant !== undefined && txnMutant !== null && isTxnStoreMutant(txnMutant) ? txnMutant : kvMutant;
    const kv = this.splitting?.createStore(group, durable.snapshot?.data, awaitSnapshot !== undefined) ?? createKvStore(storeMutant, () => this.io.wallClockMs(), durable.snapshot?.data);
    this.host.kvStoreCreated(this.id, kv, group);
    this.appliedByGroup[group] = durable.snapshot === null ? new Set() : this.host.requestsThrough(durable.snapshot.index, group);
    // As production's node does (runtime/server/group-replica.ts): a held first state is not sent, and is replaced soon.
    const births = this.splitting === null ? null : this.heldBirths;
    const held = births === null || durable.snapshot === null ? null : heldFirstStateOf(durable.snapshot.data);
    if (held !== null) births?.add(group, held);
    const engine = this.createEngine(held === null || durable.snapshot === null ? durable : { ...durable, snapshot: { ...durable.snapshot, held: true } }, kv.applied, peers, awaitSnapshot);
    const incarnation = this.incarnation;
    const validate = factory.validateMessage;
    return new KvReplica<M, unknown>({
      engine,
      ...(validate === undefined ? {} : { validateMessage: (value: unknown) => validate.call(factory, value) }),
      storage,
      kv,
      network,
      clock: this.io.clock(incarnation),
      wallClockMs: () => this.io.wallClockMs(),
      kvMutant,
      tickMs: this.options.tickMicros / 1000,
      requestTimeoutMs: this.options.requestTimeoutMicros / 1000,
      snapshotEntries: this.options.snapshotEveryEntries,
      catchUpEntries: SIM_CATCH_UP_ENTRIES,
      historyRevisions: this.options.historyRevisions ?? 0,
      // As the runtime's replicas do: with quiescence, a quiet group's timer stops.
      restWhenQuiet: (this.options.quiesce ?? null) !== null,
      pendingRequestsMax: PENDING_REQUESTS_MAX,
      peerCount,
      nodeClientId: SELF_ASSIGNED_SESSIONS_FROM + id,
      // Above every sequence an earlier incarnation used, as the runtime's wall clock is.
      firstSequence: this.host.now() + 1,
      // Apart from every earlier incarnation's: a late answer to one of their reads must not
      // be taken for one of this incarnation's.
      firstReadId: 1 + this.options.engineSeed() * 65_536,
      observer: this.observer(group),
      replicaMutant: this.options.replicaMutant,
      ...(births === null || held === null ? {} : { heldSnapshot: { replaced: () => births.release(group) } }),
      ...(births === null || this.options.splits?.mutant === "split-drops-held-child" ? {} : { holdsCompaction: (index: number) => births.holds(group, index) }),
      onFatal: (error) => {
        throw error;
      },
    });
  }

  /** Over every incarnation: the groups' sync requests, and the disk syncs that served them. */
  get groupCommitCounts(): { readonly requests: number; readonly deviceSyncs: number } {
    return this.io.groupCommitCounts;
  }

  /** What the node traces about one group: as before groups existed when there is one. */
  private groupText(group: GroupId, text: string): string {
    return this.groupCount === 1 ? text : `[g${group}] ${text}`;
  }

  private observer(group: GroupId): ReplicaObserver<Applied> & ReplicaObserver<unknown> {
    return {
      applied: (entries: readonly LogEntry[], results: readonly unknown[]) => {
        for (let i = 0; i < entries.length; i++) this.noteApplied(entries[i] as LogEntry, results[i] as Applied, group);
      },
      snapshotInstalled: (snapshot) => {
        this.appliedByGroup[group] = this.host.requestsThrough(snapshot.index, group);
        if (group === DEFAULT_GROUP) this.snapshotsInstalled++;
        this.host.trace(this.id, this.groupText(group, `installed the leader's snapshot at ${snapshot.index}`));
      },
      snapshotTaken: (snapshot) => this.host.trace(this.id, this.groupText(group, `snapshot at ${snapshot.index} (${snapshot.data.length} bytes), log compacted`)),
      statusChanged: () => this.host.onStatus(this, group),
    };
  }

  private noteApplied(entry: LogEntry, applied: Applied, group: GroupId): void {
    if (entry.kind === "config") {
      this.host.onApply(this.id, entry, null, null, group);
      return;
    }
    if (applied.result.op === "clock") this.host.onClockApplied(this.id, entry, applied.request?.timeMs ?? 0, applied.result.expired);
    const key = applied.request === null || NOT_CLIENT_WRITES.has(applied.result.op) ? null : requestKey(applied.request.clientId - SELF_ASSIGNED_SESSIONS_FROM, applied.request.sequence);
    const output = applied.result.op === "cas" ? applied.result.succeeded : null;
    // A duplicate changed nothing: it does not count as this request taking effect (again).
    if (key !== null && !applied.duplicate) this.appliedRequestsOf(group).add(key);
    this.host.onApply(this.id, entry, applied.duplicate ? null : key, output, group);
  }

  private alive(incarnation: number): boolean {
    return this.up && this.incarnation === incarnation;
  }

  /** Runs `action` in the process as it is now (later if paused, never once it crashes); false if it is down. */
  runInProcess(action: () => void): boolean {
    if (!this.up) return false;
    this.input(this.incarnation, action);
    return true;
  }

  /** Runs an input now, or later if the process is paused. A crashed incarnation gets nothing. */
  private input(incarnation: number, action: () => void): void {
    if (!this.alive(incarnation)) return;
    if (this.paused) {
      this.deferred.push(action);
      return;
    }
    action();
  }

  /**
   * A peer's envelope arrived: its group's replica gets the message (an unknown group's is
   * dropped, or with placement hosted from now on: see adopt).
   */
  deliver(from: NodeId, envelope: GroupEnvelope<M>): void {
    this.input(this.incarnation, () => {
      if (!this.router.hosts(envelope.group)) {
        // One rule, production's: with splits, the range's span and whether it counts this node in (the directory's, with placement).
        if (this.splitting !== null) this.splitting.adopt(from, envelope.group, this.placement === null ? undefined : { described: this.placement.adoptableEntry(envelope.group) });
        else this.placement?.adopt(envelope.group);
      }
      this.router.deliver(from, envelope);
    });
  }

  request(request: ClientRequest): void {
    this.input(this.incarnation, () => this.handleRequest(request));
  }

  /** A lease client's request (sim/lease-workload.ts): a write in the client's session (side-requests.ts). */
  requestLease(request: LeaseRequest): void {
    this.input(this.incarnation, () => serveLeaseRequest(this.kvLayer(DEFAULT_GROUP), request, (response) => this.host.sendLeaseResponse(this.id, request.clientId, response)));
  }

  /**
   * A lock client's request (sim/lock-workload.ts): a write in its session, or a
   * linearizable read of the lock's contenders (side-requests.ts). `reply` carries the
   * answer back over the client link; a write whose outcome is unknown gets none.
   */
  requestLock(request: LockRequest, reply: (response: LockResponse) => void): void {
    this.input(this.incarnation, () => serveLockRequest(this.kvLayer(DEFAULT_GROUP), this.replicaOf(DEFAULT_GROUP), request, reply));
  }

  /** A transaction client's request (sim/txn-workload.ts), served by this incarnation's coordinator (txn-node.ts). */
  requestTxn(request: SimTxnRequest, reply: (response: SimTxnResponse) => void): void {
    this.input(this.incarnation, () => {
      if (this.txnService === null) throw new Error(`node ${this.id} serves no transactions: the run's workload is not txn or bank`);
      this.txnService.serve(request, reply);
    });
  }

  /** A phase of a transaction another node passed here (see SimTxnService): proposed through this node's replica of `group`. */
  servePhase(group: GroupId, operation: TxnPhaseOperation, reply: (answer: PhaseAnswer) => void): void {
    this.input(this.incarnation, () => this.kvLayer(group).write(operation, null, { resolve: (result) => reply({ result }), reject: (error) => reply({ error }) }));
  }

  /** With a transaction workload: the coordinator and recovery of this incarnation, over its groups' KV layers. */
  private createTxnService(): SimTxnService | null {
    const txn = this.options.txn;
    if (txn === undefined || txn === null) return null;
    const incarnation = this.incarnation;
    const coordinatorMutant = txn.mutant !== null && isTxnCoordinatorMutant(txn.mutant) ? txn.mutant : null;
    return new SimTxnService(
      {
        id: this.id,
        incarnation,
        groupCount: this.groupCount,
        layer: (group) => this.kvLayer(group),
        leads: (group) => this.replicaOf(group).engine.status().role === "leader",
        clock: this.io.clock(incarnation),
        trace: (text) => this.host.trace(this.id, text),
        requestTimeoutMs: this.options.requestTimeoutMicros / 1000,
        peers: this.options.peerIds ?? [],
        after: (ms, action) => this.host.after(Math.round(ms * 1000 * this.options.clockRate), () => this.input(incarnation, action)),
        // The phase goes to `to` and its answer comes back over the nodes' link, into this incarnation.
        forward: (to, group, operation, reply) =>
          this.host.overNodeLink(this.id, to, (node) => node.servePhase(group, operation, (answer) => this.host.overNodeLink(to, this.id, (back) => back === this && this.input(incarnation, () => reply(answer))))),
      },
      coordinatorMutant,
    );
  }

  /** A request of a user's workload (sim/app/harness.ts), handled by the application. */
  requestApp(request: unknown): void {
    const application = this.options.application;
    if (application === undefined) throw new Error(`node ${this.id} runs the KV store, not a user's state machine`);
    this.input(this.incarnation, () => {
      if (this.appNode !== null) application.handle(this.id, this.appNode, request);
    });
  }

  private handleRequest(request: ClientRequest, forwarded = false): void {
    if (this.splitting !== null) {
      // With placement, a range this node does not host is asked of one that does, as production's node forwards it.
      const range = this.splitting.rangeOf(request);
      if (this.placement !== null && !forwarded && !this.hosted.has(range)) return this.forward(range, request);
      return this.splitting.serve(request, (response) => this.host.sendToClient(this.id, request.clientId, response));
    }
    // Each key belongs to one group; its replica here serves it.
    const group = groupOfKey(request.key, this.groupCount);
    if (this.placement !== null && !this.hosted.has(group)) return this.forward(group, request);
    serveKvRequest(() => this.kvLayer(group), this.replicaOf(group), request, (response) => this.host.sendToClient(this.id, request.clientId, response));
  }

  /**
   * A request for a group this node does not host goes, over the link between the nodes, to
   * a node the directory says hosts it (its leader first), which answers the client itself.
   * Forwarded once only: a node there that no longer hosts the group drops it, and the
   * client's timeout sends it again. Refused when no host is known (it took no effect).
   */
  private forward(group: GroupId, request: ClientRequest): void {
    const to = this.placement?.hostsOf(group)[0];
    if (to === undefined) return refuseKvRequest(request, new Error(`node ${this.id} hosts no replica of group ${group} and knows no node that does`), (response) => this.host.sendToClient(this.id, request.clientId, response));
    // One HTTP request in production: never duplicated (Wire.overNodeLink).
    this.host.overNodeLink(this.id, to, (node) => node.serveForwarded(request), true);
  }

  /** A request another node forwarded here (placement only): served if this node hosts its group. */
  serveForwarded(request: ClientRequest): void {
    this.input(this.incarnation, () => {
      const group = this.splitting?.rangeOf(request) ?? groupOfKey(request.key, this.groupCount);
      if (this.hosted.has(group)) this.handleRequest(request, true);
    });
  }

  /** Loses the process: engine, state machine, requests, timers. The caller crashes the disk. */
  crash(): void {
    this.up = false;
    this.paused = false;
    this.incarnation++;
    this.deferred = [];
  }

  restart(): void {
    this.up = true;
    this.router = this.createReplicas();
    this.start();
    for (const group of this.hosted.keys()) this.host.onStatus(this, group);
  }

  /** Asks this node's engine to change the configuration (engines with membership); whether it took the request. */
  changeMembership(change: MembershipChange): Admission | null {
    if (!this.up || this.paused || this.engine.changeMembership === undefined) return null;
    return admissionOf((waiter) => this.replicaOf(DEFAULT_GROUP).changeMembership(change, waiter));
  }

  /** Asks this node's engine to hand leadership over (engines that support it); whether it took the request. */
  transferLeadership(to: NodeId | null): boolean {
    if (!this.up || this.paused || this.engine.transferLeadership === undefined) return false;
    return admissionOf((waiter) => this.replicaOf(DEFAULT_GROUP).transferLeadership(to, waiter)).accepted;
  }

  pause(): void {
    if (!this.up) return;
    this.paused = true;
    this.pauses++;
  }

  resume(): void {
    if (!this.up || !this.paused) return;
    this.paused = false;
    // As in the runtime, where ticks are counted by the monotonic clock: on waking, time
    // passes for the engine first (a leader sees its lease gone), and only then do the
    // inputs that queued up meanwhile arrive.
    for (const hosted of this.hosted.values()) hosted.replica.onTimer();
    const queued = this.deferred;
    this.deferred = [];
    for (const action of queued) {
      if (!this.up || this.paused) break;
      action();
    }
  }
}

/**
 * The engine contract: every consensus engine (Raft, Multi-Paxos, the simulator's control
 * engines) is a pure object driven from outside, in the shape of etcd-io/raft's
 * RawNode/Ready. One driver obeys it — `Replica` (core/replica/replica.ts) — and both the
 * runtime's node and the simulator host that same class, so the simulator runs exactly the
 * loop production runs.
 *
 * The driver loop:
 *   1. feed inputs: `tick()` (as many as the monotonic clock says are due, caught up before
 *      any message after a stall), `step(from, message)`, `propose(data)`,
 *      `readIndex(requestId)`, `transferLeadership`, `changeMembership`;
 *   2. if `hasReady()`, take `rd = ready()` (inputs that arrive together share one Ready);
 *   3. send `rd.messages` at once (they depend on nothing unwritten);
 *   4. save `rd.snapshot`, then `rd.entries`, then `rd.hardState`, and make them durable
 *      (one sync for all, and for whatever was saved before; none when `rd.mustSync` is
 *      false). While the sync runs, committed entries that are durable already (before the
 *      first entry any unsynced Ready wrote, none when a snapshot is unsynced) are applied:
 *      they are on a quorum's disks, this one's included ("early apply");
 *   5. only then send `rd.messagesAfterPersist`;
 *   6. install `rd.snapshot` into the state machine, apply the rest of
 *      `rd.committedEntries` in order, serve `rd.readStates` once applied reaches them;
 *   7. call `advance(rd)` once its writes are durable. Inputs may keep arriving between
 *      `ready()` and `advance()`. An engine may hand out the next Ready (`hasReady()` true)
 *      while earlier ones are still being made durable — its messages leave at once, its
 *      writes queue behind theirs — and the driver then advances them in the order taken.
 *      Committed entries are applied only once durable on this node (a Ready's own, after
 *      its sync; an earlier Ready's, after that one's). An engine that cannot pipeline says
 *      `hasReady()` false until the outstanding Ready is advanced;
 *   8. now and then (every so many applied entries), capture the state machine at its
 *      applied index, make that snapshot durable and drop the log behind it, then `compact`.
 */
import type { SynodError } from "../common/errors.js";
import type { Prng } from "../common/prng.js";

/** Node ids are positive safe integers, unique within a cluster. */
export type NodeId = number;

/**
 * One log entry. `data` is the state machine's command; an empty `data` is a no-op. An entry
 * of kind "config" is the engine's own: a cluster configuration (`Membership`, encoded by
 * the engine), which the driver writes and hands back like any entry but does not give the
 * state machine (it applies as a no-op).
 */
export interface LogEntry {
  readonly index: number;
  readonly term: number;
  readonly data: Uint8Array;
  readonly kind?: "config";
}

/** A state-machine snapshot covering every entry up to and including `index`. */
export interface Snapshot {
  readonly index: number;
  readonly term: number;
  readonly data: Uint8Array;
  /**
   * The configuration in force at `index`, for engines with membership: the log that held
   * it is gone. Absent in snapshots written before membership existed (the bootstrap
   * configuration then applies).
   */
  readonly membership?: Membership;
  /**
   * The state machine holds this state and `data` only names it (a range born of a split
   * whose records stayed in the node's store: src/core/kv/split.ts): it cannot be sent to a
   * peer. A leader whose snapshot is held sends none until the driver replaced it with a
   * full one (`compact`), which the driver does as soon as an entry past it applied, or at
   * once, at the same index, when a follower waits for it (`snapshotWanted`). Set by the host
   * when it loads the durable state; never stored.
   */
  readonly held?: boolean;
}

/**
 * Who is in the cluster (Raft thesis, chapter 4). Decisions need a majority of `voters`,
 * and during a joint configuration (`outgoing` not empty) a majority of `outgoing` as well.
 * Learners receive the log but neither vote nor count toward a majority. Ids are unique
 * across the three lists.
 */
export interface Membership {
  readonly voters: readonly NodeId[];
  /** The previous voters while the cluster is in a joint configuration; empty otherwise. */
  readonly outgoing: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** Learners the leader promotes to voters, one at a time, once each has caught up. */
  readonly autoPromote: readonly NodeId[];
  /** A joint configuration is left by the leader as soon as it commits (else: on request). */
  readonly autoLeave: boolean;
  /**
   * Opaque to the engine, replicated with the configuration: what the driver needs to know
   * about the members (the runtime's member addresses).
   */
  readonly context: Uint8Array;
}

/**
 * A requested configuration: the voters and learners wanted. A change of at most one voter
 * goes straight to the new configuration (thesis 4.1); anything larger, or `joint`, goes
 * through a joint configuration (thesis 4.3). While joint, the only change accepted is the
 * one that leaves it: the same `voters` again.
 */
export interface MembershipChange {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** Learners to promote automatically once caught up; a subset of `learners`. Default none. */
  readonly autoPromote?: readonly NodeId[];
  /** Go through a joint configuration even for a change of one voter. */
  readonly joint?: boolean;
  /** Leave the joint configuration automatically once it commits (default true). */
  readonly autoLeave?: boolean;
  readonly context: Uint8Array;
}

/** A linearizable read that became safe: serve it once the applied index reaches `index`. */
export interface ReadState {
  readonly requestId: number;
  readonly index: number;
}

export interface Outbound<M> {
  readonly to: NodeId;
  readonly message: M;
}

/**
 * What the engine asks the driver to do. `H` is the engine's small durable state (for Raft:
 * term, vote and commit index), opaque to the driver beyond being plain data.
 */
export interface Ready<M, H> {
  /** Durable state to write, or null when unchanged. */
  readonly hardState: H | null;
  /**
   * Whether this Ready's writes must be durable before `messagesAfterPersist` leave and
   * `advance` (etcd's MustSync). False when all that changed is what a crash may forget and
   * the node learns again (a commit index): the driver then saves the hard state, to be made
   * durable with a later write, and need not wait. Absent: true.
   */
  readonly mustSync?: boolean;
  /**
   * Entries to append. They replace every stored entry whose index is at or after
   * `entries[0].index` (a follower truncating a conflicting suffix).
   */
  readonly entries: readonly LogEntry[];
  /**
   * A snapshot from the leader to install before `entries`: the driver restores the state
   * machine from it and discards its whole stored log (the engine keeps a log that already
   * holds the snapshot's last entry, and then sends no snapshot).
   */
  readonly snapshot: Snapshot | null;
  /** Messages that may leave now. */
  readonly messages: readonly Outbound<M>[];
  /** Messages that may leave only after this Ready's writes are durable (e.g. a vote). */
  readonly messagesAfterPersist: readonly Outbound<M>[];
  /** Committed entries to apply, in index order, contiguous with what was applied before. */
  readonly committedEntries: readonly LogEntry[];
  readonly readStates: readonly ReadState[];
}

export type Role = "leader" | "follower" | "candidate" | "precandidate" | "learner";

/** A cheap view of the engine for drivers, metrics and checkers. */
export interface EngineStatus {
  readonly id: NodeId;
  readonly role: Role;
  /** Raft's term, Paxos' ballot round, a control engine's view number. */
  readonly term: number;
  readonly leader: NodeId | null;
  readonly commitIndex: number;
  readonly lastIndex: number;
  /** The last index compacted into a snapshot (0 when the log is whole). */
  readonly snapshotIndex: number;
}

/** How a read asks to be confirmed. */
export interface ReadOptions {
  /**
   * Let the leader confirm the read from its lease, without a heartbeat round, where the
   * engine supports leases and its configuration allows them; otherwise the read takes the
   * ordinary round. Absent: the engine's configured default.
   */
  readonly lease?: boolean;
}

/** The answer to `propose` or `readIndex`: taken (it may still fail to commit) or refused. */
export type Admission = { readonly accepted: true } | { readonly accepted: false; readonly error: SynodError };

/** What an engine starts from: the durable state read back from disk (empty for a new node). */
export interface DurableState<H> {
  readonly hardState: H | null;
  readonly snapshot: Snapshot | null;
  /** Entries after the snapshot, contiguous, in index order. */
  readonly entries: readonly LogEntry[];
}

export interface Engine<M, H> {
  readonly id: NodeId;
  /** Advances logical time by one tick. */
  tick(): void;
  /** Delivers a message from a peer. Messages are immutable: the engine must not modify them. */
  step(from: NodeId, message: M): void;
  /** Asks to replicate `data` as a new entry. */
  propose(data: Uint8Array): Admission;
  /** Asks for a linearizable read; it completes through `Ready.readStates`. */
  readIndex(requestId: number, options?: ReadOptions): Admission;
  /**
   * For engines with a leader: hands leadership to `to` (null: the engine picks the most
   * up-to-date member). Accepted means started; it succeeds when `status().leader` becomes
   * the target, and gives up after an election timeout.
   */
  transferLeadership?(to: NodeId | null): Admission;
  /**
   * For engines with membership: asks the leader to change the configuration. Accepted
   * means the configuration entry is in the leader's log; it takes effect on every member as
   * soon as that member appends it, and is done once committed. Refused with
   * MembershipChangeInProgressError while another change has not committed.
   */
  changeMembership?(change: MembershipChange): Admission;
  /** The configuration this engine acts on: the latest in its log, committed or not. */
  membership?(): Membership;
  /** The configuration in force at `index`, for an index between the snapshot's and the log's end. */
  membershipAt?(index: number): Membership;
  hasReady(): boolean;
  ready(): Ready<M, H>;
  /** Acknowledges that everything in `ready` was done. */
  advance(ready: Ready<M, H>): void;
  status(): EngineStatus;
  /**
   * The term of the entry at `index` in this engine's log, or null when it is not held
   * (compacted or beyond the end). Used by the simulator's log checkers.
   */
  entryTerm(index: number): number | null;
  /**
   * The entry at `index` in this engine's log, or null when it is not held. Used by the
   * simulator's one-value-per-slot checker, to compare what nodes hold as chosen.
   */
  entry?(index: number): LogEntry | null;
  /**
   * Log compaction, for engines that support it: the state machine has applied every entry
   * through `index` and captured its state as `data`, which the driver has already made
   * durable. The engine keeps the snapshot (to send to followers too far behind) and drops
   * its log through `index`. Returns the snapshot, or null if one at or after `index` exists.
   */
  compact?(index: number, data: Uint8Array): Snapshot | null;
  /**
   * For engines that send snapshots, on a leader a follower waits for one from (`snapshotWanted`)
   * while the driver may not compact its log yet (a held first state the log starts with, a
   * split whose child's records are only where the split left them): the state machine has
   * applied every entry through `index` and captured its state as `data`, not necessarily
   * durable. The engine sends it to followers and keeps its log and its own durable snapshot
   * as they are; a later `compact` replaces it. Returns the snapshot, or null if a full one
   * at or after `index` exists.
   */
  offerSnapshot?(index: number, data: Uint8Array): Snapshot | null;
  /**
   * For engines that send snapshots, on the leader: how far the followers that are still
   * answering have what they need — null when not leading or nobody answers. Each needs
   * the entries after that point from the leader's log; compacting them away sends it a
   * snapshot instead. The replica holds compaction back to this floor, within bounds
   * (TiKV's log GC compacts to the followers' matched index the same way; etcd keeps a
   * fixed catch-up tail of entries for the same reason).
   */
  compactionFloor?(): CompactionFloor | null;
  /**
   * For engines that send snapshots, on the leader: the least index of a snapshot a
   * follower waits for (EngineOptions.awaitSnapshot) that this engine's latest snapshot does
   * not reach; 0 when none waits. The replica captures one as soon as it has applied that far.
   */
  snapshotWanted?(): number;
  /**
   * For engines with a leader, on the leader: where each other member's copy of the log
   * stands, as the leader tracks it (etcd-io/raft's Progress); null when not leading. A
   * view for operators (the status route, the dashboard), read at most a few times a
   * second: it allocates, and nothing in the engine depends on it.
   */
  replication?(): readonly ReplicationProgress[] | null;
  /**
   * For engines that quiesce (Raft with `quiesce` on): whether this engine is quiet — an
   * idle group's member that ignores ticks (no heartbeats, no election timeout) until a
   * proposal, a read, a message or `wake` wakes it. Absent: never quiet.
   */
  quiescent?(): boolean;
  /**
   * Wakes a quiet engine (a no-op otherwise). The node calls it when it suspects that the
   * node of the engine's leader failed: a quiet follower would never notice by itself.
   */
  wake?(): void;
  /**
   * A follower drops its leader and that leader's lease, so it grants votes at once
   * (etcd-io/raft's ForgetLeader); a no-op on a leader or candidate. Wakes a quiet engine.
   * When it campaigns (`CampaignTiming`): by default after what is left of its randomized
   * election timeout.
   */
  forgetLeader?(campaign?: CampaignTiming): void;
}

/**
 * When a follower that forgot its leader campaigns: `remaining`, after what is left of its
 * randomized election timeout; `now`, at its next tick; `full`, after a whole randomized
 * timeout from now. When the node knows its leader's node is gone, one follower of each
 * group campaigns `now` and the others `full` (core/multi/liveness.ts, `campaignTiming`):
 * left to their timers, the followers woken together campaign together and split the vote.
 */
export type CampaignTiming = "remaining" | "now" | "full";

/**
 * The election timer (ticks elapsed) a follower that forgot its leader goes on from, for an
 * engine that campaigns once `randomizedTicks` have elapsed. With no leader it grants votes
 * whatever the timer says (a restarted node's startup guard aside, which clears once
 * `electionTicks` have elapsed).
 */
export function forgottenElapsed(campaign: CampaignTiming, electionTicks: number, randomizedTicks: number): number {
  if (campaign === "now") return Math.max(electionTicks, randomizedTicks - 1);
  if (campaign === "full") return 0;
  return electionTicks;
}

/** One member's replication, as its leader sees it (Engine.replication). */
export interface ReplicationProgress {
  readonly id: NodeId;
  /** The highest index known to be in the member's log. */
  readonly match: number;
  /** The next index the leader sends it. */
  readonly next: number;
  /** probe: finding where the logs agree, one message at a time; replicate: streaming; snapshot: sending a snapshot. */
  readonly state: "probe" | "replicate" | "snapshot";
  /** Append (accept) messages sent and not yet acknowledged. */
  readonly inflight: number;
  /** Heard from within the last election timeout or two. */
  readonly active: boolean;
}

/** See Engine.compactionFloor; each part is null when no follower is in that case. */
export interface CompactionFloor {
  /**
   * The oldest snapshot being sent to a follower. Compacting past it sends that follower a
   * newer snapshot as soon as it has installed this one; when snapshots take longer to send
   * than the log takes to outgrow them, it chases snapshots without end.
   */
  readonly receiving: number | null;
  /** The lowest match of a follower replicating from the log. */
  readonly replicating: number | null;
}

/** Everything an engine is built from. */
export interface EngineOptions<H> {
  readonly id: NodeId;
  /**
   * The bootstrap voters, this node included, used until the log or a snapshot holds a
   * configuration. Empty for a node that joins an existing cluster: it waits, without
   * campaigning, for a leader to send it the log.
   */
  readonly peers: readonly NodeId[];
  readonly durable: DurableState<H>;
  /**
   * The state machine has applied every entry up to here (its own durable record, or the
   * snapshot's index for a volatile one); committed entries after it will be delivered.
   */
  readonly appliedIndex: number;
  /** A seed for the engine's own PRNG (election jitter). */
  readonly seed: number;
  /**
   * For engines that send snapshots: the state machine starts empty but does not hold the
   * group's first state (a range's replica hosted with no state, over the keys the range
   * holds now, after splits its log's first entries predate), so no entry of the log may
   * apply to it: the engine takes no entries until it installs a leader's snapshot at this
   * index or later, and asks its leader for one (raft-rs's request_snapshot). 0 or absent:
   * the log from its first entry builds the state. With a held snapshot in `durable` and
   * `appliedIndex` 0 (a held first state whose records the node's store lost), its log is
   * kept (it may have acknowledged those entries): the engine applies none of it, stands for
   * no election, and keeps the entries after the snapshot it installs.
   */
  readonly awaitSnapshot?: number;
}

/**
 * The engine-level safety properties a protocol claims (Raft's Figure 3, and Paxos' own:
 * at most one value chosen per slot, as every node's chosen prefix shows it, across all
 * nodes and all time). The simulator checks the ones claimed; linearizability and
 * durability of acknowledged writes are checked for every protocol.
 */
export type EngineInvariant = "election-safety" | "log-matching" | "leader-completeness" | "state-machine-safety" | "majority-commit" | "one-value-per-slot";

export const ALL_ENGINE_INVARIANTS: readonly EngineInvariant[] = ["election-safety", "log-matching", "leader-completeness", "state-machine-safety", "majority-commit", "one-value-per-slot"];

/** What a simulator scenario asks of a seed-drawn configuration. */
export interface TuningHints {
  /** One entry per message: old and new entries travel apart (Figure 8 histories). */
  readonly smallMessages?: boolean;
  /** Force leaders' step-down on losing their quorum on or off (Raft's CheckQuorum). */
  readonly checkQuorum?: boolean;
  /** Force lease reads on (with CheckQuorum) or off, where the engine has them. */
  readonly leaseReads?: boolean;
  /** Force the probe before a campaign (Raft's PreVote, Paxos' probe) on or off. */
  readonly preVote?: boolean;
  /** Snapshots sent in the smallest chunks, so sending one takes many round trips. */
  readonly smallSnapshotChunks?: boolean;
  /** Idle groups go quiet (engines that quiesce: `EngineFactory.quiesces`). */
  readonly quiesce?: boolean;
}

/** An engine factory: the one place a driver learns which protocol it runs. */
export interface EngineFactory<M = unknown, H = unknown> {
  readonly name: string;
  readonly description: string;
  /** Whether its engines implement `compact` (log compaction and snapshots). */
  readonly compacts?: boolean;
  /** Whether its engines implement `changeMembership` (and start empty when `peers` is). */
  readonly reconfigures?: boolean;
  /** Whether its engines can go quiet when idle (`quiescent`, `wake`; TuningHints.quiesce turns it on). */
  readonly quiesces?: boolean;
  /** Set when the protocol only works with this many nodes (a one-node control). */
  readonly fixedClusterSize?: number;
  readonly invariants: readonly EngineInvariant[];
  /**
   * What the protocol calls a log position and a leadership round, for checkers' messages
   * ("index" and "term" unless given: Paxos says "slot" and "ballot").
   */
  readonly logWords?: { readonly position: string; readonly round: string };
  /**
   * Deliberately broken variants, by name, with what each breaks. They exist so the
   * simulator can prove it catches each mistake; production never selects one.
   */
  readonly mutants: Readonly<Record<string, string>>;
  /**
   * The hard state a node keeps for a group once it has dropped its replica (the group
   * moved away: its log and state are deleted), from the last one saved and the index that
   * replica had applied; a replica hosted there again starts from it. Absent: the last one
   * is kept as it is.
   */
  tombstone?(last: H | null, applied: number): H | null;
  /** Builds an engine; `mutant`, when given, must be a key of `mutants`. */
  create(options: EngineOptions<H>, mutant?: string): Engine<M, H>;
  /** A one-line, human-readable rendering of a message, for traces. */
  describeMessage(message: M): string;
  /**
   * Checks a value decoded from a peer's bytes and returns it as a message, or throws
   * InvalidInputError: a driver that receives messages from a network calls it before
   * `step`, so a malformed message is dropped rather than trusted.
   */
  validateMessage?(value: unknown): M;
  /**
   * A factory whose engines use a configuration drawn from `prng` across the range the
   * protocol supports (message sizes, windows, timeouts, features), with a one-line
   * description: the simulator explores configurations, not only the defaults.
   */
  tuned?(prng: Prng, hints?: TuningHints): { readonly factory: EngineFactory<M, H>; readonly description: string };
}

/** An empty Ready's parts, for engines to build on. */
export const NO_ENTRIES: readonly LogEntry[] = Object.freeze([]);

/**
 * The replica: one consensus engine driven by the engine contract (core/engine/contract.ts)
 * against injected storage, state machine, network and clock. This is the one Ready loop;
 * the runtime's node hosts it over the WAL, LMDB, TCP and real time, and the simulator
 * hosts the very same class over `SimDisk`, simulated links and virtual time.
 *
 * Inputs (a peer's message, a proposal, a read, a tick) go into the engine at once, and a
 * pump is scheduled with `Clock.soon`, so every input that arrives together shares one
 * Ready: one append per follower, one heartbeat round for all the reads. A Ready is taken
 * in the contract's order: its `messages` leave at once; its snapshot, entries and hard
 * state are saved; its committed entries queue to be applied once durable here; its reads
 * wait for the state machine. Saved writes are made durable by one sync at a time, each
 * covering everything saved before it began (group commit). While a sync runs, the engine
 * may hand out the next Ready (Raft does): a leader's appends and heartbeats, and the next
 * proposals, leave while its own write flushes; the next sync covers them. A Ready is
 * finished — `messagesAfterPersist` sent, a leader's snapshot installed, `advance` — once
 * every Ready before it is finished and a sync covered its own writes; one that changed only
 * what a crash may forget (`mustSync` false: a commit index) waits for no sync.
 *
 * Early apply: committed entries are applied as soon as they are durable on this node —
 * before the first entry any unsynced Ready wrote — so an entry that an earlier Ready
 * wrote applies while the current sync runs: it is on a quorum's disks, this one's
 * included. The state machine is never ahead of the durable log.
 *
 * Time: ticks are counted from the monotonic clock, not from timer callbacks, so a stalled
 * event loop (or a paused process) catches up on the ticks it missed when it wakes — before
 * any message reaches the engine, because a leader's lease depends on its ticks not
 * running slow; a replica that does not lead catches up a few at most and skips the rest
 * (FOLLOWER_CATCH_UP_TICKS_MAX), which only makes it wait longer. With `rest`, the timer
 * stops while the engine is quiet and starts again with the next input: a quiet engine
 * counts no time, so nothing is owed to it.
 *
 * Snapshots: every `snapshotEntries` applied entries the state machine is captured (a piece
 * per `soon`, so a large state does not stall the node), the storage writes it
 * (`prepareSnapshot`, possibly in the background), then — when no sync runs — compacts the
 * log behind it, and only then is the engine told to drop its entries.
 */
import { assert } from "../common/assert.js";
import { InvalidInputError } from "../common/errors.js";
import type { CampaignTiming, Engine, LogEntry, Membership, MembershipChange, NodeId, Ready, ReadOptions, Snapshot } from "../engine/contract.js";
import type { Clock, LogStorage, Network, ProposalKey, ReplicaObserver, StateMachine, Waiter } from "./contract.js";
import { StoppedError, TooManyRequestsError, WriteOutcomeUnknownError } from "./errors.js";
import { ReplicaSnapshots } from "./snapshots.js";
import { WaitingRequests, type TransferAnswer } from "./waiting.js";

export interface ReplicaOptions<M, H, R> {
  readonly engine: Engine<M, H>;
  /** Checks a value decoded from a peer's bytes (the factory's `validateMessage`); absent: messages are trusted. */
  readonly validateMessage?: (value: unknown) => M;
  readonly storage: LogStorage<H>;
  readonly stateMachine: StateMachine<R>;
  readonly network: Network<M>;
  readonly clock: Clock;
  /** How long a tick is, in the clock's milliseconds. */
  readonly tickMs: number;
  /** How long a proposal, read, transfer or membership change may wait. */
  readonly requestTimeoutMs: number;
  /** Capture the state machine and compact the log every this many applied entries; 0: never. */
  readonly snapshotEntries: number;
  /**
   * On the leader, compaction waits while a live follower needs entries it would drop, up
   * to this many entries past that follower (default 5,000): a follower a little behind, or
   * one that has just installed a snapshot, catches up from the log instead of being sent
   * one newer snapshot after another.
   */
  readonly catchUpEntries?: number;
  /** Most proposals and reads waiting at once; beyond, new ones are refused (TooManyRequestsError). */
  readonly pendingRequestsMax: number;
  /** For engines without a configuration of their own: how many other members there are. */
  readonly peerCount: number;
  /**
   * The first read id. The runtime starts from a random one, so a late answer to a read an
   * earlier process of the node forwarded cannot be taken for one of this process's.
   */
  readonly firstReadId?: number;
  readonly observer?: ReplicaObserver<R>;
  /** Called when the configuration the engine acts on changes (appended, or undone). */
  readonly onMembership?: (membership: Membership) => void;
  /**
   * Propose every proposal still waiting here again when another leader (or another term)
   * appears: one forwarded to a leader that died or was deposed before appending it is lost
   * otherwise, and its caller would wait out the request timeout. Only for a state machine
   * that applies a command once however many copies reach the log (the KV store's sessions).
   */
  readonly reproposeOnLeaderChange?: boolean;
  /**
   * The log could not be made durable: the replica has stopped, failing every waiting
   * request. The host must not go on with this replica (the runtime exits).
   */
  readonly onFatal: (error: unknown) => void;
  /**
   * Rest while quiet: the timer stops once the engine is quiet (Engine.quiescent), nothing
   * waits here, and the host's `idle` says it needs no ticks either; the next input (a
   * message, a request, `wake`) starts it again. A quiet engine counts no time, so the ticks
   * slept through are not owed to it. What the host does on each tick goes in `tick`, so it
   * rests with the replica. Absent: the timer runs from `start` to `stop`.
   *
   * This is what lets a node hold thousands of idle groups: a resting replica has no timer
   * at all (docs/benchmarks.md, "Idle cost of many ranges").
   */
  readonly rest?: RestOptions;
  /**
   * The engine starts from a held snapshot (Snapshot.held: a range born of a split whose
   * records stayed in the node's store): a full one is taken as soon as an entry past it
   * applied, whatever `snapshotEntries` says, and `replaced` is called once the log starts
   * with a full one (that, or a leader's snapshot installed).
   */
  readonly heldSnapshot?: { readonly replaced: () => void };
  /**
   * Whether the host needs this group's log kept through `index`: compacting through it
   * waits (retried after each sync and tick). A range whose split at `index` made a child
   * still started from a held snapshot keeps the split in its log, so a state machine
   * rebuilt from the log makes the child's records again (src/core/kv/split.ts).
   */
  readonly holdsCompaction?: (index: number) => boolean;
}

/** See ReplicaOptions.rest. */
export interface RestOptions {
  /** Whether the host has nothing to do on ticks (asked on each tick of a quiet engine). */
  readonly idle: () => boolean;
  /** The host's work on each tick, after the replica's. */
  readonly tick: () => void;
}

interface TakenReady<M, H> {
  readonly ready: Ready<M, H>;
  /** Taken in this order (from 1). */
  readonly seq: number;
  /** Its writes must be durable before it is finished. */
  readonly needsSync: boolean;
  /** The first index its entries write (0 with a snapshot: the whole log; infinity for none). */
  readonly firstIndex: number;
}

/** Readies handled in one pump before yielding (I/O and timers wait meanwhile). */
const READIES_PER_PUMP_MAX = 64;
/** See ReplicaOptions.catchUpEntries (etcd's SnapshotCatchUpEntries is 5,000 as well). */
export const CATCH_UP_ENTRIES_DEFAULT = 5_000;
/** Ticks caught up at once after a long stall; beyond this the rest are skipped. */
const CATCH_UP_TICKS_MAX = 10_000;
/**
 * Ticks a replica that does not lead catches up at once, at most; the rest are skipped. Only
 * a leader's lease needs its clock never to run slow; a follower's running slow only makes
 * it wait longer before it campaigns or votes, the safe side. Caught up in full, the
 * followers of thousands of groups on a stalled node reach their election timeouts in the
 * same turn (before the heartbeats queued meanwhile reach them) and campaign together: the
 * randomized timeouts keep them apart only while ticks come one by one. A few at once still
 * keep time through a merely slow timer.
 */
export const FOLLOWER_CATCH_UP_TICKS_MAX = 3;
/**
 * Slack when counting due ticks: a clock whose milliseconds are computed (the simulator's,
 * scaled by a clock rate) may land a hair below a tick boundary at the very instant of it.
 */
const TICK_EPSILON = 1e-6;

export class Replica<M, H, R> {
  readonly engine: Engine<M, H>;
  private readonly options: ReplicaOptions<M, H, R>;
  /** Proposals, reads, transfers and changes waiting for the log (waiting.ts). */
  private readonly waiting: WaitingRequests<R>;
  private lastMembership: Membership | null = null;
  /** Whether a configuration has named this node, and whether the latest leaves it out (removed from the group). */
  private inConfiguration = false;
  private outOfConfiguration = false;
  private lastTerm = -1;
  private lastLeader: NodeId | null = null;
  private pumpScheduled = false;
  private cancelTimer: (() => void) | null = null;
  /** The timer is stopped while the engine is quiet (ReplicaOptions.rest). */
  private resting = false;
  private startedAtMs = 0;
  private ticksDone = 0;
  private stopped = false;
  /** Readies taken and not yet finished (advanced), oldest first. */
  private taken: TakenReady<M, H>[] = [];
  /** The sequence number of the last Ready taken. */
  private lastSeq = 0;
  /** The last Ready taken whose writes need a sync (0: none yet). */
  private lastSeqToSync = 0;
  /** Every Ready taken up to this one has its writes durable. */
  private durableSeq = 0;
  /** Entries saved since the last sync began (for the observer). */
  private entriesToSync = 0;
  /** A sync runs. */
  private syncing = false;
  /** Committed entries waiting to be applied until durable here, in index order. */
  private toApply: LogEntry[] = [];
  /** Its own snapshots: taken, saved, compacted behind (snapshots.ts). */
  private readonly snapshots: ReplicaSnapshots<M, H, R>;

  constructor(options: ReplicaOptions<M, H, R>) {
    assert(options.tickMs > 0 && options.requestTimeoutMs > 0, "tickMs and requestTimeoutMs must be positive");
    assert(Number.isSafeInteger(options.snapshotEntries) && options.snapshotEntries >= 0, "snapshotEntries must be a non-negative integer");
    this.options = options;
    this.engine = options.engine;
    this.waiting = new WaitingRequests(options.firstReadId ?? 1);
    this.snapshots = new ReplicaSnapshots({
      options,
      engine: options.engine,
      stopped: () => this.stopped,
      syncing: () => this.syncing,
      advancing: () => this.taken.some((taken) => taken.ready.committedEntries.length > 0),
      compactionHeld: (snapshot) => this.compactionHeld(snapshot),
      fail: (error) => this.fail(error),
    });
  }

  /** Starts ticking and handles whatever the engine already has to do. */
  start(): void {
    assert(this.cancelTimer === null && !this.resting && !this.stopped, "replica started twice");
    this.startedAtMs = this.options.clock.nowMs();
    this.cancelTimer = this.options.clock.every(this.options.tickMs, () => this.onTimer());
    this.schedulePump();
  }

  /**
   * Stops for good: no more ticks, inputs or Readies; every waiting request fails (a
   * proposal with "outcome unknown": it may still commit on the other members). A sync or
   * snapshot write under way is the host's to wait for before closing the storage.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.resting = false;
    this.snapshots.abort();
    this.waiting.failAll();
    this.taken = [];
    this.toApply = [];
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Proposals and reads waiting. */
  get pendingRequests(): number {
    return this.waiting.requests;
  }

  /** The configuration the engine acts on; engines without membership report none. */
  membership(): Membership | undefined {
    return this.engine.membership?.();
  }

  /** A message from a peer, as decoded off the wire: validated, then stepped. */
  receive(from: NodeId, value: unknown): void {
    if (this.stopped) return;
    let message: M;
    if (this.options.validateMessage === undefined) message = value as M;
    else {
      try {
        message = this.options.validateMessage(value);
      } catch (error) {
        this.options.observer?.malformed?.(from, error);
        return;
      }
    }
    this.stopResting();
    this.catchUpTicks();
    this.engine.step(from, message);
    this.schedulePump();
  }

  /**
   * Proposes `data`; `waiter` resolves with its result once it applied here — matched by
   * `key`, which the state machine must recover from the applied entry — or rejects: the
   * engine's refusal, TooManyRequestsError, RequestTimeoutError (it may still apply), or,
   * on stop, WriteOutcomeUnknownError.
   */
  propose(data: Uint8Array, key: ProposalKey, waiter: Waiter<R>): void {
    if (this.stopped) return waiter.reject(new StoppedError());
    if (this.pendingRequests >= this.options.pendingRequestsMax) return waiter.reject(new TooManyRequestsError(this.options.pendingRequestsMax));
    this.stopResting();
    const admission = this.engine.propose(data);
    if (!admission.accepted) {
      this.options.observer?.proposal?.("refused");
      return waiter.reject(admission.error);
    }
    this.options.observer?.proposal?.("accepted");
    this.waiting.addProposal(key, data, waiter, this.options.clock.nowMs() + this.options.requestTimeoutMs);
    this.schedulePump();
  }

  /** Proposes `data` with no one waiting for its result (a refusal is returned, not thrown). */
  proposeUnanswered(data: Uint8Array): boolean {
    if (this.stopped) return false;
    this.stopResting();
    const admission = this.engine.propose(data);
    if (admission.accepted) this.schedulePump();
    return admission.accepted;
  }

  /**
   * A linearizable read (a lease read with `lease`): `waiter` resolves once the engine
   * confirmed a read index and the state machine applied up to it; then the host reads its
   * state. Rejects with the engine's refusal, LeaderChangedError (retry), RequestTimeoutError.
   */
  read(options: ReadOptions, waiter: Waiter<void>): void {
    if (this.stopped) return waiter.reject(new StoppedError());
    if (this.pendingRequests >= this.options.pendingRequestsMax) return waiter.reject(new TooManyRequestsError(this.options.pendingRequestsMax));
    const id = this.waiting.takeReadId();
    this.stopResting();
    this.catchUpTicks();
    const admission = this.engine.readIndex(id, options);
    if (!admission.accepted) {
      this.options.observer?.read?.("refused");
      return waiter.reject(admission.error);
    }
    this.options.observer?.read?.("accepted");
    this.waiting.addRead(id, waiter, this.options.clock.nowMs() + this.options.requestTimeoutMs);
    this.schedulePump();
  }

  /**
   * Hands leadership to `to` (null: the engine's pick); resolves with the new leader once
   * this replica sees it lead, rejects if that does not happen within the request timeout.
   */
  transferLeadership(to: NodeId | null, waiter: Waiter<TransferAnswer>): void {
    if (this.stopped) return waiter.reject(new StoppedError());
    if (this.engine.transferLeadership === undefined) return waiter.reject(new InvalidInputError("this consensus protocol has no leadership transfer"));
    this.stopResting();
    const admission = this.engine.transferLeadership(to);
    if (!admission.accepted) return waiter.reject(admission.error);
    const status = this.engine.status();
    if (to === status.id || (to === null && this.isAlone())) return waiter.resolve({ leader: status.id, term: status.term });
    this.waiting.addTransfer(to, waiter, this.options.clock.nowMs() + this.options.requestTimeoutMs);
    this.schedulePump();
  }

  /**
   * Asks the engine (which must lead) for a configuration change; resolves with the index
   * of its entry once this replica applied it — committed, and in force. Rejects with the
   * engine's refusal, LeaderChangedError if the entry was overwritten, or RequestTimeoutError.
   */
  changeMembership(change: MembershipChange, waiter: Waiter<{ readonly index: number }>): void {
    if (this.stopped) return waiter.reject(new StoppedError());
    if (this.engine.changeMembership === undefined) return waiter.reject(new InvalidInputError("this consensus protocol has no membership changes"));
    this.stopResting();
    const admission = this.engine.changeMembership(change);
    if (!admission.accepted) return waiter.reject(admission.error);
    const { lastIndex: index, term } = this.engine.status();
    this.waiting.addChange(index, term, waiter, this.options.clock.nowMs() + this.options.requestTimeoutMs);
    this.schedulePump();
  }

  /**
   * Wakes a quiet engine (see Engine.wake): the node suspects that the node of this group's
   * leader failed. A no-op for an engine that is awake or never quiesces. `campaign`: when a
   * follower that forgets its leader campaigns (the node picks one follower of the group to
   * campaign at once: core/multi/liveness.ts).
   */
  wake(leaderSuspected = false, campaign: CampaignTiming = "remaining"): void {
    if (this.stopped || this.engine.wake === undefined) return;
    this.stopResting();
    // The node suspects the leader's node failed: a quiet follower need not wait out a whole
    // election timeout (its leader gave up its lease when it went quiet), so it forgets the
    // leader and campaigns when `campaign` says.
    if (leaderSuspected && this.engine.quiescent?.() === true && this.engine.forgetLeader !== undefined) this.engine.forgetLeader(campaign);
    else this.engine.wake();
    this.schedulePump();
  }

  /**
   * Catches up the ticks the clock says are due, expires requests, and pumps. The clock's
   * timer calls it; a host that was frozen (a paused simulated process) calls it on waking,
   * before the inputs that queued meanwhile.
   */
  onTimer(): void {
    if (this.stopped || this.resting) return;
    this.catchUpTicks();
    this.expireRequests();
    this.snapshots.save(); // one held back for a follower's snapshot may go ahead now
    if ((this.engine.snapshotWanted?.() ?? 0) > 0) this.snapshots.maybeTake(); // one a follower waits for, on an idle leader
    this.schedulePump();
    const rest = this.options.rest;
    if (rest === undefined) return;
    rest.tick();
    if (!this.stopped && this.mayRest(rest)) this.startResting();
  }

  /** Whether the timer may stop (ReplicaOptions.rest): the engine is quiet, and nothing here or in the host needs ticks. */
  private mayRest(rest: RestOptions): boolean {
    if (this.engine.quiescent?.() !== true || this.engine.hasReady()) return false;
    if (!this.waiting.none) return false;
    if (this.syncing || this.taken.length > 0 || this.toApply.length > 0 || this.snapshots.busy) return false;
    return rest.idle();
  }

  private startResting(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.resting = true;
  }

  /** Starts the timer again on an input (ReplicaOptions.rest); the ticks slept through are skipped: the quiet engine counts no time. */
  private stopResting(): void {
    if (!this.resting) return;
    this.resting = false;
    this.ticksDone = this.dueTicks();
    this.cancelTimer = this.options.clock.every(this.options.tickMs, () => this.onTimer());
  }

  // ---- the loop ----

  private schedulePump(): void {
    if (this.pumpScheduled || this.stopped) return;
    this.pumpScheduled = true;
    this.options.clock.soon(() => this.pump());
  }

  private pump(): void {
    this.pumpScheduled = false;
    if (this.stopped) return;
    for (let i = 0; i < READIES_PER_PUMP_MAX && !this.stopped && this.engine.hasReady(); i++) this.handleReady(this.engine.ready());
    if (this.stopped) return;
    this.maybeStartSync();
    this.noticeLeadership();
    this.noticeMembership();
    this.releaseIfRemoved();
    if (this.engine.hasReady()) this.schedulePump();
  }

  /**
   * Sends a Ready's `messages`, which may leave before its writes are durable. A hook point
   * for the replica's mutants (mutants.ts); nothing in production overrides it.
   */
  protected sendBeforePersist(ready: Ready<M, H>): void {
    for (const { to, message } of ready.messages) this.options.network.send(to, message);
  }

  /** Sends a Ready's `messagesAfterPersist`, once its writes are durable. A hook point, as above. */
  protected sendAfterPersist(ready: Ready<M, H>): void {
    for (const { to, message } of ready.messagesAfterPersist) this.options.network.send(to, message);
  }

  /**
   * Takes a Ready: its messages leave, its writes are saved (to be synced with whatever else
   * is saved by then), its committed entries queue to be applied once durable here, its
   * reads wait for the state machine. It is finished — messages after persist, `advance` —
   * once everything before it is and its own writes are durable.
   */
  private handleReady(ready: Ready<M, H>): void {
    this.options.observer?.statusChanged?.();
    this.sendBeforePersist(ready);
    const writes = ready.snapshot !== null || ready.entries.length > 0 || ready.hardState !== null;
    if (writes) {
      try {
        this.options.storage.save({ snapshot: ready.snapshot, entries: ready.entries, hardState: ready.hardState });
      } catch (error) {
        this.fail(error);
        return;
      }
    }
    const needsSync = ready.snapshot !== null || ready.entries.length > 0 || (ready.hardState !== null && ready.mustSync !== false);
    const firstIndex = ready.snapshot !== null ? 0 : (ready.entries[0]?.index ?? Number.POSITIVE_INFINITY);
    this.taken.push({ ready, seq: ++this.lastSeq, needsSync, firstIndex });
    if (needsSync) {
      this.lastSeqToSync = this.lastSeq;
      this.entriesToSync += ready.entries.length;
    }
    for (const entry of ready.committedEntries) this.toApply.push(entry);
    for (const { requestId, index } of ready.readStates) this.waiting.readConfirmed(requestId, index);
    // Early apply: what is durable already need not wait for this Ready's sync.
    this.applyDurable();
    this.finishTaken();
  }

  /** Starts a sync of everything saved, unless one runs or nothing waits for one. */
  private maybeStartSync(): void {
    if (this.syncing || this.stopped || this.lastSeqToSync <= this.durableSeq) return;
    const covers = this.lastSeqToSync;
    const entries = this.entriesToSync;
    this.entriesToSync = 0;
    const startedMs = this.options.clock.nowMs();
    this.syncing = true;
    // A storage may complete the sync before `sync` returns; that completion is handled
    // after, so nothing runs inside the storage's call.
    const sync: { inline: boolean; outcome: { readonly error: unknown } | null } = { inline: true, outcome: null };
    try {
      this.options.storage.sync((error) => {
        if (sync.inline) sync.outcome = { error };
        else this.onSynced(covers, entries, startedMs, error);
      });
    } catch (error) {
      sync.inline = false;
      this.fail(error);
      return;
    }
    sync.inline = false;
    if (sync.outcome !== null) this.onSynced(covers, entries, startedMs, sync.outcome.error);
  }

  /** Everything taken up to `covers` is durable. */
  private onSynced(covers: number, entries: number, startedMs: number, error: unknown): void {
    this.syncing = false;
    if (this.stopped) return;
    if (error !== null && error !== undefined) return this.fail(error);
    this.durableSeq = Math.max(this.durableSeq, covers);
    this.options.observer?.persisted?.(this.options.clock.nowMs() - startedMs, entries);
    this.finishTaken();
    // A compaction waits for a moment with no sync running: this is one.
    this.snapshots.save();
    this.maybeStartSync();
    this.schedulePump();
  }

  /** Finishes, in order, the Readies whose writes are durable (and those with none to wait for). */
  private finishTaken(): void {
    while (this.taken.length > 0 && !this.stopped) {
      const head = this.taken[0] as TakenReady<M, H>;
      if (head.needsSync && head.seq > this.durableSeq) return;
      this.taken.shift();
      // Emptied, a new array: the old one keeps the room it grew to (152 bytes), a replica per range.
      if (this.taken.length === 0) this.taken = [];
      this.finishReady(head.ready);
    }
  }

  /** The part of a Ready that comes after its writes are durable. */
  private finishReady(ready: Ready<M, H>): void {
    this.sendAfterPersist(ready);
    if (ready.snapshot !== null) {
      // The leader's snapshot replaces the state a snapshot in progress was taken of.
      this.snapshots.abort();
      assert(this.toApply.length === 0 || (this.toApply[0] as LogEntry).index > ready.snapshot.index, "entries behind a leader's snapshot wait to be applied");
      this.options.stateMachine.restore(ready.snapshot);
      this.options.observer?.snapshotInstalled?.(ready.snapshot);
      this.snapshots.heldReplaced();
    }
    this.applyDurable();
    const last = ready.committedEntries[ready.committedEntries.length - 1];
    assert(last === undefined || this.options.stateMachine.appliedIndex >= last.index, `a finished Ready's committed entry ${last?.index} is not applied (applied ${this.options.stateMachine.appliedIndex})`);
    this.waiting.serveReads(this.options.stateMachine.appliedIndex);
    this.waiting.settleChanges(this.options.stateMachine.appliedIndex, (index) => this.engine.entryTerm(index));
    this.engine.advance(ready);
    this.snapshots.maybeTake();
    this.options.observer?.statusChanged?.();
  }

  /**
   * Applies the queued committed entries that are durable on this node: those before the
   * first entry any unsynced Ready wrote (none while a leader's snapshot is unsynced).
   */
  private applyDurable(): void {
    if (this.toApply.length === 0) return;
    let frontier = Number.POSITIVE_INFINITY;
    for (const taken of this.taken) if (taken.needsSync && taken.seq > this.durableSeq && taken.firstIndex < frontier) frontier = taken.firstIndex;
    let count = 0;
    while (count < this.toApply.length && (this.toApply[count] as LogEntry).index < frontier) count++;
    if (count === 0) return;
    const batch = count === this.toApply.length ? this.toApply : this.toApply.slice(0, count);
    this.toApply = count === this.toApply.length ? [] : this.toApply.slice(count);
    this.apply(batch);
    this.waiting.serveReads(this.options.stateMachine.appliedIndex);
  }

  /** A failure the replica cannot continue after: stop, and tell the host. */
  private fail(error: unknown): void {
    this.syncing = false;
    this.stop();
    this.options.onFatal(error);
  }

  // ---- applying and answering ----

  private apply(entries: readonly LogEntry[]): void {
    const results = this.options.stateMachine.apply(entries);
    assert(results.length === entries.length, `the state machine returned ${results.length} results for ${entries.length} entries`);
    this.options.observer?.applied?.(entries, results);
    this.waiting.applied(results, (result) => this.options.stateMachine.proposalKey(result));
  }

  /** Tells the host when the configuration changes, once per change. */
  private noticeMembership(): void {
    const membership = this.engine.membership?.();
    if (membership === undefined || membership === this.lastMembership) return;
    this.lastMembership = membership;
    const self = this.engine.status().id;
    const named = membership.voters.includes(self) || membership.outgoing.includes(self) || membership.learners.includes(self);
    this.outOfConfiguration = this.inConfiguration && !named;
    this.inConfiguration ||= named;
    this.options.onMembership?.(membership);
  }

  /**
   * A node removed from the group hears from no leader again, so its waiting writes would
   * only time out: once it no longer leads, they fail at once, their outcome unknown (each
   * may have committed before the removal, or under the next leader).
   */
  private releaseIfRemoved(): void {
    if (!this.outOfConfiguration || this.waiting.requests === 0 || this.engine.status().role === "leader") return;
    this.waiting.failProposals(new WriteOutcomeUnknownError("this node was removed from the group before the write completed"));
  }

  /** When the term or the leader changes, the waiting requests hear of it (WaitingRequests.leaderChanged). */
  private noticeLeadership(): void {
    const status = this.engine.status();
    if (status.term === this.lastTerm && status.leader === this.lastLeader) return;
    const first = this.lastTerm === -1;
    this.lastTerm = status.term;
    this.lastLeader = status.leader;
    // The first look is where leadership starts from, not a change.
    if (first) return;
    this.options.observer?.leadershipChanged?.({ term: status.term, leader: status.leader, role: status.role });
    const repropose = this.options.reproposeOnLeaderChange === true && status.leader !== null ? (data: Uint8Array) => void this.engine.propose(data) : null;
    this.waiting.leaderChanged(status.id, status.leader, status.term, repropose);
  }

  /** The only voter: no one to hand over to. */
  private isAlone(): boolean {
    const membership = this.engine.membership?.();
    if (membership === undefined) return this.options.peerCount === 0;
    const self = this.engine.status().id;
    return membership.voters.every((id) => id === self) && membership.outgoing.every((id) => id === self);
  }

  // ---- time ----

  /** Gives the engine the ticks the monotonic clock says are due (a replica not leading, a few at most). */
  private catchUpTicks(): void {
    if (this.cancelTimer === null) return;
    let missed = this.dueTicks() - this.ticksDone;
    if (missed > CATCH_UP_TICKS_MAX) {
      this.options.observer?.ticksSkipped?.(missed - CATCH_UP_TICKS_MAX);
      this.ticksDone += missed - CATCH_UP_TICKS_MAX;
      missed = CATCH_UP_TICKS_MAX;
    }
    // Not a stall worth a word: every follower of a slow node skips some (see the constant).
    if (missed > FOLLOWER_CATCH_UP_TICKS_MAX && this.engine.status().role !== "leader") {
      this.ticksDone += missed - FOLLOWER_CATCH_UP_TICKS_MAX;
      missed = FOLLOWER_CATCH_UP_TICKS_MAX;
    }
    for (let i = 0; i < missed; i++) this.engine.tick();
    if (missed > 0) this.ticksDone += missed;
  }

  /** The ticks the monotonic clock says have passed since `start`. */
  private dueTicks(): number {
    return Math.floor((this.options.clock.nowMs() - this.startedAtMs) / this.options.tickMs + TICK_EPSILON);
  }

  private expireRequests(): void {
    this.waiting.expire(this.options.clock.nowMs(), this.options.requestTimeoutMs, () => this.options.observer?.proposal?.("timeout"));
  }

  /**
   * Whether compacting through the snapshot's index must wait for a live follower that
   * still needs entries before it (see Engine.compactionFloor): one receiving an older
   * snapshot (compacting now would send it a newer one as soon as it has installed this
   * one, and so on for as long as snapshots take longer to send than the log takes to
   * outgrow them), or one replicating a little behind. Up to `catchUpEntries` past it, as
   * etcd keeps catch-up entries; beyond, compaction goes ahead and that follower gets the
   * newer snapshot, so a follower that cannot keep up does not make the log grow forever.
   */
  protected compactionHeld(snapshot: Snapshot): boolean {
    if (this.options.holdsCompaction?.(snapshot.index) === true) return true;
    // A held snapshot cannot be sent: a follower needing one waits for this one, not for the log.
    if (this.snapshots.held) return false;
    // A follower waits for this very snapshot (Engine.snapshotWanted): under steady writes one
    // a little behind would hold it back for as long as the writes last.
    const wanted = this.engine.snapshotWanted?.() ?? 0;
    if (wanted > 0 && snapshot.index >= wanted) return false;
    const floor = this.engine.compactionFloor?.() ?? null;
    if (floor === null) return false;
    const catchUp = this.options.catchUpEntries ?? CATCH_UP_ENTRIES_DEFAULT;
    const held = (needs: number | null): boolean => needs !== null && snapshot.index > needs && snapshot.index - needs <= catchUp;
    return held(floor.receiving) || held(floor.replicating);
  }
}

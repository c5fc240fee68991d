/**
 * The replica: one consensus engine driven by the engine contract (core/engine/contract.ts)
 * against injected storage, state machine, network and clock. This is the one Ready loop;
 * the runtime's node hosts it over the WAL, LMDB, TCP and real time, and the simulator
 * hosts the very same class over `SimDisk`, simulated links and virtual time.
 *
 * Inputs (a peer's message, a proposal, a read, a tick) go into the engine at once, and a
 * pump is scheduled with `Clock.soon`, so every input that arrives together shares one
 * Ready: one write and one sync of the log for all the entries (group commit), one append
 * per follower, one heartbeat round for all the reads. A Ready is handled in the contract's
 * order: send `messages`; save the snapshot, entries and hard state and sync them — while
 * the sync runs, inputs keep arriving and queue up in the engine for the next Ready; then
 * send `messagesAfterPersist`; install a snapshot; apply the committed entries; answer the
 * proposals that applied and the reads that became safe; `advance`. One Ready at a time.
 *
 * Early apply: committed entries this replica already holds durably (written by an earlier
 * Ready) are applied while the sync of the current one runs — they are on a quorum's disks,
 * this one's included — which saves a sync's latency per write. The entries of the Ready
 * itself apply only after it is durable, so the state machine is never ahead of the log.
 *
 * Time: ticks are counted from the monotonic clock, not from timer callbacks, so a stalled
 * event loop (or a paused process) catches up on the ticks it missed when it wakes — before
 * any message reaches the engine, because a leader's lease depends on its ticks not
 * running slow.
 *
 * Snapshots: every `snapshotEntries` applied entries the state machine is captured (a piece
 * per `soon`, so a large state does not stall the node), the storage writes it
 * (`prepareSnapshot`, possibly in the background), then — when no sync runs — compacts the
 * log behind it, and only then is the engine told to drop its entries.
 */
import { assert } from "../common/assert.js";
import { InvalidInputError } from "../common/errors.js";
import type { Engine, LogEntry, Membership, MembershipChange, NodeId, Ready, ReadOptions, Snapshot } from "../engine/contract.js";
import type { Clock, LogStorage, Network, ProposalKey, ReplicaObserver, SnapshotBuilder, StateMachine, Waiter } from "./contract.js";
import { LeaderChangedError, RequestTimeoutError, StoppedError, TooManyRequestsError, TransferOvertakenError, TransferTimeoutError, WriteOutcomeUnknownError } from "./errors.js";

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
   * The log could not be made durable: the replica has stopped, failing every waiting
   * request. The host must not go on with this replica (the runtime exits).
   */
  readonly onFatal: (error: unknown) => void;
}

interface Pending<T> {
  readonly waiter: Waiter<T>;
  readonly deadlineMs: number;
}

interface PendingProposal<R> extends Pending<R> {
  readonly key: ProposalKey;
}

interface PendingRead extends Pending<void> {
  readonly id: number;
  /** Set once the engine says at which index the read is safe. */
  index: number | null;
}

interface PendingTransfer extends Pending<{ readonly leader: NodeId; readonly term: number }> {
  readonly target: NodeId | null;
}

interface PendingChange extends Pending<{ readonly index: number }> {
  readonly index: number;
  readonly term: number;
}

/** Readies handled in one pump before yielding (I/O and timers wait meanwhile). */
const READIES_PER_PUMP_MAX = 64;
/** Records captured per step of an incremental snapshot: a step costs about a millisecond. */
const SNAPSHOT_RECORDS_PER_STEP = 500;
/** Ticks caught up at once after a long stall; beyond this the rest are skipped. */
const CATCH_UP_TICKS_MAX = 10_000;
/**
 * Slack when counting due ticks: a clock whose milliseconds are computed (the simulator's,
 * scaled by a clock rate) may land a hair below a tick boundary at the very instant of it.
 */
const TICK_EPSILON = 1e-6;

export class Replica<M, H, R> {
  readonly engine: Engine<M, H>;
  private readonly options: ReplicaOptions<M, H, R>;
  /** Proposals waiting to apply, by ticket (arrival order, so the expired ones are first). */
  private readonly pendingProposals = new Map<number, PendingProposal<R>>();
  /** The tickets waiting for each key (a client that retries through the same node waits twice for one entry). */
  private readonly ticketsByKey = new Map<ProposalKey, number[]>();
  private nextTicket = 1;
  private readonly pendingReads = new Map<number, PendingRead>();
  private nextReadId: number;
  /** Confirmed reads waiting for the state machine to apply up to their index. */
  private readsAwaitingApply: PendingRead[] = [];
  private pendingTransfers: PendingTransfer[] = [];
  /** Configuration changes this leader took, waiting to apply (their entry's index and term). */
  private pendingChanges: PendingChange[] = [];
  private lastMembership: Membership | null = null;
  private lastTerm = -1;
  private lastLeader: NodeId | null = null;
  private pumpScheduled = false;
  private cancelTimer: (() => void) | null = null;
  private startedAtMs = 0;
  private ticksDone = 0;
  private stopped = false;
  /** A sync of a Ready's writes is running. */
  private persisting = false;
  private snapshotInProgress: { readonly builder: SnapshotBuilder; readonly term: number; readonly membership: Membership | undefined; readonly startedMs: number } | null = null;
  /** A snapshot whose file is written, waiting for the storage to be free of syncs. */
  private snapshotToSave: { readonly snapshot: Snapshot; readonly startedMs: number } | null = null;

  constructor(options: ReplicaOptions<M, H, R>) {
    assert(options.tickMs > 0 && options.requestTimeoutMs > 0, "tickMs and requestTimeoutMs must be positive");
    assert(Number.isSafeInteger(options.snapshotEntries) && options.snapshotEntries >= 0, "snapshotEntries must be a non-negative integer");
    this.options = options;
    this.engine = options.engine;
    this.nextReadId = options.firstReadId ?? 1;
  }

  /** Starts ticking and handles whatever the engine already has to do. */
  start(): void {
    assert(this.cancelTimer === null && !this.stopped, "replica started twice");
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
    this.abortSnapshot();
    const unknown = new WriteOutcomeUnknownError("the node stopped before the write completed");
    for (const pending of this.pendingProposals.values()) pending.waiter.reject(unknown);
    const stopped = new StoppedError();
    for (const pending of this.pendingReads.values()) pending.waiter.reject(stopped);
    for (const pending of this.pendingTransfers) pending.waiter.reject(stopped);
    const changeUnknown = new WriteOutcomeUnknownError("the node stopped before the membership change completed");
    for (const pending of this.pendingChanges) pending.waiter.reject(changeUnknown);
    this.pendingProposals.clear();
    this.ticketsByKey.clear();
    this.pendingReads.clear();
    this.readsAwaitingApply = [];
    this.pendingTransfers = [];
    this.pendingChanges = [];
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Proposals and reads waiting. */
  get pendingRequests(): number {
    return this.pendingProposals.size + this.pendingReads.size;
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
    const admission = this.engine.propose(data);
    if (!admission.accepted) {
      this.options.observer?.proposal?.("refused");
      return waiter.reject(admission.error);
    }
    this.options.observer?.proposal?.("accepted");
    const ticket = this.nextTicket++;
    this.pendingProposals.set(ticket, { waiter, key, deadlineMs: this.options.clock.nowMs() + this.options.requestTimeoutMs });
    const tickets = this.ticketsByKey.get(key);
    if (tickets === undefined) this.ticketsByKey.set(key, [ticket]);
    else tickets.push(ticket);
    this.schedulePump();
  }

  /** Proposes `data` with no one waiting for its result (a refusal is returned, not thrown). */
  proposeUnanswered(data: Uint8Array): boolean {
    if (this.stopped) return false;
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
    const id = this.nextReadId++;
    this.catchUpTicks();
    const admission = this.engine.readIndex(id, options);
    if (!admission.accepted) {
      this.options.observer?.read?.("refused");
      return waiter.reject(admission.error);
    }
    this.options.observer?.read?.("accepted");
    this.pendingReads.set(id, { id, waiter, deadlineMs: this.options.clock.nowMs() + this.options.requestTimeoutMs, index: null });
    this.schedulePump();
  }

  /**
   * Hands leadership to `to` (null: the engine's pick); resolves with the new leader once
   * this replica sees it lead, rejects if that does not happen within the request timeout.
   */
  transferLeadership(to: NodeId | null, waiter: Waiter<{ readonly leader: NodeId; readonly term: number }>): void {
    if (this.stopped) return waiter.reject(new StoppedError());
    if (this.engine.transferLeadership === undefined) return waiter.reject(new InvalidInputError("this consensus protocol has no leadership transfer"));
    const admission = this.engine.transferLeadership(to);
    if (!admission.accepted) return waiter.reject(admission.error);
    const status = this.engine.status();
    if (to === status.id || (to === null && this.isAlone())) return waiter.resolve({ leader: status.id, term: status.term });
    this.pendingTransfers.push({ target: to, waiter, deadlineMs: this.options.clock.nowMs() + this.options.requestTimeoutMs });
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
    const admission = this.engine.changeMembership(change);
    if (!admission.accepted) return waiter.reject(admission.error);
    const { lastIndex: index, term } = this.engine.status();
    this.pendingChanges.push({ index, term, waiter, deadlineMs: this.options.clock.nowMs() + this.options.requestTimeoutMs });
    this.schedulePump();
  }

  /**
   * Catches up the ticks the clock says are due, expires requests, and pumps. The clock's
   * timer calls it; a host that was frozen (a paused simulated process) calls it on waking,
   * before the inputs that queued meanwhile.
   */
  onTimer(): void {
    if (this.stopped) return;
    this.catchUpTicks();
    this.expireRequests();
    this.schedulePump();
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
    for (let i = 0; i < READIES_PER_PUMP_MAX && !this.persisting && !this.stopped && this.engine.hasReady(); i++) this.handleReady(this.engine.ready());
    if (this.stopped) return;
    this.noticeLeadership();
    this.noticeMembership();
    if (!this.persisting && this.engine.hasReady()) this.schedulePump();
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

  private handleReady(ready: Ready<M, H>): void {
    this.options.observer?.statusChanged?.();
    this.sendBeforePersist(ready);
    if (ready.snapshot === null && ready.entries.length === 0 && ready.hardState === null) {
      this.finishReady(ready, 0);
      return;
    }
    const startedMs = this.options.clock.nowMs();
    // Entries before this Ready's first are durable already (see the file comment).
    const durableBefore = ready.snapshot !== null ? 0 : (ready.entries[0]?.index ?? Number.POSITIVE_INFINITY);
    let early = 0;
    while (early < ready.committedEntries.length && (ready.committedEntries[early] as LogEntry).index < durableBefore) early++;
    // A storage may complete the sync before `sync` returns: the early entries must apply
    // first, so such a completion is held until they have.
    const sync: { inline: boolean; outcome: { readonly error: unknown } | null } = { inline: true, outcome: null };
    this.persisting = true;
    try {
      this.options.storage.save({ snapshot: ready.snapshot, entries: ready.entries, hardState: ready.hardState });
      this.options.storage.sync((error) => {
        if (sync.inline) sync.outcome = { error };
        else this.afterSync(ready, early, startedMs, error);
      });
    } catch (error) {
      sync.inline = false;
      this.fail(error);
      return;
    }
    sync.inline = false;
    // While the storage syncs.
    if (early > 0) this.apply(ready.committedEntries.slice(0, early));
    if (sync.outcome !== null) this.afterSync(ready, early, startedMs, sync.outcome.error);
  }

  private afterSync(ready: Ready<M, H>, early: number, startedMs: number, error: unknown): void {
    this.persisting = false;
    if (this.stopped) return;
    if (error !== null && error !== undefined) return this.fail(error);
    this.options.observer?.persisted?.(this.options.clock.nowMs() - startedMs, ready.entries.length);
    this.finishReady(ready, early);
    this.saveSnapshot();
    this.schedulePump();
  }

  /** The part of a Ready that comes after its writes are durable; `applied` committed entries already were. */
  private finishReady(ready: Ready<M, H>, applied: number): void {
    this.sendAfterPersist(ready);
    if (ready.snapshot !== null) {
      // The leader's snapshot replaces the state a snapshot in progress was taken of.
      this.abortSnapshot();
      this.options.stateMachine.restore(ready.snapshot);
      this.options.observer?.snapshotInstalled?.(ready.snapshot);
    }
    if (ready.committedEntries.length > applied) this.apply(applied === 0 ? ready.committedEntries : ready.committedEntries.slice(applied));
    for (const { requestId, index } of ready.readStates) {
      const read = this.pendingReads.get(requestId);
      if (read === undefined) continue;
      read.index = index;
      this.readsAwaitingApply.push(read);
    }
    this.serveReads();
    this.settleChanges();
    this.engine.advance(ready);
    this.maybeSnapshot();
    this.options.observer?.statusChanged?.();
  }

  /** A failure the replica cannot continue after: stop, and tell the host. */
  private fail(error: unknown): void {
    this.persisting = false;
    this.stop();
    this.options.onFatal(error);
  }

  // ---- applying and answering ----

  private apply(entries: readonly LogEntry[]): void {
    const results = this.options.stateMachine.apply(entries);
    assert(results.length === entries.length, `the state machine returned ${results.length} results for ${entries.length} entries`);
    this.options.observer?.applied?.(entries, results);
    if (this.pendingProposals.size === 0) return;
    for (const result of results) {
      const key = this.options.stateMachine.proposalKey(result);
      if (key === null) continue;
      const tickets = this.ticketsByKey.get(key);
      if (tickets === undefined) continue;
      this.ticketsByKey.delete(key);
      for (const ticket of tickets) {
        const pending = this.pendingProposals.get(ticket);
        if (pending === undefined) continue;
        this.pendingProposals.delete(ticket);
        pending.waiter.resolve(result);
      }
    }
  }

  private serveReads(): void {
    if (this.readsAwaitingApply.length === 0) return;
    const applied = this.options.stateMachine.appliedIndex;
    const waiting: PendingRead[] = [];
    for (const read of this.readsAwaitingApply) {
      if ((read.index as number) > applied) {
        waiting.push(read);
        continue;
      }
      this.pendingReads.delete(read.id);
      read.waiter.resolve();
    }
    this.readsAwaitingApply = waiting;
  }

  /** Changes applied (resolved) or overwritten by another leader's log (rejected). */
  private settleChanges(): void {
    if (this.pendingChanges.length === 0) return;
    const applied = this.options.stateMachine.appliedIndex;
    this.pendingChanges = this.pendingChanges.filter((change) => {
      const term = this.engine.entryTerm(change.index);
      if (term !== null && term !== change.term) {
        change.waiter.reject(new LeaderChangedError());
        return false;
      }
      if (applied < change.index) return true;
      change.waiter.resolve({ index: change.index });
      return false;
    });
  }

  /** Tells the host when the configuration changes, once per change. */
  private noticeMembership(): void {
    const membership = this.engine.membership?.();
    if (membership === undefined || membership === this.lastMembership) return;
    this.lastMembership = membership;
    this.options.onMembership?.(membership);
  }

  /**
   * A read the engine has not confirmed yet dies with the leadership it waited on (a deposed
   * leader drops its pending rounds; a follower's forwarded read goes unanswered), so when
   * the term or the leader changes, such reads fail at once with a retryable error rather
   * than time out. Proposals wait: one may still commit under the new leader. A transfer
   * ends when another node leads.
   */
  private noticeLeadership(): void {
    const status = this.engine.status();
    if (status.term === this.lastTerm && status.leader === this.lastLeader) return;
    const first = this.lastTerm === -1;
    this.lastTerm = status.term;
    this.lastLeader = status.leader;
    // The first look is where leadership starts from, not a change.
    if (first) return;
    this.options.observer?.leadershipChanged?.({ term: status.term, leader: status.leader, role: status.role });
    if (status.leader !== null && status.leader !== status.id && this.pendingTransfers.length > 0) {
      for (const transfer of this.pendingTransfers) {
        if (transfer.target === null || transfer.target === status.leader) transfer.waiter.resolve({ leader: status.leader, term: status.term });
        else transfer.waiter.reject(new TransferOvertakenError(transfer.target, status.leader));
      }
      this.pendingTransfers = [];
    }
    const error = new LeaderChangedError();
    for (const [id, read] of this.pendingReads) {
      if (read.index !== null) continue;
      this.pendingReads.delete(id);
      read.waiter.reject(error);
    }
  }

  /** The only voter: no one to hand over to. */
  private isAlone(): boolean {
    const membership = this.engine.membership?.();
    if (membership === undefined) return this.options.peerCount === 0;
    const self = this.engine.status().id;
    return membership.voters.every((id) => id === self) && membership.outgoing.every((id) => id === self);
  }

  // ---- time ----

  /** Gives the engine every tick the monotonic clock says is due. */
  private catchUpTicks(): void {
    if (this.cancelTimer === null) return;
    const due = Math.floor((this.options.clock.nowMs() - this.startedAtMs) / this.options.tickMs + TICK_EPSILON);
    let missed = due - this.ticksDone;
    if (missed > CATCH_UP_TICKS_MAX) {
      this.options.observer?.ticksSkipped?.(missed - CATCH_UP_TICKS_MAX);
      this.ticksDone += missed - CATCH_UP_TICKS_MAX;
      missed = CATCH_UP_TICKS_MAX;
    }
    for (let i = 0; i < missed; i++) this.engine.tick();
    if (missed > 0) this.ticksDone += missed;
  }

  /** Requests are kept in arrival order, so the expired ones are at the front. */
  private expireRequests(): void {
    const nowMs = this.options.clock.nowMs();
    const timeoutMs = this.options.requestTimeoutMs;
    for (const [ticket, proposal] of this.pendingProposals) {
      if (proposal.deadlineMs > nowMs) break;
      this.pendingProposals.delete(ticket);
      this.forgetTicket(proposal.key, ticket);
      this.options.observer?.proposal?.("timeout");
      proposal.waiter.reject(new RequestTimeoutError("write", timeoutMs));
    }
    let expiredReads = false;
    for (const [id, read] of this.pendingReads) {
      if (read.deadlineMs > nowMs) break;
      this.pendingReads.delete(id);
      expiredReads = true;
      read.waiter.reject(new RequestTimeoutError("read", timeoutMs));
    }
    if (expiredReads) this.readsAwaitingApply = this.readsAwaitingApply.filter((read) => read.deadlineMs > nowMs);
    while (this.pendingTransfers.length > 0 && (this.pendingTransfers[0] as PendingTransfer).deadlineMs <= nowMs) {
      this.pendingTransfers.shift()?.waiter.reject(new TransferTimeoutError(timeoutMs));
    }
    while (this.pendingChanges.length > 0 && (this.pendingChanges[0] as PendingChange).deadlineMs <= nowMs) {
      this.pendingChanges.shift()?.waiter.reject(new RequestTimeoutError("membership change", timeoutMs));
    }
  }

  /** Forgets a timed-out proposal's ticket: its entry may still apply, for no one. */
  private forgetTicket(key: ProposalKey, ticket: number): void {
    const tickets = this.ticketsByKey.get(key);
    if (tickets === undefined) return;
    const left = tickets.filter((t) => t !== ticket);
    if (left.length === 0) this.ticketsByKey.delete(key);
    else this.ticketsByKey.set(key, left);
  }

  // ---- snapshots ----

  private maybeSnapshot(): void {
    const every = this.options.snapshotEntries;
    if (every === 0 || this.snapshotInProgress !== null || this.snapshotToSave !== null || this.engine.compact === undefined) return;
    const applied = this.options.stateMachine.appliedIndex;
    if (applied - this.engine.status().snapshotIndex < every) return;
    const term = this.engine.entryTerm(applied);
    assert(term !== null, `no term for the applied index ${applied}`);
    // The configuration at the snapshot's index goes with it: the log that held it will go.
    const membership = this.engine.membershipAt?.(applied);
    const builder = this.options.stateMachine.beginSnapshot();
    assert(builder.index === applied, `a snapshot began at ${builder.index}, not at the applied index ${applied}`);
    const progress = { builder, term, membership, startedMs: this.options.clock.nowMs() };
    this.snapshotInProgress = progress;
    this.options.clock.soon(() => this.stepSnapshot(progress));
  }

  private stepSnapshot(progress: NonNullable<Replica<M, H, R>["snapshotInProgress"]>): void {
    if (this.snapshotInProgress !== progress || this.stopped) return;
    const { builder } = progress;
    if (!builder.step(SNAPSHOT_RECORDS_PER_STEP)) {
      this.options.clock.soon(() => this.stepSnapshot(progress));
      return;
    }
    const base = { index: builder.index, term: progress.term, data: builder.data };
    const snapshot: Snapshot = progress.membership === undefined ? base : { ...base, membership: progress.membership };
    this.options.storage.prepareSnapshot(snapshot, (error) => {
      if (this.snapshotInProgress !== progress || this.stopped) return; // aborted meanwhile
      this.snapshotInProgress = null;
      if (error !== null && error !== undefined) {
        this.options.observer?.snapshotFailed?.(error);
        return;
      }
      this.snapshotToSave = { snapshot, startedMs: progress.startedMs };
      if (!this.persisting) this.saveSnapshot();
    });
  }

  /** Compacts behind a prepared snapshot, if there is one; only while no sync runs. */
  private saveSnapshot(): void {
    const toSave = this.snapshotToSave;
    if (toSave === null || this.persisting) return;
    this.snapshotToSave = null;
    const { snapshot } = toSave;
    if (snapshot.index <= this.engine.status().snapshotIndex) return; // overtaken by a leader's snapshot
    const savingMs = this.options.clock.nowMs();
    try {
      this.options.storage.compact(snapshot);
    } catch (error) {
      this.fail(error);
      return;
    }
    this.engine.compact?.(snapshot.index, snapshot.data);
    const doneMs = this.options.clock.nowMs();
    this.options.observer?.snapshotTaken?.(snapshot, { total: doneMs - toSave.startedMs, saving: doneMs - savingMs });
  }

  private abortSnapshot(): void {
    this.snapshotInProgress?.builder.abort();
    this.snapshotInProgress = null;
    this.snapshotToSave = null;
  }
}

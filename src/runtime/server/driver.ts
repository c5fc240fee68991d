/**
 * The runtime's engine driver: it runs a consensus engine by the engine contract against real
 * time, a real disk and a real network, and connects it to clients.
 *
 * Inputs (a peer's message, a client's write or read, a tick) go into the engine at once; a
 * "pump" is scheduled with `setImmediate`, so every input that arrives in one turn of the
 * event loop shares one Ready: one write and one fdatasync of the log for all the entries
 * (group commit), one append per follower, one heartbeat round for all the reads. A Ready is
 * handled in the contract's order: send `messages`; write the log and fdatasync it — on the
 * thread pool, so requests and acknowledgements keep arriving (and queue up in the engine
 * for the next Ready) while the disk flushes; then send `messagesAfterPersist`; install a
 * snapshot; apply the committed entries to the state machine in one transaction; answer
 * the writes that applied and the reads that became safe; `advance`. One Ready at a time.
 *
 * Time: ticks are counted from a monotonic clock, not from timer callbacks, so a stalled
 * event loop (or a paused process) catches up on the ticks it missed when it wakes — the
 * leader's lease depends on its ticks not running slow.
 */
import { randomInt } from "node:crypto";
import { performance } from "node:perf_hooks";
import { assert } from "../../core/common/assert.js";
import { InvalidInputError, SynodError } from "../../core/common/errors.js";
import type { Engine, EngineFactory, LogEntry, Membership, MembershipChange, NodeId, Ready, Snapshot } from "../../core/engine/contract.js";
import { encodeCommand, type KvCommand } from "../../core/kv/command.js";
import type { KvResult, KvStore } from "../../core/kv/store.js";
import type { LogStore } from "../storage/log-store.js";
import type { NodeMetrics } from "./metrics.js";

/** A write as a client states it; the driver adds the request id. */
export type KvOperation = KvCommand extends infer C ? (C extends KvCommand ? Omit<C, "request"> : never) : never;

/** A client's session and the sequence number of this write in it (see KvStore). */
export interface ClientRequest {
  readonly clientId: number;
  readonly sequence: number;
}

export type ReadConsistency = "linearizable" | "lease" | "stale";

/** The request did not complete within the node's request timeout. */
export class RequestTimeoutError extends SynodError {
  constructor(what: "write" | "read" | "membership change", timeoutMs: number) {
    super(
      "timeout",
      what === "write"
        ? `the write did not complete within ${timeoutMs} ms; it may or may not have been applied (check before retrying a non-idempotent write)`
        : what === "read"
          ? `the read could not be confirmed within ${timeoutMs} ms`
          : `the membership change did not complete within ${timeoutMs} ms; it may still take effect (check GET /v1/members before retrying)`,
    );
    this.name = "RequestTimeoutError";
  }
}

/** A read's leader changed before it confirmed the read; a retry finds the new one. */
export class LeaderChangedError extends SynodError {
  constructor() {
    super("no_leader", "the leader changed while the read waited for it; retry");
    this.name = "LeaderChangedError";
  }
}

/** Too many requests wait already; the client should back off. */
export class TooManyRequestsError extends SynodError {
  constructor(limit: number) {
    super("overloaded", `${limit} requests are waiting already; retry later`);
    this.name = "TooManyRequestsError";
  }
}

/** A leadership transfer did not complete in time; this node still leads. */
export class TransferTimeoutError extends SynodError {
  constructor(timeoutMs: number) {
    super("timeout", `leadership did not move within ${timeoutMs} ms (the target may be down or cut off); this node still leads`);
    this.name = "TransferTimeoutError";
  }
}

/** Leadership went elsewhere than asked (an election overtook the transfer). */
export class TransferOvertakenError extends SynodError {
  constructor(target: number, leader: number) {
    super("transfer_overtaken", `leadership went to node ${leader}, not to node ${target}: an election overtook the transfer`);
    this.name = "TransferOvertakenError";
  }
}

/** A proposed write could not be followed to its end; it may or may not apply. */
export class WriteOutcomeUnknownError extends SynodError {
  constructor(why: string) {
    super("timeout", `${why}; it may or may not have been applied (check before retrying a non-idempotent write)`);
    this.name = "WriteOutcomeUnknownError";
  }
}

/** The node is shutting down; the request was not taken. */
export class StoppedError extends SynodError {
  constructor() {
    super("no_leader", "the node is stopping");
    this.name = "StoppedError";
  }
}

export interface DriverLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * A snapshot of the state machine built a piece at a time while the node serves (the LMDB
 * backend's read transaction holds the state as it was when it began).
 */
export interface SnapshotBuilder {
  readonly meta: { readonly appliedIndex: number };
  /** Does up to `recordsMax` more of the work; true once `data` is complete. */
  step(recordsMax: number): boolean;
  readonly data: Uint8Array;
  abort(): void;
}

export interface DriverOptions {
  readonly engine: Engine<unknown, unknown>;
  readonly factory: EngineFactory<unknown, unknown>;
  readonly logStore: LogStore<unknown>;
  readonly kv: KvStore;
  /** Begins an incremental snapshot of `kv`; without it, snapshots are taken in one go. */
  readonly beginSnapshot?: () => SnapshotBuilder;
  readonly send: (to: NodeId, message: unknown) => boolean;
  /** Names this node's writes in the state machine's client sessions; unique per process start. */
  readonly clientId: number;
  /** The sequence number of this process's first write: above any an earlier process used. */
  readonly firstSequence: number;
  readonly tickMs: number;
  /** How many other members there are (0: this node is alone), for engines without a configuration of their own. */
  readonly peerCount: number;
  readonly requestTimeoutMs: number;
  readonly snapshotEntries: number;
  readonly pendingRequestsMax: number;
  readonly metrics: NodeMetrics;
  readonly log: DriverLogger;
  /**
   * A failure the node cannot continue after (the log could not be made durable). Default:
   * thrown on the next turn, an uncaught exception that ends the process.
   */
  readonly onFatal?: (error: unknown) => void;
  /** Called when the configuration the engine acts on changes (appended, or undone). */
  readonly onMembership?: (membership: Membership) => void;
}

interface Pending<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (error: Error) => void;
  readonly deadlineMs: number;
}

interface PendingWrite extends Pending<KvResult> {
  /** For a write in a client's session: its key in `clientWrites`. */
  readonly clientKey: string | null;
}

interface PendingRead extends Pending<void> {
  readonly id: number;
  /** Set once the engine says at which index the read is safe. */
  index: number | null;
}

/** Readies handled in one pump before yielding to the event loop (I/O and timers wait meanwhile). */
const READIES_PER_PUMP_MAX = 64;
/**
 * Records copied per step of an incremental snapshot: a step costs about a millisecond, so
 * requests wait at most that long behind it.
 */
const SNAPSHOT_RECORDS_PER_STEP = 500;
/** How often a leader proposes its wall clock for the state machine (session expiry). */
const CLOCK_INTERVAL_MS = 10_000;
/** Dropped malformed peer messages are logged at most this often per peer. */
const MALFORMED_LOG_INTERVAL_MS = 10_000;
/** A flush slower than this is logged: heartbeats wait behind it. */
const SLOW_PERSIST_MS = 250;
/** Ticks caught up at once after a long stall; more than this and the rest are skipped. */
const CATCH_UP_TICKS_MAX = 10_000;

export class Driver {
  private readonly engine: Engine<unknown, unknown>;
  private readonly options: DriverOptions;
  /** Writes waiting to apply, by ticket (the node session's sequence, in arrival order). */
  private readonly pendingWrites = new Map<number, PendingWrite>();
  /**
   * Writes in clients' sessions, by "clientId:sequence": the tickets waiting for that
   * request (a client that retries through the same node waits twice for one entry).
   */
  private readonly clientWrites = new Map<string, number[]>();
  private readonly pendingReads = new Map<number, PendingRead>();
  private pendingTransfers: (Pending<{ readonly leader: NodeId; readonly term: number }> & { readonly target: NodeId | null })[] = [];
  /** Configuration changes this leader took, waiting to be applied (the entry's index and term). */
  private pendingChanges: (Pending<{ readonly index: number }> & { readonly index: number; readonly term: number })[] = [];
  private lastMembership: Membership | null = null;
  /** When this node, leading, last proposed a clock entry (performance.now). */
  private clockProposedMs = Number.NEGATIVE_INFINITY;
  /** Confirmed reads waiting for the state machine to apply up to their index. */
  private readsAwaitingApply: PendingRead[] = [];
  private nextSequence: number;
  /**
   * Random, so a late answer to a read that an earlier process of this node forwarded cannot
   * be taken for one of this process's reads.
   */
  private nextReadId = randomInt(1, 2 ** 47);
  private pumpScheduled = false;
  private tickTimer: NodeJS.Timeout | null = null;
  private ticksDone = 0;
  private startedAtMs = 0;
  private lastTerm = -1;
  private lastLeader: NodeId | null = null;
  private stopped = false;
  private readonly malformedLoggedMs = new Map<NodeId, number>();
  private readonly malformedDropped = new Map<NodeId, number>();
  /** A snapshot file being written (`LogStore.prepareCompaction`), while it is. */
  private snapshotFileWrite: Promise<void> | null = null;
  /** The fdatasync of the Ready in hand, while it runs. */
  private persisting: Promise<void> | null = null;
  /** A snapshot built and waiting for the log store to be free. */
  private snapshotToSave: { readonly snapshot: Snapshot; readonly startedMs: number } | null = null;
  private snapshotInProgress: { readonly builder: SnapshotBuilder; readonly term: number; readonly membership: Membership | undefined; readonly startedMs: number } | null = null;

  constructor(options: DriverOptions) {
    this.options = options;
    this.engine = options.engine;
    this.nextSequence = options.firstSequence;
  }

  start(): void {
    assert(this.tickTimer === null, "driver started twice");
    this.startedAtMs = performance.now();
    this.tickTimer = setInterval(() => this.onTimer(), this.options.tickMs);
    this.schedulePump();
  }

  /**
   * Stops ticking and fails every waiting request; resolves once no write to the log is in
   * flight. The log store and KV are the caller's to close after that.
   */
  async stop(): Promise<void> {
    this.stopRequests();
    await this.persisting?.catch(() => undefined);
    await this.snapshotFileWrite;
  }

  private stopRequests(): void {
    this.stopped = true;
    this.abortSnapshot();
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    this.tickTimer = null;
    // A write already proposed may still commit (on the other members): its outcome is
    // unknown, as for a timeout. A read has no effect, so it is simply refused.
    const unknown = new WriteOutcomeUnknownError("the node stopped before the write completed");
    for (const pending of this.pendingWrites.values()) pending.reject(unknown);
    const stopped = new StoppedError();
    for (const pending of this.pendingReads.values()) pending.reject(stopped);
    for (const pending of this.pendingTransfers) pending.reject(stopped);
    this.pendingTransfers = [];
    const changeUnknown = new WriteOutcomeUnknownError("the node stopped before the membership change completed");
    for (const pending of this.pendingChanges) pending.reject(changeUnknown);
    this.pendingChanges = [];
    this.pendingWrites.clear();
    this.clientWrites.clear();
    this.pendingReads.clear();
    this.readsAwaitingApply = [];
  }

  get pendingRequests(): number {
    return this.pendingWrites.size + this.pendingReads.size;
  }

  status(): ReturnType<Engine<unknown, unknown>["status"]> {
    return this.engine.status();
  }

  /** A message from a peer, as decoded off the wire: validated, then stepped. */
  receive(from: NodeId, value: unknown): void {
    if (this.stopped) return;
    let message: unknown = value;
    if (this.options.factory.validateMessage !== undefined) {
      try {
        message = this.options.factory.validateMessage(value);
      } catch (error) {
        this.noteMalformed(from, error);
        return;
      }
    }
    this.catchUpTicks();
    this.engine.step(from, message);
    this.schedulePump();
  }

  /** Logs a dropped malformed message, at most once per peer every 10 s (a broken peer must not flood the log). */
  private noteMalformed(from: NodeId, error: unknown): void {
    const nowMs = performance.now();
    const last = this.malformedLoggedMs.get(from);
    const dropped = (this.malformedDropped.get(from) ?? 0) + 1;
    this.malformedDropped.set(from, dropped);
    if (last !== undefined && nowMs - last < MALFORMED_LOG_INTERVAL_MS) return;
    this.malformedLoggedMs.set(from, nowMs);
    this.malformedDropped.set(from, 0);
    this.options.log.warn({ from, dropped, err: error }, "dropped malformed messages from a peer");
  }

  /**
   * Proposes a write; resolves with its result once it applied on this node. Without
   * `client`, the write goes in this node's own session; with it, in the client's, so a
   * retry of the same request (here or through another node) applies once and gets the
   * first result, and a write of a session the store no longer holds resolves with
   * "session-expired" (nothing applied).
   */
  write(operation: KvOperation, client: ClientRequest | null = null): Promise<KvResult> {
    if (this.stopped) return Promise.reject(new StoppedError());
    if (this.pendingRequests >= this.options.pendingRequestsMax) return Promise.reject(new TooManyRequestsError(this.options.pendingRequestsMax));
    const ticket = this.nextSequence++;
    const request = client === null ? { clientId: this.options.clientId, sequence: ticket } : client;
    // encodeCommand validates sizes and throws InvalidInputError before anything is proposed.
    const data = encodeCommand({ ...operation, request } as KvCommand);
    const admission = this.engine.propose(data);
    if (!admission.accepted) {
      this.options.metrics.proposals.inc({ result: "refused" });
      return Promise.reject(admission.error);
    }
    this.options.metrics.proposals.inc({ result: "accepted" });
    this.schedulePump();
    const clientKey = client === null ? null : `${client.clientId}:${client.sequence}`;
    if (clientKey !== null) this.clientWrites.set(clientKey, [...(this.clientWrites.get(clientKey) ?? []), ticket]);
    return new Promise((resolve, reject) => {
      this.pendingWrites.set(ticket, { resolve, reject, deadlineMs: performance.now() + this.options.requestTimeoutMs, clientKey });
    });
  }

  /** Opens a client session: resolves with its id once the registration applied here. */
  async register(): Promise<number> {
    const result = await this.write({ op: "register" });
    assert(result.op === "session", "a registration applies as a session");
    return result.clientId;
  }

  /**
   * Resolves when this node's state machine may serve a read at `consistency`: at once for
   * stale; for linearizable and lease once the engine confirmed a read index and the state
   * machine applied up to it.
   */
  read(consistency: ReadConsistency): Promise<void> {
    this.options.metrics.reads.inc({ consistency });
    if (consistency === "stale") return Promise.resolve();
    if (this.stopped) return Promise.reject(new StoppedError());
    if (this.pendingRequests >= this.options.pendingRequestsMax) return Promise.reject(new TooManyRequestsError(this.options.pendingRequestsMax));
    const readId = this.nextReadId++;
    this.catchUpTicks();
    const admission = this.engine.readIndex(readId, { lease: consistency === "lease" });
    if (!admission.accepted) return Promise.reject(admission.error);
    this.schedulePump();
    return new Promise((resolve, reject) => {
      this.pendingReads.set(readId, { id: readId, resolve, reject, deadlineMs: performance.now() + this.options.requestTimeoutMs, index: null });
    });
  }

  /**
   * Hands leadership to `to` (null: the engine's pick); resolves with the new leader once
   * this node sees it lead, rejects if it does not happen within the request timeout.
   */
  transferLeadership(to: NodeId | null): Promise<{ readonly leader: NodeId; readonly term: number }> {
    if (this.stopped) return Promise.reject(new StoppedError());
    if (this.engine.transferLeadership === undefined) return Promise.reject(new InvalidInputError("this consensus protocol has no leadership transfer"));
    const admission = this.engine.transferLeadership(to);
    if (!admission.accepted) return Promise.reject(admission.error);
    const status = this.engine.status();
    if (to === status.id || (to === null && this.isAlone())) return Promise.resolve({ leader: status.id, term: status.term });
    this.schedulePump();
    return new Promise((resolve, reject) => {
      this.pendingTransfers.push({ target: to, resolve, reject, deadlineMs: performance.now() + this.options.requestTimeoutMs });
    });
  }

  /**
   * Asks the engine (which must lead) for a configuration change; resolves with the index
   * of its entry once this node has applied it — it is then committed, and in force.
   * Rejects with the engine's refusal (NotLeaderError, MembershipChangeInProgressError,
   * InvalidInputError), LeaderChangedError if the entry was overwritten, or
   * RequestTimeoutError.
   */
  changeMembership(change: MembershipChange): Promise<{ readonly index: number }> {
    if (this.stopped) return Promise.reject(new StoppedError());
    if (this.engine.changeMembership === undefined) return Promise.reject(new InvalidInputError("this consensus protocol has no membership changes"));
    const admission = this.engine.changeMembership(change);
    if (!admission.accepted) return Promise.reject(admission.error);
    const { lastIndex: index, term } = this.engine.status();
    this.schedulePump();
    return new Promise((resolve, reject) => {
      this.pendingChanges.push({ index, term, resolve, reject, deadlineMs: performance.now() + this.options.requestTimeoutMs });
    });
  }

  /** Changes applied (resolved) or overwritten by another leader's log (rejected). */
  private settleChanges(): void {
    if (this.pendingChanges.length === 0) return;
    const applied = this.options.kv.applied;
    this.pendingChanges = this.pendingChanges.filter((change) => {
      const term = this.engine.entryTerm(change.index);
      if (term !== null && term !== change.term) {
        change.reject(new LeaderChangedError());
        return false;
      }
      if (applied < change.index) return true;
      change.resolve({ index: change.index });
      return false;
    });
  }

  /** Tells the node when the configuration changes, once per change. */
  private noticeMembership(): void {
    const membership = this.engine.membership?.();
    if (membership === undefined || membership === this.lastMembership) return;
    this.lastMembership = membership;
    this.options.onMembership?.(membership);
  }

  /** The only voter: no one to hand over to. */
  private isAlone(): boolean {
    const membership = this.engine.membership?.();
    if (membership === undefined) return this.options.peerCount === 0;
    const self = this.engine.status().id;
    return membership.voters.every((id) => id === self) && membership.outgoing.every((id) => id === self);
  }

  private onTimer(): void {
    this.catchUpTicks();
    this.expireRequests();
    this.proposeClock();
    this.schedulePump();
  }

  /**
   * While leading, every `CLOCK_INTERVAL_MS`: a clock entry with this node's wall clock, the
   * time by which the state machine expires client sessions (see KvStore). At once when it
   * becomes leader, so the clock is never long behind.
   */
  private proposeClock(): void {
    if (this.engine.status().role !== "leader") {
      this.clockProposedMs = Number.NEGATIVE_INFINITY;
      return;
    }
    const nowMs = performance.now();
    if (nowMs - this.clockProposedMs < CLOCK_INTERVAL_MS) return;
    this.clockProposedMs = nowMs;
    // Answered by no one: its ticket matches no pending write. A refusal (a transfer under
    // way) is tried again next interval.
    this.engine.propose(encodeCommand({ op: "clock", request: { clientId: this.options.clientId, sequence: this.nextSequence++, timeMs: Date.now() } }));
  }

  /**
   * Gives the engine every tick the monotonic clock says is due. Called from the timer, and
   * before a read or a peer's message reaches the engine: after a pause, I/O callbacks run
   * before timers, and a lease must not be judged on the ticks of before the pause.
   */
  private catchUpTicks(): void {
    if (this.tickTimer === null) return;
    const due = Math.floor((performance.now() - this.startedAtMs) / this.options.tickMs);
    let missed = due - this.ticksDone;
    if (missed > CATCH_UP_TICKS_MAX) {
      this.options.log.warn({ missedTicks: missed }, "the event loop stalled; skipping ticks beyond the catch-up limit");
      this.ticksDone += missed - CATCH_UP_TICKS_MAX;
      missed = CATCH_UP_TICKS_MAX;
    }
    for (let i = 0; i < missed; i++) this.engine.tick();
    this.ticksDone += missed;
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.stopped) return;
    this.pumpScheduled = true;
    setImmediate(() => this.pump());
  }

  private pump(): void {
    this.pumpScheduled = false;
    if (this.stopped) return;
    for (let i = 0; i < READIES_PER_PUMP_MAX && this.persisting === null && this.engine.hasReady(); i++) this.handleReady(this.engine.ready());
    this.noticeLeadership();
    this.noticeMembership();
    if (this.persisting === null && this.engine.hasReady()) this.schedulePump();
  }

  private handleReady(ready: Ready<unknown, unknown>): void {
    for (const { to, message } of ready.messages) this.options.send(to, message);
    if (ready.snapshot === null && ready.entries.length === 0 && ready.hardState === null) {
      this.finishReady(ready, 0);
      return;
    }
    const startedMs = performance.now();
    this.options.logStore.save({ snapshot: ready.snapshot, entries: ready.entries, hardState: ready.hardState });
    if (ready.entries.length > 0) this.options.metrics.readyBatchEntries.observe(ready.entries.length);
    // Committed entries this node already holds durably (written by an earlier Ready: those
    // before this Ready's first entry) need not wait for this fdatasync: they are on a
    // quorum's disks, this one included. Applying them now saves a flush of latency per
    // write. The rest (entries of this Ready itself) apply after it, so the state machine
    // is never ahead of the durable log.
    const durableBefore = ready.snapshot !== null ? 0 : (ready.entries[0]?.index ?? Number.POSITIVE_INFINITY);
    let early = 0;
    while (early < ready.committedEntries.length && (ready.committedEntries[early] as LogEntry).index < durableBefore) early++;
    this.persisting = this.options.logStore.syncAsync().then(
      () => {
        this.persisting = null;
        const persistMs = performance.now() - startedMs;
        this.options.metrics.fsyncSeconds.observe(persistMs / 1000);
        // Nothing leaves this node while its log flushes; a flush this slow stalls heartbeats.
        if (persistMs > SLOW_PERSIST_MS) this.options.log.warn({ ms: Math.round(persistMs), entries: ready.entries.length }, "a write-ahead log fdatasync was slow");
        if (this.stopped) return;
        this.finishReady(ready, early);
        this.saveSnapshot();
        this.pump();
      },
      (error: unknown) => {
        this.persisting = null;
        this.stopRequests();
        this.options.log.error({ err: error }, "the write-ahead log could not be made durable; stopping");
        const fatal = this.options.onFatal ?? ((failure: unknown) => setImmediate(() => { throw failure; }));
        fatal(error);
      },
    );
    // While the disk flushes.
    if (early > 0) this.apply(ready.committedEntries.slice(0, early));
  }

  /** The part of a Ready that comes after its writes are durable; `applied` committed entries already were. */
  private finishReady(ready: Ready<unknown, unknown>, applied: number): void {
    for (const { to, message } of ready.messagesAfterPersist) this.options.send(to, message);
    if (ready.snapshot !== null) {
      // The leader's snapshot replaces the state a snapshot in progress was taken of.
      this.abortSnapshot();
      this.options.kv.restore(ready.snapshot.data);
      this.options.metrics.snapshotsInstalled.inc();
      this.options.log.info({ index: ready.snapshot.index, term: ready.snapshot.term, bytes: ready.snapshot.data.length }, "installed the leader's snapshot");
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
  }

  private apply(entries: readonly LogEntry[]): void {
    const results = this.options.kv.applyBatch(entries);
    for (const applied of results) {
      if (applied.request === null) continue;
      const { clientId, sequence } = applied.request;
      if (clientId === this.options.clientId) {
        this.settleWrite(sequence, applied.result);
        continue;
      }
      // Most entries are other nodes' own writes: no key to build unless a client waits here.
      if (this.clientWrites.size === 0) continue;
      const key = `${clientId}:${sequence}`;
      const tickets = this.clientWrites.get(key);
      if (tickets === undefined) continue;
      this.clientWrites.delete(key);
      for (const ticket of tickets) this.settleWrite(ticket, applied.result);
    }
  }

  private settleWrite(ticket: number, result: KvResult): void {
    const pending = this.pendingWrites.get(ticket);
    if (pending === undefined) return;
    this.pendingWrites.delete(ticket);
    pending.resolve(result);
  }

  /** Forgets a client write's ticket (it timed out): the entry may still apply, for no one. */
  private forgetClientTicket(write: PendingWrite, ticket: number): void {
    if (write.clientKey === null) return;
    const left = (this.clientWrites.get(write.clientKey) ?? []).filter((t) => t !== ticket);
    if (left.length === 0) this.clientWrites.delete(write.clientKey);
    else this.clientWrites.set(write.clientKey, left);
  }

  private serveReads(): void {
    if (this.readsAwaitingApply.length === 0) return;
    const applied = this.options.kv.applied;
    const waiting: PendingRead[] = [];
    for (const read of this.readsAwaitingApply) {
      if ((read.index as number) > applied) {
        waiting.push(read);
        continue;
      }
      this.pendingReads.delete(read.id);
      read.resolve();
    }
    this.readsAwaitingApply = waiting;
  }

  /**
   * A read the engine has not confirmed yet dies with the leadership it waited on (a deposed
   * leader drops its pending rounds; a follower's forwarded read goes unanswered), so when
   * the term or the leader changes, such reads fail at once with a retryable error rather
   * than time out. Writes wait: one may still commit under the new leader.
   */
  private noticeLeadership(): void {
    const status = this.engine.status();
    if (status.term === this.lastTerm && status.leader === this.lastLeader) return;
    const first = this.lastTerm === -1;
    if (status.leader !== null) this.options.metrics.leaderChanges.inc();
    this.lastTerm = status.term;
    this.lastLeader = status.leader;
    if (!first) this.options.log.info({ term: status.term, leader: status.leader, role: status.role }, "leadership changed");
    if (status.leader !== null && status.leader !== status.id && this.pendingTransfers.length > 0) {
      for (const transfer of this.pendingTransfers) {
        if (transfer.target === null || transfer.target === status.leader) transfer.resolve({ leader: status.leader, term: status.term });
        else transfer.reject(new TransferOvertakenError(transfer.target, status.leader));
      }
      this.pendingTransfers = [];
    }
    const error = new LeaderChangedError();
    for (const [id, read] of this.pendingReads) {
      if (read.index !== null) continue;
      this.pendingReads.delete(id);
      read.reject(error);
    }
  }

  /** Pending requests are kept in arrival order, so the expired ones are at the front. */
  private expireRequests(): void {
    const nowMs = performance.now();
    for (const [ticket, write] of this.pendingWrites) {
      if (write.deadlineMs > nowMs) break;
      this.pendingWrites.delete(ticket);
      this.forgetClientTicket(write, ticket);
      this.options.metrics.proposals.inc({ result: "timeout" });
      write.reject(new RequestTimeoutError("write", this.options.requestTimeoutMs));
    }
    let expiredReads = false;
    for (const [id, read] of this.pendingReads) {
      if (read.deadlineMs > nowMs) break;
      this.pendingReads.delete(id);
      expiredReads = true;
      read.reject(new RequestTimeoutError("read", this.options.requestTimeoutMs));
    }
    if (expiredReads) this.readsAwaitingApply = this.readsAwaitingApply.filter((read) => read.deadlineMs > nowMs);
    while (this.pendingTransfers.length > 0 && (this.pendingTransfers[0] as { deadlineMs: number }).deadlineMs <= nowMs) {
      this.pendingTransfers.shift()?.reject(new TransferTimeoutError(this.options.requestTimeoutMs));
    }
    while (this.pendingChanges.length > 0 && (this.pendingChanges[0] as { deadlineMs: number }).deadlineMs <= nowMs) {
      this.pendingChanges.shift()?.reject(new RequestTimeoutError("membership change", this.options.requestTimeoutMs));
    }
  }

  /**
   * Every `snapshotEntries` applied entries: capture the state machine at the applied
   * index, make the snapshot durable (the log store writes it atomically and drops the log
   * behind it), then let the engine compact. With an incremental builder the capture runs a
   * step per event-loop turn, so a large state does not stall the node; entries applied
   * meanwhile stay in the log, after the snapshot's index.
   */
  private maybeSnapshot(): void {
    if (this.snapshotInProgress !== null || this.snapshotToSave !== null || this.engine.compact === undefined) return;
    const applied = this.options.kv.applied;
    if (applied - this.engine.status().snapshotIndex < this.options.snapshotEntries) return;
    const term = this.engine.entryTerm(applied);
    assert(term !== null, `no term for the applied index ${applied}`);
    const startedMs = performance.now();
    // The configuration at the snapshot's index goes into it: the log that held it will go.
    const membership = this.engine.membershipAt?.(applied);
    if (this.options.beginSnapshot === undefined) {
      const data = this.options.kv.snapshot();
      this.finishSnapshot(membership === undefined ? { index: applied, term, data } : { index: applied, term, data, membership }, startedMs);
      return;
    }
    const builder = this.options.beginSnapshot();
    assert(builder.meta.appliedIndex === applied, `a snapshot began at ${builder.meta.appliedIndex}, not at the applied index ${applied}`);
    this.snapshotInProgress = { builder, term, membership, startedMs };
    setImmediate(() => this.stepSnapshot(builder));
  }

  private stepSnapshot(builder: SnapshotBuilder): void {
    const progress = this.snapshotInProgress;
    if (progress === null || progress.builder !== builder || this.stopped) return;
    if (!builder.step(SNAPSHOT_RECORDS_PER_STEP)) {
      setImmediate(() => this.stepSnapshot(builder));
      return;
    }
    const base = { index: builder.meta.appliedIndex, term: progress.term, data: builder.data };
    const snapshot: Snapshot = progress.membership === undefined ? base : { ...base, membership: progress.membership };
    // The snapshot's file is written off the event loop; the compaction itself (a checkpoint
    // of the log) follows, when the log store is free: with a write in flight, right after it
    // (see handleReady).
    this.snapshotFileWrite = this.options.logStore.prepareCompaction(snapshot).then(
      () => {
        this.snapshotFileWrite = null;
        if (this.snapshotInProgress !== progress || this.stopped) return; // aborted meanwhile
        this.snapshotInProgress = null;
        this.snapshotToSave = { snapshot, startedMs: progress.startedMs };
        if (this.persisting === null) this.saveSnapshot();
      },
      (error: unknown) => {
        this.snapshotFileWrite = null;
        if (this.snapshotInProgress === progress) this.snapshotInProgress = null;
        this.options.log.error({ err: error }, "could not write a snapshot; the log is not compacted, the next attempt follows");
      },
    );
  }

  private saveSnapshot(): void {
    const toSave = this.snapshotToSave;
    if (toSave === null) return;
    this.snapshotToSave = null;
    this.finishSnapshot(toSave.snapshot, toSave.startedMs);
  }

  private finishSnapshot(snapshot: Snapshot, startedMs: number): void {
    const { index, term, data } = snapshot;
    if (index <= this.engine.status().snapshotIndex) return; // overtaken by a leader's snapshot
    const savingMs = performance.now();
    this.options.logStore.compact(snapshot);
    this.engine.compact?.(index, data);
    this.options.metrics.snapshots.inc();
    const doneMs = performance.now();
    this.options.log.info({ index, term, bytes: data.length, ms: Math.round(doneMs - startedMs), savingMs: Math.round(doneMs - savingMs) }, "snapshot taken, log compacted");
  }

  private abortSnapshot(): void {
    this.snapshotInProgress?.builder.abort();
    this.snapshotInProgress = null;
    this.snapshotToSave = null;
  }
}

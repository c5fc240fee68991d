/**
 * The runtime's engine driver: it runs a consensus engine by the engine contract against real
 * time, a real disk and a real network, and connects it to clients.
 *
 * Inputs (a peer's message, a client's write or read, a tick) go into the engine at once; a
 * "pump" is scheduled with `setImmediate`, so every input that arrives in one turn of the
 * event loop shares one Ready: one write and one fdatasync of the log for all the entries
 * (group commit), one append per follower, one heartbeat round for all the reads. A Ready is
 * handled in the contract's order, synchronously: send `messages`; write and sync the log;
 * send `messagesAfterPersist`; install a snapshot; apply the committed entries to the state
 * machine in one transaction; answer the writes that applied and the reads that became safe;
 * `advance`.
 *
 * Time: ticks are counted from a monotonic clock, not from timer callbacks, so a stalled
 * event loop (or a paused process) catches up on the ticks it missed when it wakes — the
 * leader's lease depends on its ticks not running slow.
 */
import { performance } from "node:perf_hooks";
import { assert } from "../../core/common/assert.js";
import { NotLeaderError, SynodError } from "../../core/common/errors.js";
import type { Engine, EngineFactory, LogEntry, NodeId, Ready } from "../../core/engine/contract.js";
import { encodeCommand, type KvCommand } from "../../core/kv/command.js";
import type { KvResult, KvStore } from "../../core/kv/store.js";
import type { LogStore } from "../storage/log-store.js";
import type { NodeMetrics } from "./metrics.js";

/** A write as a client states it; the driver adds the request id. */
export type KvOperation = KvCommand extends infer C ? (C extends KvCommand ? Omit<C, "request"> : never) : never;

export type ReadConsistency = "linearizable" | "lease" | "stale";

/** The request did not complete within the node's request timeout. */
export class RequestTimeoutError extends SynodError {
  constructor(what: "write" | "read", timeoutMs: number) {
    super(
      "timeout",
      what === "write"
        ? `the write did not complete within ${timeoutMs} ms; it may or may not have been applied (check before retrying a non-idempotent write)`
        : `the read could not be confirmed within ${timeoutMs} ms`,
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

/** The node is shutting down. */
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

export interface DriverOptions {
  readonly engine: Engine<unknown, unknown>;
  readonly factory: EngineFactory<unknown, unknown>;
  readonly logStore: LogStore<unknown>;
  readonly kv: KvStore;
  readonly send: (to: NodeId, message: unknown) => boolean;
  /** Names this node's writes in the state machine's client sessions; unique per process start. */
  readonly clientId: number;
  readonly tickMs: number;
  readonly requestTimeoutMs: number;
  readonly snapshotEntries: number;
  readonly pendingRequestsMax: number;
  readonly metrics: NodeMetrics;
  readonly log: DriverLogger;
}

interface Pending<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (error: Error) => void;
  readonly deadlineMs: number;
}

interface PendingRead extends Pending<void> {
  readonly id: number;
  /** Set once the engine says at which index the read is safe. */
  index: number | null;
}

/** Readies handled in one pump before yielding to the event loop (I/O and timers wait meanwhile). */
const READIES_PER_PUMP_MAX = 64;
/** Ticks caught up at once after a long stall; more than this and the rest are skipped. */
const CATCH_UP_TICKS_MAX = 10_000;

export class Driver {
  private readonly engine: Engine<unknown, unknown>;
  private readonly options: DriverOptions;
  private readonly pendingWrites = new Map<number, Pending<KvResult>>();
  private readonly pendingReads = new Map<number, PendingRead>();
  /** Confirmed reads waiting for the state machine to apply up to their index. */
  private readsAwaitingApply: PendingRead[] = [];
  private nextSequence = 1;
  private nextReadId = 1;
  private pumpScheduled = false;
  private tickTimer: NodeJS.Timeout | null = null;
  private ticksDone = 0;
  private startedAtMs = 0;
  private lastTerm = -1;
  private lastLeader: NodeId | null = null;
  private stopped = false;

  constructor(options: DriverOptions) {
    this.options = options;
    this.engine = options.engine;
  }

  start(): void {
    assert(this.tickTimer === null, "driver started twice");
    this.startedAtMs = performance.now();
    this.tickTimer = setInterval(() => this.onTimer(), this.options.tickMs);
    this.schedulePump();
  }

  /** Stops ticking and fails every waiting request. The log store and KV are the caller's to close. */
  stop(): void {
    this.stopped = true;
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    this.tickTimer = null;
    const error = new StoppedError();
    for (const pending of this.pendingWrites.values()) pending.reject(error);
    for (const pending of this.pendingReads.values()) pending.reject(error);
    this.pendingWrites.clear();
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
        this.options.log.warn({ from, err: error }, "dropped a malformed message from a peer");
        return;
      }
    }
    this.engine.step(from, message);
    this.schedulePump();
  }

  /** Proposes a write; resolves with its result once it applied on this node. */
  write(operation: KvOperation): Promise<KvResult> {
    if (this.stopped) return Promise.reject(new StoppedError());
    if (this.pendingRequests >= this.options.pendingRequestsMax) return Promise.reject(new TooManyRequestsError(this.options.pendingRequestsMax));
    const sequence = this.nextSequence++;
    // encodeCommand validates sizes and throws InvalidInputError before anything is proposed.
    const data = encodeCommand({ ...operation, request: { clientId: this.options.clientId, sequence } } as KvCommand);
    const admission = this.engine.propose(data);
    if (!admission.accepted) {
      this.options.metrics.proposals.inc({ result: "refused" });
      return Promise.reject(admission.error);
    }
    this.options.metrics.proposals.inc({ result: "accepted" });
    this.schedulePump();
    return new Promise((resolve, reject) => {
      this.pendingWrites.set(sequence, { resolve, reject, deadlineMs: performance.now() + this.options.requestTimeoutMs });
    });
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
    const admission = this.engine.readIndex(readId, { lease: consistency === "lease" });
    if (!admission.accepted) return Promise.reject(admission.error);
    this.schedulePump();
    return new Promise((resolve, reject) => {
      this.pendingReads.set(readId, { id: readId, resolve, reject, deadlineMs: performance.now() + this.options.requestTimeoutMs, index: null });
    });
  }

  private onTimer(): void {
    const due = Math.floor((performance.now() - this.startedAtMs) / this.options.tickMs);
    let missed = due - this.ticksDone;
    if (missed > CATCH_UP_TICKS_MAX) {
      this.options.log.warn({ missedTicks: missed }, "the event loop stalled; skipping ticks beyond the catch-up limit");
      this.ticksDone += missed - CATCH_UP_TICKS_MAX;
      missed = CATCH_UP_TICKS_MAX;
    }
    for (let i = 0; i < missed; i++) this.engine.tick();
    this.ticksDone += missed;
    this.expireRequests();
    this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.stopped) return;
    this.pumpScheduled = true;
    setImmediate(() => this.pump());
  }

  private pump(): void {
    this.pumpScheduled = false;
    if (this.stopped) return;
    for (let i = 0; i < READIES_PER_PUMP_MAX && this.engine.hasReady(); i++) this.handleReady(this.engine.ready());
    this.noticeLeadership();
    if (this.engine.hasReady()) this.schedulePump();
  }

  private handleReady(ready: Ready<unknown, unknown>): void {
    for (const { to, message } of ready.messages) this.options.send(to, message);
    if (ready.snapshot !== null || ready.entries.length > 0 || ready.hardState !== null) {
      const startedMs = performance.now();
      this.options.logStore.save({ snapshot: ready.snapshot, entries: ready.entries, hardState: ready.hardState });
      this.options.logStore.sync();
      this.options.metrics.fsyncSeconds.observe((performance.now() - startedMs) / 1000);
      if (ready.entries.length > 0) this.options.metrics.readyBatchEntries.observe(ready.entries.length);
    }
    for (const { to, message } of ready.messagesAfterPersist) this.options.send(to, message);
    if (ready.snapshot !== null) {
      this.options.kv.restore(ready.snapshot.data);
      this.options.log.info({ index: ready.snapshot.index, term: ready.snapshot.term, bytes: ready.snapshot.data.length }, "installed the leader's snapshot");
    }
    if (ready.committedEntries.length > 0) this.apply(ready.committedEntries);
    for (const { requestId, index } of ready.readStates) {
      const read = this.pendingReads.get(requestId);
      if (read === undefined) continue;
      read.index = index;
      this.readsAwaitingApply.push(read);
    }
    this.serveReads();
    this.engine.advance(ready);
    this.maybeSnapshot();
  }

  private apply(entries: readonly LogEntry[]): void {
    const results = this.options.kv.applyBatch(entries);
    for (const applied of results) {
      if (applied.request === null || applied.request.clientId !== this.options.clientId) continue;
      const pending = this.pendingWrites.get(applied.request.sequence);
      if (pending === undefined) continue;
      this.pendingWrites.delete(applied.request.sequence);
      pending.resolve(applied.result);
    }
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
    this.lastTerm = status.term;
    this.lastLeader = status.leader;
    if (!first) this.options.log.info({ term: status.term, leader: status.leader, role: status.role }, "leadership changed");
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
    for (const [sequence, write] of this.pendingWrites) {
      if (write.deadlineMs > nowMs) break;
      this.pendingWrites.delete(sequence);
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
  }

  /**
   * Every `snapshotEntries` applied entries: capture the state machine, make the snapshot
   * durable (the log store writes it atomically and drops the log behind it), then let the
   * engine compact. Synchronous: the state is read at exactly the applied index.
   */
  private maybeSnapshot(): void {
    const status = this.engine.status();
    const applied = this.options.kv.applied;
    if (applied - status.snapshotIndex < this.options.snapshotEntries || this.engine.compact === undefined) return;
    const term = this.engine.entryTerm(applied);
    assert(term !== null, `no term for the applied index ${applied}`);
    const startedMs = performance.now();
    const snapshot = { index: applied, term, data: this.options.kv.snapshot() };
    this.options.logStore.compact(snapshot);
    this.engine.compact(applied, snapshot.data);
    this.options.metrics.snapshots.inc();
    this.options.log.info({ index: applied, term, bytes: snapshot.data.length, ms: Math.round(performance.now() - startedMs) }, "snapshot taken, log compacted");
  }
}

/** The answer to give a client for an engine's refusal. */
export function isNoLeader(error: unknown): boolean {
  return error instanceof NotLeaderError || error instanceof LeaderChangedError || error instanceof StoppedError;
}

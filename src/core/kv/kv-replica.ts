/**
 * The KV store, replicated: the request layer between the store's callers (the node's HTTP
 * API, the simulator's clients) and a `Replica` whose state machine is a `KvStore`. It
 * encodes commands, names each write's request (the node's own session, or a client's),
 * matches applied entries back to the writes waiting here, and, while leading, proposes
 * the clock entries by which sessions expire. The replica below knows nothing of KV.
 */
import { assert } from "../common/assert.js";
import type { Engine, NodeId } from "../engine/contract.js";
import type { ProposalKey, ReplicaObserver, SnapshotBuilder, StateMachine, Waiter } from "../replica/contract.js";
import { createReplica, type ReplicaMutant } from "../replica/mutants.js";
import type { Replica, ReplicaOptions } from "../replica/replica.js";
import type { LogEntry, Snapshot } from "../engine/contract.js";
import { encodeCommand, type KvCommand, type RequestId } from "./command.js";
import type { Applied, KvResult } from "./model.js";
import type { KvStore } from "./store.js";
import type { KvMutant } from "./mutants.js";
import { WriteOutcomeUnknownError } from "../replica/errors.js";

/** A write as a caller states it; the request layer adds the request id. */
export type KvOperation = KvCommand extends infer C ? (C extends KvCommand ? Omit<C, "request"> : never) : never;

/** A client's session and the sequence number of this write in it (see KvStore). */
export interface ClientRequest {
  readonly clientId: number;
  readonly sequence: number;
}

export type ReadConsistency = "linearizable" | "lease" | "stale";

/** How often a leader proposes its wall clock for the state machine (session expiry). */
export const CLOCK_INTERVAL_MS = 10_000;
/**
 * How often while the store holds leases: a lease expires at the first clock entry past its
 * expiry, so this is how late (at most) an expiry comes after its time to live.
 */
export const LEASE_CLOCK_INTERVAL_MS = 250;
/** A leader keeping `historyRevisions` proposes a compaction at most this often. */
export const RETENTION_INTERVAL_MS = 1_000;
/** Changes a purge step of the history processes (one backend transaction, a few milliseconds). */
export const PURGE_CHANGES_PER_STEP = 1_000;

/**
 * A `KvStore` as the replica's state machine. A write's proposal key is its sequence number
 * when it is in this node's own session, else "clientId:sequence".
 */
export class KvStateMachine implements StateMachine<Applied> {
  constructor(
    readonly kv: KvStore,
    private readonly nodeClientId: number,
    /** Begins an incremental capture (the LMDB backend's); without it, snapshots are taken in one go. */
    private readonly beginIncremental?: () => SnapshotBuilder,
    /** Called after each batch applied. */
    private readonly onApplied?: () => void,
  ) {}

  get appliedIndex(): number {
    return this.kv.applied;
  }

  apply(entries: readonly LogEntry[]): readonly Applied[] {
    const applied = this.kv.applyBatch(entries);
    this.onApplied?.();
    return applied;
  }

  restore(snapshot: Snapshot): void {
    this.kv.restore(snapshot.data);
  }

  beginSnapshot(): SnapshotBuilder {
    if (this.beginIncremental !== undefined) return this.beginIncremental();
    return capturedSnapshot(this.kv.applied, this.kv.snapshot());
  }

  proposalKey(applied: Applied): ProposalKey | null {
    const request = applied.request;
    if (request === null) return null;
    return request.clientId === this.nodeClientId ? request.sequence : sessionKey(request.clientId, request.sequence);
  }
}

export function sessionKey(clientId: number, sequence: number): string {
  return `${clientId}:${sequence}`;
}

/** A snapshot captured whole at once (a state in memory). */
export function capturedSnapshot(index: number, data: Uint8Array): SnapshotBuilder {
  return { index, data, step: () => true, abort: () => undefined };
}

export interface KvReplicaOptions<M, H> extends Omit<ReplicaOptions<M, H, Applied>, "stateMachine" | "observer" | "rest"> {
  readonly engine: Engine<M, H>;
  readonly kv: KvStore;
  readonly beginSnapshot?: () => SnapshotBuilder;
  /** Names this node's own writes in the store's sessions (see KvStore). */
  readonly nodeClientId: number;
  /** The sequence number of this process's first own write: above any an earlier process used. */
  readonly firstSequence: number;
  /** The wall clock, in ms since the epoch: the time a leader's clock entries carry. */
  readonly wallClockMs: () => number;
  readonly observer?: ReplicaObserver<Applied>;
  /** The simulator's broken replica, to prove it is caught; never set in production. */
  readonly replicaMutant?: ReplicaMutant | null;
  /** The simulator's broken KV layer (core/kv/mutants.ts); never set in production. */
  readonly kvMutant?: KvMutant | null;
  /**
   * How many revisions of history to keep: while leading, the replica proposes compactions
   * that keep at least this many (and at most a tenth more). 0 or absent: keep everything.
   */
  readonly historyRevisions?: number;
  /**
   * Rest while quiet (ReplicaOptions.rest): no timer at all while the engine is quiet, and
   * no clock entry from a quiet leader while the store holds no lease, so an idle range
   * costs nothing until a request or a message wakes it; its clock catches up on the first
   * tick after. Sessions and transaction records then expire late in an idle range (never
   * early: the store's clock only moves forward, with the log), and leases keep the range
   * awake as before. Absent: a timer every tick, and a clock entry every CLOCK_INTERVAL_MS.
   */
  readonly restWhenQuiet?: boolean;
}

export class KvReplica<M, H> {
  readonly replica: Replica<M, H, Applied>;
  readonly kv: KvStore;
  private readonly options: KvReplicaOptions<M, H>;
  private nextSequence: number;
  /** When this node, leading, last proposed a clock entry (the monotonic clock). */
  private clockProposedMs = Number.NEGATIVE_INFINITY;
  /**
   * The term in which one of this node's clock entries marked `newLeader` applied: until
   * then, while leading, its clock entries carry the mark (see KvStore: leases are extended).
   */
  private leaderClockAppliedTerm = -1;
  /** When this node, leading, last proposed a compaction to keep `historyRevisions`. */
  private compactionProposedMs = Number.NEGATIVE_INFINITY;
  private cancelClockTimer: (() => void) | null = null;
  private purgeScheduled = false;
  private stopped = false;

  constructor(options: KvReplicaOptions<M, H>) {
    this.options = options;
    this.kv = options.kv;
    this.nextSequence = options.firstSequence;
    const historyRevisions = options.historyRevisions ?? 0;
    assert(Number.isSafeInteger(historyRevisions) && historyRevisions >= 0, "historyRevisions is a non-negative integer");
    const stateMachine = new KvStateMachine(options.kv, options.nodeClientId, options.beginSnapshot, () => this.schedulePurge());
    // A write forwarded to a leader that dies before appending it is proposed again to the
    // next: the store applies a (session, sequence) once, however many copies commit.
    const rest = options.restWhenQuiet === true ? { rest: { idle: () => this.idle(), tick: () => this.onTick() } } : {};
    // The spread of `options` does not come first: V8 gives an object that starts with the
    // spread of a large object and then adds properties a hidden class of its own, every
    // time (about 650 bytes per range, and the replica keeps it). `options` has neither
    // `stateMachine` nor `rest` (KvReplicaOptions omits them), so the order changes nothing.
    this.replica = createReplica<M, H, Applied>({ stateMachine, ...rest, ...options, reproposeOnLeaderChange: true }, options.replicaMutant ?? null);
  }

  start(): void {
    assert(this.cancelClockTimer === null, "started twice");
    this.replica.start();
    // Resting, the replica's timer runs this too (and stops with it).
    if (this.options.restWhenQuiet !== true) this.cancelClockTimer = this.options.clock.every(this.options.tickMs, () => this.onTick());
    this.schedulePurge();
  }

  private onTick(): void {
    this.proposeClock();
    this.proposeRetention();
  }

  /** Resting (restWhenQuiet): nothing for ticks to do here: no lease to expire, no compaction due. */
  private idle(): boolean {
    return this.kv.leaseCount === 0 && !this.retentionDue();
  }

  stop(): void {
    this.stopped = true;
    this.cancelClockTimer?.();
    this.cancelClockTimer = null;
    this.replica.stop();
  }

  /**
   * Proposes a write; resolves with its result once it applied on this node. Without
   * `client`, the write goes in this node's own session; with it, in the client's, so a
   * retry of the same request (here or through another node) applies once and gets the
   * first result, and a write of a session the store no longer holds resolves with
   * "session-expired" (nothing applied). A command the codec refuses (InvalidInputError)
   * is rejected before anything is proposed.
   */
  write(operation: KvOperation, client: ClientRequest | null, waiter: Waiter<KvResult>): void {
    const named: RequestId = client ?? { clientId: this.options.nodeClientId, sequence: this.nextSequence++ };
    // A lease counts its time to live from when its leader took the keep-alive (see KvStore).
    const request = operation.op === "lease-grant" || operation.op === "lease-keepalive" ? { ...named, timeMs: this.options.wallClockMs() } : named;
    let data: Uint8Array;
    try {
      data = encodeCommand({ ...operation, request } as KvCommand);
    } catch (error) {
      return waiter.reject(error as Error);
    }
    const key = client === null ? request.sequence : sessionKey(client.clientId, client.sequence);
    const resolve = (applied: Applied): void => {
      // This node's own session has many writes in flight. A copy proposed again after a
      // change of leader that applies after a later write of the session is superseded: the
      // first copy may or may not have applied, and that is all this node can say.
      if (client === null && applied.result.op === "superseded") waiter.reject(new WriteOutcomeUnknownError("the write was proposed again after a change of leader, and a later write of this node applied first"));
      else waiter.resolve(applied.result);
    };
    this.replica.propose(data, key, { resolve, reject: (error) => waiter.reject(error) });
  }

  /** Opens a client session: resolves with its id once the registration applied here. */
  register(waiter: Waiter<number>): void {
    this.write({ op: "register" }, null, {
      resolve: (result) => {
        assert(result.op === "session", "a registration applies as a session");
        waiter.resolve(result.clientId);
      },
      reject: (error) => waiter.reject(error),
    });
  }

  /**
   * Resolves when this node's state machine may serve a read at `consistency`: at once for
   * stale; for linearizable and lease once the engine confirmed a read index and the state
   * machine applied up to it.
   */
  read(consistency: ReadConsistency, waiter: Waiter<void>): void {
    if (consistency === "stale") return waiter.resolve();
    this.replica.read({ lease: consistency === "lease" }, waiter);
  }

  status(): ReturnType<Engine<M, H>["status"]> {
    return this.replica.engine.status();
  }

  get leader(): NodeId | null {
    return this.replica.engine.status().leader;
  }

  /**
   * Removes, a step at a time between other work, the history a compaction made unreachable
   * (KvStore.purgeHistory): each node in its own time, since it changes nothing a read or a
   * snapshot sees.
   */
  private schedulePurge(): void {
    if (this.purgeScheduled || this.stopped || !this.kv.purgePending) return;
    this.purgeScheduled = true;
    this.options.clock.soon(() => {
      this.purgeScheduled = false;
      if (this.stopped) return;
      if (this.kv.purgeHistory(PURGE_CHANGES_PER_STEP)) this.schedulePurge();
    });
  }

  /**
   * While leading with `historyRevisions` set: a compaction that keeps that many revisions,
   * once the history has grown a tenth past them, at most every RETENTION_INTERVAL_MS.
   * Through the log like any write, so every replica compacts at the same entry.
   */
  private proposeRetention(): void {
    if (!this.retentionDue()) return;
    const target = this.kv.currentRevision - (this.options.historyRevisions ?? 0);
    const nowMs = this.options.clock.nowMs();
    if (nowMs - this.compactionProposedMs < RETENTION_INTERVAL_MS) return;
    this.compactionProposedMs = nowMs;
    // Answered by no one; a refusal (a transfer under way) is tried again next interval.
    const request = { clientId: this.options.nodeClientId, sequence: this.nextSequence++ };
    this.replica.proposeUnanswered(encodeCommand({ op: "compact", request, revision: target }));
  }

  /** Leading with `historyRevisions` set, and the history has grown a tenth past them. */
  private retentionDue(): boolean {
    const keep = this.options.historyRevisions ?? 0;
    if (keep === 0 || this.replica.engine.status().role !== "leader") return false;
    return this.kv.currentRevision - keep - this.kv.compactRevision >= Math.max(1, Math.ceil(keep / 10));
  }

  /**
   * While leading, every CLOCK_INTERVAL_MS: a clock entry with this node's wall clock, the
   * time by which the state machine expires client sessions (see KvStore) — at once when
   * it becomes leader, so the store's clock is never long behind.
   */
  private proposeClock(): void {
    const status = this.replica.engine.status();
    if (status.role !== "leader") {
      this.clockProposedMs = Number.NEGATIVE_INFINITY;
      return;
    }
    // Resting: a quiet leader holding no lease proposes none (it would wake the range for nothing).
    if (this.options.restWhenQuiet === true && this.kv.leaseCount === 0 && this.replica.engine.quiescent?.() === true) return;
    const nowMs = this.options.clock.nowMs();
    const intervalMs = this.kv.leaseCount > 0 ? LEASE_CLOCK_INTERVAL_MS : CLOCK_INTERVAL_MS;
    if (nowMs - this.clockProposedMs < intervalMs) return;
    this.clockProposedMs = nowMs;
    const request = { clientId: this.options.nodeClientId, sequence: this.nextSequence++, timeMs: this.options.wallClockMs() };
    const newLeader = this.leaderClockAppliedTerm !== status.term && this.options.kvMutant !== "lease-no-extend";
    if (!newLeader) {
      // Answered by no one. A refusal (a transfer under way) is tried again next interval.
      this.replica.proposeUnanswered(encodeCommand({ op: "clock", request }));
      return;
    }
    // Marked until one applies in this term: leases get their full time to live from it.
    const term = status.term;
    this.replica.propose(encodeCommand({ op: "clock", request, newLeader }), request.sequence, {
      resolve: () => {
        if (this.replica.engine.status().term === term) this.leaderClockAppliedTerm = term;
      },
      reject: () => undefined,
    });
  }
}

/**
 * The replica's boundary: the five things a `Replica` is built from, besides its engine.
 * Each has a real implementation in the runtime (the node's WAL, the KV store over LMDB or
 * the user's state machine, TCP, real time) and one in the simulator (`SimDisk`, the KV
 * store in memory, simulated links, virtual time); the replica cannot tell them apart, and
 * that is what lets the simulator run the production loop.
 *
 * Every callback here is plain: no promises, since the simulator runs a whole cluster in one
 * synchronous loop over virtual time, where a promise would resolve only after the run.
 */
import type { LogEntry, NodeId, Snapshot } from "../engine/contract.js";

/** What one Ready asks to persist, in the contract's order: snapshot, entries, hard state. */
export interface LogWrite<H> {
  readonly snapshot: Snapshot | null;
  readonly entries: readonly LogEntry[];
  readonly hardState: H | null;
}

/**
 * The engine's durable log. The replica saves each Ready's writes, then asks for them to be
 * made durable; it makes at most one `sync` at a time and calls nothing else on the storage
 * while one runs, except `save` and `prepareSnapshot`.
 *
 * Errors: a `save` or `compact` that throws, or a `sync` that completes with an error, is
 * fatal to the replica (its log can no longer be trusted to be durable): it stops and
 * reports through `ReplicaOptions.onFatal`. Programming errors (entries out of order) are
 * AssertionErrors.
 */
export interface LogStorage<H> {
  /**
   * Queues a Ready's writes. Entries replace every stored entry at or after
   * `entries[0].index`; a snapshot (installed from a leader) replaces the whole log before
   * them. Nothing is durable until the next `sync` completes, except that a snapshot may
   * be made durable at once together with everything before it. The storage keeps
   * references to the entries; their data is immutable.
   */
  save(write: LogWrite<H>): void;
  /**
   * Makes everything saved so far durable, and then calls `done(null)` — possibly before
   * `sync` returns (an in-memory log), usually later (an fdatasync on a thread). `done`
   * with an error means it could not be made durable.
   */
  sync(done: (error: unknown) => void): void;
  /**
   * Writes the bulk of the node's own snapshot (its file) ahead of `compact`, possibly in
   * the background and while a `sync` runs; `done` once written. A snapshot never
   * compacted after this is cleaned up by the storage itself.
   */
  prepareSnapshot(snapshot: Snapshot, done: (error: unknown) => void): void;
  /**
   * The node's own snapshot (at most the applied index): durable on return, with the log
   * through `snapshot.index` dropped and everything saved before it made durable too.
   * Called only while no `sync` runs, after `prepareSnapshot` completed for it.
   */
  compact(snapshot: Snapshot): void;
}

/** A capture of the state machine built a piece at a time, so a large state never stalls the node. */
export interface SnapshotBuilder {
  /** The applied index the capture is of. */
  readonly index: number;
  /** Does up to `recordsMax` more of the work; true once `data` is complete. */
  step(recordsMax: number): boolean;
  /** The snapshot's bytes, once `step` returned true. */
  readonly data: Uint8Array;
  /** Gives up the capture (the leader's snapshot replaced the state, or the replica stopped). */
  abort(): void;
}

/**
 * The replicated state machine. Deterministic: every replica applies the same entries in
 * the same order and must reach the same state. `R` is what applying one entry yields.
 */
export interface StateMachine<R> {
  /** The index of the last entry applied: 0 for an empty state, a snapshot's index after restoring it. */
  readonly appliedIndex: number;
  /**
   * Applies committed entries, in index order, the first right after `appliedIndex`; one
   * result per entry. A "config" entry is the engine's own: the state machine only moves
   * past it (its result is the state machine's no-op). Throwing is fatal.
   */
  apply(entries: readonly LogEntry[]): readonly R[];
  /** Replaces the whole state with a snapshot's (installed from the leader). */
  restore(snapshot: Snapshot): void;
  /** Begins capturing the state as of `appliedIndex`. */
  beginSnapshot(): SnapshotBuilder;
  /**
   * Which proposal an applied entry answers, or null for none: the key the proposer gave
   * `Replica.propose`. Called only while proposals wait on this replica.
   */
  proposalKey(result: R): ProposalKey | null;
}

/** Identifies a proposal among those waiting on one replica; the state machine recovers it from the applied entry. */
export type ProposalKey = number | string;

/** Sends to peers. Messages are immutable values; the network may lose any of them. */
export interface Network<M> {
  /** Sends `message` to `to`; false when it was dropped at once (no connection, a full queue). */
  send(to: NodeId, message: M): boolean;
}

/**
 * Time, as the replica sees it: a monotonic clock and a way to run work later. The runtime
 * uses `performance.now`, `setImmediate` and `setInterval`; the simulator, virtual time.
 */
export interface Clock {
  /** Monotonic milliseconds (any origin, fractions allowed); never goes back. */
  nowMs(): number;
  /**
   * Runs `action` soon, after the input being handled and the others that arrive with it
   * (the runtime: the next turn of the event loop), so inputs that arrive together share
   * one Ready.
   */
  soon(action: () => void): void;
  /** Runs `action` every `intervalMs` until the returned function is called. */
  every(intervalMs: number, action: () => void): () => void;
}

/** How a waiting request ends: with a value, or with an error (typed: see errors.ts). */
export interface Waiter<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/**
 * What the replica tells its host about its work: metrics, logs, the simulator's checkers.
 * Every method is optional and must not call back into the replica.
 */
export interface ReplicaObserver<R> {
  proposal?(outcome: "accepted" | "refused" | "timeout"): void;
  read?(outcome: "accepted" | "refused"): void;
  /** A Ready's writes were made durable, taking `ms`; `entries` new entries among them. */
  persisted?(ms: number, entries: number): void;
  /** Entries were applied, with their results (early-applied ones too). */
  applied?(entries: readonly LogEntry[], results: readonly R[]): void;
  snapshotInstalled?(snapshot: Snapshot): void;
  snapshotTaken?(snapshot: Snapshot, ms: { readonly total: number; readonly saving: number }): void;
  snapshotFailed?(error: unknown): void;
  /** The engine's status may have changed (a Ready was taken or finished). */
  statusChanged?(): void;
  leadershipChanged?(status: { readonly term: number; readonly leader: NodeId | null; readonly role: string }): void;
  /** A message from `from` failed validation and was dropped. */
  malformed?(from: NodeId, error: unknown): void;
  /** The event loop (or the process) stalled past the catch-up limit: ticks were skipped. */
  ticksSkipped?(count: number): void;
}

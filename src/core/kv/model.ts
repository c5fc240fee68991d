import type { RequestId } from "./command.js";

/** One key's current version. Revisions are the store-wide counter of changes (etcd's). */
export interface KvRecord {
  readonly key: string;
  readonly value: Uint8Array;
  /** Revision of the change that created the key (since it last did not exist); >= 1. */
  readonly createRevision: number;
  /** Revision of the key's latest change; createRevision <= modRevision <= the store's revision. */
  readonly modRevision: number;
  /** Number of changes since creation, 1 for a new key. */
  readonly version: number;
}

/** The effect of one operation of a transaction's branch, in the branch's order. */
export type TxnOperationResult =
  | { readonly op: "put"; readonly revision: number }
  | { readonly op: "delete"; readonly deleted: 0 | 1 }
  /** The record as the get saw it (after the branch's earlier writes), or null if absent. */
  | { readonly op: "get"; readonly record: KvRecord | null }
  /**
   * A get of a duplicate transaction: the first application read a record, but a client's
   * session keeps only results that are small and bounded, not the records its gets read
   * (up to 128 values of 1 MiB). The client may read the key again.
   */
  | { readonly op: "get-forgotten" };

/** The effect of applying one command. */
export type KvResult =
  | { readonly op: "put"; readonly revision: number }
  | { readonly op: "delete"; readonly deleted: 0 | 1; readonly revision: number }
  /** A range delete: how many keys it deleted, and the store's revision after it (unchanged if none). */
  | { readonly op: "delete-prefix"; readonly deleted: number; readonly revision: number }
  | { readonly op: "cas"; readonly succeeded: boolean; readonly revision: number }
  /**
   * A transaction: whether every compare held (so the success branch ran), the store's
   * revision after it (the one its writes got, if it wrote), one result per operation.
   */
  | { readonly op: "txn"; readonly succeeded: boolean; readonly revision: number; readonly results: readonly TxnOperationResult[] }
  | { readonly op: "noop" }
  | { readonly op: "rejected"; readonly reason: string }
  /**
   * A command of a session whose latest sequence is above this one's: the session keeps
   * only its latest result, so this one's is no longer known (the command may have been
   * applied when it first arrived). Nothing was applied now. Never kept in a session.
   */
  | { readonly op: "superseded"; readonly clientId: number; readonly sequence: number; readonly latestSequence: number }
  /** A registration: the new session's client id (the index of its entry). */
  | { readonly op: "session"; readonly clientId: number }
  /**
   * A command of a session this store does not hold: it expired (or was never registered).
   * Nothing was applied; the client may register again and retry.
   */
  | { readonly op: "session-expired"; readonly clientId: number };

export interface Applied {
  readonly request: RequestId | null;
  readonly result: KvResult;
  /**
   * The command repeated a request this store already applied (or a newer one from the same
   * client): it changed nothing, and `result` is the first application's (or "superseded").
   */
  readonly duplicate: boolean;
}

/**
 * A client session (Raft dissertation, section 6.3): the highest sequence applied for the
 * client and its result, so a command delivered twice is applied once. `clientId` >= 1.
 * A client has one request in flight per session (the SDK opens a session per concurrent
 * write), so the latest result is the only one a retry can ask for.
 */
export interface KvSession {
  readonly clientId: number;
  readonly sequence: number;
  readonly result: KvResult;
  /**
   * The store's clock (see KvStore) when the session was last used; it expires
   * `SESSION_LIMITS.ttlMs` after. 0 for sessions written before sessions expired.
   */
  readonly lastActiveMs?: number;
}

/**
 * Session ids from here up are self-assigned and created on first use: each node's own
 * session (for the writes it proposes on behalf of clients without one), tests, the
 * simulator. Ids below must be registered (they are log indexes), so a command for an
 * unknown one is known to belong to an expired session and is refused.
 */
export const SELF_ASSIGNED_SESSIONS_FROM = 2 ** 52;

export interface SessionLimits {
  readonly ttlMs: number;
  readonly sweepIntervalMs: number;
  readonly sessionsMax: number;
}

/** How sessions expire; constants, since every replica must expire the same sessions. */
export const SESSION_LIMITS: SessionLimits = Object.freeze({
  /** A session unused for this long (by the store's clock) is dropped. */
  ttlMs: 60 * 60 * 1000,
  /** How often (by the store's clock) expired sessions are swept. */
  sweepIntervalMs: 60 * 1000,
  /** Most sessions held; registering one more drops the least recently used 1%. */
  sessionsMax: 100_000,
});

/** What the store records beside its data, written in the same transaction as the data. */
export interface KvMeta {
  /** The index of the last log entry applied; 0 before any. */
  readonly appliedIndex: number;
  /** The store-wide revision: the number of changes ever made; 0 before any. */
  readonly revision: number;
  /**
   * The store's clock: the latest `timeMs` of the commands applied (ms since the epoch; 0
   * before any, or for state written before commands carried a time). Sessions expire by it.
   */
  readonly clockMs?: number;
}

/** Client id 0 means "no session": such commands are never deduplicated. */
export const NO_SESSION = 0;

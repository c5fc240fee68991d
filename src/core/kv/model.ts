import type { AuthOutcome } from "./auth.js";
import { SynodError } from "../common/errors.js";
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

/**
 * One change of one key: what the store's history keeps and what a watch delivers. A write
 * that changes several keys (a transaction, a range delete) makes one change per key, all
 * at the write's revision; a key changes at most once per revision.
 */
export interface KvChange {
  readonly key: string;
  readonly revision: number;
  /** The key's record after the change (its `modRevision` is `revision`); null for a delete. */
  readonly record: KvRecord | null;
}

/**
 * A place in the history's order, (revision, key): the changes after it are those of later
 * revisions and those of `revision` whose keys come after `afterKey` (in UTF-8 byte order).
 * `afterKey` "" (no key is empty) places it before every change of `revision`.
 */
export interface HistoryPosition {
  readonly revision: number;
  readonly afterKey: string;
}

/** A read or watch asked for a revision the store no longer has the history of. */
export class CompactedError extends SynodError {
  constructor(
    /** The revision asked for. */
    readonly revision: number,
    /** The store's compaction point: the oldest revision it can still read or watch from. */
    readonly compactRevision: number,
  ) {
    super("compacted", `revision ${revision} is compacted: the history starts at revision ${compactRevision}; read or watch from ${compactRevision} or later`);
    this.name = "CompactedError";
  }
}

/** A read asked for a revision the store has not reached. */
export class FutureRevisionError extends SynodError {
  constructor(
    readonly revision: number,
    /** The store's revision now. */
    readonly currentRevision: number,
  ) {
    super("future_revision", `revision ${revision} is in the future: the store is at revision ${currentRevision}`);
    this.name = "FutureRevisionError";
  }
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
  /**
   * A compaction: the store's compaction point after it, and its revision. `compacted` is
   * false when the revision asked for was past the store's (nothing changed); a revision at
   * or below the compaction point already changes nothing and is compacted.
   */
  | { readonly op: "compact"; readonly compacted: boolean; readonly compactRevision: number; readonly revision: number }
  | { readonly op: "noop" }
  | { readonly op: "rejected"; readonly reason: string }
  /** An auth change: how it went ("ok", or why it changed nothing), and the auth state's revision after it. */
  | { readonly op: "auth"; readonly outcome: AuthOutcome; readonly authRevision: number }
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
  | { readonly op: "session-expired"; readonly clientId: number }
  /**
   * A command on a key outside the store's range (`KvBackend.span`): it was routed with a
   * stale view of the ranges. Nothing was applied, and nothing is kept in its session.
   */
  | { readonly op: "range-mismatch"; readonly key: string }
  /** A lease granted: its id (the index of the grant's entry) and its time to live. */
  | { readonly op: "lease-grant"; readonly id: number; readonly ttlMs: number }
  /** A lease renewed: it now lives `ttlMs` from the keep-alive. */
  | { readonly op: "lease-keepalive"; readonly id: number; readonly ttlMs: number }
  /** A lease revoked: how many keys went with it, and the store's revision after (unchanged if none). */
  | { readonly op: "lease-revoke"; readonly id: number; readonly deleted: number; readonly revision: number }
  /**
   * The command named a lease the store does not hold (never granted, expired or revoked):
   * nothing was applied. A put, a transaction, a keep-alive or a revoke can get it.
   */
  | { readonly op: "lease-not-found"; readonly id: number }
  /**
   * A clock entry: the leases its time expired (by increasing id), each with the keys it
   * deleted and the revision of those deletes (one per lease that had keys).
   */
  | { readonly op: "clock"; readonly expired: readonly LeaseExpiry[] }
  /** A range id handed out (`range-id`): no other request ever gets it. */
  | { readonly op: "range-id"; readonly id: number }
  /**
   * A split (`split`): the range now ends at `at`, and range `child` was born over the rest,
   * at the store's `revision`, with `epoch` (both ranges' epoch after the split).
   */
  | { readonly op: "split"; readonly child: number; readonly at: string; readonly epoch: number; readonly revision: number }
  /** A transaction across ranges prepared here (src/core/kv/intents.ts): whether this range's compares hold. */
  | { readonly op: "txn-prepare"; readonly txn: string; readonly holds: boolean }
  /**
   * The key is locked by a transaction across ranges in flight: nothing was applied, and
   * nothing kept in a session; retry once it resolves.
   */
  | { readonly op: "txn-locked"; readonly key: string; readonly txn: string }
  /** A transaction's outcome, as its anchor recorded it first. */
  | { readonly op: "txn-decide"; readonly txn: string; readonly outcome: "success" | "failure" | "abort" }
  /**
   * A transaction's part here resolved: the results of its branch's operations on this
   * range's keys (null when there was no intent: resolved already, or never prepared), and
   * the range's revision after.
   */
  | { readonly op: "txn-resolve"; readonly txn: string; readonly revision: number; readonly results: readonly TxnOperationResult[] | null };

/** One lease a clock entry expired. */
export interface LeaseExpiry {
  readonly id: number;
  readonly deleted: number;
  /** The revision of its keys' deletes; the store's revision before, when it had none. */
  readonly revision: number;
}

/**
 * A lease (etcd's): keys attached to it are deleted when it expires or is revoked. `id` is
 * the index of the entry that granted it (unique: indexes are never reused). It expires
 * when the store's clock reaches `expiresAtMs` (see KvStore: the leader's clock, in the
 * log). Its attached keys are kept beside it (`KvBackend.leaseKeys`).
 */
export interface KvLease {
  readonly id: number;
  /** The time to live it was granted with, in ms: each keep-alive moves its expiry this far past the keep-alive. */
  readonly ttlMs: number;
  /** The store's clock (ms since the epoch) at which it expires. */
  readonly expiresAtMs: number;
}

/** What leases may be; constants, since every replica must refuse and expire the same ones. */
export const LEASE_LIMITS = Object.freeze({
  /** Shortest time to live: a shorter one could lapse within a leader's clock interval. */
  ttlMsMin: 1000,
  /** Longest time to live: a year. */
  ttlMsMax: 365 * 24 * 3600 * 1000,
  /** Most leases held; a grant beyond is refused. */
  leasesMax: 100_000,
});

/** A command named a lease the store does not hold (never granted, expired or revoked). */
export class LeaseNotFoundError extends SynodError {
  constructor(readonly id: number) {
    super("lease_not_found", `lease ${id} does not exist (it was never granted, or it expired or was revoked): grant a new one with POST /v1/leases`);
    this.name = "LeaseNotFoundError";
  }
}

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
  /**
   * The compaction point: reads at and watches from revisions at or above it are answered,
   * below it refused (0, or absent: nothing was ever compacted). At most `revision`.
   */
  readonly compactRevision?: number;
  /**
   * The range's epoch (src/core/multi/ranges.ts): 1 (or absent) at its start, one more at each
   * split of the range. Only a sharded node's ranges ever move it.
   */
  readonly rangeEpoch?: number;
  /**
   * The least id the next range may get (group 0's store hands them out: the `range-id`
   * command); 0, or absent, before any was handed out.
   */
  readonly nextRangeId?: number;
  /**
   * The revision a range was born at, by its parent's split (0, or absent: not born so, or
   * its history holds every record's change): a key whose history holds no change reads, at
   * every revision from this one on, as its record, when that was last written at or before
   * it (src/core/kv/history.ts, "Born of a split"). Never more than `compactRevision`.
   */
  readonly bornAt?: number;
  /**
   * The log index at which the range's span was last set: its last split's (0, or absent: it
   * never split; a range born of a split starts from its first state, at RANGE_BIRTH_INDEX).
   * A replica hosted with no state takes its leader's snapshot at this index or later: an
   * earlier one holds a wider span (docs/sharding.md, "A new replica starts from its
   * leader's snapshot"). At most `appliedIndex`.
   */
  readonly spanSince?: number;
  /**
   * How far the history's unreachable changes below the compaction point were removed: every
   * change up to this place was processed (see KvStore.purgeHistory). The node's own, not
   * replicated: absent from snapshots, reset by a restore.
   */
  readonly purged?: HistoryPosition;
}

/** Client id 0 means "no session": such commands are never deduplicated. */
export const NO_SESSION = 0;

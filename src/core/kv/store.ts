import { assert, assertIndex } from "../common/assert.js";
import { bytesEqual } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { toWellFormed } from "../common/utf8.js";
import { compareUtf8 } from "../common/utf8.js";
import { applyAuthChange, encodeAuthState, type AuthChange, type AuthState } from "./auth.js";
import { MemoryKvBackend, type KvBackend } from "./backend.js";
import { decodeCommand, type KvCommand, type RequestId, type TxnCommand, type TxnOperation } from "./command.js";
import { joinTxnState, KvIntents } from "./intents.js";
import { bornChangesAfter, bornHistory, purgeFrom, purgeStep, rangeAt, recordAt, retainedChanges, type HistoryReader } from "./history.js";
import { KvLeases } from "./leases.js";
import { KvSessions } from "./sessions.js";
import {
  CompactedError,
  FutureRevisionError,
  NO_SESSION,
  SESSION_LIMITS,
  type Applied,
  type HistoryPosition,
  type KvChange,
  type KvLease,
  type LeaseExpiry,
  type SessionLimits,
  type KvRecord,
  type KvResult,
  type TxnOperationResult,
} from "./model.js";
import { encodeSnapshot, snapshotRangeOf, type SnapshotRange } from "./snapshot.js";
import type { KeySpan, KvSplitHost } from "./split.js";
import { holdsHeldState, middleKeyOf, outsideSpan, rangeId, rangeMeta, sameSpan, splitRange } from "./store-ranges.js";
import { spanHolds } from "../multi/ranges.js";
import { readAuthState, restoreSnapshot } from "./store-restore.js";
import { checkSession, refuseLocked } from "./store-checks.js";
import { applyTxnPhase, compareHolds, type TxnPhaseCommand, type TxnStoreMutant } from "./store-txns.js";
import { KvWrites } from "./store-writes.js";

export { bytesEqual } from "../common/bytes.js";
export { startHistory } from "./store-restore.js";
export {
  CompactedError,
  FutureRevisionError,
  LEASE_LIMITS,
  LeaseNotFoundError,
  NO_SESSION,
  SELF_ASSIGNED_SESSIONS_FROM,
  SESSION_LIMITS,
  type Applied,
  type HistoryPosition,
  type KvChange,
  type KvLease,
  type LeaseExpiry,
  type SessionLimits,
  type KvMeta,
  type KvRecord,
  type KvResult,
  type KvSession,
  type TxnOperationResult,
} from "./model.js";

/**
 * Told what the store committed, after each commit: how a watch learns of changes without
 * asking the backend. Called synchronously at the end of an apply, so it must be cheap (take
 * the list and schedule its work); it must not call back into the store's writes.
 */
export interface KvStoreObserver {
  /** The changes one backend transaction committed, in (revision, key) order. */
  committed(changes: readonly KvChange[]): void;
  /** The whole state was replaced (a snapshot restored): what was told before may be gone. */
  restored(): void;
  /** The store's span changed at `revision` (a split committed, or a snapshot of the range restored): it holds only `span` now. */
  spanChanged?(span: KeySpan, revision: number): void;
}

/** One committed log entry, as the state machine applies it. */
export interface KvEntry {
  readonly index: number;
  readonly data: Uint8Array;
  /** "config": the consensus engine's own entry, which the store only moves past. */
  readonly kind?: "config";
}

const NO_OP = new Uint8Array(0);
const HISTORY_START: HistoryPosition = Object.freeze({ revision: 0, afterKey: "" });

/**
 * The replicated KV state machine: deterministic. Every node applies the same entries in
 * the same order and ends in the same state; `snapshot()` is byte-identical on every node at
 * the same applied index, whichever backend holds the state.
 *
 * The state lives in a `KvBackend` (memory by default; LMDB in the runtime). Each apply
 * is one backend transaction that writes the data, the sessions and the applied index
 * together, so a store reopened after a crash is exactly at some applied index and the node
 * replays the log only after it. The store caches the applied index and revision in memory;
 * a transaction that throws restores them with the backend's state.
 *
 * Client sessions (Raft dissertation 6.3) make retried writes apply once. A client
 * registers (a `register` command; the session's id is the index of that entry), then
 * numbers its writes 1, 2, ... with one in flight per session; a command whose sequence is
 * not above the session's last is a duplicate, answered with the last result and applied
 * no more. A command for a registered-range id the store does not hold gets
 * "session-expired" and changes nothing, so its client can register again and retry without
 * a double apply. Sessions expire by the store's **clock**, the latest time of the `clock`
 * entries applied, which only the leader proposes, so every replica expires the same
 * sessions at the same entry; their bookkeeping is in sessions.ts (`KvSessions`).
 *
 * History (MVCC, src/core/kv/history.ts): every write also records its changes, so reads
 * can ask for a past revision (`getAt`, `rangeAt`) and watches replay changes
 * (`changesAfter`), down to the compaction point, which a `compact` command moves up.
 *
 * Leases (etcd's) expire by the same clock, through the same path as sessions: only clock
 * entries expire anything, so every replica deletes the same keys at the same entry. Their
 * state and rules are in leases.ts (`KvLeases`); the store calls it inside its transactions
 * and deletes a lease's keys, in one revision, when the lease goes.
 *
 * The other parts: store-writes.ts (every record a command writes), store-txns.ts
 * (transactions' compares, and transactions across ranges), store-ranges.ts (a store that is
 * one range of a sharded node: its span, range ids, splits) and store-restore.ts (snapshots in).
 */
export class KvStore {
  private appliedIndex: number;
  private revision: number;
  private clockMs: number;
  private compactRevisionValue: number;
  /** How far the history below the compaction point was purged (see history.ts). */
  private purged: HistoryPosition;
  /** Whether the last purge step found nothing more below the compaction point. */
  private purgeDone: boolean;
  private observer: KvStoreObserver | null = null;
  /** The client sessions the backend holds, and their count (sessions.ts). */
  private readonly sessionsHeld: KvSessions;
  /** The leases the backend holds, and their caches (leases.ts). */
  private readonly leasesHeld: KvLeases;
  /** Every write of a record, the key count, and the changes for the observer (store-writes.ts). */
  private readonly writes: KvWrites;
  /** Users, roles and permissions (auth.ts), decoded from the backend's bytes. */
  private authState: AuthState;
  /** The range's epoch (split.ts): 1 until it splits. */
  private rangeEpochValue: number;
  /** The least id the next `range-id` hands out (group 0's store hands them out). */
  private nextRangeId: number;
  /** The index the range's span was last set at (KvMeta.spanSince; 0: it never split). */
  private spanSinceValue: number;
  /** The revision a range born of a split was born at (KvMeta.bornAt; 0: not so), and its history as reads see it (history.ts). */
  private bornAtValue = 0;
  private past: HistoryReader;
  /** Transactions across ranges in flight here, and the outcomes this range anchors (intents.ts). */
  private readonly intentsHeld: KvIntents;
  /** A deliberately broken prepare (store-txns.ts); only the simulator's mutant store sets one. */
  protected readonly txnMutant: TxnStoreMutant | null = null;
  /** Where a split's child goes (split.ts); null: this store does not split. */
  private splitHost: KvSplitHost | null = null;
  /** The revision of the last split (what `spanChanged` tells the observer). */
  private splitRevision = 0;
  /** Children born in the transaction under way, for the host once it commits. */
  private pendingBirths: number[] = [];

  /**
   * A store over `backend`, at the applied index and revision the backend holds.
   * `sessionLimits` is for tests: every replica of a cluster must use the same, the default.
   */
  constructor(
    readonly backend: KvBackend = new MemoryKvBackend(),
    sessionLimits: SessionLimits = SESSION_LIMITS,
  ) {
    const meta = backend.readMeta();
    assertIndex(meta.appliedIndex, "stored applied index");
    assertIndex(meta.revision, "stored revision");
    this.appliedIndex = meta.appliedIndex;
    this.revision = meta.revision;
    this.clockMs = meta.clockMs ?? 0;
    this.compactRevisionValue = meta.compactRevision ?? 0;
    assert(this.compactRevisionValue <= this.revision, "the stored compaction point is at most the revision");
    this.purged = meta.purged ?? HISTORY_START;
    // Nothing below a compaction point of 0; else a first step finds out how far it went.
    this.purgeDone = this.compactRevisionValue === 0;
    this.sessionsHeld = new KvSessions(backend, sessionLimits);
    this.leasesHeld = new KvLeases(backend);
    this.writes = new KvWrites(backend, this.leasesHeld);
    this.authState = readAuthState(backend);
    this.rangeEpochValue = meta.rangeEpoch ?? 1;
    this.nextRangeId = meta.nextRangeId ?? 0;
    this.spanSinceValue = meta.spanSince ?? 0;
    this.intentsHeld = new KvIntents(backend);
    this.past = backend;
    this.bornAt(meta.bornAt ?? 0);
  }

  /** The range was born of a split at `revision` (0: not so): see KvMeta.bornAt. */
  private bornAt(revision: number): void {
    this.bornAtValue = revision;
    this.writes.bornAt = revision;
    this.past = revision === 0 ? this.backend : bornHistory(this.backend);
  }

  /** Opens the state a backend holds (the same as `new KvStore(backend)`, named for reading). */
  static open(backend: KvBackend): KvStore {
    return new KvStore(backend);
  }

  /**
   * A store holding the snapshot's state, in `backend` (memory by default), which loses
   * whatever it held. Throws InvalidInputError if the snapshot is malformed.
   */
  static restore(bytes: Uint8Array, backend: KvBackend = new MemoryKvBackend(), sessionLimits: SessionLimits = SESSION_LIMITS): KvStore {
    const store = new KvStore(backend, sessionLimits);
    store.restore(bytes);
    return store;
  }

  get applied(): number {
    return this.appliedIndex;
  }

  get currentRevision(): number {
    return this.revision;
  }

  /** The store's clock (see the class comment), in ms since the epoch. */
  get clock(): number {
    return this.clockMs;
  }

  /** How many client sessions the store holds. */
  get sessions(): number {
    return this.sessionsHeld.count;
  }

  /** How many keys the store holds. */
  get keys(): number {
    return this.writes.keys;
  }

  /** How many leases the store holds. */
  get leaseCount(): number {
    return this.leasesHeld.count;
  }

  /** The lease `id`, if the store holds it. */
  lease(id: number): KvLease | undefined {
    return this.leasesHeld.get(id);
  }

  /** At most `limit` leases with ids above `afterId`, by increasing id. */
  leases(limit: number, afterId = 0): KvLease[] {
    return this.leasesHeld.page(limit, afterId);
  }

  /** At most `limit` keys attached to lease `id`, in key order, after `after` if given. */
  leaseKeys(id: number, limit: number, after?: string): string[] {
    return this.leasesHeld.keys(id, limit, after);
  }

  /** The lease the key is attached to, if any. */
  leaseOf(key: string): number | undefined {
    return this.leasesHeld.ofKey(key);
  }

  /** The compaction point: the oldest revision reads and watches can still ask for (0: nothing compacted). */
  get compactRevision(): number {
    return this.compactRevisionValue;
  }

  /** Whether compaction left unreachable changes that `purgeHistory` has yet to remove. */
  get purgePending(): boolean {
    return !this.purgeDone;
  }

  /** Transactions across ranges in flight here: their locks and intents (intents.ts). */
  get intents(): KvIntents {
    return this.intentsHeld;
  }

  /** The range's epoch: 1 until it splits, one more at each split. */
  get rangeEpoch(): number {
    return this.rangeEpochValue;
  }

  /** The log index the range's span was last set at (KvMeta.spanSince; 0: it never split). */
  get spanSince(): number {
    return this.spanSinceValue;
  }

  /** Lets the store split (a sharded node's ranges): `host` takes each child it makes. */
  setSplitHost(host: KvSplitHost | null): void {
    this.splitHost = host;
  }

  /** Tells `observer` (or no one) of every commit from now on; see KvStoreObserver. */
  setObserver(observer: KvStoreObserver | null): void {
    this.observer = observer;
  }

  get(key: string): KvRecord | undefined {
    return this.backend.getRecord(toWellFormed(key));
  }

  /** The key in the middle of the store's keys (the first of the upper half): where a split halves it; null with fewer than two. */
  middleKey(): string | null {
    return middleKeyOf(this.backend, this.keys);
  }

  /**
   * At most `limit` records whose keys start with `prefix`, in the UTF-8 byte order of their
   * keys; with `after`, only keys after that one (the last key of the previous page).
   */
  range(prefix: string, limit: number, options: { readonly after?: string } = {}): KvRecord[] {
    assertIndex(limit, "range limit");
    const query = options.after === undefined ? { prefix: toWellFormed(prefix), limit } : { prefix: toWellFormed(prefix), limit, after: toWellFormed(options.after) };
    return this.backend.rangeRecords(query);
  }

  /**
   * The key as it was at `revision` (undefined: absent then). Throws CompactedError below the
   * compaction point and FutureRevisionError past the store's revision.
   */
  getAt(key: string, revision: number): KvRecord | undefined {
    this.checkReadable(revision);
    return recordAt(this.past, toWellFormed(key), revision);
  }

  /** `range`, as the store was at `revision`; throws as `getAt` does. */
  rangeAt(prefix: string, limit: number, options: { readonly after?: string; readonly revision: number }): KvRecord[] {
    assertIndex(limit, "range limit");
    this.checkReadable(options.revision);
    const query = options.after === undefined ? { prefix: toWellFormed(prefix), limit } : { prefix: toWellFormed(prefix), limit, after: toWellFormed(options.after) };
    // Only this range's keys: its history keeps the changes of keys a split gave away (they
    // sort after its own, so cutting them off the end leaves a page of its keys).
    const span = this.backend.span;
    const records = rangeAt(this.past, query, options.revision);
    return span === undefined ? records : records.filter((record) => spanHolds(span, record.key));
  }

  /**
   * At most `limit` changes after `position`, in (revision, key) order: what a watch reads.
   * Throws CompactedError when `position.revision` is below the compaction point (the
   * changes it asks for may be gone).
   */
  changesAfter(position: HistoryPosition, limit: number): KvChange[] {
    if (position.revision < this.compactRevisionValue) throw new CompactedError(position.revision, this.compactRevisionValue);
    return this.bornAtValue === 0 ? this.backend.changesAfter(position, limit) : bornChangesAfter(this.backend, this.bornAtValue, position, limit);
  }

  /**
   * The key's record just before `revision` (null: absent then), or undefined when that is
   * below the compaction point and so no longer known: a watch's previous value.
   */
  recordBefore(key: string, revision: number): KvRecord | null | undefined {
    if (revision - 1 < this.compactRevisionValue) return undefined;
    return recordAt(this.past, key, revision - 1) ?? null;
  }

  /**
   * Removes up to `changesMax` changes' worth of what compaction made unreachable, in one
   * backend transaction; returns whether more remains. Not replicated and not observable:
   * each node purges in its own time (see history.ts).
   */
  purgeHistory(changesMax: number): boolean {
    if (this.purgeDone) return false;
    const done = this.inTransaction(() => {
      const step = purgeStep(this.backend, this.purged, this.compactRevisionValue, changesMax, this.backend.span);
      this.purged = step.purged;
      return step.done;
    });
    this.purgeDone = done;
    return !done;
  }

  /**
   * Applies the entry at `index` (which must follow the last applied one). An empty entry
   * is a no-op; a command that does not decode is skipped with a "rejected" result rather
   * than stopping the node, since every replica sees the same bytes and skips alike.
   */
  apply(index: number, data: Uint8Array): Applied {
    return this.inTransaction(() => this.applyOne(index, data));
  }

  /**
   * Applies consecutive entries in one backend transaction, writing the applied index and
   * revision once at its end: all of them take effect, or (if anything throws, e.g. an
   * index out of order, which is a programming error) none.
   */
  applyBatch(entries: readonly KvEntry[]): Applied[] {
    if (entries.length === 0) return [];
    return this.inTransaction(() => entries.map((entry) => this.applyOne(entry.index, entry.kind === "config" ? NO_OP : entry.data)));
  }

  /**
   * Replaces the whole state with the snapshot's, in one backend transaction. Throws
   * InvalidInputError if the snapshot is malformed, and then nothing changed.
   */
  restore(bytes: Uint8Array): void {
    if (holdsHeldState(bytes, this.appliedIndex, this.backend.span)) return;
    const backend = this.backend;
    const spanBefore = backend.span;
    const meta = restoreSnapshot(backend, bytes);
    this.appliedIndex = meta.appliedIndex;
    this.revision = meta.revision;
    this.clockMs = meta.clockMs ?? 0;
    this.compactRevisionValue = meta.compactRevision ?? 0;
    this.purged = meta.purged ?? HISTORY_START;
    this.purgeDone = true;
    this.sessionsHeld.reload();
    this.writes.recount();
    this.leasesHeld.reload();
    this.authState = readAuthState(backend);
    this.rangeEpochValue = meta.rangeEpoch ?? 1;
    this.nextRangeId = meta.nextRangeId ?? 0;
    this.spanSinceValue = meta.spanSince ?? 0;
    this.bornAt(meta.bornAt ?? 0);
    this.intentsHeld.reload();
    this.observer?.restored();
    if (spanBefore !== undefined && this.backend.span !== undefined && !sameSpan(spanBefore, this.backend.span)) this.observer?.spanChanged?.(this.backend.span, this.revision);
  }

  /** A deterministic snapshot: keys in UTF-8 byte order, so equal states give equal bytes. */
  snapshot(): Uint8Array {
    const meta = { appliedIndex: this.appliedIndex, revision: this.revision, clockMs: this.clockMs };
    // Not the changes of keys a split gave away: no read or watch of this range asks for them
    // (both stay within its span), and they would carry the moved values once more.
    const span = this.backend.span;
    const changes = [...retainedChanges(this.backend, this.compactRevisionValue)].filter((change) => span === undefined || spanHolds(span, change.key));
    const history = { compactRevision: this.compactRevisionValue, changes };
    const leases = this.leasesHeld.forSnapshot();
    return encodeSnapshot(meta, [...this.backend.allRecords()], [...this.backend.allSessions()], history, leases, this.backend.readAuth(), this.rangeSection(), joinTxnState(this.backend.readTxnState(), this.backend.txnRecords()));
  }

  /** The snapshot's range section: only for a range of a sharded node (not every key, split, or handing out ids). */
  private rangeSection(): SnapshotRange | undefined {
    return snapshotRangeOf(this.backend.span, this.rangeEpochValue, this.nextRangeId, this.bornAtValue, this.spanSinceValue);
  }

  /** Runs `fn` in one backend transaction that ends by writing the meta; undoes the caches if it throws. */
  private inTransaction<T>(fn: () => T): T {
    const appliedIndex = this.appliedIndex;
    const revision = this.revision;
    const clockMs = this.clockMs;
    const compactRevision = this.compactRevisionValue;
    const purged = this.purged;
    const purgeDone = this.purgeDone;
    const sessionCount = this.sessionsHeld.mark();
    const keyCount = this.writes.mark();
    const leases = this.leasesHeld.mark();
    const authState = this.authState;
    const rangeEpoch = this.rangeEpochValue;
    const nextRangeId = this.nextRangeId;
    const spanSince = this.spanSinceValue;
    let result: T;
    try {
      result = this.backend.transaction(() => {
        const value = fn();
        this.backend.writeMeta({
          appliedIndex: this.appliedIndex,
          revision: this.revision,
          clockMs: this.clockMs,
          compactRevision: this.compactRevisionValue,
          purged: this.purged,
          ...rangeMeta(this.rangeEpochValue, this.nextRangeId, this.bornAtValue, this.spanSinceValue),
        });
        return value;
      });
    } catch (error) {
      this.appliedIndex = appliedIndex;
      this.revision = revision;
      this.clockMs = clockMs;
      this.compactRevisionValue = compactRevision;
      this.purged = purged;
      this.purgeDone = purgeDone;
      this.sessionsHeld.rollback(sessionCount);
      this.writes.rollback(keyCount);
      this.leasesHeld.rollback(leases);
      this.authState = authState;
      this.rangeEpochValue = rangeEpoch;
      this.nextRangeId = nextRangeId;
      this.spanSinceValue = spanSince;
      this.pendingBirths = [];
      this.intentsHeld.reload();
      throw error;
    }
    this.tellCommitted();
    this.tellBirths();
    return result;
  }

  /** Tells the split host of the children the committed transaction made. */
  private tellBirths(): void {
    if (this.pendingBirths.length === 0) return;
    const births = this.pendingBirths;
    this.pendingBirths = [];
    for (const child of births) this.splitHost?.born(child);
    const span = this.backend.span;
    if (span !== undefined) this.observer?.spanChanged?.(span, this.splitRevision);
  }

  /** Hands the committed transaction's changes to the observer, in (revision, key) order. */
  private tellCommitted(): void {
    const changes = this.writes.takeChanges();
    if (changes.length === 0) return;
    if (this.observer === null) return;
    // A transaction's branch writes its keys in the order it lists them.
    let sorted = true;
    for (let i = 1; i < changes.length && sorted; i++) sorted = compareChanges(changes[i - 1] as KvChange, changes[i] as KvChange) < 0;
    if (!sorted) changes.sort(compareChanges);
    this.observer.committed(changes);
  }

  private checkReadable(revision: number): void {
    assertIndex(revision, "revision");
    if (revision < this.compactRevisionValue) throw new CompactedError(revision, this.compactRevisionValue);
    if (revision > this.revision) throw new FutureRevisionError(revision, this.revision);
  }

  /** See the `range-id` command (store-ranges.ts). */
  private rangeId(atLeast: number): KvResult {
    const result = rangeId(atLeast, this.nextRangeId);
    if (result.op === "range-id") this.nextRangeId = result.id + 1;
    return result;
  }

  /** See the `split` command, split.ts and store-ranges.ts. */
  private split(at: string, child: number): KvResult {
    const result = splitRange(this.backend, this.splitHost, at, child, { revision: this.revision, clockMs: this.clockMs, epoch: this.rangeEpochValue, index: this.appliedIndex });
    if (result.op !== "split") return result;
    this.writes.recount();
    this.rangeEpochValue = result.epoch;
    this.spanSinceValue = this.appliedIndex;
    this.pendingBirths.push(child);
    this.splitRevision = this.revision;
    // The history of the keys given away goes in the background, from the beginning (history.ts, purgeStep).
    this.purged = HISTORY_START;
    this.purgeDone = false;
    return result;
  }

  /** See the `compact` command. */
  private compact(revision: number): KvResult {
    if (revision > this.revision) return { op: "compact", compacted: false, compactRevision: this.compactRevisionValue, revision: this.revision };
    if (revision > this.compactRevisionValue) {
      this.purged = purgeFrom(this.purged, this.compactRevisionValue);
      this.compactRevisionValue = revision;
      this.purgeDone = false;
    }
    return { op: "compact", compacted: true, compactRevision: this.compactRevisionValue, revision: this.revision };
  }

  private applyOne(index: number, data: Uint8Array): Applied {
    assertIndex(index, "applied index");
    assert(index === this.appliedIndex + 1, `apply out of order: ${index} after ${this.appliedIndex}`);
    this.appliedIndex = index;
    if (data.length === 0) return { request: null, result: { op: "noop" }, duplicate: false };
    let command: KvCommand;
    try {
      command = decodeCommand(data);
    } catch (error) {
      if (error instanceof InvalidInputError) return { request: null, result: { op: "rejected", reason: error.message }, duplicate: false };
      throw error;
    }
    if (command.op === "clock") {
      this.advanceClock(command.request.timeMs ?? 0, command.newLeader === true);
      if (this.intentsHeld.hasRecords) this.intentsHeld.expireRecords(this.clockMs);
      return { request: command.request, result: { op: "clock", expired: this.expireLeases() }, duplicate: false };
    }
    if (command.op === "register") return { request: command.request, result: this.sessionsHeld.register(index, this.clockMs), duplicate: false };
    if (command.op === "range-id") return { request: command.request, result: this.rangeId(command.atLeast), duplicate: false };
    if (command.op === "split") return { request: command.request, result: this.split(command.at, command.child), duplicate: false };
    // Transactions across ranges (intents.ts, store-txns.ts): not deduplicated by sessions;
    // each phase is idempotent, and one that changed nothing is a duplicate.
    if (command.op === "txn-prepare" || command.op === "txn-decide" || command.op === "txn-resolve") {
      const outside = outsideSpan(this.backend.span, command);
      if (outside !== null) return { request: command.request, result: { op: "range-mismatch", key: outside }, duplicate: false };
      const before = this.intentsHeld.version;
      const result = this.txnPhase(command);
      return { request: command.request, result, duplicate: this.intentsHeld.version === before };
    }
    // Sessions first (store-checks.ts): a retry of a write this session already made answers
    // as it did, even once a split moved its key away or a transaction holds it.
    const { clientId, sequence } = command.request;
    const { session, answer } = checkSession(this.backend, command.request);
    if (answer !== null) return { request: command.request, result: answer.result, duplicate: answer.duplicate };
    const outside = outsideSpan(this.backend.span, command);
    if (outside !== null) return { request: command.request, result: { op: "range-mismatch", key: outside }, duplicate: false };
    const locked = refuseLocked(this.intentsHeld, this.sessionsHeld, this.clockMs, command, session);
    if (locked !== undefined) return { request: command.request, result: locked, duplicate: false };
    const result = this.execute(command, index);
    if (clientId !== NO_SESSION) this.sessionsHeld.record(session, { clientId, sequence, result, lastActiveMs: this.clockMs });
    return { request: command.request, result, duplicate: false };
  }

  /**
   * Moves the clock forward to `timeMs` (never back), sweeping expired sessions when it
   * crosses a sweep boundary; for a new leader's entry (or the first ever), extends every
   * lease to live its full time to live from the clock.
   */
  private advanceClock(timeMs: number, newLeader: boolean): void {
    const before = this.clockMs;
    if (newLeader || (before === 0 && timeMs > 0)) this.leasesHeld.extendAll(Math.max(before, timeMs));
    if (timeMs <= this.clockMs) return;
    this.clockMs = timeMs;
    this.sessionsHeld.clockMoved(before, timeMs);
  }

  /**
   * Whether the store's range holds `key` now: a read served once its read index applied
   * must ask again, as a split applied meanwhile may have moved the key to another range.
   */
  holdsKey(key: string): boolean {
    const span = this.backend.span;
    return span === undefined || spanHolds(span, key);
  }

  /**
   * The clock by which leases expire: the store's (the log's). The simulator's mutant
   * overrides it with a node's own clock, to prove the checkers catch that.
   */
  protected leaseExpiryClockMs(): number {
    return this.clockMs;
  }

  /** Expires every lease whose time came by the clock, by increasing id; returns what went. */
  private expireLeases(): LeaseExpiry[] {
    return this.leasesHeld.due(this.leaseExpiryClockMs()).map((id) => {
      const { deleted, revision } = this.dropLease(id);
      return { id, deleted, revision };
    });
  }

  /** Deletes a lease and its keys, the keys in one new revision (none if it had no keys). */
  private dropLease(id: number): { deleted: number; revision: number } {
    const revision = this.revision + 1;
    const deleted = this.leasesHeld.drop(id, (key) => this.writes.remove(key, revision));
    if (deleted > 0) this.revision = revision;
    return { deleted, revision: this.revision };
  }

  /** The time a lease's grant or keep-alive counts from (see leases.ts). */
  private leaseStartMs(request: RequestId): number {
    return Math.max(this.clockMs, request.timeMs ?? 0);
  }

  private revokeLease(id: number): KvResult {
    if (!this.leasesHeld.holds(id)) return { op: "lease-not-found", id };
    return { op: "lease-revoke", id, ...this.dropLease(id) };
  }

  /** Applies a change of users, roles or auth (auth.ts); the state is written whole (it is small and changes rarely). */
  private changeAuth(change: AuthChange): KvResult {
    const { state, outcome } = applyAuthChange(this.authState, change);
    this.authState = state;
    this.backend.writeAuth(encodeAuthState(state));
    return { op: "auth", outcome, authRevision: state.revision };
  }

  /** Users, roles, permissions and whether auth is enabled, as of the last applied entry. */
  get auth(): AuthState {
    return this.authState;
  }

  /** A phase of a transaction across ranges here (store-txns.ts), its branch applied as `executeTxn`'s is. */
  private txnPhase(command: TxnPhaseCommand): KvResult {
    const store = { backend: this.backend, intents: this.intentsHeld, clockMs: this.clockMs, revision: () => this.revision, runBranch: (branch: readonly TxnOperation[]) => this.runBranch(branch), mutant: this.txnMutant };
    return applyTxnPhase(command, store);
  }

  private execute(command: Exclude<KvCommand, { readonly op: "register" | "clock" | "range-id" | "split" | "txn-prepare" | "txn-decide" | "txn-resolve" }>, index: number): KvResult {
    if (command.op === "txn") return this.executeTxn(command);
    if (command.op === "compact") return this.compact(command.revision);
    if (command.op === "delete-prefix") return this.deletePrefix(command.prefix);
    if (command.op === "lease-grant") return this.leasesHeld.grant(index, command.ttlMs, this.leaseStartMs(command.request));
    if (command.op === "lease-keepalive") return this.leasesHeld.keepAlive(command.lease, this.leaseStartMs(command.request));
    if (command.op === "lease-revoke") return this.revokeLease(command.lease);
    if (command.op === "auth") return this.changeAuth(command.change);
    const missing = command.op === "delete" ? undefined : this.leasesHeld.missing([command.lease]);
    if (missing !== undefined) return { op: "lease-not-found", id: missing };
    const current = this.backend.getRecord(command.key);
    switch (command.op) {
      case "put":
        return { op: "put", revision: this.writes.write(command.key, command.value, current, ++this.revision, command.lease) };
      case "delete":
        if (current === undefined) return { op: "delete", deleted: 0, revision: this.revision };
        this.writes.remove(command.key, ++this.revision);
        return { op: "delete", deleted: 1, revision: this.revision };
      case "cas-value": {
        const matches = command.expected === null ? current === undefined : current !== undefined && bytesEqual(current.value, command.expected);
        if (!matches) return { op: "cas", succeeded: false, revision: this.revision };
        return { op: "cas", succeeded: true, revision: this.writes.write(command.key, command.value, current, ++this.revision, command.lease) };
      }
      case "cas-revision": {
        const actual = current === undefined ? 0 : current.modRevision;
        if (actual !== command.expectedRevision) return { op: "cas", succeeded: false, revision: this.revision };
        return { op: "cas", succeeded: true, revision: this.writes.write(command.key, command.value, current, ++this.revision, command.lease) };
      }
    }
  }

  /** See `TxnCommand` for the semantics: compares first, then one branch, one revision. */
  private executeTxn(command: TxnCommand): KvResult {
    const succeeded = command.compares.every((compare) => compareHolds(compare, this.backend.getRecord(compare.key)));
    const branch = succeeded ? command.success : command.failure;
    // As etcd: a branch that would attach a key to a lease the store does not hold applies nothing.
    const missing = this.leasesHeld.missing(branch.map((operation) => (operation.op === "put" ? operation.lease : undefined)));
    if (missing !== undefined) return { op: "lease-not-found", id: missing };
    const results = this.runBranch(branch);
    return { op: "txn", succeeded, revision: this.revision, results };
  }

  /** A transaction's branch: its operations in order, every write at one new revision (none if it wrote nothing). */
  private runBranch(branch: readonly TxnOperation[]): TxnOperationResult[] {
    const revision = this.revision + 1;
    const { results, wrote } = this.writes.runBranch(branch, revision);
    if (wrote) this.revision = revision;
    return results;
  }

  /** Deletes every key under `prefix` (store-writes.ts), as one new revision if any matched. */
  private deletePrefix(prefix: string): KvResult {
    const revision = this.revision + 1;
    const deleted = this.writes.deletePrefix(prefix, revision);
    if (deleted === 0) return { op: "delete-prefix", deleted, revision: this.revision };
    this.revision = revision;
    return { op: "delete-prefix", deleted, revision };
  }
}

function compareChanges(a: KvChange, b: KvChange): number {
  return a.revision - b.revision || compareUtf8(a.key, b.key);
}

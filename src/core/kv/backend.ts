import { assert, assertIndex } from "../common/assert.js";
import { compareUtf8 } from "../common/utf8.js";
import { spanHolds } from "../multi/ranges.js";
import type { HistoryPosition, KvChange, KvLease, KvMeta, KvRecord, KvSession } from "./model.js";

/** Which records a range read returns. */
export interface KvRangeQuery {
  /** Keys starting with this (in UTF-8 bytes); "" for every key. */
  readonly prefix: string;
  /** At most this many records; a safe non-negative integer. */
  readonly limit: number;
  /** Only keys after this one (exclusive), to continue a range page by page. */
  readonly after?: string;
}

/** Which keys of the history `historyKeys` lists. */
export interface KvHistoryKeysQuery {
  /** Keys starting with this (in UTF-8 bytes); "" for every key. */
  readonly prefix: string;
  /** At most this many keys; a safe non-negative integer. */
  readonly limit: number;
  /** Only keys after this one (exclusive). */
  readonly after?: string;
}

/**
 * Where the KV state machine keeps its state: records, client sessions, the meta (applied
 * index, revision) and the history of changes. Synchronous, because the state machine is. Implementations: the memory
 * one below (the simulator's and the default) and LMDB (`src/runtime/storage/kv-lmdb.ts`);
 * both pass one conformance suite and give byte-identical snapshots.
 *
 * - Keys are well-formed strings (no lone surrogates: `toWellFormed`), ordered as their
 *   UTF-8 encodings compare byte by byte (`compareUtf8`), in ranges and in iteration.
 * - Writes (put, delete, meta, clear) are allowed only inside `transaction`; calling one
 *   outside is a programming error (an assertion).
 * - Records, sessions and their byte arrays handed in become the backend's, and those handed
 *   out are the caller's to read but not to change.
 * - The history holds changes (`KvChange`) keyed by (key, revision), each pair at most once.
 *   Revisions need not be consecutive, for a key or overall: only their order counts. The
 *   backend stores what it is given and looks it up; which changes to keep is the store's
 *   business (src/core/kv/history.ts), so both backends keep the same ones.
 * - Leases are held by id, and each key is attached to at most one lease: `attachKey` is
 *   called only for a key attached to none (the store detaches first). Which keys have
 *   records is the store's business too: the backend keeps the attachments it is given.
 */
export interface KvBackend {
  /**
   * The keys this store's range owns (absent: every key): a command on a key outside is
   * refused when it applies (`range-mismatch`), on every replica alike, and changes nothing.
   */
  readonly span?: { readonly start: string; readonly end: string | null } | undefined;
  /**
   * Inside a transaction: the store's range becomes `span` (a split narrows it; a snapshot
   * of the range restores it). Records outside it are no longer the store's: the memory
   * backend drops them; LMDB leaves them where they are, for the range that takes them.
   * Absent: the store's span never changes (it does not split).
   */
  setSpan?(span: { readonly start: string; readonly end: string | null }): void;
  /**
   * Inside a transaction, after `setSpan` left `span` out of this store's: the records in
   * `span` become range `child`'s, which starts with `meta` and nothing else (no sessions,
   * history, leases or auth state), and commits with this transaction. Only a backend whose
   * ranges share one store of records has it (LMDB's environment): a split then copies
   * nothing (split.ts). Throws if `child` is stored already.
   */
  splitOff?(child: number, span: { readonly start: string; readonly end: string | null }, meta: KvMeta): void;
  getRecord(key: string): KvRecord | undefined;
  putRecord(record: KvRecord): void;
  /** Removes the key's record, if there is one. */
  deleteRecord(key: string): void;
  /** Records matching `query`, in key order. */
  rangeRecords(query: KvRangeQuery): KvRecord[];
  /** Every record, in key order (for snapshots). */
  allRecords(): Iterable<KvRecord>;
  /** How many records there are; inside a transaction, counting its writes. Cheap (not a scan of the records). */
  recordCount(): number;
  /** The key at `offset` (from 0) in key order, reading keys only; undefined past the last. Absent: the store pages through its records instead. */
  keyAt?(offset: number): string | undefined;
  getSession(clientId: number): KvSession | undefined;
  putSession(session: KvSession): void;
  /** Removes the client's session, if there is one. */
  deleteSession(clientId: number): void;
  /** Every session, by increasing client id (for snapshots). */
  allSessions(): Iterable<KvSession>;
  /** The meta last written; zeros for an empty backend. */
  readMeta(): KvMeta;
  writeMeta(meta: KvMeta): void;
  /** Adds a change to the history; none with the same key and revision is there. */
  putChange(change: KvChange): void;
  /** Removes the key's change at `revision` from the history, if there is one. */
  deleteChange(key: string, revision: number): void;
  /** The key's latest change at or below `revision`, if any. */
  changeAtOrBefore(key: string, revision: number): KvChange | undefined;
  /** The key's earliest change above `revision`, if any. */
  changeAfter(key: string, revision: number): KvChange | undefined;
  /** At most `limit` changes after `position`, in (revision, key) order, the key in UTF-8 byte order. */
  changesAfter(position: HistoryPosition, limit: number): KvChange[];
  /** Keys with at least one change in the history, in key order (deleted keys too). */
  historyKeys(query: KvHistoryKeysQuery): string[];
  getLease(id: number): KvLease | undefined;
  putLease(lease: KvLease): void;
  /** Removes the lease, if there is one (its attachments are the caller's to remove first). */
  deleteLease(id: number): void;
  /** Every lease, by increasing id. */
  allLeases(): Iterable<KvLease>;
  /** The lease the key is attached to, if any. */
  leaseOfKey(key: string): number | undefined;
  /** Attaches a key attached to no lease to lease `id`. */
  attachKey(key: string, id: number): void;
  /** Detaches the key from its lease, if it has one. */
  detachKey(key: string): void;
  /** At most `limit` keys attached to lease `id`, in key order, after `after` if given. */
  leaseKeys(id: number, limit: number, after?: string): string[];
  /** The auth state's bytes (src/core/kv/auth.ts), if it was ever written. */
  readAuth(): Uint8Array | undefined;
  writeAuth(state: Uint8Array): void;
  /** The state of the transactions across ranges in flight here (src/core/kv/intents.ts), if it was ever written. */
  readTxnState(): Uint8Array | undefined;
  writeTxnState(state: Uint8Array): void;
  /** The outcomes of transactions across ranges this range keeps (intents.ts), by transaction id, each an entry of its own. */
  txnRecords(): Iterable<readonly [string, Uint8Array]>;
  /** Keeps (or with undefined, forgets) the outcome of transaction `txn`. */
  writeTxnRecord(txn: string, record: Uint8Array | undefined): void;
  /** Removes every record, session, change, lease and the auth state, and zeroes the meta. */
  clear(): void;
  /**
   * Runs `fn` and commits everything it wrote together, or nothing if it throws (the error
   * is rethrown). Reads inside see the writes made before them; reads outside see the last
   * committed state. Not reentrant: a transaction inside a transaction is an assertion.
   */
  transaction<T>(fn: () => T): T;
}

/**
 * The in-memory backend: maps, and an undo log so a transaction that throws leaves the
 * state as it was before, as LMDB's abort does. Fast: the simulator applies millions of
 * commands through it. The history is a list in (revision, key) order and a list per key in
 * revision order; changes arrive in revision order, so adding one is an append.
 */
export class MemoryKvBackend implements KvBackend {
  /** Every key unless a test narrows it or a split does (a range's store). */
  span: { readonly start: string; readonly end: string | null } | undefined = undefined;
  private readonly records = new Map<string, KvRecord>();
  private readonly sessions = new Map<number, KvSession>();
  private readonly changesByKey = new Map<string, KvChange[]>();
  private readonly changeLog: KvChange[] = [];
  private meta: KvMeta = { appliedIndex: 0, revision: 0 };
  private readonly leases = new Map<number, KvLease>();
  private readonly leaseByKey = new Map<string, number>();
  private readonly keysByLease = new Map<number, Set<string>>();
  /**
   * Undoes lease writes newest first on a rollback. Closures rather than the parallel arrays
   * the records use: lease writes are rare beside record writes.
   */
  private readonly undoLeases: (() => void)[] = [];
  private inTransaction = false;
  /**
   * The undo log: before each change inside a transaction, the key (or client id) and the
   * record (or session, or absence) it replaces; a rollback restores them newest first.
   * Parallel arrays with a count rather than maps or objects, because the simulator runs a
   * transaction per command and this keeps one costing no allocation.
   */
  private readonly undoKeys: string[] = [];
  private readonly undoRecords: (KvRecord | undefined)[] = [];
  private undoRecordCount = 0;
  private readonly undoClients: number[] = [];
  private readonly undoSessions: (KvSession | undefined)[] = [];
  private undoSessionCount = 0;
  /** History changes added (true) or removed (false) in this transaction, in order. */
  private readonly undoChanges: KvChange[] = [];
  private readonly undoChangeAdded: boolean[] = [];
  private undoChangeCount = 0;
  private undoMeta: KvMeta = this.meta;
  private auth: Uint8Array | undefined;
  private txnState: Uint8Array | undefined;
  private readonly txnRecordMap = new Map<string, Uint8Array>();
  private undoAuth: Uint8Array | undefined;

  getRecord(key: string): KvRecord | undefined {
    return this.records.get(key);
  }

  putRecord(record: KvRecord): void {
    this.rememberRecord(record.key);
    this.records.set(record.key, record);
  }

  deleteRecord(key: string): void {
    this.rememberRecord(key);
    this.records.delete(key);
  }

  /** Runs `undo` if the transaction under way rolls back (for a subclass's own state). */
  protected onRollback(undo: () => void): void {
    assert(this.inTransaction, "a KV store write outside a transaction");
    this.undoLeases.push(undo);
  }

  setSpan(span: { readonly start: string; readonly end: string | null }): void {
    assert(this.inTransaction, "a KV store write outside a transaction");
    const before = this.span;
    this.undoLeases.push(() => (this.span = before));
    for (const key of [...this.records.keys()]) if (!spanHolds(span, key)) this.deleteRecord(key);
    this.span = span;
  }

  rangeRecords(query: KvRangeQuery): KvRecord[] {
    assertIndex(query.limit, "range limit");
    const { prefix, after } = query;
    const matching: KvRecord[] = [];
    for (const record of this.records.values()) {
      if (record.key.startsWith(prefix) && (after === undefined || compareUtf8(record.key, after) > 0)) matching.push(record);
    }
    return matching.sort(byKey).slice(0, query.limit);
  }

  allRecords(): KvRecord[] {
    return [...this.records.values()].sort(byKey);
  }

  recordCount(): number {
    return this.records.size;
  }

  getSession(clientId: number): KvSession | undefined {
    return this.sessions.get(clientId);
  }

  putSession(session: KvSession): void {
    assert(this.inTransaction, "a session written outside a transaction");
    this.rememberSession(session.clientId);
    this.sessions.set(session.clientId, session);
  }

  deleteSession(clientId: number): void {
    assert(this.inTransaction, "a session deleted outside a transaction");
    this.rememberSession(clientId);
    this.sessions.delete(clientId);
  }

  allSessions(): KvSession[] {
    return [...this.sessions.values()].sort((a, b) => a.clientId - b.clientId);
  }

  readMeta(): KvMeta {
    return this.meta;
  }

  writeMeta(meta: KvMeta): void {
    assert(this.inTransaction, "meta written outside a transaction");
    this.meta = meta;
  }

  readAuth(): Uint8Array | undefined {
    return this.auth;
  }

  readTxnState(): Uint8Array | undefined {
    return this.txnState;
  }

  writeTxnState(state: Uint8Array): void {
    assert(this.inTransaction, "the transaction state written outside a transaction");
    const before = this.txnState;
    this.undoLeases.push(() => (this.txnState = before));
    this.txnState = state;
  }

  txnRecords(): Iterable<readonly [string, Uint8Array]> {
    return [...this.txnRecordMap];
  }

  writeTxnRecord(txn: string, record: Uint8Array | undefined): void {
    assert(this.inTransaction, "a transaction record written outside a transaction");
    const before = this.txnRecordMap.get(txn);
    this.undoLeases.push(() => (before === undefined ? this.txnRecordMap.delete(txn) : this.txnRecordMap.set(txn, before)));
    if (record === undefined) this.txnRecordMap.delete(txn);
    else this.txnRecordMap.set(txn, record);
  }

  writeAuth(state: Uint8Array): void {
    assert(this.inTransaction, "the auth state written outside a transaction");
    this.auth = state;
  }

  putChange(change: KvChange): void {
    assert(this.inTransaction, "a change written outside a transaction");
    assertIndex(change.revision, "a change's revision");
    this.insertChange(change);
    this.rememberChange(change, true);
  }

  deleteChange(key: string, revision: number): void {
    assert(this.inTransaction, "a change deleted outside a transaction");
    const removed = this.removeChange(key, revision);
    if (removed !== undefined) this.rememberChange(removed, false);
  }

  changeAtOrBefore(key: string, revision: number): KvChange | undefined {
    const changes = this.changesByKey.get(key);
    if (changes === undefined) return undefined;
    const at = firstAbove(changes, revision);
    return at === 0 ? undefined : changes[at - 1];
  }

  changeAfter(key: string, revision: number): KvChange | undefined {
    const changes = this.changesByKey.get(key);
    return changes === undefined ? undefined : changes[firstAbove(changes, revision)];
  }

  changesAfter(position: HistoryPosition, limit: number): KvChange[] {
    assertIndex(limit, "changes limit");
    const from = this.firstLogIndexAfter(position.revision, position.afterKey);
    return this.changeLog.slice(from, from + limit);
  }

  historyKeys(query: KvHistoryKeysQuery): string[] {
    assertIndex(query.limit, "history keys limit");
    const { prefix, after } = query;
    const keys = [...this.changesByKey.keys()].filter((key) => key.startsWith(prefix) && (after === undefined || compareUtf8(key, after) > 0));
    return keys.sort(compareUtf8).slice(0, query.limit);
  }

  getLease(id: number): KvLease | undefined {
    return this.leases.get(id);
  }

  putLease(lease: KvLease): void {
    assert(this.inTransaction, "a lease written outside a transaction");
    assertIndex(lease.id, "lease id");
    this.rememberLease(lease.id);
    this.leases.set(lease.id, lease);
  }

  deleteLease(id: number): void {
    assert(this.inTransaction, "a lease deleted outside a transaction");
    this.rememberLease(id);
    this.leases.delete(id);
  }

  allLeases(): KvLease[] {
    return [...this.leases.values()].sort((a, b) => a.id - b.id);
  }

  leaseOfKey(key: string): number | undefined {
    return this.leaseByKey.get(key);
  }

  attachKey(key: string, id: number): void {
    assert(this.inTransaction, "a key attached outside a transaction");
    assert(!this.leaseByKey.has(key), "a key is attached to one lease at most");
    this.addAttachment(key, id);
    this.undoLeases.push(() => this.removeAttachment(key));
  }

  detachKey(key: string): void {
    assert(this.inTransaction, "a key detached outside a transaction");
    const id = this.leaseByKey.get(key);
    if (id === undefined) return;
    this.removeAttachment(key);
    this.undoLeases.push(() => this.addAttachment(key, id));
  }

  leaseKeys(id: number, limit: number, after?: string): string[] {
    assertIndex(limit, "lease keys limit");
    const keys = [...(this.keysByLease.get(id) ?? [])].filter((key) => after === undefined || compareUtf8(key, after) > 0);
    return keys.sort(compareUtf8).slice(0, limit);
  }

  private addAttachment(key: string, id: number): void {
    this.leaseByKey.set(key, id);
    let keys = this.keysByLease.get(id);
    if (keys === undefined) this.keysByLease.set(id, (keys = new Set()));
    keys.add(key);
  }

  private removeAttachment(key: string): void {
    const id = this.leaseByKey.get(key);
    if (id === undefined) return;
    this.leaseByKey.delete(key);
    const keys = this.keysByLease.get(id);
    keys?.delete(key);
    if (keys?.size === 0) this.keysByLease.delete(id);
  }

  private rememberLease(id: number): void {
    const before = this.leases.get(id);
    this.undoLeases.push(() => (before === undefined ? this.leases.delete(id) : this.leases.set(id, before)));
  }

  clear(): void {
    for (const id of this.leases.keys()) this.rememberLease(id);
    for (const key of [...this.leaseByKey.keys()]) this.detachKey(key);
    this.leases.clear();
    for (const key of this.records.keys()) this.rememberRecord(key);
    for (const clientId of this.sessions.keys()) this.rememberSession(clientId);
    for (const change of this.changeLog) this.rememberChange(change, false);
    this.records.clear();
    this.sessions.clear();
    this.changesByKey.clear();
    this.changeLog.length = 0;
    this.auth = undefined;
    if (this.txnState !== undefined) {
      const before = this.txnState;
      this.undoLeases.push(() => (this.txnState = before));
      this.txnState = undefined;
    }
    for (const txn of [...this.txnRecordMap.keys()]) this.writeTxnRecord(txn, undefined);
    this.writeMeta({ appliedIndex: 0, revision: 0, clockMs: 0 });
  }

  transaction<T>(fn: () => T): T {
    assert(!this.inTransaction, "a transaction inside a transaction");
    this.inTransaction = true;
    this.undoMeta = this.meta;
    this.undoAuth = this.auth;
    try {
      return fn();
    } catch (error) {
      this.rollback();
      throw error;
    } finally {
      this.inTransaction = false;
      this.forgetUndo();
    }
  }

  private insertChange(change: KvChange): void {
    let changes = this.changesByKey.get(change.key);
    if (changes === undefined) this.changesByKey.set(change.key, (changes = []));
    const at = firstAbove(changes, change.revision);
    assert(at === 0 || (changes[at - 1] as KvChange).revision !== change.revision, "a key changes at most once per revision");
    changes.splice(at, 0, change);
    const logAt = this.firstLogIndexAfter(change.revision, "");
    let insertAt = logAt;
    while (insertAt < this.changeLog.length && (this.changeLog[insertAt] as KvChange).revision === change.revision && compareUtf8((this.changeLog[insertAt] as KvChange).key, change.key) < 0) insertAt++;
    this.changeLog.splice(insertAt, 0, change);
  }

  private removeChange(key: string, revision: number): KvChange | undefined {
    const changes = this.changesByKey.get(key);
    if (changes === undefined) return undefined;
    const at = firstAbove(changes, revision) - 1;
    const removed = changes[at];
    if (removed === undefined || removed.revision !== revision) return undefined;
    changes.splice(at, 1);
    if (changes.length === 0) this.changesByKey.delete(key);
    const logAt = this.changeLog.indexOf(removed, this.firstLogIndexAfter(revision, ""));
    assert(logAt >= 0, "a change of a key is in the history's log too");
    this.changeLog.splice(logAt, 1);
    return removed;
  }

  /** The index in the log of the first change after (revision, afterKey). */
  private firstLogIndexAfter(revision: number, afterKey: string): number {
    let low = 0;
    let high = this.changeLog.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const change = this.changeLog[middle] as KvChange;
      const before = change.revision < revision || (change.revision === revision && (afterKey === "" ? false : compareUtf8(change.key, afterKey) <= 0));
      if (before) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private rememberRecord(key: string): void {
    assert(this.inTransaction, "a record written outside a transaction");
    this.undoKeys[this.undoRecordCount] = key;
    this.undoRecords[this.undoRecordCount] = this.records.get(key);
    this.undoRecordCount++;
  }

  private rememberSession(clientId: number): void {
    this.undoClients[this.undoSessionCount] = clientId;
    this.undoSessions[this.undoSessionCount] = this.sessions.get(clientId);
    this.undoSessionCount++;
  }

  private rememberChange(change: KvChange, added: boolean): void {
    this.undoChanges[this.undoChangeCount] = change;
    this.undoChangeAdded[this.undoChangeCount] = added;
    this.undoChangeCount++;
  }

  /** Empties the undo log, dropping its references so replaced records can be collected. */
  private forgetUndo(): void {
    if (this.undoRecordCount > UNDO_ENTRIES_KEPT || this.undoSessionCount > UNDO_ENTRIES_KEPT || this.undoChangeCount > UNDO_ENTRIES_KEPT) {
      this.undoKeys.length = this.undoRecords.length = this.undoClients.length = this.undoSessions.length = 0;
      this.undoChanges.length = this.undoChangeAdded.length = 0;
    } else {
      for (let i = 0; i < this.undoRecordCount; i++) this.undoRecords[i] = undefined;
      for (let i = 0; i < this.undoSessionCount; i++) this.undoSessions[i] = undefined;
      this.undoChanges.length = 0;
    }
    this.undoRecordCount = this.undoSessionCount = this.undoChangeCount = 0;
    this.undoLeases.length = 0;
  }

  private rollback(): void {
    for (let i = this.undoRecordCount - 1; i >= 0; i--) {
      const key = this.undoKeys[i] as string;
      const record = this.undoRecords[i];
      if (record === undefined) this.records.delete(key);
      else this.records.set(key, record);
    }
    for (let i = this.undoSessionCount - 1; i >= 0; i--) {
      const clientId = this.undoClients[i] as number;
      const session = this.undoSessions[i];
      if (session === undefined) this.sessions.delete(clientId);
      else this.sessions.set(clientId, session);
    }
    for (let i = this.undoChangeCount - 1; i >= 0; i--) {
      const change = this.undoChanges[i] as KvChange;
      if (this.undoChangeAdded[i] === true) this.removeChange(change.key, change.revision);
      else this.insertChange(change);
    }
    for (let i = this.undoLeases.length - 1; i >= 0; i--) (this.undoLeases[i] as () => void)();
    this.meta = this.undoMeta;
    this.auth = this.undoAuth;
  }
}

/** Undo arrays up to this long are kept for the next transaction; longer ones are released. */
const UNDO_ENTRIES_KEPT = 256;

function byKey(a: KvRecord, b: KvRecord): number {
  return compareUtf8(a.key, b.key);
}

/** The index of the first change of `changes` (in revision order) above `revision`. */
function firstAbove(changes: readonly KvChange[], revision: number): number {
  let low = 0;
  let high = changes.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((changes[middle] as KvChange).revision <= revision) low = middle + 1;
    else high = middle;
  }
  return low;
}

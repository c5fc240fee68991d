/**
 * The KV state machine's store on disk: a `KvBackend` over LMDB (the `lmdb` package), so
 * the state can exceed memory and a restarted node resumes at the applied index it left,
 * replaying only the log after it.
 *
 * A backend is one consensus group's, in an LMDB environment that many groups may share
 * (kv-lmdb-env.ts: each group sees the records of its own span of the key space, and has
 * its own meta, sessions, history, leases and auth state). `LmdbKvBackend.open` opens an
 * environment in a directory and gives its group 0, over the whole key space: the store
 * of a node that is not sharded, laid out as below, as it was before there were groups.
 *
 * Layout of group 0: LMDB's main database, with binary keys each starting with a byte that says what
 * it is, a named database for the history (kv-lmdb-history.ts) and one for leases
 * (kv-lmdb-leases.ts); snapshots are built from a read transaction a step at a time by
 * kv-lmdb-snapshot.ts. The main database:
 *
 *   0x00                      meta     u8 format (3, 4 or 5: kv-lmdb-values.ts) | f64 appliedIndex | f64 revision | f64 clockMs
 *                                      | f64 compactRevision | f64 purged revision | u32 length | purged key
 *   0x01 | UTF-8 key          record   f64 createRevision | f64 modRevision | f64 version | value
 *   0x02 | f64 clientId       session  f64 sequence | session result (src/core/kv/snapshot.ts)
 *   0x00 0x61                 auth     the auth state (src/core/kv/auth.ts), once ever changed
 *   0x00 0x74                 txns     transactions across ranges in flight (src/core/kv/intents.ts), once any was
 *
 * Another group's meta, auth state and sessions are in the "groups" database, with the
 * group's prefix in front of these keys, and so are its history and leases in theirs.
 *
 * Formats 1 (no clock) and 2 (no history) are still opened: the history starts then, at the
 * store's revision, as the records (`startHistory`), and the meta becomes format 3. A later
 * format is refused, with what to do.
 *
 * All numbers big-endian. A non-negative float64's big-endian bytes sort as the number does,
 * so sessions iterate by client id and records by the UTF-8 byte order of their keys, the
 * order the memory backend and the snapshot format use.
 *
 * Durability. LMDB runs with `noSync`: a commit writes its pages into the OS page cache and
 * does not fsync them (measured on the development machine: a one-put transaction commits in
 * ~8 µs instead of ~260 µs, 64 puts in ~100 µs instead of ~470 µs). That is safe
 * because this store is not the durable record: the consensus write-ahead log is, and this
 * is a materialised state at some applied index that can be rebuilt from the last snapshot
 * and the log.
 *
 * - A process crash (kill -9) loses nothing LMDB committed: the pages are in the page cache,
 *   and the kernel writes them out whether or not the process lives.
 * - A machine crash (power, kernel panic) may lose some of those pages in any order, which
 *   for LMDB without sync means a database rolled back or corrupt. To know when that may
 *   have happened, a marker file beside the database (kv-lmdb-marker.ts) records "dirty"
 *   and the kernel's boot id (fsynced) when the database opens, and "clean" after a
 *   `flush()` at close. Opening a database whose marker says dirty under a different boot id
 *   (or an unknown one, where the kernel has none) means the machine restarted while the
 *   database was open: it is not trusted. `open` then deletes it and starts an empty one,
 *   and says so (`trusted: false` and the reason), so the node restores its last snapshot
 *   and replays its log; it never reads a database that may be corrupt.
 * - `flush()` makes everything committed so far durable by fsyncing LMDB's data file
 *   (`data.mdb`) itself: fsync writes out every dirty page of the file, whichever file
 *   descriptor wrote it, and LMDB (not in write-map mode) writes its pages with pwrite.
 */
import type { Database, RootDatabase } from "lmdb";
import { assert, assertIndex } from "../../core/common/assert.js";
import { ByteWriter } from "../../core/common/bytes.js";
import { limits } from "../../core/common/limits.js";
import type { KvBackend, KvHistoryKeysQuery, KvRangeQuery } from "../../core/kv/backend.js";
import { isRetained } from "../../core/kv/history.js";
import { joinTxnState } from "../../core/kv/intents.js";
import type { HistoryPosition, KvChange, KvLease, KvMeta, KvRecord, KvSession } from "../../core/kv/model.js";
import type { GroupId } from "../../core/multi/group.js";
import { snapshotRangeOf, type SnapshotLease } from "../../core/kv/snapshot.js";
import { sessionValueBytes, writeSessionValue } from "../../core/kv/session-codec.js";
import { startHistory } from "../../core/kv/store.js";
import { KvStorageCorruptionError, KvStorageFormatError, META_FORMAT } from "./kv-lmdb-errors.js";
import { LmdbKvEnvironment, type LmdbDatabases, type LmdbKvEnvironmentOptions } from "./kv-lmdb-env.js";
import { groupPrefix, prefixed, removeRange, successor } from "./kv-lmdb-group-keys.js";
import { describeSpan, KvGroupSpanError, RECORD_PREFIX, recordKey, spanBounds, WHOLE_KEY_SPACE, type GroupRegistry, type KvSpan, type SpanBounds } from "./kv-lmdb-groups.js";
import { HistoryCorruption, LmdbHistory } from "./kv-lmdb-history.js";
import { LeaseCorruption, LmdbLeases } from "./kv-lmdb-leases.js";
import { readBootId, UNKNOWN_BOOT_ID } from "./kv-lmdb-marker.js";
import { LmdbSnapshotBuilder, type SnapshotHistoryView } from "./kv-lmdb-snapshot.js";
import { decodeRecord, decodeStoredSession, encodeMeta, encodeRecord, parseMeta, RECORD_HEADER_BYTES } from "./kv-lmdb-values.js";

// Importable from here as before they had files of their own: what `beginSnapshot` returns,
// the boot id the marker records, and the errors.
export { decodeStoredSession, KvStorageCorruptionError, KvStorageFormatError, LmdbSnapshotBuilder, readBootId, RECORD_HEADER_BYTES, UNKNOWN_BOOT_ID };

const META_KEY = [0x00];
/** The auth state (src/core/kv/auth.ts), when it was ever written: after the meta, before the records. */
const AUTH_KEY = [0x00, 0x61];
/** The state of the transactions across ranges in flight (src/core/kv/intents.ts), when it was ever written. */
const TXN_STATE_KEY = [0x00, 0x74];
/** Each outcome of a transaction across ranges the group keeps (src/core/kv/intents.ts): this, then the transaction's id. */
const TXN_RECORD_PREFIX = [0x00, 0x72];
const SESSION_PREFIX = 0x02;
/** Main-database keys from here up are LMDB's own: the names of the named databases. */
const NAMED_DATABASES_FROM = 0x03;
const RECORD_KEY_BYTES_MAX = 1 + limits.keyBytesMax;

export type LmdbKvBackendOptions = LmdbKvEnvironmentOptions;

export interface LmdbKvOpened {
  readonly backend: LmdbKvBackend;
  /**
   * False if the database on disk could not be trusted (see the module comment) and was
   * replaced by an empty one: the caller restores its snapshot and replays its log.
   */
  readonly trusted: boolean;
  /** Why the database was not trusted; null when it was. */
  readonly reason: string | null;
}

/** What a group's backend needs of the environment it is in (kv-lmdb-env.ts). */
export interface LmdbGroupHost {
  readonly path: string;
  readonly databases: LmdbDatabases;
  readonly registry: GroupRegistry;
  readonly isClosed: boolean;
  /** Where the store reports what it did on its own (a migration). */
  readonly log: ((message: string) => void) | undefined;
  enterTransaction(group: GroupId): void;
  leaveTransaction(): void;
  release(group: GroupId, backend: LmdbKvBackend): void;
  dropGroup(group: GroupId): void;
  sizeBytes(): number;
  flush(): void;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

/** One group's state machine in an LMDB environment; made by `LmdbKvEnvironment.group` (or `open`, for group 0 alone). */
export class LmdbKvBackend implements KvBackend {
  private inTransaction = false;
  private closed = false;
  /** Whether `close` and `destroy` are the environment's: a backend from `open`. */
  private ownsEnvironment = false;
  private readonly records: RootDatabase<Buffer, Buffer>;
  /** The database of the group's meta, auth state and sessions: the main one for group 0, "groups" for the others. */
  private readonly own: Database<Buffer, Buffer>;
  /** What the group's own keys start with (kv-lmdb-group-keys.ts): nothing for group 0. */
  private readonly prefix: Buffer;
  private readonly metaKey: Buffer;
  private readonly authKey: Buffer;
  private readonly txnStateKey: Buffer;
  private readonly history: LmdbHistory;
  private readonly leases: LmdbLeases;
  private bounds: SpanBounds;
  /** The committed record count of a group whose span is not the whole key space (which counts otherwise). */
  private committedCount: number;
  private count: number;
  /** The span before the running transaction changed it, to restore if it aborts; null if it did not. */
  private spanBeforeTransaction: KvSpan | null = null;
  /** The record count before the last `setSpan` of the transaction under way: what a `splitOff` after it gives the child is the difference. */
  private countBeforeCut: number | null = null;
  /** Groups `splitOff` made in the transaction under way, registered in memory once it commits. */
  private splitChildren: { readonly group: GroupId; readonly span: KvSpan }[] = [];
  private dropping = false;

  /** See `LmdbKvEnvironment.group`: `count` is the group's stored record count. */
  constructor(
    private readonly host: LmdbGroupHost,
    readonly group: GroupId,
    private currentSpan: KvSpan,
    count: number,
  ) {
    const { main, groups, history, leases } = host.databases;
    this.records = main;
    this.own = group === 0 ? main : groups;
    this.prefix = groupPrefix(group);
    this.metaKey = prefixed(this.prefix, META_KEY);
    this.authKey = prefixed(this.prefix, AUTH_KEY);
    this.txnStateKey = prefixed(this.prefix, TXN_STATE_KEY);
    this.history = new LmdbHistory(history, this.prefix);
    this.leases = new LmdbLeases(leases, this.prefix);
    this.bounds = spanBounds(currentSpan);
    this.committedCount = this.count = count;
    this.migrate();
  }

  /**
   * Opens (or creates) the environment at `options.path` and gives its group 0, as stored
   * or over the whole key space: a store of one group, as before there were groups.
   * Closing the backend closes the environment. Throws what LMDB or the file system throws
   * if the directory cannot be used.
   */
  static open(options: LmdbKvBackendOptions): LmdbKvOpened {
    const environment = LmdbKvEnvironment.open(options);
    try {
      const backend = environment.group(0, environment.spanOf(0) ?? WHOLE_KEY_SPACE);
      backend.ownsEnvironment = true;
      return { backend, trusted: environment.trusted, reason: environment.reason };
    } catch (error) {
      void environment.close();
      throw error;
    }
  }

  /** The environment's directory. */
  get path(): string {
    return this.host.path;
  }

  /** The keys whose records this group holds. */
  get span(): KvSpan {
    return this.currentSpan;
  }

  /**
   * A store of format 1 or 2 has no history: it starts now, at the store's revision (see
   * `startHistory`), in one transaction, after which the meta is format 3. The compaction
   * point is that revision, which is this node's own until a compaction moves every node's
   * past it (nodes upgraded at different revisions start their history at different ones).
   */
  private migrate(): void {
    const stored = this.own.getBinaryFast(this.metaKey);
    if (stored === undefined || ((stored[0] as number) >= 3 && (stored[0] as number) <= META_FORMAT)) return;
    const meta = parseMeta(this.path, stored);
    this.transaction(() => {
      const compactRevision = startHistory(this, meta.revision);
      this.writeMeta({ ...meta, compactRevision, purged: { revision: compactRevision, afterKey: "" } });
    });
    this.host.log?.(`the KV store in ${this.path} had no history (written by an earlier synod): its history starts at revision ${meta.revision}, the compaction point`);
  }

  getRecord(key: string): KvRecord | undefined {
    const stored = recordKey(key);
    this.assertInSpan(stored, key);
    // No longer key was ever stored; LMDB would refuse to look it up.
    if (stored.length > RECORD_KEY_BYTES_MAX) return undefined;
    const value = this.records.getBinaryFast(stored);
    return value === undefined ? undefined : decodeRecord(this.path, key, value);
  }

  putRecord(record: KvRecord): void {
    this.assertWriting();
    const key = recordKey(record.key);
    assert(key.length <= RECORD_KEY_BYTES_MAX, `a key of ${key.length - 1} bytes, over the limit of ${limits.keyBytesMax}`);
    this.assertInSpan(key, record.key);
    if (!this.bounds.whole && this.records.getBinaryFast(key) === undefined) this.count++;
    this.records.putSync(key, encodeRecord(record));
  }

  deleteRecord(key: string): void {
    this.assertWriting();
    const stored = recordKey(key);
    this.assertInSpan(stored, key);
    if (stored.length > RECORD_KEY_BYTES_MAX) return;
    if (this.records.removeSync(stored) && !this.bounds.whole) this.count--;
  }

  /** Records matching `query` in the group's span. */
  rangeRecords(query: KvRangeQuery): KvRecord[] {
    assertIndex(query.limit, "range limit");
    const prefix = recordKey(query.prefix);
    if (prefix.length > RECORD_KEY_BYTES_MAX) return [];
    let end = successor(prefix);
    let start = prefix;
    let exclusiveStart = false;
    if (query.after !== undefined) {
      // Keys are at most RECORD_KEY_BYTES_MAX long, so "after A" is "after A's first
      // RECORD_KEY_BYTES_MAX bytes": a key equal to those is a prefix of A, so before it.
      const after = recordKey(query.after).subarray(0, RECORD_KEY_BYTES_MAX);
      if (Buffer.compare(after, prefix) >= 0) {
        start = after;
        exclusiveStart = true;
      }
    }
    if (Buffer.compare(this.bounds.from, start) > 0) {
      start = this.bounds.from;
      exclusiveStart = false;
    }
    if (Buffer.compare(this.bounds.to, end) < 0) end = this.bounds.to;
    if (query.limit === 0 || Buffer.compare(start, end) >= 0) return [];
    const records: KvRecord[] = [];
    for (const { key, value } of this.records.getRange({ start, end, exclusiveStart, limit: query.limit })) {
      records.push(decodeRecord(this.path, key.toString("utf8", 1), value));
    }
    return records;
  }

  /** Every record in the group's span, in key order. */
  allRecords(): Iterable<KvRecord> {
    return this.records.getRange({ start: this.bounds.from, end: this.bounds.to }).map(({ key, value }) => decodeRecord(this.path, key.toString("utf8", 1), value));
  }

  /** See KvBackend.keyAt: LMDB skips to it over the keys alone (about 20 ms past 500,000 keys). */
  keyAt(offset: number): string | undefined {
    assertIndex(offset, "key offset");
    for (const key of this.records.getKeys({ start: this.bounds.from, end: this.bounds.to, offset, limit: 1 })) return (key as Buffer).toString("utf8", 1);
    return undefined;
  }

  /**
   * A group over part of the key space keeps its count (in the registry, at each commit). A
   * group over the whole of it holds every record: LMDB's count of every entry of the main
   * database (kept in its tree, so O(1)) less group 0's sessions (at most
   * `SESSION_LIMITS.sessionsMax`, counted), meta, auth and transaction state, and the named databases.
   */
  recordCount(): number {
    if (!this.bounds.whole) return this.count;
    const main = this.records;
    const entries = (main.getStats() as { entryCount: number }).entryCount;
    const sessions = main.getKeysCount({ start: Buffer.from([SESSION_PREFIX]), end: Buffer.from([SESSION_PREFIX + 1]) });
    const meta = [META_KEY, AUTH_KEY, TXN_STATE_KEY].filter((key) => main.getBinaryFast(Buffer.from(key)) !== undefined).length + main.getKeysCount({ start: Buffer.from(TXN_RECORD_PREFIX), end: successor(Buffer.from(TXN_RECORD_PREFIX)) });
    const named = main.getKeysCount({ start: Buffer.from([NAMED_DATABASES_FROM]) });
    const records = entries - sessions - meta - named;
    assert(Number.isSafeInteger(records) && records >= 0, `LMDB counts ${entries} entries, ${sessions} sessions, ${meta} meta and ${named} named databases`);
    return records;
  }

  /** The size of the environment's database file (data.mdb) on disk, in bytes; 0 once closed. */
  sizeBytes(): number {
    return this.closed ? 0 : this.host.sizeBytes();
  }

  getSession(clientId: number): KvSession | undefined {
    const stored = this.own.getBinaryFast(this.sessionKey(clientId));
    return stored === undefined ? undefined : decodeStoredSession(this.path, clientId, stored);
  }

  putSession(session: KvSession): void {
    this.assertWriting();
    const writer = new ByteWriter(sessionValueBytes(session));
    writeSessionValue(writer, session);
    this.own.putSync(this.sessionKey(session.clientId), Buffer.from(writer.finish("KV session").buffer));
  }

  deleteSession(clientId: number): void {
    this.assertWriting();
    this.own.removeSync(this.sessionKey(clientId));
  }

  allSessions(): Iterable<KvSession> {
    return this.storedSessions().map(({ key, value }) => {
      if (key.length !== 9) throw new KvStorageCorruptionError(this.path, "a session key has the wrong length");
      return decodeStoredSession(this.path, key.readDoubleBE(1), value);
    });
  }

  /** The group's sessions as stored, their keys without the group's prefix (0x02 | f64 client id). */
  private storedSessions(transaction?: ReturnType<RootDatabase["useReadTransaction"]>) {
    const at = this.prefix.length;
    const range = this.own.getRange({ start: prefixed(this.prefix, [SESSION_PREFIX]), end: prefixed(this.prefix, [SESSION_PREFIX + 1]), ...(transaction === undefined ? {} : { transaction }) });
    return at === 0 ? range : range.map(({ key, value }) => ({ key: key.subarray(at), value }));
  }

  readMeta(): KvMeta {
    return parseMeta(this.path, this.own.getBinaryFast(this.metaKey));
  }

  /**
   * Starts a snapshot of the group's state as it is now, built a piece at a time (`step`)
   * while applies go on: an LMDB read transaction keeps this moment's pages. The bytes are
   * those `KvStore.snapshot()` gives for the same state (the same format, the same order):
   * the records of the group's span, and its own sessions, history, leases and auth state,
   * copied from the stored records without decoding them, so a large state costs the node
   * a few milliseconds per step instead of one long stall. `abort()` or the last `step` ends
   * the read transaction; the caller must not leave one running (it pins old pages).
   */
  beginSnapshot(): LmdbSnapshotBuilder {
    assert(!this.inTransaction, "a snapshot begins between transactions");
    this.assertOpen();
    const transaction = this.records.useReadTransaction();
    try {
      const meta = parseMeta(this.path, this.own.get(this.metaKey, { transaction }));
      const records = this.records.getRange({ start: this.bounds.from, end: this.bounds.to, transaction })[Symbol.iterator]();
      const sessions = this.storedSessions(transaction);
      const changes = this.history.rawAfter({ revision: 0, afterKey: "" }, Number.MAX_SAFE_INTEGER, transaction)[Symbol.iterator]();
      const view: SnapshotHistoryView = {
        changes,
        // What the state machine's own snapshot keeps (history.ts, KvStore.snapshot), read in the snapshot's transaction.
        retained: (change) => this.inSpan(change.key) && this.guarded(() => isRetained({ changeAfter: (key, revision) => this.history.after(key, revision, transaction) }, change, meta.compactRevision ?? 0)),
        modRevision: (key) => {
          // Only the group's own records: a key a split gave away is still stored (the child's now), and its change here is history, not current.
          const stored = this.inSpan(key) ? this.records.get(recordKey(key), { transaction }) : undefined;
          return stored === undefined || stored.length < RECORD_HEADER_BYTES ? undefined : stored.readDoubleBE(8);
        },
      };
      const leases = (): SnapshotLease[] => this.guarded(() => [...this.leases.all(transaction)].map((lease) => ({ lease, keys: this.leases.keys(lease.id, Number.MAX_SAFE_INTEGER, undefined, transaction) })));
      const auth = this.own.get(this.authKey, { transaction });
      const range = snapshotRangeOf(this.bounds.whole ? undefined : this.currentSpan, meta.rangeEpoch ?? 1, meta.nextRangeId ?? 0, meta.bornAt ?? 0, meta.spanSince ?? 0);
      // The intents and every outcome kept, read in the snapshot's transaction, as one section.
      const storedTxnState = this.own.get(this.txnStateKey, { transaction });
      const txnState = joinTxnState(storedTxnState === undefined ? undefined : Uint8Array.from(storedTxnState), this.txnRecords(transaction));
      return new LmdbSnapshotBuilder(this.path, meta, records, sessions, view, () => transaction.done(), leases, auth === undefined ? undefined : Uint8Array.from(auth), range, txnState);
    } catch (error) {
      transaction.done();
      throw error;
    }
  }

  writeMeta(meta: KvMeta): void {
    this.assertWriting();
    this.own.putSync(this.metaKey, encodeMeta(meta));
  }

  readAuth(): Uint8Array | undefined {
    // get, not getBinaryFast: that one's buffer is lmdb-js's own, reused by the next read.
    const stored = this.own.get(this.authKey);
    return stored === undefined ? undefined : new Uint8Array(stored);
  }

  writeAuth(state: Uint8Array): void {
    this.assertWriting();
    this.own.putSync(this.authKey, Buffer.from(state));
  }

  readTxnState(): Uint8Array | undefined {
    const stored = this.own.get(this.txnStateKey);
    return stored === undefined ? undefined : new Uint8Array(stored);
  }

  writeTxnState(state: Uint8Array): void {
    this.assertWriting();
    this.own.putSync(this.txnStateKey, Buffer.from(state));
  }

  txnRecords(transaction?: ReturnType<RootDatabase["useReadTransaction"]>): Iterable<readonly [string, Uint8Array]> {
    const start = prefixed(this.prefix, TXN_RECORD_PREFIX);
    const range = this.own.getRange({ start, end: successor(start), ...(transaction === undefined ? {} : { transaction }) });
    return [...range].map(({ key, value }) => [key.toString("utf8", start.length), Uint8Array.from(value)] as const);
  }

  writeTxnRecord(txn: string, record: Uint8Array | undefined): void {
    this.assertWriting();
    const key = Buffer.concat([prefixed(this.prefix, TXN_RECORD_PREFIX), Buffer.from(txn, "utf8")]);
    if (record === undefined) this.own.removeSync(key);
    else this.own.putSync(key, Buffer.from(record));
  }

  putChange(change: KvChange): void {
    this.assertWriting();
    this.guarded(() => this.history.put(change));
  }

  deleteChange(key: string, revision: number): void {
    this.assertWriting();
    if (Buffer.byteLength(key, "utf8") <= limits.keyBytesMax) this.guarded(() => this.history.remove(key, revision));
  }

  changeAtOrBefore(key: string, revision: number): KvChange | undefined {
    if (Buffer.byteLength(key, "utf8") > limits.keyBytesMax) return undefined;
    return this.guarded(() => this.history.atOrBefore(key, revision));
  }

  changeAfter(key: string, revision: number): KvChange | undefined {
    if (Buffer.byteLength(key, "utf8") > limits.keyBytesMax) return undefined;
    return this.guarded(() => this.history.after(key, revision));
  }

  changesAfter(position: HistoryPosition, limit: number): KvChange[] {
    return this.guarded(() => this.history.changesAfter(position, limit));
  }

  historyKeys(query: KvHistoryKeysQuery): string[] {
    if (Buffer.byteLength(query.prefix, "utf8") > limits.keyBytesMax) return [];
    return this.guarded(() => this.history.keys(query));
  }

  getLease(id: number): KvLease | undefined {
    return this.guarded(() => this.leases.get(id));
  }

  putLease(lease: KvLease): void {
    this.assertWriting();
    this.leases.put(lease);
  }

  deleteLease(id: number): void {
    this.assertWriting();
    this.leases.remove(id);
  }

  allLeases(): Iterable<KvLease> {
    return this.guarded(() => [...this.leases.all()]);
  }

  leaseOfKey(key: string): number | undefined {
    return this.guarded(() => this.leases.leaseOf(key));
  }

  attachKey(key: string, id: number): void {
    this.assertWriting();
    this.guarded(() => this.leases.attach(key, id));
  }

  detachKey(key: string): void {
    this.assertWriting();
    this.guarded(() => this.leases.detach(key));
  }

  leaseKeys(id: number, limit: number, after?: string): string[] {
    return this.leases.keys(id, limit, after);
  }

  /** Removes the records of the group's span and everything of its own; other groups' data stays. */
  clear(): void {
    this.assertWriting();
    this.leases.clear();
    // Not lmdb-js's clearSync on the main database: LMDB would drop the named databases'
    // entries with it, and the other groups' records.
    if (this.prefix.length === 0) {
      removeRange(this.own, Buffer.from(META_KEY), Buffer.from([RECORD_PREFIX]));
      removeRange(this.own, Buffer.from([SESSION_PREFIX]), Buffer.from([SESSION_PREFIX + 1]));
    } else {
      removeRange(this.own, this.prefix, successor(this.prefix));
    }
    removeRange(this.records, this.bounds.from, this.bounds.to);
    this.count = 0;
    this.history.clear();
  }

  /**
   * Gives the group another span, inside a transaction, so that it commits with what the
   * group applied (a split: the parent's shrinks, then a child group takes the rest with
   * `LmdbKvEnvironment.group`; no record moves). The records the new span holds are counted
   * (a scan of the span, in LMDB). Throws KvGroupSpanError if the span overlaps another
   * group's, InvalidInputError if it is not a span.
   */
  setSpan(span: KvSpan): void {
    this.assertWriting();
    const bounds = spanBounds(span);
    const other = this.host.registry.overlapping(this.group, bounds);
    if (other !== undefined) throw new KvGroupSpanError(`group ${this.group}'s span cannot become ${describeSpan(span)}: it overlaps group ${other}'s`);
    this.spanBeforeTransaction ??= this.currentSpan;
    this.countBeforeCut = this.recordCount();
    this.currentSpan = span;
    this.bounds = bounds;
    this.count = bounds.whole ? 0 : this.records.getKeysCount({ start: bounds.from, end: bounds.to });
  }

  /**
   * See KvBackend.splitOff: right after `setSpan` cut `span` off this group's, registers group
   * `child` over it (its records are the ones there, counted as those this group no longer
   * has: no scan) with `meta`, in this transaction. No record moves. Throws KvGroupSpanError
   * if `child` is stored already or `span` is not what the cut left out.
   */
  splitOff(child: GroupId, span: KvSpan, meta: KvMeta): void {
    this.assertWriting();
    const { registry, databases } = this.host;
    assert(child !== 0 && child !== this.group, `a group splits off as a new group, not ${child}`);
    if (registry.spanOf(child) !== undefined || this.splitChildren.some((each) => each.group === child)) throw new KvGroupSpanError(`group ${child} is stored already: a split makes a new group`);
    const before = this.countBeforeCut;
    const other = registry.overlapping(child, spanBounds(span));
    if (before === null || (other !== undefined && other !== this.group) || (other === this.group && this.spanBeforeTransaction === null)) {
      throw new KvGroupSpanError(`group ${child}'s span ${describeSpan(span)} is not one this group's last setSpan left out`);
    }
    registry.write(child, span, before - this.count);
    databases.groups.putSync(prefixed(groupPrefix(child), META_KEY), encodeMeta(meta));
    this.countBeforeCut = null;
    this.splitChildren.push({ group: child, span });
  }

  /**
   * One LMDB write transaction (`transactionSync`): committed when `fn` returns, aborted
   * when it throws. Reads inside see its writes. The group's record count and span, when
   * they changed, commit with it.
   */
  transaction<T>(fn: () => T): T {
    this.assertOpen();
    assert(!this.inTransaction, "a transaction inside a transaction");
    this.host.enterTransaction(this.group);
    this.inTransaction = true;
    try {
      const result = this.records.transactionSync(() => {
        const result = fn();
        this.writeRegistry();
        return result;
      });
      this.committed();
      return result;
    } catch (error) {
      this.rolledBack();
      throw error;
    } finally {
      this.inTransaction = false;
      this.host.leaveTransaction();
    }
  }

  /** The registry entry, when the span or the count changed, or its removal when the group is being dropped. */
  private writeRegistry(): void {
    const { registry } = this.host;
    if (this.dropping) registry.remove(this.group);
    else if (this.spanBeforeTransaction !== null || this.count !== this.committedCount) registry.write(this.group, this.currentSpan, this.count);
  }

  private committed(): void {
    this.history.committed();
    if (this.dropping) this.host.registry.forget(this.group);
    else if (this.spanBeforeTransaction !== null) this.host.registry.remember(this.group, this.currentSpan);
    for (const { group, span } of this.splitChildren) this.host.registry.remember(group, span);
    this.splitChildren = [];
    this.countBeforeCut = null;
    this.committedCount = this.count;
    this.spanBeforeTransaction = null;
  }

  private rolledBack(): void {
    this.history.rolledBack();
    if (this.spanBeforeTransaction !== null) {
      this.currentSpan = this.spanBeforeTransaction;
      this.bounds = spanBounds(this.currentSpan);
    }
    this.count = this.committedCount;
    this.spanBeforeTransaction = null;
    this.splitChildren = [];
    this.countBeforeCut = null;
    this.dropping = false;
  }

  /** Removes everything of the group and its registry entry, in one transaction, and closes the backend: see `LmdbKvEnvironment.dropGroup`. */
  dropStored(): void {
    this.transaction(() => {
      this.clear();
      this.dropping = true;
    });
    this.detach();
  }

  /** The environment closed, or dropped the group: the backend can no longer be used. */
  detach(): void {
    this.closed = true;
  }

  /** Makes every committed transaction of the environment durable (kv-lmdb.ts, "Durability"). */
  flush(): void {
    this.assertOpen();
    this.host.flush();
  }

  /**
   * Closes the backend; for a backend from `open`, flushes and closes the environment and
   * marks the database clean, so the next open trusts it. Other backends of an environment
   * are closed with it (`LmdbKvEnvironment.close`).
   */
  async close(): Promise<void> {
    if (this.ownsEnvironment) await this.host.close();
    else if (!this.closed) this.host.release(this.group, this);
    this.closed = true;
  }

  /** For a backend from `open`, closes and deletes the database and its marker; for another, drops the group (`LmdbKvEnvironment.dropGroup`). */
  async destroy(): Promise<void> {
    if (this.ownsEnvironment) await this.host.destroy();
    else if (!this.closed) this.host.dropGroup(this.group);
    this.closed = true;
  }

  private assertOpen(): void {
    assert(!this.closed && !this.host.isClosed, `group ${this.group}'s KV store is closed`);
  }

  private assertWriting(): void {
    assert(this.inTransaction, "a KV store write outside a transaction");
  }

  /** Whether `key` is in the group's span. */
  private inSpan(key: string): boolean {
    if (this.bounds.whole) return true;
    const stored = recordKey(key);
    return Buffer.compare(stored, this.bounds.from) >= 0 && Buffer.compare(stored, this.bounds.to) < 0;
  }

  /** A record of another group's span is a programming error: the caller routes keys to their group. */
  private assertInSpan(stored: Buffer, key: string): void {
    if (this.bounds.whole) return;
    assert(Buffer.compare(stored, this.bounds.from) >= 0 && Buffer.compare(stored, this.bounds.to) < 0, `the key ${JSON.stringify(key.slice(0, 64))} is outside group ${this.group}'s span ${describeSpan(this.currentSpan)}`);
  }

  /** Runs a history operation, naming this store in what its stored bytes are found to lack. */
  private guarded<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      if (error instanceof HistoryCorruption) throw new KvStorageCorruptionError(this.path, `its history: ${error.message}`);
      if (error instanceof LeaseCorruption) throw new KvStorageCorruptionError(this.path, `its leases: ${error.message}`);
      throw error;
    }
  }

  private sessionKey(clientId: number): Buffer {
    assertIndex(clientId, "client id");
    const at = this.prefix.length;
    const stored = Buffer.allocUnsafe(at + 9);
    this.prefix.copy(stored, 0);
    stored[at] = SESSION_PREFIX;
    stored.writeDoubleBE(clientId, at + 1);
    return stored;
  }
}

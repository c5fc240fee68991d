/**
 * The KV state machine's store on disk: a `KvBackend` over LMDB (the `lmdb` package), so
 * the state can exceed memory and a restarted node resumes at the applied index it left,
 * replaying only the log after it.
 *
 * Layout: LMDB's main database, with binary keys each starting with a byte that says what
 * it is, a named database for the history (kv-lmdb-history.ts) and one for leases
 * (kv-lmdb-leases.ts); snapshots are built from a read transaction a step at a time by
 * kv-lmdb-snapshot.ts. The main database:
 *
 *   0x00                      meta     u8 format (3) | f64 appliedIndex | f64 revision | f64 clockMs
 *                                      | f64 compactRevision | f64 purged revision | u32 length | purged key
 *   0x01 | UTF-8 key          record   f64 createRevision | f64 modRevision | f64 version | value
 *   0x02 | f64 clientId       session  f64 sequence | session result (src/core/kv/snapshot.ts)
 *   0x00 0x61                 auth     the auth state (src/core/kv/auth.ts), once ever changed
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
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, rmSync } from "node:fs";
import { join } from "node:path";
import { open, type RootDatabase } from "lmdb";
import { assert, assertIndex } from "../../core/common/assert.js";
import { ByteReader, ByteWriter } from "../../core/common/bytes.js";
import { InvalidInputError, SynodError } from "../../core/common/errors.js";
import { limits } from "../../core/common/limits.js";
import type { KvBackend, KvHistoryKeysQuery, KvRangeQuery } from "../../core/kv/backend.js";
import { isRetained } from "../../core/kv/history.js";
import type { HistoryPosition, KvChange, KvLease, KvMeta, KvRecord, KvSession } from "../../core/kv/model.js";
import { readSessionResult, sessionValueBytes, writeSessionValue, type SnapshotLease } from "../../core/kv/snapshot.js";
import { startHistory } from "../../core/kv/store.js";
import { removeLeftoverTempFiles } from "./atomic-file.js";
import { HistoryCorruption, LmdbHistory, type LmdbDatabase } from "./kv-lmdb-history.js";
import { LeaseCorruption, LmdbLeases } from "./kv-lmdb-leases.js";
import { distrust, readBootId, readMarker, removeMarker, UNKNOWN_BOOT_ID, writeMarker } from "./kv-lmdb-marker.js";
import { LmdbSnapshotBuilder, type SnapshotHistoryView } from "./kv-lmdb-snapshot.js";

// Importable from here as before they had files of their own: what `beginSnapshot` returns,
// and the boot id the marker records.
export { LmdbSnapshotBuilder, readBootId, UNKNOWN_BOOT_ID };

const META_KEY = Buffer.from([0x00]);
/** The auth state (src/core/kv/auth.ts), when it was ever written: after the meta, before the records. */
const AUTH_KEY = Buffer.from([0x00, 0x61]);
const RECORD_PREFIX = 0x01;
const SESSION_PREFIX = 0x02;
/** Main-database keys from here up are LMDB's own: the names of the named databases. */
const NAMED_DATABASES_FROM = 0x03;
const HISTORY_DATABASE = "history";
const LEASES_DATABASE = "leases";
/** Format 3 adds the history (its compaction point and purge position); 2 the store's clock. */
const META_FORMAT = 3;
/** Main-database keys removed at a time by `clear` (LMDB's drop would take the named databases too). */
const CLEAR_BATCH_KEYS = 10_000;
/** A stored record's numbers before its value: f64 createRevision | f64 modRevision | f64 version. */
export const RECORD_HEADER_BYTES = 24;
const RECORD_KEY_BYTES_MAX = 1 + limits.keyBytesMax;
const DATA_FILE = "data.mdb";
const LOCK_FILE = "lock.mdb";

/** The store on disk holds something a correct store could not have written. */
export class KvStorageCorruptionError extends SynodError {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super("storage_corrupt", `the KV store in ${path} is corrupt: ${reason}. Remove the directory to rebuild it from the snapshot and the log.`);
    this.name = "KvStorageCorruptionError";
  }
}

/** The store on disk was written by a later synod, in a format this one does not read. */
export class KvStorageFormatError extends SynodError {
  constructor(
    readonly path: string,
    readonly format: number,
  ) {
    super("storage_format", `the KV store in ${path} is in format ${format}, written by a later synod than this one (which reads formats up to ${META_FORMAT}): run that version of synod, or empty the directory to rebuild it from the cluster`);
    this.name = "KvStorageFormatError";
  }
}

export interface LmdbKvBackendOptions {
  /** A directory (created if missing) for data.mdb, lock.mdb and the marker file. Only this store uses it. */
  readonly path: string;
  /** Where opening reports that it did not trust the database and started afresh. */
  readonly log?: (message: string) => void;
  /** The kernel's boot id; tests inject one to simulate a reboot. Defaults to `readBootId`. */
  readonly bootId?: () => string;
}

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

export class LmdbKvBackend implements KvBackend {
  private inTransaction = false;
  private closed = false;
  private readonly history: LmdbHistory;
  private readonly leases: LmdbLeases;

  private constructor(
    private readonly db: RootDatabase<Buffer, Buffer>,
    historyDb: LmdbDatabase,
    leasesDb: LmdbDatabase,
    readonly path: string,
    private readonly bootId: string,
    /** data.mdb, opened read-only to fsync it. */
    private readonly dataFd: number,
  ) {
    this.history = new LmdbHistory(historyDb);
    this.leases = new LmdbLeases(leasesDb);
  }

  /**
   * Opens (or creates) the store at `options.path`. Throws what LMDB or the file system
   * throws if the directory cannot be used.
   */
  static open(options: LmdbKvBackendOptions): LmdbKvOpened {
    const { path } = options;
    mkdirSync(path, { recursive: true });
    removeLeftoverTempFiles(path);
    const bootId = (options.bootId ?? readBootId)();
    const reason = distrust(readMarker(path), existsSync(join(path, DATA_FILE)), bootId);
    if (reason !== null) {
      options.log?.(`not trusting the KV store in ${path}: ${reason}; starting it empty, to be rebuilt from the snapshot and the log`);
      removeDatabaseFiles(path);
    }
    // Dirty first and durably, so a machine crash from here on is noticed at the next open.
    writeMarker(path, { state: "dirty", bootId });
    const db = open<Buffer, Buffer>({
      path,
      // A directory, even if its name has a dot (lmdb-js would take it for a file name).
      noSubdir: false,
      // Our own byte layouts for keys and values: keys sort by their bytes (UTF-8 order),
      // and nothing is decoded into objects we did not ask for.
      keyEncoding: "binary",
      encoding: "binary",
      // See the module comment: the log is the durable record, `flush()` syncs on demand.
      noSync: true,
      // lmdb-js's object cache would hold values a second time in JS memory, and it cannot
      // undo writes of a transaction that aborts inside another.
      cache: false,
      // Values are the clients' opaque bytes; compressing them costs CPU on every apply.
      compression: false,
      // Left at their defaults: no write map (a stray pointer cannot scribble on the
      // database, and pages are written with pwrite, which `flush()`'s fsync covers), and a
      // map that lmdb-js grows as the data does.
    });
    const historyDb = db.openDB<Buffer, Buffer>({ name: HISTORY_DATABASE, keyEncoding: "binary", encoding: "binary", cache: false, compression: false });
    const leasesDb = db.openDB<Buffer, Buffer>({ name: LEASES_DATABASE, keyEncoding: "binary", encoding: "binary", cache: false, compression: false });
    const dataFd = openSync(join(path, DATA_FILE), "r");
    const backend = new LmdbKvBackend(db, historyDb, leasesDb, path, bootId, dataFd);
    try {
      backend.migrate(options.log);
    } catch (error) {
      void backend.close();
      throw error;
    }
    return { backend, trusted: reason === null, reason };
  }

  /**
   * A store of format 1 or 2 has no history: it starts now, at the store's revision (see
   * `startHistory`), in one transaction, after which the meta is format 3. The compaction
   * point is that revision, which is this node's own until a compaction moves every node's
   * past it (nodes upgraded at different revisions start their history at different ones).
   */
  private migrate(log: ((message: string) => void) | undefined): void {
    const stored = this.db.getBinaryFast(META_KEY);
    if (stored === undefined || stored[0] === META_FORMAT) return;
    const meta = this.parseMeta(stored);
    this.transaction(() => {
      const compactRevision = startHistory(this, meta.revision);
      this.writeMeta({ ...meta, compactRevision, purged: { revision: compactRevision, afterKey: "" } });
    });
    log?.(`the KV store in ${this.path} had no history (written by an earlier synod): its history starts at revision ${meta.revision}, the compaction point`);
  }

  getRecord(key: string): KvRecord | undefined {
    const stored = recordKey(key);
    // No longer key was ever stored; LMDB would refuse to look it up.
    if (stored.length > RECORD_KEY_BYTES_MAX) return undefined;
    const value = this.db.getBinaryFast(stored);
    return value === undefined ? undefined : this.decodeRecord(key, value);
  }

  putRecord(record: KvRecord): void {
    this.assertWriting();
    const key = recordKey(record.key);
    assert(key.length <= RECORD_KEY_BYTES_MAX, `a key of ${key.length - 1} bytes, over the limit of ${limits.keyBytesMax}`);
    const stored = Buffer.allocUnsafe(RECORD_HEADER_BYTES + record.value.length);
    stored.writeDoubleBE(record.createRevision, 0);
    stored.writeDoubleBE(record.modRevision, 8);
    stored.writeDoubleBE(record.version, 16);
    stored.set(record.value, RECORD_HEADER_BYTES);
    this.db.putSync(key, stored);
  }

  deleteRecord(key: string): void {
    this.assertWriting();
    const stored = recordKey(key);
    if (stored.length <= RECORD_KEY_BYTES_MAX) this.db.removeSync(stored);
  }

  rangeRecords(query: KvRangeQuery): KvRecord[] {
    assertIndex(query.limit, "range limit");
    const prefix = recordKey(query.prefix);
    if (prefix.length > RECORD_KEY_BYTES_MAX) return [];
    const end = successor(prefix);
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
    if (query.limit === 0 || Buffer.compare(start, end) >= 0) return [];
    const records: KvRecord[] = [];
    for (const { key, value } of this.db.getRange({ start, end, exclusiveStart, limit: query.limit })) {
      records.push(this.decodeRecord(key.toString("utf8", 1), value));
    }
    return records;
  }

  allRecords(): Iterable<KvRecord> {
    return this.db.getRange({ start: Buffer.from([RECORD_PREFIX]), end: Buffer.from([RECORD_PREFIX + 1]) }).map(({ key, value }) => this.decodeRecord(key.toString("utf8", 1), value));
  }

  /**
   * LMDB's count of every entry (kept in its tree, so O(1)) less the sessions (at most
   * `SESSION_LIMITS.sessionsMax`, counted) and the meta record.
   */
  recordCount(): number {
    const entries = (this.db.getStats() as { entryCount: number }).entryCount;
    const sessions = this.db.getKeysCount({ start: Buffer.from([SESSION_PREFIX]), end: Buffer.from([SESSION_PREFIX + 1]) });
    const meta = (this.db.getBinaryFast(META_KEY) === undefined ? 0 : 1) + (this.db.getBinaryFast(AUTH_KEY) === undefined ? 0 : 1);
    const named = this.db.getKeysCount({ start: Buffer.from([NAMED_DATABASES_FROM]) });
    const records = entries - sessions - meta - named;
    assert(Number.isSafeInteger(records) && records >= 0, `LMDB counts ${entries} entries, ${sessions} sessions, ${meta} meta and ${named} named databases`);
    return records;
  }

  /** The size of the database file (data.mdb) on disk, in bytes. */
  sizeBytes(): number {
    return this.closed ? 0 : fstatSync(this.dataFd).size;
  }

  getSession(clientId: number): KvSession | undefined {
    const stored = this.db.getBinaryFast(sessionKey(clientId));
    return stored === undefined ? undefined : this.decodeSession(clientId, stored);
  }

  putSession(session: KvSession): void {
    this.assertWriting();
    const writer = new ByteWriter(sessionValueBytes(session));
    writeSessionValue(writer, session);
    this.db.putSync(sessionKey(session.clientId), Buffer.from(writer.finish("KV session").buffer));
  }

  deleteSession(clientId: number): void {
    this.assertWriting();
    this.db.removeSync(sessionKey(clientId));
  }

  allSessions(): Iterable<KvSession> {
    return this.db.getRange({ start: Buffer.from([SESSION_PREFIX]), end: Buffer.from([SESSION_PREFIX + 1]) }).map(({ key, value }) => {
      if (key.length !== 9) throw new KvStorageCorruptionError(this.path, "a session key has the wrong length");
      return this.decodeSession(key.readDoubleBE(1), value);
    });
  }

  readMeta(): KvMeta {
    return this.parseMeta(this.db.getBinaryFast(META_KEY));
  }

  private parseMeta(stored: Buffer | undefined): KvMeta {
    if (stored === undefined) return { appliedIndex: 0, revision: 0, clockMs: 0, compactRevision: 0, purged: { revision: 0, afterKey: "" } };
    if (stored.length >= 1 && (stored[0] as number) > META_FORMAT) throw new KvStorageFormatError(this.path, stored[0] as number);
    const known = (stored.length === 17 && stored[0] === 1) || (stored.length === 25 && stored[0] === 2) || (stored.length >= 45 && stored[0] === META_FORMAT);
    if (!known) throw new KvStorageCorruptionError(this.path, "the meta record has an unknown format");
    const meta = { appliedIndex: stored.readDoubleBE(1), revision: stored.readDoubleBE(9), clockMs: stored.length >= 25 ? stored.readDoubleBE(17) : 0 };
    if (!isCount(meta.appliedIndex) || !isCount(meta.revision) || !isCount(meta.clockMs)) throw new KvStorageCorruptionError(this.path, "the meta record holds a bad number");
    if (stored[0] !== META_FORMAT) return meta;
    const compactRevision = stored.readDoubleBE(25);
    const purgedRevision = stored.readDoubleBE(33);
    const keyLength = stored.readUInt32BE(41);
    if (!isCount(compactRevision) || !isCount(purgedRevision) || compactRevision > meta.revision || stored.length !== 45 + keyLength) {
      throw new KvStorageCorruptionError(this.path, "the meta record's history fields are bad");
    }
    return { ...meta, compactRevision, purged: { revision: purgedRevision, afterKey: stored.toString("utf8", 45) } };
  }

  /**
   * Starts a snapshot of the state as it is now, built a piece at a time (`step`) while
   * applies go on: an LMDB read transaction keeps this moment's pages. The bytes are those
   * `KvStore.snapshot()` gives for the same state (the same format, the same order), copied
   * from the stored records without decoding them, so a large state costs the node a few
   * milliseconds per step instead of one long stall. `abort()` or the last `step` ends the
   * read transaction; the caller must not leave one running (it pins old pages).
   */
  beginSnapshot(): LmdbSnapshotBuilder {
    assert(!this.inTransaction, "a snapshot begins between transactions");
    const transaction = this.db.useReadTransaction();
    try {
      const meta = this.parseMeta(this.db.get(META_KEY, { transaction }));
      const records = this.db.getRange({ start: Buffer.from([RECORD_PREFIX]), end: Buffer.from([RECORD_PREFIX + 1]), transaction })[Symbol.iterator]();
      const sessions = this.db.getRange({ start: Buffer.from([SESSION_PREFIX]), end: Buffer.from([SESSION_PREFIX + 1]), transaction });
      const changes = this.history.rawAfter({ revision: 0, afterKey: "" }, Number.MAX_SAFE_INTEGER, transaction)[Symbol.iterator]();
      const view: SnapshotHistoryView = {
        changes,
        // What the state machine's own snapshot keeps (history.ts), read in the snapshot's transaction.
        retained: (change) => this.guarded(() => isRetained({ changeAfter: (key, revision) => this.history.after(key, revision, transaction) }, change, meta.compactRevision ?? 0)),
        modRevision: (key) => {
          const stored = this.db.get(recordKey(key), { transaction });
          return stored === undefined || stored.length < RECORD_HEADER_BYTES ? undefined : stored.readDoubleBE(8);
        },
      };
      const leases = (): SnapshotLease[] => this.guarded(() => [...this.leases.all(transaction)].map((lease) => ({ lease, keys: this.leases.keys(lease.id, Number.MAX_SAFE_INTEGER, undefined, transaction) })));
      const auth = this.db.get(AUTH_KEY, { transaction });
      return new LmdbSnapshotBuilder(this.path, meta, records, sessions, view, () => transaction.done(), leases, auth === undefined ? undefined : Uint8Array.from(auth));
    } catch (error) {
      transaction.done();
      throw error;
    }
  }

  writeMeta(meta: KvMeta): void {
    this.assertWriting();
    const purgedKey = meta.purged?.afterKey ?? "";
    const keyLength = Buffer.byteLength(purgedKey, "utf8");
    const stored = Buffer.alloc(45 + keyLength);
    stored[0] = META_FORMAT;
    stored.writeDoubleBE(meta.appliedIndex, 1);
    stored.writeDoubleBE(meta.revision, 9);
    stored.writeDoubleBE(meta.clockMs ?? 0, 17);
    stored.writeDoubleBE(meta.compactRevision ?? 0, 25);
    stored.writeDoubleBE(meta.purged?.revision ?? 0, 33);
    stored.writeUInt32BE(keyLength, 41);
    stored.write(purgedKey, 45, "utf8");
    this.db.putSync(META_KEY, stored);
  }

  readAuth(): Uint8Array | undefined {
    // get, not getBinaryFast: that one's buffer is lmdb-js's own, reused by the next read.
    const stored = this.db.get(AUTH_KEY);
    return stored === undefined ? undefined : new Uint8Array(stored);
  }

  writeAuth(state: Uint8Array): void {
    this.assertWriting();
    this.db.putSync(AUTH_KEY, Buffer.from(state));
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

  clear(): void {
    this.assertWriting();
    this.leases.clear();
    // Not lmdb-js's clearSync on the main database: LMDB would drop the named databases'
    // entries with it. Keys are removed a batch at a time; an abort brings everything back.
    for (;;) {
      const keys = [...this.db.getKeys({ start: META_KEY, end: Buffer.from([NAMED_DATABASES_FROM]), limit: CLEAR_BATCH_KEYS })];
      for (const key of keys) this.db.removeSync(key);
      if (keys.length < CLEAR_BATCH_KEYS) break;
    }
    this.history.clear();
  }

  /**
   * One LMDB write transaction (`transactionSync`): committed when `fn` returns, aborted
   * when it throws. Reads inside see its writes.
   */
  transaction<T>(fn: () => T): T {
    assert(!this.closed, "a transaction on a closed KV store");
    assert(!this.inTransaction, "a transaction inside a transaction");
    this.inTransaction = true;
    try {
      const result = this.db.transactionSync(fn);
      this.history.committed();
      return result;
    } catch (error) {
      this.history.rolledBack();
      throw error;
    } finally {
      this.inTransaction = false;
    }
  }

  /** Makes every committed transaction durable: fsyncs data.mdb (see the module comment). */
  flush(): void {
    assert(!this.closed, "flush of a closed KV store");
    fsyncSync(this.dataFd);
  }

  /** Flushes, closes LMDB, and marks the database clean, so the next open trusts it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    await this.db.close();
    closeSync(this.dataFd);
    writeMarker(this.path, { state: "clean", bootId: this.bootId });
  }

  /** Closes and deletes the database and its marker, e.g. to rebuild it from scratch. */
  async destroy(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.db.close();
      closeSync(this.dataFd);
    }
    removeDatabaseFiles(this.path);
    removeMarker(this.path);
  }

  private assertWriting(): void {
    assert(this.inTransaction, "a KV store write outside a transaction");
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

  private decodeRecord(key: string, stored: Uint8Array): KvRecord {
    if (stored.length < RECORD_HEADER_BYTES) throw new KvStorageCorruptionError(this.path, `the record of ${JSON.stringify(key)} is truncated`);
    const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
    const createRevision = view.getFloat64(0);
    const modRevision = view.getFloat64(8);
    const version = view.getFloat64(16);
    if (!isCount(createRevision) || !isCount(modRevision) || !isCount(version)) throw new KvStorageCorruptionError(this.path, `the record of ${JSON.stringify(key)} holds a bad number`);
    // A copy: lmdb-js reuses the buffer it read into.
    const value = new Uint8Array(stored.subarray(RECORD_HEADER_BYTES));
    return { key, value, createRevision, modRevision, version };
  }

  private decodeSession(clientId: number, stored: Uint8Array): KvSession {
    return decodeStoredSession(this.path, clientId, stored);
  }

}

/** A stored session value: f64 sequence | result | f64 lastActiveMs (without the last, if stored before sessions expired). */
export function decodeStoredSession(path: string, clientId: number, stored: Uint8Array): KvSession {
  try {
    const reader = new ByteReader(stored, "KV session");
    const sequence = reader.safeInteger();
    const result = readSessionResult(reader);
    const session: KvSession = reader.atEnd ? { clientId, sequence, result } : { clientId, sequence, result, lastActiveMs: reader.safeInteger() };
    reader.expectEnd();
    return session;
  } catch (error) {
    if (error instanceof InvalidInputError) throw new KvStorageCorruptionError(path, `the session of client ${clientId}: ${error.message}`);
    throw error;
  }
}

/** A record's LMDB key: the prefix byte and the key's UTF-8 (of any length: callers check). */
function recordKey(key: string): Buffer {
  const length = Buffer.byteLength(key, "utf8");
  const stored = Buffer.allocUnsafe(1 + length);
  stored[0] = RECORD_PREFIX;
  stored.write(key, 1, "utf8");
  return stored;
}

function sessionKey(clientId: number): Buffer {
  assertIndex(clientId, "client id");
  const stored = Buffer.allocUnsafe(9);
  stored[0] = SESSION_PREFIX;
  stored.writeDoubleBE(clientId, 1);
  return stored;
}

/** The smallest key greater than every key starting with `prefix`. */
function successor(prefix: Buffer): Buffer {
  let length = prefix.length;
  while (length > 0 && prefix[length - 1] === 0xff) length--;
  assert(length > 0, "a prefix of 0xFF bytes only has no successor");
  const end = Buffer.from(prefix.subarray(0, length));
  end[length - 1] = (end[length - 1] as number) + 1;
  return end;
}

function isCount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

function removeDatabaseFiles(path: string): void {
  for (const name of [DATA_FILE, LOCK_FILE]) rmSync(join(path, name), { force: true });
}

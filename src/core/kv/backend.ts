import { assert, assertIndex } from "../common/assert.js";
import { compareUtf8 } from "../common/utf8.js";
import type { KvMeta, KvRecord, KvSession } from "./model.js";

/** Which records a range read returns. */
export interface KvRangeQuery {
  /** Keys starting with this (in UTF-8 bytes); "" for every key. */
  readonly prefix: string;
  /** At most this many records; a safe non-negative integer. */
  readonly limit: number;
  /** Only keys after this one (exclusive), to continue a range page by page. */
  readonly after?: string;
}

/**
 * Where the KV state machine keeps its state: records, client sessions and the meta (applied
 * index, revision). Synchronous, because the state machine is. Implementations: the memory
 * one below (the simulator's and the default) and LMDB (`src/runtime/storage/kv-lmdb.ts`);
 * both pass one conformance suite and give byte-identical snapshots.
 *
 * - Keys are well-formed strings (no lone surrogates: `toWellFormed`), ordered as their
 *   UTF-8 encodings compare byte by byte (`compareUtf8`), in ranges and in iteration.
 * - Writes (put, delete, meta, clear) are allowed only inside `transaction`; calling one
 *   outside is a programming error (an assertion).
 * - Records, sessions and their byte arrays handed in become the backend's, and those handed
 *   out are the caller's to read but not to change.
 */
export interface KvBackend {
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
  getSession(clientId: number): KvSession | undefined;
  putSession(session: KvSession): void;
  /** Removes the client's session, if there is one. */
  deleteSession(clientId: number): void;
  /** Every session, by increasing client id (for snapshots). */
  allSessions(): Iterable<KvSession>;
  /** The meta last written; zeros for an empty backend. */
  readMeta(): KvMeta;
  writeMeta(meta: KvMeta): void;
  /** Removes every record and session and zeroes the meta. */
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
 * commands through it.
 */
export class MemoryKvBackend implements KvBackend {
  private readonly records = new Map<string, KvRecord>();
  private readonly sessions = new Map<number, KvSession>();
  private meta: KvMeta = { appliedIndex: 0, revision: 0 };
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
  private undoMeta: KvMeta = this.meta;

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

  clear(): void {
    for (const key of this.records.keys()) this.rememberRecord(key);
    for (const clientId of this.sessions.keys()) this.rememberSession(clientId);
    this.records.clear();
    this.sessions.clear();
    this.writeMeta({ appliedIndex: 0, revision: 0, clockMs: 0 });
  }

  transaction<T>(fn: () => T): T {
    assert(!this.inTransaction, "a transaction inside a transaction");
    this.inTransaction = true;
    this.undoMeta = this.meta;
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

  /** Empties the undo log, dropping its references so replaced records can be collected. */
  private forgetUndo(): void {
    if (this.undoRecordCount > UNDO_ENTRIES_KEPT || this.undoSessionCount > UNDO_ENTRIES_KEPT) {
      this.undoKeys.length = this.undoRecords.length = this.undoClients.length = this.undoSessions.length = 0;
    } else {
      for (let i = 0; i < this.undoRecordCount; i++) this.undoRecords[i] = undefined;
      for (let i = 0; i < this.undoSessionCount; i++) this.undoSessions[i] = undefined;
    }
    this.undoRecordCount = this.undoSessionCount = 0;
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
    this.meta = this.undoMeta;
  }
}

/** Undo arrays up to this long are kept for the next transaction; longer ones are released. */
const UNDO_ENTRIES_KEPT = 256;

function byKey(a: KvRecord, b: KvRecord): number {
  return compareUtf8(a.key, b.key);
}

/**
 * The LMDB backend's history (MVCC): the changes `KvStore` records, in their own named
 * database ("history") of the same LMDB environment, so a change commits in the same
 * transaction as the record it made. Memory stays bounded whatever the history's size: it
 * is all on disk, read a page at a time.
 *
 * Layout (keys binary, numbers big-endian float64, which sort as the numbers do):
 *
 *   0x01 | f64 revision | UTF-8 key   change   u8 kind (0 delete, 1 put) | put: f64 createRevision | f64 version | value
 *   0x02 | UTF-8 key                  key id   f64 id: a number standing for the key in the index
 *   0x03 | f64 key id | f64 revision  index    (empty): the key's changes in revision order
 *
 * The changes sort in (revision, key) order, a watch's. Reading a key at a revision needs
 * them in (key, revision) order too: that is the index. It names keys by a number rather
 * than their bytes because a key may be 1,024 bytes of any value, zero bytes included, and
 * a variable-length key followed by a revision sorts right only if the key is escaped, which
 * could push the LMDB key past its 1,978-byte limit. An id is given to a key at its first
 * change and taken back when its last change is purged; ids are this node's own (snapshots
 * carry keys, not ids), counted up from the largest in the index at open.
 *
 * Groups other than 0 sharing the environment (kv-lmdb-env.ts) keep their history in the
 * same database, every key above preceded by the group's prefix (0x10 | u32 group id);
 * group 0's keys have none, as before there were groups, and sort below every prefix.
 */
import type { Database, Transaction } from "lmdb";
import { assertIndex } from "../../core/common/assert.js";
import { emptyMap, writable } from "../../core/common/empty.js";
import { limits } from "../../core/common/limits.js";
import type { KvHistoryKeysQuery } from "../../core/kv/backend.js";
import type { HistoryPosition, KvChange, KvRecord } from "../../core/kv/model.js";
import { clearGroupKeys, prefixed, successor, taggedKey } from "./kv-lmdb-group-keys.js";

export type LmdbDatabase = Database<Buffer, Buffer>;

const CHANGE_PREFIX = 0x01;
const KEY_ID_PREFIX = 0x02;
const INDEX_PREFIX = 0x03;
const KEY_ID_KEY_BYTES_MAX = 1 + limits.keyBytesMax;
/** Key ids kept in memory (a few MiB at most: keys are at most 1 KiB, usually far less). */
const KEY_IDS_CACHED = 16_384;
const KIND_DELETE = 0;
const KIND_PUT = 1;
/** kind | createRevision | version. */
export const PUT_HEADER_BYTES = 17;

/** The history's stored bytes hold something a correct store could not have written; the caller wraps it with the path. */
export class HistoryCorruption extends Error {}

/**
 * Reads (in the given read transaction, or the current state) and writes (inside the
 * caller's write transaction) the history database.
 */
export class LmdbHistory {
  private nextKeyId: number;
  /**
   * Recently used key ids, so a write of a key changed before needs no lookup: at most
   * KEY_IDS_CACHED entries (emptied when full). An id given in a transaction that aborts is
   * forgotten with it (`rollback`); one taken back when a key's last change is purged, at once.
   */
  private cachedKeyIds = emptyMap<string, number>();
  private readonly givenInTransaction: string[] = [];

  constructor(
    private readonly history: LmdbDatabase,
    /** What every key of this group's history starts with: empty for group 0. */
    private readonly prefix: Buffer = EMPTY,
  ) {
    const last = [...history.getKeys({ start: prefixed(prefix, [INDEX_PREFIX + 1]), end: prefixed(prefix, [INDEX_PREFIX]), reverse: true, limit: 1 })][0];
    this.nextKeyId = last === undefined ? 1 : checkedNumber(last.readDoubleBE(prefix.length + 1), "a key id") + 1;
  }

  put(change: KvChange): void {
    let keyId = this.cachedKeyIds.get(change.key) ?? this.keyId(change.key);
    if (keyId === undefined) {
      keyId = this.nextKeyId++;
      const id = Buffer.allocUnsafe(8);
      id.writeDoubleBE(keyId, 0);
      this.history.putSync(keyIdKey(this.prefix, change.key), id);
      this.givenInTransaction.push(change.key);
    }
    this.cache(change.key, keyId);
    this.history.putSync(indexKey(this.prefix, keyId, change.revision), EMPTY);
    this.history.putSync(changeKey(change.revision, change.key, this.prefix), changeValue(change.record));
  }

  remove(key: string, revision: number): void {
    const keyId = this.keyId(key);
    if (keyId === undefined) return;
    this.history.removeSync(indexKey(this.prefix, keyId, revision));
    this.history.removeSync(changeKey(revision, key, this.prefix));
    const prefix = indexPrefix(this.prefix, keyId);
    if (this.history.getKeysCount({ start: prefix, end: successor(prefix), limit: 1 }) === 0) {
      this.history.removeSync(keyIdKey(this.prefix, key));
      this.cachedKeyIds.delete(key);
    }
  }

  /** The write transaction committed: the ids it gave stand. */
  committed(): void {
    this.givenInTransaction.length = 0;
  }

  /** The write transaction aborted: the ids it gave (and the removals it made) are undone, so forget what it cached. */
  rolledBack(): void {
    for (const key of this.givenInTransaction) this.cachedKeyIds.delete(key);
    this.givenInTransaction.length = 0;
  }

  private cache(key: string, keyId: number): void {
    if (this.cachedKeyIds.size >= KEY_IDS_CACHED) this.cachedKeyIds.clear();
    this.cachedKeyIds = writable(this.cachedKeyIds);
    this.cachedKeyIds.set(key, keyId);
  }

  atOrBefore(key: string, revision: number, transaction?: Transaction): KvChange | undefined {
    const keyId = this.keyId(key, transaction);
    if (keyId === undefined) return undefined;
    const found = this.firstIndexed({ start: indexKey(this.prefix, keyId, revision), end: indexPrefix(this.prefix, keyId), reverse: true }, transaction);
    return found === undefined ? undefined : this.read(key, found, transaction);
  }

  after(key: string, revision: number, transaction?: Transaction): KvChange | undefined {
    const keyId = this.keyId(key, transaction);
    if (keyId === undefined) return undefined;
    const found = this.firstIndexed({ start: indexKey(this.prefix, keyId, revision), end: successor(indexPrefix(this.prefix, keyId)), exclusiveStart: true }, transaction);
    return found === undefined ? undefined : this.read(key, found, transaction);
  }

  /**
   * Changes after `position` in (revision, key) order, as stored (for the snapshot's copy)
   * or decoded; the keys without the group's prefix (0x01 | f64 revision | UTF-8 key).
   */
  rawAfter(position: HistoryPosition, limit: number, transaction?: Transaction): Iterable<{ key: Buffer; value: Buffer }> {
    assertIndex(limit, "changes limit");
    const exclusiveStart = position.afterKey !== "";
    const start = exclusiveStart ? changeKey(position.revision, position.afterKey, this.prefix) : revisionStart(this.prefix, position.revision);
    const range = this.history.getRange({ start, end: prefixed(this.prefix, [CHANGE_PREFIX + 1]), exclusiveStart, limit, ...(transaction === undefined ? {} : { transaction }) });
    const skip = this.prefix.length;
    return skip === 0 ? range : range.map(({ key, value }) => ({ key: key.subarray(skip), value }));
  }

  changesAfter(position: HistoryPosition, limit: number): KvChange[] {
    const changes: KvChange[] = [];
    for (const { key, value } of this.rawAfter(position, limit)) changes.push(decodeChange(key, value));
    return changes;
  }

  keys(query: KvHistoryKeysQuery): string[] {
    assertIndex(query.limit, "history keys limit");
    const prefix = keyIdKey(this.prefix, query.prefix);
    const end = successor(prefix);
    let start = prefix;
    let exclusiveStart = false;
    if (query.after !== undefined) {
      // Keys are at most KEY_ID_KEY_BYTES_MAX long, so "after A" is "after A's first
      // KEY_ID_KEY_BYTES_MAX bytes": a key equal to those is a prefix of A, so before it.
      const after = keyIdKey(this.prefix, query.after).subarray(0, this.prefix.length + KEY_ID_KEY_BYTES_MAX);
      if (Buffer.compare(after, prefix) >= 0) {
        start = after;
        exclusiveStart = true;
      }
    }
    if (query.limit === 0 || Buffer.compare(start, end) >= 0) return [];
    const keys: string[] = [];
    for (const key of this.history.getKeys({ start, end, exclusiveStart, limit: query.limit })) keys.push(key.toString("utf8", this.prefix.length + 1));
    return keys;
  }

  /** Removes this group's history, and only this group's. */
  clear(): void {
    clearGroupKeys(this.history, this.prefix);
    this.cachedKeyIds = emptyMap();
  }

  private keyId(key: string, transaction?: Transaction): number | undefined {
    const stored = keyIdKey(this.prefix, key);
    if (stored.length > this.prefix.length + KEY_ID_KEY_BYTES_MAX) return undefined;
    const value = transaction === undefined ? this.history.getBinaryFast(stored) : this.history.get(stored, { transaction });
    if (value === undefined) return undefined;
    if (value.length !== 8) throw new HistoryCorruption(`the key id of ${JSON.stringify(key)} has ${value.length} bytes`);
    return checkedNumber(value.readDoubleBE(0), "a key id");
  }

  /** The revision of the first index entry of a range, or undefined if it has none. */
  private firstIndexed(range: { start: Buffer; end: Buffer; reverse?: boolean; exclusiveStart?: boolean }, transaction?: Transaction): number | undefined {
    const found = [...this.history.getKeys({ ...range, limit: 1, ...(transaction === undefined ? {} : { transaction }) })][0];
    if (found === undefined) return undefined;
    if (found.length !== this.prefix.length + 17) throw new HistoryCorruption("an index entry has the wrong length");
    return checkedNumber(found.readDoubleBE(this.prefix.length + 9), "a revision");
  }

  private read(key: string, revision: number, transaction?: Transaction): KvChange {
    const stored = changeKey(revision, key, this.prefix);
    const value = transaction === undefined ? this.history.getBinaryFast(stored) : this.history.get(stored, { transaction });
    if (value === undefined) throw new HistoryCorruption(`the index names a change of ${JSON.stringify(key)} at revision ${revision} that is not there`);
    return decodeChange(stored.subarray(this.prefix.length), value);
  }
}

const EMPTY = Buffer.alloc(0);

export function changeKey(revision: number, key: string, prefix: Buffer = EMPTY): Buffer {
  assertIndex(revision, "a change's revision");
  return taggedKey(prefix, CHANGE_PREFIX, revision, key);
}

function revisionStart(prefix: Buffer, revision: number): Buffer {
  return taggedKey(prefix, CHANGE_PREFIX, revision);
}

function keyIdKey(prefix: Buffer, key: string): Buffer {
  return taggedKey(prefix, KEY_ID_PREFIX, null, key);
}

function indexPrefix(prefix: Buffer, keyId: number): Buffer {
  return taggedKey(prefix, INDEX_PREFIX, keyId);
}

function indexKey(prefix: Buffer, keyId: number, revision: number): Buffer {
  const at = prefix.length;
  const stored = Buffer.allocUnsafe(at + 17);
  prefix.copy(stored, 0);
  stored[at] = INDEX_PREFIX;
  stored.writeDoubleBE(keyId, at + 1);
  stored.writeDoubleBE(revision, at + 9);
  return stored;
}


function changeValue(record: KvRecord | null): Buffer {
  if (record === null) return Buffer.from([KIND_DELETE]);
  const stored = Buffer.allocUnsafe(PUT_HEADER_BYTES + record.value.length);
  stored[0] = KIND_PUT;
  stored.writeDoubleBE(record.createRevision, 1);
  stored.writeDoubleBE(record.version, 9);
  stored.set(record.value, PUT_HEADER_BYTES);
  return stored;
}

/** A stored change: its LMDB key (0x01 | revision | key) and value. */
export function decodeChange(stored: Buffer, value: Uint8Array): KvChange {
  if (stored.length < 10 || stored[0] !== CHANGE_PREFIX) throw new HistoryCorruption("a change's key is malformed");
  const revision = checkedNumber(stored.readDoubleBE(1), "a change's revision");
  const key = stored.toString("utf8", 9);
  if (value[0] === KIND_DELETE && value.length === 1) return { key, revision, record: null };
  if (value[0] !== KIND_PUT || value.length < PUT_HEADER_BYTES) throw new HistoryCorruption(`the change of ${JSON.stringify(key)} at revision ${revision} is malformed`);
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const createRevision = checkedNumber(view.getFloat64(1), "a create revision");
  const version = checkedNumber(view.getFloat64(9), "a version");
  // A copy: lmdb-js reuses the buffer it read into.
  return { key, revision, record: { key, value: new Uint8Array(value.subarray(PUT_HEADER_BYTES)), createRevision, modRevision: revision, version } };
}

/** Whether a stored change value is a delete. */
export function isDeleteValue(value: Uint8Array): boolean {
  return value[0] === KIND_DELETE;
}

function checkedNumber(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new HistoryCorruption(`${what} is not a count`);
  return value;
}

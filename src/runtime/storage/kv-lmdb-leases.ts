/**
 * The LMDB backend's leases: in their own named database ("leases") of the same LMDB
 * environment, so a lease and its attachments commit in the same transaction as the
 * records they concern.
 *
 * Layout (keys binary, numbers big-endian float64, which sort as the numbers do):
 *
 *   0x01 | f64 id              lease        f64 ttlMs | f64 expiresAtMs
 *   0x02 | f64 id | UTF-8 key  lease's key  (empty): the lease's keys in key order
 *   0x03 | UTF-8 key           key's lease  f64 id
 *
 * Keys are at most 1 KiB, so every LMDB key here is within LMDB's 1,978-byte limit.
 *
 * Groups other than 0 sharing the environment (kv-lmdb-env.ts) keep their leases in the
 * same database, every key above preceded by the group's prefix (0x10 | u32 group id).
 */
import type { Database, Transaction } from "lmdb";
import { assert, assertIndex } from "../../core/common/assert.js";
import { limits } from "../../core/common/limits.js";
import type { KvLease } from "../../core/kv/model.js";
import { clearGroupKeys, prefixed, taggedKey } from "./kv-lmdb-group-keys.js";

const LEASE_PREFIX = 0x01;
const LEASE_KEY_PREFIX = 0x02;
const KEY_LEASE_PREFIX = 0x03;
const EMPTY = Buffer.alloc(0);

/** The leases' stored bytes hold something a correct store could not have written; the caller wraps it with the path. */
export class LeaseCorruption extends Error {}

/** Reads (in a read transaction if given) and writes (inside the caller's write transaction) the leases database. */
export class LmdbLeases {
  constructor(
    private readonly db: Database<Buffer, Buffer>,
    /** What every key of this group's leases starts with: empty for group 0. */
    private readonly prefix: Buffer = Buffer.alloc(0),
  ) {}

  get(id: number, transaction?: Transaction): KvLease | undefined {
    const key = leaseKey(this.prefix, id);
    const stored = transaction === undefined ? this.db.getBinaryFast(key) : this.db.get(key, { transaction });
    return stored === undefined ? undefined : decodeLease(id, stored);
  }

  put(lease: KvLease): void {
    const stored = Buffer.allocUnsafe(16);
    stored.writeDoubleBE(lease.ttlMs, 0);
    stored.writeDoubleBE(lease.expiresAtMs, 8);
    this.db.putSync(leaseKey(this.prefix, lease.id), stored);
  }

  remove(id: number): void {
    this.db.removeSync(leaseKey(this.prefix, id));
  }

  all(transaction?: Transaction): Iterable<KvLease> {
    const range = this.db.getRange({ start: prefixed(this.prefix, [LEASE_PREFIX]), end: prefixed(this.prefix, [LEASE_PREFIX + 1]), ...(transaction === undefined ? {} : { transaction }) });
    const at = this.prefix.length;
    return range.map(({ key, value }) => {
      if (key.length !== at + 9) throw new LeaseCorruption("a lease key has the wrong length");
      return decodeLease(key.readDoubleBE(at + 1), value);
    });
  }

  leaseOf(key: string): number | undefined {
    if (Buffer.byteLength(key, "utf8") > limits.keyBytesMax) return undefined;
    const stored = this.db.getBinaryFast(keyLeaseKey(this.prefix, key));
    if (stored === undefined) return undefined;
    if (stored.length !== 8) throw new LeaseCorruption(`the lease of ${JSON.stringify(key)} has ${stored.length} bytes`);
    return checkedId(stored.readDoubleBE(0));
  }

  attach(key: string, id: number): void {
    assert(this.leaseOf(key) === undefined, "a key is attached to one lease at most");
    const stored = Buffer.allocUnsafe(8);
    stored.writeDoubleBE(id, 0);
    this.db.putSync(keyLeaseKey(this.prefix, key), stored);
    this.db.putSync(leaseKeyKey(this.prefix, id, key), EMPTY);
  }

  detach(key: string): void {
    const id = this.leaseOf(key);
    if (id === undefined) return;
    this.db.removeSync(keyLeaseKey(this.prefix, key));
    this.db.removeSync(leaseKeyKey(this.prefix, id, key));
  }

  keys(id: number, limit: number, after?: string, transaction?: Transaction): string[] {
    assertIndex(limit, "lease keys limit");
    if (limit === 0) return [];
    const at = this.prefix.length;
    const prefix = leaseKey(this.prefix, id);
    prefix[at] = LEASE_KEY_PREFIX;
    const end = leaseKey(this.prefix, id + 1);
    end[at] = LEASE_KEY_PREFIX;
    const exclusiveStart = after !== undefined && Buffer.byteLength(after, "utf8") <= limits.keyBytesMax;
    const start = exclusiveStart ? leaseKeyKey(this.prefix, id, after) : prefix;
    const keys: string[] = [];
    for (const key of this.db.getKeys({ start, end, exclusiveStart, limit, ...(transaction === undefined ? {} : { transaction }) })) keys.push(key.toString("utf8", at + 9));
    return keys;
  }

  /** Removes this group's leases and attachments, and only this group's. */
  clear(): void {
    clearGroupKeys(this.db, this.prefix);
  }
}

function leaseKey(prefix: Buffer, id: number): Buffer {
  assertIndex(id, "lease id");
  const at = prefix.length;
  const key = Buffer.allocUnsafe(at + 9);
  prefix.copy(key, 0);
  key[at] = LEASE_PREFIX;
  key.writeDoubleBE(id, at + 1);
  return key;
}

function leaseKeyKey(prefix: Buffer, id: number, key: string): Buffer {
  return taggedKey(prefix, LEASE_KEY_PREFIX, id, key);
}

function keyLeaseKey(prefix: Buffer, key: string): Buffer {
  const at = prefix.length;
  const stored = Buffer.allocUnsafe(at + 1 + Buffer.byteLength(key, "utf8"));
  prefix.copy(stored, 0);
  stored[at] = KEY_LEASE_PREFIX;
  stored.write(key, at + 1, "utf8");
  return stored;
}

function decodeLease(id: number, stored: Uint8Array): KvLease {
  if (stored.length !== 16) throw new LeaseCorruption(`lease ${id} has ${stored.length} bytes`);
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  const ttlMs = view.getFloat64(0);
  const expiresAtMs = view.getFloat64(8);
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || !Number.isSafeInteger(expiresAtMs) || expiresAtMs < 0) throw new LeaseCorruption(`lease ${id} holds a bad number`);
  return { id: checkedId(id), ttlMs, expiresAtMs };
}

function checkedId(id: number): number {
  if (!Number.isSafeInteger(id) || id < 1) throw new LeaseCorruption(`a lease id ${id} is not a positive integer`);
  return id;
}

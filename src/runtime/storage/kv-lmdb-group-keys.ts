/**
 * Where a group's own data sits in the databases of an environment shared by several
 * groups (kv-lmdb-env.ts has the whole layout): group 0's keys are as they were before
 * there were groups, with no prefix; every other group's start with its prefix,
 * `0x10 | u32 group id` (big-endian, so they sort by id), above every key of group 0.
 */
import type { Database } from "lmdb";
import { assert } from "../../core/common/assert.js";
import { assertGroupId, type GroupId } from "../../core/multi/group.js";

/** The first byte of a group's prefix; group 0's own keys all start below it. */
export const GROUP_PREFIX_BYTE = 0x10;
export const GROUP_PREFIX_BYTES = 5;
const EMPTY = Buffer.alloc(0);
/** Keys removed at a time by a range removal (LMDB's drop would take the whole database). */
const REMOVE_BATCH_KEYS = 10_000;

/** What a group's keys start with: nothing for group 0, `0x10 | u32 id` for the others. */
export function groupPrefix(group: GroupId): Buffer {
  assertGroupId(group);
  if (group === 0) return EMPTY;
  const prefix = Buffer.allocUnsafe(GROUP_PREFIX_BYTES);
  prefix[0] = GROUP_PREFIX_BYTE;
  prefix.writeUInt32BE(group, 1);
  return prefix;
}

/**
 * Removes every key in [start, end) (`start` undefined: from the first key), a batch at a
 * time, inside the caller's write transaction; returns how many.
 */
export function removeRange(db: Database<Buffer, Buffer>, start: Buffer | undefined, end: Buffer): number {
  let removed = 0;
  for (;;) {
    const keys = [...db.getKeys({ ...(start === undefined ? {} : { start }), end, limit: REMOVE_BATCH_KEYS })];
    for (const key of keys) db.removeSync(key);
    removed += keys.length;
    if (keys.length < REMOVE_BATCH_KEYS) return removed;
  }
}

/**
 * Removes a group's keys from a database whose keys are all some group's (the history's,
 * the leases'): those under its prefix, or for group 0 those below every prefix. A database
 * that holds group 0's keys alone is emptied at once, as before there were groups.
 */
export function clearGroupKeys(db: Database<Buffer, Buffer>, prefix: Buffer): void {
  if (prefix.length > 0) {
    removeRange(db, prefix, successor(prefix));
    return;
  }
  const others = db.getKeysCount({ start: Buffer.from([GROUP_PREFIX_BYTE]), limit: 1 });
  if (others === 0) db.clearSync();
  else removeRange(db, undefined, Buffer.from([GROUP_PREFIX_BYTE]));
}

/** The smallest key greater than every key starting with `prefix`. */
export function successor(prefix: Buffer): Buffer {
  let length = prefix.length;
  while (length > 0 && prefix[length - 1] === 0xff) length--;
  assert(length > 0, "a prefix of 0xFF bytes only has no successor");
  const end = Buffer.from(prefix.subarray(0, length));
  end[length - 1] = (end[length - 1] as number) + 1;
  return end;
}

/** The prefix followed by `bytes`. */
export function prefixed(prefix: Buffer, bytes: readonly number[]): Buffer {
  return prefix.length === 0 ? Buffer.from(bytes) : Buffer.concat([prefix, Buffer.from(bytes)]);
}

/**
 * `prefix | tag | [f64 number] | [UTF-8 key]`: a key of a group's part of a named database
 * (the history's changes and indexes, the leases' attachments), all big-endian so they sort
 * by number, then key.
 */
export function taggedKey(prefix: Buffer, tag: number, number: number | null, key = ""): Buffer {
  const at = prefix.length;
  const numberBytes = number === null ? 0 : 8;
  const stored = Buffer.allocUnsafe(at + 1 + numberBytes + Buffer.byteLength(key, "utf8"));
  prefix.copy(stored, 0);
  stored[at] = tag;
  if (number !== null) stored.writeDoubleBE(number, at + 1);
  stored.write(key, at + 1 + numberBytes, "utf8");
  return stored;
}

/**
 * The groups of an LMDB environment (kv-lmdb-env.ts): each group's span of the key space,
 * checked so that no two overlap, and the registry that keeps them on disk.
 *
 * Registry layout, in the "groups" database:
 *
 *   0x01 | u32 group id    u8 format (1) | f64 record count | u32 length | span start
 *                          | u8 has end (0 or 1) | span end (the rest)
 *
 * The record count is the group's, kept at each commit, for a group whose span is not the
 * whole key space; a group over the whole key space is the only one with records, and
 * counts them from LMDB's own count of entries, as before there were groups.
 */
import type { Database } from "lmdb";
import { assert } from "../../core/common/assert.js";
import { InvalidInputError, SynodError } from "../../core/common/errors.js";
import { limits } from "../../core/common/limits.js";
import { toWellFormed } from "../../core/common/utf8.js";
import { assertGroupId, type GroupId } from "../../core/multi/group.js";
import { KvStorageCorruptionError } from "./kv-lmdb-errors.js";

/** A span of the key space: the keys from `start` (inclusive) to `end` (exclusive; null: no end), in UTF-8 byte order. */
export interface KvSpan {
  readonly start: string;
  readonly end: string | null;
}

/** Every key: the span of a store that is not sharded. */
export const WHOLE_KEY_SPACE: KvSpan = Object.freeze({ start: "", end: null });

/** A span's bounds as record keys (0x01 | UTF-8), `[from, to)`; `to` is 0x02 for a span with no end. */
export interface SpanBounds {
  readonly from: Buffer;
  readonly to: Buffer;
  /** Whether the span is the whole key space. */
  readonly whole: boolean;
}

/** A group's span overlaps another group's, or is not the one it is stored with. */
export class KvGroupSpanError extends SynodError {
  constructor(message: string) {
    super("storage_group_span", message);
    this.name = "KvGroupSpanError";
  }
}

export const RECORD_PREFIX = 0x01;
const REGISTRY_PREFIX = 0x01;
const REGISTRY_FORMAT = 1;

/** A record's LMDB key: the prefix byte and the key's UTF-8 (of any length: callers check). */
export function recordKey(key: string): Buffer {
  const length = Buffer.byteLength(key, "utf8");
  const stored = Buffer.allocUnsafe(1 + length);
  stored[0] = RECORD_PREFIX;
  stored.write(key, 1, "utf8");
  return stored;
}

/** The span's bounds; InvalidInputError for one that is empty, reversed, not well-formed text or with a bound longer than a key. */
export function spanBounds(span: KvSpan): SpanBounds {
  for (const bound of [span.start, span.end]) {
    if (bound === null) continue;
    if (typeof bound !== "string" || toWellFormed(bound) !== bound) throw new InvalidInputError(`a span's bounds are well-formed strings: ${describeSpan(span)}`);
    if (Buffer.byteLength(bound, "utf8") > limits.keyBytesMax) throw new InvalidInputError(`a span's bound is at most ${limits.keyBytesMax} bytes, as a key is`);
  }
  const from = recordKey(span.start);
  const to = span.end === null ? Buffer.from([RECORD_PREFIX + 1]) : recordKey(span.end);
  if (Buffer.compare(from, to) >= 0) throw new InvalidInputError(`a span ends after it starts: ${describeSpan(span)}`);
  return { from, to, whole: span.start === "" && span.end === null };
}

export function sameSpan(a: KvSpan, b: KvSpan): boolean {
  return a.start === b.start && a.end === b.end;
}

export function describeSpan(span: KvSpan): string {
  return `[${JSON.stringify(span.start)}, ${span.end === null ? "the end" : JSON.stringify(span.end)})`;
}

interface Registered {
  readonly group: GroupId;
  readonly span: KvSpan;
  readonly bounds: SpanBounds;
}

/**
 * The spans of the environment's groups, as committed: in memory, sorted by start so that an
 * overlap is found by looking at two neighbours (a node may host 10,000 groups), and on
 * disk. `write` and `remove` change the disk inside the caller's write transaction;
 * `remember` and `forget` the memory once it committed.
 */
export class GroupRegistry {
  private readonly byGroup = new Map<GroupId, Registered>();
  /** By `bounds.from`; spans never overlap, so by `bounds.to` too. */
  private readonly sorted: Registered[] = [];

  constructor(
    private readonly db: Database<Buffer, Buffer>,
    private readonly path: string,
  ) {
    for (const { key, value } of db.getRange({ start: Buffer.from([REGISTRY_PREFIX]), end: Buffer.from([REGISTRY_PREFIX + 1]) })) {
      if (key.length !== 5) throw new KvStorageCorruptionError(path, "a group registry key has the wrong length");
      const group = key.readUInt32BE(1);
      const span = this.decode(group, value).span;
      const bounds = this.checked(group, span);
      if (this.overlapping(group, bounds) !== undefined) throw new KvStorageCorruptionError(path, `group ${group}'s span ${describeSpan(span)} overlaps another group's`);
      this.remember(group, span);
    }
  }

  spanOf(group: GroupId): KvSpan | undefined {
    return this.byGroup.get(group)?.span;
  }

  /** Every group, by increasing id. */
  list(): { readonly group: GroupId; readonly span: KvSpan }[] {
    return [...this.byGroup.values()].sort((a, b) => a.group - b.group).map(({ group, span }) => ({ group, span }));
  }

  get size(): number {
    return this.byGroup.size;
  }

  /** A group other than `group` whose span overlaps `bounds`, if there is one. */
  overlapping(group: GroupId, bounds: SpanBounds): GroupId | undefined {
    const at = this.firstStartingAtOrAfter(bounds.from);
    for (const neighbour of [this.sorted[at - 1], this.sorted[at], this.sorted[at + 1]]) {
      if (neighbour === undefined || neighbour.group === group) continue;
      if (Buffer.compare(neighbour.bounds.from, bounds.to) < 0 && Buffer.compare(bounds.from, neighbour.bounds.to) < 0) return neighbour.group;
    }
    return undefined;
  }

  /** The stored record count of the group (0 for a group over the whole key space, which counts otherwise). */
  storedCount(group: GroupId): number {
    const stored = this.db.getBinaryFast(registryKey(group));
    return stored === undefined ? 0 : this.decode(group, stored).count;
  }

  /** Stores the group's span and record count (inside a write transaction). */
  write(group: GroupId, span: KvSpan, count: number): void {
    assert(Number.isSafeInteger(count) && count >= 0, `a record count is a count, got ${count}`);
    const start = Buffer.from(span.start, "utf8");
    const end = Buffer.from(span.end ?? "", "utf8");
    const stored = Buffer.allocUnsafe(1 + 8 + 4 + start.length + 1 + end.length);
    stored[0] = REGISTRY_FORMAT;
    stored.writeDoubleBE(count, 1);
    stored.writeUInt32BE(start.length, 9);
    start.copy(stored, 13);
    stored[13 + start.length] = span.end === null ? 0 : 1;
    end.copy(stored, 14 + start.length);
    this.db.putSync(registryKey(group), stored);
  }

  /** Removes the group's entry (inside a write transaction). */
  remove(group: GroupId): void {
    this.db.removeSync(registryKey(group));
  }

  /** The group's span, committed. */
  remember(group: GroupId, span: KvSpan): void {
    this.forget(group);
    const entry = { group, span, bounds: spanBounds(span) };
    this.byGroup.set(group, entry);
    this.sorted.splice(this.firstStartingAtOrAfter(entry.bounds.from), 0, entry);
  }

  /** The group's removal, committed. */
  forget(group: GroupId): void {
    const entry = this.byGroup.get(group);
    if (entry === undefined) return;
    this.byGroup.delete(group);
    const at = this.sorted.indexOf(entry, Math.max(0, this.firstStartingAtOrAfter(entry.bounds.from)));
    assert(at >= 0, "a registered group is in the sorted list");
    this.sorted.splice(at, 1);
  }

  private firstStartingAtOrAfter(from: Buffer): number {
    let low = 0;
    let high = this.sorted.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (Buffer.compare((this.sorted[middle] as Registered).bounds.from, from) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private decode(group: GroupId, stored: Buffer): { span: KvSpan; count: number } {
    const corrupt = (): KvStorageCorruptionError => new KvStorageCorruptionError(this.path, `group ${group}'s registry entry is malformed`);
    if (stored.length < 14 || stored[0] !== REGISTRY_FORMAT) throw corrupt();
    const count = stored.readDoubleBE(1);
    const startLength = stored.readUInt32BE(9);
    if (!Number.isSafeInteger(count) || count < 0 || stored.length < 14 + startLength) throw corrupt();
    const hasEnd = stored[13 + startLength];
    if (hasEnd !== 0 && hasEnd !== 1) throw corrupt();
    const start = stored.toString("utf8", 13, 13 + startLength);
    const end = hasEnd === 1 ? stored.toString("utf8", 14 + startLength) : null;
    if (hasEnd === 0 && stored.length !== 14 + startLength) throw corrupt();
    return { span: { start, end }, count };
  }

  private checked(group: GroupId, span: KvSpan): SpanBounds {
    try {
      assertGroupId(group);
      return spanBounds(span);
    } catch (error) {
      throw new KvStorageCorruptionError(this.path, `group ${group}'s registered span is not a span: ${(error as Error).message}`);
    }
  }
}

function registryKey(group: GroupId): Buffer {
  assertGroupId(group);
  const key = Buffer.allocUnsafe(5);
  key[0] = REGISTRY_PREFIX;
  key.writeUInt32BE(group, 1);
  return key;
}

/**
 * Ranges: the key space cut into `[start, end)` spans, each owned by one consensus group
 * (docs/sharding.md). A `RangeTable` is one consistent view of every range's descriptor:
 * the spans cover the whole key space once, in UTF-8 byte order (the order keys are stored
 * and listed in), so each key has exactly one owner. Nodes route requests with it, and a
 * replica checks each request against its own descriptor when it applies.
 *
 * The epoch of a descriptor moves on every change of the range (a split, a change of
 * members): a request routed with an older epoch is refused with the current descriptor,
 * never answered from a range that no longer owns its key.
 */
import { assert } from "../common/assert.js";
import { compareUtf8 } from "../common/utf8.js";
import { assertGroupId, type GroupId } from "./group.js";

export interface RangeDescriptor {
  /** The range's consensus group (group 0 is the first range, and the meta group). */
  readonly id: GroupId;
  /** The first key of the range (inclusive); "" for the first range. */
  readonly start: string;
  /** The first key after the range (exclusive); null for the last range (no end). */
  readonly end: string | null;
  /** Moves on every split or change of members of this range; starts at 1. */
  readonly epoch: number;
}

/** The most ranges `RangeTable.presplit` makes: what a cluster may start with (issue 16's 10,000). */
export const PRESPLIT_RANGES_MAX = 10_000;

/** The characters presplit boundaries are made of: '0' to 'z' (digits, capitals, lower case, and a few signs between). */
const BOUNDARY_FIRST = 0x30;
const BOUNDARY_RADIX = 0x7b - 0x30;

/** Whether `key` is in the span `[start, end)`. */
export function spanHolds(span: { readonly start: string; readonly end: string | null }, key: string): boolean {
  return compareUtf8(key, span.start) >= 0 && (span.end === null || compareUtf8(key, span.end) < 0);
}

/** Whether every key that starts with `prefix` is in the span `[start, end)`. */
export function spanHoldsPrefix(span: { readonly start: string; readonly end: string | null }, prefix: string): boolean {
  if (!spanHolds(span, prefix)) return false;
  if (span.end === null) return true;
  const end = prefixEnd(prefix);
  return end !== null && compareUtf8(end, span.end) <= 0;
}

export class RangeTable {
  private readonly ranges: readonly RangeDescriptor[];
  private readonly byId = new Map<GroupId, RangeDescriptor>();

  /** Descriptors in any order; they must cover the key space exactly once. */
  constructor(descriptors: readonly RangeDescriptor[]) {
    assert(descriptors.length > 0, "a range table has at least one range");
    const sorted = [...descriptors].sort((a, b) => compareUtf8(a.start, b.start));
    assert(sorted[0]?.start === "", "the first range starts at the empty key");
    for (let i = 0; i < sorted.length; i++) {
      const range = sorted[i] as RangeDescriptor;
      assertGroupId(range.id, "a range's id");
      assert(Number.isSafeInteger(range.epoch) && range.epoch >= 1, `range ${range.id}'s epoch must be a positive integer, got ${range.epoch}`);
      assert(!this.byId.has(range.id), `two ranges have the id ${range.id}`);
      this.byId.set(range.id, range);
      const next = sorted[i + 1];
      if (next === undefined) assert(range.end === null, `the last range (${range.id}) runs to the end of the key space`);
      else assert(range.end !== null && range.end === next.start && compareUtf8(range.start, range.end) < 0, `range ${range.id} ends where range ${next.id} starts, and is not empty`);
    }
    this.ranges = sorted;
  }

  /** One range, group 0, over every key: a cluster that is not sharded. */
  static single(): RangeTable {
    return new RangeTable([{ id: 0, start: "", end: null, epoch: 1 }]);
  }

  /**
   * `count` ranges, groups 0 .. count-1, cut at boundaries spread evenly over keys that start
   * with '0' to 'z' (one character each up to 75 ranges, two up to 5,625, three beyond): where keys that are
   * words or numbers fall, before anything is known of the data. Splits later put the cuts
   * where the data is.
   */
  static presplit(count: number): RangeTable {
    assert(Number.isSafeInteger(count) && count >= 1 && count <= PRESPLIT_RANGES_MAX, `a cluster starts with 1 to ${PRESPLIT_RANGES_MAX} ranges, got ${count}`);
    const digits = count <= BOUNDARY_RADIX ? 1 : count <= BOUNDARY_RADIX ** 2 ? 2 : 3;
    const space = BOUNDARY_RADIX ** digits;
    const boundaries: string[] = [];
    for (let i = 1; i < count; i++) {
      let value = Math.floor((i * space) / count);
      let boundary = "";
      for (let d = 0; d < digits; d++) {
        boundary = String.fromCharCode(BOUNDARY_FIRST + (value % BOUNDARY_RADIX)) + boundary;
        value = Math.floor(value / BOUNDARY_RADIX);
      }
      boundaries.push(boundary);
    }
    const starts = ["", ...boundaries];
    return new RangeTable(starts.map((start, i) => ({ id: i, start, end: boundaries[i] ?? null, epoch: 1 })));
  }

  get size(): number {
    return this.ranges.length;
  }

  /** Every range, in key order. */
  list(): readonly RangeDescriptor[] {
    return this.ranges;
  }

  get(id: GroupId): RangeDescriptor | undefined {
    return this.byId.get(id);
  }

  /** The highest range id in the table: ranges only split, so an id above it may be a range born since. */
  get highestId(): GroupId {
    let highest = 0;
    for (const id of this.byId.keys()) if (id > highest) highest = id;
    return highest;
  }

  /** The range that owns `key`. */
  forKey(key: string): RangeDescriptor {
    let low = 0;
    let high = this.ranges.length - 1;
    // The last range whose start is at or before the key.
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (compareUtf8((this.ranges[middle] as RangeDescriptor).start, key) <= 0) low = middle;
      else high = middle - 1;
    }
    return this.ranges[low] as RangeDescriptor;
  }

  /**
   * The ranges holding keys that start with `prefix` and sort after `after` (when given), in
   * key order: the ones a listing of the prefix reads, from where it resumes.
   */
  forPrefix(prefix: string, after: string | null = null): RangeDescriptor[] {
    const from = after !== null && compareUtf8(after, prefix) > 0 ? after : prefix;
    const first = this.ranges.indexOf(this.forKey(from));
    const end = prefixEnd(prefix);
    const spanned: RangeDescriptor[] = [];
    for (let i = first; i < this.ranges.length; i++) {
      const range = this.ranges[i] as RangeDescriptor;
      if (end !== null && compareUtf8(range.start, end) >= 0) break;
      spanned.push(range);
    }
    return spanned;
  }
}

/**
 * The first key after every key that starts with `prefix` (null: none, the prefix is empty
 * or all U+10FFFF): the prefix with its last code point raised by one.
 */
export function prefixEnd(prefix: string): string | null {
  const points = [...prefix];
  while (points.length > 0) {
    const last = (points.pop() as string).codePointAt(0) as number;
    if (last < 0x10ffff) {
      // Surrogate code points are not characters; skip over them.
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
      return points.join("") + String.fromCodePoint(next);
    }
  }
  return null;
}

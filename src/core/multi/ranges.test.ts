import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { AssertionError } from "../common/assert.js";
import { compareUtf8 } from "../common/utf8.js";
import { PRESPLIT_RANGES_MAX, prefixEnd, RangeTable, spanHolds, type RangeDescriptor } from "./ranges.js";

/** The owner of `key` found the slow way: the one range whose span holds it. */
function ownersOf(table: RangeTable, key: string): RangeDescriptor[] {
  return table.list().filter((range) => spanHolds(range, key));
}

const keyChars = fc.constantFrom("", "0", "5", "9", "A", "a", "m", "z", "~", "é", "\u{10ffff}", "\u{1f600}", "\uffff");
const keys = fc.array(keyChars, { maxLength: 4 }).map((parts) => parts.join(""));

describe("RangeTable", () => {
  test("a presplit table covers the key space once: every key has exactly one owner, and forKey finds it", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.array(keys, { maxLength: 30 }), (count, probes) => {
        const table = RangeTable.presplit(count);
        assert.equal(table.size, count);
        assert.deepEqual(table.list().map((r) => r.id).sort((a, b) => a - b), [...Array(count).keys()]);
        for (const key of probes) {
          const owners = ownersOf(table, key);
          assert.equal(owners.length, 1, `key ${JSON.stringify(key)} has ${owners.length} owners`);
          assert.equal(table.forKey(key), owners[0]);
        }
      }),
      { numRuns: 200 },
    );
  });

  test("a key equal to a boundary belongs to the range it starts, and a prefix ending at a boundary does not read past it", () => {
    for (let count = 1; count <= 100; count++) {
      const table = RangeTable.presplit(count);
      for (const range of table.list()) {
        assert.equal(table.forKey(range.start), range, `count ${count}: key ${JSON.stringify(range.start)}`);
        if (range.start === "") continue;
        // The prefix whose keys all sort just before this range's start ("b" -> "a").
        const last = range.start.codePointAt(range.start.length - 1) as number;
        const before = range.start.slice(0, -1) + String.fromCodePoint(last - 1);
        assert.ok(!table.forPrefix(before).includes(range), `count ${count}: prefix ${JSON.stringify(before)} reads range ${range.id}`);
      }
    }
  });

  test("the largest presplit is valid, and a single table owns every key in group 0", () => {
    assert.equal(RangeTable.presplit(PRESPLIT_RANGES_MAX).size, PRESPLIT_RANGES_MAX);
    assert.equal(RangeTable.single().forKey("anything").id, 0);
    assert.throws(() => RangeTable.presplit(0), AssertionError);
    assert.throws(() => RangeTable.presplit(PRESPLIT_RANGES_MAX + 1), AssertionError);
  });

  test("forPrefix names exactly the ranges holding some key with the prefix after `after`, in key order", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 80 }), keys, fc.option(keys, { nil: null }), fc.array(keys, { maxLength: 40 }), (count, prefix, after, probes) => {
        const table = RangeTable.presplit(count);
        const spanned = table.forPrefix(prefix, after);
        const starts = spanned.map((r) => r.start);
        assert.deepEqual(starts, [...starts].sort(compareUtf8));
        // Every key listed by the prefix (after `after`) lives in a named range.
        for (const probe of probes) {
          const key = prefix + probe;
          if (after !== null && compareUtf8(key, after) <= 0) continue;
          assert.ok(spanned.includes(table.forKey(key)), `key ${JSON.stringify(key)} is in range ${table.forKey(key).id}, not among ${spanned.map((r) => r.id).join(",")}`);
        }
        // And no named range lies wholly outside the prefix's keys.
        const end = prefixEnd(prefix);
        for (const range of spanned) assert.ok(end === null || compareUtf8(range.start, end) < 0);
      }),
      { numRuns: 300 },
    );
  });

  test("refuses descriptors that leave a gap, overlap, or repeat an id", () => {
    const ok: RangeDescriptor[] = [
      { id: 0, start: "", end: "m", epoch: 1 },
      { id: 1, start: "m", end: null, epoch: 1 },
    ];
    assert.equal(new RangeTable(ok).forKey("n").id, 1);
    assert.throws(() => new RangeTable([ok[0] as RangeDescriptor, { id: 1, start: "n", end: null, epoch: 1 }]), /ends where/);
    assert.throws(() => new RangeTable([ok[0] as RangeDescriptor, { id: 0, start: "m", end: null, epoch: 1 }]), /two ranges/);
    assert.throws(() => new RangeTable([{ id: 0, start: "a", end: null, epoch: 1 }]), /empty key/);
    assert.throws(() => new RangeTable([{ id: 0, start: "", end: "m", epoch: 1 }]), /last range/);
    assert.throws(() => new RangeTable([{ id: 0, start: "", end: null, epoch: 0 }]), /epoch/);
  });

  test("prefixEnd is the first key after every key with the prefix", () => {
    assert.equal(prefixEnd(""), null);
    assert.equal(prefixEnd("ab"), "ac");
    assert.equal(prefixEnd("a\u{10ffff}"), "b");
    assert.equal(prefixEnd("\u{10ffff}"), null);
    assert.equal(prefixEnd("\ud7ff"), "\ue000");
    fc.assert(
      fc.property(keys, keys, (prefix, rest) => {
        const end = prefixEnd(prefix);
        if (end !== null) assert.ok(compareUtf8(prefix + rest, end) < 0);
        if (end !== null) assert.ok(!end.startsWith(prefix) || prefix === "");
      }),
      { numRuns: 300 },
    );
  });
});

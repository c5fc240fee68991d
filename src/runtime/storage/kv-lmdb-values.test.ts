// The LMDB store's meta record (kv-lmdb-values.ts): each format round-trips, the least one
// that says everything is written, and a range field out of bounds is refused as corruption.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KvMeta } from "../../core/kv/model.js";
import { KvStorageCorruptionError } from "./kv-lmdb-errors.js";
import { encodeMeta, parseMeta } from "./kv-lmdb-values.js";

const base: KvMeta = { appliedIndex: 40, revision: 30, clockMs: 5, compactRevision: 20, purged: { revision: 3, afterKey: "k" } };

test("the meta round-trips in the least format that holds it: 3 plain, 4 a range, 5 born of a split, 6 a range that split", () => {
  const cases: [KvMeta, number][] = [
    [base, 3],
    [{ ...base, rangeEpoch: 2, nextRangeId: 7 }, 4],
    [{ ...base, rangeEpoch: 2, bornAt: 12 }, 5],
    [{ ...base, rangeEpoch: 3, spanSince: 33 }, 6],
    [{ ...base, rangeEpoch: 3, bornAt: 12, spanSince: 33 }, 6],
  ];
  for (const [meta, format] of cases) {
    const stored = encodeMeta(meta);
    assert.equal(stored[0], format, JSON.stringify(meta));
    assert.deepEqual(parseMeta("/data", stored), meta);
  }
});

test("a span index of 0 or past the applied index is refused as corruption, naming the store", () => {
  const stored = encodeMeta({ ...base, rangeEpoch: 3, spanSince: 33 });
  for (const bad of [0, 41, 1.5]) {
    const copy = Buffer.from(stored);
    copy.writeDoubleBE(bad, copy.length - 8);
    assert.throws(() => parseMeta("/data", copy), (error) => error instanceof KvStorageCorruptionError && /\/data/.test(error.message) && /span index is bad/.test(error.message), String(bad));
  }
});

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Prng } from "./prng.js";

test("the same seed gives the same sequence; different seeds differ", () => {
  const a = new Prng(123);
  const b = new Prng(123);
  const c = new Prng(124);
  const seqA = Array.from({ length: 100 }, () => a.nextUint32());
  assert.deepEqual(seqA, Array.from({ length: 100 }, () => b.nextUint32()));
  assert.notDeepEqual(seqA, Array.from({ length: 100 }, () => c.nextUint32()));
});

test("seeds above 2^32 are not folded onto their low bits", () => {
  assert.notEqual(new Prng(5).nextUint32(), new Prng(5 + 2 ** 32).nextUint32());
});

test("int() stays in range and covers it", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: -50, max: 50 }), fc.integer({ min: 0, max: 20 }), (seed, min, span) => {
      const prng = new Prng(seed);
      for (let i = 0; i < 50; i++) {
        const v = prng.int(min, min + span);
        assert.ok(Number.isInteger(v) && v >= min && v <= min + span);
      }
    }),
  );
  const prng = new Prng(1);
  const seen = new Set(Array.from({ length: 1000 }, () => prng.int(1, 6)));
  assert.equal(seen.size, 6);
});

test("float() is roughly uniform on [0, 1)", () => {
  const prng = new Prng(99);
  const buckets = new Array<number>(10).fill(0);
  for (let i = 0; i < 100_000; i++) {
    const f = prng.float();
    assert.ok(f >= 0 && f < 1);
    buckets[Math.floor(f * 10)]! += 1;
  }
  for (const count of buckets) assert.ok(Math.abs(count - 10_000) < 500, `bucket ${count}`);
});

test("a bad seed is a programming error", () => {
  assert.throws(() => new Prng(1.5), /safe integer/);
});

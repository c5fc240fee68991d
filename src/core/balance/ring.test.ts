import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { utf8Encode } from "../common/utf8.js";
import type { Endpoint } from "./endpoint.js";
import { endpointsOf } from "./fixtures.test-util.js";
import { hashBytes32, hashString32 } from "./hash.js";
import { HashRingPicker } from "./ring.js";

const KEYS = Array.from({ length: 10_000 }, (_, index) => `user:${index * 7919}`);

function assignments(picker: HashRingPicker, keys: readonly string[]): string[] {
  return keys.map((key) => picker.pick(key)!.id);
}

test("hash: hashing a string equals hashing its UTF-8 bytes (lone surrogates as U+FFFD)", () => {
  fc.assert(fc.property(fc.string({ unit: "binary" }), (text) => assert.equal(hashString32(text), hashBytes32(utf8Encode(text)))));
  assert.equal(hashString32("\ud800"), hashString32("\ufffd"));
  assert.notEqual(hashString32("node-1#7"), hashString32("node-1#8"));
});

test("hash: the same key always maps to the same endpoint, whatever the list order", () => {
  const endpoints = endpointsOf(7, [1, 2, 3]);
  const picker = new HashRingPicker(endpoints);
  const reversed = new HashRingPicker([...endpoints].reverse());
  fc.assert(fc.property(fc.string(), (key) => assert.equal(picker.pick(key)!.id, reversed.pick(key)!.id)));
  assert.deepEqual(assignments(picker, KEYS.slice(0, 100)), assignments(picker, KEYS.slice(0, 100)));
});

for (const count of [5, 10, 50]) {
  test(`hash: removing one of ${count} endpoints moves only its keys, about 1/${count} of them`, () => {
    const endpoints = endpointsOf(count);
    const picker = new HashRingPicker(endpoints);
    const before = assignments(picker, KEYS);
    const removed = endpoints[count >> 1]!.id;
    picker.update(endpoints.filter((endpoint) => endpoint.id !== removed));
    const after = assignments(picker, KEYS);
    let moved = 0;
    before.forEach((id, index) => {
      if (id === after[index]) return;
      moved += 1;
      assert.equal(id, removed, `key ${KEYS[index]} moved from ${id}, which stayed`);
    });
    const share = moved / KEYS.length;
    assert.ok(share > 0.5 / count && share < 2 / count, `moved ${share} of keys`);
  });

  test(`hash: adding an endpoint to ${count} moves about 1/${count + 1} of keys, all onto it`, () => {
    const picker = new HashRingPicker(endpointsOf(count));
    const before = assignments(picker, KEYS);
    picker.update(endpointsOf(count + 1));
    const added = `e${count}`;
    const after = assignments(picker, KEYS);
    let moved = 0;
    before.forEach((id, index) => {
      if (id === after[index]) return;
      moved += 1;
      assert.equal(after[index], added);
    });
    const share = moved / KEYS.length;
    assert.ok(share > 0.5 / (count + 1) && share < 2 / (count + 1), `moved ${share} of keys`);
  });
}

function assertShares(endpoints: readonly Endpoint[], keys: readonly string[], tolerance: number): void {
  const picker = new HashRingPicker(endpoints);
  const counts = new Map<string, number>();
  for (const key of keys) {
    const id = picker.pick(key)!.id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const total = endpoints.reduce((sum, endpoint) => sum + endpoint.weight, 0);
  for (const endpoint of endpoints) {
    const expected = (keys.length * endpoint.weight) / total;
    const actual = counts.get(endpoint.id) ?? 0;
    assert.ok(Math.abs(actual - expected) <= tolerance * expected, `${endpoint.id} (weight ${endpoint.weight}): ${actual} keys, expected ${expected.toFixed(0)}`);
  }
}

test("hash: keys spread within 30% of each endpoint's weighted share", () => {
  assertShares(endpointsOf(5), KEYS, 0.3);
  assertShares(endpointsOf(10), KEYS, 0.3);
  assertShares(endpointsOf(3, [3, 1, 1]), KEYS, 0.3);
  assertShares(endpointsOf(6, [5, 1, 2, 1, 3, 1]), KEYS, 0.3);
  // 50 endpoints get 200 of the 10,000 keys each, where counting noise alone is 7%; use more keys.
  assertShares(endpointsOf(50), Array.from({ length: 100_000 }, (_, index) => `k${index}`), 0.3);
});

test("hash: a pick without a key takes the endpoints in turn; an empty ring gives null", () => {
  const picker = new HashRingPicker(endpointsOf(3));
  assert.deepEqual(Array.from({ length: 6 }, () => picker.pick()!.id), ["e0", "e1", "e2", "e0", "e1", "e2"]);
  assert.equal(new HashRingPicker([]).pick("x"), null);
  assert.equal(new HashRingPicker(endpointsOf(2), { vnodesPerWeight: 10 }).pointCount(), 20);
  assert.throws(() => new HashRingPicker(endpointsOf(2), { vnodesPerWeight: 0 }));
});

test("hash: a ring over the point limit is scaled down alike for every endpoint", () => {
  const picker = new HashRingPicker(endpointsOf(2, [1_000_000, 1_000_000]));
  assert.ok(picker.pointCount() <= 1 << 20 && picker.pointCount() >= (1 << 20) - 2);
});

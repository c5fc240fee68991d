import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Prng } from "../common/prng.js";
import { countPicks, endpointsOf } from "./fixtures.test-util.js";
import { RoundRobinPicker } from "./round-robin.js";

test("round-robin: every cycle of n picks returns each endpoint exactly once, weights ignored", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 1, max: 5 }), (count, seed, cycles) => {
      const picker = new RoundRobinPicker(endpointsOf(count, [7, 3]), new Prng(seed));
      for (let cycle = 0; cycle < cycles; cycle++) {
        const ids = Array.from({ length: count }, () => picker.pick()!.id);
        assert.equal(new Set(ids).size, count);
      }
    }),
  );
});

test("round-robin: no endpoints gives null; the start position comes from the PRNG", () => {
  assert.equal(new RoundRobinPicker([], new Prng(1)).pick(), null);
  const firsts = new Set(Array.from({ length: 50 }, (_, seed) => new RoundRobinPicker(endpointsOf(5), new Prng(seed)).pick()!.id));
  assert.ok(firsts.size > 1, "different seeds should start at different endpoints");
});

test("round-robin: after an update the endpoint that was next keeps its turn; removed ones are never picked", () => {
  const endpoints = endpointsOf(4);
  const picker = new RoundRobinPicker(endpoints, new Prng(3));
  const before = Array.from({ length: 4 }, () => picker.pick()!.id);
  const upcoming = before[0]!; // a whole cycle later, the same endpoint is next
  const removed = endpoints.find((endpoint) => endpoint.id !== upcoming)!;
  picker.update(endpoints.filter((endpoint) => endpoint !== removed));
  assert.equal(picker.pick()!.id, upcoming);
  const after = countPicks(Array.from({ length: 30 }, () => picker.pick()!.id));
  assert.equal(after.has(removed.id), false);
  assert.deepEqual([...after.values()], [10, 10, 10]);
});

test("round-robin: update can empty the list and refill it", () => {
  const picker = new RoundRobinPicker(endpointsOf(2), new Prng(1));
  picker.update([]);
  assert.equal(picker.pick(), null);
  picker.update(endpointsOf(3));
  assert.equal(new Set(Array.from({ length: 3 }, () => picker.pick()!.id)).size, 3);
});

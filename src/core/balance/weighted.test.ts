import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import type { Endpoint } from "./endpoint.js";
import { endpointsOf } from "./fixtures.test-util.js";
import { SmoothWeightedPicker } from "./weighted.js";

test("smooth weighted round-robin: weights 5,1,1 give exactly a,a,b,a,c,a,a in every cycle", () => {
  const picker = new SmoothWeightedPicker([
    { id: "a", weight: 5 },
    { id: "b", weight: 1 },
    { id: "c", weight: 1 },
  ]);
  for (let cycle = 0; cycle < 3; cycle++) {
    assert.deepEqual(
      Array.from({ length: 7 }, () => picker.pick()!.id),
      ["a", "a", "b", "a", "c", "a", "a"],
    );
  }
});

const weightLists = fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 12 });

test("smooth weighted round-robin: each whole cycle picks every endpoint exactly weight times", () => {
  fc.assert(
    fc.property(weightLists, fc.integer({ min: 1, max: 4 }), (weights, cycles) => {
      const endpoints = endpointsOf(weights.length, weights);
      const total = weights.reduce((sum, weight) => sum + weight, 0);
      const picker = new SmoothWeightedPicker(endpoints);
      for (let cycle = 0; cycle < cycles; cycle++) {
        const counts = new Map<string, number>();
        for (let i = 0; i < total; i++) {
          const id = picker.pick()!.id;
          counts.set(id, (counts.get(id) ?? 0) + 1);
        }
        for (const endpoint of endpoints) assert.equal(counts.get(endpoint.id) ?? 0, endpoint.weight);
      }
    }),
  );
});

/**
 * The no-burst bound: current weights stay in (-total, total), so in any window of k picks
 * an endpoint is chosen fewer than k * weight / total + 2 times, i.e. at most
 * ceil(k * weight / total) + 1, and more than k * weight / total - 2 times.
 */
function assertWindowsSmooth(endpoints: readonly Endpoint[], sequence: readonly number[]): void {
  const total = endpoints.reduce((sum, endpoint) => sum + endpoint.weight, 0);
  for (let start = 0; start < sequence.length; start++) {
    const counts = new Array<number>(endpoints.length).fill(0);
    for (let end = start; end < sequence.length; end++) {
      counts[sequence[end]!]! += 1;
      const k = end - start + 1;
      endpoints.forEach((endpoint, index) => {
        const exact = (k * endpoint.weight) / total;
        assert.ok(counts[index]! <= Math.ceil(exact) + 1, `window of ${k} picked ${endpoint.id} ${counts[index]} times, share ${exact}`);
        assert.ok(counts[index]! >= Math.floor(exact) - 1, `window of ${k} picked ${endpoint.id} only ${counts[index]} times, share ${exact}`);
      });
    }
  }
}

test("smooth weighted round-robin: no window of k picks strays more than one pick past its share", () => {
  fc.assert(
    fc.property(weightLists, (weights) => {
      const endpoints = endpointsOf(weights.length, weights);
      const total = weights.reduce((sum, weight) => sum + weight, 0);
      const picker = new SmoothWeightedPicker(endpoints);
      const indexOf = new Map(endpoints.map((endpoint, index) => [endpoint.id, index]));
      const sequence = Array.from({ length: Math.min(2 * total, 150) }, () => indexOf.get(picker.pick()!.id)!);
      assertWindowsSmooth(endpoints, sequence);
    }),
    { numRuns: 60 },
  );
});

test("the window check rejects a bursty schedule (weights 5,5 as a,a,a,a,a,b,b,b,b,b)", () => {
  assert.throws(() => assertWindowsSmooth(endpointsOf(2, [5, 5]), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]));
  assertWindowsSmooth(endpointsOf(2, [5, 5]), [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
});

test("smooth weighted round-robin: after updates, long-run shares converge to the new weights", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(weightLists, fc.integer({ min: 0, max: 50 })), { minLength: 1, maxLength: 5 }), (steps) => {
      const picker = new SmoothWeightedPicker<Endpoint>([]);
      let endpoints: Endpoint[] = [];
      for (const [weights, picks] of steps) {
        endpoints = endpointsOf(weights.length, weights);
        picker.update(endpoints);
        for (let i = 0; i < picks; i++) picker.pick();
      }
      const total = endpoints.reduce((sum, endpoint) => sum + endpoint.weight, 0);
      const cycles = 20;
      const counts = new Map<string, number>();
      for (let i = 0; i < cycles * total; i++) {
        const id = picker.pick()!.id;
        counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      // The state after an update is bounded by the old totals (at most 20 * 12 here), so
      // the count differs from the exact share by a bounded number of picks, not a share.
      for (const endpoint of endpoints) {
        assert.ok(Math.abs((counts.get(endpoint.id) ?? 0) - cycles * endpoint.weight) <= 2 + Math.ceil(480 / total), `${endpoint.id}: ${counts.get(endpoint.id)} vs ${cycles * endpoint.weight}`);
      }
    }),
  );
});

test("smooth weighted round-robin: a weight change keeps the survivors' state and matches new weights", () => {
  const picker = new SmoothWeightedPicker([
    { id: "a", weight: 1 },
    { id: "b", weight: 1 },
  ]);
  picker.pick();
  picker.update([
    { id: "a", weight: 3 },
    { id: "b", weight: 1 },
    { id: "c", weight: 1 },
  ]);
  const counts = new Map<string, number>();
  for (let i = 0; i < 500; i++) {
    const id = picker.pick()!.id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  assert.ok(Math.abs(counts.get("a")! - 300) <= 2 && Math.abs(counts.get("b")! - 100) <= 2 && Math.abs(counts.get("c")! - 100) <= 2, JSON.stringify([...counts]));
  assert.equal(new SmoothWeightedPicker([]).pick(), null);
});

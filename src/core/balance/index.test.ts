import assert from "node:assert/strict";
import { test } from "node:test";
import { Prng } from "../common/prng.js";
import { endpointsOf } from "./fixtures.test-util.js";
import { createPicker, STRATEGIES, validateEndpoints } from "./index.js";

test("createPicker builds every strategy; each returns null with no endpoints", () => {
  for (const strategy of STRATEGIES) {
    const picker = createPicker(strategy, endpointsOf(3), new Prng(1));
    assert.equal(picker.strategy, strategy);
    assert.ok(picker.pick("k") !== null);
    picker.update([]);
    assert.equal(picker.pick("k"), null);
  }
});

test("the same seed gives the same picks, for every strategy, with starts and finishes", () => {
  const run = (strategy: (typeof STRATEGIES)[number], seed: number): string[] => {
    const picker = createPicker(strategy, endpointsOf(6, [3, 1, 2]), new Prng(seed));
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) {
      const id = picker.pick(`key-${i % 37}`)!.id;
      ids.push(id);
      picker.onStart(id);
      if (i % 3 !== 0) picker.onFinish(ids[i >> 1]!);
    }
    return ids;
  };
  for (const strategy of STRATEGIES) assert.deepEqual(run(strategy, 42), run(strategy, 42), strategy);
  assert.notDeepEqual(run("p2c", 42), run("p2c", 43));
});

test("endpoint lists are validated: unique ids, positive integer weights", () => {
  assert.throws(() => validateEndpoints([{ id: "a", weight: 1 }, { id: "a", weight: 2 }]), /not unique/);
  for (const weight of [0, -1, 1.5, Number.NaN, 2 ** 53]) assert.throws(() => validateEndpoints([{ id: "a", weight }]), /weight/);
  assert.throws(() => validateEndpoints([{ id: "", weight: 1 }]), /id/);
  assert.throws(() => createPicker("weighted", [{ id: "a", weight: 0 }], new Prng(1)), /weight/);
  const picker = createPicker("round-robin", endpointsOf(2), new Prng(1));
  assert.throws(() => picker.update([{ id: "x", weight: 1 }, { id: "x", weight: 1 }]), /not unique/);
  assert.equal(picker.endpoints().length, 2, "a rejected update leaves the picker as it was");
});

test("pickers hand back the caller's endpoint objects, extra fields included", () => {
  const endpoints = [
    { id: "a", weight: 1, url: "http://127.0.0.1:1" },
    { id: "b", weight: 1, url: "http://127.0.0.1:2" },
  ];
  const picker = createPicker("p2c", endpoints, new Prng(1));
  const chosen = picker.pick()!;
  assert.ok(endpoints.includes(chosen));
  assert.match(chosen.url, /^http/);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Prng } from "../common/prng.js";
import { endpointsOf } from "./fixtures.test-util.js";
import { LeastOutstandingPicker } from "./least-outstanding.js";

test("least-outstanding: every pick has the minimum in-flight count, under any start/finish pattern", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 2 ** 40 }), fc.array(fc.nat(), { minLength: 1, maxLength: 200 }), (count, seed, finishes) => {
      const endpoints = endpointsOf(count);
      const picker = new LeastOutstandingPicker(endpoints, new Prng(seed));
      const running: string[] = [];
      for (const finish of finishes) {
        const chosen = picker.pick()!;
        const minimum = Math.min(...endpoints.map((endpoint) => picker.inFlight(endpoint.id)));
        assert.equal(picker.inFlight(chosen.id), minimum);
        picker.onStart(chosen.id);
        running.push(chosen.id);
        // Finish a request chosen by the property (sometimes none, sometimes several).
        if (finish % 3 !== 0 && running.length > 0) picker.onFinish(running.splice(finish % running.length, 1)[0]!);
      }
      const total = endpoints.reduce((sum, endpoint) => sum + picker.inFlight(endpoint.id), 0);
      assert.equal(total, running.length);
    }),
  );
});

test("least-outstanding: idle endpoints are used in turn rather than the first always", () => {
  const picker = new LeastOutstandingPicker(endpointsOf(4), new Prng(9));
  const ids = Array.from({ length: 8 }, () => picker.pick()!.id);
  assert.equal(new Set(ids.slice(0, 4)).size, 4);
  assert.deepEqual(ids.slice(4), ids.slice(0, 4));
});

test("least-outstanding: in-flight counts survive an update; a finish for a removed endpoint is ignored", () => {
  const endpoints = endpointsOf(3);
  const picker = new LeastOutstandingPicker(endpoints, new Prng(1));
  picker.onStart("e0");
  picker.onStart("e0");
  picker.onStart("e1");
  picker.onStart("e2");
  picker.update(endpoints.slice(0, 2));
  assert.equal(picker.inFlight("e0"), 2);
  assert.equal(picker.pick()!.id, "e1");
  picker.onFinish("e2"); // it was removed while its request ran
  assert.equal(picker.inFlight("e2"), 0);
  picker.onFinish("e1");
  picker.onFinish("e1"); // never below zero
  assert.equal(picker.inFlight("e1"), 0);
  assert.throws(() => picker.onStart("e2"), /unknown endpoint/);
  assert.equal(new LeastOutstandingPicker([], new Prng(1)).pick(), null);
});

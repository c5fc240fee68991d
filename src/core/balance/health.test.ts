import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { HealthCheck, resolveHealthCheckOptions } from "./health.js";

test("health check: starts healthy; two failed checks in a row make it unhealthy, one does not", () => {
  const check = new HealthCheck();
  assert.equal(check.healthy, true, "optimistic start");
  assert.equal(check.record(false), false);
  assert.equal(check.healthy, true, "one failed check is not enough");
  assert.equal(check.record(false), true, "the second one flips it");
  assert.equal(check.healthy, false);
  assert.equal(check.record(false), false, "already unhealthy");
});

test("health check: a result of the other kind resets the run, both ways", () => {
  const check = new HealthCheck(resolveHealthCheckOptions({ unhealthyThreshold: 3, healthyThreshold: 2 }));
  for (const ok of [false, false, true, false, false]) check.record(ok);
  assert.equal(check.healthy, true, "false,false,true,false,false never makes 3 in a row");
  check.record(false);
  assert.equal(check.healthy, false);
  for (const ok of [true, false, true]) check.record(ok);
  assert.equal(check.healthy, false, "true,false,true never makes 2 in a row");
  assert.equal(check.record(true), true);
  assert.equal(check.healthy, true);
});

/** The dumb reference: the state is the last run of at least `threshold` equal results that disagreed with the state before it. */
function reference(results: readonly boolean[], unhealthyThreshold: number, healthyThreshold: number): boolean[] {
  const states: boolean[] = [];
  let healthy = true;
  for (let i = 0; i < results.length; i++) {
    const threshold = healthy ? unhealthyThreshold : healthyThreshold;
    const run = results.slice(Math.max(0, i - threshold + 1), i + 1);
    // A flip needs the last `threshold` results to disagree, and none of them to be part of an earlier flip.
    if (run.length === threshold && run.every((ok) => ok !== healthy) && states.slice(states.length - (threshold - 1)).every((state) => state === healthy)) healthy = !healthy;
    states.push(healthy);
  }
  return states;
}

test("health check: agrees with a reference over random check sequences and thresholds", () => {
  fc.assert(
    fc.property(fc.array(fc.boolean(), { maxLength: 60 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), (results, unhealthyThreshold, healthyThreshold) => {
      const check = new HealthCheck(resolveHealthCheckOptions({ unhealthyThreshold, healthyThreshold }));
      const states = results.map((ok) => {
        check.record(ok);
        return check.healthy;
      });
      assert.deepEqual(states, reference(results, unhealthyThreshold, healthyThreshold));
    }),
    { numRuns: 500 },
  );
});

test("health check options are validated", () => {
  assert.throws(() => resolveHealthCheckOptions({ unhealthyThreshold: 0 }), /unhealthyThreshold/);
  assert.throws(() => resolveHealthCheckOptions({ healthyThreshold: 1.5 }), /healthyThreshold/);
  assert.deepEqual(resolveHealthCheckOptions({}), { unhealthyThreshold: 2, healthyThreshold: 2 });
});

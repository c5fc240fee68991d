import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Prng } from "../common/prng.js";
import { Balancer, type BalancerOptions } from "./balancer.js";
import { createPicker } from "./create-picker.js";
import { STRATEGIES, type Endpoint, type Strategy } from "./endpoint.js";
import { endpointsOf } from "./fixtures.test-util.js";
import { ejectionLimit } from "./outlier.js";

/** `count` picks at the frozen time `nowMs`, as a map from id to picks. */
function picksAt(balancer: Balancer, nowMs: number, count: number, avoid?: ReadonlySet<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const id = balancer.pick(nowMs, undefined, avoid)!.id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

function fail(balancer: Balancer, id: string, times: number, nowMs: number): void {
  for (let i = 0; i < times; i++) balancer.reportFailure(id, nowMs);
}

function healthOf(balancer: Balancer, id: string, nowMs: number): string {
  return balancer.stats(nowMs).endpoints.find((endpoint) => endpoint.id === id)!.health;
}

test("balancer: 5 failures in a row eject an endpoint, 4 do not; it comes back when its time is up", () => {
  const balancer = new Balancer("round-robin", endpointsOf(3), new Prng(1));
  fail(balancer, "e0", 4, 1_000);
  assert.ok(picksAt(balancer, 1_000, 30).has("e0"), "4 failures leave it in rotation");
  balancer.reportFailure("e0", 1_000);
  assert.equal(picksAt(balancer, 1_000, 300).has("e0"), false, "the fifth ejects it");
  assert.equal(picksAt(balancer, 30_999, 300).has("e0"), false);
  const stats = balancer.stats(2_000).endpoints[0]!;
  assert.deepEqual([stats.health, stats.ejectedUntilMs, stats.ejectionCount, stats.failures, stats.requests], ["ejected", 31_000, 1, 5, 5]);
  assert.ok(picksAt(balancer, 31_000, 300).has("e0"), "back at 31 s, no check needed");
  assert.equal(healthOf(balancer, "e0", 31_000), "healthy");
  fail(balancer, "e0", 5, 31_000);
  assert.equal(balancer.stats(31_000).endpoints[0]!.ejectedUntilMs, 91_000, "the second ejection lasts 60 s");
});

test("balancer: isAvailable follows ejection and active checks, panic or not, and is false for an unknown id", () => {
  const balancer = new Balancer("p2c", endpointsOf(3), new Prng(2));
  assert.equal(balancer.isAvailable("e0", 0), true);
  fail(balancer, "e0", 5, 0);
  assert.equal(balancer.isAvailable("e0", 0), false, "ejected");
  assert.equal(balancer.isAvailable("e0", 30_000), true, "back when its ejection ends");
  for (const id of ["e1", "e2"]) for (let i = 0; i < 2; i++) balancer.reportCheck(id, false, 30_000);
  assert.equal(balancer.panic(30_000), true);
  assert.equal(balancer.isAvailable("e1", 30_000), false, "panic puts it in rotation, not back to health");
  assert.equal(balancer.isAvailable("nope", 30_000), false);
});

test("balancer: a success in the run of failures keeps the endpoint in", () => {
  const balancer = new Balancer("p2c", endpointsOf(3), new Prng(2));
  for (let i = 0; i < 20; i++) {
    fail(balancer, "e1", 4, i);
    balancer.reportSuccess("e1", i);
  }
  assert.equal(healthOf(balancer, "e1", 100), "healthy");
});

test("balancer: a successful active check does not end an ejection early", () => {
  const balancer = new Balancer("round-robin", endpointsOf(3), new Prng(1));
  fail(balancer, "e2", 5, 0);
  for (let t = 1_000; t < 30_000; t += 1_000) balancer.reportCheck("e2", true, t);
  assert.equal(healthOf(balancer, "e2", 29_999), "ejected");
  assert.equal(healthOf(balancer, "e2", 30_000), "healthy");
});

test("balancer: never more than ejectionPercentMax of the endpoints ejected, over random failure sequences", () => {
  let ejectionsSeen = 0;
  const step = fc.oneof(
    { weight: 8, arbitrary: fc.record({ kind: fc.constant("failure" as const), endpoint: fc.nat(), ms: fc.constant(0) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("success" as const), endpoint: fc.nat(), ms: fc.constant(0) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("wait" as const), endpoint: fc.constant(0), ms: fc.integer({ min: 0, max: 40_000 }) }) },
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 1, max: 4 }), fc.array(step, { maxLength: 300 }), (count, ejectionPercentMax, consecutiveFailures, steps) => {
      const balancer = new Balancer("round-robin", endpointsOf(count), new Prng(3), { ejectionPercentMax, consecutiveFailures, panicThresholdPercent: 0 });
      const limit = ejectionLimit(count, ejectionPercentMax);
      let nowMs = 0;
      for (const { kind, endpoint, ms } of steps) {
        const id = `e${endpoint % count}`;
        if (kind === "failure") balancer.reportFailure(id, nowMs);
        else if (kind === "success") balancer.reportSuccess(id, nowMs);
        else nowMs += ms;
        const ejected = balancer.stats(nowMs).endpoints.filter((stats) => stats.health === "ejected").map((stats) => stats.id);
        assert.ok(ejected.length <= limit, `${ejected.length} of ${count} ejected at ${ejectionPercentMax}%`);
        ejectionsSeen += ejected.length;
        const chosen = balancer.pick(nowMs);
        if (ejected.length === count) assert.equal(chosen, null, "all ejected (at 100%) and panic off: nothing to pick");
        else assert.ok(chosen !== null && !ejected.includes(chosen.id), "an ejected endpoint is never picked outside panic");
      }
    }),
    { numRuns: 300 },
  );
  assert.ok(ejectionsSeen > 0, "the runs did eject");
});

test("balancer: the limit holds back an ejection until another endpoint comes back", () => {
  const balancer = new Balancer("round-robin", endpointsOf(3), new Prng(1));
  fail(balancer, "e0", 5, 0);
  fail(balancer, "e1", 10, 1_000);
  assert.deepEqual(balancer.stats(1_000).endpoints.map((stats) => stats.health), ["ejected", "healthy", "healthy"], "one of three at 50%");
  balancer.reportFailure("e1", 30_000);
  assert.deepEqual(balancer.stats(30_000).endpoints.map((stats) => stats.health), ["healthy", "ejected", "healthy"], "its next failure, once e0 is back");
});

test("balancer: active checks take an endpoint out after 2 failures, not 1, and back after 2 passes", () => {
  const balancer = new Balancer("round-robin", endpointsOf(3), new Prng(1), { slowStartWindowMs: 0 });
  balancer.reportCheck("e1", false, 0);
  assert.ok(picksAt(balancer, 0, 30).has("e1"));
  balancer.reportCheck("e1", false, 1);
  assert.equal(picksAt(balancer, 1, 300).has("e1"), false);
  assert.equal(healthOf(balancer, "e1", 1), "unhealthy");
  balancer.reportCheck("e1", true, 2);
  assert.equal(picksAt(balancer, 2, 300).has("e1"), false);
  balancer.reportCheck("e1", true, 3);
  assert.ok(picksAt(balancer, 3, 30).has("e1"));
});

test("balancer: panic below 50% available spreads picks over all endpoints, at 50% it does not", () => {
  const balancer = new Balancer("round-robin", endpointsOf(4), new Prng(1));
  for (const id of ["e0", "e1"]) for (let i = 0; i < 2; i++) balancer.reportCheck(id, false, 0);
  const half = picksAt(balancer, 0, 400);
  assert.deepEqual([half.get("e0"), half.get("e1"), half.get("e2"), half.get("e3")], [undefined, undefined, 200, 200]);
  assert.equal(balancer.panic(0), false);
  for (let i = 0; i < 2; i++) balancer.reportCheck("e2", false, 0);
  assert.equal(balancer.panic(0), true);
  const all = picksAt(balancer, 0, 400);
  for (const id of ["e0", "e1", "e2", "e3"]) assert.equal(all.get(id), 100, `${id} in panic`);
  assert.equal(balancer.stats(0).panic, true);
  assert.deepEqual(balancer.stats(0).endpoints.map((stats) => stats.effectiveWeight), [1, 1, 1, 1]);
  for (let i = 0; i < 2; i++) balancer.reportCheck("e3", false, 0);
  assert.equal(picksAt(balancer, 0, 400).size, 4, "with none available, still all of them");
});

test("balancer: with panicThresholdPercent 0, nothing available means no endpoint", () => {
  const balancer = new Balancer("p2c", endpointsOf(2), new Prng(1), { panicThresholdPercent: 0 });
  for (const id of ["e0", "e1"]) for (let i = 0; i < 2; i++) balancer.reportCheck(id, false, 0);
  assert.equal(balancer.pick(0), null);
  assert.equal(new Balancer("weighted", [], new Prng(1)).pick(0), null);
});

/** The share, among picks, of an endpoint of weight `weight * factor` next to `others` of total weight. */
function expectedShare(weight: number, factor: number, others: number): number {
  return (weight * factor) / (others + weight * factor);
}

test("balancer: slow start ramps a returning endpoint's share from 10% of its weight to all of it over 10 s", () => {
  for (const strategy of ["round-robin", "weighted", "least-outstanding", "p2c"] as const) {
    const balancer = new Balancer(strategy, endpointsOf(3), new Prng(11));
    fail(balancer, "e2", 5, 0); // ejected until 30 s
    let previous = 0;
    for (let tenth = 0; tenth <= 11; tenth++) {
      const nowMs = 30_000 + tenth * 1_000;
      const counts = picksAt(balancer, nowMs, 6000);
      const share = (counts.get("e2") ?? 0) / 6000;
      const expected = expectedShare(1, Math.min(1, 0.1 + 0.09 * tenth), 2);
      assert.ok(Math.abs(share - expected) < 0.025, `${strategy} at +${tenth} s: share ${share.toFixed(3)}, expected ${expected.toFixed(3)}`);
      assert.ok(share >= previous - 0.025, `${strategy}: share fell from ${previous} to ${share}`);
      // The load it is spared spreads evenly; it does not all land on one neighbour.
      assert.ok(Math.abs((counts.get("e0") ?? 0) - (counts.get("e1") ?? 0)) < 0.05 * 6000, `${strategy} at +${tenth} s: ${JSON.stringify([...counts])}`);
      previous = share;
    }
  }
});

/**
 * Picks under a load of `inFlight` requests (each pick starts one and finishes the oldest),
 * the returning endpoint e2 idle after its ejection; returns how many of the first `count`
 * picks after its return went to e2, summed over seeds.
 */
function returningPicksUnderLoad(strategy: Strategy, options: BalancerOptions, count: number): number {
  let total = 0;
  for (let seed = 0; seed < 20; seed++) {
    const balancer = new Balancer(strategy, endpointsOf(3), new Prng(seed), options);
    fail(balancer, "e2", 5, 0);
    const running: string[] = [];
    const step = (nowMs: number): string => {
      const id = balancer.pick(nowMs)!.id;
      balancer.onStart(id);
      running.push(id);
      if (running.length > 30) balancer.onFinish(running.shift()!);
      return id;
    };
    for (let i = 0; i < 300; i++) step(1_000);
    for (let i = 0; i < count; i++) if (step(30_000) === "e2") total++;
  }
  return total / 20;
}

test("balancer: under load, slow start spares a returning idle endpoint the burst the load-aware strategies would send it", () => {
  for (const strategy of ["least-outstanding", "p2c"] as const) {
    const ramped = returningPicksUnderLoad(strategy, {}, 30);
    const unramped = returningPicksUnderLoad(strategy, { slowStartWindowMs: 0 }, 30);
    assert.ok(unramped >= 10, `${strategy} without slow start: ${unramped} of the first 30 picks (the burst this guards against)`);
    assert.ok(ramped <= 6, `${strategy} with slow start: ${ramped} of the first 30 picks`);
  }
});

test("balancer: slow start follows weights; effective weight in stats ramps too", () => {
  const balancer = new Balancer("weighted", endpointsOf(3, [4, 2, 2]), new Prng(5));
  fail(balancer, "e0", 5, 0);
  const start = (picksAt(balancer, 30_000, 8000).get("e0") ?? 0) / 8000;
  assert.ok(Math.abs(start - expectedShare(4, 0.1, 4)) < 0.02, `share ${start}`);
  const middle = (picksAt(balancer, 35_000, 8000).get("e0") ?? 0) / 8000;
  assert.ok(Math.abs(middle - expectedShare(4, 0.55, 4)) < 0.02, `share ${middle}`);
  assert.ok(Math.abs(balancer.stats(35_000).endpoints[0]!.effectiveWeight - 2.2) < 1e-9);
  assert.equal(balancer.stats(40_000).endpoints[0]!.effectiveWeight, 4);
  assert.equal(balancer.stats(40_000).endpoints[0]!.health, "healthy");
});

test("balancer: an endpoint healthy again after failed checks slow-starts from its healthy check", () => {
  const balancer = new Balancer("round-robin", endpointsOf(3), new Prng(1));
  for (const ok of [false, false, true, true]) balancer.reportCheck("e2", ok, 0);
  assert.ok(Math.abs(balancer.stats(0).endpoints[2]!.effectiveWeight - 0.1) < 1e-9);
  assert.ok(Math.abs(balancer.stats(5_000).endpoints[2]!.effectiveWeight - 0.55) < 1e-9);
});

test("balancer: the hash strategy does not slow-start; keys map as the bare ring's from the moment it is back", () => {
  const endpoints = endpointsOf(4);
  const balancer = new Balancer("hash", endpoints, new Prng(1));
  const ring = createPicker("hash", endpoints, new Prng(1));
  fail(balancer, "e3", 5, 0);
  for (let i = 0; i < 500; i++) assert.notEqual(balancer.pick(1, `key-${i}`)!.id, "e3");
  for (let i = 0; i < 500; i++) assert.equal(balancer.pick(30_000, `key-${i}`)!.id, ring.pick(`key-${i}`)!.id);
});

test("balancer: endpoints added by update slow-start, except into an empty balancer; state of those kept is kept", () => {
  const balancer = new Balancer<Endpoint>("round-robin", [], new Prng(1));
  balancer.update(endpointsOf(2), 0);
  assert.deepEqual(balancer.stats(0).endpoints.map((stats) => stats.effectiveWeight), [1, 1]);
  fail(balancer, "e1", 5, 0);
  balancer.onStart("e0");
  balancer.update([...endpointsOf(2), { id: "e2", weight: 3 }], 1_000);
  const stats = balancer.stats(1_000).endpoints;
  assert.deepEqual(stats.map((endpoint) => [endpoint.id, endpoint.health, endpoint.inFlight]), [["e0", "healthy", 1], ["e1", "ejected", 0], ["e2", "healthy", 0]]);
  assert.ok(Math.abs(stats[2]!.effectiveWeight - 0.3) < 1e-9);
  balancer.update([{ id: "e2", weight: 3 }], 2_000);
  balancer.onFinish("e0");
  balancer.reportFailure("e0", 2_000);
  assert.deepEqual(balancer.stats(2_000).endpoints.map((endpoint) => endpoint.id), ["e2"], "reports on removed endpoints are ignored");
  assert.throws(() => balancer.onStart("e0"), /unknown endpoint/);
});

test("balancer: avoid is honoured whenever an endpoint outside it is in rotation", () => {
  fc.assert(
    fc.property(fc.constantFrom(...STRATEGIES), fc.integer({ min: 1, max: 8 }), fc.array(fc.nat(7)), fc.integer(), (strategy: Strategy, count, avoided, seed) => {
      const balancer = new Balancer(strategy, endpointsOf(count), new Prng(seed));
      if (count > 2) fail(balancer, "e0", 5, 0); // one returning endpoint in slow start at 30 s
      const avoid = new Set(avoided.map((index) => `e${index % count}`));
      for (let i = 0; i < 20; i++) {
        const chosen = balancer.pick(30_000, `key-${i}`, avoid)!;
        assert.ok(chosen !== null);
        if (avoid.size < count) assert.ok(!avoid.has(chosen.id), `${strategy}: picked ${chosen.id} avoiding ${[...avoid]}`);
      }
    }),
    { numRuns: 300 },
  );
});

test("balancer: a returning endpoint's in-flight requests still count for the load-aware strategies", () => {
  const balancer = new Balancer("p2c", endpointsOf(2), new Prng(1), { slowStartWindowMs: 0 });
  for (let i = 0; i < 3; i++) balancer.onStart("e1");
  fail(balancer, "e1", 5, 0);
  assert.deepEqual([...picksAt(balancer, 1, 50).keys()], ["e0"]);
  // Back at 30 s with its 3 requests still running: p2c must see them and prefer idle e0.
  assert.deepEqual([...picksAt(balancer, 30_000, 50).keys()], ["e0"]);
  for (let i = 0; i < 3; i++) balancer.onFinish("e1");
  assert.ok(picksAt(balancer, 30_000, 50).has("e1"));
});

test("balancer: the same seed and the same reports give the same picks", () => {
  const run = (seed: number): string[] => {
    const balancer = new Balancer("p2c", endpointsOf(5), new Prng(seed));
    const ids: string[] = [];
    for (let i = 0; i < 2_000; i++) {
      const nowMs = i * 30;
      const id = balancer.pick(nowMs)!.id;
      ids.push(id);
      if (id === "e3") balancer.reportFailure(id, nowMs);
      else balancer.reportSuccess(id, nowMs);
    }
    return ids;
  };
  assert.deepEqual(run(9), run(9));
  assert.notDeepEqual(run(9), run(10));
});

test("balancer options are validated", () => {
  const options: BalancerOptions[] = [{ panicThresholdPercent: 101 }, { slowStartPercentMin: 0 }, { consecutiveFailures: -1 }, { unhealthyThreshold: 0 }];
  for (const option of options) assert.throws(() => new Balancer("p2c", endpointsOf(2), new Prng(1), option), JSON.stringify(option));
});

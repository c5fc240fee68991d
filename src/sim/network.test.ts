import assert from "node:assert/strict";
import { test } from "node:test";
import { Prng } from "../core/common/prng.js";
import { packetDelays, Partition, PARTITION_SHAPES } from "./network.js";

const five = [1, 2, 3, 4, 5];
const reachable = (p: Partition, from: number): number[] => five.filter((to) => to !== from && !p.isBlocked(from, to));

test("every partition shape cuts something and heals completely", () => {
  for (const shape of PARTITION_SHAPES) {
    const p = new Partition(five);
    p.apply(shape, new Prng(1), 3);
    assert.ok(p.active, shape);
    p.heal();
    for (const a of five) assert.equal(reachable(p, a).length, 4);
  }
});

test("isolate-leader cuts the leader off both ways", () => {
  const p = new Partition(five);
  p.apply("isolate-leader", new Prng(9), 4);
  assert.deepEqual(reachable(p, 4), []);
  for (const n of [1, 2, 3, 5]) assert.ok(!reachable(p, n).includes(4));
});

test("majority-minority leaves exactly one side with a majority", () => {
  const p = new Partition(five);
  p.apply("majority-minority", new Prng(3), null);
  const sideSizes = five.map((n) => reachable(p, n).length + 1).sort();
  assert.deepEqual(sideSizes, [2, 2, 3, 3, 3]);
});

test("ring: every node hears its two neighbours only, so majorities overlap", () => {
  const p = new Partition(five);
  p.apply("ring", new Prng(5), null);
  for (const n of five) assert.equal(reachable(p, n).length, 2, `node ${n}`);
});

test("bridge: one node talks to both halves, which cannot talk to each other", () => {
  const p = new Partition(five);
  p.apply("bridge", new Prng(11), null);
  const bridges = five.filter((n) => reachable(p, n).length === 4);
  assert.equal(bridges.length, 1);
  for (const n of five.filter((x) => x !== bridges[0])) assert.equal(reachable(p, n).length, 2);
});

test("asymmetric: messages flow one way only", () => {
  const p = new Partition(five);
  p.apply("asymmetric", new Prng(2), null);
  let oneWay = 0;
  for (const a of five) {
    for (const b of five) {
      if (a === b || !p.isBlocked(a, b)) continue;
      assert.ok(!p.isBlocked(b, a), `${a}->${b} and ${b}->${a} both cut`);
      oneWay++;
    }
  }
  assert.ok(oneWay > 0);
});

test("links drop, duplicate and delay at their configured rates", () => {
  const prng = new Prng(1);
  const link = { delayMinMicros: 100, delayMeanMicros: 500, dropProbability: 0.1, duplicateProbability: 0.05, longDelayProbability: 0, longDelayMaxMicros: 0 };
  let dropped = 0;
  let duplicated = 0;
  const trials = 20_000;
  for (let i = 0; i < trials; i++) {
    const delays = packetDelays(link, prng);
    if (delays.length === 0) dropped++;
    if (delays.length === 2) duplicated++;
    for (const d of delays) assert.ok(d >= 100);
  }
  assert.ok(Math.abs(dropped / trials - 0.1) < 0.01, `drop rate ${dropped / trials}`);
  assert.ok(Math.abs(duplicated / trials - 0.045) < 0.01, `duplicate rate ${duplicated / trials}`);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { ejectionLimit, OutlierDetector, resolveOutlierOptions } from "./outlier.js";

test("outlier: 5 failures in a row eject, 4 do not; a success in between starts the run again", () => {
  const detector = new OutlierDetector();
  for (let i = 0; i < 4; i++) assert.equal(detector.recordFailure(0), false, `failure ${i + 1}`);
  detector.recordSuccess(0);
  for (let i = 0; i < 4; i++) assert.equal(detector.recordFailure(0), false, `failure ${i + 1} after the success`);
  assert.equal(detector.recordFailure(0), true, "the fifth in a row");
  assert.equal(detector.isEjected(0), false, "the owner decides; nothing is ejected yet");
  assert.equal(detector.eject(0), 30_000);
  assert.equal(detector.isEjected(29_999), true);
  assert.equal(detector.isEjected(30_000), false, "back by itself when the time is up");
});

test("outlier: outcomes while ejected are ignored", () => {
  const detector = new OutlierDetector();
  for (let i = 0; i < 5; i++) detector.recordFailure(0);
  detector.eject(0);
  for (let i = 0; i < 20; i++) assert.equal(detector.recordFailure(10), false);
  assert.equal(detector.ejectedUntilMs, 30_000, "failures of requests that were running do not extend it");
  assert.equal(detector.consecutiveFailures, 0);
});

function ejectAgain(detector: OutlierDetector, nowMs: number): number {
  for (let i = 0; i < 5; i++) detector.recordFailure(nowMs);
  return detector.eject(nowMs) - nowMs;
}

test("outlier: each repeated ejection lasts one base longer, up to the cap", () => {
  const detector = new OutlierDetector();
  let nowMs = 0;
  const durations: number[] = [];
  for (let i = 0; i < 12; i++) {
    const durationMs = ejectAgain(detector, nowMs);
    durations.push(durationMs);
    nowMs += durationMs; // fails again the moment it is back
  }
  assert.deepEqual(durations, [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300].map((s) => s * 1000));
});

test("outlier: the ejection count decays by one per base interval spent back in service", () => {
  const detector = new OutlierDetector();
  let nowMs = 0;
  for (let i = 0; i < 3; i++) nowMs += ejectAgain(detector, nowMs); // 30 + 60 + 90 s; back at 180 s
  assert.equal(nowMs, 180_000);
  assert.equal(detector.ejectionCount(nowMs), 3);
  assert.equal(detector.ejectionCount(nowMs + 29_999), 3);
  assert.equal(detector.ejectionCount(nowMs + 30_000), 2);
  assert.equal(detector.ejectionCount(nowMs + 90_000), 0);
  assert.equal(ejectAgain(detector, nowMs + 60_000), 60_000, "count 1 after 60 s back, so this is ejection 2");
});

test("outlier: after a long flapping stretch at the cap, the count starts decaying from the cap", () => {
  const detector = new OutlierDetector(resolveOutlierOptions({ ejectionMsBase: 1_000, ejectionMsMax: 3_000 }));
  let nowMs = 0;
  for (let i = 0; i < 50; i++) nowMs += ejectAgain(detector, nowMs);
  assert.equal(detector.ejectionCount(nowMs), 3);
  assert.equal(ejectAgain(detector, nowMs + 3_000), 1_000, "three intervals back in service forget all three");
});

test("ejection limit: at most percent of the endpoints, rounded down, at least one of two or more, none of one", () => {
  const table: [count: number, percent: number, limit: number][] = [
    [0, 50, 0],
    [1, 50, 0],
    [1, 100, 0],
    [2, 50, 1],
    [3, 50, 1],
    [4, 50, 2],
    [5, 50, 2],
    [10, 10, 1],
    [3, 10, 1],
    [10, 0, 0],
    [7, 100, 7],
  ];
  for (const [count, percent, limit] of table) assert.equal(ejectionLimit(count, percent), limit, `${count} endpoints at ${percent}%`);
});

test("outlier options are validated", () => {
  assert.throws(() => resolveOutlierOptions({ consecutiveFailures: 0 }), /consecutiveFailures/);
  assert.throws(() => resolveOutlierOptions({ ejectionMsBase: 10_000, ejectionMsMax: 5_000 }), /ejectionMsMax/);
  assert.throws(() => resolveOutlierOptions({ ejectionPercentMax: 101 }), /ejectionPercentMax/);
});

// The process's shared ticker (driver.ts, SharedTicker): the replicas of a node tick on one
// timer per period, not one each (issue 16), and it goes once nothing is left on it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { SharedTicker } from "./driver.js";

/** Timers the event loop holds now (Node's own count of active resources). */
function timersActive(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
}

test("actions of one period run on one timer, in order; cancelling the last clears it", async () => {
  const ticker = new SharedTicker();
  const before = timersActive();
  const runs: string[] = [];
  const cancels = ["a", "b", "c"].map((name) => ticker.every(5, () => runs.push(name)));
  assert.equal(timersActive(), before + 1, "three actions, one timer");
  assert.equal(ticker.actions, 3);
  await sleep(30);
  assert.ok(runs.length >= 3, `they ran: ${runs.join(",")}`);
  assert.deepEqual(runs.slice(0, 3), ["a", "b", "c"], "in the order they were added");
  cancels[1]?.();
  cancels[1]?.(); // twice is once
  assert.equal(ticker.actions, 2);
  runs.length = 0;
  await sleep(30);
  assert.ok(!runs.includes("b") && runs.includes("a") && runs.includes("c"), `b was cancelled: ${runs.join(",")}`);
  cancels[0]?.();
  cancels[2]?.();
  assert.equal(ticker.actions, 0);
  assert.equal(timersActive(), before, "nothing left: no timer");
});

test("one action added twice runs twice; another period has its own timer; the ticker starts again after emptying", async () => {
  const ticker = new SharedTicker();
  const before = timersActive();
  let count = 0;
  const action = (): void => void count++;
  const first = ticker.every(5, action);
  const second = ticker.every(5, action);
  const other = ticker.every(7, () => undefined);
  assert.equal(timersActive(), before + 2);
  await sleep(22);
  assert.equal(count % 2, 0, "each round runs both entries");
  assert.ok(count >= 2);
  first();
  second();
  other();
  assert.equal(timersActive(), before);
  const again = ticker.every(5, action);
  count = 0;
  await sleep(20);
  assert.ok(count >= 1, "a new timer after the last one went");
  again();
  assert.equal(timersActive(), before);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { LogLimiter } from "./log-limiter.js";

test("a key logs once per interval and reports what it suppressed in between", () => {
  let nowMs = 0;
  const limiter = new LogLimiter(1000, 10, () => nowMs);
  assert.equal(limiter.admit("peer-2"), 0);
  nowMs = 500;
  assert.equal(limiter.admit("peer-2"), null);
  assert.equal(limiter.admit("peer-2"), null);
  assert.equal(limiter.admit("peer-3"), 0, "keys are independent");
  nowMs = 1000;
  assert.equal(limiter.admit("peer-2"), 2);
  assert.equal(limiter.admit("peer-2"), null);
});

test("past keysMax the limiter forgets rather than grows", () => {
  const limiter = new LogLimiter(1000, 3, () => 0);
  for (const key of ["a", "b", "c"]) assert.equal(limiter.admit(key), 0);
  assert.equal(limiter.admit("a"), null);
  assert.equal(limiter.admit("d"), 0, "a fourth key clears the memory");
  assert.equal(limiter.admit("a"), 0, "so a forgotten key may log again");
});

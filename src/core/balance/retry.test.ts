import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Prng } from "../common/prng.js";
import { backoffMs, resolveBackoffOptions, RetryBudget } from "./retry.js";

test("backoff: within [0, min(max, base * 2^attempt)] for every attempt", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 1, max: 500 }), fc.integer({ min: 0, max: 5000 }), fc.integer(), (attempt, base, extra, seed) => {
      const options = resolveBackoffOptions({ backoffMsBase: base, backoffMsMax: base + extra });
      const pauseMs = backoffMs(attempt, new Prng(seed), options);
      assert.ok(Number.isSafeInteger(pauseMs) && pauseMs >= 0);
      assert.ok(pauseMs <= Math.min(base + extra, base * 2 ** Math.min(attempt, 40)), `${pauseMs} for attempt ${attempt}`);
    }),
  );
});

test("backoff: full jitter spreads over the whole interval, with the default 25 ms base and 1 s cap", () => {
  const prng = new Prng(7);
  for (const [attempt, ceilingMs] of [[0, 25], [1, 50], [3, 200], [5, 800], [6, 1000], [30, 1000]] as const) {
    const draws = Array.from({ length: 4000 }, () => backoffMs(attempt, prng));
    const mean = draws.reduce((sum, value) => sum + value, 0) / draws.length;
    assert.ok(Math.max(...draws) === ceilingMs && Math.min(...draws) === 0, `attempt ${attempt}: [${Math.min(...draws)}, ${Math.max(...draws)}]`);
    assert.ok(Math.abs(mean - ceilingMs / 2) < ceilingMs * 0.05, `attempt ${attempt}: mean ${mean} of [0, ${ceilingMs}]`);
  }
  assert.throws(() => backoffMs(-1, prng), /attempt/);
});

test("retry budget: starts full, then 20% of requests plus 10 per second", () => {
  const budget = new RetryBudget(0);
  let granted = 0;
  while (budget.tryRetry(0)) granted++;
  assert.equal(granted, 100, "the saved-up burst");
  for (let i = 0; i < 50; i++) budget.recordRequest(0);
  granted = 0;
  while (budget.tryRetry(0)) granted++;
  assert.equal(granted, 10, "50 requests fund 10 retries");
  assert.equal(budget.canRetry(99), false);
  assert.equal(budget.canRetry(100), true, "0.1 s later, the floor has added one");
  assert.equal(budget.tryRetry(100), true);
  assert.equal(budget.tryRetry(100), false);
});

test("retry budget: a quiet period saves up at most retryTokensMax", () => {
  const budget = new RetryBudget(0, { retryTokensMax: 5 });
  while (budget.tryRetry(0));
  let granted = 0;
  while (budget.tryRetry(3_600_000)) granted++;
  assert.equal(granted, 5);
});

type Operation = { kind: "request" } | { kind: "retry" } | { kind: "wait"; ms: number };

const operations = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: fc.constant<Operation>({ kind: "request" }) },
    { weight: 4, arbitrary: fc.constant<Operation>({ kind: "retry" }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 2000 }).map<Operation>((ms) => ({ kind: "wait", ms })) },
  ),
  { maxLength: 400 },
);

test("retry budget: over any run, retries granted <= percent * requests + floor * seconds + cap, and the budget is used", () => {
  fc.assert(
    fc.property(operations, fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 1, max: 50 }), (run, budgetPercent, retriesPerSecondMin, retryTokensMax) => {
      const budget = new RetryBudget(0, { budgetPercent, retriesPerSecondMin, retryTokensMax });
      let nowMs = 0;
      let requests = 0;
      let granted = 0;
      for (const operation of run) {
        if (operation.kind === "request") {
          budget.recordRequest(nowMs);
          requests++;
        } else if (operation.kind === "retry") {
          if (budget.tryRetry(nowMs)) granted++;
        } else nowMs += operation.ms;
        const bound = (budgetPercent / 100) * requests + retriesPerSecondMin * (nowMs / 1000) + retryTokensMax;
        assert.ok(granted <= bound + 1e-9, `granted ${granted} > bound ${bound}`);
      }
      // Not vacuous: asking until refused spends everything but less than one token.
      while (budget.tryRetry(nowMs)) granted++;
      const bound = (budgetPercent / 100) * requests + retriesPerSecondMin * (nowMs / 1000) + retryTokensMax;
      assert.ok(granted <= bound + 1e-9 && budget.available(nowMs) < 1);
    }),
    { numRuns: 300 },
  );
});

test("retry budget: under a steady load, retries stay near 20% of requests", () => {
  const budget = new RetryBudget(0);
  let granted = 0;
  const requests = 100_000;
  // 1,000 requests a second for 100 s, every one of them failing and asking for a retry.
  for (let i = 0; i < requests; i++) {
    budget.recordRequest(i);
    if (budget.tryRetry(i)) granted++;
  }
  const expected = 0.2 * requests + 10 * 100 + 100;
  assert.ok(granted <= expected && granted >= expected - 2, `${granted} retries for ${requests} requests`);
});

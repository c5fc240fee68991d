import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { Prng } from "../core/common/prng.js";
import { LatencyHistogram } from "./histogram.js";

/** The nearest-rank percentile of the values themselves, the definition the histogram approximates. */
function exactPercentile(sorted: readonly number[], percent: number): number {
  const rank = Math.max(1, Math.ceil((percent / 100) * sorted.length));
  return sorted[rank - 1] as number;
}

function assertWithinOnePercent(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 0.01 * expected, `${what}: ${actual} is not within 1% of ${expected}`);
}

const PERCENTS = [1, 25, 50, 90, 99, 99.9];

function checkAgainstExact(values: readonly number[]): void {
  const histogram = new LatencyHistogram();
  for (const value of values) histogram.record(value);
  const sorted = [...values].sort((a, b) => a - b);
  for (const percent of PERCENTS) assertWithinOnePercent(histogram.percentile(percent), exactPercentile(sorted, percent), `p${percent}`);
}

describe("latency histogram", () => {
  test("below 128 µs every microsecond has its own bucket: percentiles are exact", () => {
    const histogram = new LatencyHistogram();
    for (let value = 1; value <= 100; value++) histogram.record(value);
    assert.equal(histogram.percentile(50), 50);
    assert.equal(histogram.percentile(99), 99);
    assert.equal(histogram.percentile(100), 100);
    assert.equal(histogram.percentile(0), 1);
    assert.equal(histogram.count, 100);
    assert.equal(histogram.mean, 50.5);
  });

  test("a uniform distribution from 1 µs to 1 s: percentiles within 1%", () => {
    const values = Array.from({ length: 1_000_000 }, (_, i) => i + 1);
    checkAgainstExact(values);
  });

  test("an exponential distribution (mean 5 ms) and a bimodal one (fast reads, slow fsyncs): percentiles within 1%", () => {
    const prng = new Prng(42);
    checkAgainstExact(Array.from({ length: 200_000 }, () => Math.floor(prng.exponential(5_000))));
    checkAgainstExact(Array.from({ length: 200_000 }, () => (prng.chance(0.9) ? prng.int(200, 400) : prng.int(20_000, 40_000))));
  });

  test("any set of values up to 60 s: percentiles within 1% of the exact ones", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 60_000_000 }), { minLength: 1, maxLength: 2_000 }), (values) => checkAgainstExact(values)),
      { numRuns: 300 },
    );
  });

  test("min, max and mean are exact, also for values beyond the range", () => {
    const histogram = new LatencyHistogram();
    for (const value of [3.5, 1_234.25, 90_000_000]) histogram.record(value);
    assert.equal(histogram.min, 3.5);
    assert.equal(histogram.max, 90_000_000);
    assert.equal(histogram.mean, (3.5 + 1_234.25 + 90_000_000) / 3);
    assert.equal(histogram.percentile(100), 90_000_000);
    assertWithinOnePercent(histogram.percentile(99), 60_000_000, "an out-of-range value counts in the last bucket");
  });

  test("an empty histogram reports zeros", () => {
    const histogram = new LatencyHistogram();
    assert.deepEqual([histogram.count, histogram.min, histogram.max, histogram.mean, histogram.percentile(50)], [0, 0, 0, 0, 0]);
  });

  test("adding histograms equals recording everything in one", () => {
    const prng = new Prng(7);
    const values = Array.from({ length: 10_000 }, () => prng.int(1, 5_000_000));
    const whole = new LatencyHistogram();
    const left = new LatencyHistogram();
    const right = new LatencyHistogram();
    values.forEach((value, i) => {
      whole.record(value);
      (i % 2 === 0 ? left : right).record(value);
    });
    left.add(right);
    for (const percent of PERCENTS) assert.equal(left.percentile(percent), whole.percentile(percent));
    assert.deepEqual([left.count, left.min, left.max], [whole.count, whole.min, whole.max]);
  });

  test("a negative or non-finite latency is a bug", () => {
    const histogram = new LatencyHistogram();
    assert.throws(() => histogram.record(-1), /non-negative/);
    assert.throws(() => histogram.record(Number.NaN), /non-negative/);
  });
});

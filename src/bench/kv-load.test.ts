// The load generator against fake nodes (src/client/fake-node.test-util.ts): its bounds, its
// keys and where it sends requests. Throughput numbers are not asserted; a benchmark prints them.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidInputError } from "../core/common/errors.js";
import { fakeNodes } from "../client/fake-node.test-util.js";
import { benchKey, formatBenchResult, parseDurationMs, runKvBench, type BenchOptions } from "./kv-load.js";

const fake = fakeNodes();

const base = { durationMs: 5_000, concurrency: 8, valueBytes: 10, op: "put", mixedGetRatio: 0.5, consistency: "linearizable", target: "leader", maxOps: 1_000_000 } as const;

function bench(endpoints: string[], options: Partial<BenchOptions>): ReturnType<typeof runKvBench> {
  return runKvBench({ ...base, endpoints, ...options });
}

describe("kv load generator", () => {
  test("--max-ops bounds the run: exactly that many requests, each put to a distinct key of the value size", async () => {
    const leader = await fake({ id: 1 });
    const result = await bench([leader.url], { maxOps: 500, valueBytes: 37 });
    assert.equal(result.ops, 500);
    assert.equal(leader.requests.get("PUT"), 500);
    assert.equal(leader.store.size, 500);
    assert.ok(leader.store.has(benchKey(499)) && !leader.store.has(benchKey(500)));
    assert.equal(leader.store.get(benchKey(0))?.value.length, 37);
    assert.ok(result.latencyMs.p50 > 0 && result.latencyMs.p50 <= result.latencyMs.max);
    assert.deepEqual(result.targets, [leader.url]);
  });

  test("the duration bounds the run", async () => {
    const leader = await fake({ id: 1 });
    const result = await bench([leader.url], { durationMs: 200, concurrency: 2 });
    assert.ok(result.seconds >= 0.2 && result.seconds < 1.5, `ran ${result.seconds} s`);
  });

  test("gets read only keys written first, so none is missing; --keys cycles puts over the key space", async () => {
    const leader = await fake({ id: 1 });
    const gets = await bench([leader.url], { op: "get", keys: 50, maxOps: 300 });
    assert.deepEqual(gets.errors, {});
    assert.equal(gets.ops, 300);
    assert.equal(leader.store.size, 50);
    const mixed = await bench([leader.url], { op: "mixed", keys: 50, maxOps: 300, mixedGetRatio: 0.5 });
    assert.deepEqual(mixed.errors, {});
    assert.equal(leader.store.size, 50);
    assert.equal((mixed.byOp?.get.ops ?? 0) + (mixed.byOp?.put.ops ?? 0), 300);
    assert.ok((mixed.byOp?.get.ops ?? 0) > 50 && (mixed.byOp?.put.ops ?? 0) > 50, "about half and half");
  });

  test("--target all spreads requests round-robin over every endpoint", async () => {
    const a = await fake({ id: 1 });
    const b = await fake({ id: 2, role: "follower", leaderHttp: a.url });
    const result = await bench([a.url, b.url], { target: "all", maxOps: 400 });
    assert.deepEqual([...result.targets].sort(), [a.url, b.url].sort());
    assert.equal(a.requests.get("PUT"), 200);
    assert.equal(b.requests.get("PUT"), 200);
  });

  test("failures are counted by the API's error code, and not in the latencies", async () => {
    const busy = await fake({ id: 1, failWith: { status: 503, code: "overloaded" } });
    const result = await bench([busy.url], { maxOps: 40 });
    assert.equal(result.ops, 0);
    assert.deepEqual(result.errors, { overloaded: 40 });
    assert.equal(result.latencyMs.max, 0);
    assert.match(formatBenchResult(result), /errors 40\nerrors by code: overloaded 40\nlongest time without an acknowledged write: \d+ ms \(from 0\.0 s to \d+\.\d s\)$/);
    assert.equal(result.gap.longestMs, Math.round(result.seconds * 1000), "no write was acknowledged: the whole run is the gap");
  });

  test("options out of range are refused before any request", async () => {
    const leader = await fake({ id: 1 });
    await assert.rejects(bench([leader.url], { concurrency: 0 }), InvalidInputError);
    await assert.rejects(bench([leader.url], { valueBytes: 2 * 1024 * 1024 }), InvalidInputError);
    await assert.rejects(bench([leader.url], { mixedGetRatio: 1.5 }), InvalidInputError);
    assert.equal(leader.requests.size, 0);
  });

  test("durations read as ms, s, m or bare seconds", () => {
    assert.equal(parseDurationMs("500ms"), 500);
    assert.equal(parseDurationMs("10s"), 10_000);
    assert.equal(parseDurationMs("1.5"), 1_500);
    assert.equal(parseDurationMs("2m"), 120_000);
    assert.throws(() => parseDurationMs("0s"), InvalidInputError);
    assert.throws(() => parseDurationMs("ten"), InvalidInputError);
  });
});

// Watches under every fault: watchers that follow the keys through crashes and reconnects
// (sim/watch-workload.ts, driving the production cursor) pass the watch checker, and each
// watch mutant (core/kv/mutants.ts) is caught by it on seeds the intact code passes.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { utf8Encode } from "../core/common/utf8.js";
import type { KvChange } from "../core/kv/store.js";
import { WatchCursor, parseEventId } from "../core/kv/watch-cursor.js";
import { WatchChecker } from "./check/watches.js";
import { InvariantViolation } from "./check/violation.js";
import { PROTOCOLS } from "./protocols.js";
import { runSimulation, type SimFailure } from "./simulation.js";

const put = (key: string, revision: number, value: string): KvChange => ({ key, revision, record: { key, value: utf8Encode(value), createRevision: revision, modRevision: revision, version: 1 } });

describe("watches in the simulator", () => {
  for (const [name, seeds] of [
    ["raft", 8],
    ["paxos", 4],
  ] as const) {
    test(`${name}: watchers see every committed change of their keys exactly once, in order, across crashes and reconnects`, () => {
      const protocol = PROTOCOLS.get(name);
      assert.ok(protocol !== undefined);
      let changes = 0;
      let connections = 0;
      for (let seed = 1; seed <= seeds; seed++) {
        const result = runSimulation({ protocol, seed, workload: "watch" });
        assert.equal(result.failure, null, `seed ${seed}: ${result.failure?.checker}: ${result.failure?.message}`);
        changes += result.stats.watch?.changes ?? 0;
        connections += result.stats.watch?.connections ?? 0;
      }
      // Not a vacuous pass: they saw the cluster's writes, and resumed many times.
      assert.ok(changes > 100 * seeds, `the watchers received only ${changes} changes`);
      assert.ok(connections > 10 * seeds, `the watchers connected only ${connections} times`);
    });
  }

  for (const [mutant, pattern] of [
    ["watch-resume-repeats", /saw that change twice/],
    ["watch-resume-from-now", /its change #\d+ was /],
  ] as const) {
    test(`${mutant} is caught by the watch checker within 5 seeds; the intact code passes that seed`, () => {
      const raft = PROTOCOLS.get("raft");
      assert.ok(raft !== undefined);
      let caught: number | null = null;
      for (let seed = 1; seed <= 5 && caught === null; seed++) {
        const failure: SimFailure | null = runSimulation({ protocol: raft, seed, mutant }).failure;
        if (failure === null) continue;
        assert.equal(failure.checker, "watch", failure.message);
        assert.match(failure.message, pattern);
        caught = seed;
      }
      assert.ok(caught !== null, `${mutant} survived 5 seeds`);
      assert.equal(runSimulation({ protocol: raft, seed: caught, workload: "watch" }).failure, null);
    });
  }

  test("the checker: a repeated or missing change fails, a segment a compaction started asks nothing before it", () => {
    const checker = new WatchChecker();
    checker.committed([put("a", 1, "1")]);
    checker.committed([put("b", 2, "2"), put("c", 2, "2")]);
    checker.committed([put("a", 3, "3")]);
    const every = { key: "", prefix: true };
    const segment = (start: number, events: KvChange[], lastRevision: number) => ({ start, events, lastRevision });
    checker.check("w", every, [segment(1, [put("a", 1, "1"), put("b", 2, "2"), put("c", 2, "2"), put("a", 3, "3")], 3)], true);
    checker.check("w", { key: "a", prefix: false }, [segment(1, [put("a", 1, "1")], 2), segment(3, [put("a", 3, "3")], 3)], true);
    assert.throws(() => checker.check("w", every, [segment(1, [put("a", 1, "1"), put("a", 1, "1")], 1)], false), (e: unknown) => e instanceof InvariantViolation && /twice/.test(e.message));
    assert.throws(() => checker.check("w", every, [segment(1, [put("a", 1, "1"), put("c", 2, "2")], 2)], false), InvariantViolation);
    assert.throws(() => checker.check("w", every, [segment(1, [put("a", 1, "1")], 1)], true), /saw changes only through revision 1/);
  });

  test("the cursor: a message per revision of matching changes, parts past the size bound, and ids that resume after the last one", () => {
    const cursor = new WatchCursor({ key: "k", prefix: true, start: { revision: 2, skip: 0 } });
    assert.equal(cursor.lastEventId, "1");
    const sent = cursor.advance([put("k1", 2, "x"), put("other", 2, "y"), put("k2", 3, "x"), put("k3", 3, "x"), put("k4", 3, "x")], true, () => 1, 2);
    assert.deepEqual(
      sent.map((m) => [m.id, m.changes.map((c) => c.key)]),
      [
        ["2", ["k1"]],
        ["3:2", ["k2", "k3"]],
        ["3", ["k4"]],
      ],
    );
    assert.deepEqual(parseEventId("3:2"), { revision: 3, skip: 2 });
    assert.deepEqual(parseEventId("3"), { revision: 4, skip: 0 });
    const resumed = new WatchCursor({ key: "k", prefix: true, start: { revision: 3, skip: 2 } });
    assert.deepEqual(
      resumed.advance([put("k2", 3, "x"), put("k3", 3, "x"), put("k4", 3, "x")], true, () => 1, 10).map((m) => m.changes.map((c) => c.key)),
      [["k4"]],
      "resuming from 3:2 skips the two changes of revision 3 sent",
    );
  });
});

// Locks under every fault: clients contending with the SDK's recipe (sim/lock-workload.ts,
// deciding with core/kv/lock-turn.ts as client.lock does) pass the lock checker, and each
// lock mutant is caught by it on seeds the intact code passes.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { utf8Encode } from "../core/common/utf8.js";
import type { KvChange } from "../core/kv/store.js";
import { LockChecker } from "./check/locks.js";
import { InvariantViolation } from "./check/violation.js";
import { PROTOCOLS } from "./protocols.js";
import { runSimulation, type SimFailure } from "./simulation.js";

const put = (key: string, revision: number): KvChange => ({ key, revision, record: { key, value: utf8Encode("held"), createRevision: revision, modRevision: revision, version: 1 } });
const del = (key: string, revision: number): KvChange => ({ key, revision, record: null });

describe("locks in the simulator", () => {
  for (const [name, seeds] of [
    ["raft", 5],
    ["paxos", 3],
  ] as const) {
    test(`${name}: every acquisition is one the store granted — the holder's key the oldest at its read, tokens growing — through crashes, partitions and lapsed leases`, () => {
      const protocol = PROTOCOLS.get(name);
      assert.ok(protocol !== undefined);
      let acquisitions = 0;
      let lapses = 0;
      for (let seed = 1; seed <= seeds; seed++) {
        const result = runSimulation({ protocol, seed, workload: "lock" });
        assert.equal(result.failure, null, `seed ${seed}: ${result.failure?.checker}: ${result.failure?.message}`);
        acquisitions += result.stats.lock?.acquisitions ?? 0;
        lapses += result.stats.lock?.lapses ?? 0;
      }
      // Not a vacuous pass: the lock changed hands many times, and leases lapsed under it.
      assert.ok(acquisitions > 10 * seeds, `only ${acquisitions} acquisitions`);
      assert.ok(lapses >= seeds, `only ${lapses} lapsed leases`);
    });
  }

  for (const [mutant, pattern] of [
    ["lock-skips-own-key", /its key was gone/],
    ["lock-trusts-predecessor", /two holders at once|its key was gone/],
  ] as const) {
    test(`${mutant} is caught by the lock checker within 5 seeds; the intact code passes that seed`, () => {
      const raft = PROTOCOLS.get("raft");
      assert.ok(raft !== undefined);
      let caught: number | null = null;
      for (let seed = 1; seed <= 5 && caught === null; seed++) {
        const failure: SimFailure | null = runSimulation({ protocol: raft, seed, mutant }).failure;
        if (failure === null) continue;
        assert.equal(failure.checker, "lock", failure.message);
        assert.match(failure.message, pattern);
        caught = seed;
      }
      assert.ok(caught !== null, `${mutant} survived 5 seeds`);
      assert.equal(runSimulation({ protocol: raft, seed: caught, workload: "lock" }).failure, null);
    });
  }

  test("the checker: a holder whose key is gone, a second holder at once, and a revision no node reported each fail", () => {
    const fails = (setup: (checker: LockChecker) => void, pattern: RegExp): void => {
      const checker = new LockChecker("lock/");
      setup(checker);
      assert.throws(() => checker.check(), (error: unknown) => error instanceof InvariantViolation && error.checker === "lock" && pattern.test(error.message));
    };
    const history = (checker: LockChecker): void => {
      checker.committed([put("lock/a", 1)]);
      checker.committed([put("lock/b", 2)]);
      checker.committed([put("other", 3)]);
      checker.committed([del("lock/a", 4)]);
    };
    // The intact story: a holds from 1, b from 4 (a's key gone).
    const ok = new LockChecker("lock/");
    history(ok);
    ok.acquired({ client: 1, key: "lock/a", token: 1, revision: 2, atMicros: 0 });
    ok.acquired({ client: 2, key: "lock/b", token: 2, revision: 4, atMicros: 0 });
    ok.check();
    fails((c) => {
      history(c);
      c.acquired({ client: 1, key: "lock/a", token: 1, revision: 4, atMicros: 0 });
    }, /its key was gone/);
    fails((c) => {
      history(c);
      c.acquired({ client: 2, key: "lock/b", token: 2, revision: 3, atMicros: 0 });
    }, /two holders at once/);
    fails((c) => {
      c.committed([put("lock/a", 1)]);
      c.acquired({ client: 1, key: "lock/a", token: 1, revision: 3, atMicros: 0 });
    }, /no node reported committing revision 2/);
  });
});

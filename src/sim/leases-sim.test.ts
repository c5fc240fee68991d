// Leases under every fault: the lease workload passes the lease checker on the intact
// store and replica, and each lease mutant (core/kv/mutants.ts) is caught within 300 seeds,
// by the lease checker, on seeds the intact code passes.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvariantViolation } from "./check/violation.js";
import { LeaseChecker } from "./check/leases.js";
import { PROTOCOLS } from "./protocols.js";
import { runSimulation } from "./simulation.js";

const raft = PROTOCOLS.get("raft");
if (raft === undefined) throw new Error("no raft protocol");
const SEEDS_MAX = 300;

/** The first seed from 1 on whose run fails with `mutant`, and its failure. */
function firstCaught(mutant: string): { seed: number; checker: string; message: string } | null {
  for (let seed = 1; seed <= SEEDS_MAX; seed++) {
    const failure = runSimulation({ protocol: raft as NonNullable<typeof raft>, seed, mutant }).failure;
    if (failure !== null) return { seed, checker: failure.checker, message: failure.message };
  }
  return null;
}

describe("leases in the simulator", () => {
  test("the lease workload passes every checker under the seeds' faults and scenarios", () => {
    for (let seed = 1; seed <= 6; seed++) {
      const result = runSimulation({ protocol: raft, seed, workload: "leases" });
      assert.equal(result.failure, null, `seed ${seed}: ${result.failure?.checker}: ${result.failure?.message}`);
    }
  });

  for (const [mutant, pattern] of [
    ["lease-follower-clock", /replicas must expire the same leases at the same entry|though a keep-alive .* was acknowledged/],
    ["lease-no-extend", /a new leader must extend every lease/],
  ] as const) {
    test(`${mutant} is caught by the lease checker within ${SEEDS_MAX} seeds; the intact code passes that seed`, () => {
      const caught = firstCaught(mutant);
      assert.ok(caught !== null, `${mutant} survived ${SEEDS_MAX} seeds`);
      assert.equal(caught.checker, "leases", caught.message);
      assert.match(caught.message, pattern);
      const intact = runSimulation({ protocol: raft, seed: caught.seed, workload: "leases" });
      assert.equal(intact.failure, null, `the intact code fails seed ${caught.seed} too: ${intact.failure?.message}`);
    });
  }
});

describe("the lease checker", () => {
  const EPOCH = 1_000_000;
  test("replicas that expire different leases at one entry are a violation", () => {
    const checker = new LeaseChecker(EPOCH);
    checker.applied(1, 5, 1, EPOCH + 9000, [{ id: 2, deleted: 1, revision: 4 }]);
    checker.applied(2, 5, 1, EPOCH + 9000, [{ id: 2, deleted: 1, revision: 4 }]);
    assert.throws(() => checker.applied(3, 5, 1, EPOCH + 9000, []), InvariantViolation);
  });

  test("an expiry before the time to live after an acknowledged keep-alive's send is a violation; at it, not", () => {
    const checker = new LeaseChecker(EPOCH);
    checker.renewed(2, 1000, 3_000_000);
    assert.throws(() => checker.applied(1, 7, 1, EPOCH + 3999, [{ id: 2, deleted: 0, revision: 0 }]), /a keep-alive sent at 3000 ms was acknowledged/);
    new LeaseChecker(EPOCH).applied(1, 7, 1, EPOCH + 4000, [{ id: 2, deleted: 0, revision: 0 }]);
  });

  test("an expiry less than a time to live after the entry's leader took over is a violation", () => {
    const checker = new LeaseChecker(EPOCH);
    checker.renewed(2, 1000, 1_000_000);
    checker.leaderElected(4, 5_000_000);
    assert.throws(() => checker.applied(1, 9, 4, EPOCH + 5500, [{ id: 2, deleted: 0, revision: 0 }]), /must extend every lease/);
    checker.applied(1, 10, 4, EPOCH + 6000, [{ id: 2, deleted: 0, revision: 0 }]);
  });

  test("an expiry that deletes fewer keys than were attached is a violation", () => {
    const checker = new LeaseChecker(EPOCH);
    checker.attached(2, "lease/1/1");
    assert.throws(() => checker.applied(1, 3, 1, EPOCH + 9000, [{ id: 2, deleted: 0, revision: 0 }]), /1 were attached/);
  });
});

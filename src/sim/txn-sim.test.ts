// Transactions across groups under every fault (issue 18): the simulator's bank and txn
// workloads (sim/txn-workload.ts) drive the production coordinator and recovery
// (core/kv/txn-coordinator.ts, run by sim/txn-node.ts) and the range state machines'
// phases (core/kv/intents.ts) over three groups; the bank's totals, the transactional
// checker (Elle's list-append, strict serializability) and the liveness check (no intent
// left once healed) pass, and each transaction mutant is caught on a seed the intact code passes.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TXN_MUTANTS, type TxnMutant } from "../core/kv/mutants.js";
import { PROTOCOLS } from "./protocols.js";
import { runSimulation, type SimFailure } from "./simulation.js";

describe("transactions across groups in the simulator", () => {
  for (const [name, workload, seeds] of [
    ["raft", "bank", 2],
    ["paxos", "bank", 1],
    ["raft", "txn", 2],
    ["paxos", "txn", 1],
  ] as const) {
    test(`${name}, ${workload}: ${workload === "bank" ? "every read of all accounts and every node's stores sum to the total" : "the list-append history is strictly serializable"}, and no intent is left once healed`, () => {
      const protocol = PROTOCOLS.get(name);
      assert.ok(protocol !== undefined);
      let committed = 0;
      let balancedReads = 0;
      let contended = 0;
      for (let seed = 1; seed <= seeds; seed++) {
        const result = runSimulation({ protocol, seed, workload });
        assert.equal(result.failure, null, `seed ${seed}: ${result.failure?.checker}: ${result.failure?.message}`);
        assert.equal(result.params.groups, 3, "a transaction workload runs over three groups unless told otherwise");
        const stats = result.stats.txn;
        assert.ok(stats !== undefined);
        committed += stats.committed;
        balancedReads += stats.balancedReads ?? 0;
        contended += stats.conflicts + stats.aborted;
      }
      // Not a vacuous pass: many transactions committed, and many met another one.
      assert.ok(committed > 100 * seeds, `only ${committed} committed`);
      assert.ok(contended > 5 * seeds, `only ${contended} conflicts and aborts`);
      if (workload === "bank") assert.ok(balancedReads > 20 * seeds, `only ${balancedReads} reads of every account`);
    });
  }

  const caughtBy: Record<TxnMutant, { readonly workload: "bank" | "txn"; readonly checker: string; readonly pattern: RegExp }> = {
    "txn-commit-unprepared": { workload: "bank", checker: "bank", pattern: /money was made or lost/ },
    "txn-resolve-unread": { workload: "bank", checker: "bank", pattern: /money was made or lost/ },
    "txn-no-recovery": { workload: "bank", checker: "transactions", pattern: /no liveness for transactions/ },
    "txn-skip-validation": { workload: "txn", checker: "transactions", pattern: /is not serializable/ },
    "txn-reads-unlocked": { workload: "bank", checker: "bank", pattern: /money was made or lost/ },
  };
  for (const mutant of Object.keys(TXN_MUTANTS) as TxnMutant[]) {
    const { workload, checker, pattern } = caughtBy[mutant];
    test(`${mutant} is caught by the ${checker} check (${workload}) within 10 seeds; the intact code passes that seed`, () => {
      const raft = PROTOCOLS.get("raft");
      assert.ok(raft !== undefined);
      let caught: number | null = null;
      for (let seed = 1; seed <= 10 && caught === null; seed++) {
        const failure: SimFailure | null = runSimulation({ protocol: raft, seed, mutant, workload }).failure;
        if (failure === null) continue;
        assert.equal(failure.checker, checker, failure.message);
        assert.match(failure.message, pattern);
        caught = seed;
      }
      assert.ok(caught !== null, `${mutant} survived 10 seeds`);
      assert.equal(runSimulation({ protocol: raft, seed: caught, workload }).failure, null);
    });
  }
});

// The Raft engine in the deterministic simulator: every fault class on, every checker on.
// The long runs (`npx synod sim --protocol raft --seeds 1000`) are outside npm test.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EngineFactory } from "../engine/contract.js";
import { runSimulation } from "../../sim/simulation.js";
import { raftFactory } from "./index.js";

const raft = raftFactory() as EngineFactory<unknown, unknown>;

describe("raft in the simulator", () => {
  test("60 seeds with every fault class: linearizable, nothing lost, live, invariants hold", () => {
    for (let seed = 1; seed <= 60; seed++) {
      const result = runSimulation({ protocol: raft, seed });
      assert.equal(result.failure, null, `seed ${seed}: ${result.failure?.checker}: ${result.failure?.message}`);
      assert.ok(result.stats.operations.ok > 100, `seed ${seed}: only ${result.stats.operations.ok} operations served`);
    }
  });

  test("it elects leaders again and again under faults", () => {
    let terms = 0;
    for (let seed = 100; seed < 110; seed++) terms += runSimulation({ protocol: raft, seed }).stats.leaderTerms;
    assert.ok(terms >= 20, `only ${terms} leaderships in 10 runs`);
  });

  test("the transfer-lease adversary catches a leader that keeps its lease after handing over", () => {
    let caught = 0;
    for (let seed = 1; seed <= 30 && caught === 0; seed++) {
      if (runSimulation({ protocol: raft, seed, mutant: "transfer-keeps-lease", scenario: "transfer-lease-adversary" }).failure?.checker === "linearizability") caught++;
    }
    assert.ok(caught > 0, "transfer-keeps-lease survived 30 seeds of its adversary");
  });

  test("random reconfigurations under every fault: 15 seeds pass every checker", () => {
    for (let seed = 1; seed <= 15; seed++) {
      const result = runSimulation({ protocol: raft, seed, scenario: "reconfiguration" });
      assert.equal(result.failure, null, `seed ${seed}: ${result.failure?.checker}: ${result.failure?.message}`);
    }
  });

  // Each membership mistake, and the scenario built to expose it (docs/raft.md has the rates).
  const membershipMutants = [
    { mutant: "two-changes-in-flight", scenario: "membership-adversary", checkers: ["leader-completeness", "state-machine-safety", "lost-write", "linearizability"] },
    { mutant: "learner-vote-counts", scenario: "learner-vote-adversary", checkers: ["leader-completeness", "election-safety"] },
    { mutant: "config-on-commit", scenario: "reconfiguration", checkers: ["majority-commit"] },
  ];
  for (const { mutant, scenario, checkers } of membershipMutants) {
    test(`the ${scenario} scenario catches the ${mutant} mutant, which passes without it`, () => {
      let caught = 0;
      for (let seed = 1; seed <= 10 && caught === 0; seed++) {
        const failure = runSimulation({ protocol: raft, seed, mutant, scenario }).failure;
        if (failure !== null && checkers.includes(failure.checker)) caught++;
      }
      assert.ok(caught > 0, `${mutant} survived 10 seeds of ${scenario}`);
      const correct = runSimulation({ protocol: raft, seed: 1, scenario }).failure;
      assert.equal(correct, null, `the correct engine fails ${scenario}: ${correct?.checker}: ${correct?.message}`);
    });
  }

  for (const mutant of ["vote-twice", "keep-conflicting-entries", "apply-before-commit"]) {
    test(`the simulator catches the ${mutant} mutant`, () => {
      let caught = 0;
      for (let seed = 1; seed <= 40 && caught === 0; seed++) if (runSimulation({ protocol: raft, seed, mutant }).failure !== null) caught++;
      assert.ok(caught > 0, `${mutant} survived 40 seeds`);
    });
  }
});

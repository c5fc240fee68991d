// The Raft engine in the deterministic simulator: every fault class on, every checker on.
// The long runs (`npx synod sim --protocol raft --seeds 1000`, and `npm run sim:soak`'s
// 10,000 seeds of every engine) are outside npm test.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EngineFactory } from "../engine/contract.js";
import { runSimulation } from "../../sim/simulation.js";
import { raftFactory } from "./index.js";

const raft = raftFactory() as EngineFactory<unknown, unknown>;

describe("raft in the simulator", () => {
  test("20 seeds with every fault class: linearizable, nothing lost, live, invariants hold", () => {
    for (let seed = 1; seed <= 20; seed++) {
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

  test("issue 21: seed 109783, which failed the reconfiguration check by bad luck, passes", () => {
    // Since the replica core and pipelined Readies its history is another: node 1, leading
    // term 3, accepts node 5 as a voter at 4290 ms, and that change commits before the next
    // one is accepted at 4470 ms. The no-chance case it once showed is kept by the next
    // test, on a seed whose history still has it.
    const result = runSimulation({ protocol: raft, seed: 109783 });
    assert.equal(result.params.scenario, "reconfiguration");
    assert.equal(result.failure, null, `${result.failure?.checker}: ${result.failure?.message}`);
  });

  test("issue 21: a reconfiguration run that offered no chance to commit a change passes, and its story says why", () => {
    // Seed 18: node 1 leads term 2 at 2869 ms and is asked for a change before it committed
    // an entry of its term (refused, as thesis 4.1 requires), then is paused and cut off;
    // leading term 3 from 5802 ms (settled at 5811 ms) it accepts voters 1,2,3,4 at 5859 ms,
    // and node 4, needed by a majority of that configuration, crashes 5 ms later. No leader
    // after node 1 crashes at 6131 ms: no window had 1 s left for a change to commit. (Five
    // requests since a follower back from a pause catches up a few ticks, not all.)
    const result = runSimulation({ protocol: raft, seed: 18, scenario: "reconfiguration", fullTrace: true });
    assert.equal(result.failure, null, `${result.failure?.checker}: ${result.failure?.message}`);
    const verdict = result.trace.find((line) => line.includes("no configuration change committed"));
    assert.match(verdict ?? "", /none of 5 request\(s\) \(\d+ more times there was no leader to ask\) had the chance/);
    assert.match(verdict ?? "", /the longest serving window: node 1 led term 3 with nodes [\d,]+ running and linked with it from 5802\.316ms to 5864\.645ms/);
    // The same history with an engine that cannot commit a change at all: still no chance, no scenario failure.
    assert.notEqual(runSimulation({ protocol: raft, seed: 18, scenario: "reconfiguration", mutant: "config-never-commits" }).failure?.checker, "scenario reconfiguration");
  });

  // Each membership mistake, and the scenario built to expose it (docs/raft.md has the rates).
  const membershipMutants = [
    { mutant: "two-changes-in-flight", scenario: "membership-adversary", checkers: ["leader-completeness", "state-machine-safety", "lost-write", "linearizability"] },
    { mutant: "learner-vote-counts", scenario: "learner-vote-adversary", checkers: ["leader-completeness", "election-safety"] },
    { mutant: "config-on-commit", scenario: "reconfiguration", checkers: ["majority-commit"] },
    // The scenario's own progress check, not liveness at the end: it fires on the first
    // change a settled leader with a connected majority fails to commit.
    { mutant: "config-never-commits", scenario: "reconfiguration", checkers: ["scenario reconfiguration"] },
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

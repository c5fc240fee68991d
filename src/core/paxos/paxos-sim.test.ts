// The Multi-Paxos engine in the deterministic simulator: every fault class on, every checker
// that applies on (one value per slot among them). The long runs (`npx synod sim --protocol
// paxos --seeds 1000`, and `npm run sim:soak`'s 10,000 seeds of every engine) are outside
// npm test; docs/paxos.md has their figures and each mutant's catch rate over 300 seeds.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EngineFactory } from "../engine/contract.js";
import { runSimulation } from "../../sim/simulation.js";
import { paxosFactory } from "./index.js";

const paxos = paxosFactory() as EngineFactory<unknown, unknown>;

describe("paxos in the simulator", () => {
  test("15 seeds with every fault class: linearizable, nothing lost, live, one value per slot", () => {
    for (let seed = 1; seed <= 15; seed++) {
      const result = runSimulation({ protocol: paxos, seed });
      assert.equal(result.failure, null, `seed ${seed}: ${result.failure?.checker}: ${result.failure?.message}`);
      assert.ok(result.stats.operations.ok > 100, `seed ${seed}: only ${result.stats.operations.ok} operations served`);
    }
  });

  test("random reconfigurations under every fault: 10 seeds pass every checker, and changes are made", () => {
    for (let seed = 1; seed <= 10; seed++) {
      const result = runSimulation({ protocol: paxos, seed, scenario: "reconfiguration" });
      assert.equal(result.failure, null, `seed ${seed}: ${result.failure?.checker}: ${result.failure?.message}`);
    }
  });

  // Each mutant, the scenario that exposes it soonest, and the checkers that may report it.
  const cases = [
    { mutant: "accept-below-promise", scenario: "random", checkers: ["one-value-per-slot", "state-machine-safety", "lost-write", "linearizability"] },
    { mutant: "count-stale-promise", scenario: "stale-promise-adversary", checkers: ["one-value-per-slot"] },
    { mutant: "skip-phase1", scenario: "random", checkers: ["one-value-per-slot", "state-machine-safety", "lost-write", "linearizability"] },
    { mutant: "answer-before-durable", scenario: "lost-acceptance-adversary", checkers: ["one-value-per-slot", "state-machine-safety", "lost-write", "linearizability"] },
    { mutant: "apply-unchosen", scenario: "random", checkers: ["state-machine-safety", "assertion", "linearizability", "lost-write", "liveness", "one-value-per-slot"] },
    { mutant: "noop-fill-without-phase1", scenario: "random", checkers: ["one-value-per-slot", "state-machine-safety", "lost-write", "linearizability"] },
    { mutant: "learn-any-ballot", scenario: "random", checkers: ["one-value-per-slot", "state-machine-safety", "lost-write", "linearizability"] },
    { mutant: "read-without-quorum", scenario: "transfer-lease-adversary", checkers: ["linearizability"] },
    { mutant: "count-own-undurable", scenario: "own-acceptance-adversary", checkers: ["one-value-per-slot", "state-machine-safety", "lost-write", "linearizability"] },
  ];
  for (const { mutant, scenario, checkers } of cases) {
    test(`the simulator catches the ${mutant} mutant (${scenario}), and the correct engine passes that seed`, () => {
      let caught: number | null = null;
      for (let seed = 1; seed <= 30 && caught === null; seed++) {
        const failure = runSimulation({ protocol: paxos, seed, mutant, scenario }).failure;
        if (failure !== null) {
          assert.ok(checkers.includes(failure.checker), `seed ${seed}: ${failure.checker}: ${failure.message}`);
          caught = seed;
        }
      }
      assert.ok(caught !== null, `${mutant} survived 30 seeds of ${scenario}`);
      const correct = runSimulation({ protocol: paxos, seed: caught, scenario }).failure;
      assert.equal(correct, null, `the correct engine fails seed ${caught} of ${scenario}: ${correct?.checker}: ${correct?.message}`);
    });
  }
});

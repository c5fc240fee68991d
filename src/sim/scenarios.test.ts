import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { raftFactory } from "../core/raft/index.js";
import { pickScenario, scenarioApplies, SCENARIO_NAMES, SCENARIOS } from "./scenarios.js";
import { runSimulation } from "./simulation.js";
import { Prng } from "../core/common/prng.js";

const raft = raftFactory();
const SEEDS_PER_SCENARIO = 3;

describe("simulator scenarios: Raft passes every one, with every checker on", () => {
  for (const scenario of SCENARIOS.filter((s) => scenarioApplies(s, "raft"))) {
    test(`${scenario.name}: ${scenario.description}`, () => {
      for (let seed = 1; seed <= SEEDS_PER_SCENARIO; seed++) {
        const result = runSimulation({ protocol: raft, seed, scenario: scenario.name });
        assert.equal(result.params.scenario, scenario.name);
        assert.equal(result.failure, null, `seed ${seed}: ${result.failure?.checker}: ${result.failure?.message}`);
        assert.ok(result.stats.operations.ok > 0, `seed ${seed}: no operation succeeded`);
      }
    });
  }
});

describe("scenario selection", () => {
  for (const protocol of ["raft", "paxos"]) {
    test(`random draws every scenario that applies to ${protocol} eventually, and no other, mostly the mixed nemesis`, () => {
      const prng = new Prng(7);
      const seen = new Map<string, number>();
      for (let i = 0; i < 5000; i++) {
        const name = pickScenario(prng, true, true, protocol).name;
        seen.set(name, (seen.get(name) ?? 0) + 1);
      }
      const applicable = SCENARIOS.filter((s) => scenarioApplies(s, protocol)).map((s) => s.name);
      assert.ok(applicable.length < SCENARIOS.length, "some scenario is about one protocol only");
      assert.deepEqual([...seen.keys()].sort(), applicable.sort());
      const top = [...seen.entries()].sort((a, b) => b[1] - a[1])[0];
      assert.equal(top?.[0], "mixed");
    });
  }

  test("the same seed plays the same scenario; a named one is honoured; an unknown one refused", () => {
    const a = runSimulation({ protocol: raft, seed: 42 });
    const b = runSimulation({ protocol: raft, seed: 42 });
    assert.equal(a.params.scenario, b.params.scenario);
    assert.deepEqual(a.stats, b.stats);
    assert.equal(runSimulation({ protocol: raft, seed: 42, scenario: "figure-8" }).params.nodes, 5);
    assert.throws(() => runSimulation({ protocol: raft, seed: 1, scenario: "no-such" }), /no scenario "no-such"/);
    assert.ok(SCENARIO_NAMES.includes("random"));
  });

  test("narrowing the fault classes plays the mixed nemesis with exactly those", () => {
    const result = runSimulation({ protocol: raft, seed: 5, faults: ["crash"] });
    assert.equal(result.params.scenario, "mixed");
    assert.deepEqual(result.params.faults, ["crash"]);
  });
});

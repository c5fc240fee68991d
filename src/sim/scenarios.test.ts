import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { OverloadedError } from "../core/common/errors.js";
import type { Engine, EngineFactory, TuningHints } from "../core/engine/contract.js";
import { raftFactory } from "../core/raft/index.js";
import { pickScenario, scenarioApplies, SCENARIO_NAMES, SCENARIOS } from "./scenarios.js";
import { runSimulation } from "./simulation.js";
import { Prng } from "../core/common/prng.js";

const raft = raftFactory();
/**
 * One seed of each scenario: each runs, with its own checks, and Raft passes it. Many seeds
 * are the soak's (`npm run sim:soak`: 10,000 seeds, each scenario drawn at random) and
 * `npx synod sim --protocol raft --scenario NAME --seeds N`'s.
 */
const SEEDS_PER_SCENARIO = 1;

describe("simulator scenarios: Raft passes every one, with every checker on", () => {
  for (const scenario of SCENARIOS.filter((s) => scenarioApplies(s, "raft"))) {
    test(`${scenario.name}: ${scenario.description}`, () => {
      for (let seed = 1; seed <= SEEDS_PER_SCENARIO; seed++) {
        const result = runSimulation({ protocol: raft, seed, scenario: scenario.name, ...(scenario.needsSplits === true ? { groups: 2, splits: 6 } : {}) });
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
      // Not those about splits: they run only with --splits, asked for by name.
      const applicable = SCENARIOS.filter((s) => scenarioApplies(s, protocol) && s.needsSplits !== true).map((s) => s.name);
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

/**
 * Raft with one ability taken away, for showing that a scenario's progress check still
 * fires when the run offered the chance and the engine wasted it.
 */
function crippled(change: (engine: Engine<unknown, unknown>) => void): EngineFactory<unknown, unknown> {
  const wrap = (factory: EngineFactory<unknown, unknown>): EngineFactory<unknown, unknown> => ({
    ...factory,
    create: (options, mutant) => {
      const engine = factory.create(options, mutant);
      change(engine);
      return engine;
    },
    ...(factory.tuned === undefined ? {} : { tuned: (prng: Prng, hints?: TuningHints) => {
      const tuned = (factory.tuned as NonNullable<EngineFactory<unknown, unknown>["tuned"]>)(prng, hints);
      return { ...tuned, factory: wrap(tuned.factory) };
    } }),
  });
  return wrap(raft as EngineFactory<unknown, unknown>);
}

/** Nodes tick (and so campaign) only while their term is below `term`; leaders always. */
const campaignsBelowTerm = (term: number) =>
  crippled((engine) => {
    const tick = engine.tick.bind(engine);
    engine.tick = () => {
      const status = engine.status();
      if (status.role === "leader" || status.term < term) tick();
    };
  });

describe("scenario progress checks fire when the engine wastes the chance the run offered", () => {
  const cases: { scenario: string; engine: EngineFactory<unknown, unknown>; message: RegExp }[] = [
    { scenario: "leader-transfer", engine: crippled((e) => (e.transferLeadership = () => ({ accepted: true }))), message: /leadership moved within 1000\.000ms of none; the first: node \d+ \(term \d+, settled at [\d.]+ms\) was asked/ },
    { scenario: "initial-election", engine: campaignsBelowTerm(0), message: /no leader elected, though nodes 1,2,3(,4,5)? were running and linked with each other from the start/ },
    { scenario: "reelection", engine: campaignsBelowTerm(1), message: /no new leader 2000 ms after leader \d+ \(term 1\) was cut off, though nodes [\d,]+ were running and linked/ },
    {
      scenario: "basic-agreement",
      engine: crippled((e) => (e.propose = () => ({ accepted: false, error: new OverloadedError("refusing every proposal") }))),
      message: /only 1 entries committed in a fault-free phase, though node \d+ led term 1 with nodes [\d,]+ running and linked with it from/,
    },
  ];
  for (const { scenario, engine, message } of cases) {
    test(scenario, () => {
      const failure = runSimulation({ protocol: engine, seed: 1, scenario }).failure;
      assert.equal(failure?.checker, `scenario ${scenario}`, `${failure?.checker}: ${failure?.message}`);
      assert.match(failure?.message ?? "", message);
    });
  }
});

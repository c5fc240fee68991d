// The simulator runs the production replica, so a mistake in the replica's own loop is a
// bug the simulator finds: persist-before-send broken (the send-before-persist mutant) is
// caught, and the intact replica passes the same seeds.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EngineFactory } from "../engine/contract.js";
import { raftFactory } from "../raft/index.js";
import { runSimulation } from "../../sim/simulation.js";

const raft = raftFactory() as EngineFactory<unknown, unknown>;

describe("replica: the simulator drives the production loop", () => {
  test("send-before-persist is caught by leader churn with crashes inside fsyncs; the intact replica passes those seeds", () => {
    const caught: number[] = [];
    for (let seed = 1; seed <= 12 && caught.length === 0; seed++) {
      const failure = runSimulation({ protocol: raft, seed, mutant: "send-before-persist", scenario: "leader-churn" }).failure;
      if (failure !== null) {
        assert.ok(["majority-commit", "election-safety", "lost-write", "leader-completeness", "state-machine-safety", "linearizability"].includes(failure.checker), `seed ${seed}: ${failure.checker}: ${failure.message}`);
        caught.push(seed);
      }
    }
    assert.ok(caught.length > 0, "send-before-persist survived 12 seeds of leader churn");
    const seed = caught[0] as number;
    const intact = runSimulation({ protocol: raft, seed, scenario: "leader-churn" }).failure;
    assert.equal(intact, null, `the intact replica fails seed ${seed}: ${intact?.checker}: ${intact?.message}`);
  });
});

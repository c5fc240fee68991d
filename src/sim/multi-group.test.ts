/**
 * `synod sim --groups N`: every simulated node hosts one replica per group over the same
 * members; faults hit the node and so all its groups; every checker runs per group.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EngineFactory } from "../core/engine/contract.js";
import { groupOfKey } from "../core/multi/group.js";
import { PROTOCOLS } from "./protocols.js";
import { groupsConflict, runSimulation, SIM_GROUPS_MAX } from "./simulation.js";

const protocol = (name: string): EngineFactory<unknown, unknown> => {
  const factory = PROTOCOLS.get(name);
  assert.ok(factory !== undefined, name);
  return factory;
};

describe("simulator: many groups per node", () => {
  test("raft, 4 groups: every group serves reads and writes of its own keys, and every per-group checker passes", () => {
    for (const seed of [1, 2, 3]) {
      const result = runSimulation({ protocol: protocol("raft"), seed, groups: 4 });
      assert.equal(result.failure, null, `seed ${seed}: ${result.failure?.checker}: ${result.failure?.message}`);
      assert.equal(result.params.groups, 4);
      const served = new Map<number, number>();
      for (const op of result.history) if (op.status === "ok") served.set(groupOfKey(op.key, 4), (served.get(groupOfKey(op.key, 4)) ?? 0) + 1);
      for (let group = 0; group < 4; group++) assert.ok((served.get(group) ?? 0) > 10, `seed ${seed}: group ${group} served ${served.get(group) ?? 0} operations`);
      // The groups' syncs went through group commit: never more disk syncs than requests.
      const commit = result.stats.groupCommit;
      assert.ok(commit !== undefined && commit.deviceSyncs > 0 && commit.deviceSyncs <= commit.requests, JSON.stringify(commit));
    }
  });

  test("crashes and pauses hit the node, so all its groups, and every group still passes (raft and paxos)", () => {
    for (const name of ["raft", "paxos"]) {
      let crashes = 0;
      for (const seed of [11, 12]) {
        const result = runSimulation({ protocol: protocol(name), seed, groups: 3, faults: ["crash", "pause", "partition", "drop"] });
        assert.equal(result.failure, null, `${name} seed ${seed}: ${result.failure?.checker}: ${result.failure?.message}`);
        crashes += result.stats.crashes;
      }
      assert.ok(crashes > 0, `${name}: no crash happened`);
    }
  });

  test("the cross-group-delivery mutant (a message now and then handed to another group's replica) is caught", () => {
    let caught: number | null = null;
    // It fails 7 of seeds 1-20 (an engine's assertion: a message of another group's term
    // and log); 20 seeds without a catch would mean the mutant no longer does harm.
    for (let seed = 1; seed <= 20 && caught === null; seed++) {
      const result = runSimulation({ protocol: protocol("raft"), seed, groups: 4, mutant: "cross-group-delivery" });
      if (result.failure !== null) caught = seed;
    }
    assert.ok(caught !== null, "cross-group-delivery survived 20 seeds of 4 groups");
  });

  test("a reproduction names the groups; one group is the run before groups, with nothing new in it", () => {
    const four = runSimulation({ protocol: protocol("raft"), seed: 5, groups: 4, mutant: "cross-group-delivery" });
    assert.equal(four.request.groups, 4);
    const one = runSimulation({ protocol: protocol("raft"), seed: 5 });
    const explicit = runSimulation({ protocol: protocol("raft"), seed: 5, groups: 1 });
    assert.equal(one.request.groups, undefined);
    assert.equal(one.stats.groupCommit, undefined, "a one-group run's report is what it was");
    assert.deepEqual(explicit.stats, one.stats);
    assert.deepEqual(explicit.history, one.history);
  });

  test("--groups out of range, or with a user's state machine, is refused with what to do", () => {
    assert.match(groupsConflict(0, false) ?? "", /from 1 to 64/);
    assert.match(groupsConflict(SIM_GROUPS_MAX + 1, false) ?? "", /from 1 to 64/);
    assert.match(groupsConflict(2, true) ?? "", /KV store only/);
    assert.equal(groupsConflict(1, true), null);
    assert.equal(groupsConflict(SIM_GROUPS_MAX, false), null);
    assert.throws(() => runSimulation({ protocol: protocol("raft"), seed: 1, groups: 0 }), /from 1 to 64/);
  });
});

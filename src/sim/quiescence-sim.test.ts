/**
 * `synod sim --quiesce`: Raft's idle groups go quiet, each node wakes the quiet groups of a
 * peer it suspects failed, and quiescence's checks (sim/check/quiescence.ts) run beside
 * every other. Bounded: about ten seeds of 8 groups, a second or less each.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EngineFactory } from "../core/engine/contract.js";
import { groupOfKey } from "../core/multi/group.js";
import { PROTOCOLS } from "./protocols.js";
import { runSimulation, type SimOptions, type SimResult } from "./simulation.js";

const protocol = (name: string): EngineFactory<unknown, unknown> => {
  const factory = PROTOCOLS.get(name);
  assert.ok(factory !== undefined, name);
  return factory;
};

const quiet = (seed: number, extra: Partial<SimOptions> = {}): SimResult => runSimulation({ protocol: protocol("raft"), seed, groups: 8, quiesce: true, hotGroups: 2, ...extra });

/** The first of `seeds` the mutant fails, with the failure. */
function firstCaught(mutant: string, seeds: readonly number[]): SimResult | null {
  for (const seed of seeds) {
    const result = quiet(seed, { mutant });
    if (result.failure !== null) return result;
  }
  return null;
}

describe("simulator: quiescence (--quiesce)", () => {
  test("idle groups go quiet and every checker passes under faults; the groups send at least 30% fewer messages (every group serves through the heal, so the saving is the idle phase's)", () => {
    for (const seed of [1, 2, 3]) {
      const quietRun = quiet(seed);
      assert.equal(quietRun.failure, null, `seed ${seed}: ${quietRun.failure?.checker}: ${quietRun.failure?.message}`);
      const counts = quietRun.stats.quiescence;
      assert.ok(counts !== undefined && counts.groupTicks > 0);
      assert.ok(counts.quietGroupTicks / counts.groupTicks > 0.4, `seed ${seed}: quiet ${counts.quietGroupTicks} of ${counts.groupTicks} group-ticks`);
      const awake = runSimulation({ protocol: protocol("raft"), seed, groups: 8, hotGroups: 2 });
      assert.equal(awake.failure, null);
      assert.equal(awake.stats.quiescence, undefined);
      assert.ok(quietRun.stats.messagesSent < awake.stats.messagesSent * 0.7, `seed ${seed}: ${quietRun.stats.messagesSent} group messages quiet, ${awake.stats.messagesSent} awake`);
    }
  });

  test("without faults, a group the clients leave alone sends a twentieth of what it sends awake", () => {
    for (const seed of [1, 2]) {
      const quietRun = quiet(seed, { scenario: "mixed", faults: [], hotGroups: 1 });
      const awake = runSimulation({ protocol: protocol("raft"), seed, groups: 8, hotGroups: 1, scenario: "mixed", faults: [] });
      assert.equal(quietRun.failure, null, `seed ${seed}: ${quietRun.failure?.checker}: ${quietRun.failure?.message}`);
      // Awake, an idle group's leader heartbeats every tick or three; quiet, it sends almost
      // nothing (it wakes when it turns hot, and for the leader's clock entries).
      const idleQuiet = quietRun.stats.idleGroups;
      const idleAwake = awake.stats.idleGroups;
      assert.ok(idleQuiet !== undefined && idleAwake !== undefined && idleQuiet.groupSeconds === idleAwake.groupSeconds && idleQuiet.groupSeconds > 0);
      assert.ok(idleQuiet.messages * 20 < idleAwake.messages, `seed ${seed}: idle groups sent ${idleQuiet.messages} messages quiet, ${idleAwake.messages} awake`);
    }
  });

  test("a quiet group whose leader's node crashes or is cut off is woken by its node and elects (crash and partition faults)", () => {
    let wakes = 0;
    for (const seed of [21, 22, 23]) {
      const result = quiet(seed, { faults: ["crash", "partition", "pause", "drop"] });
      assert.equal(result.failure, null, `seed ${seed}: ${result.failure?.checker}: ${result.failure?.message}`);
      wakes += result.stats.quiescence?.wakes ?? 0;
    }
    assert.ok(wakes > 0, "no node ever woke a quiet group: the failures never hit one");
  });

  test("from the heal on every group serves again, the idle ones included", () => {
    const result = quiet(2);
    const heal = result.params.faultPhaseMicros;
    const served = new Set(result.history.filter((op) => op.status === "ok" && op.call >= heal).map((op) => groupOfKey(op.key, 8)));
    assert.equal(served.size, 8);
    const before = new Set(result.history.filter((op) => op.call < 900_000).map((op) => groupOfKey(op.key, 8)));
    assert.ok(before.size <= 2, `during the first second only the hot groups got requests: ${[...before].join(",")}`);
  });

  test("the mutant quiesce-with-lagging-follower is caught by the quiescence check", () => {
    const caught = firstCaught("quiesce-with-lagging-follower", [1, 2, 3, 4, 5]);
    assert.ok(caught !== null, "quiesce-with-lagging-follower survived seeds 1-5");
    assert.equal(caught.failure?.checker, "quiescence");
    assert.match(caught.failure?.message ?? "", /quiet/);
    assert.equal(quiet(caught.seed).failure, null, "the intact engine passes that seed");
  });

  test("the mutant no-wake-on-leader-failure is caught by the quiet-failover check", () => {
    const caught = firstCaught("no-wake-on-leader-failure", [3, 4]);
    assert.ok(caught !== null, "no-wake-on-leader-failure survived seeds 3 and 4");
    assert.equal(caught.failure?.checker, "quiet-failover");
    assert.equal(quiet(caught.seed).failure, null, "the intact node passes that seed");
  });

  test("--quiesce is refused for an engine that does not quiesce, and its mutants without it", () => {
    assert.throws(() => runSimulation({ protocol: protocol("paxos"), seed: 1, groups: 2, quiesce: true }), /does not quiesce/);
    assert.throws(() => runSimulation({ protocol: protocol("raft"), seed: 1, groups: 2, mutant: "no-wake-on-leader-failure" }), /run it with --quiesce/);
    assert.throws(() => runSimulation({ protocol: protocol("raft"), seed: 1, groups: 2, hotGroups: 3 }), /--hot-groups must be/);
  });
});

/**
 * `synod sim --groups N --balance-leaders`: the nodes spread their groups' leaderships by
 * the rule a sharded node runs (core/multi/leader-balance.ts), as leadership transfers
 * through the production replica, while the run injects its faults; every checker runs
 * beside. Bounded: a few seeds of 4 and 8 groups.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EngineFactory } from "../core/engine/contract.js";
import { PROTOCOLS } from "./protocols.js";
import { balancingConflict, runSimulation } from "./simulation.js";

const raft = PROTOCOLS.get("raft") as EngineFactory<unknown, unknown>;

describe("simulator: leaderships spread (--balance-leaders)", () => {
  test("under faults every checker passes while the nodes move leaderships, and a run without faults ends with every node leading within one group of the others", () => {
    let moves = 0;
    for (const seed of [1, 2, 3, 4]) {
      const run = runSimulation({ protocol: raft, seed, groups: 4, balanceLeaders: true });
      assert.equal(run.failure, null, `seed ${seed}: ${run.failure?.checker}: ${run.failure?.message}`);
      moves += run.stats.leadershipMoves ?? 0;
    }
    assert.ok(moves > 0, "leaderships were moved");
    for (const seed of [5, 6]) {
      const calm = runSimulation({ protocol: raft, seed, groups: 8, balanceLeaders: true, faults: [] });
      assert.equal(calm.failure, null);
      const counts = calm.stats.leadershipsAtEnd ?? [];
      assert.equal(counts.reduce((a, b) => a + b, 0), 8, `seed ${seed}: every group led once at the end (${counts.join(",")})`);
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `seed ${seed}: leaderships ${counts.join(",")}`);
    }
  });

  test("needs several groups and the KV store", () => {
    assert.match(balancingConflict(true, 1, false) ?? "", /--groups 2 or more/);
    assert.match(balancingConflict(true, 4, true) ?? "", /KV store only/);
    assert.equal(balancingConflict(true, 4, false), null);
    assert.equal(balancingConflict(false, 1, false), null);
  });
});

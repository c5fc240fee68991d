import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { leadershipMove, leadershipMoves } from "./leader-balance.js";

/** Each node's count of leaderships among `live`. */
function counts(leaders: ReadonlyMap<number, number | null>, live: readonly number[]): number[] {
  return live.map((id) => [...leaders.values()].filter((leader) => leader === id).length);
}

describe("leadershipMove", () => {
  test("every node applying the rule, in any order, ends with the live nodes' counts within one of each other, and never hands a leadership to a node that is not live", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 7 }),
        fc.integer({ min: 1, max: 64 }),
        fc.array(fc.nat(), { minLength: 64, maxLength: 64 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 200 }),
        (nodes, ranges, initial, downPicks, order) => {
          const all = Array.from({ length: nodes }, (_, i) => i + 1);
          const down = new Set(downPicks.map((pick) => all[pick % nodes] as number).slice(0, nodes - 1));
          const live = all.filter((id) => !down.has(id));
          // Leaders start anywhere live (a dead node's ranges re-elected among the live).
          const leaders = new Map(Array.from({ length: ranges }, (_, range) => [range, live[(initial[range] ?? 0) % live.length] as number | null]));
          // Rounds: each live node in turn (in a random order) makes the move it decides, if any.
          for (let round = 0; round < ranges * nodes + 10; round++) {
            let moved = false;
            // Every live node gets a turn each round, after some in a random order.
            for (const self of [...order.map((step) => live[step % live.length] as number), ...live]) {
              const move = leadershipMove({ self, live, leaders });
              if (move === null) continue;
              assert.equal(leaders.get(move.range), self, "a node moves only a leadership it holds");
              assert.ok(live.includes(move.to) && move.to !== self, "to another live node");
              leaders.set(move.range, move.to);
              moved = true;
            }
            if (!moved) break;
          }
          const final = counts(leaders, live);
          assert.ok(Math.max(...final) - Math.min(...final) <= 1, `counts ${final.join(",")} of ${ranges} ranges over ${live.length} live nodes`);
          for (const self of live) assert.equal(leadershipMove({ self, live, leaders }), null, "balanced: nobody moves");
        },
      ),
      { numRuns: 300 },
    );
  });

  test("several moves at a look: each of a distinct range self leads, to a live node; together they overshoot no count, the first is leadershipMove's, and looks of them balance too", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 5 }),
        fc.integer({ min: 1, max: 80 }),
        fc.array(fc.nat(), { minLength: 80, maxLength: 80 }),
        fc.integer({ min: 1, max: 20 }),
        (nodes, ranges, initial, max) => {
          const live = Array.from({ length: nodes }, (_, i) => i + 1);
          const leaders = new Map(Array.from({ length: ranges }, (_, range) => [range, live[(initial[range] ?? 0) % nodes] as number | null]));
          for (let round = 0; round < ranges + 10; round++) {
            let moved = false;
            for (const self of live) {
              const moves = leadershipMoves({ self, live, leaders }, max);
              assert.ok(moves.length <= max);
              assert.deepEqual(moves[0] ?? null, leadershipMove({ self, live, leaders }), "the first is the single rule's");
              assert.equal(new Set(moves.map((move) => move.range)).size, moves.length, "each range once");
              for (const move of moves) {
                assert.equal(leaders.get(move.range), self);
                assert.ok(live.includes(move.to) && move.to !== self);
                leaders.set(move.range, move.to);
              }
              const after = counts(leaders, live);
              const own = after[self - 1] as number;
              for (const move of moves) assert.ok((after[move.to - 1] as number) <= own + 1, `node ${move.to} now leads ${after[move.to - 1]}, self ${own}: overshot`);
              moved ||= moves.length > 0;
            }
            if (!moved) break;
          }
          const final = counts(leaders, live);
          assert.ok(Math.max(...final) - Math.min(...final) <= 1, `counts ${final.join(",")}`);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("waits while a range has no known leader, and moves nothing for a node that is not live", () => {
    const leaders = new Map<number, number | null>([
      [0, 1],
      [1, 1],
      [2, 1],
      [3, null],
    ]);
    assert.equal(leadershipMove({ self: 1, live: [1, 2, 3], leaders }), null);
    leaders.set(3, 1);
    assert.deepEqual(leadershipMove({ self: 1, live: [1, 2, 3], leaders }), { range: 3, to: 2 });
    assert.equal(leadershipMove({ self: 1, live: [2, 3], leaders }), null);
    // One range: nothing to spread.
    assert.equal(leadershipMove({ self: 1, live: [1, 2, 3], leaders: new Map([[0, 1]]) }), null);
  });

  test("where ranges are not on every node, a leadership goes only to a voter of its range", () => {
    const leaders = new Map<number, number | null>([
      [1, 1],
      [2, 1],
      [3, 1],
    ]);
    // Node 4 leads nothing, but holds only range 1: range 1's leadership goes there, not range 3's.
    const voters = new Map([
      [1, [1, 2, 4]],
      [2, [1, 2, 3]],
      [3, [1, 2, 3]],
    ]);
    assert.deepEqual(leadershipMove({ self: 1, live: [1, 2, 3, 4], leaders, voters }), { range: 3, to: 2 });
    const onlyFour = new Map([
      [1, [1, 4]],
      [2, [1]],
      [3, [1]],
    ]);
    assert.deepEqual(leadershipMove({ self: 1, live: [1, 2, 3, 4], leaders, voters: onlyFour }), { range: 1, to: 4 });
    assert.equal(leadershipMove({ self: 1, live: [1, 2, 3, 4], leaders, voters: new Map([[1, [1]], [2, [1]], [3, [1]]]) }), null);
  });
});

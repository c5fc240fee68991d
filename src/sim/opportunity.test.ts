import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { NodeId } from "../core/engine/contract.js";
import { describeWindow, OpportunityLog, type WorldState } from "./opportunity.js";

/** A world of nodes 1..5: who runs, which pairs are cut, who leads with which voters. */
function world(options: { down?: NodeId[]; cut?: [NodeId, NodeId][]; leader?: NodeId | null; term?: number; groups?: NodeId[][] }): WorldState {
  const cut = options.cut ?? [];
  const leader = options.leader === undefined ? 1 : options.leader;
  return {
    running: (id) => !(options.down ?? []).includes(id),
    linked: (a, b) => !cut.some(([x, y]) => (x === a && y === b) || (x === b && y === a)),
    leader: leader === null ? null : { id: leader, term: options.term ?? 1, groups: options.groups ?? [[1, 2, 3]] },
  };
}

describe("opportunity log: serving windows", () => {
  test("a leader with a running, linked majority serves until it loses the majority", () => {
    const log = new OpportunityLog([1, 2, 3, 4, 5]);
    log.observe(0, world({ leader: null }));
    log.observe(100, world({}));
    log.observe(200, world({ down: [2] })); // 1 and 3 still make a majority of {1,2,3}
    log.observe(300, world({ down: [2], cut: [[1, 3]] })); // now they do not
    log.observe(400, world({}));
    const windows = log.servingWindows(1000);
    assert.deepEqual(
      windows.map((w) => [w.leader, w.fromMicros, w.toMicros, w.reachable]),
      [
        [1, 100, 300, [1, 3, 4, 5]],
        [1, 400, 1000, [1, 2, 3, 4, 5]],
      ],
    );
    assert.match(describeWindow(windows[0] as never), /node 1 led term 1 with nodes 1,3,4,5 running and linked with it from 0\.100ms to 0\.300ms/);
  });

  test("a one-way cut breaks the link; a new term starts a new window; a joint configuration needs both halves", () => {
    const log = new OpportunityLog([1, 2, 3, 4, 5]);
    log.observe(0, world({}));
    log.observe(10, world({ term: 2 }));
    // Node 1's packets to the others are cut; theirs to it still arrive.
    const oneWay: WorldState = { ...world({ term: 2 }), linked: (from) => from !== 1 };
    log.observe(20, oneWay);
    log.observe(30, world({ term: 2, groups: [[1, 4, 5], [1, 2, 3]], down: [4, 5] }));
    assert.deepEqual(
      log.servingWindows(40).map((w) => [w.term, w.fromMicros, w.toMicros]),
      [
        [1, 0, 10],
        [2, 10, 20],
      ],
    );
  });

  test("a window is settled from the leader's first commit of its term, not before the window", () => {
    const log = new OpportunityLog([1, 2, 3]);
    log.observe(0, world({}));
    log.settle(1, 1, 50);
    log.observe(100, world({ down: [2, 3] }));
    log.observe(200, world({}));
    const [first, second] = log.servingWindows(300);
    assert.equal(first?.settledMicros, 50);
    assert.equal(second?.settledMicros, 200, "settled before this window began: settled from its start");
    assert.equal(new OpportunityLog([1, 2, 3]).servingWindows(10).length, 0);
  });
});

describe("opportunity log: connected groups", () => {
  test("the largest group running and linked with each other throughout, holding the nodes asked for", () => {
    const log = new OpportunityLog([1, 2, 3, 4, 5]);
    log.observe(0, world({ cut: [[1, 2]] }));
    log.observe(100, world({ cut: [[1, 2]], down: [5] }));
    log.observe(200, world({}));
    assert.deepEqual(log.connectedGroup(0, 50, [1, 2, 3, 4, 5], 3), [1, 3, 4, 5]);
    assert.deepEqual(log.connectedGroup(0, 150, [1, 2, 3, 4, 5], 3), [1, 3, 4]);
    assert.deepEqual(log.connectedGroup(0, 150, [1, 2, 3, 4, 5], 3, [2]), [2, 3, 4]);
    assert.deepEqual(log.connectedGroup(0, 150, [1, 2, 3, 4, 5], 3, [1, 2]), [], "1 and 2 were never linked");
    assert.deepEqual(log.connectedGroup(200, 300, [1, 2, 3, 4, 5], 3), [1, 2, 3, 4, 5]);
    assert.deepEqual(log.connectedGroup(250, 300, [2, 3], 3), [], "fewer than the minimum");
  });
});

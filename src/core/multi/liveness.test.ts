import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { NodeId } from "../engine/contract.js";
import { campaignTiming, createNodeLiveness, NodeLiveness } from "./liveness.js";

/** A stand-in for a group's engine: quiet or not, following `leader`. */
const engine = (quiet: boolean, leader: NodeId | null) => ({ quiescent: () => quiet, status: () => ({ leader }) });

describe("node liveness (waking quiet groups)", () => {
  test("a peer silent for suspectAfterTicks is suspected once, and cleared when heard from", () => {
    const liveness = new NodeLiveness({ self: 1, peers: [1, 2, 3], suspectAfterTicks: 5 });
    for (let i = 0; i < 4; i++) {
      liveness.heard(3);
      assert.deepEqual(liveness.tick(), []);
    }
    assert.deepEqual(liveness.tick(), [2], "node 2 went unheard for 5 ticks; node 3 answered");
    assert.deepEqual(liveness.tick(), [], "suspected once, not every tick");
    assert.equal(liveness.isSuspected(2), true);
    liveness.heard(2);
    assert.equal(liveness.isSuspected(2), false);
    assert.equal(liveness.anySuspected, false);
  });

  test("wakes the quiet groups whose leader is on a suspected node, and only those", () => {
    const liveness = new NodeLiveness({ self: 1, peers: [1, 2, 3], suspectAfterTicks: 2 });
    const quietUnder2 = engine(true, 2);
    const awakeUnder2 = engine(false, 2);
    const quietUnder3 = engine(true, 3);
    const quietUnderSelf = engine(true, 1);
    const engines = [quietUnder2, awakeUnder2, quietUnder3, quietUnderSelf, engine(true, null)];
    assert.deepEqual(liveness.toWake(engines), [], "nobody suspected: nothing to wake");
    liveness.tick();
    liveness.heard(3);
    assert.deepEqual(liveness.tick(), [2]);
    assert.deepEqual(liveness.toWake(engines), [quietUnder2]);
    assert.deepEqual(liveness.toWake(engines), [quietUnder2], "asked again, it says so again (a group may go quiet after the suspicion)");
  });

  test("once a group's leader is gone, one voter of it campaigns now and the others after a whole timeout; groups pick different ones", () => {
    const voters = [1, 2, 3];
    const gone3 = (id: NodeId): boolean => id === 3;
    const picks = [0, 1, 2, 3].map((group) => voters.filter((self) => self !== 3 && campaignTiming(self, group, voters, gone3) === "now"));
    assert.deepEqual(picks, [[1], [2], [1], [2]], "exactly one per group, alternating over the voters left");
    for (const group of [0, 1]) for (const self of [1, 2]) assert.equal(campaignTiming(self, group, voters, gone3), picks[group]?.[0] === self ? "now" : "full");
    assert.equal(campaignTiming(4, 0, voters, gone3), "remaining", "a node that is not a voter keeps its timer");
    assert.equal(campaignTiming(2, 0, voters, (id) => id === 3 || id === 1), "now", "a suspected voter is passed over");
    const liveness = new NodeLiveness({ self: 2, peers: [1, 2, 3], suspectAfterTicks: 1 });
    liveness.heard(3);
    assert.deepEqual(liveness.tick(), [1, 3]);
    liveness.heard(3);
    assert.equal(liveness.campaignTiming(0, voters, 3), "now", "node 1 suspected, node 3 the gone leader: node 2 is the only one left");
  });

  test("a node it does not know is ignored; the mutant never suspects anyone", () => {
    const liveness = new NodeLiveness({ self: 1, peers: [1, 2], suspectAfterTicks: 1 });
    liveness.heard(9);
    assert.equal(liveness.isSuspected(9), false);
    const mutant = createNodeLiveness({ self: 1, peers: [1, 2], suspectAfterTicks: 1 }, "no-wake-on-leader-failure");
    for (let i = 0; i < 10; i++) assert.deepEqual(mutant.tick(), []);
    assert.deepEqual(mutant.toWake([engine(true, 2)]), []);
    assert.throws(() => new NodeLiveness({ self: 1, peers: [1], suspectAfterTicks: 0 }), /positive integer/);
  });
});

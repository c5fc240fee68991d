import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Membership, NodeId } from "../engine/contract.js";
import { bootstrapMembership } from "./membership.js";
import { Progress } from "./progress.js";
import { isSoleQuorum, QuorumValue } from "./quorum.js";

/** A leader's progress map with the given match per member. */
function matches(byPeer: Record<NodeId, number>): Map<NodeId, Progress> {
  const progress = new Map<NodeId, Progress>();
  for (const [peer, match] of Object.entries(byPeer)) {
    const pr = new Progress(match + 1, 4, 1024);
    pr.match = match;
    progress.set(Number(peer), pr);
  }
  return progress;
}

const byMatch = (_peer: NodeId, pr: Progress): number => pr.match;

describe("5.3 and 4.3: the index a quorum holds", () => {
  test("the majority-th largest match of the voters: 3 of 4 hold index 7", () => {
    const quorum = new QuorumValue();
    assert.equal(quorum.of(bootstrapMembership([1, 2, 3, 4]), matches({ 1: 9, 2: 7, 3: 8, 4: 2 }), byMatch), 7);
    // The array reused between calls holds nothing over: a smaller group after a larger one.
    assert.equal(quorum.of(bootstrapMembership([1, 2, 3]), matches({ 1: 4, 2: 3, 3: 5 }), byMatch), 4);
  });

  test("a joint configuration takes the least of both halves' majorities; learners count toward neither", () => {
    const joint: Membership = { ...bootstrapMembership([1, 2, 3]), outgoing: [1, 4, 5], learners: [6] };
    const progress = matches({ 1: 10, 2: 9, 3: 8, 4: 3, 5: 2, 6: 10 });
    // New voters agree on 9; the outgoing ones only on 3 (node 1 at 10, node 4 at 3).
    assert.equal(new QuorumValue().of(joint, progress, byMatch), 3);
  });

  test("a node is a quorum alone only when it is the sole voter of every group", () => {
    assert.equal(isSoleQuorum(bootstrapMembership([1]), 1), true);
    assert.equal(isSoleQuorum(bootstrapMembership([1, 2]), 1), false);
    assert.equal(isSoleQuorum({ ...bootstrapMembership([1]), outgoing: [2] }, 1), false);
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { Membership, NodeId } from "../engine/contract.js";
import { rangeMembershipChange } from "./range-members.js";

const context = new Uint8Array([1, 2, 3]);
function membership(voters: NodeId[], learners: NodeId[] = [], autoPromote: NodeId[] = [], outgoing: NodeId[] = []): Membership {
  return { voters, outgoing, learners, autoPromote, autoLeave: true, context };
}

describe("a range's members follow group 0's", () => {
  test("the same members: nothing to do, in any order", () => {
    assert.equal(rangeMembershipChange(membership([1, 2, 3]), membership([3, 1, 2])), null);
  });

  test("a voter added or removed in group 0 is added or removed in the range, with group 0's directory", () => {
    assert.deepEqual(rangeMembershipChange(membership([1, 2, 3, 4]), membership([1, 2, 3])), { voters: [1, 2, 3, 4], learners: [], autoPromote: [], context });
    assert.deepEqual(rangeMembershipChange(membership([1, 2]), membership([1, 2, 3])), { voters: [1, 2], learners: [], autoPromote: [], context });
  });

  test("a learner to promote: added as one, and neither demoted when the range promotes it first nor forced when group 0 does", () => {
    assert.deepEqual(rangeMembershipChange(membership([1, 2, 3], [4], [4]), membership([1, 2, 3])), { voters: [1, 2, 3], learners: [4], autoPromote: [4], context });
    assert.equal(rangeMembershipChange(membership([1, 2, 3], [4], [4]), membership([1, 2, 3, 4])), null, "the range promoted it first");
    assert.equal(rangeMembershipChange(membership([1, 2, 3, 4]), membership([1, 2, 3], [4], [4])), null, "group 0 promoted it first; the range will");
    assert.deepEqual(rangeMembershipChange(membership([1, 2, 3, 4]), membership([1, 2, 3], [4], [])), { voters: [1, 2, 3, 4], learners: [], autoPromote: [], context }, "a learner not set to be promoted is promoted by hand");
  });

  test("nothing is proposed while either configuration is joint", () => {
    assert.equal(rangeMembershipChange(membership([1, 2, 3, 4]), membership([1, 2, 3], [], [], [1, 2])), null);
    assert.equal(rangeMembershipChange(membership([1, 2, 3, 4], [], [], [1, 2, 3]), membership([1, 2, 3])), null);
  });

  test("applying the change it proposes leaves nothing more to do (any configurations)", () => {
    const ids = fc.uniqueArray(fc.integer({ min: 1, max: 7 }), { maxLength: 7 });
    fc.assert(
      fc.property(ids, ids, fc.array(fc.boolean(), { minLength: 7, maxLength: 7 }), ids, (clusterIds, rangeIds, isLearner, promote) => {
        const split = (list: number[]): [number[], number[]] => [list.filter((id) => !isLearner[id - 1]), list.filter((id) => isLearner[id - 1] === true)];
        const [cv, cl] = split(clusterIds);
        const [rv, rl] = split(rangeIds);
        const cluster = membership(cv, cl, cl.filter((id) => promote.includes(id)));
        const range = membership(rv, rl, rl.filter((id) => promote.includes(id)));
        const change = rangeMembershipChange(cluster, range);
        if (change === null) return;
        const after = membership([...change.voters], [...change.learners], [...(change.autoPromote ?? [])]);
        assert.equal(rangeMembershipChange(cluster, after), null);
        // Every member of group 0 is a member of the range after it, and no one else.
        assert.deepEqual([...change.voters, ...change.learners].sort(), [...cv, ...cl].sort());
      }),
    );
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Membership } from "../engine/contract.js";
import { adoptable, fresher, removedFrom, strayReplica, type RangeDescription } from "./placement-directory.js";

const config = (voters: number[], learners: number[] = []): Membership => ({ voters, learners, outgoing: [], autoPromote: [], autoLeave: true, context: new Uint8Array(0) });
const described = (fields: Partial<RangeDescription>): RangeDescription => ({ epoch: 1, term: 2, role: "leader", leader: 1, voters: [1, 2, 3], learners: [], applied: 50, ...fields });

describe("what a node decides from its peers' descriptions of a range", () => {
  test("the fresher description: a later epoch (a split), then term, then the leader's own, then the further applied", () => {
    const base = described({ role: "follower", applied: 90 });
    assert.equal(fresher(base, described({ epoch: 2, term: 1 })).epoch, 2);
    assert.equal(fresher(base, described({ term: 3, applied: 1 })).term, 3);
    assert.equal(fresher(base, described({ applied: 10 })).role, "leader");
    assert.equal(fresher(described({ role: "follower", applied: 10 }), base).applied, 90);
  });

  test("removed: by the configuration it applied, or by its leader's, applied past the end of its log; not by a removal only in its log, nor by a description older than its joining", () => {
    // Node 4 joined (its log holds that configuration, up to index 40).
    const own = { membership: config([1, 2, 3], [4]), appliedMembership: config([1, 2, 3], [4]), lastIndex: 40 };
    // The leader's description from before node 4 joined (applied 30): not a removal.
    assert.equal(removedFrom(own, described({ applied: 30 }), 4), null);
    // The leader applied past the end of node 4's log and leaves it out: removed.
    assert.equal(removedFrom(own, described({ applied: 41 }), 4), "by-leader");
    // A follower's description, or the leader counting node 4 in: not a removal.
    assert.equal(removedFrom(own, described({ applied: 41, role: "follower" }), 4), null);
    assert.equal(removedFrom(own, described({ applied: 41, learners: [4] }), 4), null);
    // Its own log's latest configuration leaves it out, but what it applied still holds it: may be undone.
    assert.equal(removedFrom({ ...own, membership: config([1, 2, 3]) }, undefined, 4), null);
    assert.equal(removedFrom({ ...own, membership: config([1, 2, 3]), appliedMembership: config([1, 2, 3]) }, undefined, 4), "here");
  });

  test("a stray: a replica never a member since hosted, whose state's configurations and whose range's description all leave it out", () => {
    // Node 5 was sent a snapshot whose configuration had removed it already (its move was undone).
    const own = { membership: config([1, 3, 4]), appliedMembership: config([1, 3, 4]) };
    assert.equal(strayReplica(own, described({ voters: [1, 3, 4] }), 5), true);
    // Its range's leader counts it in (a learner taking the log from its first entry): not a stray.
    assert.equal(strayReplica(own, described({ voters: [1, 3, 4], learners: [5] }), 5), false);
    // No description: nothing says so.
    assert.equal(strayReplica(own, undefined, 5), false);
    // Its own configuration counts it in.
    assert.equal(strayReplica({ ...own, membership: config([1, 3, 4], [5]) }, described({ voters: [1, 3, 4] }), 5), false);
  });

  test("hosted again for a message only when the description counts it in at a later index than it was dropped at", () => {
    assert.equal(adoptable(described({ voters: [1, 2, 4], applied: 60 }), 4, undefined), true);
    assert.equal(adoptable(described({ voters: [1, 2, 4], applied: 60 }), 4, 70), false, "a description older than the drop");
    assert.equal(adoptable(described({ voters: [1, 2, 4], applied: 71 }), 4, 70), true);
    assert.equal(adoptable(described({ applied: 99 }), 4, undefined), false, "not counted in");
  });
});

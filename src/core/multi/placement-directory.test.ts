import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Membership } from "../engine/contract.js";
import { adoptable, fresher, removedFrom, snapshotFloor, strayReplica, type RangeDescription } from "./placement-directory.js";

const config = (voters: number[], learners: number[] = []): Membership => ({ voters, learners, outgoing: [], autoPromote: [], autoLeave: true, context: new Uint8Array(0) });
const described = (fields: Partial<RangeDescription>): RangeDescription => ({ epoch: 1, term: 2, role: "leader", leader: 1, voters: [1, 2, 3], learners: [], applied: 50, ...fields });

describe("what a node decides from its peers' descriptions of a range", () => {
  test("the fresher description: a later epoch (a split), then one that knows a leader, then term, then the leader's own, then the further applied", () => {
    const base = described({ role: "follower", applied: 90 });
    assert.equal(fresher(base, described({ epoch: 2, term: 1 })).epoch, 2);
    // A removed replica campaigning on, its term far past the range's (seed 1159 of the zones run).
    const campaigner = described({ role: "candidate", leader: null, term: 47, applied: 8, voters: [1, 2, 3, 4] });
    assert.equal(fresher(campaigner, described({ term: 28, applied: 20 })).term, 28);
    assert.equal(fresher(described({ term: 28, applied: 20 }), campaigner).term, 28);
    assert.equal(fresher(campaigner, described({ role: "candidate", leader: null, term: 48 })).term, 48, "between two that know none, the later term");
    assert.equal(fresher(base, described({ term: 3, applied: 1 })).term, 3);
    assert.equal(fresher(base, described({ applied: 10 })).role, "leader");
    assert.equal(fresher(described({ role: "follower", applied: 10 }), base).applied, 90);
  });

  test("removed: by the configuration it applied (unless the range's description counts it in), or by its leader's, applied past the end of its log; not by a removal only in its log, nor by a description older than its joining", () => {
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
    assert.equal(removedFrom({ ...own, membership: config([1, 2, 3]), appliedMembership: config([1, 2, 3]) }, described({ applied: 30 }), 4), "here");
    // Added again: catching up from the log it kept, it applied its old removal before the
    // entry that adds it back, while the leader counts it in (seed 446 of the zones command).
    const readded = { membership: config([1, 2, 3]), appliedMembership: config([1, 2, 3]), lastIndex: 8 };
    assert.equal(removedFrom(readded, described({ applied: 12, learners: [4] }), 4), null);
    assert.equal(removedFrom(readded, described({ applied: 12, voters: [1, 2, 3, 4] }), 4), null);
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

  test("a replica hosted with no state waits for a snapshot from the index its range's span was set at, not from the index it was described at", () => {
    // A leader newly elected may not have applied as far as a description says (its commit
    // index still behind), and where the new replica's vote completes its quorum it never
    // will: the span's index, long committed, is what holds the new replica to its span.
    assert.equal(snapshotFloor(described({ applied: 50, spanSince: 12 })), 12);
    assert.equal(snapshotFloor(described({ applied: 50, spanSince: 0 })), 1, "a range that never split: any snapshot");
    assert.equal(snapshotFloor(described({ applied: 50 })), 50, "a node from before the index was said: the applied one");
    assert.equal(snapshotFloor(described({ applied: 0 })), 1);
  });
});

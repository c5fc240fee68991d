// Raft's reads (thesis 6.4): ReadIndex and lease reads, each driven step by step through
// TestCluster (the rest of the paper's sections: raft.test.ts).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DEFAULT_RAFT_CONFIG, leaseTicks, validateRaftConfig } from "./config.js";
import { data, TestCluster } from "./harness.test-util.js";

const config = { ...DEFAULT_RAFT_CONFIG };

describe("6.4 linearizable reads (ReadIndex)", () => {
  test("a read is released only after a quorum confirms leadership", () => {
    const c = new TestCluster(3);
    c.elect(1);
    c.isolate(1);
    c.engine(1).readIndex(7);
    c.stabilize();
    assert.deepEqual(c.readStates.get(1), [], "no quorum, no read");
    c.heal();
    c.tickAll(1);
    assert.deepEqual(c.readStates.get(1)?.map((r) => r.requestId), [7]);
  });

  test("a follower's read goes through the leader and returns the leader's commit index", () => {
    const c = new TestCluster(3);
    c.elect(1);
    c.engine(1).propose(data("w"));
    c.stabilize();
    assert.equal(c.engine(2).readIndex(9).accepted, true);
    c.stabilize();
    assert.deepEqual(c.readStates.get(2), [{ requestId: 9, index: c.engine(1).status().commitIndex }]);
  });

  test("reads that arrive before the leader's next Ready share one heartbeat round", () => {
    const c = new TestCluster(3);
    c.elect(1);
    const before = c.sent.length;
    for (let id = 1; id <= 50; id++) c.engine(1).readIndex(id);
    c.stabilize();
    assert.deepEqual(c.readStates.get(1)?.map((r) => r.requestId), Array.from({ length: 50 }, (_, i) => i + 1));
    const heartbeats = c.sent.slice(before).filter((envelope) => envelope.message.type === "heartbeat");
    assert.equal(heartbeats.length, 2, "one heartbeat per follower confirms all fifty reads");
  });

  test("a read without a known leader is refused with the leader hint", () => {
    const c = new TestCluster(3);
    const admission = c.engine(2).readIndex(1);
    assert.equal(admission.accepted, false);
  });
});

describe("6.4.1 lease reads", () => {
  const lease = { ...config, leaseReads: true };

  test("a leader within its lease answers at once, without a heartbeat round", () => {
    const c = new TestCluster(3, lease);
    c.elect(1);
    c.tickAll(2); // heartbeats acknowledged by a quorum start the lease
    const before = c.sent.length;
    c.engine(1).readIndex(5);
    c.flush();
    assert.deepEqual(c.readStates.get(1)?.map((r) => r.requestId), [5]);
    assert.equal(c.sent.length, before, "no message was needed");
  });

  test("each read chooses: one that declines the lease takes the heartbeat round", () => {
    const c = new TestCluster(3, lease);
    c.elect(1);
    c.tickAll(2);
    const before = c.sent.length;
    c.engine(1).readIndex(5, { lease: false });
    c.flush();
    assert.deepEqual(c.readStates.get(1), [], "not released before a quorum answers");
    assert.ok(c.sent.length > before, "a heartbeat round went out");
    c.stabilize();
    assert.deepEqual(c.readStates.get(1)?.map((r) => r.requestId), [5]);
    c.engine(1).readIndex(6, { lease: true });
    c.flush();
    assert.deepEqual(c.readStates.get(1)?.map((r) => r.requestId), [5, 6], "the lease read is answered at once");
  });

  test("a follower's lease read is confirmed by the leader's lease, with no round", () => {
    const c = new TestCluster(3, lease);
    c.elect(1);
    c.tickAll(2);
    c.engine(2).readIndex(8, { lease: true });
    c.stabilize();
    assert.deepEqual(c.readStates.get(2)?.map((r) => r.requestId), [8]);
    const forwarded = c.sent.filter((envelope) => envelope.message.type === "read-index");
    assert.equal(forwarded.length, 1);
    assert.equal(forwarded[0]?.message.type === "read-index" && forwarded[0].message.lease, true);
  });

  test("without leases configured, a lease read is an ordinary ReadIndex", () => {
    const c = new TestCluster(3);
    c.elect(1);
    c.tickAll(2);
    c.isolate(1);
    c.engine(1).readIndex(4, { lease: true });
    c.stabilize();
    assert.deepEqual(c.readStates.get(1), [], "no lease to lean on: it waits for a quorum");
  });

  test("a leader whose lease ran out confirms leadership the ReadIndex way", () => {
    const c = new TestCluster(3, lease);
    c.elect(1);
    c.tickAll(2);
    c.isolate(1);
    c.tick(1, leaseTicks(lease));
    c.stabilize();
    c.engine(1).readIndex(6);
    c.stabilize();
    assert.deepEqual(c.readStates.get(1), [], "an isolated leader must not serve from an expired lease");
  });

  test("the lease is shorter than the followers' vote guard by the clock-drift margin", () => {
    assert.ok(leaseTicks(lease) < lease.electionTicks - 1);
    assert.equal(leaseTicks({ ...lease, electionTicks: 10, maxClockDrift: 0.1 }), 7);
    assert.throws(() => validateRaftConfig({ ...lease, checkQuorum: false }), /checkQuorum/);
  });

  test("followers that heard the leader refuse to elect another within the lease", () => {
    const c = new TestCluster(3, lease);
    c.elect(1);
    c.tickAll(2);
    c.isolate(1);
    c.tick(2, 2 * lease.electionTicks); // node 2 campaigns at once ...
    c.stabilize();
    assert.notEqual(c.engine(2).status().role, "leader", "... but node 3 still hears node 1's lease");
  });

  test("a restarted node refuses votes for an election timeout, as if it had acknowledged a lease", () => {
    const c = new TestCluster(3, { ...lease, preVote: false });
    c.elect(1);
    c.tickAll(2);
    c.start(3); // node 3 restarts, knowing no leader
    c.isolate(1);
    c.engine(2).forgetLeader();
    c.tick(2, 2 * lease.electionTicks);
    c.stabilize();
    assert.notEqual(c.engine(2).status().role, "leader", "node 3 voted right after restarting");
    c.tick(3, lease.electionTicks);
    c.tick(2, 2 * lease.electionTicks);
    c.stabilize();
    assert.equal(c.leaders().filter((id) => id !== 1).length, 1, "after the guard an election succeeds");
  });
});

// Quiescence (RaftConfig.quiesce, after CockroachDB's quiesced ranges): an idle group goes
// quiet — no heartbeats, no election timers — and wakes on a proposal, a read, a message or
// the node's wake(). Each test drives engines step by step through TestCluster.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DEFAULT_RAFT_CONFIG, type RaftConfig } from "./config.js";
import { data, TestCluster } from "./harness.test-util.js";

const quiet: RaftConfig = { ...DEFAULT_RAFT_CONFIG, quiesce: true };

/** A 3-node cluster with node 1 leading, its log committed everywhere, every engine quiet. */
function quietCluster(config: RaftConfig = quiet): TestCluster {
  const c = new TestCluster(3, config);
  c.elect(1);
  c.tickAll(3);
  for (const id of c.ids) assert.equal(c.engine(id).quiescent(), true, `node ${id} went quiet`);
  return c;
}

function messagesDuring(c: TestCluster, action: () => void): number {
  const before = c.sent.length;
  action();
  return c.sent.length - before;
}

describe("quiescence: going quiet", () => {
  test("off by default: an idle leader heartbeats for ever and nobody goes quiet", () => {
    const c = new TestCluster(3);
    c.elect(1);
    const sent = messagesDuring(c, () => c.tickAll(50));
    assert.ok(sent >= 50 * 2 * 2, `heartbeats and answers every tick (${sent} messages)`);
    for (const id of c.ids) assert.equal(c.engine(id).quiescent(), false);
  });

  test("an idle group goes quiet after one heartbeat, then sends nothing however long it ticks", () => {
    const c = quietCluster();
    const sent = messagesDuring(c, () => c.tickAll(500));
    assert.equal(sent, 0, "no heartbeat, no election: a quiet group is silent");
    assert.deepEqual(c.leaders(), [1]);
    for (const id of c.ids) assert.equal(c.engine(id).status().leader, 1);
  });

  test("the leader's last heartbeat is marked quiesce and carries its last index as commit", () => {
    const c = new TestCluster(3, quiet);
    c.elect(1);
    c.tickAll(3);
    const last = c.sent.filter((e) => e.from === 1 && e.message.type === "heartbeat").slice(-2);
    assert.equal(last.length, 2);
    for (const e of last) {
      assert.ok(e.message.type === "heartbeat" && e.message.quiesce === true);
      assert.equal(e.message.commit, c.engine(1).status().lastIndex);
    }
  });

  test("a follower that does not hold the whole log keeps the leader awake", () => {
    const c = new TestCluster(3, quiet);
    c.elect(1);
    c.isolate(3);
    c.engine(1).propose(data("x"));
    c.stabilize();
    assert.equal(c.engine(1).status().commitIndex, c.engine(1).status().lastIndex, "committed by nodes 1 and 2");
    c.tickAll(5);
    assert.equal(c.engine(1).quiescent(), false, "node 3 lags: the leader keeps heartbeating");
    c.heal();
    c.tickAll(5);
    assert.equal(c.engine(3).status().lastIndex, c.engine(1).status().lastIndex, "node 3 caught up");
    for (const id of c.ids) assert.equal(c.engine(id).quiescent(), true, `node ${id} quiet once all caught up`);
  });

  test("a follower told to go quiet whose log does not end at the commit index stays awake", () => {
    const c = quietCluster();
    const follower = c.engine(2);
    follower.wake();
    const { term, lastIndex } = follower.status();
    follower.step(1, { type: "heartbeat", term, commit: lastIndex - 1, readRound: 0, quiesce: true });
    assert.equal(follower.quiescent(), false, "its log goes past what the leader says it ends at");
    follower.step(1, { type: "heartbeat", term, commit: lastIndex, readRound: 0, quiesce: true });
    assert.equal(follower.quiescent(), true);
  });

  test("the mutant quiesce-with-lagging-follower goes quiet, and its lagging follower with it", () => {
    const c = new TestCluster(3, quiet, "quiesce-with-lagging-follower");
    c.elect(1);
    c.tickAll(3);
    // Node 3 misses the next append (lost), so it lags behind an entry nodes 1 and 2 commit.
    c.dropWhere = (e) => e.to === 3 && e.message.type === "append";
    c.engine(1).propose(data("x"));
    c.stabilize();
    c.tickAll(2);
    c.dropWhere = null;
    c.tickAll(2);
    assert.equal(c.engine(1).quiescent(), true);
    assert.equal(c.engine(3).quiescent(), true, "node 3 went quiet behind its leader");
    assert.ok(c.engine(3).status().lastIndex < c.engine(1).status().lastIndex, "and stays behind");
  });
});

describe("quiescence: waking", () => {
  test("a proposal wakes the group; it commits, and the group goes quiet again", () => {
    const c = quietCluster();
    c.engine(1).propose(data("x"));
    for (const id of c.ids) assert.equal(c.engine(1).quiescent(), false, `node ${id} woke`);
    c.stabilize();
    for (const id of c.ids) assert.deepEqual(c.appliedData(id), ["x"]);
    c.tickAll(3);
    for (const id of c.ids) assert.equal(c.engine(id).quiescent(), true);
  });

  test("a proposal made at a quiet follower is forwarded, and wakes the leader", () => {
    const c = quietCluster();
    c.engine(3).propose(data("y"));
    c.stabilize();
    for (const id of c.ids) assert.deepEqual(c.appliedData(id), ["y"]);
  });

  test("a read wakes a quiet leader, which confirms it with a heartbeat round", () => {
    const c = quietCluster();
    c.engine(1).readIndex(7);
    assert.equal(c.engine(1).quiescent(), false);
    c.stabilize();
    assert.deepEqual(c.readStates.get(1)?.map((r) => r.requestId), [7]);
  });

  test("a quiet follower never campaigns by itself, however long its leader is gone", () => {
    const c = quietCluster();
    c.isolate(1);
    c.tickAll(20 * DEFAULT_RAFT_CONFIG.electionTicks);
    assert.equal(c.engine(2).status().leader, 1, "it still believes in its leader");
    assert.equal(c.engine(2).status().term, c.engine(1).status().term);
    assert.deepEqual(c.leaders(), [1]);
  });

  test("woken by its node (the leader's node is suspected), a quiet follower elects a new leader", () => {
    const c = quietCluster();
    const term = c.engine(1).status().term;
    c.isolate(1);
    c.engine(2).wake();
    c.engine(3).wake();
    c.tickAll(4 * DEFAULT_RAFT_CONFIG.electionTicks);
    const leaders = c.leaders().filter((id) => id !== 1);
    assert.equal(leaders.length, 1, "nodes 2 and 3 elected one of them");
    assert.ok(c.engine(leaders[0] as number).status().term > term);
  });

  test("told its leader is gone, the follower picked campaigns at its next tick and wins; the other grants at once, and would campaign only after a whole timeout", () => {
    // A long timeout, so what is left of a randomized one is rarely a tick or two.
    const config: RaftConfig = { ...quiet, electionTicks: 40 };
    const { electionTicks } = config;
    const votesFrom = (c: TestCluster, id: number): number => c.sent.filter((e) => e.from === id && e.message.type === "vote").length;
    const c = quietCluster(config);
    const term = c.engine(1).status().term;
    c.isolate(1);
    c.engine(3).forgetLeader("full");
    c.engine(2).forgetLeader("now");
    c.tick(2, 1);
    assert.ok(votesFrom(c, 2) > 0, "node 2 campaigned at its first tick");
    c.stabilize();
    assert.deepEqual(c.leaders().filter((id) => id !== 1), [2], "and won: node 3 had forgotten the leader's lease");
    assert.equal(c.engine(2).status().term, term + 1, "one election, no split vote");
    // A follower told "full" waits a whole randomized timeout, at least electionTicks.
    const d = quietCluster(config);
    d.isolate(1);
    d.engine(3).forgetLeader("full");
    d.tick(3, electionTicks - 1);
    assert.equal(votesFrom(d, 3), 0, "not before electionTicks");
    d.tick(3, electionTicks + 1);
    assert.ok(votesFrom(d, 3) > 0, "it campaigns within a whole timeout");
  });

  test("one woken follower's campaign wakes the other by its vote request", () => {
    const c = quietCluster();
    c.isolate(1);
    c.engine(2).wake();
    c.tickAll(8 * DEFAULT_RAFT_CONFIG.electionTicks);
    assert.equal(c.engine(3).quiescent(), false);
    assert.equal(c.leaders().filter((id) => id !== 1).length, 1);
  });

  test("a deposed quiet leader learns it when it wakes, and what it appended meanwhile never commits", () => {
    const c = quietCluster();
    c.isolate(1);
    c.engine(2).wake();
    c.engine(3).wake();
    c.tickAll(4 * DEFAULT_RAFT_CONFIG.electionTicks);
    const newLeader = c.leaders().find((id) => id !== 1) as number;
    assert.equal(c.engine(1).quiescent(), true, "node 1 slept through it");
    c.heal();
    c.engine(1).propose(data("stale"));
    c.stabilize();
    assert.equal(c.engine(1).status().role, "follower", "the answers to its heartbeat carried the newer term");
    c.tickAll(3);
    assert.equal(c.engine(1).status().leader, newLeader);
    for (const id of c.ids) assert.ok(!c.appliedData(id).includes("stale"));
  });

  test("a woken leader cut off from its followers steps down after an election timeout (CheckQuorum)", () => {
    const c = quietCluster();
    c.isolate(1);
    c.engine(1).propose(data("lost"));
    c.tickAll(DEFAULT_RAFT_CONFIG.electionTicks + 1);
    assert.equal(c.engine(1).status().role, "follower");
  });
});

describe("quiescence and leases (thesis 6.4.1)", () => {
  const lease: RaftConfig = { ...quiet, leaseReads: true };

  test("a quiet leader gives its lease up: a lease read after waking takes a heartbeat round", () => {
    const c = new TestCluster(3, lease);
    c.elect(1);
    // A read round a quorum acknowledges starts a lease, which serves the next read at once.
    c.engine(1).readIndex(4, { lease: false });
    c.stabilize();
    c.engine(1).readIndex(5, { lease: true });
    c.flush();
    assert.deepEqual(c.readStates.get(1)?.map((r) => r.requestId), [4, 5]);
    c.tickAll(2);
    assert.equal(c.engine(1).quiescent(), true);
    // Within what the lease would still cover, by the ticks the leader counted: its clock
    // stood still while it was quiet, so it cannot tell, and must not trust it.
    c.engine(1).readIndex(6, { lease: true });
    c.flush();
    assert.deepEqual(c.readStates.get(1)?.map((r) => r.requestId), [4, 5], "not answered from the lease");
    c.stabilize();
    assert.deepEqual(c.readStates.get(1)?.map((r) => r.requestId), [4, 5, 6], "answered once a quorum acknowledged a heartbeat sent after waking");
    c.engine(1).readIndex(7, { lease: true });
    c.flush();
    assert.deepEqual(c.readStates.get(1)?.map((r) => r.requestId), [4, 5, 6, 7], "the new lease serves the next read at once");
  });

  test("a quiet leader cut off while another is elected never answers a read, lease or not", () => {
    const c = quietCluster(lease);
    c.isolate(1);
    c.engine(2).wake();
    c.engine(3).wake();
    c.tickAll(4 * DEFAULT_RAFT_CONFIG.electionTicks);
    const newLeader = c.leaders().find((id) => id !== 1) as number;
    c.engine(newLeader).propose(data("new"));
    c.stabilize();
    c.engine(1).readIndex(9, { lease: true });
    c.stabilize();
    assert.deepEqual(c.readStates.get(1), [], "a stale read would miss the write the new leader committed");
  });
});

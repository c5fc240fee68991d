import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { MembershipChange, NodeId } from "../engine/contract.js";
import { DEFAULT_RAFT_CONFIG } from "./config.js";
import { data, TestCluster } from "./harness.test-util.js";
import { validateRaftMessage } from "./validate.js";

// A replica hosted with no state over the keys its range holds now (a range moved to a node
// after it split) cannot build its state from the log's first entries: they predate the
// split. It waits for its leader's snapshot (EngineOptions.awaitSnapshot), and the leader
// captures one for it if its own is older (Engine.snapshotWanted).

const config = { ...DEFAULT_RAFT_CONFIG, snapshotChunkBytes: 64 };
const EMPTY = new Uint8Array(0);

function learner(id: NodeId): MembershipChange {
  return { voters: [1, 2, 3], learners: [id], context: EMPTY };
}

/** Three voters commit five entries; node 4 starts empty, waiting for a snapshot at `from` or later (none: it takes the log), and is added as a learner. */
function clusterWithNewcomer(from: number | null): TestCluster {
  const c = new TestCluster(4, config, null, 3);
  c.elect(1);
  for (let i = 0; i < 5; i++) c.engine(1).propose(data(`v${i}`));
  c.stabilize();
  if (from !== null) {
    c.awaitSnapshot.set(4, from);
    c.start(4);
  }
  assert.equal(c.engine(1).changeMembership(learner(4)).accepted, true);
  c.stabilize();
  c.tickAll(10);
  return c;
}

describe("a replica waiting for a snapshot (awaitSnapshot)", () => {
  test("without it, a new replica takes the log from its first entry (the control)", () => {
    const c = clusterWithNewcomer(null);
    assert.deepEqual(c.appliedData(4), c.appliedData(1));
    assert.equal(c.engine(4).status().snapshotIndex, 0);
  });

  test("it takes no entry; the leader with no snapshot says it wants one, and sends the one its driver captures", () => {
    const c = clusterWithNewcomer(3);
    assert.equal(c.engine(4).status().lastIndex, 0, "node 4 took no entry of the log");
    assert.deepEqual(c.appliedData(4), []);
    const leaderIndex = c.engine(1).status().commitIndex;
    assert.equal(c.engine(1).snapshotWanted(), 3, "the leader asks its driver for a snapshot at 3 or later");
    assert.equal(c.engine(2).snapshotWanted(), 0, "a follower asks for none");
    const asks = c.sent.filter((e) => e.from === 4 && e.message.type === "append-response" && e.message.snapshotFrom === 3);
    assert.ok(asks.length > 0, "node 4 told its leader what it needs");
    // The leader keeps its log whole for the others, but not for node 4: compaction is not held by it.
    assert.deepEqual(c.engine(1).compactionFloor(), { receiving: null, replicating: leaderIndex }, "only the others' match holds the log");
    c.compact(1);
    assert.equal(c.engine(1).snapshotWanted(), 0, "the captured snapshot reaches what node 4 needs");
    c.stabilize();
    c.tickAll(10);
    assert.equal(c.engine(4).status().snapshotIndex, leaderIndex, "node 4 installed the leader's snapshot");
    assert.deepEqual(c.appliedData(4), c.appliedData(1));
    c.engine(1).propose(data("after"));
    c.stabilize();
    assert.deepEqual(c.appliedData(4).slice(-2), ["v4", "after"], "and then takes the log after it");
  });

  test("a leader's snapshot older than what it needs is not sent: a newer one is captured", () => {
    const c = new TestCluster(4, config, null, 3);
    c.elect(1);
    for (let i = 0; i < 3; i++) c.engine(1).propose(data(`v${i}`));
    c.stabilize();
    c.compact(1);
    const old = c.engine(1).status().snapshotIndex;
    for (let i = 3; i < 6; i++) c.engine(1).propose(data(`v${i}`));
    c.stabilize();
    const needed = c.engine(1).status().commitIndex;
    c.awaitSnapshot.set(4, needed);
    c.start(4);
    assert.equal(c.engine(1).changeMembership(learner(4)).accepted, true);
    c.stabilize();
    c.tickAll(10);
    assert.ok(!c.sent.some((e) => e.to === 4 && e.message.type === "snapshot" && e.message.index === old), `the snapshot at ${old} was never sent`);
    assert.equal(c.engine(4).status().lastIndex, 0);
    assert.ok(c.engine(1).snapshotWanted() >= needed);
    c.compact(1);
    c.stabilize();
    c.tickAll(10);
    assert.ok(c.engine(4).status().snapshotIndex >= needed, "node 4 installed the newer snapshot");
    assert.deepEqual(c.appliedData(4), c.appliedData(1));
  });

  test("an ask that arrives after the snapshot was installed (delayed, or duplicated) sends nothing again", () => {
    const c = clusterWithNewcomer(3);
    const ask = c.sent.find((e) => e.from === 4 && e.message.type === "append-response" && e.message.snapshotFrom === 3);
    assert.ok(ask !== undefined);
    c.compact(1);
    c.stabilize();
    c.tickAll(10);
    const installed = c.engine(4).status().snapshotIndex;
    assert.ok(installed >= 3);
    const snapshotsBefore = c.sent.filter((e) => e.to === 4 && e.message.type === "snapshot").length;
    c.queue.push(ask);
    c.stabilize();
    c.tickAll(20);
    assert.equal(c.sent.filter((e) => e.to === 4 && e.message.type === "snapshot").length, snapshotsBefore, "no snapshot sent again");
    assert.equal(c.engine(1).replication()?.find((pr) => pr.id === 4)?.state, "replicate");
    c.engine(1).propose(data("after"));
    c.stabilize();
    assert.deepEqual(c.appliedData(4).slice(-1), ["after"]);
  });

  test("a snapshot chunk older than what it needs is refused with what it needs (a leader that had started sending before)", () => {
    const c = clusterWithNewcomer(100);
    c.queue = [];
    c.engine(4).step(1, { type: "snapshot", term: c.engine(1).status().term, index: 4, snapshotTerm: 1, size: 3, offset: 0, chunk: data("abc") });
    c.flush();
    const answer = c.queue.find((e) => e.from === 4 && e.to === 1);
    assert.ok(answer !== undefined && answer.message.type === "append-response");
    assert.equal(answer.message.reject, true);
    assert.equal(answer.message.snapshotFrom, 100);
    assert.equal(c.engine(4).status().snapshotIndex, 0);
  });

  test("a restart before the snapshot came keeps waiting; one after it takes the log", () => {
    const c = clusterWithNewcomer(3);
    c.start(4);
    c.tickAll(10);
    assert.equal(c.engine(4).status().lastIndex, 0, "restarted, it still takes no entry");
    c.compact(1);
    c.tickAll(20);
    assert.deepEqual(c.appliedData(4), c.appliedData(1));
    c.start(4); // its disk holds the snapshot now: the same option no longer holds it back
    c.engine(1).propose(data("later"));
    c.stabilize();
    c.tickAll(10);
    assert.deepEqual(c.appliedData(4).slice(-1), ["later"]);
  });

  test("the ask is a well-formed message; a malformed one is refused", () => {
    const ask = { type: "append-response", term: 2, reject: true, index: 7, hintIndex: 0, hintTerm: 0, snapshotFrom: 12 };
    assert.deepEqual(validateRaftMessage(ask), ask);
    assert.throws(() => validateRaftMessage({ ...ask, snapshotFrom: -1 }), /snapshotFrom/);
    assert.throws(() => validateRaftMessage({ ...ask, snapshotFrom: "12" }), /snapshotFrom/);
  });
});

// Raft's log compaction and snapshots (section 7), each driven step by step through
// TestCluster: a follower behind the leader's snapshot, held snapshots, chunks, restarts, and
// a replica that waits for a snapshot before it takes any entry.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { MembershipChange, NodeId } from "../engine/contract.js";
import { DEFAULT_RAFT_CONFIG } from "./config.js";
import { data, encodeApplied, TestCluster } from "./harness.test-util.js";
import { raftTombstone } from "./messages.js";
import { validateRaftMessage } from "./validate.js";

const config = { ...DEFAULT_RAFT_CONFIG };

describe("7 log compaction", () => {
  const small = { ...config, snapshotChunkBytes: 16 };

  /** Node 3 is cut off while ten entries commit and the leader compacts them away; then heals. */
  function leaderCompactedPastNode3(): TestCluster {
    const c = new TestCluster(3, small);
    c.elect(1);
    c.isolate(3);
    for (let i = 0; i < 10; i++) c.engine(1).propose(data(`v${i}`));
    c.stabilize();
    c.tickAll(2);
    c.compact(1);
    return c;
  }

  test("a follower behind the leader's snapshot gets it in chunks and then the entries after it", () => {
    const c = leaderCompactedPastNode3();
    c.compact(2);
    const snapshotIndex = c.engine(1).status().snapshotIndex;
    assert.ok(snapshotIndex >= 10, `the leader compacted through ${snapshotIndex}`);
    c.heal();
    c.engine(1).propose(data("after"));
    c.tickAll(40);
    assert.deepEqual(c.appliedData(3), c.appliedData(1));
    assert.deepEqual(c.appliedData(3).slice(-2), ["v9", "after"]);
    assert.equal(c.engine(3).status().snapshotIndex, snapshotIndex, "node 3 installed the leader's snapshot");
    const chunks = c.sent.filter((e) => e.message.type === "snapshot" && e.to === 3);
    assert.ok(chunks.length > 3, `the snapshot went in ${chunks.length} chunks`);
  });

  test("a held snapshot (it only names the leader's own state) is never sent: the follower waits for the full one that replaces it", () => {
    const c = leaderCompactedPastNode3();
    const disk = c.disks.get(1);
    assert.ok(disk?.snapshot !== null && disk?.snapshot !== undefined);
    disk.snapshot = { ...disk.snapshot, held: true };
    c.start(1);
    c.elect(1);
    c.heal();
    c.tickAll(40);
    assert.equal(c.sent.filter((e) => e.message.type === "snapshot" && e.to === 3).length, 0, "no chunk of a held snapshot");
    assert.notDeepEqual(c.appliedData(3), c.appliedData(1), "node 3 waits");
    c.compact(1); // the driver's full snapshot, past the held one
    c.tickAll(40);
    assert.deepEqual(c.appliedData(3), c.appliedData(1), "then it gets the full one");
  });

  test("a lost chunk is resent from where the follower stopped, not from the start", () => {
    const c = leaderCompactedPastNode3();
    c.heal();
    let dropped = false;
    c.dropWhere = (e) => {
      if (dropped || e.message.type !== "snapshot" || e.message.offset !== 32) return false;
      dropped = true;
      return true;
    };
    c.tickAll(40);
    assert.ok(dropped);
    assert.deepEqual(c.appliedData(3), c.appliedData(1));
    const offsets = c.sent.filter((e) => e.message.type === "snapshot" && e.to === 3).map((e) => (e.message.type === "snapshot" ? e.message.offset : -1));
    assert.equal(offsets.filter((o) => o === 0).length, 1, `one transfer, resumed (offsets ${offsets.join(",")})`);
    assert.equal(offsets.filter((o) => o === 32).length, 2, "the lost chunk was sent twice");
  });

  test("a snapshot survives a restart: the node comes back from it and the log after it", () => {
    const c = new TestCluster(3, small);
    c.elect(1);
    for (let i = 0; i < 5; i++) c.engine(1).propose(data(`v${i}`));
    c.stabilize();
    c.tickAll(2);
    c.compact(2);
    c.engine(1).propose(data("tail"));
    c.stabilize();
    c.tickAll(2);
    const before = c.appliedData(2);
    c.start(2);
    c.tickAll(3);
    assert.deepEqual(c.appliedData(2), before);
    assert.ok(c.engine(2).status().snapshotIndex > 0);
  });

  test("compaction is refused beyond what was applied", () => {
    const c = new TestCluster(3);
    c.elect(1);
    c.engine(1).propose(data("x"));
    assert.throws(() => c.engine(1).compact(c.engine(1).status().lastIndex + 5, data("state")), /beyond/);
  });
});

// A replica hosted with no state over the keys its range holds now (a range moved to a node
// after it split) cannot build its state from the log's first entries: they predate the
// split. It waits for its leader's snapshot (EngineOptions.awaitSnapshot), and the leader
// captures one for it if its own is older (Engine.snapshotWanted).

const awaitConfig = { ...DEFAULT_RAFT_CONFIG, snapshotChunkBytes: 64 };
const EMPTY = new Uint8Array(0);

function learner(id: NodeId): MembershipChange {
  return { voters: [1, 2, 3], learners: [id], context: EMPTY };
}

/** Three voters commit five entries; node 4 starts empty, waiting for a snapshot at `from` or later (none: it takes the log), and is added as a learner. */
function clusterWithNewcomer(from: number | null): TestCluster {
  const c = new TestCluster(4, awaitConfig, null, 3);
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
    const c = new TestCluster(4, awaitConfig, null, 3);
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

  test("a held snapshot a waiting follower needs is replaced, at the same index, by a full one the driver captures; the log stays as it was", () => {
    // Three voters commit five entries; the leader's snapshot only names its state (held),
    // as a range's first state after a split does; node 4 waits for that state.
    const c = new TestCluster(4, awaitConfig, null, 3);
    c.elect(1);
    for (let i = 0; i < 5; i++) c.engine(1).propose(data(`v${i}`));
    c.stabilize();
    c.compact(1);
    const disk = c.disks.get(1);
    assert.ok(disk?.snapshot !== null && disk?.snapshot !== undefined);
    const full = disk.snapshot;
    disk.snapshot = { ...full, held: true };
    c.start(1);
    c.elect(1);
    c.awaitSnapshot.set(4, full.index);
    c.start(4);
    assert.equal(c.engine(1).changeMembership(learner(4)).accepted, true);
    c.stabilize();
    c.tickAll(10);
    assert.equal(c.engine(1).snapshotWanted(), full.index, "a held snapshot reaches nothing: the leader asks its driver");
    assert.equal(c.sent.filter((e) => e.to === 4 && e.message.type === "snapshot").length, 0, "no chunk of the held one");
    const lastIndex = c.engine(1).status().lastIndex;
    const replaced = c.engine(1).offerSnapshot(full.index, full.data);
    assert.ok(replaced !== null && replaced.held !== true && replaced.index === full.index, "a full snapshot at the same index");
    assert.equal(c.engine(1).status().lastIndex, lastIndex, "the log is unchanged");
    assert.equal(c.engine(1).snapshotWanted(), 0);
    c.stabilize();
    c.tickAll(10);
    assert.equal(c.engine(4).status().snapshotIndex, full.index, "node 4 installed it");
    assert.deepEqual(c.appliedData(4), c.appliedData(1));
  });

  test("a snapshot offered while the leader keeps its log (its compaction held) is sent to the follower waiting for it; the log and the durable snapshot stay; a later compaction replaces it", () => {
    const c = new TestCluster(4, awaitConfig, null, 3);
    c.elect(1);
    for (let i = 0; i < 6; i++) c.engine(1).propose(data(`v${i}`));
    c.stabilize();
    const needed = c.engine(1).status().commitIndex;
    c.awaitSnapshot.set(4, needed - 2);
    c.start(4);
    assert.equal(c.engine(1).changeMembership(learner(4)).accepted, true);
    c.stabilize();
    c.tickAll(10);
    assert.equal(c.engine(1).snapshotWanted(), needed - 2, "the leader has no snapshot: it asks its driver");
    const applied = c.applied.get(1) ?? [];
    const last = applied[applied.length - 1];
    assert.ok(last !== undefined);
    const before = c.engine(1).status();
    const offered = c.engine(1).offerSnapshot(last.index, encodeApplied(applied));
    assert.ok(offered !== null && offered.index === last.index);
    assert.deepEqual(c.engine(1).status(), before, "the log is as it was, and so is its compaction point");
    assert.equal(c.disks.get(1)?.snapshot ?? null, null, "nothing made durable");
    assert.equal(c.engine(1).snapshotWanted(), 0);
    assert.equal(c.engine(1).offerSnapshot(last.index - 1, encodeApplied(applied.slice(0, -1))), null, "an older one is not taken");
    c.stabilize();
    c.tickAll(10);
    assert.equal(c.engine(4).status().snapshotIndex, last.index, "node 4 installed it");
    c.engine(1).propose(data("after"));
    c.stabilize();
    assert.deepEqual(c.appliedData(4), c.appliedData(1), "and takes the log after it");
    c.compact(1);
    assert.ok(c.engine(1).status().snapshotIndex > before.snapshotIndex, "compaction goes on as before once the driver may");
  });

  test("a node whose held first state is unmade (its records lost) waits for a full snapshot with its log kept: it applies nothing, takes no entry, stands for no election, and keeps the entries after the snapshot", () => {
    const c = new TestCluster(3, awaitConfig);
    c.elect(1);
    for (let i = 0; i < 4; i++) c.engine(1).propose(data(`v${i}`));
    c.stabilize();
    c.compact(1);
    c.compact(3);
    const held = c.engine(3).status().snapshotIndex;
    for (let i = 4; i < 7; i++) c.engine(1).propose(data(`v${i}`));
    c.stabilize();
    const disk = c.disks.get(3);
    assert.ok(disk?.snapshot !== null && disk?.snapshot !== undefined && disk.entries.length === 3, "node 3 holds a snapshot and three entries after it");
    // Node 3's snapshot only named records its store held, and the store is gone.
    disk.snapshot = { ...disk.snapshot, held: true };
    c.unmade.add(3);
    c.awaitSnapshot.set(3, held);
    const lastIndex = c.engine(3).status().lastIndex;
    c.start(3);
    assert.equal(c.engine(3).status().lastIndex, lastIndex, "its log kept");
    // Its leader gone a while: it stands for no election (it has no state to lead from).
    c.isolate(1);
    c.tickAll(60);
    assert.ok(!c.sent.some((e) => e.from === 3 && e.message.type === "vote"), "node 3 never campaigned");
    assert.deepEqual(c.appliedData(3), [], "it applied nothing of its log");
    c.heal();
    c.tickAll(60);
    c.stabilize();
    const leader = c.leaders()[0];
    assert.ok(leader !== undefined && leader !== 3);
    // The leader captures one when it sees node 3 waits (a replica does it on its own: snapshots.ts).
    assert.ok(c.engine(leader).snapshotWanted() > 0 || c.engine(leader).status().snapshotIndex >= held);
    c.compact(leader);
    c.stabilize();
    c.engine(leader).propose(data("after"));
    c.stabilize();
    c.tickAll(10);
    assert.deepEqual(c.appliedData(3), c.appliedData(leader), "after its leader's snapshot it holds what the others do");
    assert.ok(c.engine(3).status().snapshotIndex >= held, "a full snapshot installed");
  });

  test("a replica that lost a log it held (dropped, then hosted again from its tombstone) grants no vote, across restarts, until its commit index is back where that log was", () => {
    const c = new TestCluster(3, awaitConfig);
    c.elect(1);
    for (let i = 0; i < 3; i++) c.engine(1).propose(data(`v${i}`));
    c.stabilize();
    // Node 3 was dropped and hosted again with nothing but its tombstone (raftTombstone).
    const disk = c.disks.get(3);
    assert.ok(disk !== undefined);
    const applied = c.applied.get(3)?.at(-1)?.index ?? 0;
    disk.hardState = raftTombstone(disk.hardState, applied);
    disk.entries = [];
    disk.snapshot = null;
    c.awaitSnapshot.set(3, 1);
    c.start(3);
    // A pre-candidate with an empty log asks it: its own empty log would say yes; it abstains.
    const answers = () => c.sent.filter((e) => e.from === 3 && e.to === 2 && e.message.type === "vote-response");
    const ask = (): boolean | undefined => {
      c.engine(3).step(2, { type: "vote", term: 9, lastIndex: 0, lastTerm: 0, preVote: true });
      c.flush();
      return (answers().at(-1)?.message as { granted?: boolean } | undefined)?.granted;
    };
    assert.equal(ask(), false, "no vote while it waits");
    // Restarted before its snapshot came (its driver no longer knows it dropped one): the hard state says so.
    c.start(3);
    assert.equal(c.disks.get(3)?.hardState?.forgot, applied);
    assert.equal(ask(), false, "no vote after a restart either");
    assert.equal(answers().length, 2);
    // Its leader's snapshot comes (a leader elected since: the old one's progress still
    // counted node 3's lost entries, as a replica dropped and added back is not): it votes again.
    c.compact(1);
    c.start(1);
    c.electUntil(1);
    c.stabilize();
    c.tickAll(10);
    assert.ok(c.engine(3).status().snapshotIndex >= 1, "it installed a snapshot");
    const last1 = c.engine(1).status().lastIndex;
    c.engine(3).forgetLeader();
    c.engine(3).step(2, { type: "vote", term: c.engine(3).status().term + 1, lastIndex: last1, lastTerm: c.engine(1).entryTerm(last1) ?? 0, preVote: true });
    c.flush();
    const last = c.sent.filter((e) => e.from === 3 && e.to === 2 && e.message.type === "vote-response").at(-1);
    assert.equal((last?.message as { granted?: boolean } | undefined)?.granted, true, "a vote once it has a state");
    assert.equal(c.disks.get(3)?.hardState?.forgot, undefined, "the tombstone's mark is gone from its hard state");
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

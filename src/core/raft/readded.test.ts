// A node removed from a group, its replica dropped, and added back: the new replica holds
// nothing, while acknowledgements its earlier replica sent may still reach the leader
// (delayed, duplicated). Its leader must not count them (Progress.addedAt). The simulator
// found both ways this went wrong (seeds 786 and 1667 of the widest sharded run). And the
// replica made again from the dropped one's tombstone grants no vote until it holds what
// that one had applied (RaftHardState.forgot).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { MembershipChange, NodeId } from "../engine/contract.js";
import { ConfigLog } from "./config-log.js";
import { DEFAULT_RAFT_CONFIG } from "./config.js";
import { data, type Envelope, TestCluster } from "./harness.test-util.js";
import { encodeMembership } from "./membership.js";
import { raftTombstone } from "./messages.js";

const config = { ...DEFAULT_RAFT_CONFIG, snapshotChunkBytes: 64 };
const EMPTY = new Uint8Array(0);

function change(c: TestCluster, wanted: MembershipChange): void {
  const admission = c.engine(1).changeMembership(wanted);
  assert.equal(admission.accepted, true, admission.accepted ? "" : admission.error.message);
}

function write(c: TestCluster, count: number, prefix: string): void {
  for (let i = 0; i < count; i++) c.engine(1).propose(data(`${prefix}${i}`));
  c.stabilize();
}

/** Node 4's latest acknowledgement of an append, as its leader received it. */
function lastAck(c: TestCluster): Envelope {
  const ack = c.sent.filter((e) => e.from === 4 && e.to === 1 && e.message.type === "append-response" && !e.message.reject).at(-1);
  assert.ok(ack !== undefined);
  return ack;
}

/** Node 4's replica is dropped (its removal applied) and hosted again with nothing, waiting for a snapshot at `from` or later. */
function dropAndHostAgain(c: TestCluster, from: number): void {
  const disk = c.disks.get(4);
  assert.ok(disk !== undefined);
  disk.hardState = raftTombstone(disk.hardState, c.applied.get(4)?.at(-1)?.index ?? 0);
  disk.entries = [];
  disk.snapshot = null;
  c.awaitSnapshot.set(4, from);
  c.start(4);
}

const match = (c: TestCluster, id: NodeId): number | undefined => c.engine(1).replication()?.find((pr) => pr.id === id)?.match;

describe("a node added back after its replica was dropped", () => {
  test("its earlier replica's acknowledgement, arriving after it was added back, neither promotes it nor stops its leader sending the snapshot it asks for", () => {
    const c = new TestCluster(4, config, null, 3);
    c.elect(1);
    write(c, 5, "a");
    change(c, { voters: [1, 2, 3], learners: [4], context: EMPTY });
    c.stabilize();
    write(c, 5, "b");
    const stale = lastAck(c);
    change(c, { voters: [1, 2, 3], learners: [], context: EMPTY });
    c.stabilize();
    c.tickAll(3);
    assert.equal(match(c, 4), undefined, "the leader let node 4 go once it held its removal");
    dropAndHostAgain(c, 3);
    change(c, { voters: [1, 2, 3], learners: [4], autoPromote: [4], context: EMPTY });
    c.queue.unshift(stale); // the earlier replica's acknowledgement arrives first
    c.stabilize();
    c.tickAll(3);
    assert.deepEqual(c.engine(1).membership().learners, [4], "not promoted on what its earlier replica acknowledged");
    assert.ok(c.sent.some((e) => e.from === 4 && e.message.type === "append-response" && (e.message.snapshotFrom ?? 0) > 0), "the new replica asked for a snapshot");
    c.compact(1);
    c.tickAll(10);
    assert.ok(c.engine(4).status().snapshotIndex >= 3, "the leader sent the snapshot it asked for");
    assert.deepEqual(c.appliedData(4), c.appliedData(1));
    assert.deepEqual(c.engine(1).membership().voters, [1, 2, 3, 4], "promoted once it holds the entry that added it");
    write(c, 1, "c");
    assert.deepEqual(c.appliedData(4), c.appliedData(1));
  });

  test("an acknowledgement its earlier replica sent, past the snapshot the new one installed, is forgotten when the new one says it lacks those entries", () => {
    const c = new TestCluster(4, config, null, 3);
    c.elect(1);
    write(c, 3, "a");
    change(c, { voters: [1, 2, 3], learners: [4], context: EMPTY });
    c.stabilize();
    c.compact(1);
    const snapshot = c.engine(1).status().snapshotIndex;
    write(c, 5, "b");
    const stale = lastAck(c);
    assert.ok(stale.message.type === "append-response" && stale.message.index > snapshot);
    change(c, { voters: [1, 2, 3], learners: [], context: EMPTY });
    c.stabilize();
    c.tickAll(3);
    dropAndHostAgain(c, snapshot);
    // The entries after the snapshot are lost on their way to it, until the stale acknowledgement arrives.
    c.dropWhere = (e) => e.to === 4 && e.message.type === "append" && e.message.entries.length > 0;
    change(c, { voters: [1, 2, 3], learners: [4], context: EMPTY });
    c.stabilize();
    assert.equal(c.engine(4).status().snapshotIndex, snapshot, "the new replica installed the leader's snapshot, older than what its earlier replica held");
    assert.equal(c.engine(4).status().lastIndex, snapshot);
    c.queue.push(stale);
    c.stabilize();
    c.dropWhere = null;
    write(c, 1, "c");
    c.tickAll(10);
    assert.deepEqual(c.appliedData(4), c.appliedData(1), "it was sent the entries its earlier replica had acknowledged");
  });
});

describe("a replica hosted again from its tombstone", () => {
  /** The leaders among nodes 2 and 3 (node 1, cut off, may still believe it leads). */
  const others = (c: TestCluster): NodeId[] => c.leaders().filter((id) => id !== 1);

  /** Node 3 acknowledged "e", which only nodes 1 and 3 hold; its replica is then dropped and made again from its tombstone (`mark`: with what it had applied, or without, as the mutant split-readded-replica-votes keeps it); node 1 is gone and node 2, whose log lacks "e", campaigns. */
  function afterDrop(mark: boolean): TestCluster {
    const c = new TestCluster(3, { ...config, preVote: false });
    c.elect(1);
    write(c, 2, "a");
    c.isolate(2);
    c.engine(1).propose(data("e"));
    c.stabilize();
    assert.ok(c.appliedData(1).includes("e"), "committed by nodes 1 and 3");
    const disk = c.disks.get(3);
    assert.ok(disk !== undefined);
    const tombstone = raftTombstone(disk.hardState, c.applied.get(3)?.at(-1)?.index ?? 0);
    disk.hardState = mark ? tombstone : { term: tombstone.term, vote: tombstone.vote, commit: 0 };
    disk.entries = [];
    disk.snapshot = null;
    c.start(3);
    c.heal();
    c.isolate(1);
    for (let round = 0; round < 10 && others(c).length === 0; round++) c.tickAll(config.electionTicks);
    return c;
  }

  test("grants no vote until it holds what it had applied: a candidate without an entry it acknowledged does not lead", () => {
    const c = afterDrop(true);
    assert.deepEqual(others(c), [], "node 2 cannot lead: node 3 abstains");
    assert.ok(c.sent.some((e) => e.from === 3 && e.to === 2 && e.message.type === "vote-response" && !e.message.granted));
  });

  test("without the tombstone's mark (the mutant split-readded-replica-votes), its empty log elects a leader that lacks a committed entry", () => {
    const c = afterDrop(false);
    assert.deepEqual(others(c), [2]);
    assert.ok(!c.appliedData(2).includes("e"), "leader completeness broken: the committed entry is not in the new leader's log");
  });
});

describe("ConfigLog.joinedAt", () => {
  const m = (voters: NodeId[], learners: NodeId[] = []) => ({ voters, outgoing: [], learners, autoPromote: [], autoLeave: true, context: EMPTY });
  const entry = (index: number, membership: ReturnType<typeof m>) => ({ index, term: 1, kind: "config" as const, data: encodeMembership(membership) });

  test("is the latest entry that made a node a member; null when it has been one since the snapshot", () => {
    const log = new ConfigLog(m([1, 2, 3]), [entry(5, m([1, 2, 3], [4])), entry(7, m([1, 2, 3, 4])), entry(9, m([1, 2, 3])), entry(12, m([1, 2, 3], [4]))]);
    assert.equal(log.joinedAt(1), null);
    assert.equal(log.joinedAt(4), 12, "added again at 12, a learner at 5 and a voter at 7 before");
    assert.equal(log.joinedAt(5), null, "never a member: nothing made it one");
  });
});

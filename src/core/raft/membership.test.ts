import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidInputError, MembershipChangeInProgressError } from "../common/errors.js";
import type { Membership, MembershipChange, NodeId } from "../engine/contract.js";
import { DEFAULT_RAFT_CONFIG } from "./config.js";
import { data, TestCluster } from "./harness.test-util.js";
import { bootstrapMembership, decodeMembership, encodeMembership, nextMembership } from "./membership.js";
import { validateRaftMessage } from "./validate.js";

const config = { ...DEFAULT_RAFT_CONFIG };
const EMPTY = new Uint8Array(0);

function change(voters: NodeId[], learners: NodeId[] = [], extra: Partial<MembershipChange> = {}): MembershipChange {
  return { voters, learners, context: EMPTY, ...extra };
}

function voters(c: TestCluster, id: NodeId): Membership {
  return c.engine(id).membership();
}

/** Proposes a change on `leader` and lets the cluster settle; asserts it was accepted. */
function reconfigure(c: TestCluster, leader: NodeId, wanted: MembershipChange): void {
  const admission = c.engine(leader).changeMembership(wanted);
  assert.equal(admission.accepted, true, admission.accepted ? "" : admission.error.message);
  c.stabilize();
}

describe("4 membership: the configuration format", () => {
  test("a configuration round-trips through its encoding, context included", () => {
    const m: Membership = { voters: [1, 2, 3], outgoing: [1, 2, 4], learners: [7], autoPromote: [7], autoLeave: false, context: data("addresses") };
    assert.deepEqual(decodeMembership(encodeMembership(m)), m);
  });

  test("damaged configuration bytes are refused with InvalidInputError, not trusted", () => {
    const bytes = encodeMembership(bootstrapMembership([1, 2, 3]));
    assert.throws(() => decodeMembership(bytes.subarray(0, bytes.length - 3)), InvalidInputError);
    assert.throws(() => decodeMembership(new Uint8Array([9])), InvalidInputError);
  });

  test("a change of one voter is direct; of two, joint; a malformed one is refused", () => {
    const current = bootstrapMembership([1, 2, 3]);
    assert.deepEqual(nextMembership(current, change([1, 2, 3, 4])).outgoing, []);
    assert.deepEqual(nextMembership(current, change([1, 2])).outgoing, []);
    assert.deepEqual(nextMembership(current, change([1, 2, 4, 5])).outgoing, [1, 2, 3]);
    assert.deepEqual(nextMembership(current, change([1, 2, 3, 4], [], { joint: true })).outgoing, [1, 2, 3]);
    assert.throws(() => nextMembership(current, change([])), InvalidInputError);
    assert.throws(() => nextMembership(current, change([1, 2], [2])), InvalidInputError);
    assert.throws(() => nextMembership(current, change([1, 1, 2])), InvalidInputError);
    assert.throws(() => nextMembership(current, change([1, 2, 3], [4], { autoPromote: [5] })), InvalidInputError);
    const joint = nextMembership(current, change([4, 5, 6]));
    assert.throws(() => nextMembership(joint, change([1, 2, 3])), /joint configuration/);
    assert.deepEqual(nextMembership(joint, change([4, 5, 6])).outgoing, [], "the same voters again leave the joint configuration");
  });
});

describe("4.1 single-voter changes", () => {
  test("an added voter takes effect on append, before it commits, on the leader and followers", () => {
    const c = new TestCluster(4, config, null, 3);
    c.elect(1);
    c.isolate(3);
    c.isolate(2);
    assert.equal(c.engine(1).changeMembership(change([1, 2, 3, 4])).accepted, true);
    c.stabilize(); // reaches only node 4, the new one; not committed: 2 of 4 hold it
    assert.deepEqual(voters(c, 1).voters, [1, 2, 3, 4], "the leader acts on it at once");
    assert.deepEqual(voters(c, 4).voters, [1, 2, 3, 4], "the new member learns it from its log");
    assert.ok(c.engine(1).status().commitIndex < c.engine(1).status().lastIndex);
    c.heal();
    c.tickAll(2);
    assert.equal(c.engine(1).status().commitIndex, c.engine(1).status().lastIndex);
    for (const id of c.ids) assert.deepEqual(voters(c, id).voters, [1, 2, 3, 4]);
  });

  test("after growing to 4 voters a commit needs 3 of them", () => {
    const c = new TestCluster(4, config, null, 3);
    c.elect(1);
    reconfigure(c, 1, change([1, 2, 3, 4]));
    c.isolate(3);
    c.isolate(4);
    c.engine(1).propose(data("x"));
    c.stabilize();
    assert.ok(!c.appliedData(1).includes("x"), "2 of 4 is not a majority");
    c.mend([1], [3]);
    c.tickAll(3);
    assert.ok(c.appliedData(1).includes("x"));
  });

  test("a second change is refused with MembershipChangeInProgressError until the first commits", () => {
    const c = new TestCluster(5, config, null, 3);
    c.elect(1);
    c.isolate(2);
    c.isolate(3);
    assert.equal(c.engine(1).changeMembership(change([1, 2, 3, 4])).accepted, true);
    const second = c.engine(1).changeMembership(change([1, 2, 3, 4, 5]));
    assert.equal(second.accepted, false);
    assert.ok(!second.accepted && second.error instanceof MembershipChangeInProgressError, "a typed error");
    c.heal();
    c.tickAll(2);
    reconfigure(c, 1, change([1, 2, 3, 4, 5]));
    assert.deepEqual(voters(c, 5).voters, [1, 2, 3, 4, 5]);
  });

  test("a new leader refuses changes until it has committed an entry of its term (thesis 4.1's fix)", () => {
    const c = new TestCluster(3);
    c.elect(1);
    c.dropWhere = (e) => e.message.type === "append-response" && e.to === 2;
    c.elect(2); // a new term, and its empty entry cannot commit
    assert.equal(c.engine(2).status().role, "leader");
    const refused = c.engine(2).changeMembership(change([1, 2]));
    assert.ok(!refused.accepted && refused.error instanceof MembershipChangeInProgressError);
  });

  test("a configuration entry that a new leader overwrites is undone on the follower", () => {
    const c = new TestCluster(4, config, null, 3);
    c.elect(1);
    c.isolate(1);
    c.mend([1], [4]);
    c.engine(1).changeMembership(change([1, 2, 3, 4])); // reaches only node 4
    c.stabilize();
    c.partition([4], [2, 3]);
    c.elect(2); // 2 and 3 elect a leader of the old configuration
    c.engine(2).propose(data("y"));
    c.stabilize();
    // Node 1 rejoins the majority side, without node 4.
    c.heal();
    c.isolate(4);
    c.tickAll(3);
    assert.deepEqual(voters(c, 1).voters, [1, 2, 3], "node 1's uncommitted configuration was truncated with its entry");
  });

  test("removing a follower: it stops getting entries and, with its log behind, never campaigns its way back", () => {
    const c = new TestCluster(3);
    c.elect(1);
    reconfigure(c, 1, change([1, 2]));
    c.tickAll(2);
    assert.deepEqual(voters(c, 3).voters, [1, 2], "node 3 learned it was removed");
    c.engine(1).propose(data("after"));
    c.stabilize();
    assert.ok(!c.appliedData(3).includes("after"));
    const term = c.engine(1).status().term;
    c.tick(3, 5 * config.electionTicks);
    c.stabilize();
    assert.equal(c.engine(3).status().role, "follower", "a node that is not a voter does not campaign");
    assert.deepEqual(c.leaders(), [1]);
    assert.equal(c.engine(1).status().term, term);
  });

  test("a removed node that never learned of its removal cannot disrupt (PreVote, CheckQuorum, membership)", () => {
    const c = new TestCluster(3);
    c.elect(1);
    c.isolate(3);
    reconfigure(c, 1, change([1, 2]));
    c.tickAll(3);
    const term = c.engine(1).status().term;
    // Node 3 still believes it is a voter of {1,2,3}; it campaigns over and over.
    c.heal();
    for (let round = 0; round < 10; round++) {
      c.tick(3, 3 * config.electionTicks);
      c.tickAll(1);
    }
    assert.deepEqual(c.leaders(), [1], "the leader was never deposed");
    assert.equal(c.engine(1).status().term, term, "its term never moved");
    assert.equal(c.engine(2).status().term, term);
  });
});

/** Three entries written on leader 1 and committed everywhere. */
function write3(c: TestCluster): void {
  for (let i = 0; i < 3; i++) c.engine(1).propose(data(`w${i}`));
  c.stabilize();
}

describe("a removed node's vote request, ignored", () => {
  test("still moves the term of a node that knows no leader (PreVote off), its election timer running on, so its own campaign asks in a term not voted in yet", () => {
    const c = new TestCluster(3, { ...config, preVote: false });
    c.elect(1);
    for (let i = 0; i < 3; i++) c.engine(1).propose(data(`w${i}`));
    c.stabilize();
    c.isolate(3);
    reconfigure(c, 1, change([1, 2]));
    c.tickAll(3);
    const term = c.engine(2).status().term;
    const ignored = { type: "vote", term: term + 5, lastIndex: 1, lastTerm: 1, preVote: false } as const;
    // Node 2 hears its leader: the request changes nothing (thesis 4.2.3).
    c.engine(2).step(3, ignored);
    assert.equal(c.engine(2).status().term, term);
    // Its leader gone, node 2 campaigns; the removed node's request comes while it does.
    c.isolate(1);
    for (let i = 0; i < 4 * config.electionTicks && c.engine(2).status().role !== "candidate"; i++) c.tick(2);
    assert.equal(c.engine(2).status().role, "candidate");
    const sentBefore = c.sent.length;
    c.engine(2).step(3, ignored);
    c.flush();
    assert.equal(c.engine(2).status().term, term + 5, "it takes the term");
    assert.equal(c.engine(2).status().role, "follower");
    assert.equal(c.sent.slice(sentBefore).filter((e) => e.to === 3).length, 0, "and answers nothing");
    // Its timer ran on: within an election timeout it asks, in the term after.
    for (let i = 0; i < 2 * config.electionTicks && c.engine(2).status().role !== "candidate"; i++) c.tick(2);
    const asked = c.sent.slice(sentBefore).find((e) => e.from === 2 && e.message.type === "vote");
    assert.equal(asked?.message.term, term + 6);
  });
});

describe("a removed node that missed its leader's last word", () => {
  test("is told the commit index again when it campaigns, applies what it holds, its removal included, and stops campaigning", () => {
    const c = new TestCluster(3);
    c.elect(1);
    write3(c);
    // Every heartbeat to node 3 is lost from here on: the leader's last word among them.
    c.dropWhere = (e) => e.to === 3 && e.message.type === "heartbeat";
    reconfigure(c, 1, change([1, 2]));
    c.tickAll(3);
    const removal = c.engine(1).status().lastIndex;
    assert.ok(c.engine(3).status().lastIndex >= removal, "node 3 holds its removal");
    assert.ok(c.engine(3).status().commitIndex < removal, "but does not know it committed");
    c.dropWhere = null;
    c.tick(3, 3 * config.electionTicks);
    c.stabilize();
    assert.ok(c.engine(3).status().commitIndex >= removal, "a campaign brought it the commit index");
    assert.ok(c.appliedData(3).includes("w2"), "and it applied what it holds");
    const asked = c.sent.filter((e) => e.from === 3 && e.message.type === "vote").length;
    c.tick(3, 3 * config.electionTicks);
    c.stabilize();
    assert.equal(c.sent.filter((e) => e.from === 3 && e.message.type === "vote").length, asked, "it campaigns no more");
  });
});

describe("4.2 learners", () => {
  test("a learner receives the log but is not asked to vote and does not count toward commit", () => {
    const c = new TestCluster(4, config, null, 3);
    c.elect(1);
    reconfigure(c, 1, change([1, 2, 3], [4]));
    c.engine(1).propose(data("a"));
    c.tickAll(2);
    assert.ok(c.appliedData(4).includes("a"), "the learner applies the log");
    assert.equal(c.engine(4).status().role, "learner");
    c.isolate(2);
    c.isolate(3);
    c.engine(1).propose(data("b"));
    c.tickAll(2);
    assert.ok(!c.appliedData(1).includes("b"), "leader + learner is not a majority of 3 voters");
    c.heal();
    c.tickAll(2);
    c.isolate(1);
    c.elect(2);
    assert.ok(!c.sent.some((e) => e.message.type === "vote" && e.to === 4), "nobody asks a learner for its vote");
    assert.equal(c.engine(2).status().role, "leader");
  });

  test("a learner marked for it is promoted once caught up; an unmarked one stays a learner", () => {
    const c = new TestCluster(5, config, null, 3);
    c.elect(1);
    for (let i = 0; i < 100; i++) c.engine(1).propose(data(`w${i}`));
    c.stabilize();
    reconfigure(c, 1, change([1, 2, 3], [4, 5], { autoPromote: [4] }));
    c.tickAll(5);
    assert.deepEqual(voters(c, 1).voters, [1, 2, 3, 4], "node 4 was promoted");
    assert.deepEqual(voters(c, 1).learners, [5], "node 5 was not marked");
    for (const id of c.ids) assert.deepEqual(voters(c, id).voters, [1, 2, 3, 4]);
  });

  test("a learner that cannot catch up is not promoted", () => {
    const c = new TestCluster(4, config, null, 3);
    c.elect(1);
    c.isolate(4);
    reconfigure(c, 1, change([1, 2, 3], [4], { autoPromote: [4] }));
    c.tickAll(10);
    assert.deepEqual(voters(c, 1).voters, [1, 2, 3]);
  });

  test("a learner cannot be made leader by a transfer", () => {
    const c = new TestCluster(4, config, null, 3);
    c.elect(1);
    reconfigure(c, 1, change([1, 2, 3], [4]));
    const refused = c.engine(1).transferLeadership(4);
    assert.ok(!refused.accepted && refused.error instanceof InvalidInputError);
  });
});

describe("4.3 joint consensus", () => {
  test("replacing every voter goes through a joint configuration and leaves it automatically", () => {
    const c = new TestCluster(6, config, null, 3);
    c.elect(1);
    c.engine(1).propose(data("before"));
    c.stabilize();
    reconfigure(c, 1, change([4, 5, 6]));
    c.tickAll(5);
    for (const id of [4, 5, 6]) assert.deepEqual(voters(c, id), { ...voters(c, id), voters: [4, 5, 6], outgoing: [] }, `node ${id} left the joint configuration`);
    const leaders = c.leaders();
    assert.equal(leaders.length, 1);
    assert.ok([4, 5, 6].includes(leaders[0] as NodeId), `the old leader handed over to a new voter, not ${leaders.join(",")}`);
    const leader = leaders[0] as NodeId;
    c.engine(leader).propose(data("after"));
    c.tickAll(2);
    for (const id of [4, 5, 6]) assert.deepEqual(c.appliedData(id), ["before", "after"]);
    // The old voters are out: cutting them all off changes nothing.
    c.partition([1, 2, 3], [4, 5, 6]);
    c.engine(leader).propose(data("without the old"));
    c.tickAll(2);
    assert.ok(c.appliedData(leader).includes("without the old"));
  });

  test("in the joint configuration a commit needs a majority of the old voters and of the new", () => {
    const c = new TestCluster(6, config, null, 3);
    c.elect(1);
    reconfigure(c, 1, change([1, 5, 6], [], { autoLeave: false }));
    assert.deepEqual(voters(c, 1).outgoing, [1, 2, 3], "still joint: the leave waits for a request");
    c.partition([1, 5, 6], [2, 3, 4]);
    c.engine(1).propose(data("new side only"));
    c.tickAll(2);
    assert.ok(!c.appliedData(1).includes("new side only"), "{1,5,6} is a majority of the new voters only");
    c.heal();
    c.partition([1, 2, 3], [5, 6]);
    c.engine(1).propose(data("old side only"));
    c.tickAll(2);
    assert.ok(!c.appliedData(1).includes("old side only"), "{1,2,3} is a majority of the old voters only");
    c.heal();
    c.tickAll(2);
    assert.ok(c.appliedData(1).includes("old side only"));
    reconfigure(c, 1, change([1, 5, 6]));
    assert.deepEqual(voters(c, 1).outgoing, [], "left on request");
  });

  test("an election in the joint configuration needs both majorities", () => {
    const c = new TestCluster(6, config, null, 3);
    c.elect(1);
    reconfigure(c, 1, change([4, 5, 6], [], { autoLeave: false }));
    c.tickAll(2);
    c.isolate(1);
    c.partition([2, 3], [4, 5, 6]);
    c.elect(4); // 4, 5, 6 agree, but none of the old voters can hear it
    assert.notEqual(c.engine(4).status().role, "leader");
    c.mend([2, 3], [4, 5, 6]);
    c.electUntil(4);
  });
});

describe("4.2.2 removing the leader", () => {
  test("the leader removes itself: it leads until the change commits, then hands over and steps down", () => {
    const c = new TestCluster(3);
    c.elect(1);
    c.engine(1).propose(data("x"));
    c.stabilize();
    reconfigure(c, 1, change([2, 3]));
    c.tickAll(1);
    const leaders = c.leaders();
    assert.equal(leaders.length, 1);
    assert.ok(leaders[0] === 2 || leaders[0] === 3, `a remaining voter leads, not ${leaders.join(",")}`);
    assert.equal(c.engine(1).status().role, "follower");
    c.engine(leaders[0] as NodeId).propose(data("y"));
    c.tickAll(2);
    assert.deepEqual(c.appliedData(2), ["x", "y"]);
    c.tick(1, 5 * config.electionTicks);
    c.stabilize();
    assert.equal(c.engine(1).status().role, "follower", "the removed leader never campaigns");
    assert.deepEqual(c.leaders(), leaders);
  });
});

describe("4 membership survives restarts and snapshots", () => {
  test("a restarted node knows the configuration from its log, not its bootstrap list", () => {
    const c = new TestCluster(4, config, null, 3);
    c.elect(1);
    reconfigure(c, 1, change([1, 2, 3, 4]));
    c.start(2);
    assert.deepEqual(voters(c, 2).voters, [1, 2, 3, 4]);
    c.start(4); // started with an empty bootstrap list
    assert.deepEqual(voters(c, 4).voters, [1, 2, 3, 4]);
  });

  test("a snapshot carries the configuration: a compacted node restarts with it, a new node joins through it", () => {
    const c = new TestCluster(5, config, null, 3);
    c.elect(1);
    reconfigure(c, 1, change([1, 2, 3, 4]));
    c.tickAll(1);
    for (let i = 0; i < 5; i++) c.engine(1).propose(data(`w${i}`));
    c.stabilize();
    for (const id of [1, 2, 3, 4]) c.compact(id);
    c.start(2);
    assert.deepEqual(voters(c, 2).voters, [1, 2, 3, 4], "from the snapshot");
    reconfigure(c, 1, change([1, 2, 3, 4], [5]));
    c.tickAll(3);
    assert.ok(c.engine(5).status().snapshotIndex > 0, "node 5 started from the leader's snapshot");
    assert.deepEqual(voters(c, 5).learners, [5]);
    assert.deepEqual(c.appliedData(5), ["w0", "w1", "w2", "w3", "w4"]);
  });
});

describe("4 membership: found in review", () => {
  test("a removed node that is down is dropped after an election timeout, not heartbeated for ever", () => {
    const c = new TestCluster(3);
    c.elect(1);
    c.engine(1).propose(data("a"));
    c.stabilize();
    c.isolate(3); // node 3 died
    reconfigure(c, 1, change([1, 2]));
    c.tickAll(3 * config.electionTicks);
    const before = c.sent.length;
    c.tickAll(5 * config.electionTicks);
    assert.equal(c.sent.slice(before).filter((e) => e.from === 1 && e.to === 3).length, 0);
    assert.equal(c.engine(1).status().role, "leader");
  });

  test("configuration entries do not count against the uncommitted-bytes bound, in or out", () => {
    const c = new TestCluster(3, { ...config, uncommittedBytesMax: 1000 });
    c.elect(1);
    assert.equal(c.engine(1).changeMembership(change([1, 2, 3], [], { context: new Uint8Array(900) })).accepted, true);
    const configIndex = c.engine(1).status().lastIndex;
    c.dropWhere = (e) => e.message.type === "append" && e.message.entries.some((entry) => entry.index > configIndex);
    c.flush();
    assert.equal(c.engine(1).propose(new Uint8Array(900)).accepted, true);
    c.stabilize();
    assert.equal(c.engine(1).status().commitIndex, configIndex);
    assert.equal(c.engine(1).propose(new Uint8Array(900)).accepted, false, "900 uncommitted bytes and 900 more exceed the bound");
  });

  test("a peer's configuration entry that counts a node twice, or promotes a non-learner, is refused at the wire", () => {
    const entry = (m: Membership): unknown => ({ type: "append", term: 1, prevIndex: 0, prevTerm: 0, commit: 0, entries: [{ index: 1, term: 1, data: encodeMembership(m), kind: "config" }] });
    const base = bootstrapMembership([2, 3]);
    assert.doesNotThrow(() => validateRaftMessage(entry(base)));
    assert.throws(() => validateRaftMessage(entry({ ...base, voters: [2, 2, 3] })), InvalidInputError);
    assert.throws(() => validateRaftMessage(entry({ ...base, autoPromote: [3] })), InvalidInputError);
    assert.throws(() => validateRaftMessage(entry({ ...base, learners: [3] })), InvalidInputError);
    assert.throws(() => validateRaftMessage(entry({ ...base, voters: [] })), InvalidInputError);
  });
});

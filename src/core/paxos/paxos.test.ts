// The Multi-Paxos engine against the rules of the papers, one test per rule, each named after
// where it is written: Lamport's "Paxos Made Simple" (PMS, 2001), van Renesse and
// Altinbuken's "Paxos Made Moderately Complex" (PMMC, 2015), Chandra, Griesemer and
// Redstone's "Paxos Made Live" (PML, 2007). Single engines are driven with hand-made
// messages where a rule is about one node; PaxosCluster where it is about their conversation.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidInputError, MembershipChangeInProgressError, NotLeaderError, OverloadedError } from "../common/errors.js";
import type { LogEntry, NodeId, Ready } from "../engine/contract.js";
import { ballotNode, ballotOf, BALLOT_NODE_SPAN, describeBallot, PAXOS_NODE_ID_MAX, roundOf } from "./ballot.js";
import { DEFAULT_PAXOS_CONFIG, type PaxosConfig } from "./config.js";
import { encodeMembership as encode } from "../engine/membership.js";
import { ConfigHistory, bootstrapMembership } from "./configs.js";
import { data, drain, entry, PaxosCluster } from "./harness.test-util.js";
import type { PaxosHardState, PaxosMessage } from "./messages.js";
import { PaxosLog } from "./log.js";
import { PaxosEngine } from "./paxos.js";
import { validatePaxosMessage } from "./validate.js";

type R = Ready<PaxosMessage, PaxosHardState>;

/** One engine alone (`drain`, from the harness, runs its Readies as a driver would). */
function engine(id: NodeId, peers: readonly NodeId[], config: Partial<PaxosConfig> = {}, durable?: { hardState: PaxosHardState | null; entries: LogEntry[] }): PaxosEngine {
  return new PaxosEngine({ id, peers, durable: { hardState: durable?.hardState ?? null, snapshot: null, entries: durable?.entries ?? [] }, appliedIndex: 0, seed: id }, { ...DEFAULT_PAXOS_CONFIG, ...config });
}


function sent(readies: readonly R[], type?: PaxosMessage["type"]): { to: NodeId; message: PaxosMessage; afterPersist: boolean }[] {
  const all = readies.flatMap((r) => [...r.messages.map((m) => ({ ...m, afterPersist: false })), ...r.messagesAfterPersist.map((m) => ({ ...m, afterPersist: true }))]);
  return type === undefined ? all : all.filter((m) => m.message.type === type);
}


/** Ticks a lone engine until it sends prepares (probes off) and returns its ballot. */
function campaign(e: PaxosEngine): number {
  for (let i = 0; i < 100 && e.status().role !== "candidate" && e.status().role !== "leader"; i++) e.tick();
  assert.ok(e.status().role === "candidate" || e.status().role === "leader", "it did not campaign");
  return e.status().term;
}

describe("ballots", () => {
  test("a ballot is round * 2^20 + node id: totally ordered, unique per node, rounds first", () => {
    assert.equal(ballotOf(3, 7), 3 * BALLOT_NODE_SPAN + 7);
    assert.equal(roundOf(ballotOf(3, 7)), 3);
    assert.equal(ballotNode(ballotOf(3, 7)), 7);
    assert.ok(ballotOf(2, PAXOS_NODE_ID_MAX) < ballotOf(3, 1), "a higher round wins whatever the ids");
    assert.ok(ballotOf(3, 1) < ballotOf(3, 2), "the id breaks ties within a round");
    assert.equal(describeBallot(ballotOf(3, 7)), "3.7");
    assert.throws(() => ballotOf(1, PAXOS_NODE_ID_MAX + 1), /out of the Paxos range/);
  });

  test("node ids above 2^20 - 1 are refused when the engine is built", () => {
    assert.throws(() => engine(PAXOS_NODE_ID_MAX + 1, [PAXOS_NODE_ID_MAX + 1]), /Paxos node ids go up to/);
  });
});

describe("PMS 2.2 — the acceptor", () => {
  test("P1: an acceptor that promised nothing accepts the first proposal it receives", () => {
    const e = engine(2, [1, 2, 3]);
    const ballot = ballotOf(1, 1);
    e.step(1, { type: "accept", ballot, entries: [entry(1, ballot, "a")], commit: 0 });
    const readies = drain(e);
    assert.deepEqual(readies.flatMap((r) => r.entries).map((x) => x.index), [1]);
    assert.equal(e.status().term, ballot, "accepting raises the promise (Cassandra's fix: accepting is promising)");
    const acks = sent(readies, "accepted");
    assert.equal(acks.length, 1);
    assert.ok(acks[0]?.afterPersist, "an acceptance leaves only once it is durable");
  });

  test("P1a: an acceptor accepts a proposal numbered n unless it has promised a number greater than n", () => {
    const e = engine(2, [1, 2, 3]);
    const high = ballotOf(2, 3);
    e.step(3, { type: "prepare", ballot: high, from: 1, probe: false });
    drain(e);
    const low = ballotOf(1, 1);
    e.step(1, { type: "accept", ballot: low, entries: [entry(1, low, "stale")], commit: 0 });
    const refused = drain(e);
    assert.equal(refused.flatMap((r) => r.entries).length, 0, "the slot was not accepted below the promise (ScyllaDB #6139)");
    const nack = sent(refused, "nack")[0]?.message;
    assert.ok(nack?.type === "nack" && nack.promised === high, "the nack names the ballot promised");
    e.step(3, { type: "accept", ballot: high, entries: [entry(1, high, "ok")], commit: 0 });
    assert.equal(drain(e).flatMap((r) => r.entries)[0]?.term, high, "at the promised ballot it accepts");
  });

  test("phase 1b: a promise reports every accepted slot from the one asked, with its ballot, holes left out", () => {
    const b1 = ballotOf(1, 1);
    const e = engine(2, [1, 2, 3], {}, { hardState: { promised: b1, commit: 0 }, entries: [entry(1, b1, "a"), { index: 2, term: 0, data: new Uint8Array(0) }, entry(3, b1, "c")] });
    const b2 = ballotOf(2, 3);
    e.step(3, { type: "prepare", ballot: b2, from: 1, probe: false });
    const readies = drain(e);
    const promise = sent(readies, "promise")[0];
    assert.ok(promise?.afterPersist, "a promise leaves only once it is durable");
    assert.ok(promise.message.type === "promise");
    assert.deepEqual(promise.message.entries.map((x) => [x.index, x.term]), [[1, b1], [3, b1]]);
    assert.equal(promise.message.complete, true);
    assert.deepEqual(readies.map((r) => r.hardState?.promised).filter((p) => p !== undefined), [b2]);
  });

  test("an acceptor never promises a ballot below the one it promised, and says so", () => {
    const e = engine(2, [1, 2, 3]);
    e.step(3, { type: "prepare", ballot: ballotOf(2, 3), from: 1, probe: false });
    drain(e);
    e.step(1, { type: "prepare", ballot: ballotOf(1, 1), from: 1, probe: false });
    const readies = drain(e);
    assert.equal(sent(readies, "promise").length, 0);
    assert.equal(sent(readies, "nack").length, 1);
    assert.equal(e.status().term, ballotOf(2, 3));
  });

  test("PMS 2.3: a restarted acceptor keeps its promise, even when only its accepted slots reached the disk", () => {
    const b = ballotOf(4, 3);
    const e = engine(2, [1, 2, 3], {}, { hardState: { promised: ballotOf(1, 1), commit: 0 }, entries: [entry(1, b, "a")] });
    assert.equal(e.status().term, b, "an accepted slot proves the promise its ballot came with");
    e.step(1, { type: "accept", ballot: ballotOf(2, 1), entries: [entry(2, ballotOf(2, 1), "x")], commit: 0 });
    assert.equal(sent(drain(e), "nack").length, 1);
  });

  test("PMS 2.3 (what must be durable): a promise and an acceptance are synced before answering; a learned commit index alone need not be (etcd's MustSync)", () => {
    const e = engine(2, [1, 2, 3]);
    const b = ballotOf(1, 1);
    e.step(1, { type: "prepare", ballot: b, from: 1, probe: false });
    const promise = drain(e);
    assert.ok(promise.some((r) => r.hardState?.promised === b && r.mustSync === true), "a promise is synced");
    e.step(1, { type: "accept", ballot: b, entries: [entry(1, b, "a")], commit: 0 });
    assert.ok(drain(e).every((r) => r.entries.length === 0 || r.mustSync === true), "an acceptance is synced");
    e.step(1, { type: "heartbeat", ballot: b, commit: 1, readRound: 0 });
    const learned = drain(e);
    assert.ok(learned.some((r) => r.hardState?.commit === 1), "the commit index is saved");
    assert.ok(learned.every((r) => r.mustSync === false), "but need not wait for a sync: a restarted acceptor learns it again");
    assert.deepEqual(learned.flatMap((r) => r.committedEntries).map((x) => x.index), [1]);
  });
});

describe("PMS 2.2 and 3 — the proposer", () => {
  test("P2c: per slot, the new leader proposes the value accepted at the highest ballot among a majority's reports", () => {
    const e = engine(1, [1, 2, 3], { probe: false });
    const ballot = campaign(e);
    drain(e);
    const old = ballotOf(1, 2);
    const newer = ballotOf(2, 3);
    // Node 2 reports slot 1 at the older ballot, slot 2 at the newer one; node 3, slot 1 at the newer.
    e.step(2, { type: "promise", ballot, probe: false, from: 1, through: 2, complete: true, entries: [entry(1, old, "old-1"), entry(2, newer, "new-2")], commit: 0 });
    e.step(3, { type: "promise", ballot, probe: false, from: 1, through: 1, complete: true, entries: [entry(1, newer, "new-1")], commit: 0 });
    const readies = drain(e);
    assert.equal(e.status().role, "leader");
    const written = readies.flatMap((r) => r.entries);
    assert.deepEqual(written.map((x) => [x.index, new TextDecoder().decode(x.data), x.term]), [
      [1, "old-1", ballot],
      [2, "new-2", ballot],
    ], "with node 2's promise alone a majority: slot 1 is old-1, node 3's came after phase 1 was complete");
  });

  test("P2c, with every report in: the highest ballot wins per slot", () => {
    const e = engine(1, [1, 2, 3, 4, 5], { probe: false });
    const ballot = campaign(e);
    drain(e);
    e.step(2, { type: "promise", ballot, probe: false, from: 1, through: 1, complete: true, entries: [entry(1, ballotOf(1, 2), "low")], commit: 0 });
    e.step(3, { type: "promise", ballot, probe: false, from: 1, through: 1, complete: true, entries: [entry(1, ballotOf(3, 4), "high")], commit: 0 });
    const written = drain(e).flatMap((r) => r.entries);
    assert.equal(new TextDecoder().decode(written[0]?.data), "high");
  });

  test("PMS 3: a slot nothing was accepted in is filled with a no-op, after phase 1", () => {
    const e = engine(1, [1, 2, 3], { probe: false });
    const ballot = campaign(e);
    drain(e);
    e.step(2, { type: "promise", ballot, probe: false, from: 1, through: 3, complete: true, entries: [entry(1, ballotOf(1, 2), "a"), entry(3, ballotOf(1, 2), "c")], commit: 0 });
    const written = drain(e).flatMap((r) => r.entries);
    assert.deepEqual(written.map((x) => new TextDecoder().decode(x.data)), ["a", "", "c"]);
  });

  test("MyPaxos #18: a promise answering another ballot does not count", () => {
    const e = engine(1, [1, 2, 3], { probe: false });
    const first = campaign(e);
    drain(e);
    for (let i = 0; i < 100 && e.status().term === first; i++) e.tick(); // times out, campaigns again
    const second = e.status().term;
    assert.ok(second > first);
    drain(e);
    e.step(2, { type: "promise", ballot: first, probe: false, from: 1, through: 0, complete: true, entries: [], commit: 0 });
    drain(e);
    assert.equal(e.status().role, "candidate", "the late promise for the first ballot is ignored");
    e.step(2, { type: "promise", ballot: second, probe: false, from: 1, through: 0, complete: true, entries: [], commit: 0 });
    drain(e);
    assert.equal(e.status().role, "leader");
  });

  test("PMS 3 / PMMC: a leader runs phase 1 once, then each new command takes phase 2 alone", () => {
    const c = new PaxosCluster(3);
    c.elect(1);
    const prepares = c.sent.filter((s) => s.message.type === "prepare" && !s.message.probe).length;
    for (let i = 0; i < 20; i++) c.engine(1).propose(data(`v${i}`));
    c.stabilize();
    c.tickAll(2);
    assert.equal(c.sent.filter((s) => s.message.type === "prepare" && !s.message.probe).length, prepares, "no new prepare for new commands");
    assert.deepEqual(c.appliedData(2), Array.from({ length: 20 }, (_, i) => `v${i}`));
  });

  test("writing in parallel (Ongaro's thesis 10.2.1, as for Raft): the leader hands out its next Ready while its own write is in flight, and counts its own acceptance only once durable", () => {
    const c = new PaxosCluster(3);
    c.elect(1);
    const leader = c.engine(1);
    leader.propose(data("w")); // the acceptors answer one accept: they are streamed to from now on
    c.stabilize();
    const before = leader.status().commitIndex;
    leader.propose(data("x"));
    const first = leader.ready();
    const accept = first.messages.find((m) => m.to === 2 && m.message.type === "accept")?.message;
    assert.ok(accept !== undefined && accept.type === "accept", "the accept leaves at once, before the leader's own write is durable");
    const slot = (accept.entries[accept.entries.length - 1] as LogEntry).index;
    leader.propose(data("y"));
    assert.ok(leader.hasReady(), "the next proposal does not wait for the first write");
    const second = leader.ready();
    assert.ok(second.messages.some((m) => m.message.type === "accept"));
    leader.step(2, { type: "accepted", ballot: leader.status().term, index: slot, last: slot });
    assert.equal(leader.status().commitIndex, before, "one acceptor and a leader whose acceptance is not durable are no majority");
    leader.advance(first);
    assert.equal(leader.status().commitIndex, slot, "once the leader's write is durable, it and acceptor 2 are");
    leader.advance(second);
  });

  test("writing in parallel: with several writes in flight, a slot counts as durable only once no write still in flight may change it", () => {
    const log = new PaxosLog({ hardState: null, snapshot: null, entries: [] }, 0, 0);
    for (let i = 1; i <= 5; i++) log.write(entry(i, 7, `a${i}`));
    const first = log.takeUnstable();
    log.write(entry(3, 8, "b3")); // a later ballot's value for slot 3, while the first write flushes
    log.write(entry(6, 8, "b6"));
    const second = log.takeUnstable();
    assert.deepEqual(second.map((e) => e.index), [3, 4, 5, 6], "the suffix from the changed slot is written again");
    assert.equal(log.durableThrough, 0);
    log.stable(first);
    assert.equal(log.durableThrough, 2, "slot 3 on disk is still the first write's");
    log.stable(second);
    assert.equal(log.durableThrough, 6);
  });

  test("PMS 3: only the contiguous chosen prefix is applied; a slot chosen after a hole waits", () => {
    const e = engine(2, [1, 2, 3]);
    const b = ballotOf(1, 1);
    e.step(1, { type: "accept", ballot: b, entries: [entry(1, b, "a")], commit: 0 });
    e.step(1, { type: "accept", ballot: b, entries: [entry(3, b, "c")], commit: 3 });
    const readies = drain(e);
    assert.equal(e.status().commitIndex, 1, "slot 2 is a hole here: slot 3 cannot be learned past it");
    assert.deepEqual(readies.flatMap((r) => r.committedEntries).map((x) => x.index), [1]);
    assert.deepEqual(readies.flatMap((r) => r.entries).map((x) => [x.index, x.term]).slice(-3), [[1, b], [2, 0], [3, b]], "the hole is written as ballot 0");
    e.step(1, { type: "accept", ballot: b, entries: [entry(2, b, "b")], commit: 3 });
    const after = drain(e);
    assert.deepEqual(after.flatMap((r) => r.committedEntries).map((x) => x.index), [2, 3]);
    assert.deepEqual(after.flatMap((r) => r.entries).map((x) => x.index), [2, 3], "a slot changed inside the log: the suffix from it is written again");
  });

  test("an acceptor learns a slot chosen only when it holds it at the leader's ballot", () => {
    const e = engine(2, [1, 2, 3]);
    const old = ballotOf(1, 3);
    e.step(3, { type: "accept", ballot: old, entries: [entry(1, old, "other")], commit: 0 });
    drain(e);
    const b = ballotOf(2, 1);
    e.step(1, { type: "heartbeat", ballot: b, commit: 1, readRound: 0 });
    drain(e);
    assert.equal(e.status().commitIndex, 0, "its slot 1 is from another ballot: it may not be the chosen value");
  });

  test("PMS 3 (learning after a failure): an acceptor that restarts having lost a chosen prefix it had not made durable is sent the slots it lacks", () => {
    const c = new PaxosCluster(3);
    c.elect(1);
    for (const v of ["a", "b", "c"]) c.engine(1).propose(data(v));
    // Node 2 accepts slots 1..3; the heartbeat telling it they are chosen is lost.
    c.flush();
    while (c.queue.length > 0) {
      const batch = c.queue;
      c.queue = [];
      for (const e of batch) if (!(e.to === 2 && e.message.type === "heartbeat")) c.engine(e.to).step(e.from, e.message);
      c.flush();
    }
    // What node 2 has synced: its promise to ballot 1.1 and slots 1..3 accepted at it. The
    // chosen prefix it learns next is a hard state that needs no sync (etcd's MustSync).
    const synced = { ...(c.disks.get(2)?.hardState as PaxosHardState) };
    assert.equal(synced.commit, 0);
    c.tickAll(2);
    assert.equal(c.engine(2).status().commitIndex, 3);
    // Node 3 takes over while node 2 hears nothing: node 2 joins ballot 1.3 at its first
    // heartbeat and reports the prefix it knows chosen (3) before that promise is synced.
    c.isolate(2);
    assert.ok(c.engine(1).transferLeadership(3).accepted);
    c.stabilize();
    assert.equal(c.engine(3).status().role, "leader");
    c.heal();
    c.tickAll(1);
    assert.equal(c.engine(2).status().term, c.engine(3).status().term);
    // It crashes before that sync: the promise and the learned prefix are lost. It restarts
    // holding slots 1..3 at ballot 1.1 and promised 1.1; back at ballot 1.3 it holds no slot
    // at that ballot, so it cannot learn them chosen until the leader sends them again.
    (c.disks.get(2) as { hardState: PaxosHardState | null }).hardState = synced;
    c.start(2);
    assert.equal(c.engine(2).status().commitIndex, 0);
    c.tickAll(5);
    assert.equal(c.engine(2).status().commitIndex, 3, "the leader went back to what node 2 holds and sent slots 1..3 at its ballot");
    assert.deepEqual(c.appliedData(2), ["a", "b", "c"]);
    c.engine(3).propose(data("d"));
    c.tickAll(3);
    assert.deepEqual(c.appliedData(2), ["a", "b", "c", "d"]);
  });

  test("an accept unanswered for a heartbeat interval is sent again; an answer to commit news in the same tick is no such sign", () => {
    const c = new PaxosCluster(3);
    c.elect(1);
    c.engine(1).propose(data("a"));
    c.stabilize();
    c.tick(1);
    c.stabilize(); // a heartbeat round: the leader notes that node 2 holds slot 1
    const ballot = c.engine(1).status().term;
    c.engine(1).propose(data("b"));
    c.flush();
    c.queue = c.queue.filter((e) => !(e.to === 2 && e.message.type === "accept")); // lost
    const resentTo2 = (): number[][] => {
      c.flush();
      const resent = c.queue.filter((e) => e.from === 1 && e.to === 2 && e.message.type === "accept");
      c.queue = c.queue.filter((e) => !resent.includes(e));
      return resent.map((e) => (e.message.type === "accept" ? e.message.entries.map((x) => x.index) : []));
    };
    // Node 2's answer to a heartbeat sent before slot 2 (commit news), in the same tick.
    c.engine(1).step(2, { type: "heartbeat-response", ballot, readRound: 0, index: 1 });
    assert.deepEqual(resentTo2(), [], "slot 2 left a moment ago: not lost yet");
    // A tick later node 2 still holds only slot 1: the accept was lost.
    c.engine(1).tick();
    c.engine(1).step(2, { type: "heartbeat-response", ballot, readRound: 0, index: 1 });
    assert.deepEqual(resentTo2(), [[2]]);
  });

  test("an idle acceptor the leader streams to that reports less than it acknowledged is probed from what it holds", () => {
    // The rule, driven by hand: the history above leaves the acceptor in probe; one whose
    // answers arrive out of order (the simulator's network) may report less while streaming.
    const c = new PaxosCluster(3);
    c.elect(1);
    for (const v of ["a", "b", "c"]) c.engine(1).propose(data(v));
    c.stabilize();
    const ballot = c.engine(1).status().term;
    c.engine(1).step(2, { type: "heartbeat-response", ballot, readRound: 0, index: 1 });
    c.flush();
    const resent = c.queue.filter((e) => e.from === 1 && e.to === 2 && e.message.type === "accept");
    assert.deepEqual(
      resent.map((e) => (e.message.type === "accept" ? e.message.entries.map((x) => x.index) : [])),
      [[2, 3]],
      "slots 2 and 3 go again to the acceptor that reports holding slot 1 alone",
    );
  });

  test("PMMC (preemption): a leader that learns of a higher ballot stops proposing", () => {
    const c = new PaxosCluster(3, { ...DEFAULT_PAXOS_CONFIG, checkQuorum: false });
    c.elect(1);
    c.isolate(1);
    c.elect(2);
    c.heal();
    c.engine(1).propose(data("late"));
    c.stabilize();
    assert.equal(c.engine(1).status().role, "follower");
    assert.deepEqual(c.leaders(), [2]);
  });

  test("a probe raises no ballot: a node cut off keeps its ballot, and does not depose the leader when it returns", () => {
    const c = new PaxosCluster(3);
    c.elect(1);
    const ballot = c.engine(1).status().term;
    c.isolate(3);
    for (let i = 0; i < 10; i++) {
      c.tick(3, DEFAULT_PAXOS_CONFIG.electionTicks * 2);
      c.tickAll(1);
    }
    assert.equal(c.engine(3).status().term, ballot, "node 3's probes got no answers, and its promise stayed");
    c.heal();
    c.tickAll(5);
    assert.deepEqual(c.leaders(), [1]);
    assert.equal(c.engine(1).status().term, ballot);
  });
});

describe("PMMC — the configuration window α", () => {
  test("a configuration chosen in slot s governs slots from s + α on", () => {
    const history = new ConfigHistory(4, bootstrapMembership([1, 2, 3]), 0);
    const four = bootstrapMembership([1, 2, 3, 4]);
    history.onWrite({ index: 10, term: 1, data: encode(four), kind: "config" }, null);
    assert.deepEqual(history.configFor(13).voters, [1, 2, 3]);
    assert.deepEqual(history.configFor(14).voters, [1, 2, 3, 4]);
  });

  test("a snapshot taken while a change waits for its slots records both configurations, as a joint one", () => {
    const history = new ConfigHistory(4, bootstrapMembership([1, 2, 3]), 0);
    history.onWrite({ index: 10, term: 1, data: encode(bootstrapMembership([1, 2, 3, 4])), kind: "config" }, null);
    const pending = history.membershipAt(11);
    assert.deepEqual([pending.voters, pending.outgoing], [[1, 2, 3, 4], [1, 2, 3]]);
    assert.deepEqual(history.membershipAt(13).outgoing, [], "from slot 14 on only the new one governs");
    const restored = new ConfigHistory(4, pending, 11);
    assert.deepEqual([restored.configFor(15).voters, restored.configFor(15).outgoing], [[1, 2, 3, 4], [1, 2, 3]], "a restored node asks both, up to 11 + α");
    assert.deepEqual(restored.configFor(16).outgoing, [], "and the new one alone after");
  });

  test("compacting again while a change waits keeps where it takes effect (it is not moved to each snapshot's slot + α)", () => {
    // Simulator seeds 5031, 5145 and 5198: with snapshots every 20 slots and α = 1024, moving
    // the end kept the old voters voting, and the leader padding no-ops, for the whole run.
    const history = new ConfigHistory(4, bootstrapMembership([1, 2, 3]), 0);
    history.onWrite({ index: 10, term: 1, data: encode(bootstrapMembership([1, 2])), kind: "config" }, null);
    const pending = history.membershipAt(11);
    for (const index of [11, 12]) history.compact(index);
    assert.deepEqual(history.configFor(13).outgoing, [1, 2, 3], "slot 13 still asks both");
    assert.deepEqual([history.configFor(14).voters, history.configFor(14).outgoing], [[1, 2], []], "the change in slot 10 governs slot 14 on");
    assert.equal(history.lastChangeSlot(), 10, "and the padding after it ends at 10 + 2α - 1");
    assert.deepEqual(history.current(13).outgoing, [], "the node acts on the new configuration once slot 13 is chosen");
    history.compact(13);
    assert.equal(history.lastChangeSlot(), null, "once in force, a compaction forgets the change");
    history.compact(20);
    assert.deepEqual([history.membershipAt(20).voters, history.membershipAt(20).outgoing], [[1, 2], []], "a snapshot past the window records the new one alone");

    const restored = new ConfigHistory(4, pending, 11);
    for (const index of [12, 13, 14]) restored.compact(index);
    assert.deepEqual(restored.configFor(15).outgoing, [1, 2, 3], "a restored node asks both up to 11 + α");
    assert.deepEqual(restored.configFor(16).outgoing, [], "and the new one alone after, however often it compacts");
    assert.equal(restored.lastChangeSlot(), 11);
  });

  test("a leader proposes slot x only once every slot up to x - α is chosen", () => {
    const c = new PaxosCluster(3, { ...DEFAULT_PAXOS_CONFIG, windowSlots: 3 });
    c.elect(1);
    c.partition([1], [2, 3]);
    for (let i = 0; i < 10; i++) c.engine(1).propose(data(`v${i}`));
    c.stabilize();
    assert.equal(c.engine(1).status().lastIndex, 3, "three slots in flight, the rest wait");
    c.heal();
    c.tickAll(3);
    assert.equal(c.engine(2).status().commitIndex, 10);
  });

  test("the no-ops after a configuration entry run at most one pipeline ahead: a proposal made just after a change is not queued behind α of them", () => {
    // A narrow pipeline (one slot per accept, one accept in flight), as the simulator draws
    // it: every no-op written ahead of a proposal costs it a round trip.
    const windowSlots = 64;
    const c = new PaxosCluster(4, { ...DEFAULT_PAXOS_CONFIG, windowSlots, entriesPerMessageMax: 1, inflightMessagesMax: 1 }, null, 3);
    c.elect(1);
    assert.ok(c.engine(1).changeMembership({ voters: [1, 2, 3], learners: [4], context: new Uint8Array(0) }).accepted);
    const changeSlot = c.engine(1).status().lastIndex;
    c.flush(); // the leader hands out its next Ready, and with it the padding it writes
    assert.ok(c.engine(1).propose(data("x")).accepted);
    let rounds = 0;
    while (!c.appliedData(1).includes("x") && rounds < 10 * windowSlots) {
      const batch = c.queue;
      c.queue = [];
      for (const e of batch) c.engine(e.to).step(e.from, e.message);
      c.flush();
      rounds++;
    }
    const slot = (c.applied.get(1) ?? []).find((e) => new TextDecoder().decode(e.data) === "x")?.index;
    assert.ok(slot !== undefined && slot <= changeSlot + 2, `"x" took slot ${slot}, the change is at ${changeSlot}`);
    assert.ok(rounds <= 10, `"x" was chosen after ${rounds} rounds of messages`);
  });

  test("one voter at a time: two at once, a joint change, and a change before the last took effect are refused", () => {
    const c = new PaxosCluster(5, { ...DEFAULT_PAXOS_CONFIG, windowSlots: 4 }, null, 3);
    c.elect(1);
    const two = c.engine(1).changeMembership({ voters: [1, 2, 3, 4, 5], learners: [], context: new Uint8Array(0) });
    assert.ok(!two.accepted && two.error instanceof InvalidInputError, "two voters at once");
    const joint = c.engine(1).changeMembership({ voters: [1, 2, 3, 4], learners: [], joint: true, context: new Uint8Array(0) });
    assert.ok(!joint.accepted && joint.error instanceof InvalidInputError, "a joint change");
    assert.ok(c.engine(1).changeMembership({ voters: [1, 2, 3, 4], learners: [], context: new Uint8Array(0) }).accepted);
    const next = c.engine(1).changeMembership({ voters: [1, 2, 3, 4, 5], learners: [], context: new Uint8Array(0) });
    assert.ok(!next.accepted && next.error instanceof MembershipChangeInProgressError, "the first has not taken effect");
    c.stabilize();
    c.tickAll(10);
    assert.deepEqual(c.engine(4).membership().voters, [1, 2, 3, 4]);
    assert.ok(c.engine(1).changeMembership({ voters: [1, 2, 3, 4, 5], learners: [], context: new Uint8Array(0) }).accepted, "after 2α slots the next may follow");
    c.tickAll(10);
    assert.deepEqual([...c.engine(5).membership().voters].sort(), [1, 2, 3, 4, 5]);
    assert.equal(c.leaders().length, 1);
  });

  test("a removed acceptor learns that it was removed: the leader tells it the change's slots are chosen before it stops writing to it", () => {
    // One slot per accept: node 3 learns the chosen prefix a message behind, so the change
    // is chosen before it has heard so.
    const c = new PaxosCluster(3, { ...DEFAULT_PAXOS_CONFIG, windowSlots: 4, entriesPerMessageMax: 1 });
    c.elect(1);
    assert.ok(c.engine(1).changeMembership({ voters: [1, 2], learners: [], context: new Uint8Array(0) }).accepted);
    c.tickAll(30);
    assert.deepEqual(c.engine(1).membership().voters, [1, 2]);
    assert.deepEqual(c.engine(3).membership().voters, [1, 2], "node 3 knows the configuration in force leaves it out (and answers as a non-member)");
    assert.deepEqual(c.engine(3).membership().outgoing, []);
  });

  test("a removed leader hands over to a voter of the new configuration", () => {
    const c = new PaxosCluster(3, { ...DEFAULT_PAXOS_CONFIG, windowSlots: 2 });
    c.elect(1);
    assert.ok(c.engine(1).changeMembership({ voters: [2, 3], learners: [], context: new Uint8Array(0) }).accepted);
    c.tickAll(20);
    const leaders = c.leaders();
    assert.equal(leaders.length, 1);
    assert.notEqual(leaders[0], 1);
    c.engine(leaders[0] as NodeId).propose(data("after"));
    c.tickAll(3);
    assert.deepEqual(c.appliedData(2).slice(-1), ["after"]);
  });

  test("a removed node that missed its removal does not lead the configuration it remembers: acceptors that know it was replaced refuse it as behind", () => {
    // Simulator seed 5507: node 5, restarted knowing only slots from before its removal,
    // ran phase 1 in that old configuration and won it with promises from nodes removed
    // with it (they know the slots it asked about are chosen, and no longer vote). As
    // leader of a configuration that governs only chosen slots, it could do nothing; its
    // clients waited for their timeouts, the removed nodes followed it, and it told one of
    // them to take over at every election timeout.
    const c = new PaxosCluster(3, { ...DEFAULT_PAXOS_CONFIG, windowSlots: 2 });
    c.elect(1);
    c.engine(1).propose(data("a"));
    c.stabilize();
    c.isolate(3);
    assert.ok(c.engine(1).changeMembership({ voters: [1, 2], learners: [], context: new Uint8Array(0) }).accepted);
    c.tickAll(10);
    assert.ok(c.engine(1).changeMembership({ voters: [1], learners: [], context: new Uint8Array(0) }).accepted);
    c.tickAll(10);
    assert.deepEqual(c.engine(2).membership().voters, [1], "node 2 knows that it was removed");
    assert.deepEqual([...c.engine(3).membership().voters].sort(), [1, 2, 3], "node 3 missed both changes");
    c.heal();
    for (let round = 0; round < 10 * DEFAULT_PAXOS_CONFIG.electionTicks; round++) {
      c.tickAll(1);
      assert.notEqual(c.engine(3).status().role, "leader", `node 3 leads a replaced configuration (round ${round})`);
      assert.notEqual(c.engine(2).status().leader, 3, `node 2 follows node 3 (round ${round})`);
    }
    assert.deepEqual(c.leaders(), [1]);
    c.engine(1).propose(data("b"));
    c.tickAll(2);
    assert.deepEqual(c.appliedData(1), ["a", "b"]);
  });

  test("a leader removing itself under a steady stream of proposals: every proposal the remaining voters forwarded is chosen within an election timeout", () => {
    // The leader writes its last slots of the old configuration at once (no-ops through
    // s + α - 1): proposals forwarded to it after that wait for the next configuration's
    // leader, which never talks to a removed node. They must reach that leader, or the
    // clients that made them wait for their timeout (the real-process membership test).
    const electionTicks = DEFAULT_PAXOS_CONFIG.electionTicks;
    const c = new PaxosCluster(3, { ...DEFAULT_PAXOS_CONFIG, windowSlots: 8 });
    c.elect(1);
    const proposedAt = new Map<string, number>();
    let tick = 0;
    const proposeAndTick = (): void => {
      for (const id of [2, 3]) {
        const value = `w${tick}-${id}`;
        if (c.engine(id).propose(data(value)).accepted) proposedAt.set(value, tick);
      }
      c.tickAll(1);
      tick++;
    };
    for (let i = 0; i < 5; i++) proposeAndTick();
    assert.ok(c.engine(1).changeMembership({ voters: [2, 3], learners: [], context: new Uint8Array(0) }).accepted);
    const changedAt = tick;
    let newLeaderAt: number | null = null;
    while (tick < changedAt + 4 * electionTicks) {
      proposeAndTick();
      const leaders = c.leaders();
      if (newLeaderAt === null && leaders.length === 1 && leaders[0] !== 1) newLeaderAt = tick;
    }
    assert.ok(newLeaderAt !== null && newLeaderAt - changedAt <= electionTicks, `a remaining voter leads ${newLeaderAt === null ? "never" : `${newLeaderAt - changedAt} ticks after the change`}`);
    c.tickAll(electionTicks);
    const applied = new Set(c.appliedData(2));
    const lost = [...proposedAt.keys()].filter((value) => !applied.has(value));
    assert.deepEqual(lost, [], `proposals made at ticks ${lost.map((value) => proposedAt.get(value)).join(", ")} (the change at ${changedAt}) were never chosen`);
    assert.deepEqual(c.appliedData(3), c.appliedData(2));
  });
});

describe("PML — leases, snapshots, limits", () => {
  test("PML 5.2 (master leases): an acceptor that hears from a leader promises no one else", () => {
    const c = new PaxosCluster(3);
    c.elect(1);
    const e = c.engine(2);
    e.step(3, { type: "prepare", ballot: ballotOf(9, 3), from: 1, probe: false });
    c.flush();
    assert.equal(e.status().term, c.engine(1).status().term, "the prepare was ignored while the leader is heard");
    e.step(3, { type: "prepare", ballot: ballotOf(9, 3), from: 1, probe: false, transfer: true });
    c.flush();
    assert.equal(e.status().term, ballotOf(9, 3), "a transfer is honoured");
  });

  test("PML 5.2: with leases on, a leader serves a read from its lease without a round of messages", () => {
    const c = new PaxosCluster(3, { ...DEFAULT_PAXOS_CONFIG, leaseReads: true });
    c.elect(1);
    c.engine(1).propose(data("a"));
    c.stabilize();
    c.tickAll(2);
    const before = c.sent.length;
    assert.ok(c.engine(1).readIndex(5, { lease: true }).accepted);
    c.flush();
    assert.deepEqual(c.readStates.get(1)?.map((s) => s.requestId), [5]);
    assert.equal(c.sent.length, before, "no message was needed");
  });

  test("PML 5.5: an acceptor installs the leader's snapshot and keeps what it accepted after it", () => {
    const c = new PaxosCluster(3);
    c.elect(1);
    c.partition([3], [1, 2]);
    for (const v of ["a", "b", "c"]) c.engine(1).propose(data(v));
    c.stabilize();
    c.tickAll(2);
    c.compact(1);
    c.heal();
    // Node 3 accepted slot 5 at the leader's ballot before it catches up (sent by hand).
    const ballot = c.engine(1).status().term;
    c.engine(3).step(1, { type: "accept", ballot, entries: [entry(5, ballot, "later")], commit: 3 });
    c.tickAll(3);
    assert.deepEqual(c.appliedData(3), ["a", "b", "c"]);
    assert.equal(new TextDecoder().decode(c.engine(3).entry(5)?.data), "later", "slot 5 was kept across the install");
  });

  test("a bound on proposals not yet chosen, with a typed error", () => {
    const c = new PaxosCluster(3, { ...DEFAULT_PAXOS_CONFIG, uncommittedBytesMax: 100 });
    c.elect(1);
    c.isolate(1);
    assert.ok(c.engine(1).propose(new Uint8Array(60)).accepted);
    const refused = c.engine(1).propose(new Uint8Array(60));
    assert.ok(!refused.accepted && refused.error instanceof OverloadedError);
  });

  test("a follower forwards proposals and reads to the leader; with none known it says so", () => {
    const c = new PaxosCluster(3);
    c.elect(1);
    assert.ok(c.engine(3).propose(data("via-3")).accepted);
    c.tickAll(3);
    assert.deepEqual(c.appliedData(1), ["via-3"]);
    const lonely = engine(5, [5, 6, 7]);
    const refused = lonely.propose(data("x"));
    assert.ok(!refused.accepted && refused.error instanceof NotLeaderError);
  });

  test("an idle acceptor hears of a new chosen prefix at once, not a heartbeat later: a write a follower forwarded is applied there without a tick", () => {
    // The follower answers its client once it applies the write; waiting for the next
    // heartbeat cost every forwarded write a heartbeat interval (50 ms on a real node).
    const c = new PaxosCluster(3);
    c.elect(1);
    assert.ok(c.engine(3).propose(data("via-3")).accepted);
    c.stabilize();
    assert.deepEqual(c.appliedData(3), ["via-3"]);
    assert.deepEqual(c.appliedData(2), ["via-3"]);
    // One heartbeat per acceptor says so, and only once: idle again, nothing more is sent.
    assert.equal(c.stabilize(), 0);
  });
});

describe("validatePaxosMessage", () => {
  test("well-formed messages pass", () => {
    const b = ballotOf(1, 1);
    for (const m of [
      { type: "prepare", ballot: b, from: 1, probe: false },
      { type: "promise", ballot: b, probe: false, from: 1, through: 2, complete: true, entries: [entry(2, b, "x")], commit: 0 },
      { type: "accept", ballot: b, entries: [entry(1, b, "a"), entry(2, b, "b")], commit: 0 },
      { type: "accepted", ballot: b, index: 2, last: 2 },
      { type: "heartbeat-response", ballot: b, readRound: 0, index: 1 },
    ]) assert.doesNotThrow(() => validatePaxosMessage(m));
  });

  test("malformed ones are refused with a typed error, not trusted", () => {
    const b = ballotOf(1, 1);
    const bad: unknown[] = [
      null,
      { type: "nope", ballot: b },
      { type: "prepare", ballot: -1, from: 1, probe: false },
      { type: "accept", ballot: b, entries: [], commit: 0 },
      { type: "accept", ballot: b, entries: [entry(1, b, "a"), entry(3, b, "c")], commit: 0 },
      { type: "accept", ballot: b, entries: [entry(1, b + 1, "a")], commit: 0 },
      { type: "promise", ballot: b, probe: false, from: 3, through: 4, complete: true, entries: [entry(2, b, "x")], commit: 0 },
      { type: "promise", ballot: b, probe: false, from: 1, through: 4, complete: true, entries: [entry(2, b + 5, "x")], commit: 0 },
      { type: "accept", ballot: b, entries: [{ index: 1, term: b, data: new Uint8Array([9]), kind: "config" }], commit: 0 },
    ];
    for (const m of bad) assert.throws(() => validatePaxosMessage(m), InvalidInputError, JSON.stringify(m));
  });
});


// A peer's message naming a slot far past a node's log must not make the node allocate a
// hole for every slot in between (the peer fuzzer's find: one accept for slot 2^32 took the
// acceptor's memory). Refusing such slots is safe; these tests check it is also harmless.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { NodeId, Ready } from "../engine/contract.js";
import { ballotOf } from "./ballot.js";
import { DEFAULT_PAXOS_CONFIG } from "./config.js";
import { HOLES_PER_MESSAGE_MAX } from "./log.js";
import type { PaxosHardState, PaxosMessage } from "./messages.js";
import { drain, entry } from "./harness.test-util.js";
import { PaxosEngine } from "./paxos.js";

type R = Ready<PaxosMessage, PaxosHardState>;

function engine(id: NodeId): PaxosEngine {
  return new PaxosEngine({ id, peers: [1, 2, 3], durable: { hardState: null, snapshot: null, entries: [] }, appliedIndex: 0, seed: id }, { ...DEFAULT_PAXOS_CONFIG, probe: false });
}

function sent(readies: readonly R[], type: PaxosMessage["type"]): PaxosMessage[] {
  return readies.flatMap((r) => [...r.messages, ...r.messagesAfterPersist]).map((m) => m.message).filter((m) => m.type === type);
}


describe("slots far past the log", () => {
  test("an acceptor leaves a slot more than HOLES_PER_MESSAGE_MAX past its log, and its answer sends the leader back to the first slot it lacks", () => {
    const e = engine(2);
    const ballot = ballotOf(1, 1);
    e.step(1, { type: "accept", ballot, entries: [entry(2 ** 32, ballot, "far")], commit: 0 });
    const readies = drain(e);
    assert.equal(e.status().lastIndex, 0, "no hole was written");
    assert.deepEqual(readies.flatMap((r) => r.entries), []);
    const answer = sent(readies, "accepted")[0];
    assert.ok(answer?.type === "accepted");
    assert.equal(answer.index, 0, "its accepted prefix is still empty");
    assert.equal(answer.last, 2 ** 32, "a hole remains before the slot sent: the leader probes from the prefix");
    // The leader goes back to slot 1, and the acceptor takes it.
    e.step(1, { type: "accept", ballot, entries: [entry(1, ballot, "one")], commit: 0 });
    const next = sent(drain(e), "accepted")[0];
    assert.ok(next?.type === "accepted");
    assert.equal(next.index, 1);
    assert.equal(e.status().lastIndex, 1);
  });

  test("a slot just within reach is written after its holes, as a lagging acceptor needs", () => {
    const e = engine(2);
    const ballot = ballotOf(1, 1);
    const slot = HOLES_PER_MESSAGE_MAX + 1;
    e.step(1, { type: "accept", ballot, entries: [entry(slot, ballot, "edge")], commit: 0 });
    drain(e);
    assert.equal(e.status().lastIndex, slot);
    e.step(1, { type: "accept", ballot, entries: [entry(2 * slot, ballot, "beyond")], commit: 0 });
    drain(e);
    assert.equal(e.status().lastIndex, 2 * slot, "reach is measured from the log's end, so a contiguous catch-up is never refused");
    e.step(1, { type: "accept", ballot, entries: [entry(3 * slot + 1, ballot, "too far")], commit: 0 });
    drain(e);
    assert.equal(e.status().lastIndex, 2 * slot);
  });

  test("a candidate does not count a promise page that would leave more than HOLES_PER_MESSAGE_MAX empty slots, and is elected by honest reports", () => {
    const e = engine(1);
    for (let i = 0; i < 100 && e.status().role !== "candidate"; i++) e.tick();
    const ballot = e.status().term;
    drain(e);
    const far = 2 ** 40;
    e.step(2, { type: "promise", ballot, probe: false, from: 1, through: far, complete: true, entries: [entry(1, 1, "a"), entry(far, 1, "far")], commit: 0 });
    drain(e);
    assert.equal(e.status().role, "candidate", "the far report did not complete phase 1");
    e.step(3, { type: "promise", ballot, probe: false, from: 1, through: 1, complete: true, entries: [entry(1, 1, "a")], commit: 0 });
    const written = drain(e).flatMap((r) => r.entries);
    assert.equal(e.status().role, "leader");
    assert.ok(written.length < 10, `the leader proposes what the honest report holds, not ${written.length} no-ops`);
    assert.equal(new TextDecoder().decode(written[0]?.data), "a");
  });
});

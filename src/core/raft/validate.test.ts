import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidInputError } from "../common/errors.js";
import { DEFAULT_RAFT_CONFIG } from "./config.js";
import { data, TestCluster } from "./harness.test-util.js";
import { PEER_TERM_MAX, validateRaftMessage } from "./validate.js";

test("every message a working cluster sends passes validation, unchanged", () => {
  const c = new TestCluster(3, { ...DEFAULT_RAFT_CONFIG, snapshotChunkBytes: 16, leaseReads: true });
  c.elect(1);
  for (let i = 0; i < 20; i++) c.engine(1).propose(data(`w${i}`));
  c.engine(2).propose(data("forwarded"));
  c.engine(2).readIndex(1, { lease: true });
  c.engine(3).readIndex(2);
  c.stabilize();
  c.isolate(3);
  for (let i = 0; i < 5; i++) c.engine(1).propose(data(`x${i}`));
  c.stabilize();
  c.compact(1);
  c.heal();
  c.tickAll(30);
  c.engine(1).transferLeadership(2);
  c.tickAll(5);
  const types = new Set(c.sent.map((envelope) => envelope.message.type));
  for (const type of ["vote", "vote-response", "append", "append-response", "heartbeat", "heartbeat-response", "propose", "read-index", "read-index-response", "snapshot", "timeout-now"]) {
    assert.ok(types.has(type as never), `the run exercised ${type}`);
  }
  for (const { message } of c.sent) assert.equal(validateRaftMessage(message), message);
});

test("malformed messages are refused with InvalidInputError", () => {
  const bad: unknown[] = [
    null,
    42,
    "append",
    [],
    { type: "nonsense", term: 1 },
    { type: "vote", term: -1, preVote: false, lastIndex: 0, lastTerm: 0 },
    { type: "vote", term: 1.5, preVote: false, lastIndex: 0, lastTerm: 0 },
    { type: "vote", term: 1, preVote: "no", lastIndex: 0, lastTerm: 0 },
    { type: "append", term: 1, prevIndex: 0, prevTerm: 0, commit: 0, entries: "x" },
    { type: "append", term: 1, prevIndex: 0, prevTerm: 0, commit: 0, entries: [{ index: 1, term: 1, data: "text" }] },
    { type: "append", term: 1, prevIndex: 0, prevTerm: 0, commit: 0, entries: [{ index: 1, term: 1, data: new Uint8Array(0) }, { index: 3, term: 1, data: new Uint8Array(0) }] },
    { type: "propose", term: 1, data: [new Uint8Array(1), 7] },
    { type: "snapshot", term: 1, index: 5, snapshotTerm: 1, size: 4, offset: 2, chunk: new Uint8Array(3) },
    { type: "heartbeat", term: 1, commit: 0 },
    { type: "vote", term: 1, preVote: false, lastIndex: 0, lastTerm: 0, transfer: "yes" },
  ];
  for (const value of bad) assert.throws(() => validateRaftMessage(value), InvalidInputError, JSON.stringify(value));
});

// Found by `npm run fuzz` (target peer): each of these messages passed validation and then
// stopped the receiving engine on an assertion — one broken peer's message took a node down.

test("fuzz: a leader drops an append-response acknowledging an index past its log's end", () => {
  const c = new TestCluster(3);
  c.elect(1);
  const leader = c.engine(1);
  const { lastIndex, term } = { lastIndex: leader.status().lastIndex, term: leader.status().term };
  const message = validateRaftMessage({ type: "append-response", term, reject: false, index: lastIndex + 1, hintIndex: 0, hintTerm: 0 });
  leader.step(2, message);
  while (leader.hasReady()) leader.advance(leader.ready());
  assert.equal(leader.status().commitIndex <= lastIndex, true, "nothing past the log is committed");
  assert.equal(leader.status().role, "leader");
});

test("fuzz: an append whose entries do not begin right after prevIndex is refused", () => {
  const message = { type: "append", term: 1, prevIndex: 1, prevTerm: 1, commit: 0, entries: [{ index: 1, term: 1, data: new Uint8Array(0) }] };
  assert.throws(() => validateRaftMessage(message), InvalidInputError);
  assert.throws(() => validateRaftMessage({ ...message, prevIndex: 0, entries: [{ index: 3, term: 1, data: new Uint8Array(0) }] }), InvalidInputError);
  validateRaftMessage({ ...message, prevIndex: 0 });
});

test("fuzz: a term that leaves no room for the next election's is refused", () => {
  for (const field of ["term", "lastTerm"]) {
    const message = { type: "vote", term: 1, preVote: false, lastIndex: 0, lastTerm: 0, [field]: Number.MAX_SAFE_INTEGER };
    assert.throws(() => validateRaftMessage(message), InvalidInputError, field);
  }
  assert.throws(() => validateRaftMessage({ type: "append", term: 1, prevIndex: 0, prevTerm: 0, commit: 0, entries: [{ index: 1, term: PEER_TERM_MAX + 1, data: new Uint8Array(0) }] }), InvalidInputError);
  validateRaftMessage({ type: "timeout-now", term: PEER_TERM_MAX });
});

test("fuzz: a message type msgpack decodes as a BigInt is refused with InvalidInputError, not a TypeError", () => {
  assert.throws(() => validateRaftMessage({ type: 2n ** 64n - 1n, term: 1 }), InvalidInputError);
  assert.throws(() => validateRaftMessage({ type: "append", term: 1, prevIndex: 0, prevTerm: 0, commit: 0, entries: [{ index: 1, term: 1, data: new Uint8Array(0), kind: 1n }] }), InvalidInputError);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidInputError } from "../common/errors.js";
import { paxosFactory } from "./index.js";
import { PEER_BALLOT_MAX, validatePaxosMessage } from "./validate.js";

// Found by `npm run fuzz` (target peer): these passed validation and then stopped the
// receiving engine, or made the validator itself throw a TypeError.

test("fuzz: a ballot past PEER_BALLOT_MAX is refused, so this node's next ballot stays in range", () => {
  const nack = { type: "nack", ballot: 0, promised: Number.MAX_SAFE_INTEGER, probe: false, behind: false };
  assert.throws(() => validatePaxosMessage(nack), InvalidInputError);
  assert.throws(() => validatePaxosMessage({ type: "heartbeat", ballot: PEER_BALLOT_MAX + 1, commit: 0, readRound: 0 }), InvalidInputError);
  // The largest ballot accepted is promised, and the node goes on ticking.
  const engine = paxosFactory().create({ id: 1, peers: [1, 2, 3], durable: { hardState: null, snapshot: null, entries: [] }, appliedIndex: 0, seed: 1 });
  const highest = (PEER_BALLOT_MAX / 2 ** 20 - 1) * 2 ** 20 + 2; // node 2's ballot in the highest round accepted whole
  engine.step(2, validatePaxosMessage({ type: "prepare", ballot: highest, from: 1, probe: false }));
  assert.equal(engine.status().term, highest, "promised");
  for (let i = 0; i < 200; i++) {
    engine.tick();
    while (engine.hasReady()) engine.advance(engine.ready());
  }
});

test("fuzz: a message type msgpack decodes as a BigInt is refused with InvalidInputError, not a TypeError", () => {
  assert.throws(() => validatePaxosMessage({ type: 2n ** 64n - 1n, ballot: 1 }), InvalidInputError);
  assert.throws(() => validatePaxosMessage({ type: "accept", ballot: 1, commit: 0, entries: [{ index: 1, term: 1, data: new Uint8Array(0), kind: 1n }] }), InvalidInputError);
});

// Found while reading what the peer fuzzer reached (its snapshot transfers now reach it).
test("fuzz: a chunk of the same snapshot declaring another size restarts the transfer, not the node", () => {
  const engine = paxosFactory().create({ id: 1, peers: [1, 2, 3], durable: { hardState: null, snapshot: null, entries: [] }, appliedIndex: 0, seed: 1 });
  const ballot = 2 ** 20 + 2; // round 1 of node 2
  const first = { type: "snapshot", ballot, index: 5, snapshotTerm: 1, size: 4, offset: 0, chunk: new Uint8Array(2) };
  engine.step(2, validatePaxosMessage(first));
  while (engine.hasReady()) engine.advance(engine.ready());
  engine.step(2, validatePaxosMessage({ ...first, size: 100, offset: 2, chunk: new Uint8Array(20) }));
  const ready = engine.ready();
  const answer = ready.messages.map((outbound) => outbound.message).find((message) => message.type === "snapshot-response");
  assert.deepEqual(answer, { type: "snapshot-response", ballot, index: 5, received: 0 }, "start over");
});

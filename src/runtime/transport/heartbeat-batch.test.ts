import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { afterEach, describe, test } from "node:test";
import fc from "fast-check";
import { InvalidInputError } from "../../core/common/errors.js";
import { GROUP_ID_MAX } from "../../core/multi/group.js";
import { FrameDecoder, frame } from "../../core/wire/frame.js";
import { HEARTBEAT_BATCH_PREFIX, isHeartbeatBatch, readGroupHeader } from "../../core/wire/group.js";
import { decodeMessage, encodeMessage } from "./codec.js";
import { HEARTBEAT_BATCH_OVERHEAD_BYTES, HEARTBEAT_ENTRY_BYTES_MAX, appendHeartbeat, decodeHeartbeatBatch, encodeHeartbeatBatch } from "./heartbeat-batch.js";
import { closeEverything, everything, freePort, helloFrame, HOST, rawClient, startCluster, startNode, stats, waitFor, type Node } from "./transport.test-util.js";

afterEach(closeEverything);

/** Every test here is bounded, so a regression that hangs fails instead of stalling the suite. */
const bounded = { timeout: 8000 };

const count = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const heartbeatArbitrary = fc.record({
  group: fc.oneof(fc.integer({ min: 0, max: 2000 }), fc.constant(GROUP_ID_MAX)),
  message: fc.oneof(
    fc.record({ type: fc.constant("heartbeat" as const), term: count, commit: count, readRound: count }),
    fc.record({ type: fc.constant("heartbeat" as const), term: count, commit: count, readRound: count, quiesce: fc.constant(true as const) }),
    fc.record({ type: fc.constant("heartbeat-response" as const), term: count, readRound: count }),
  ).map((message) => ({ ...message })),
}).map((heartbeat) => ({ ...heartbeat })); // fast-check may build objects without a prototype; engines build plain ones

/** A batch's whole payload, as the sender writes it. */
function batchPayload(entries: readonly unknown[]): Uint8Array {
  return Uint8Array.from([...HEARTBEAT_BATCH_PREFIX, ...encodeMessage(entries)]);
}

describe("heartbeat batch encoding", () => {
  test("property: any heartbeats and responses come out of a batch equal to what went in, in order, with their groups, within the size bound", () => {
    fc.assert(
      fc.property(fc.array(heartbeatArbitrary, { minLength: 1, maxLength: 60 }), (heartbeats) => {
        const entries: number[] = [];
        for (const { group, message } of heartbeats) assert.equal(appendHeartbeat(entries, group, message), true);
        const payload = batchPayload(entries);
        assert.deepEqual([...encodeHeartbeatBatch(entries)], [...payload.subarray(HEARTBEAT_BATCH_PREFIX.length)]);
        assert.ok(payload.length <= HEARTBEAT_BATCH_OVERHEAD_BYTES + heartbeats.length * HEARTBEAT_ENTRY_BYTES_MAX, `${payload.length} bytes for ${heartbeats.length}`);
        assert.equal(isHeartbeatBatch(payload), true);
        assert.deepEqual(decodeHeartbeatBatch(payload), heartbeats);
      }),
    );
  });

  test("only exact heartbeat shapes are batched; anything else is left alone and the batch unchanged", () => {
    const refused: unknown[] = [
      { type: "heartbeat", term: 1, commit: 2, readRound: 0, extra: 1 },
      { type: "heartbeat", term: 1, commit: 2, readRound: 0, quiesce: false },
      { type: "heartbeat", term: 1, commit: 2 },
      { type: "heartbeat", ballot: { round: 1, node: 2 }, commit: 2, readRound: 0 },
      { type: "heartbeat", term: -1, commit: 2, readRound: 0 },
      { type: "heartbeat", term: 1.5, commit: 2, readRound: 0 },
      { type: "heartbeat", term: "1", commit: 2, readRound: 0 },
      { type: "heartbeat", term: 2 ** 53, commit: 2, readRound: 0 },
      { type: "heartbeat-response", term: 1, readRound: 0, granted: true },
      { type: "append", term: 1, prevIndex: 0, prevTerm: 0, entries: [], commit: 0 },
      Object.assign([], { type: "heartbeat-response", term: 1, readRound: 0 }),
      "heartbeat",
      null,
    ];
    const entries = [0, 1, 2, 3, 4];
    for (const message of refused) {
      assert.equal(appendHeartbeat(entries, 1, message), false, JSON.stringify(message));
      assert.deepEqual(entries, [0, 1, 2, 3, 4]);
    }
  });

  test("a broken batch is refused whole with an InvalidInputError", () => {
    const broken: [string, Uint8Array][] = [
      ["not a list", batchPayload({ 0: 1 } as unknown as unknown[])],
      ["empty", batchPayload([])],
      ["an unknown kind", batchPayload([0, 1, 1, 1, 1, 3, 1, 1, 1, 1])],
      ["cut short", batchPayload([0, 1, 1, 1, 1, 2, 1, 1])],
      ["a group id too large", batchPayload([2, GROUP_ID_MAX + 1, 1, 1])],
      ["a negative term", batchPayload([2, 1, -1, 0])],
      ["a fraction", batchPayload([0, 1, 1, 0.5, 0])],
      ["a string", batchPayload([2, 1, "1", 0])],
      ["a nested list", batchPayload([[2, 1, 1, 0]])],
      ["not MessagePack", Uint8Array.from([...HEARTBEAT_BATCH_PREFIX, 0xc1])],
      ["nothing after the prefix", Uint8Array.from(HEARTBEAT_BATCH_PREFIX)],
    ];
    for (const [what, payload] of broken) assert.throws(() => decodeHeartbeatBatch(payload), InvalidInputError, what);
  });

  test("a batch's prefix is not a group header: a reader of the previous version refuses it instead of misreading it", () => {
    assert.throws(() => readGroupHeader(batchPayload([2, 1, 1, 0])), /not in its shortest form/);
  });
});

const heartbeat = (term: number, commit: number) => ({ type: "heartbeat", term, commit, readRound: 0 });

/**
 * A node of the previous version, as the acceptor: it answers a hello `{ ok: true }` and
 * nothing more, then reads every frame as that version did (group header, one message).
 */
async function previousVersionPeer(): Promise<{ port: number; frames: { group: number; message: unknown }[]; errors: string[] }> {
  const frames: { group: number; message: unknown }[] = [];
  const errors: string[] = [];
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on("error", () => {});
    const decoder = new FrameDecoder({ frameBytesMax: 1 << 20 });
    let greeted = false;
    socket.on("data", (chunk: Buffer) => {
      for (const payload of decoder.push(chunk)) {
        if (!greeted) {
          greeted = true;
          socket.write(frame(encodeMessage({ ok: true })));
          continue;
        }
        try {
          const { group, message } = readGroupHeader(payload);
          frames.push({ group, message: decodeMessage(message) });
        } catch (error) {
          errors.push(String(error));
          socket.destroy();
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  everything.push({ close: () => void (sockets.forEach((s) => s.destroy()), server.close()) });
  return { port: address.port, frames, errors };
}

describe("heartbeat batches between transports", () => {
  test("heartbeats of many groups sent in one turn travel as one frame, and each group gets its own, after the turn's other frames", bounded, async () => {
    const arrived: { group: number; message: unknown }[] = [];
    const [a, b] = (await startCluster([1, 2], { onMessage: (_from, message, group) => arrived.push({ group, message }) })) as [Node, Node];
    const before = { sent: stats(a, 2), received: stats(b, 1) };
    assert.equal(a.transport.send(2, heartbeat(3, 7), 1), true);
    assert.equal(a.transport.send(2, "an append of group 1", 1), true);
    for (let group = 2; group <= 50; group++) assert.equal(a.transport.send(2, group % 2 === 0 ? heartbeat(3, group) : { type: "heartbeat-response", term: 3, readRound: group }, group), true);
    await waitFor(() => arrived.length === 51, "every message arrives");
    const sent = stats(a, 2);
    const received = stats(b, 1);
    assert.equal(sent.framesSent - before.sent.framesSent, 2, "the append, and one frame for 50 heartbeats");
    assert.equal(sent.heartbeatBatchesSent - before.sent.heartbeatBatchesSent, 1);
    assert.equal(sent.heartbeatsBatchedSent - before.sent.heartbeatsBatchedSent, 50);
    assert.equal(received.framesReceived - before.received.framesReceived, 2);
    assert.equal(received.heartbeatsBatchedReceived - before.received.heartbeatsBatchedReceived, 50);
    const expected = [
      { group: 1, message: "an append of group 1" },
      { group: 1, message: heartbeat(3, 7) },
      ...Array.from({ length: 49 }, (_, i) => i + 2).map((group) => ({ group, message: group % 2 === 0 ? heartbeat(3, group) : { type: "heartbeat-response", term: 3, readRound: group } })),
    ];
    assert.deepEqual(arrived, expected);
  });

  test("a batch is sealed at the most heartbeats a frame of frameBytesMax holds", bounded, async () => {
    const frameBytesMax = 1024;
    const [a, b] = (await startCluster([1, 2], { limits: { frameBytesMax } })) as [Node, Node];
    const perBatch = Math.floor((frameBytesMax - HEARTBEAT_BATCH_OVERHEAD_BYTES) / HEARTBEAT_ENTRY_BYTES_MAX);
    const big = 2 ** 40; // numbers above 32 bits take the most bytes
    for (let group = 1; group <= 3 * perBatch + 1; group++) assert.equal(a.transport.send(2, heartbeat(big, big), group), true);
    await waitFor(() => b.received.length === 3 * perBatch + 1, "every heartbeat arrives");
    assert.equal(stats(a, 2).heartbeatBatchesSent, 3, "three full batches, and a lone heartbeat in a frame of its own");
    assert.equal(stats(a, 2).framesSent, 4);
    assert.equal(b.log.find("warn", "closing a peer connection").length, 0, "no frame was over the limit");
  });

  test("a peer of the previous version (its reply says nothing of batches) gets every heartbeat in a frame of its own", bounded, async () => {
    const previous = await previousVersionPeer();
    const a = await startNode(1, { peers: [{ id: 2, host: HOST, port: previous.port }] });
    await waitFor(() => stats(a, 2).connected, "a connects to the old peer");
    for (let group = 0; group < 20; group++) assert.equal(a.transport.send(2, heartbeat(2, group), group), true);
    await waitFor(() => previous.frames.length === 20 || previous.errors.length > 0, "the heartbeats arrive");
    assert.deepEqual(previous.errors, []);
    assert.deepEqual(previous.frames, Array.from({ length: 20 }, (_, group) => ({ group, message: heartbeat(2, group) })));
    assert.equal(stats(a, 2).heartbeatBatchesSent, 0);
  });

  test("a broken batch closes the connection with a logged reason, and nothing of it is delivered", bounded, async () => {
    const silentPeer = { id: 3, host: HOST, port: await freePort() };
    const arrived: { group: number; message: unknown }[] = [];
    const a = await startNode(1, { peers: [silentPeer], onMessage: (_from, message, group) => arrived.push({ group, message }) });
    const client = await rawClient(a.transport.port);
    client.socket.write(helloFrame(3, 1));
    await waitFor(() => client.replies.length === 1, "the hello is answered");
    assert.deepEqual(client.replies, [{ ok: true, heartbeatBatches: true }], "the reply says batches are read");
    client.socket.write(frame(batchPayload([0, 4, 2, 9, 0, 2, 5, 2, 1])));
    await waitFor(() => arrived.length === 2, "a good batch is delivered");
    assert.deepEqual(arrived, [
      { group: 4, message: heartbeat(2, 9) },
      { group: 5, message: { type: "heartbeat-response", term: 2, readRound: 1 } },
    ]);
    // A good entry, then one of kind 9: the whole frame is refused.
    client.socket.write(frame(batchPayload([0, 6, 2, 9, 0, 9, 7, 2, 9, 0])));
    await client.closed;
    const reasons = a.log.find("warn", "closing a peer connection").map((line) => String(line.fields["reason"]));
    assert.ok(reasons.some((r) => /heartbeat batch's entry at position 5 is malformed/.test(r)), reasons.join("; "));
    assert.equal(arrived.length, 2, "no heartbeat of the broken batch was delivered");
    assert.equal(stats(a, 3).heartbeatBatchesReceived, 1);
  });
});

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, test } from "node:test";
import fc from "fast-check";
import { FrameDecoder, frame } from "../../core/wire/frame.js";
import { encodeMessage } from "./codec.js";
import { backoffDelayMs } from "./outbound.js";
import { PeerTransport } from "./peer-transport.js";
import { CLUSTER, FAST, HOST, RecordingLog, closeEverything, everything, freePort, helloFrame, rawClient, sleep, startCluster, startNode, stats, waitFor, type Node } from "./transport.test-util.js";

afterEach(closeEverything);

/** A server that completes the handshake for any hello and then never reads again. */
async function deafServer(): Promise<{ server: Server; port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on("error", () => {});
    const decoder = new FrameDecoder({ frameBytesMax: 4096 });
    socket.on("data", (chunk: Buffer) => {
      if (decoder.push(chunk).length === 0) return;
      socket.write(frame(encodeMessage({ ok: true })));
      socket.pause();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  everything.push({ close: () => void (sockets.forEach((s) => s.destroy()), server.close()) });
  return { server, port: address.port, sockets };
}

/** Every test here is bounded, so a regression that hangs fails instead of stalling the suite. */
const bounded = { timeout: 8000 };

describe("backoff", () => {
  test("property: every delay lies in [backoffMsMin, backoffMsMax] and its ceiling doubles per failure", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 10_000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (failures, min, extra, random) => {
        const limits = { backoffMsMin: min, backoffMsMax: min + extra };
        const delay = backoffDelayMs(failures, limits, () => random);
        assert.ok(delay >= limits.backoffMsMin && delay <= limits.backoffMsMax, `delay ${delay}`);
        const ceiling = Math.min(limits.backoffMsMax, min * 2 ** Math.min(failures, 30));
        assert.ok(delay <= ceiling, `delay ${delay} above ceiling ${ceiling}`);
      }),
    );
    assert.equal(backoffDelayMs(0, { backoffMsMin: 50, backoffMsMax: 2000 }, () => 0.999), 50);
    assert.equal(backoffDelayMs(3, { backoffMsMin: 50, backoffMsMax: 2000 }, () => 0.5), 225);
    assert.equal(backoffDelayMs(40, { backoffMsMin: 50, backoffMsMax: 2000 }, () => 0.999_999), 2000);
  });
});

describe("peer transport", () => {
  test("three nodes exchange messages both ways; byte payloads arrive intact and in order per sender", bounded, async () => {
    const nodes = await startCluster([1, 2, 3]);
    const [first] = nodes as [Node];
    assert.equal(first.transport.send(1, "to myself"), false, "a node is not its own peer");
    assert.equal(first.transport.send(42, "to a stranger"), false, "an unknown id is dropped");
    const perPair = 300;
    for (let seq = 0; seq < perPair; seq++) {
      for (const node of nodes) {
        for (const other of nodes) {
          if (other === node) continue;
          const data = new Uint8Array(seq * 7).fill((node.id * 16 + seq) & 0xff);
          assert.equal(node.transport.send(other.id, { seq, from: node.id, entries: [{ index: seq, term: 1, data }] }), true);
        }
      }
      if (seq % 50 === 0) await sleep(1);
    }
    await waitFor(() => nodes.every((node) => node.received.length === 2 * perPair), "every message arrives");
    for (const node of nodes) {
      for (const other of nodes) {
        if (other === node) continue;
        const fromOther = node.received.filter((r) => r.from === other.id).map((r) => r.message as { seq: number; from: number; entries: { data: Uint8Array }[] });
        assert.deepEqual(
          fromOther.map((m) => m.seq),
          Array.from({ length: perPair }, (_, i) => i),
        );
        for (const m of fromOther) {
          const data = m.entries[0]?.data;
          assert.ok(data instanceof Uint8Array && data.length === m.seq * 7 && data.every((b) => b === ((other.id * 16 + m.seq) & 0xff)));
          assert.equal(m.from, other.id);
        }
        assert.equal(stats(other, node.id).framesSent, perPair);
        assert.equal(stats(node, other.id).framesReceived, perPair);
      }
    }
  });

  test("a peer that starts later is connected to once it is up, with bounded backoff and one warning", bounded, async () => {
    const port = await freePort();
    const a = await startNode(1, { peers: [{ id: 2, host: HOST, port }] });
    // The first dial is under way: the message may wait for its handshake, which fails.
    a.transport.send(2, "too early");
    await waitFor(() => stats(a, 2).dialAttempts >= 5, "a has retried a few times");
    assert.equal(a.log.find("warn", "cannot reach a peer").length, 1, "repeated failures are rate-limited to one warning");
    const startedAt = Date.now();
    const b = await startNode(2, { port, peers: [a.address] });
    await waitFor(() => stats(a, 2).connected, "a connects to b");
    // The longest backoff is 100 ms; the connect itself is fast on loopback.
    assert.ok(Date.now() - startedAt < 1000, "reconnected within the backoff bound");
    assert.equal(stats(a, 2).framesDropped, 1, "the early message was dropped with its failed connection");
    assert.equal(a.transport.send(2, "hello b"), true);
    await waitFor(() => b.received.length === 1, "b receives");
    assert.deepEqual(b.received, [{ from: 1, message: "hello b" }], "never the message of a connection that failed");
  });

  test("a peer that connects here is dialled back at once, not after the link's backoff (a restarted node hears from its peers sooner)", bounded, async () => {
    const port = await freePort();
    // Backoff of 5 to 10 s: without the early redial, a would not reach b within this test's bound.
    const a = await startNode(1, { peers: [{ id: 2, host: HOST, port }], limits: { backoffMsMin: 5000, backoffMsMax: 10_000 } });
    await waitFor(() => stats(a, 2).dialAttempts >= 1 && !stats(a, 2).connected && a.log.find("warn", "cannot reach a peer").length === 1, "a's first dial failed; it waits out its backoff");
    const attempts = stats(a, 2).dialAttempts;
    const b = await startNode(2, { port, peers: [a.address] });
    await waitFor(() => stats(b, 1).connected, "b connects to a");
    await waitFor(() => stats(a, 2).connected, "a dials b back", 2000);
    assert.equal(stats(a, 2).dialAttempts, attempts + 1, "one dial, as b connected");
    assert.equal(a.transport.send(2, "to b"), true);
    await waitFor(() => b.received.length === 1, "b receives");
  });

  test("messages sent while the handshake is under way go out once it succeeds", bounded, async () => {
    const [a, b] = (await startCluster([1, 2])) as [Node, Node];
    await b.transport.close();
    await waitFor(() => !stats(a, 2).connected, "a notices b is gone");
    const b2 = await startNode(2, { port: b.address.port, peers: [a.address] });
    let queued = 0;
    // Keep sending as a node does while the new connection handshakes: once it is open,
    // everything queued meanwhile is delivered, in order.
    await waitFor(() => {
      if (a.transport.send(2, `m${queued}`)) queued++;
      return stats(a, 2).connected;
    }, "a reconnects");
    assert.ok(queued > 0);
    await waitFor(() => b2.received.length >= queued, "b receives what waited");
    assert.deepEqual(b2.received.slice(0, queued).map((r) => r.message), Array.from({ length: queued }, (_, i) => `m${i}`));
  });

  test("a peer that stops and restarts on the same port is reconnected", bounded, async () => {
    const [a, b] = (await startCluster([1, 2])) as [Node, Node];
    await b.transport.close();
    await waitFor(() => !stats(a, 2).connected, "a notices b is gone");
    assert.equal(a.log.find("warn", "lost the connection").length, 1);
    assert.equal(a.transport.send(2, "while down"), false);
    const b2 = await startNode(2, { port: b.address.port, peers: [a.address] });
    await waitFor(() => stats(a, 2).connected && stats(b2, 1).connected, "both directions reconnect");
    assert.equal(stats(a, 2).reconnects, 1);
    assert.equal(a.transport.send(2, "to the new b"), true);
    assert.equal(b2.transport.send(1, "from the new b"), true);
    await waitFor(() => b2.received.length === 1 && a.received.length === 1, "messages flow again");
    assert.deepEqual(b2.received, [{ from: 1, message: "to the new b" }]);
    assert.deepEqual(a.received, [{ from: 2, message: "from the new b" }]);
  });

  test("a wrong cluster id is refused and logged on both sides, and nothing is delivered", bounded, async () => {
    const a = await startNode(1);
    const stranger = await startNode(2, { clusterId: "another-cluster", peers: [a.address] });
    a.transport.setPeers([stranger.address]);
    await waitFor(() => a.log.find("warn", "refused a peer's handshake").length > 0 && stranger.log.find("warn", "peer refused the handshake").length > 0, "both sides log");
    const refusal = a.log.find("warn", "refused a peer's handshake")[0];
    assert.match(String(refusal?.fields["reason"]), /cluster id "another-cluster" does not match/);
    assert.equal(refusal?.fields["claimedClusterId"], "another-cluster");
    assert.match(String(refusal?.fields["remote"]), /^127\.0\.0\.1:\d+$/);
    assert.equal(stranger.transport.send(1, "let me in"), false);
    assert.equal(stats(stranger, 1).connected, false);
    assert.deepEqual(a.received, []);
  });

  test("an unknown node id and a hello addressed to another node are refused with their reasons", bounded, async () => {
    const a = await startNode(1, { peers: [{ id: 2, host: HOST, port: await freePort() }] });
    const unknown = await startNode(9, { peers: [{ id: 1, host: HOST, port: a.transport.port }] });
    // This node believes node 5 listens on a's port.
    const confused = await startNode(2, { peers: [{ id: 5, host: HOST, port: a.transport.port }] });
    await waitFor(() => unknown.log.find("warn", "peer refused").length > 0 && confused.log.find("warn", "peer refused").length > 0, "both dialers are refused");
    const reasons = a.log.find("warn", "refused a peer's handshake").map((line) => String(line.fields["reason"]));
    assert.ok(reasons.some((r) => r === "node 9 is not a peer of node 1"), reasons.join("; "));
    assert.ok(reasons.some((r) => r === "the hello is addressed to node 5, but this is node 1"), reasons.join("; "));
    assert.match(String(unknown.log.find("warn", "peer refused")[0]?.message), /node 9 is not a peer of node 1/);
    assert.equal(unknown.transport.send(1, "x"), false);
    assert.equal(confused.transport.send(5, "x"), false);
    assert.deepEqual(a.received, []);
  });

  test("a frame sent right after a refused hello is not delivered", bounded, async () => {
    const a = await startNode(1, { peers: [{ id: 2, host: HOST, port: await freePort() }] });
    const client = await rawClient(a.transport.port);
    client.socket.write(Buffer.concat([helloFrame(2, 1, "wrong"), frame(encodeMessage("smuggled"))]));
    await client.closed;
    await sleep(20);
    assert.deepEqual(a.received, []);
    assert.equal(a.log.find("warn", "closing a peer connection").length + a.log.find("warn", "refused").length, 1);
  });

  test("garbage, an oversize header and a silent stranger are closed; real peers keep working", bounded, async () => {
    const nodes = await startCluster([1, 2], { limits: { frameBytesMax: 1024, queueBytesMax: 1 << 20 } });
    const [a, b] = nodes as [Node, Node];
    const garbage = await rawClient(a.transport.port);
    garbage.socket.write(randomBytes(2000));
    const oversize = await rawClient(a.transport.port);
    oversize.socket.write(Uint8Array.from([0x7f, 0xff, 0xff, 0xff]));
    const silent = await rawClient(a.transport.port);
    await Promise.all([garbage.closed, oversize.closed, silent.closed]);
    assert.ok(a.log.find("warn", "closing a peer connection").some((line) => /over the limit/.test(String(line.fields["reason"]))));
    assert.ok(a.log.find("warn", "closing a peer connection").some((line) => /no hello before the handshake deadline/.test(String(line.fields["reason"]))));
    assert.equal(b.transport.send(1, "still here"), true);
    await waitFor(() => a.received.length === 1, "a real peer's message arrives");
    assert.deepEqual(a.received, [{ from: 2, message: "still here" }]);
  });

  test("after a good hello, an oversize frame or an undecodable message closes the connection", bounded, async () => {
    const silentPeer = { id: 3, host: HOST, port: await freePort() };
    const a = await startNode(1, { peers: [silentPeer], limits: { frameBytesMax: 1024, queueBytesMax: 1 << 20 } });
    let count = 0;
    for (const bad of [Uint8Array.from([0, 0, 4, 1]), frame(Uint8Array.from([0x92, 0x01]))]) {
      const client = await rawClient(a.transport.port);
      client.socket.write(helloFrame(3, 1));
      await waitFor(() => client.replies.length === 1, "the hello is answered");
      assert.deepEqual(client.replies, [{ ok: true, heartbeatBatches: true }]);
      // A bad frame loses what shares its chunk, so the good one goes first, alone.
      client.socket.write(frame(encodeMessage("fine")));
      await waitFor(() => a.received.length === count + 1, "the good frame arrives");
      count++;
      client.socket.write(bad);
      await client.closed;
    }
    assert.deepEqual(a.received, [
      { from: 3, message: "fine" },
      { from: 3, message: "fine" },
    ]);
    const reasons = a.log.find("warn", "closing a peer connection").map((line) => String(line.fields["reason"]));
    assert.ok(reasons.some((r) => /1025 bytes, over the limit of 1024/.test(r)), reasons.join("; "));
    assert.ok(reasons.some((r) => /does not decode/.test(r)), reasons.join("; "));
  });

  test("a second connection from the same peer replaces the first", bounded, async () => {
    const a = await startNode(1, { peers: [{ id: 3, host: HOST, port: await freePort() }] });
    const first = await rawClient(a.transport.port);
    first.socket.write(helloFrame(3, 1));
    await waitFor(() => first.replies.length === 1 && stats(a, 3).inboundConnected, "the first connection is accepted");
    const second = await rawClient(a.transport.port);
    second.socket.write(helloFrame(3, 1));
    await first.closed;
    await waitFor(() => second.replies.length === 1, "the second connection is accepted");
    second.socket.write(frame(encodeMessage("from the restarted peer")));
    await waitFor(() => a.received.length === 1, "the new connection delivers");
    assert.deepEqual(a.received, [{ from: 3, message: "from the restarted peer" }]);
    assert.equal(stats(a, 3).inboundConnected, true);
    assert.equal(a.log.find("info", "replacing its previous connection").length, 1);
  });

  test("a dialer whose peer never answers the hello times out and retries", bounded, async () => {
    const mute = createServer((socket) => socket.on("error", () => {}));
    await new Promise<void>((resolve) => mute.listen(0, HOST, resolve));
    const address = mute.address();
    assert.ok(address !== null && typeof address === "object");
    const sockets: Socket[] = [];
    mute.on("connection", (socket) => sockets.push(socket));
    everything.push({ close: () => void (sockets.forEach((s) => s.destroy()), mute.close()) });
    const a = await startNode(1, { peers: [{ id: 2, host: HOST, port: address.port }] });
    await waitFor(() => stats(a, 2).dialAttempts >= 2, "a redials after the deadline");
    assert.equal(stats(a, 2).connected, false);
    assert.match(String(a.log.find("warn", "closing the connection to a peer")[0]?.message), /the handshake timed out/);
  });

  test("sends in one turn are coalesced into few socket writes", bounded, async () => {
    const [a, b] = (await startCluster([1, 2])) as [Node, Node];
    const before = stats(a, 2);
    for (let i = 0; i < 1000; i++) assert.equal(a.transport.send(2, { type: "heartbeat", term: 3, seq: i }), true);
    assert.equal(stats(a, 2).queueFrames, 1000, "nothing is written until the turn ends");
    await waitFor(() => b.received.length === 1000, "all 1000 arrive");
    const sent = stats(a, 2);
    assert.equal(sent.framesSent - before.framesSent, 1000);
    assert.ok(sent.socketWrites - before.socketWrites <= 2, `${sent.socketWrites - before.socketWrites} writes for 1000 frames`);
    assert.deepEqual(
      b.received.map((r) => (r.message as { seq: number }).seq),
      Array.from({ length: 1000 }, (_, i) => i),
    );
  });

  test("a peer that stops reading makes sends fail once the bounded queue is full", bounded, async () => {
    const deaf = await deafServer();
    const queueBytesMax = 1 << 20;
    const a = await startNode(1, { peers: [{ id: 2, host: HOST, port: deaf.port }], limits: { queueBytesMax, frameBytesMax: 256 * 1024 } });
    await waitFor(() => stats(a, 2).connected, "the deaf peer handshakes");
    const chunk = { data: new Uint8Array(64 * 1024) };
    let refused = false;
    // The kernel buffers some megabytes on loopback before backpressure; 160 MiB is far
    // more. Four sends a turn stay well under the queue bound while the socket drains.
    for (let round = 0; round < 2500 && !refused; round++) {
      refused = !a.transport.send(2, chunk);
      if (!refused && round % 4 === 3) await sleep(1);
    }
    assert.ok(refused, "a send was refused");
    const full = stats(a, 2);
    assert.ok(full.framesDropped >= 1);
    assert.ok(full.queueBytes <= queueBytesMax && full.queueBytes > queueBytesMax - 2 * (64 * 1024 + 100), `queue holds ${full.queueBytes} bytes`);
    assert.equal(full.connected, true, "backpressure alone does not drop the connection");
  });

  test("every frame names its group: several groups share one connection, each message arrives with its group", bounded, async () => {
    const arrived: { message: unknown; group: number }[] = [];
    const [a] = (await startCluster([1, 2], { onMessage: (_from, message, group) => arrived.push({ message, group }) })) as [Node, Node];
    const sent = [
      { message: "zero", group: 0 },
      { message: { bytes: Uint8Array.from([1, 2]) }, group: 7 },
      { message: "big group", group: 0xffff_ffff },
      { message: "default", group: undefined },
    ];
    for (const { message, group } of sent) assert.equal(a.transport.send(2, message, group), true);
    await waitFor(() => arrived.length === sent.length, "every message arrives");
    assert.deepEqual(arrived.map((m) => m.group), [0, 7, 0xffff_ffff, 0]);
    assert.deepEqual(arrived.map((m) => m.message), ["zero", { bytes: Buffer.from([1, 2]) }, "big group", "default"]);
    assert.equal(stats(a, 2).socketWrites <= 2, true, "one connection, coalesced writes, whatever the groups");
  });

  test("a frame from a node that predates groups (no group header) is group 0's; a broken group header closes the connection", bounded, async () => {
    const silentPeer = { id: 3, host: HOST, port: await freePort() };
    const groups: number[] = [];
    const a = await startNode(1, { peers: [silentPeer], onMessage: (_from, _message, group) => groups.push(group) });
    const client = await rawClient(a.transport.port);
    client.socket.write(helloFrame(3, 1));
    await waitFor(() => client.replies.length === 1, "the hello is answered");
    client.socket.write(frame(encodeMessage("old")));
    client.socket.write(frame(Uint8Array.from([0xc1, 0x05, ...encodeMessage("tagged")])));
    await waitFor(() => a.received.length === 2, "both frames arrive");
    assert.deepEqual(a.received.map((m) => m.message), ["old", "tagged"]);
    assert.deepEqual(groups, [0, 5]);
    client.socket.write(frame(Uint8Array.from([0xc1, 0x80])));
    await client.closed;
    const reasons = a.log.find("warn", "closing a peer connection").map((line) => String(line.fields["reason"]));
    assert.ok(reasons.some((r) => /group id is cut short/.test(r)), reasons.join("; "));
    assert.equal(a.received.length, 2);
  });

  test("an exception in onMessage is logged and the next message is still delivered", bounded, async () => {
    const log = new RecordingLog();
    const received: unknown[] = [];
    const b = await PeerTransport.start({
      clusterId: CLUSTER,
      nodeId: 2,
      listen: { host: HOST, port: 0 },
      peers: [],
      onMessage: (_from, message) => {
        if (message === "boom") throw new Error("engine rejected the message");
        received.push(message);
      },
      log,
      limits: FAST,
    });
    everything.push(b);
    const a = await startNode(1, { peers: [{ id: 2, host: HOST, port: b.port }] });
    b.setPeers([a.address]);
    await waitFor(() => stats(a, 2).connected, "a connects");
    a.transport.send(2, "boom");
    a.transport.send(2, "after");
    await waitFor(() => received.length === 1, "the next message arrives");
    assert.deepEqual(received, ["after"]);
    assert.match(String(log.find("error", "onMessage threw")[0]?.fields["error"]), /engine rejected the message/);
  });

  test("setPeers adds, removes and re-adds a peer", bounded, async () => {
    const [a, b] = (await startCluster([1, 2])) as [Node, Node];
    const c = await startNode(3, { peers: [a.address, b.address] });
    a.transport.setPeers([a.address, b.address, c.address]);
    b.transport.setPeers([a.address, b.address, c.address]);
    await waitFor(() => stats(a, 3).connected && stats(c, 1).connected && stats(c, 2).connected, "the new peer connects");
    a.transport.setPeers([a.address, c.address]);
    assert.equal(a.transport.stats().has(2), false);
    assert.equal(a.transport.send(2, "gone"), false);
    // b still lists a, but a now refuses it, so b cannot get a message through.
    await waitFor(() => b.log.find("warn", "peer refused the handshake").length > 0, "a refuses b");
    assert.equal(b.transport.send(1, "anyone?"), false);
    assert.equal(a.received.length, 0);
    a.transport.setPeers([a.address, b.address, c.address]);
    await waitFor(() => stats(a, 2).connected && stats(b, 1).connected, "b is back");
    assert.equal(b.transport.send(1, "back"), true);
    await waitFor(() => a.received.length === 1, "a hears b again");
  });

  test("close() cancels timers and closes every socket, so nothing keeps the process alive", bounded, async () => {
    // libuv frees a closed handle a loop iteration or two after its 'close' event.
    await settle();
    const baseline = resourceCounts();
    const nodes = await startCluster([1, 2]);
    const [a] = nodes as [Node, Node];
    // A peer that is down leaves a retry timer pending; a stranger leaves a handshake timer.
    a.transport.setPeers([...nodes.map((n) => n.address), { id: 7, host: HOST, port: await freePort() }]);
    const stranger = connect({ host: HOST, port: a.transport.port });
    stranger.on("error", () => {});
    const strangerClosed = new Promise((resolve) => stranger.once("close", resolve));
    await new Promise((resolve) => stranger.once("connect", resolve));
    await waitFor(() => stats(a, 7).dialAttempts >= 2, "a retries the dead peer");
    await Promise.all(nodes.map((node) => node.transport.close()));
    await strangerClosed;
    await settle();
    assert.deepEqual(resourceCounts(), baseline);
    assert.equal(a.transport.send(2, "after close"), false);
    await a.transport.close(); // idempotent
  });
});

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

function resourceCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) {
    if (kind === "TCPSocketWrap" || kind === "TCPServerWrap" || kind === "Timeout") counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as connectTls } from "node:tls";
import { after, afterEach, before, describe, test } from "node:test";
import { openLocalCa, type LocalCa } from "../tls/local-ca.js";
import { loadTlsMaterial, TlsSource, type TlsFiles } from "../tls/material.js";
import { PeerTransport, type PeerAddress } from "./peer-transport.js";
import { RecordingLog } from "./transport.test-util.js";

const HOST = "127.0.0.1";
const FAST = { backoffMsMin: 10, backoffMsMax: 100, handshakeTimeoutMs: 500 };

interface Started {
  readonly transport: PeerTransport;
  readonly log: RecordingLog;
  readonly received: { from: number; message: unknown }[];
  readonly address: PeerAddress;
}

const open: PeerTransport[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((transport) => transport.close()));
});

async function start(id: number, files: TlsFiles, peers: readonly PeerAddress[] = []): Promise<Started> {
  const log = new RecordingLog();
  const received: { from: number; message: unknown }[] = [];
  const transport = await PeerTransport.start({
    clusterId: "tls-test",
    nodeId: id,
    listen: { host: HOST, port: 0 },
    peers,
    onMessage: (from, message) => received.push({ from, message }),
    log,
    limits: FAST,
    tls: new TlsSource(files),
  });
  open.push(transport);
  return { transport, log, received, address: { id, host: HOST, port: transport.port } };
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Sends from `a` to `b` until one arrives (the connection may still be handshaking). */
async function deliver(a: Started, b: Started, fromId: number, message: unknown): Promise<void> {
  await until(() => {
    a.transport.send(b.address.id, message);
    return b.received.some((r) => r.from === fromId && JSON.stringify(r.message) === JSON.stringify(message));
  }, `a message from ${fromId}`);
}

describe("peer transport over mutual TLS", { timeout: 120_000 }, () => {
  let dir: string;
  let ca: LocalCa;
  let stranger: LocalCa;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "synod-peer-tls-"));
    ca = openLocalCa(join(dir, "ca"));
    for (const id of [1, 2, 3]) ca.ensureNode(id, []);
    stranger = openLocalCa(join(dir, "stranger"));
    stranger.ensureNode(2, []);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("two nodes with certificates of the cluster's CA exchange messages both ways", async () => {
    const one = await start(1, ca.nodeFiles(1));
    const two = await start(2, ca.nodeFiles(2), [one.address]);
    one.transport.setPeers([two.address]);
    await deliver(two, one, 2, { hello: "from 2" });
    await deliver(one, two, 1, { hello: "from 1" });
  });

  test("a peer whose certificate another CA signed is refused, and the refusal is logged", async () => {
    const one = await start(1, ca.nodeFiles(1), [{ id: 2, host: HOST, port: 1 }]);
    const impostor = await start(2, stranger.nodeFiles(2), [one.address]);
    for (let i = 0; i < 20; i++) {
      impostor.transport.send(1, { i });
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await until(() => one.log.has("refused a peer's TLS handshake"), "the listener's log line");
    assert.deepEqual(one.received, []);
    assert.equal(impostor.transport.stats().get(1)?.connected ?? false, false);
  });

  test("a node that claims another node's id than its certificate names is refused at the hello", async () => {
    const one = await start(1, ca.nodeFiles(1), [{ id: 2, host: HOST, port: 1 }]);
    // Node 3's certificate, but it says it is node 2 (a peer node 1 knows).
    const liar = await start(2, ca.nodeFiles(3), [one.address]);
    for (let i = 0; i < 20; i++) {
      liar.transport.send(1, { i });
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await until(() => one.log.has("certificate it connected with names node 3"), "the refusal naming the certificate's node");
    assert.ok(liar.log.has("peer refused the handshake"), "the dialer hears why");
    assert.deepEqual(one.received, []);
  });

  test("a dialer refuses a listener whose certificate names another node than the one it dialed", async () => {
    const three = await start(3, ca.nodeFiles(3), [{ id: 1, host: HOST, port: 1 }]);
    // Node 1 believes node 2 listens where node 3 does.
    const one = await start(1, ca.nodeFiles(1), [{ id: 2, host: HOST, port: three.address.port }]);
    for (let i = 0; i < 20; i++) {
      one.transport.send(2, { i });
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await until(() => one.log.has("names node 3, not node 2"), "the dialer's refusal");
    assert.deepEqual(three.received, []);
  });

  test("a plain-TCP dialer gets nothing through", async () => {
    const one = await start(1, ca.nodeFiles(1), [{ id: 2, host: HOST, port: 1 }]);
    const socket = connectTcp({ host: HOST, port: one.address.port });
    socket.on("error", () => {});
    socket.write(Buffer.from([0, 0, 0, 4, 1, 2, 3, 4]));
    await new Promise((resolve) => socket.once("close", resolve));
    assert.deepEqual(one.received, []);
  });

  test("after the TLS source reloads, a renewed certificate is served to new connections without a restart", async () => {
    const files = ca.issueNode(1, []);
    const source = new TlsSource(files);
    const log = new RecordingLog();
    const transport = await PeerTransport.start({ clusterId: "tls-test", nodeId: 1, listen: { host: HOST, port: 0 }, peers: [], onMessage: () => {}, log, tls: source });
    open.push(transport);
    const serialSeen = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const client = ca.nodeFiles(2);
        const socket = connectTls({ host: HOST, port: transport.port, ...loadTlsMaterial(client), checkServerIdentity: () => undefined }, () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.destroy();
        });
        socket.on("error", reject);
      });
    const before = await serialSeen();
    assert.equal(before.toLowerCase(), source.current.serial.toLowerCase());
    ca.issueNode(1, []);
    assert.equal(source.reload(), null);
    const afterReload = await serialSeen();
    assert.notEqual(afterReload, before);
    assert.equal(afterReload.toLowerCase(), source.current.serial.toLowerCase());
  });

  test("a connection that stalls in its TLS handshake is closed at the handshake deadline, not after Node's 120 s", async () => {
    const one = await start(1, ca.nodeFiles(1));
    // Half a ClientHello: the TLS server waits for the rest, which never comes.
    const socket = connectTcp(one.address.port, HOST, () => socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
    socket.on("error", () => {});
    const startedMs = Date.now();
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), FAST.handshakeTimeoutMs + 3000);
      socket.once("close", () => (clearTimeout(timer), resolve(true)));
    });
    socket.destroy();
    assert.ok(closed, `still open ${FAST.handshakeTimeoutMs + 3000} ms later`);
    const heldMs = Date.now() - startedMs;
    assert.ok(heldMs >= FAST.handshakeTimeoutMs - 50 && heldMs < FAST.handshakeTimeoutMs + 2000, `closed after ${heldMs} ms; the deadline is ${FAST.handshakeTimeoutMs} ms`);
  });
});

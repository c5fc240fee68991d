/**
 * Slow and many clients against a real node process (limits.ts): a client trickling its
 * headers or body is answered 408 and closed within the deadlines, while a watch streams on
 * past them; past --max-connections a new connection is closed at once and the open ones
 * are served; a stranger on the peer port that never says hello is closed.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { ProcessCluster, request, sleep } from "./process-cluster.test-util.js";

const HEADERS_TIMEOUT_MS = 1000;
const RECEIVE_TIMEOUT_MS = 2000;
const CONNECTIONS_MAX = 24;
/** Node checks its deadlines every second (limits.ts): a slow client is cut at most that late, plus scheduling. */
const SLACK_MS = 1500;

interface RawConnection {
  readonly socket: Socket;
  /** Everything received so far. */
  readonly received: () => string;
  /** Resolves when the socket closes, with the milliseconds since it connected. */
  readonly closed: Promise<number>;
}

function rawConnection(port: number): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const startedMs = Date.now();
    let text = "";
    const socket = connect(port, "127.0.0.1");
    const closed = new Promise<number>((done) => socket.once("close", () => done(Date.now() - startedMs)));
    socket.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    socket.on("error", () => undefined);
    socket.once("connect", () => resolve({ socket, received: () => text, closed }));
    socket.once("error", reject);
  });
}

/** Writes `piece` every `everyMs` until the socket closes. */
function trickle(socket: Socket, piece: string, everyMs: number): void {
  const timer = setInterval(() => (socket.writable ? socket.write(piece) : clearInterval(timer)), everyMs);
  socket.once("close", () => clearInterval(timer));
}

/** Resolves with whether `closed` settled within `ms`. */
async function within(closed: Promise<number>, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([closed, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)))]);
  clearTimeout(timer);
  return result;
}

describe("client limits against a real node", { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  let port: number;
  /** Connected to the peer port first, saying nothing: the last test reads when it was closed (its 5 s pass during the others). */
  let stranger: RawConnection;
  before(async () => {
    cluster = await ProcessCluster.start({
      size: 1,
      flags: ["--headers-timeout-ms", String(HEADERS_TIMEOUT_MS), "--receive-timeout-ms", String(RECEIVE_TIMEOUT_MS), "--max-connections", String(CONNECTIONS_MAX)],
    });
    await cluster.waitForLeader();
    port = Number(new URL(cluster.node(1).http).port);
    const members = (await request("GET", `${cluster.node(1).http}/v1/members`)).body["members"] as { id: number; peer: string }[];
    stranger = await rawConnection(Number(members[0]?.peer.split(":")[1]));
  });
  after(async () => cluster.close());

  test("slow headers and a slow body are cut off with a 408, while a watch streams on past the deadlines", async () => {
    const watch = await fetch(`${cluster.node(1).http}/v1/watch?key=slow-watched`, { signal: AbortSignal.timeout(15_000) });
    assert.equal(watch.status, 200);
    const silent = await rawConnection(port);
    const slowHeaders = await rawConnection(port);
    slowHeaders.socket.write("GET /v1/status HTTP/1.1\r\nhost: x\r\n");
    trickle(slowHeaders.socket, "x-slow: 1\r\n", 100);
    const slowBody = await rawConnection(port);
    slowBody.socket.write("PUT /v1/kv/slow-body HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n");
    trickle(slowBody.socket, "a", 100);

    for (const [name, connection, deadlineMs] of [
      ["a silent connection", silent, HEADERS_TIMEOUT_MS],
      ["trickled headers", slowHeaders, HEADERS_TIMEOUT_MS],
      ["a trickled body", slowBody, RECEIVE_TIMEOUT_MS],
    ] as const) {
      const heldMs = await within(connection.closed, deadlineMs + SLACK_MS + 1000);
      connection.socket.destroy();
      assert.notEqual(heldMs, null, `${name} was still open ${deadlineMs + SLACK_MS + 1000} ms later`);
      assert.ok((heldMs as number) >= deadlineMs - 100 && (heldMs as number) <= deadlineMs + SLACK_MS, `${name} was closed after ${heldMs} ms; its deadline is ${deadlineMs} ms`);
      assert.match(connection.received(), /^HTTP\/1\.1 408 /, `${name}: ${connection.received()}`);
      assert.match(connection.received(), /"error":"request_timeout"/);
    }
    const stored = await request("GET", `${cluster.node(1).http}/v1/kv/slow-body`);
    assert.equal(stored.status, 404, "the cut-off body wrote nothing");

    // The watch has lived past both deadlines; it still delivers.
    assert.equal((await request("PUT", `${cluster.node(1).http}/v1/kv/slow-watched`, "still streaming")).status, 200);
    const reader = (watch.body as ReadableStream<Uint8Array>).getReader();
    let events = "";
    const deadline = Date.now() + 5000;
    while (!events.includes("still streaming") && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      events += Buffer.from(value).toString("utf8");
    }
    await reader.cancel();
    assert.match(events, /still streaming/, "the watch delivers after the receive deadline");
  });

  test("past --max-connections a new connection is closed at once; the open ones are served, and the refusals counted", async () => {
    const open: RawConnection[] = [];
    try {
      // Each makes a request, so it sits idle under keep-alive (not the headers deadline).
      for (let i = 0; i < CONNECTIONS_MAX; i++) {
        const connection = await rawConnection(port);
        connection.socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
        open.push(connection);
      }
      await sleep(300);
      // The test's own fetch keeps a connection or two alive (and the watch's may linger): they count too.
      const served = open.filter((connection) => connection.received().startsWith("HTTP/1.1 200"));
      assert.ok(served.length >= CONNECTIONS_MAX - 3, `${served.length} of ${CONNECTIONS_MAX} connections were served`);
      const refused = await Promise.all(Array.from({ length: 3 }, () => rawConnection(port)));
      for (const connection of refused) {
        connection.socket.write("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
        const heldMs = await within(connection.closed, 2000);
        assert.ok(heldMs !== null && heldMs < 1000, `a connection past the limit was held ${heldMs} ms`);
        assert.equal(connection.received(), "", "closed without an answer");
      }
      // An open connection is served still.
      const first = served[0] as RawConnection;
      const before = first.received().length;
      first.socket.write("GET /v1/status HTTP/1.1\r\nhost: x\r\n\r\n");
      await sleep(300);
      assert.match(first.received().slice(before), /^HTTP\/1\.1 200 /);
    } finally {
      for (const connection of open) connection.socket.destroy();
    }
    await sleep(200);
    const metrics = await request("GET", `${cluster.node(1).http}/metrics`);
    const refusals = /^synod_http_connections_refused_total (\d+)$/m.exec(metrics.text);
    assert.ok(refusals !== null && Number(refusals[1]) >= 3, `refusals counted: ${refusals?.[0]}`);
  });

  test("a stranger on the peer port that never says hello is closed at the handshake deadline (5 s)", async () => {
    const heldMs = await within(stranger.closed, 8000);
    stranger.socket.destroy();
    assert.ok(heldMs !== null && heldMs >= 4900 && heldMs <= 8000, `the silent stranger was closed after ${heldMs} ms`);
    assert.equal((await request("PUT", `${cluster.node(1).http}/v1/kv/after-stranger`, "ok")).status, 200);
  });
});

/**
 * What the proxy sends again, against stand-in nodes: anything a node did not apply (a
 * refused connection, 503 no_leader), a repeatable request (a read, a session write) whose
 * connection broke; never a plain write whose outcome is unknown.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { after, describe, test } from "node:test";
import { pino } from "pino";
import { ClusterRouter } from "../../client/router.js";
import { freePorts, request } from "../server/process-cluster.test-util.js";
import { limits } from "../../core/common/limits.js";
import { DEFAULT_NODE_CONFIG } from "../server/config.js";
import { send } from "./http-send.test-util.js";
import { ProxyServer, type ProxyRouter } from "./proxy.js";

type Behaviour = (request: IncomingMessage, response: ServerResponse) => void;

interface FakeNode {
  readonly url: string;
  readonly seen: string[];
  behaviour: Behaviour;
  readonly server: Server;
}

async function fakeNode(behaviour: Behaviour): Promise<FakeNode> {
  const seen: string[] = [];
  const node = { url: "", seen, behaviour, server: createServer() } as { url: string; seen: string[]; behaviour: Behaviour; server: Server };
  node.server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on("end", () => node.behaviour(req, res));
  });
  await new Promise<void>((resolve) => node.server.listen(0, "127.0.0.1", resolve));
  const address = node.server.address();
  node.url = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;
  return node;
}

const ok: Behaviour = (_req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ revision: 9 }));
};
const breaks: Behaviour = (req) => req.socket.destroy();
const noLeader: Behaviour = (_req, res) => {
  res.writeHead(503, { "content-type": "application/json", "retry-after": "1" });
  res.end(JSON.stringify({ error: "no_leader", message: "an election" }));
};

describe("the proxy's retries", () => {
  const closers: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const close of closers.reverse()) await close();
  });

  /** A proxy over `nodes` whose router sends writes to the first (round-robin from there). */
  async function proxyOver(nodes: readonly FakeNode[]): Promise<string> {
    const router = new ClusterRouter({ endpoints: nodes.map((n) => ({ url: n.url })), strategy: "round-robin", healthCheckIntervalMs: 0, seed: 1 });
    router.noteLeader(nodes[0]?.url ?? null);
    const [port] = await freePorts(1);
    const proxy = await ProxyServer.start({ listen: { host: "127.0.0.1", port: port as number }, endpoints: nodes.map((n) => n.url), router, log: pino({ level: "silent" }), seed: 1 });
    closers.push(() => proxy.close());
    return proxy.url;
  }

  async function nodes(...behaviours: Behaviour[]): Promise<FakeNode[]> {
    const made = await Promise.all(behaviours.map(fakeNode));
    for (const node of made) closers.push(() => new Promise((resolve) => node.server.close(resolve)));
    return made;
  }

  test("a plain write whose connection broke is not sent again: 502 upstream_unknown", async () => {
    const [broken, good] = await nodes(breaks, ok);
    const url = await proxyOver([broken as FakeNode, good as FakeNode]);
    const answer = await request("PUT", `${url}/v1/kv/k`, "v");
    assert.equal(answer.status, 502, answer.text);
    assert.equal(answer.body["error"], "upstream_unknown");
    assert.deepEqual(good?.seen, [], "the other node never saw the write");
  });

  test("the same write in a client session is sent again elsewhere, and answered", async () => {
    const [broken, good] = await nodes(breaks, ok);
    const url = await proxyOver([broken as FakeNode, good as FakeNode]);
    const answer = await request("PUT", `${url}/v1/kv/k`, "v", { "x-synod-session": "4", "x-synod-sequence": "1" });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.headers.get("x-synod-upstream"), good?.url);
    assert.deepEqual(good?.seen, ["PUT /v1/kv/k"]);
  });

  test("a 503 no_leader (nothing applied) and a refused connection are retried for any request", async () => {
    const [electing, good] = await nodes(noLeader, ok);
    const url = await proxyOver([electing as FakeNode, good as FakeNode]);
    const answer = await request("PUT", `${url}/v1/kv/k`, "v");
    assert.equal(answer.status, 200, answer.text);
    const [closedPort] = await freePorts(1);
    const [alive] = await nodes(ok);
    const refusedUrl = await proxyOver([{ url: `http://127.0.0.1:${closedPort}`, seen: [], behaviour: ok, server: createServer() }, alive as FakeNode]);
    const refused = await request("PUT", `${refusedUrl}/v1/kv/k`, "v");
    assert.equal(refused.status, 200, refused.text);
  });

  test("a 503 no_quorum (a node cut off from the majority applied nothing) is retried elsewhere too", async () => {
    const cutOff: Behaviour = (_req, res) => {
      res.writeHead(503, { "content-type": "application/json", "retry-after": "1" });
      res.end(JSON.stringify({ error: "no_quorum", message: "this node reaches 1 of 3 voters" }));
    };
    const [minority, good] = await nodes(cutOff, ok);
    const url = await proxyOver([minority as FakeNode, good as FakeNode]);
    const answer = await request("PUT", `${url}/v1/kv/k`, "v");
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(good?.seen, ["PUT /v1/kv/k"]);
  });

  test("when every node says no_leader, the node's answer is passed on once retries are spent", async () => {
    const electing = await nodes(noLeader, noLeader);
    const url = await proxyOver(electing);
    const answer = await request("PUT", `${url}/v1/kv/k`, "v");
    assert.equal(answer.status, 503);
    assert.equal(answer.body["error"], "no_leader");
    assert.ok(electing.every((node) => node.seen.length >= 1));
  });

  test("a session write whose first attempt broke and whose retry finds the session expired is answered 502: it may have been applied", async () => {
    const expired: Behaviour = (_req, res) => {
      res.writeHead(410, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "session_expired", message: "gone" }));
    };
    const [broken, gone] = await nodes(breaks, expired);
    const url = await proxyOver([broken as FakeNode, gone as FakeNode]);
    const answer = await request("PUT", `${url}/v1/kv/k`, "v", { "x-synod-session": "4", "x-synod-sequence": "1" });
    assert.equal(answer.status, 502, answer.text);
    assert.equal(answer.body["error"], "upstream_unknown");
    // Without a broken attempt before it, a 410 is the node's answer, passed on.
    const [onlyExpired] = await nodes(expired);
    const direct = await request("PUT", `${await proxyOver([onlyExpired as FakeNode])}/v1/kv/k`, "v", { "x-synod-session": "4", "x-synod-sequence": "1" });
    assert.equal(direct.status, 410);
  });

  test("a client that leaves before the answer frees the attempt: nothing stays in flight", async () => {
    const slow: Behaviour = (_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.end(Buffer.alloc(256 * 1024));
      }, 200);
    };
    const [node] = await nodes(slow);
    const url = await proxyOver([node as FakeNode]);
    await fetch(`${url}/v1/kv/k?consistency=stale`, { signal: AbortSignal.timeout(50) }).catch(() => undefined);
    let inFlight = -1;
    for (let i = 0; i < 40 && inFlight !== 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const stats = (await request("GET", `${url}/v1/proxy/stats`)).body as { endpoints: { inFlight: number }[] };
      inFlight = stats.endpoints[0]?.inFlight ?? -1;
    }
    assert.equal(inFlight, 0);
  });

  test("a value over the node's limit is answered 413 too_large by the proxy, as a node would: no node sees it, no node's health or the leader changes", async () => {
    const [leader, other] = await nodes(ok, ok);
    const url = await proxyOver([leader as FakeNode, other as FakeNode]);
    const value = Buffer.alloc(limits.valueBytesMax + 1, 0x61);
    const declared = await send(`${url}/v1/kv/big`, "PUT", { "content-length": String(value.length) }, [value]);
    assert.equal(declared.status, 413, declared.text);
    assert.equal(JSON.parse(declared.text).error, "too_large");
    assert.match(JSON.parse(declared.text).message, new RegExp(`a value of ${value.length} bytes is over the limit of ${limits.valueBytesMax}`));
    // Without a Content-Length (chunked), the bytes read are counted.
    const chunked = await send(`${url}/v1/kv/big`, "PUT", {}, [value.subarray(0, 1000), value.subarray(1000)]);
    assert.equal(chunked.status, 413, chunked.text);
    assert.equal(JSON.parse(chunked.text).error, "too_large");
    const txn = await send(`${url}/v1/txn`, "POST", { "content-type": "application/json" }, [Buffer.alloc(DEFAULT_NODE_CONFIG.requestBodyBytesMax + 1, 0x20)]);
    assert.equal(txn.status, 413, txn.text);
    assert.deepEqual([...(leader?.seen ?? []), ...(other?.seen ?? [])], [], "no node was sent the request");
    const stats = (await request("GET", `${url}/v1/proxy/stats`)).body as { leader: string | null; endpoints: { failures: number; health: string }[] };
    assert.equal(stats.leader, leader?.url, "the proxy still knows the leader");
    assert.deepEqual(stats.endpoints.map((e) => [e.failures, e.health]), [[0, "healthy"], [0, "healthy"]]);
  });

  test("a value sent with Expect: 100-continue (as curl sends one over 1 MiB) is passed on", async () => {
    const [node] = await nodes(ok);
    const url = await proxyOver([node as FakeNode]);
    const value = Buffer.alloc(limits.valueBytesMax, 0x61);
    const answer = await send(`${url}/v1/kv/big`, "PUT", { "content-length": String(value.length), expect: "100-continue" }, [value]);
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(node?.seen, ["PUT /v1/kv/big"]);
  });

  test("no node to take a request, or none answering: 503 upstream_unavailable either way, with retry-after", async () => {
    const [closedA, closedB] = await freePorts(2);
    const down = [closedA, closedB].map((port) => ({ url: `http://127.0.0.1:${port}`, seen: [], behaviour: ok, server: createServer() }));
    const refused = await request("PUT", `${await proxyOver(down)}/v1/kv/k`, "v");
    assert.equal(refused.status, 503, refused.text);
    assert.equal(refused.body["error"], "upstream_unavailable");
    assert.equal(refused.headers.get("retry-after"), "1");
    // A router with nothing to offer (every node ejected, no panic).
    const none: ProxyRouter = { pickForWrite: () => null, pickForRead: () => null, onStart: () => {}, onFinish: () => {}, reportSuccess: () => {}, reportFailure: () => {}, stats: () => ({}), close: () => {} };
    const [port] = await freePorts(1);
    const proxy = await ProxyServer.start({ listen: { host: "127.0.0.1", port: port as number }, endpoints: [], router: none, log: pino({ level: "silent" }) });
    closers.push(() => proxy.close());
    const empty = await request("PUT", `${proxy.url}/v1/kv/k`, "v");
    assert.equal(empty.status, 503, empty.text);
    assert.equal(empty.body["error"], "upstream_unavailable");
    assert.equal(empty.headers.get("retry-after"), "1");
  });

  test("HEAD keeps the node's content-length", async () => {
    const head: Behaviour = (_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": "42" });
      res.end();
    };
    const [node] = await nodes(head);
    const answer = await fetch(`${await proxyOver([node as FakeNode])}/v1/kv/k?consistency=stale`, { method: "HEAD" });
    assert.equal(answer.headers.get("content-length"), "42");
  });
});


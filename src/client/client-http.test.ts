// The Client's side of docs/http-api.md, against fake nodes made here with node:http that
// answer as the document says a node would: the requests it sends, the answers it
// understands, and when it fails over and when it must not (here without sessions, health
// checks or the router's leader preference; client.test.ts covers those).
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, test } from "node:test";
import { InvalidInputError } from "../core/common/errors.js";
import { encodeKeyPath, keyValueToJson, parseRetryAfterMs } from "./api.js";
import { Client, type ClientOptions } from "./client.js";
import { CompareFailedError, ConnectionError, HttpApiError, NoLeaderError, NoQuorumError, SequenceSupersededError, TimeoutError, UnavailableError } from "./errors.js";
import { refusingEndpoint } from "./fake-node.test-util.js";

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

interface FakeNode {
  readonly url: string;
  readonly seen: Seen[];
  close(): Promise<void>;
}

type Handler = (request: Seen, response: ServerResponse) => void;

const open: FakeNode[] = [];
after(async () => {
  await Promise.all(open.map((node) => node.close()));
});

async function fakeNode(handler: Handler): Promise<FakeNode> {
  const seen: Seen[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const entry = { method: request.method ?? "", url: request.url ?? "", headers: request.headers, body: Buffer.concat(chunks) };
      seen.push(entry);
      handler(entry, response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const node: FakeNode = {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  open.push(node);
  return node;
}


function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { "content-type": "application/json", ...headers });
  response.end(JSON.stringify(body));
}

const ok = (body: unknown): Handler => (_request, response) => json(response, 200, body);
const apiError = (status: number, code: string, headers: Record<string, string> = {}, extra: object = {}): Handler => (_request, response) =>
  json(response, status, { error: code, message: `fake ${code}`, ...extra }, headers);

/** A client with fast retries, no sessions, no health checks and no member lists, closed when the test ends. */
function client(endpoints: string[], options: Partial<ClientOptions> & { attemptsMax?: number } = {}): Client {
  const { attemptsMax, ...rest } = options;
  const created = new Client({ endpoints, sessions: false, healthCheckIntervalMs: 0, membersIntervalMs: 0, seed: 7, retry: { backoffMsBase: 5, backoffMsMax: 20, ...(attemptsMax === undefined ? {} : { attemptsMax }) }, ...rest });
  after(() => created.close());
  return created;
}

describe("requests and answers", () => {
  test("put sends the raw bytes to /v1/kv/{key} and returns the revision; prevRevision makes a compare-and-set", async () => {
    const node = await fakeNode(ok({ revision: 7 }));
    const synod = client([node.url]);
    assert.deepEqual(await synod.put("greeting", "héllo"), { revision: 7 });
    assert.deepEqual(await synod.put("bin", new Uint8Array([0, 255, 1]), { prevRevision: 0 }), { revision: 7 });
    const [text, binary] = node.seen;
    assert.equal(text?.method, "PUT");
    assert.equal(text?.url, "/v1/kv/greeting");
    assert.equal(text?.headers["content-type"], "application/octet-stream");
    assert.equal(text?.body.toString("utf8"), "héllo");
    assert.equal(binary?.url, "/v1/kv/bin?prevRevision=0");
    assert.deepEqual([...(binary?.body ?? [])], [0, 255, 1]);
    await assert.rejects(synod.put("k", "v", { prevRevision: -1 }), InvalidInputError);
  });

  test("get decodes a UTF-8 value and a base64 value, passes consistency, and returns null for an absent key", async () => {
    const records: Record<string, object> = {
      "/v1/kv/text?consistency=stale": { key: "text", value: "hello ü", revision: 3, createRevision: 2, version: 2 },
      "/v1/kv/bin?consistency=linearizable": { key: "bin", value: Buffer.from([0xff, 0x00, 0x80]).toString("base64"), encoding: "base64", revision: 4, createRevision: 4, version: 1 },
    };
    const node = await fakeNode((request, response) => {
      const record = records[request.url];
      if (record === undefined) json(response, 404, { error: "key_not_found", message: "no such key" });
      else json(response, 200, record);
    });
    const synod = client([node.url]);
    const text = await synod.get("text", { consistency: "stale" });
    assert.deepEqual(text, { key: "text", value: new Uint8Array(Buffer.from("hello ü")), revision: 3, createRevision: 2, version: 2 });
    const binary = await synod.get("bin");
    assert.deepEqual([...(binary?.value ?? [])], [0xff, 0x00, 0x80]);
    assert.deepEqual(binary === null ? null : keyValueToJson(binary), records["/v1/kv/bin?consistency=linearizable"]);
    assert.equal(await synod.get("absent"), null);
  });

  test("an unknown route's 404 is an error, not an absent key", async () => {
    const synod = client([(await fakeNode(apiError(404, "not_found"))).url]);
    await assert.rejects(synod.get("k"), (error: unknown) => error instanceof HttpApiError && error.status === 404 && error.code === "not_found");
  });

  test("delete, range, txn and status decode their answers", async () => {
    const kv = { key: "gr", value: "v", revision: 2, createRevision: 2, version: 1 };
    const status = { id: 2, role: "follower", term: 3, leader: 1, leaderHttp: "http://127.0.0.1:7001", commitIndex: 9, appliedIndex: 8, consensus: "raft", clusterId: "c", members: [] };
    const node = await fakeNode((request, response) => {
      if (request.method === "DELETE") json(response, 200, { deleted: 1, revision: 5 });
      else if (request.url.startsWith("/v1/kv?")) json(response, 200, { kvs: [kv], more: true, revision: 5 });
      else if (request.url === "/v1/txn") {
        const results = [{ op: "get", kv }, { op: "get", kv: null, forgotten: true }, { op: "put", revision: 6 }, { op: "delete", deleted: 1, revision: 6 }];
        json(response, 200, { succeeded: false, revision: 6, results });
      }
      else json(response, 200, status);
    });
    const synod = client([node.url]);
    assert.deepEqual(await synod.delete("a/b"), { deleted: 1, revision: 5 });
    const range = await synod.range("g r", { limit: 10, after: "ga", consistency: "lease" });
    assert.equal(range.more, true);
    assert.deepEqual(range.kvs.map((record: { key: string }) => record.key), ["gr"]);
    const txn = await synod.txn({ compare: [{ key: "lock", target: "version", op: "=", value: 0 }], success: [{ op: "put", key: "lock", value: "me" }] });
    assert.equal(txn.succeeded, false);
    assert.deepEqual(txn.results[0], { op: "get", kv: { key: "gr", value: new Uint8Array(Buffer.from("v")), revision: 2, createRevision: 2, version: 1 }, forgotten: false });
    assert.deepEqual(txn.results[1], { op: "get", kv: null, forgotten: true });
    assert.deepEqual(txn.results[2], { op: "put", revision: 6 });
    assert.deepEqual(txn.results[3], { op: "delete", deleted: 1, revision: 6 });
    assert.deepEqual(await synod.status(node.url), status);
    const [deleted, ranged, transaction] = node.seen;
    assert.equal(deleted?.url, "/v1/kv/a/b");
    assert.equal(ranged?.url, "/v1/kv?prefix=g+r&limit=10&after=ga&consistency=lease");
    assert.equal(transaction?.headers["content-type"], "application/json");
    assert.equal((JSON.parse(transaction?.body.toString() ?? "") as { compare: unknown[] }).compare.length, 1);
  });

  test("a transaction's results without `op` (nodes of before it) are told apart by their fields; a delete takes the transaction's revision", async () => {
    const node = await fakeNode(ok({ succeeded: true, revision: 9, results: [{ kv: null }, { deleted: 1 }, { revision: 9 }] }));
    const txn = await client([node.url]).txn({ success: [{ op: "get", key: "a" }, { op: "delete", key: "b" }, { op: "put", key: "c", value: "v" }] });
    assert.deepEqual(txn.results, [{ op: "get", kv: null, forgotten: false }, { op: "delete", deleted: 1, revision: 9 }, { op: "put", revision: 9 }]);
  });

  test("bytes in a transaction travel as base64; other fields as given, so the node can refuse one it does not know", async () => {
    const node = await fakeNode(ok({ succeeded: true, revision: 2, results: [{ op: "put", revision: 2 }] }));
    const request = {
      compare: [{ key: "k", target: "value" as const, op: "=" as const, value: new Uint8Array([0xff, 0]) }],
      success: [{ op: "put" as const, key: "k", value: new Uint8Array([1, 2, 0xfe]) }, { op: "delete" as const, key: "d", prefix: true }],
    };
    await client([node.url]).txn(request);
    assert.deepEqual(JSON.parse(node.seen[0]?.body.toString() ?? ""), {
      compare: [{ key: "k", target: "value", op: "=", value: "/wA=", encoding: "base64" }],
      success: [{ op: "put", key: "k", value: "AQL+", encoding: "base64" }, { op: "delete", key: "d", prefix: true }],
    });
  });

  test("a read's answer that is not the API's shape is an invalid_response error; a write's is an outcome-unknown TimeoutError (it was applied)", async () => {
    const node = await fakeNode(ok({ revision: "seven", deleted: "one", succeeded: true, results: [{ op: "delete", deleted: 1 }] }));
    const synod = client([node.url]);
    await assert.rejects(synod.get("k"), (error: unknown) => error instanceof HttpApiError && error.code === "invalid_response");
    const unknown = (error: unknown): boolean =>
      error instanceof TimeoutError && error.outcomeUnknown && error.cause instanceof HttpApiError && error.cause.code === "invalid_response" && /may have been applied/.test(error.message);
    await assert.rejects(synod.put("k", "v"), unknown);
    await assert.rejects(synod.delete("k"), unknown);
    await assert.rejects(synod.txn({ success: [{ op: "delete", key: "k" }] }), unknown);
    assert.equal(node.seen.length, 4, "not retried");
    assert.equal(synod.stats().outcomeUnknown, 3);
  });
});

describe("error mapping", () => {
  test("each status becomes its typed error with the body's code; an answer about the request is not retried", async () => {
    const answers: { handler: Handler; check: (error: unknown) => boolean }[] = [
      { handler: apiError(400, "invalid_input"), check: (e) => e instanceof HttpApiError && e.status === 400 && e.code === "invalid_input" && /fake invalid_input/.test(e.message) },
      { handler: apiError(409, "compare_failed", {}, { revision: 12 }), check: (e) => e instanceof CompareFailedError && e.revision === 12 && e.status === 409 },
      { handler: apiError(413, "too_large"), check: (e) => e instanceof HttpApiError && e.status === 413 && e.code === "too_large" },
      {
        handler: apiError(409, "sequence_superseded", {}, { session: 7, sequence: 2, latestSequence: 5 }),
        check: (e) => e instanceof SequenceSupersededError && e.status === 409 && e.session === 7 && e.sequence === 2 && e.latestSequence === 5,
      },
    ];
    for (const { handler, check } of answers) {
      const node = await fakeNode(handler);
      await assert.rejects(client([node.url]).put("k", "v", { prevRevision: 3 }), check);
      assert.equal(node.seen.length, 1);
    }
  });

  test("5xx answers map to UnavailableError (with Retry-After) or HttpApiError", async () => {
    const cases: { handler: Handler; check: (error: unknown) => boolean }[] = [
      { handler: apiError(503, "overloaded", { "retry-after": "2" }), check: (e) => e instanceof UnavailableError && !(e instanceof NoLeaderError) && e.code === "overloaded" && e.retryAfterMs === 2000 },
      { handler: apiError(500, "internal"), check: (e) => e instanceof HttpApiError && e.status === 500 && e.code === "internal" },
      {
        handler: (_request, response) => {
          response.writeHead(502, { "content-type": "text/plain" });
          response.end("bad gateway");
        },
        check: (e) => e instanceof HttpApiError && e.status === 502 && e.code === "http_502" && /bad gateway/.test(e.message),
      },
    ];
    for (const { handler, check } of cases) {
      const node = await fakeNode(handler);
      await assert.rejects(client([node.url], { attemptsMax: 2 }).get("k"), check);
      assert.equal(node.seen.length, 2, "a read is retried after a 5xx");
    }
  });

  test("a write answered 500 is not retried, and its outcome is unknown: a TimeoutError says so, the answer is its cause", async () => {
    const node = await fakeNode(apiError(500, "internal"));
    await assert.rejects(client([node.url]).put("k", "v"), (e: unknown) => e instanceof TimeoutError && e.outcomeUnknown && e.cause instanceof HttpApiError && e.cause.status === 500);
    assert.equal(node.seen.length, 1);
  });

  test("Retry-After is read as seconds or as an HTTP date", () => {
    assert.equal(parseRetryAfterMs("1"), 1000);
    assert.equal(parseRetryAfterMs("0.25"), 250);
    assert.equal(parseRetryAfterMs(new Date(10_000).toUTCString(), 4_000), 6_000);
    assert.equal(parseRetryAfterMs("soon"), null);
    assert.equal(parseRetryAfterMs(undefined), null);
  });
});

describe("failover", () => {
  test("a refused connection moves on to another endpoint: every call succeeds", async () => {
    const good = await fakeNode(ok({ revision: 1 }));
    const synod = client([await refusingEndpoint(), good.url]);
    for (let i = 0; i < 6; i++) assert.deepEqual(await synod.put("k", "v"), { revision: 1 });
    assert.equal(good.seen.length, 6, "each write reached the good node once");
  });

  test("503 no_leader and 503 not_member move a write on to another endpoint: the node took nothing", async () => {
    for (const code of ["no_leader", "no_quorum", "not_member", "overloaded"]) {
      const refusing = await fakeNode(apiError(503, code, { "retry-after": "1" }));
      const good = await fakeNode(ok({ revision: 4 }));
      const synod = client([refusing.url, good.url], { strategy: "round-robin" });
      for (let i = 0; i < 6; i++) assert.deepEqual(await synod.put("k", "v"), { revision: 4 });
      assert.equal(good.seen.length, 6);
      assert.equal(refusing.seen.length, 5, `${code}: round-robin tried the refusing node first until its 5th failure ejected it`);
    }
  });

  test("503 txn_locked (a key held by a transaction across ranges) is retried, and in the end is an UnavailableError: not applied, not the node's failure", async () => {
    let locked = 2;
    const node = await fakeNode((_request, response) => {
      if (locked-- > 0) return json(response, 503, { error: "txn_locked", message: "fake txn_locked", key: "k" }, { "retry-after": "1" });
      json(response, 200, { revision: 9 });
    });
    const synod = client([node.url], { attemptsMax: 4 });
    assert.deepEqual(await synod.put("k", "v"), { revision: 9 }, "a write outside a session is sent again: nothing was applied");
    assert.equal(node.seen.length, 3);
    const held = await fakeNode(apiError(503, "txn_locked", { "retry-after": "1" }));
    const stuck = client([held.url], { attemptsMax: 3 });
    await assert.rejects(stuck.put("k", "v"), (error: unknown) => error instanceof UnavailableError && error.code === "txn_locked");
    assert.equal(held.seen.length, 3);
    assert.equal(stuck.stats().outcomeUnknown, 0, "a txn_locked says nothing was applied");
    assert.equal(stuck.stats().router.endpoints[0]?.failures, 0, "nor is it the node's failure");
  });

  test("when every node knows no leader, the call gives up after attemptsMax attempts with NoQuorumError, pauses bounded whatever Retry-After says", async () => {
    const a = await fakeNode(apiError(503, "no_leader", { "retry-after": "30" }));
    const b = await fakeNode(apiError(503, "no_leader", { "retry-after": "30" }));
    const synod = client([a.url, b.url], { attemptsMax: 5 });
    const startMs = performance.now();
    await assert.rejects(synod.get("k"), (error: unknown) => error instanceof NoQuorumError && error instanceof NoLeaderError && error.retryAfterMs === 30_000);
    assert.equal(a.seen.length + b.seen.length, 5);
    assert.ok(a.seen.length >= 1 && b.seen.length >= 1, "a retry goes to the endpoint not tried yet");
    assert.ok(performance.now() - startMs < 2_000, "pauses are the backoff's, not Retry-After's");
  });

  test("503 no_quorum is a NoQuorumError with its code and the voters the node cannot reach", async () => {
    const node = await fakeNode(apiError(503, "no_quorum", { "retry-after": "1" }, { voters: [1, 2, 3], unreachable: [2, 3] }));
    await assert.rejects(client([node.url], { attemptsMax: 1 }).put("k", "v"), (error: unknown) => error instanceof NoQuorumError && error.code === "no_quorum" && error.unreachable.join() === "2,3");
  });

  test("when one node is down and the other knows no leader, the error says no leader, not a refused connection", async () => {
    const electing = await fakeNode(apiError(503, "no_leader"));
    const synod = client([electing.url, await refusingEndpoint()], { attemptsMax: 4 });
    await assert.rejects(synod.get("k"), NoLeaderError);
    assert.ok(electing.seen.length >= 1);
  });

  test("no endpoint reachable: ConnectionError (nothing sent) after the bounded attempts", async () => {
    const synod = client([await refusingEndpoint(), await refusingEndpoint()], { attemptsMax: 4 });
    await assert.rejects(synod.delete("k"), (error: unknown) => error instanceof ConnectionError && !error.requestSent && error.cause !== undefined);
    assert.equal(synod.stats().retries, 3);
  });

  test("a write answered 503 timeout is not retried: its outcome is unknown", async () => {
    const slow = await fakeNode(apiError(503, "timeout"));
    const synod = client([slow.url]);
    const unknown = (error: unknown): boolean => error instanceof TimeoutError && error.status === 503 && error.outcomeUnknown;
    await assert.rejects(synod.put("k", "v"), unknown);
    await assert.rejects(synod.delete("k"), unknown);
    await assert.rejects(synod.txn({ success: [] }), unknown);
    assert.equal(slow.seen.length, 3);
    assert.equal(synod.stats().outcomeUnknown, 3);
  });

  test("a read answered 503 timeout is retried on the other endpoint", async () => {
    const slow = await fakeNode(apiError(503, "timeout"));
    const good = await fakeNode(ok({ key: "k", value: "v", revision: 1, createRevision: 1, version: 1 }));
    const synod = client([slow.url, good.url]);
    for (let i = 0; i < 4; i++) assert.equal((await synod.get("k"))?.revision, 1);
  });

  test("no answer in time: a write rejects with TimeoutError (outcome unknown) at the call's timeout; a read tries the next endpoint after attemptTimeoutMs", async () => {
    const silent = await fakeNode(() => undefined);
    const good = await fakeNode(ok({ key: "k", value: "v", revision: 1, createRevision: 1, version: 1 }));
    await assert.rejects(client([silent.url]).put("k", "v", { timeoutMs: 200 }), (error: unknown) => error instanceof TimeoutError && error.status === null && error.outcomeUnknown);
    const synod = client([silent.url, good.url], { attemptTimeoutMs: 100 });
    for (let i = 0; i < 3; i++) assert.equal((await synod.get("k"))?.value.length, 1);
  });

  test("a connection that breaks during a write is not retried (outcome unknown); during a read it is", async () => {
    const breaking = await fakeNode((_request, response) => response.socket?.destroy());
    const good = await fakeNode(ok({ key: "k", value: "v", revision: 1, createRevision: 1, version: 1 }));
    await assert.rejects(client([breaking.url]).put("k", "v"), (error: unknown) => error instanceof TimeoutError && error.outcomeUnknown && error.cause instanceof ConnectionError && error.cause.requestSent);
    const synod = client([breaking.url, good.url]);
    for (let i = 0; i < 3; i++) assert.equal((await synod.get("k"))?.revision, 1);
  });

  test("a transaction across ranges, sent again outside the session, is not sent a third time when its connection breaks: outcome unknown", async () => {
    // The node refuses it in a session (cross_range); outside one it is coordinated, and the
    // connection breaks before the answer: the first coordination may have committed it.
    // Before, the SDK took that send for a session's opening (not the caller's write), sent
    // it again to the next node, whose coordination met the first's locks and answered 409
    // "aborted, nothing applied" for a transfer that had committed (the bank nemesis).
    const crossRange: Handler = (request, response) => {
      if (request.url.startsWith("/v1/sessions")) return json(response, 200, { session: 1, ttlMs: 60_000 });
      if (request.headers["x-synod-session"] !== undefined) return json(response, 400, { error: "cross_range", message: "a transaction across ranges is not part of a client session: send it without x-synod-session" });
      response.socket?.destroy();
    };
    const nodes = [await fakeNode(crossRange), await fakeNode(crossRange)];
    const synod = client(nodes.map((node) => node.url), { sessions: true });
    await assert.rejects(
      synod.txn({ success: [{ op: "put", key: "a", value: "1" }, { op: "put", key: "z", value: "2" }] }),
      (error: unknown) => error instanceof TimeoutError && error.outcomeUnknown && error.cause instanceof ConnectionError && error.cause.requestSent,
    );
    const coordinated = nodes.flatMap((node) => node.seen).filter((seen) => seen.url === "/v1/txn" && seen.headers["x-synod-session"] === undefined);
    assert.equal(coordinated.length, 1, "sent once outside the session");
  });

  test("status(endpoint) asks that endpoint only", async () => {
    const down = await refusingEndpoint();
    const good = await fakeNode(ok({ id: 1, role: "leader", term: 1, leader: 1, leaderHttp: "x", commitIndex: 0, appliedIndex: 0, members: [] }));
    const synod = client([down, good.url]);
    await assert.rejects(synod.status(down), ConnectionError);
    assert.equal(good.seen.length, 0);
    assert.equal((await synod.status()).role, "leader");
  });
});

describe("keys and endpoints", () => {
  test("each path segment of a key is percent-encoded; the node decodes the same key back", async () => {
    const node = await fakeNode(ok({ revision: 1 }));
    const synod = client([node.url]);
    const keys = ["a/b/c", "sp ace/ü/%/?#&", "a/../b", "./x", "trailing/", "//"];
    for (const key of keys) await synod.put(key, "v");
    const paths = node.seen.map((request) => request.url);
    assert.deepEqual(paths.slice(0, 3), ["/v1/kv/a/b/c", "/v1/kv/sp%20ace/%C3%BC/%25/%3F%23%26", "/v1/kv/a/%2E%2E/b"]);
    assert.deepEqual(
      paths.map((path) => decodeURIComponent(path.slice("/v1/kv/".length))),
      keys,
    );
  });

  test("an empty or ill-formed key is refused before anything is sent", async () => {
    const node = await fakeNode(ok({ revision: 1 }));
    const synod = client([node.url]);
    await assert.rejects(synod.put("", "v"), InvalidInputError);
    await assert.rejects(synod.get("bad\ud800"), InvalidInputError);
    assert.equal(node.seen.length, 0);
    assert.equal(encodeKeyPath("x/y"), "x/y");
  });

  test("a lone surrogate anywhere a key or text value goes is an InvalidInputError that names it, and nothing is sent", async () => {
    // Without the check, the range's prefix, a text value and a transaction's key would reach
    // the node as U+FFFD (URLSearchParams, Buffer.from and the node replace it silently).
    const node = await fakeNode(ok({ revision: 1 }));
    const synod = client([node.url]);
    const lone = "bad\udcffkey";
    const refusals: [Promise<unknown>, RegExp][] = [
      [synod.put(lone, "v"), /a key must be well-formed text: it holds a lone surrogate \(U\+DCFF at index 3\)/],
      [synod.get(lone), /a key/],
      [synod.delete(lone), /a key/],
      [synod.put("k", lone), /a value given as text/],
      [synod.range(lone), /the prefix/],
      [synod.range("p", { after: lone }), /after/],
      [synod.txn({ success: [{ op: "put", key: lone, value: "v" }] }), /a transaction's key/],
      [synod.txn({ compare: [{ key: "k", target: "value", op: "=", value: lone }] }), /a transaction's value/],
      [synod.cas("k", null, lone), /value/],
    ];
    for (const [call, message] of refusals) await assert.rejects(call, (error: unknown) => error instanceof InvalidInputError && message.test(error.message));
    assert.equal(node.seen.length, 0);
    // A surrogate pair (an astral character) is well-formed and goes through.
    await synod.put("emoji/\ud83d\ude00", "\ud83d\ude00");
    assert.equal(node.seen.length, 1);
  });

  test("endpoints must be http(s) origins", () => {
    assert.throws(() => new Client({ endpoints: [] }), InvalidInputError);
    assert.throws(() => new Client({ endpoints: ["127.0.0.1:7001"] }), InvalidInputError);
    assert.throws(() => new Client({ endpoints: ["http://127.0.0.1:7001/v1"] }), InvalidInputError);
    assert.throws(() => new Client({ endpoints: ["http://127.0.0.1:7001"], connectionsPerEndpoint: 0 }), InvalidInputError);
    assert.throws(() => new Client({ endpoints: ["http://127.0.0.1:7001"], retry: { backoffMsBase: 0 } }), InvalidInputError);
  });
});

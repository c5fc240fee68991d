/**
 * The HTTP layer on its own, in-process: `createHttpApi` over the real KV state machine
 * (applied directly, without consensus), so every route's parsing, query parameters and
 * answers can be checked quickly and exactly. The SDK is run against it too, to prove its
 * own requests pass the checks. Real-cluster tests are in api.test.ts.
 */
import assert from "node:assert/strict";
import type { Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Client } from "../../client/client.js";
import { NoQuorumError, SequenceSupersededError } from "../../client/errors.js";
import { NotLeaderError, NotMemberError } from "../../core/common/errors.js";
import type { KvCommand } from "../../core/kv/command.js";
import { KvStore } from "../../core/kv/store.js";
import { ALL_REACHED, fakeService, READY, type Fault } from "./fake-service.test-util.js";
import { readFileSync } from "node:fs";
import { createHttpApi, routeQueryParameters } from "./http-api.js";
import { request } from "./process-cluster.test-util.js";

describe("the HTTP API in-process", () => {
  let server: Server;
  let url: string;
  let store: KvStore;
  const writes: KvCommand[] = [];
  const fault: Fault = { refuse: null, quorum: ALL_REACHED, readiness: READY };
  before(async () => {
    store = new KvStore();
    server = createHttpApi(fakeService(store, fault, writes), { requestBodyBytesMax: 1024 * 1024 });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  async function expect400(method: string, path: string, pattern: RegExp, body?: string, headers: Record<string, string> = {}): Promise<void> {
    const answer = await request(method, `${url}${path}`, body, headers);
    assert.equal(answer.status, 400, `${method} ${path}: ${answer.text}`);
    assert.equal(answer.body["error"], "invalid_input");
    assert.match(String(answer.body["message"]), pattern, `${method} ${path}`);
  }

  test("a misspelt prevRevision is refused, naming it and what the route takes; nothing is written", async () => {
    assert.equal((await request("PUT", `${url}/v1/kv/cas`, "1")).status, 200);
    const before = writes.length;
    await expect400("PUT", "/v1/kv/cas?prevrevision=999", /unknown query parameter prevrevision: PUT \/v1\/kv\/\{key\} takes prevRevision/, "2");
    assert.equal(writes.length, before, "the would-be unconditional write never reached the log");
    assert.equal(new TextDecoder().decode(store.get("cas")?.value), "1");
    const cas = await request("PUT", `${url}/v1/kv/cas?prevRevision=999`, "2");
    assert.equal(cas.status, 409, "spelt right, it is a compare-and-set that fails");
  });

  test("every route refuses query parameters it does not take, and a parameter given twice", async () => {
    const cases: [string, string, RegExp][] = [
      ["GET", "/v1/kv/k?consistancy=stale", /unknown query parameter consistancy: GET \/v1\/kv\/\{key\} takes consistency, raw, revision/],
      ["GET", "/v1/kv?prefix=a&lmit=5", /unknown query parameter lmit: GET \/v1\/kv takes prefix, limit, after, consistency, revision/],
      ["POST", "/v1/compact?physical", /POST \/v1\/compact takes range/],
      ["GET", "/v1/watch?key=a&from=3", /unknown query parameter from: GET \/v1\/watch takes key, prefix, fromRevision, prevValue, linearizable/],
      ["DELETE", "/v1/kv/k?prefx", /unknown query parameter prefx: DELETE \/v1\/kv\/\{key\} takes prefix/],
      ["POST", "/v1/txn?dry=1&x=2", /unknown query parameters dry, x: POST \/v1\/txn takes no query parameters/],
      ["POST", "/v1/sessions?ttlMs=5", /POST \/v1\/sessions takes range/],
      ["GET", "/v1/status?verbose", /GET \/v1\/status takes no query parameters/],
      ["GET", "/v1/members?stale", /GET \/v1\/members takes consistency/],
      ["POST", "/v1/members?force", /POST \/v1\/members takes no query parameters/],
      ["DELETE", "/v1/members/3?force", /DELETE \/v1\/members\/\{id\} takes no query parameters/],
      ["POST", "/v1/members/3/promote?now", /promote takes no query parameters/],
      ["POST", "/v1/leader/transfer?to=2", /POST \/v1\/leader\/transfer takes range/],
      ["GET", "/metrics?name=x", /GET \/metrics takes no query parameters/],
      ["GET", "/healthz?x", /GET \/healthz takes no query parameters/],
      ["GET", "/readyz?x", /GET \/readyz takes no query parameters/],
      ["GET", "/v1/snapshot?consistancy=stale", /unknown query parameter consistancy: GET \/v1\/snapshot takes consistency/],
      ["GET", "/v1/kv/k?consistency=stale&consistency=linearizable", /consistency is given 2 times; give it once/],
      ["PUT", "/v1/kv/k?prevRevision=1&prevRevision=2", /prevRevision is given 2 times/],
    ];
    for (const [method, path, pattern] of cases) await expect400(method, path, pattern, method === "POST" || method === "PUT" ? "{}" : undefined, { "content-type": "application/json" });
    await expect400("DELETE", "/v1/kv/k?prevRevision=3", /a conditional delete is a transaction: POST \/v1\/txn/);
    // Methods and routes are checked before the query: a 405 says which methods, a 404 which docs.
    const wrongMethod = await request("POST", `${url}/v1/kv/k?bogus`, "v");
    assert.deepEqual([wrongMethod.status, wrongMethod.headers.get("allow")], [405, "GET, HEAD, PUT, DELETE"]);
    assert.equal((await request("GET", `${url}/v1/nothing?x`)).status, 404);
    assert.equal((await request("HEAD", `${url}/v1/status`)).status, 200);
  });

  test("docs/http-api.md's table of routes lists every route and method with exactly the query parameters it takes", () => {
    const docs = readFileSync(new URL("../../../docs/http-api.md", import.meta.url), "utf8");
    const section = docs.slice(docs.indexOf("## Routes and their query parameters"), docs.indexOf("## Keys and values"));
    const documented = new Map<string, string[]>();
    for (const [, routes, parameters] of section.matchAll(/^\| (`[^|]*) \| ([^|]*) \|$/gm)) {
      const names = (parameters as string).trim() === "none" ? [] : ((parameters as string).split(";")[0] ?? "").split(",").map((name) => name.replace(/`|\(flag\)/g, "").trim());
      for (const route of (routes as string).replace(/`/g, "").split(", ")) {
        const [methods, path] = route.split(" ") as [string, string];
        for (const method of methods.split("/")) if (method !== "HEAD") documented.set(`${method} ${path}`, names);
      }
    }
    const actual = routeQueryParameters();
    assert.deepEqual([...documented.keys()].sort(), Object.keys(actual).sort(), "the same routes and methods");
    for (const [route, names] of documented) assert.deepEqual([...names].sort(), [...(actual[route] ?? [])].sort(), route);
  });

  test("?ttl is refused, pointing to leases, not ignored", async () => {
    await expect400("PUT", "/v1/kv/k?ttl=5", /attached to a lease: grant one \(POST \/v1\/leases/, "v");
  });

  test("leases: grant, attach by PUT ?lease and by a transaction, query, list, keep alive, revoke (deleting its keys in one revision)", async () => {
    const granted = await request("POST", `${url}/v1/leases`, JSON.stringify({ ttlSeconds: 10 }));
    assert.equal(granted.status, 200, granted.text);
    const id = granted.body["id"] as number;
    assert.deepEqual(granted.body, { id, ttlSeconds: 10 });
    assert.equal((await request("PUT", `${url}/v1/kv/leased/a?lease=${id}`, "1")).status, 200);
    const txn = await request("POST", `${url}/v1/txn`, JSON.stringify({ success: [{ op: "put", key: "leased/b", value: "2", lease: id }] }), { "content-type": "application/json" });
    assert.equal(txn.status, 200, txn.text);
    const shown = await request("GET", `${url}/v1/leases/${id}`);
    assert.deepEqual(shown.body, { id, ttlSeconds: 10, remainingMs: 10_000, keys: ["leased/a", "leased/b"], moreKeys: false });
    const listed = await request("GET", `${url}/v1/leases?limit=1000`);
    assert.ok((listed.body["leases"] as { id: number }[]).some((lease) => lease.id === id));
    assert.deepEqual((await request("POST", `${url}/v1/leases/${id}/keepalive`)).body, { id, ttlSeconds: 10 });
    const revoked = await request("DELETE", `${url}/v1/leases/${id}`);
    assert.equal(revoked.status, 200);
    assert.deepEqual(revoked.body, { id, deleted: 2, revision: store.currentRevision });
    assert.equal(store.get("leased/a"), undefined);
    assert.equal(store.getAt("leased/b", store.currentRevision - 1)?.key, "leased/b", "both went in the revoke's one revision");
  });

  test("a lease that does not exist is 404 lease_not_found for a put, a transaction, a keep-alive, a revoke and a read; nothing is written", async () => {
    const before = store.currentRevision;
    const cases: [string, string, string | undefined, Record<string, string>][] = [
      ["PUT", "/v1/kv/orphan?lease=424242", "v", {}],
      ["POST", "/v1/txn", JSON.stringify({ success: [{ op: "put", key: "orphan", value: "v", lease: 424242 }] }), { "content-type": "application/json" }],
      ["POST", "/v1/leases/424242/keepalive", undefined, {}],
      ["DELETE", "/v1/leases/424242", undefined, {}],
      ["GET", "/v1/leases/424242", undefined, {}],
    ];
    for (const [method, path, body, headers] of cases) {
      const answer = await request(method, `${url}${path}`, body, headers);
      assert.equal(answer.status, 404, `${method} ${path}: ${answer.text}`);
      assert.equal(answer.body["error"], "lease_not_found");
      assert.match(String(answer.body["message"]), /lease 424242 does not exist.*grant a new one/);
    }
    assert.equal(store.currentRevision, before);
  });

  test("bad lease requests are 400 with what to send instead", async () => {
    await expect400("POST", "/v1/leases", /\{"ttlSeconds": N\}, N an integer from 1 to/, JSON.stringify({ ttl: 5 }));
    await expect400("POST", "/v1/leases", /ttlSeconds/, JSON.stringify({ ttlSeconds: 0 }));
    await expect400("POST", "/v1/leases", /ttlSeconds/, "not json");
    await expect400("GET", "/v1/leases/abc", /a lease id is a positive integer/);
    await expect400("POST", "/v1/leases/0/keepalive", /a lease id is a positive integer/);
    await expect400("PUT", "/v1/kv/k?lease=-1", /lease must be an integer from 1/, "v");
    await expect400("POST", "/v1/txn", /lease must be a lease id/, JSON.stringify({ success: [{ op: "put", key: "k", value: "v", lease: "x" }] }), { "content-type": "application/json" });
  });

  test("?revision reads a key or a range as it was; below the compaction point 410 compacted naming it; past the store's revision 400", async () => {
    const first = (await request("PUT", `${url}/v1/kv/hist/a`, "one")).body["revision"] as number;
    await request("PUT", `${url}/v1/kv/hist/b`, "bee");
    const second = (await request("PUT", `${url}/v1/kv/hist/a`, "two")).body["revision"] as number;
    const deleted = (await request("DELETE", `${url}/v1/kv/hist/b`)).body["revision"] as number;
    assert.deepEqual((await request("GET", `${url}/v1/kv/hist/a?revision=${first}`)).body, { key: "hist/a", value: "one", revision: first, createRevision: first, version: 1 });
    assert.equal((await request("GET", `${url}/v1/kv/hist/a?revision=${second}&raw`)).text, "two");
    assert.equal((await request("GET", `${url}/v1/kv/hist/a?revision=${first}&raw`)).headers.get("x-synod-revision"), String(first));
    const gone = await request("GET", `${url}/v1/kv/hist/b?revision=${deleted}`);
    assert.deepEqual([gone.status, gone.body["error"]], [404, "key_not_found"]);
    assert.match(String(gone.body["message"]), new RegExp(`does not exist at revision ${deleted}`));
    const range = await request("GET", `${url}/v1/kv?prefix=hist/&revision=${second}`);
    assert.deepEqual(range.body, { kvs: [{ key: "hist/a", value: "two", revision: second, createRevision: first, version: 2 }, { key: "hist/b", value: "bee", revision: first + 1, createRevision: first + 1, version: 1 }], more: false, revision: second });
    const paged = await request("GET", `${url}/v1/kv?prefix=hist/&revision=${second}&limit=1&after=hist/a`);
    assert.deepEqual([(paged.body["kvs"] as { key: string }[]).map((kv) => kv.key), paged.body["more"]], [["hist/b"], false]);
    const future = await request("GET", `${url}/v1/kv/hist/a?revision=${store.currentRevision + 1}`);
    assert.deepEqual([future.status, future.body["error"], future.body["revision"]], [400, "future_revision", store.currentRevision]);
    await expect400("GET", "/v1/kv/hist/a?revision=0", /revision must be an integer from 1/);
    const compacted = await request("POST", `${url}/v1/compact`, JSON.stringify({ revision: second }));
    assert.deepEqual(compacted.body, { compactRevision: second, revision: store.currentRevision });
    const below = await request("GET", `${url}/v1/kv/hist/a?revision=${first}`);
    assert.deepEqual([below.status, below.body["error"], below.body["compactRevision"]], [410, "compacted", second]);
    assert.match(String(below.body["message"]), new RegExp(`revision ${first} is compacted: the history starts at revision ${second}`));
    assert.equal((await request("GET", `${url}/v1/kv?prefix=hist/&revision=${first}`)).status, 410);
    assert.equal((await request("GET", `${url}/v1/kv/hist/a?revision=${second}&raw`)).text, "two", "the compaction revision itself stays readable");
  });

  test("POST /v1/compact takes {\"revision\": N} up to the store's revision; an older one changes nothing; bad bodies are refused before the log", async () => {
    await request("PUT", `${url}/v1/kv/compact-me`, "x");
    const revision = store.currentRevision;
    assert.deepEqual((await request("POST", `${url}/v1/compact`, JSON.stringify({ revision }))).body, { compactRevision: revision, revision });
    assert.deepEqual((await request("POST", `${url}/v1/compact`, JSON.stringify({ revision: 1 }))).body, { compactRevision: revision, revision }, "idempotent");
    const future = await request("POST", `${url}/v1/compact`, JSON.stringify({ revision: revision + 5 }));
    assert.deepEqual([future.status, future.body["error"]], [400, "future_revision"]);
    const before = writes.length;
    for (const body of ["", "{}", '{"revision": 0}', '{"revision": "3"}', '{"revision": 1.5}', "[3]", "nope"]) await expect400("POST", "/v1/compact", /compaction request is/, body);
    assert.equal(writes.length, before);
  });

  test("flags take no value, true or false; false means false; anything else is refused", async () => {
    await request("PUT", `${url}/v1/kv/flag`, "raw bytes");
    for (const flag of ["raw", "raw=", "raw=true"]) assert.equal((await request("GET", `${url}/v1/kv/flag?${flag}`)).text, "raw bytes", flag);
    const json = await request("GET", `${url}/v1/kv/flag?raw=false`);
    assert.equal(json.body["value"], "raw bytes", "raw=false gives the JSON record");
    await expect400("GET", "/v1/kv/flag?raw=yes", /raw is a flag: give it without a value, or as raw=true or raw=false, not "yes"/);
    await expect400("DELETE", "/v1/kv/flag?prefix=1", /prefix is a flag/);
    assert.deepEqual((await request("DELETE", `${url}/v1/kv/fla?prefix=false`)).body["deleted"], 0, "prefix=false: the one key fla, absent");
    assert.ok(store.get("flag") !== undefined);
  });

  test("DELETE ?prefix deletes every key under a non-empty prefix, as one write answered with the count and revision", async () => {
    for (const key of ["tree/a", "tree/b/c", "tree", "treetop"]) await request("PUT", `${url}/v1/kv/${key}`, "x");
    const before = writes.length;
    const deleted = await request("DELETE", `${url}/v1/kv/tree/?prefix`);
    assert.equal(deleted.status, 200, deleted.text);
    assert.deepEqual(deleted.body, { deleted: 2, revision: store.currentRevision });
    assert.equal(writes.length, before + 1, "one command");
    assert.deepEqual(store.range("tree", 10).map((record) => record.key), ["tree", "treetop"]);
    await expect400("DELETE", "/v1/kv/?prefix", /range delete DELETE \/v1\/kv\/\{prefix\}\?prefix with a non-empty prefix/);
    assert.deepEqual((await request("DELETE", `${url}/v1/kv/nothing-here?prefix`)).body, { deleted: 0, revision: store.currentRevision });
  });

  test("a transaction's results name their op; a delete's carries the revision; binary values go as base64", async () => {
    await request("PUT", `${url}/v1/kv/t-present`, "p");
    const body = {
      compare: [{ key: "t-present", target: "value", op: "=", value: Buffer.from("p").toString("base64"), encoding: "base64" }],
      success: [
        { op: "put", key: "t-bin", value: "AP8=", encoding: "base64" },
        { op: "get", key: "t-bin" },
        { op: "get", key: "t-absent" },
        { op: "delete", key: "t-present" },
        { op: "delete", key: "t-absent" },
      ],
    };
    const answer = await request("POST", `${url}/v1/txn`, JSON.stringify(body), { "content-type": "application/json" });
    assert.equal(answer.status, 200, answer.text);
    const revision = answer.body["revision"] as number;
    assert.deepEqual(answer.body["results"], [
      { op: "put", revision },
      { op: "get", kv: { key: "t-bin", value: "AP8=", encoding: "base64", revision, createRevision: revision, version: 1 } },
      { op: "get", kv: null },
      { op: "delete", deleted: 1, revision },
      { op: "delete", deleted: 0, revision },
    ]);
  });

  test("a transaction's unknown fields are refused, naming them (a prefix on a delete says where range deletes are)", async () => {
    const txn = (body: object): Promise<void> => expect400("POST", "/v1/txn", /./, JSON.stringify(body), { "content-type": "application/json" });
    await txn({ success: [{ op: "delete", key: "a", prefix: true }] });
    await expect400("POST", "/v1/txn", /success\[0\] has unknown field "prefix"; it takes op, key. A range delete is not part of a transaction: send DELETE \/v1\/kv\/\{prefix\}\?prefix/, JSON.stringify({ success: [{ op: "delete", key: "a", prefix: true }] }), { "content-type": "application/json" });
    await expect400("POST", "/v1/txn", /failure\[1\] has unknown field "vlaue"; it takes op, key, value, encoding/, JSON.stringify({ failure: [{ op: "get", key: "a" }, { op: "put", key: "a", value: "v", vlaue: "w" }] }), { "content-type": "application/json" });
    await expect400("POST", "/v1/txn", /compare\[0\] has unknown fields "ttl", "lease"/, JSON.stringify({ compare: [{ key: "a", target: "version", op: "=", value: 0, ttl: 1, lease: 2 }] }), { "content-type": "application/json" });
    await expect400("POST", "/v1/txn", /success\[0\] has unknown field "value"; it takes op, key/, JSON.stringify({ success: [{ op: "get", key: "a", value: "x" }] }), { "content-type": "application/json" });
    await expect400("POST", "/v1/txn", /encoding must be "base64"/, JSON.stringify({ success: [{ op: "put", key: "a", value: "x", encoding: "hex" }] }), { "content-type": "application/json" });
    await expect400("POST", "/v1/txn", /is not base64/, JSON.stringify({ success: [{ op: "put", key: "a", value: "!!", encoding: "base64" }] }), { "content-type": "application/json" });
    await expect400("POST", "/v1/txn", /encoding is only for target "value"/, JSON.stringify({ compare: [{ key: "a", target: "version", op: "=", value: 0, encoding: "base64" }] }), { "content-type": "application/json" });
  });

  test("a session write older than the session's latest is 409 sequence_superseded, saying what happened; nothing applies", async () => {
    const opened = await request("POST", `${url}/v1/sessions`);
    const session = String(opened.body["session"]);
    const headers = (sequence: number): Record<string, string> => ({ "x-synod-session": session, "x-synod-sequence": String(sequence) });
    assert.equal((await request("PUT", `${url}/v1/kv/seq`, "one", headers(1))).status, 200);
    assert.equal((await request("PUT", `${url}/v1/kv/seq`, "two", headers(2))).status, 200);
    const old = await request("PUT", `${url}/v1/kv/seq`, "one again", headers(1));
    assert.equal(old.status, 409, old.text);
    assert.equal(old.body["error"], "sequence_superseded");
    assert.equal(old.headers.get("retry-after"), null, "not something to retry");
    assert.deepEqual([old.body["session"], old.body["sequence"], old.body["latestSequence"]], [Number(session), 1, 2]);
    assert.match(String(old.body["message"]), /sequence 1 of session \d+ is older than the session's latest \(2\).*no longer known.*nothing was applied now.*the next write is sequence 3/);
    assert.equal(new TextDecoder().decode(store.get("seq")?.value), "two");
  });

  test("no leader: 503 no_quorum naming the unreachable voters when a majority is not reached, else no_leader", async () => {
    try {
      fault.refuse = new NotLeaderError(null);
      fault.quorum = { voters: [1, 2, 3], reachable: [1], quorum: false };
      const lost = await request("PUT", `${url}/v1/kv/q`, "v");
      assert.equal(lost.status, 503);
      assert.equal(lost.body["error"], "no_quorum");
      assert.match(String(lost.body["message"]), /this node reaches 1 of 3 voters, not a majority; unreachable: 2, 3/);
      assert.deepEqual(lost.body["unreachable"], [2, 3]);
      assert.equal(lost.headers.get("retry-after"), "1");
      fault.quorum = { voters: [1, 2, 3], reachable: [1, 3], quorum: true };
      const electing = await request("GET", `${url}/v1/kv/q`);
      assert.equal(electing.body["error"], "no_leader");
      assert.match(String(electing.body["message"]), /an election is under way \(this node reaches 2 of 3 voters\)/);
      fault.refuse = new NotMemberError(null);
      const removed = await request("GET", `${url}/v1/kv?prefix=a&consistency=stale`);
      assert.deepEqual([removed.status, removed.body["error"]], [503, "not_member"]);
    } finally {
      fault.refuse = null;
      fault.quorum = ALL_REACHED;
    }
  });

  test("/healthz is 200 while serving; /readyz is 200 when every check passes, else 503 naming the ones that failed", async () => {
    assert.deepEqual((await request("GET", `${url}/healthz`)).body, { ok: true });
    const ready = await request("GET", `${url}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(ready.body["ready"], true);
    try {
      fault.readiness = { checks: [{ name: "member", ok: true, detail: "a voter" }, { name: "leader", ok: false, detail: "no leader is known" }, { name: "caught_up", ok: false, detail: "applied 1 of 5000" }] };
      const notReady = await request("GET", `${url}/readyz`);
      assert.equal(notReady.status, 503);
      assert.equal(notReady.body["error"], "not_ready");
      assert.deepEqual(notReady.body["failed"], ["leader", "caught_up"]);
      assert.match(String(notReady.body["message"]), /not ready: leader \(no leader is known\); caught_up \(applied 1 of 5000\)/);
      assert.deepEqual((notReady.body["checks"] as Record<string, unknown>)["member"], { ok: true, detail: "a voter" });
      assert.equal((await request("HEAD", `${url}/readyz`)).status, 503);
    } finally {
      fault.readiness = READY;
    }
  });

  test("the SDK's own requests pass the checks: every query parameter it sends is one the route takes", async () => {
    const client = new Client({ endpoints: [url], healthCheckIntervalMs: 0, retry: { attemptsMax: 1 } });
    try {
      const { revision } = await client.put("sdk/a", "1");
      await client.put("sdk/a", "2", { prevRevision: revision });
      await client.put("sdk/b", new Uint8Array([0xff]));
      for (const consistency of ["linearizable", "lease", "stale"] as const) assert.equal((await client.get("sdk/a", { consistency }))?.version, 2);
      const page = await client.range("sdk/", { limit: 1, consistency: "stale" });
      assert.equal(page.more, true);
      assert.deepEqual((await client.range("sdk/", { limit: 10, after: page.kvs[0]?.key ?? "" })).kvs.map((kv) => kv.key), ["sdk/b"]);
      assert.equal((await client.cas("sdk/c", null, new Uint8Array([0, 0xfe]))).succeeded, true);
      assert.equal((await client.cas("sdk/c", new Uint8Array([0, 0xfe]), "text")).succeeded, true);
      const txn = await client.txn({ success: [{ op: "get", key: "sdk/c" }, { op: "delete", key: "sdk/c" }, { op: "put", key: "sdk/d", value: new Uint8Array([1]) }] });
      assert.deepEqual(txn.results.map((result) => result.op), ["get", "delete", "put"]);
      assert.deepEqual(await client.delete("sdk/", { prefix: true }), { deleted: 3, revision: store.currentRevision });
      assert.equal((await client.status()).id, 1);
      await assert.rejects(client.txn({ success: [{ op: "delete", key: "x", prefix: true } as never] }), /unknown field "prefix"/);
    } finally {
      await client.close();
    }
  });

  test("the SDK maps no_quorum to NoQuorumError and sequence_superseded to SequenceSupersededError", async () => {
    const client = new Client({ endpoints: [url], healthCheckIntervalMs: 0, sessions: false, retry: { attemptsMax: 1 } });
    try {
      fault.refuse = new NotLeaderError(null);
      fault.quorum = { voters: [1, 2, 3], reachable: [1], quorum: false };
      await assert.rejects(client.put("k", "v"), (error: unknown) => error instanceof NoQuorumError && error.code === "no_quorum" && error.unreachable.join() === "2,3");
    } finally {
      fault.refuse = null;
      fault.quorum = ALL_REACHED;
      await client.close();
    }
    const session = (await request("POST", `${url}/v1/sessions`)).body["session"] as number;
    const headers = (sequence: number): Record<string, string> => ({ "x-synod-session": String(session), "x-synod-sequence": String(sequence) });
    await request("PUT", `${url}/v1/kv/s`, "v", headers(5));
    const superseded = await request("PUT", `${url}/v1/kv/s`, "v", headers(4));
    const { errorFor } = await import("../../client/api.js");
    const error = errorFor({ endpoint: url, status: superseded.status, headers: {}, body: new TextEncoder().encode(superseded.text) });
    assert.ok(error instanceof SequenceSupersededError && error.latestSequence === 5 && error.sequence === 4, String(error));
  });

  // Found by `npm run fuzz` (target http): Node's parser answered these with a bare 400 and
  // no body, where every other refusal of the API is a JSON error a client can read.
  test("fuzz: a request Node's HTTP parser refuses is answered with a JSON error, not a bare 400", async () => {
    const port = Number(new URL(url).port);
    const cases: [string, number, string][] = [
      ["GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n", 400, "invalid_input"],
      ["G\u00e9T /v1/status HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_input"],
      ["GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "invalid_input"],
      [`GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(20_000)}\r\n\r\n`, 431, "too_large"],
    ];
    for (const [raw, status, code] of cases) {
      const answer = await rawExchange(port, raw);
      const [head = "", body = ""] = answer.split("\r\n\r\n");
      assert.match(head, new RegExp(`^HTTP/1\\.1 ${status} `), raw.slice(0, 60));
      assert.match(head, /content-type: application\/json/i);
      assert.equal((JSON.parse(body) as { error: string }).error, code, body);
    }
  });
});

/** Writes `raw` on a fresh connection and reads until the server closes it. */
function rawExchange(port: number, raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(raw, "latin1"));
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
  });
}

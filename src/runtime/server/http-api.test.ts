/**
 * The HTTP layer on its own, in-process: `createHttpApi` over the real KV state machine
 * (applied directly, without consensus), so every route's parsing, query parameters and
 * answers can be checked quickly and exactly. The SDK is run against it too, to prove its
 * own requests pass the checks. Real-cluster tests are in api.test.ts.
 */
import assert from "node:assert/strict";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Client } from "../../client/client.js";
import { NoQuorumError, SequenceSupersededError } from "../../client/errors.js";
import { NotLeaderError, NotMemberError } from "../../core/common/errors.js";
import { encodeCommand, type KvCommand } from "../../core/kv/command.js";
import { KvStore } from "../../core/kv/store.js";
import { createHttpApi, type KvService, type QuorumView, type Readiness } from "./http-api.js";
import { request } from "./process-cluster.test-util.js";

/** What a test makes the fake node do instead of serving. */
interface Fault {
  refuse: Error | null;
  quorum: QuorumView;
  readiness: Readiness;
}

/** A node without consensus: writes apply at once to a real KvStore, in the client's session or its own. */
function fakeService(store: KvStore, fault: Fault, writes: KvCommand[]): KvService {
  let index = 0;
  const apply = (command: KvCommand): ReturnType<KvStore["apply"]> => {
    writes.push(command);
    return store.apply(++index, encodeCommand(command));
  };
  return {
    write: (operation, client) => {
      if (fault.refuse !== null) return Promise.reject(fault.refuse);
      const request = client === null || client === undefined ? { clientId: 0, sequence: 0 } : client;
      return Promise.resolve(apply({ ...operation, request } as KvCommand).result);
    },
    register: () => {
      const result = apply({ op: "register", request: { clientId: 0, sequence: 0 } }).result;
      return Promise.resolve(result.op === "session" ? result.clientId : 0);
    },
    read: () => (fault.refuse === null ? Promise.resolve() : Promise.reject(fault.refuse)),
    get: (key) => store.get(key),
    range: (prefix, limit, afterKey) => {
      const records = store.range(prefix, limit + 1, afterKey === null ? {} : { after: afterKey });
      return { records: records.slice(0, limit), more: records.length > limit };
    },
    revision: () => store.currentRevision,
    status: () => ({ id: 1, role: "leader", term: 1, leader: 1, leaderHttp: null, commitIndex: index, appliedIndex: index, members: [] }),
    members: () => ({ members: [], joint: false }),
    changeMembers: () => Promise.resolve({ status: 200, body: {} }),
    transferLeadership: () => Promise.resolve({ status: 200, body: {} }),
    metrics: () => Promise.resolve({ contentType: "text/plain", body: "" }),
    quorum: () => fault.quorum,
    readiness: () => fault.readiness,
    observeRequest: () => undefined,
    logError: () => undefined,
    backup: () => Promise.reject(new Error("no backups in this test")),
  };
}

const READY: Readiness = { checks: [{ name: "member", ok: true, detail: "a voter" }, { name: "leader", ok: true, detail: "node 1 leads" }, { name: "caught_up", ok: true, detail: "applied 3 of 3" }] };
const ALL_REACHED: QuorumView = { voters: [1, 2, 3], reachable: [1, 2, 3], quorum: true };

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
      ["GET", "/v1/kv/k?consistancy=stale", /unknown query parameter consistancy: GET \/v1\/kv\/\{key\} takes consistency, raw/],
      ["GET", "/v1/kv?prefix=a&lmit=5", /unknown query parameter lmit: GET \/v1\/kv takes prefix, limit, after, consistency/],
      ["DELETE", "/v1/kv/k?prefx", /unknown query parameter prefx: DELETE \/v1\/kv\/\{key\} takes prefix/],
      ["POST", "/v1/txn?dry=1&x=2", /unknown query parameters dry, x: POST \/v1\/txn takes no query parameters/],
      ["POST", "/v1/sessions?ttlMs=5", /POST \/v1\/sessions takes no query parameters/],
      ["GET", "/v1/status?verbose", /GET \/v1\/status takes no query parameters/],
      ["GET", "/v1/members?stale", /GET \/v1\/members takes consistency/],
      ["POST", "/v1/members?force", /POST \/v1\/members takes no query parameters/],
      ["DELETE", "/v1/members/3?force", /DELETE \/v1\/members\/\{id\} takes no query parameters/],
      ["POST", "/v1/members/3/promote?now", /promote takes no query parameters/],
      ["POST", "/v1/leader/transfer?to=2", /POST \/v1\/leader\/transfer takes no query parameters/],
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

  test("?revision (history) and ?ttl (leases) are refused as not supported yet, not ignored", async () => {
    await expect400("GET", "/v1/kv/k?revision=3", /reading at a past revision is not supported yet/);
    await expect400("GET", "/v1/kv?prefix=a&revision=3", /not supported yet/);
    await expect400("PUT", "/v1/kv/k?ttl=5", /time to live are not supported yet/, "v");
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
});

/**
 * The HTTP API of a sharded node, in-process: four ranges, each a real KV state machine
 * (applied directly, as in http-api.test.ts), behind one API. Requests reach the range
 * that owns their key, listings merge every range they span in key order, what would need
 * one atomic step over several ranges is refused, a client session is of one range, and
 * the SDK finds the ranges by itself. Real sharded clusters are in sharded-cluster.test.ts.
 */
import assert from "node:assert/strict";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Client } from "../../client/client.js";
import type { KvCommand } from "../../core/kv/command.js";
import { MemoryKvBackend } from "../../core/kv/backend.js";
import { KvStore } from "../../core/kv/store.js";
import { RangeTable } from "../../core/multi/ranges.js";
import { compareUtf8 } from "../../core/common/utf8.js";
import { ALL_REACHED, fakeService, READY, type Fault } from "./fake-service.test-util.js";
import { createHttpApi, type KvService } from "./http-api.js";
import { request } from "./process-cluster.test-util.js";

/** Ranges [""-"ab"), ["ab"-"b"), ["b"-"m"), ["m"-): the prefix "a" spans the first two. */
const TABLE = new RangeTable([
  { id: 0, start: "", end: "ab", epoch: 1 },
  { id: 1, start: "ab", end: "b", epoch: 1 },
  { id: 2, start: "b", end: "m", epoch: 1 },
  { id: 3, start: "m", end: null, epoch: 1 },
]);

describe("a sharded node's HTTP API in-process", () => {
  let server: Server;
  let url: string;
  const stores = TABLE.list().map((range) => {
    const backend = new MemoryKvBackend();
    backend.span = { start: range.start, end: range.end };
    return new KvStore(backend);
  });
  const fault: Fault = { refuse: null, quorum: ALL_REACHED, readiness: READY };
  before(async () => {
    const writes: KvCommand[] = [];
    const services = stores.map((store) => fakeService(store, fault, writes));
    const service: KvService = {
      ...(services[0] as KvService),
      ranges: { table: () => TABLE, replica: (id) => services[id] },
      shards: () => ({ shards: TABLE.list() }),
    };
    server = createHttpApi(service, { requestBodyBytesMax: 1024 * 1024 });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  /** Which ranges' stores hold `key`. */
  const holders = (key: string): number[] => stores.flatMap((store, id) => (store.get(key) === undefined ? [] : [id]));

  test("a key's write and read reach the range that owns it, and only that one", async () => {
    for (const [key, range] of [["a", 0], ["aa", 0], ["ab", 1], ["azz", 1], ["b", 2], ["lemon", 2], ["m", 3], ["zebra", 3], ["\u{1f600}", 3]] as const) {
      const put = await request("PUT", `${url}/v1/kv/${encodeURIComponent(key)}`, `value of ${key}`);
      assert.equal(put.status, 200, put.text);
      assert.deepEqual(holders(key), [range], key);
      const got = await request("GET", `${url}/v1/kv/${encodeURIComponent(key)}`);
      assert.equal(got.body["value"], `value of ${key}`);
    }
  });

  test("a listing merges every range it spans in key order, pages through them, and names each range read", async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `${"aabmz"[i % 5]}${String(i).padStart(2, "0")}`);
    for (const key of keys) assert.equal((await request("PUT", `${url}/v1/kv/${key}`, key)).status, 200);
    const everyKey = stores.flatMap((store) => store.range("", 1000).map((r) => r.key)).sort(compareUtf8);
    const listed: string[] = [];
    let afterKey: string | null = null;
    for (let page = 0; page < 100; page++) {
      const answer = await request("GET", `${url}/v1/kv?prefix=&limit=7${afterKey === null ? "" : `&after=${encodeURIComponent(afterKey)}`}`);
      assert.equal(answer.status, 200, answer.text);
      const kvs = answer.body["kvs"] as { key: string }[];
      assert.ok(kvs.length <= 7);
      listed.push(...kvs.map((kv) => kv.key));
      if (answer.body["more"] !== true) break;
      afterKey = kvs.at(-1)?.key ?? null;
    }
    assert.deepEqual(listed, everyKey, "every key once, in key order");
    // A prefix inside one range reads that range only; one over two names both.
    const one = await request("GET", `${url}/v1/kv?prefix=m`);
    assert.equal(one.body["ranges"], undefined);
    assert.equal(one.body["revision"], stores[3]?.currentRevision);
    const two = await request("GET", `${url}/v1/kv?prefix=a`);
    assert.deepEqual((two.body["ranges"] as { id: number }[]).map((r) => r.id), [0, 1]);
    assert.deepEqual((two.body["kvs"] as { key: string }[]).map((kv) => kv.key), everyKey.filter((key) => key.startsWith("a")));
  });

  test("a transaction, a prefix delete, a watch or a listing at a revision over several ranges is refused with cross_range, and nothing is written", async () => {
    const before = stores.map((store) => store.currentRevision);
    const txn = await request("POST", `${url}/v1/txn`, JSON.stringify({ success: [{ op: "put", key: "aa", value: "1" }, { op: "put", key: "b1", value: "2" }] }), { "content-type": "application/json" });
    assert.equal(txn.status, 400);
    assert.equal(txn.body["error"], "cross_range");
    assert.deepEqual((txn.body["ranges"] as { id: number }[]).map((r) => r.id), [0, 2]);
    const deleted = await request("DELETE", `${url}/v1/kv/a?prefix`);
    assert.equal(deleted.body["error"], "cross_range");
    const watch = await request("GET", `${url}/v1/watch?prefix=a`);
    assert.equal(watch.body["error"], "cross_range");
    const atRevision = await request("GET", `${url}/v1/kv?prefix=a&revision=1`);
    assert.equal(atRevision.body["error"], "cross_range");
    assert.deepEqual(stores.map((store) => store.currentRevision), before);
    // Within one range, each is served by that range.
    const inOne = await request("POST", `${url}/v1/txn`, JSON.stringify({ success: [{ op: "put", key: "b1", value: "1" }, { op: "put", key: "c1", value: "2" }] }), { "content-type": "application/json" });
    assert.equal(inOne.status, 200, inOne.text);
    assert.deepEqual([holders("b1"), holders("c1")], [[2], [2]]);
    assert.equal((await request("DELETE", `${url}/v1/kv/c?prefix`)).body["deleted"], 1);
  });

  test("a client session is of one range: a write of a key elsewhere is refused with range_mismatch naming the key's range", async () => {
    const inFirst = await request("POST", `${url}/v1/sessions`);
    assert.equal(inFirst.body["range"], 0);
    const session = String(inFirst.body["session"]);
    const mismatch = await request("PUT", `${url}/v1/kv/lime`, "x", { "x-synod-session": session, "x-synod-sequence": "1" });
    assert.equal(mismatch.status, 409, mismatch.text);
    assert.equal(mismatch.body["error"], "range_mismatch");
    assert.deepEqual(mismatch.body["range"], { id: 2, start: "b", end: "m", epoch: 1 });
    assert.deepEqual(holders("lime"), []);
    const inThird = await request("POST", `${url}/v1/sessions?range=2`);
    assert.equal(inThird.body["range"], 2);
    const headers = { "x-synod-session": String(inThird.body["session"]), "x-synod-sequence": "1", "x-synod-range": "2" };
    assert.equal((await request("PUT", `${url}/v1/kv/lime`, "x", headers)).status, 200);
    assert.deepEqual(holders("lime"), [2]);
    // The same sequence again is the same write, answered, not applied twice.
    const revision = stores[2]?.currentRevision;
    assert.equal((await request("PUT", `${url}/v1/kv/lime`, "x", headers)).status, 200);
    assert.equal(stores[2]?.currentRevision, revision);
    const wrongName = await request("PUT", `${url}/v1/kv/apple`, "x", headers);
    assert.equal(wrongName.body["error"], "range_mismatch");
    assert.equal((await request("PUT", `${url}/v1/kv/apple`, "x", { ...headers, "x-synod-range": "two" })).status, 400);
  });

  test("a compaction names its range; the ranges are listed at GET /v1/shards", async () => {
    const unnamed = await request("POST", `${url}/v1/compact`, JSON.stringify({ revision: 1 }));
    assert.equal(unnamed.status, 400);
    assert.match(String(unnamed.body["message"]), /name the range with \?range=ID/);
    assert.equal((await request("POST", `${url}/v1/compact?range=9`, JSON.stringify({ revision: 1 }))).body["error"], "range_not_found");
    // A session's range is one a client learned from the cluster: above every id this node
    // knows, it may be a range born of a split this node has not applied yet, so a 503 to retry.
    const unheard = await request("POST", `${url}/v1/sessions?range=9`);
    assert.equal(unheard.status, 503);
    assert.equal(unheard.body["error"], "range_not_ready");
    assert.match(String(unheard.body["message"]), /has not heard of range 9 yet/);
    const unheardWrite = await request("PUT", `${url}/v1/kv/apple`, "x", { "x-synod-session": "1", "x-synod-sequence": "1", "x-synod-range": "9" });
    assert.equal(unheardWrite.body["error"], "range_not_ready");
    const compacted = await request("POST", `${url}/v1/compact?range=3`, JSON.stringify({ revision: 1 }));
    assert.equal(compacted.status, 200, compacted.text);
    assert.equal(stores[3]?.compactRevision, 1);
    assert.equal(stores[2]?.compactRevision, 0);
    const shards = await request("GET", `${url}/v1/shards`);
    assert.deepEqual(shards.body["shards"], TABLE.list());
  });

  test("the SDK writes in sessions of each key's range, learning the ranges from the first range_mismatch", async () => {
    const client = new Client({ endpoints: [url], healthCheckIntervalMs: 0 });
    try {
      const keys = ["aardvark", "abacus", "bison", "moose", "yak", "aa2", "boar"];
      for (const key of keys) await client.put(key, `sdk ${key}`);
      for (const key of keys) assert.deepEqual(holders(key), [TABLE.forKey(key).id], key);
      await client.txn({ success: [{ op: "put", key: "moose", value: "again" }] });
      await client.delete("yak");
      assert.deepEqual(holders("yak"), []);
      const stats = client.stats();
      assert.equal(stats.rangeRefreshes, 1, "one read of the ranges");
      assert.equal(stats.sessionsOpened, 4, "one session per range written");
      assert.equal(stats.sessionsExpired, 0);
    } finally {
      await client.close();
    }
  });
});

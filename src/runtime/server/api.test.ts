/**
 * The v1 API's contract on real node processes, end to end through the SDK where a user
 * would use it: every kind of transaction operation; range deletes; a session's older
 * sequence; health and readiness; the metrics' names; a learner's and a removed node's reads;
 * and, on a second cluster, what a node says when a quorum is lost. http-api.test.ts checks
 * the HTTP layer's parsing in-process.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "../../client/client.js";
import { NoQuorumError, SequenceSupersededError } from "../../client/errors.js";
import { ProcessCluster, request, sleep } from "./process-cluster.test-util.js";

const text = (bytes: Uint8Array | undefined): string | undefined => (bytes === undefined ? undefined : new TextDecoder().decode(bytes));

/** Polls `check` until it returns a value (not undefined), at most `timeoutMs`; the last failure explains. */
async function eventually<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

describe("the v1 API on a real cluster", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  let client: Client;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 3, spare: 1 });
    await cluster.waitForLeader(10_000, [1, 2, 3]);
    client = new Client({ endpoints: [1, 2, 3].map((id) => cluster.node(id).http), healthCheckIntervalMs: 200 });
  });
  after(async () => {
    await client.close();
    await cluster.close();
  });

  test("a transaction of every operation kind through the SDK: put, get of a present and an absent key, delete of a present and an absent key; then the failure branch", async () => {
    await client.put("txn/present", "here");
    await client.put("txn/doomed", "going");
    const doomed = await client.get("txn/doomed");
    const answer = await client.txn({
      compare: [{ key: "txn/present", target: "value", op: "=", value: "here" }, { key: "txn/absent", target: "version", op: "=", value: 0 }],
      success: [
        { op: "put", key: "txn/new", value: new Uint8Array([0, 0xff]) },
        { op: "get", key: "txn/present" },
        { op: "get", key: "txn/absent" },
        { op: "delete", key: "txn/doomed" },
        { op: "delete", key: "txn/absent" },
        { op: "get", key: "txn/new" },
      ],
    });
    assert.equal(answer.succeeded, true);
    assert.ok(answer.revision > (doomed?.revision ?? 0));
    const [put, present, absent, deleted, deletedAbsent, readBack] = answer.results;
    assert.deepEqual(put, { op: "put", revision: answer.revision });
    assert.equal(present?.op === "get" ? text(present.kv?.value) : null, "here");
    assert.deepEqual(absent, { op: "get", kv: null, forgotten: false });
    assert.deepEqual(deleted, { op: "delete", deleted: 1, revision: answer.revision }, "the delete was applied and says so: no invalid_response");
    assert.deepEqual(deletedAbsent, { op: "delete", deleted: 0, revision: answer.revision });
    assert.deepEqual(readBack?.op === "get" ? [...(readBack.kv?.value ?? [])] : null, [0, 0xff], "a get sees the put before it; bytes round-trip");
    assert.equal(await client.get("txn/doomed"), null);
    // Applied once: the SDK did not see an error and send it again.
    assert.equal((await client.get("txn/new"))?.version, 1);
    const failed = await client.txn({
      compare: [{ key: "txn/present", target: "revision", op: "<", value: 1 }],
      success: [{ op: "delete", key: "txn/present" }],
      failure: [{ op: "get", key: "txn/doomed" }, { op: "delete", key: "txn/new" }],
    });
    assert.equal(failed.succeeded, false);
    assert.deepEqual(failed.results, [
      { op: "get", kv: null, forgotten: false },
      { op: "delete", deleted: 1, revision: failed.revision },
    ]);
    assert.equal(text((await client.get("txn/present"))?.value), "here", "the success branch did not run");
  });

  test("a misspelt query parameter is refused before anything reaches the log; a txn delete with a prefix likewise", async () => {
    const url = cluster.node(2).http;
    const { revision } = await client.put("cas", "1");
    const typo = await request("PUT", `${url}/v1/kv/cas?prevrevision=999`, "2");
    assert.equal(typo.status, 400, typo.text);
    assert.match(String(typo.body["message"]), /unknown query parameter prevrevision: PUT \/v1\/kv\/\{key\} takes prevRevision/);
    const txn = await request("POST", `${url}/v1/txn`, JSON.stringify({ success: [{ op: "delete", key: "cas", prefix: true }] }), { "content-type": "application/json" });
    assert.equal(txn.status, 400, txn.text);
    // Nothing reached the state machine: the key is as the put left it. (The commit index is
    // no witness: the leader's clock entries commit whenever they are due.)
    const after = await client.get("cas");
    assert.equal(text(after?.value), "1");
    assert.equal(after?.revision, revision, "nothing was applied to the key");
  });

  test("DELETE ?prefix and client.delete(prefix) delete every key under the prefix on every node, as one revision", async () => {
    for (const key of ["dir/a", "dir/b/c", "dir/é", "dir", "dirt"]) await client.put(key, "x");
    const answer = await request("DELETE", `${cluster.node(3).http}/v1/kv/dir/?prefix`);
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body["deleted"], 3);
    for (const id of [1, 2, 3]) {
      const left = await request("GET", `${cluster.node(id).http}/v1/kv?prefix=dir&consistency=linearizable`);
      assert.deepEqual((left.body["kvs"] as { key: string }[]).map((kv) => kv.key), ["dir", "dirt"], `node ${id}`);
      assert.equal(left.body["revision"], answer.body["revision"], `node ${id}: one revision for the whole delete`);
    }
    const viaSdk = await client.delete("dir", { prefix: true });
    assert.equal(viaSdk.deleted, 2);
    assert.deepEqual(await client.delete("dir", { prefix: true }), { deleted: 0, revision: viaSdk.revision });
  });

  test("a session write older than the session's latest: 409 sequence_superseded on any node, a typed SDK error, and nothing applied", async () => {
    const opened = await request("POST", `${cluster.node(1).http}/v1/sessions`);
    const session = String(opened.body["session"]);
    const headers = (sequence: number): Record<string, string> => ({ "x-synod-session": session, "x-synod-sequence": String(sequence) });
    assert.equal((await request("PUT", `${cluster.node(1).http}/v1/kv/seq`, "1", headers(1))).status, 200);
    assert.equal((await request("PUT", `${cluster.node(2).http}/v1/kv/seq`, "2", headers(2))).status, 200);
    for (const id of [1, 2, 3]) {
      const late = await request("PUT", `${cluster.node(id).http}/v1/kv/seq`, "late", headers(1));
      assert.equal(late.status, 409, `node ${id}: ${late.text}`);
      assert.equal(late.body["error"], "sequence_superseded");
      assert.equal(late.body["latestSequence"], 2);
      assert.match(String(late.body["message"]), /older than the session's latest \(2\).*nothing was applied now/);
    }
    const record = await client.get("seq");
    assert.deepEqual([text(record?.value), record?.version], ["2", 2], "the late copies changed nothing");
    const { errorFor } = await import("../../client/api.js");
    const late = await request("DELETE", `${cluster.node(3).http}/v1/kv/seq`, undefined, headers(1));
    assert.ok(errorFor({ endpoint: cluster.node(3).http, status: late.status, headers: {}, body: new TextEncoder().encode(late.text) }) instanceof SequenceSupersededError);
  });

  test("/healthz and /readyz on healthy members; /metrics names counters *_total and has leader changes, key count and database size", async () => {
    for (const id of [1, 2, 3]) {
      const health = await request("GET", `${cluster.node(id).http}/healthz`);
      assert.deepEqual([health.status, health.body], [200, { ok: true }]);
      const ready = await eventually(`node ${id} ready`, 5000, async () => {
        const answer = await request("GET", `${cluster.node(id).http}/readyz`);
        return answer.status === 200 ? answer : undefined;
      });
      assert.deepEqual(Object.keys(ready.body["checks"] as object), ["member", "leader", "caught_up"]);
    }
    const url = cluster.node(1).http;
    await request("GET", `${url}/v1/kv/seq?consistency=linearizable`);
    const metrics = (await request("GET", `${url}/metrics`)).text;
    const types = new Map([...metrics.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => [match[1] as string, match[2] as string]));
    const counters = [...types].filter(([, type]) => type === "counter").map(([name]) => name);
    assert.ok(counters.length > 5, metrics.slice(0, 500));
    assert.deepEqual(counters.filter((name) => !name.endsWith("_total")), [], "every counter ends in _total");
    const value = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(metrics)?.[1] ?? NaN);
    assert.equal(types.get("synod_raft_leader_changes_total"), "counter");
    assert.ok(value("synod_raft_leader_changes_total") >= 1, "this node saw the first leader take office");
    const all = await client.range("", { limit: 1000 });
    assert.equal(types.get("synod_kv_keys"), "gauge");
    assert.equal(value("synod_kv_keys"), all.kvs.length);
    assert.ok(value("synod_kv_database_size_bytes") > 0);
    // Summed over peers: a follower may never have sent a frame to the other follower (it
    // answers only the leader), so the first peer's line alone can be 0 on a healthy node.
    const framesSent = [...metrics.matchAll(/^synod_peer_frames_sent_total\{[^}]*\} (\S+)$/gm)].reduce((sum, match) => sum + Number(match[1]), 0);
    assert.ok(framesSent > 0, "node 1 sent frames to its peers");
    assert.match(metrics, /^synod_http_request_duration_seconds_count\{route="\/v1\/kv\/\{key\}",status="200"\} \d+/m);
  });

  test("a learner serves stale reads; a removed node serves no read of any consistency (503 not_member) and is not ready", async () => {
    const url = cluster.node(1).http;
    const added = await request("POST", `${url}/v1/members`, JSON.stringify({ id: 4, peer: cluster.peerAddress(4), http: cluster.node(4).http, learner: true, promote: "manual" }), { "content-type": "application/json" });
    assert.equal(added.status, 200, added.text);
    cluster.joinNode(4, url);
    await client.put("for-the-learner", "yes");
    const learner = cluster.node(4).http;
    const read = await eventually("the learner's stale read", 15_000, async () => {
      const answer = await request("GET", `${learner}/v1/kv/for-the-learner?consistency=stale`);
      return answer.status === 200 ? answer : undefined;
    });
    assert.equal(read.body["value"], "yes");
    assert.equal((await request("GET", `${learner}/readyz`)).status, 200, "a learner is a member");
    const removed = await request("DELETE", `${url}/v1/members/4`);
    assert.equal(removed.status, 200, removed.text);
    await eventually("node 4 knows it was removed", 10_000, async () => ((await request("GET", `${learner}/v1/kv/for-the-learner?consistency=stale`)).status === 503 ? true : undefined));
    for (const path of ["/v1/kv/for-the-learner?consistency=stale", "/v1/kv/for-the-learner?consistency=lease", "/v1/kv/for-the-learner", "/v1/kv/absent-key?consistency=stale", "/v1/kv?prefix=&consistency=stale", "/v1/members?consistency=stale"]) {
      const answer = await request("GET", `${learner}${path}`);
      assert.deepEqual([answer.status, answer.body["error"]], [503, "not_member"], `${path}: ${answer.text}`);
    }
    const notReady = await request("GET", `${learner}/readyz`);
    assert.equal(notReady.status, 503);
    assert.ok((notReady.body["failed"] as string[]).includes("member"), notReady.text);
    assert.equal((await request("GET", `${learner}/healthz`)).status, 200, "alive, though not ready");
  });
});

describe("a cluster that lost its quorum", { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    await cluster.waitForLeader();
  });
  after(async () => cluster.close());

  test("with 2 of 3 killed, the survivor answers 503 no_quorum naming the voters it cannot reach; the SDK says NoQuorumError", async () => {
    await cluster.kill(2);
    await cluster.kill(3);
    const url = cluster.node(1).http;
    // Once an election timeout has passed, the survivor knows no leader.
    const answer = await eventually("no_quorum from node 1", 15_000, async () => {
      const read = await request("GET", `${url}/v1/kv/k`);
      return read.body["error"] === "no_quorum" ? read : undefined;
    });
    assert.equal(answer.status, 503);
    assert.match(String(answer.body["message"]), /this node reaches 1 of 3 voters, not a majority; unreachable: 2, 3/);
    assert.deepEqual(answer.body["unreachable"], [2, 3]);
    const write = await request("PUT", `${url}/v1/kv/k`, "v");
    assert.deepEqual([write.status, write.body["error"]], [503, "no_quorum"], write.text);
    const ready = await request("GET", `${url}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(String(ready.body["message"]), /leader \(no leader: no quorum reachable \(unreachable voters: 2, 3\)\)/);
    const client = new Client({ endpoints: [1, 2, 3].map((id) => cluster.node(id).http), healthCheckIntervalMs: 0, timeoutMs: 3000, retry: { attemptsMax: 4, backoffMsBase: 10, backoffMsMax: 50 } });
    try {
      await assert.rejects(client.put("k", "v"), (error: unknown) => error instanceof NoQuorumError && error.code === "no_quorum" && error.unreachable.join() === "2,3");
    } finally {
      await client.close();
    }
  });
});

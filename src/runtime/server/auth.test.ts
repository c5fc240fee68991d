/**
 * Users, roles and permissions against real node processes: set up with the CLI as the docs
 * show, then every route refuses strangers (401) and users without the permission (403), and
 * a property test that no request of a user without a permission on a prefix changes or
 * reveals a key under it.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { Client } from "../../client/client.js";
import { ProcessCluster, request, runSynod } from "./process-cluster.test-util.js";

const basic = (user: string, password: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` });
const ROOT = basic("root", "rootpw");
const ALICE = basic("alice", "alicepw");
const JSON_BODY = { "content-type": "application/json" };

describe("auth: users and roles on a real cluster", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  let url: string;
  let endpoints: string;

  async function synod(...args: string[]): Promise<string> {
    const run = await runSynod([...args, "--endpoints", endpoints], 30_000);
    assert.equal(run.code, 0, `synod ${args.join(" ")}: ${run.output}`);
    return run.output;
  }

  before(async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    await cluster.waitForLeader();
    url = cluster.node(1).http;
    endpoints = cluster.nodes.map((node) => node.http).join(",");
    // A secret written before auth is enabled, which alice must never see or change.
    assert.equal((await request("PUT", `${url}/v1/kv/secret/plan`, "s3cret")).status, 200);
    // The commands that do not depend on one another at once (each is a process: about 0.4 s
    // here), the grants of one role one after the other.
    await Promise.all([synod("user", "add", "root", "--password", "rootpw"), synod("role", "add", "reader"), synod("user", "add", "alice", "--password", "alicepw")]);
    await Promise.all([synod("user", "grant", "root", "root"), synod("user", "grant", "alice", "reader"), synod("role", "grant", "reader", "--prefix", "app/", "--read")]);
    await synod("role", "grant", "reader", "--prefix", "app/own/", "--read", "--write");
    await synod("auth", "enable");
    assert.equal((await request("PUT", `${url}/v1/kv/app/x`, "hello", ROOT)).status, 200);
  });
  after(async () => cluster.close());

  test("strangers get 401 (with a challenge); health checks stay open", async () => {
    const answer = await request("GET", `${url}/v1/kv/app/x`);
    assert.equal(answer.status, 401);
    assert.equal(answer.body["error"], "unauthenticated");
    assert.equal((await request("GET", `${url}/v1/kv/app/x`, undefined, basic("alice", "wrong"))).status, 401);
    assert.equal((await request("GET", `${url}/v1/kv/app/x`, undefined, { authorization: "Bearer sy1.forged.sig" })).status, 401);
    assert.equal((await request("GET", `${url}/healthz`)).status, 200);
    // The dashboard's stream is a read of the cluster's state: any user, not a stranger.
    assert.equal((await request("GET", `${url}/v1/dashboard/stream`)).status, 401);
    assert.equal((await fetch(`${url}/v1/dashboard/stream`, { method: "HEAD", headers: ALICE })).status, 200);
    // Breaking the cluster from the dashboard is an admin's: a user is refused before anything is looked at.
    assert.equal((await request("POST", `${url}/v1/debug/faults`, JSON.stringify({ isolate: true, durationMs: 1000 }), ALICE)).status, 403);
    assert.equal((await request("POST", `${url}/v1/debug/cluster`, JSON.stringify({ node: 2, action: "kill" }), ALICE)).status, 403);
    assert.equal((await request("POST", `${url}/v1/debug/faults`, JSON.stringify({ isolate: true, durationMs: 1000 }), ROOT)).status, 409, "root passes, and meets the flag that is off");
    assert.equal((await request("GET", `${url}/readyz`)).status, 200);
    assert.equal((await request("GET", `${url}/v1/auth/status`)).body["enabled"], true);
    const refused = await runSynod(["get", "app/x", "--endpoints", endpoints], 30_000);
    assert.equal(refused.code, 2, `the CLI without --user is refused as a usage error: ${refused.output}`);
    assert.match(refused.output, /unauthenticated/);
  });

  test("a user is served by its roles, on every node", async () => {
    for (const node of cluster.nodes) {
      assert.equal((await request("GET", `${node.http}/v1/kv/app/x?consistency=stale`, undefined, ALICE)).status, 200);
      assert.equal((await request("PUT", `${node.http}/v1/kv/app/x`, "mine", ALICE)).status, 403);
      assert.equal((await request("PUT", `${node.http}/v1/kv/app/own/${node.id}`, "mine", ALICE)).status, 200);
    }
    const denied = await request("GET", `${url}/v1/kv/secret/plan`, undefined, ALICE);
    assert.equal(denied.status, 403);
    assert.equal(denied.body["error"], "permission_denied");
    assert.equal((await request("GET", `${url}/v1/kv?prefix=`, undefined, ALICE)).status, 403, "a range wider than the permission");
    assert.equal((await request("GET", `${url}/v1/kv?prefix=app/`, undefined, ALICE)).status, 200);
    assert.equal((await request("GET", `${url}/v1/watch?prefix=secret/`, undefined, ALICE)).status, 403);
    const txn = JSON.stringify({ compare: [], success: [{ op: "put", key: "secret/plan", value: "x" }], failure: [] });
    assert.equal((await request("POST", `${url}/v1/txn`, txn, { ...ALICE, ...JSON_BODY })).status, 403);
    assert.equal((await request("POST", `${url}/v1/compact`, JSON.stringify({ revision: 1 }), ALICE)).status, 403);
    assert.equal((await request("POST", `${url}/v1/leader/transfer`, "{}", ALICE)).status, 403);
    assert.equal((await request("GET", `${url}/v1/snapshot`, undefined, ALICE)).status, 403);
    assert.equal((await request("GET", `${url}/v1/auth/users`, undefined, ALICE)).status, 403);
    assert.equal((await request("GET", `${url}/v1/auth/users/alice`, undefined, ALICE)).status, 200, "a user reads its own entry");
    assert.equal((await request("GET", `${cluster.node(2).http}/v1/kv/secret/plan`, undefined, ROOT)).text.length > 0, true);
  });

  test("admin requests sent to a follower carry the caller's credentials to the leader", async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((node) => node.id !== leader) as (typeof cluster.nodes)[number];
    assert.equal((await request("POST", `${follower.http}/v1/leader/transfer`, "{}", ALICE)).status, 403);
    const moved = await request("POST", `${follower.http}/v1/leader/transfer`, JSON.stringify({ to: follower.id }), ROOT);
    assert.equal(moved.status, 200, moved.text);
  });

  test("a token works until the user's password changes; the SDK authenticates with a user and password", async () => {
    const issued = await request("POST", `${url}/v1/auth/authenticate`, JSON.stringify({ name: "alice", password: "alicepw" }));
    assert.equal(issued.status, 200, issued.text);
    const bearer = { authorization: `Bearer ${String(issued.body["token"])}` };
    assert.equal((await request("GET", `${url}/v1/kv/app/x`, undefined, bearer)).status, 200);
    const client = new Client({ endpoints: cluster.nodes.map((node) => node.http), auth: { user: "alice", password: "alicepw" } });
    try {
      await client.put("app/own/sdk", "v");
      assert.equal(Buffer.from((await client.get("app/own/sdk"))?.value ?? []).toString(), "v");
      await assert.rejects(client.put("secret/plan", "x"), (error: Error & { status?: number }) => /permission/.test(error.message));
    } finally {
      await client.close();
    }
    await synod("user", "add", "alice", "--password", "newpw", "--user", "root:rootpw");
    const stale = await request("GET", `${url}/v1/kv/app/x`, undefined, bearer);
    assert.equal(stale.status, 401, "the old token stopped working");
    assert.equal((await request("GET", `${url}/v1/kv/app/x`, undefined, ALICE)).status, 401, "so did the old password");
    assert.equal((await request("GET", `${url}/v1/kv/app/x`, undefined, basic("alice", "newpw"))).status, 200);
    await synod("user", "add", "alice", "--password", "alicepw", "--user", "root:rootpw");
  });

  test("property: no request of a user without a permission on secret/ changes or reveals a key under it", async () => {
    const keys = ["secret/plan", "secret/x", "secret/", "app/x", "app/own/y", "other"];
    const paths = fc.oneof(
      fc.constantFrom(...keys).map((key) => `/v1/kv/${encodeURIComponent(key)}`),
      fc.constantFrom("", "s", "secret", "secret/", "app/", "app/own/").map((prefix) => `/v1/kv?prefix=${encodeURIComponent(prefix)}`),
      fc.constantFrom(...keys).map((key) => `/v1/kv/${encodeURIComponent(key)}?prefix=true`),
      fc.constant("/v1/txn"),
      fc.constant("/v1/snapshot"),
      fc.constant("/v1/leases/1"),
    );
    const txnBodies = fc.constantFrom(...keys).chain((key) =>
      fc.constantFrom(
        JSON.stringify({ compare: [{ key, target: "value", op: "=", value: "s3cret" }], success: [{ op: "get", key }], failure: [] }),
        JSON.stringify({ compare: [], success: [{ op: "delete", key }], failure: [] }),
        JSON.stringify({ compare: [], success: [{ op: "put", key, value: "pwned" }], failure: [{ op: "get", key }] }),
      ),
    );
    let served = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("GET", "PUT", "DELETE", "POST"), paths, txnBodies, fc.constantFrom(ALICE, {}, basic("alice", "guess")), async (method, path, txn, credentials) => {
        const body = method === "PUT" ? "pwned" : method === "POST" ? txn : undefined;
        const answer = await request(method, `${url}${path}`, body, { ...credentials, ...JSON_BODY });
        if (answer.status < 300) served++;
        assert.ok(!answer.text.includes("s3cret") && !answer.text.includes(Buffer.from("s3cret").toString("base64")), `${method} ${path} revealed the secret: ${answer.text}`);
      }),
      { numRuns: 150, seed: 2026 },
    );
    const secret = await request("GET", `${url}/v1/kv/secret/plan?raw=true`, undefined, ROOT);
    assert.equal(secret.text, "s3cret", "the secret is unchanged");
    const listed = await request("GET", `${url}/v1/kv?prefix=secret/`, undefined, ROOT);
    assert.deepEqual((listed.body["kvs"] as { key: string }[]).map((record) => record.key), ["secret/plan"], "nothing was added under secret/");
    assert.ok(served > 0, "some requests were served: the property did not pass by refusing everything");
  });

  test("auth survives a restart of every node (it is in the log, snapshots and the store)", async () => {
    for (const node of cluster.nodes) await cluster.kill(node.id);
    for (const node of cluster.nodes) cluster.startNode(node.id);
    await cluster.waitForLeader(20_000);
    assert.equal((await request("GET", `${url}/v1/kv/app/x`)).status, 401);
    assert.equal((await request("GET", `${url}/v1/kv/app/x`, undefined, ALICE)).status, 200);
    await synod("auth", "disable", "--user", "root:rootpw");
    assert.equal((await request("GET", `${url}/v1/kv/secret/plan`)).status, 200, "with auth disabled, everything is open again");
  });
});

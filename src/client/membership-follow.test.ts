// The SDK's Client and the proxy follow a real cluster's membership (ClusterRouter asks
// `GET /v1/members`): a cluster of three grows a fourth node, then loses node 1, and a
// Client given only nodes 1-3 serves throughout, routes to node 4 and stops routing to
// node 1; the proxy, given the same three, lists node 4 in its stats.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { pino } from "pino";
import { createProxyRouter, ProxyServer } from "../runtime/proxy/proxy.js";
import { ProcessCluster, request, sleep } from "../runtime/server/process-cluster.test-util.js";
import { Client } from "./client.js";

async function until(what: string, timeoutMs: number, done: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(100);
  }
}

async function voters(url: string): Promise<number[]> {
  const answer = await request("GET", `${url}/v1/members`);
  const members = (answer.body["members"] ?? []) as { id: number; role: string }[];
  return members.filter((member) => member.role === "voter").map((member) => member.id).sort();
}

describe("following the membership of a real cluster", { timeout: 120_000 }, () => {
  test("grown 3→4, then node 1 removed: a Client seeded with nodes 1-3 keeps serving, routes to node 4 and not to node 1; the proxy's stats list node 4", async () => {
    const cluster = await ProcessCluster.start({ size: 3, spare: 1 });
    after(() => cluster.close());
    await cluster.waitForLeader(10_000, [1, 2, 3]);
    const seeds = [1, 2, 3].map((id) => cluster.node(id).http);
    const client = new Client({ endpoints: seeds, healthCheckIntervalMs: 200 });
    after(() => client.close());
    const router = createProxyRouter({ endpoints: seeds.map((url) => ({ url, weight: 1 })), strategy: "round-robin", healthCheckIntervalMs: 200, ejectionMsBase: 1000, slowStartWindowMs: 0 });
    const proxy = await ProxyServer.start({ listen: { host: "127.0.0.1", port: 0 }, endpoints: seeds, router, log: pino({ level: "silent" }) });
    after(() => proxy.close());

    // Writes and linearizable reads through the Client for the whole test.
    let writing = true;
    const failures: string[] = [];
    let acknowledged = 0;
    const load = (async () => {
      for (let i = 0; writing; i++) {
        try {
          await client.put(`follow/${i}`, `v${i}`);
          await client.get(`follow/${i}`);
          acknowledged++;
        } catch (error) {
          failures.push(String(error));
        }
        await sleep(10);
      }
    })();
    // A failed assertion must not leave the load running (the test would never end).
    after(() => (writing = false));

    const node4 = cluster.node(4).http;
    cluster.joinNode(4, seeds[0] as string);
    await until("node 4 is a voter", 30_000, async () => (await voters(seeds[1] as string)).includes(4));
    const endpointsOf = (): string[] => client.stats().router.endpoints.map((endpoint) => endpoint.id);
    await until("the Client routes to node 4", 10_000, () => endpointsOf().includes(node4));

    const removal = await request("DELETE", `${seeds[1] as string}/v1/members/1`);
    assert.equal(removal.status, 200, removal.text);
    await until("the Client no longer routes to node 1", 10_000, () => !endpointsOf().includes(seeds[0] as string));
    assert.deepEqual(endpointsOf().sort(), [seeds[1], seeds[2], node4].sort());

    // Stale reads spread over the members: node 4, never among the seeds, serves some. The
    // picker (p2c) prefers the node with the better latency, and node 4 has just caught up:
    // it may lose every pick for a moment, so the reads go on (bounded) until it wins one.
    const served = (): number => client.stats().router.endpoints.find((endpoint) => endpoint.id === node4)?.requests ?? 0;
    const before = served();
    let reads = 0;
    for (const deadline = Date.now() + 10_000; served() === before && reads < 1000 && Date.now() < deadline; reads++) {
      await client.get("follow/0", { consistency: "stale" });
      await sleep(5);
    }
    assert.ok(served() > before, `node 4 served none of ${reads} stale reads`);

    writing = false;
    await load;
    assert.deepEqual(failures, [], "every call succeeded through the changes");
    assert.ok(acknowledged > 20, `${acknowledged} writes acknowledged`);

    const proxied = async (): Promise<string[]> => ((await request("GET", `${proxy.url}/v1/proxy/stats`)).body["endpoints"] as { id: string }[]).map((endpoint) => endpoint.id);
    await until("the proxy lists node 4 and not node 1", 10_000, async () => {
      const ids = await proxied();
      return ids.includes(node4) && !ids.includes(seeds[0] as string);
    });
    const write = await request("PUT", `${proxy.url}/v1/kv/through-proxy`, "v");
    assert.equal(write.status, 200, write.text);
  });
});

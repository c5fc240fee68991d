/**
 * Leases on real processes: a lease not kept alive disappears within its time to live plus
 * one election timeout (the node's default: 10 to 20 ticks of 50 ms, at most 1 s), and not
 * before its time to live; a lease the SDK keeps alive survives kill -9 of the leader.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "../../client/client.js";
import { ProcessCluster, request, sleep } from "./process-cluster.test-util.js";

const ELECTION_TIMEOUT_MS_MAX = 20 * 50;

describe("leases on a 3-node cluster of real processes", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    await cluster.waitForLeader();
  });
  after(async () => {
    await cluster.close();
  });

  test("a lease not kept alive disappears within its time to live plus one election timeout, on every node, not before its time to live", async () => {
    const leader = cluster.node(await cluster.waitForLeader());
    const sentAtMs = Date.now();
    const granted = await request("POST", `${leader.http}/v1/leases`, JSON.stringify({ ttlSeconds: 2 }));
    assert.equal(granted.status, 200, granted.text);
    const id = granted.body["id"] as number;
    assert.equal((await request("PUT", `${leader.http}/v1/kv/lapse/a?lease=${id}`, "1")).status, 200);
    const ackedAtMs = Date.now();
    let goneAtMs = 0;
    while (goneAtMs === 0 && Date.now() - ackedAtMs < 10_000) {
      const read = await request("GET", `${leader.http}/v1/kv/lapse/a`);
      if (read.status === 404) goneAtMs = Date.now();
      else await sleep(25);
    }
    assert.ok(goneAtMs > 0, "the key never went");
    assert.ok(goneAtMs - sentAtMs >= 2000, `gone ${goneAtMs - sentAtMs} ms after the grant was sent: before its time to live`);
    assert.ok(goneAtMs - ackedAtMs <= 2000 + ELECTION_TIMEOUT_MS_MAX, `gone ${goneAtMs - ackedAtMs} ms after the grant: later than its time to live plus an election timeout`);
    assert.equal((await request("GET", `${leader.http}/v1/leases/${id}`)).status, 404);
    // Every node deleted it, at the same revision: the delete is in the history of each.
    await sleep(300);
    const revisions = await Promise.all(cluster.nodes.map(async (node) => {
      const stale = await request("GET", `${node.http}/v1/kv/lapse/a?consistency=stale`);
      assert.equal(stale.status, 404, `node ${node.id} still has the key`);
      return (await request("GET", `${node.http}/v1/kv?prefix=lapse/&consistency=stale`)).body["revision"];
    }));
    assert.equal(new Set(revisions).size, 1, `revisions ${revisions.join(", ")}`);
  });

  test("a lease the SDK keeps alive survives kill -9 of the leader; released, it then lapses", async () => {
    const client = new Client({ endpoints: cluster.nodes.map((node) => node.http), timeoutMs: 5000 });
    try {
      // A time to live a few election timeouts long: the holder must find the new leader
      // and be acknowledged before its own deadline (etcd's minimum is 1.5 election timeouts).
      const lease = await client.lease(4);
      await client.put("held/a", "1", { lease });
      const killed = await cluster.waitForLeader();
      await cluster.kill(killed);
      const survivors = cluster.nodes.map((node) => node.id).filter((id) => id !== killed);
      const leader = await cluster.waitForLeader(10_000, survivors);
      // Twice its time to live, across the failover.
      await sleep(8000);
      assert.ok(lease.alive, `the SDK still holds it: ${await Promise.race([lease.lost.then((error) => `${error.reason} ${error.message}`), sleep(1).then(() => "not lost")])}`);
      assert.equal(await Promise.race([lease.lost.then((error) => error.message), sleep(1).then(() => null)]), null);
      assert.equal((await request("GET", `${cluster.node(leader).http}/v1/kv/held/a`)).status, 200, "the key is still there");
      lease.release();
      const releasedAtMs = Date.now();
      let gone = false;
      while (!gone && Date.now() - releasedAtMs < 4000 + ELECTION_TIMEOUT_MS_MAX + 2000) {
        gone = (await request("GET", `${cluster.node(leader).http}/v1/kv/held/a`)).status === 404;
        if (!gone) await sleep(50);
      }
      assert.ok(gone, "released, it lapsed");
      assert.ok(Date.now() - releasedAtMs <= 4000 + ELECTION_TIMEOUT_MS_MAX + 100, `lapsed ${Date.now() - releasedAtMs} ms after the last keep-alive could have been sent`);
      cluster.startNode(killed);
    } finally {
      await client.close();
    }
  });
});

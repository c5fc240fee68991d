/**
 * Real processes, real TCP, real files: a three-node cluster of `synod node` processes,
 * written to and read from over HTTP, killed with SIGKILL and restarted.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ProcessCluster, request, sleep, CONSENSUS_UNDER_TEST } from "./process-cluster.test-util.js";

/** A write is acknowledged when a node answered 200; only those must survive. */
async function putAnywhere(cluster: ProcessCluster, ids: readonly number[], key: string, value: string, attemptsMax = 20): Promise<boolean> {
  for (let attempt = 0; attempt < attemptsMax; attempt++) {
    const id = ids[attempt % ids.length] as number;
    const answer = await request("PUT", `${cluster.node(id).http}/v1/kv/${key}`, value);
    if (answer.status === 200) return true;
    if (answer.status === 503 && answer.body["error"] === "timeout") return false; // outcome unknown: not acknowledged
    await sleep(50);
  }
  return false;
}

async function readEverywhere(cluster: ProcessCluster, ids: readonly number[], key: string): Promise<(string | null)[]> {
  return Promise.all(
    ids.map(async (id) => {
      const answer = await request("GET", `${cluster.node(id).http}/v1/kv/${key}?consistency=linearizable`);
      if (answer.status === 404) return null;
      assert.equal(answer.status, 200, `node ${id} answered ${answer.status} ${answer.text}`);
      return answer.body["value"] as string;
    }),
  );
}

for (const consensus of CONSENSUS_UNDER_TEST) {
  describe(`a three-node cluster of real processes (${consensus})`, { timeout: 120_000 }, () => {
    let cluster: ProcessCluster;
    before(async () => {
      cluster = await ProcessCluster.start({ consensus, size: 3 });
      await cluster.waitForLeader();
    });
    after(async () => cluster.close());

    test("a write through any node is readable, linearizably, from every node", async () => {
      for (let i = 0; i < 30; i++) {
        const id = (i % 3) + 1;
        const answer = await request("PUT", `${cluster.node(id).http}/v1/kv/any-${i}`, `value-${i}`);
        assert.equal(answer.status, 200, answer.text);
        assert.ok(typeof answer.body["revision"] === "number");
      }
      for (let i = 0; i < 30; i++) assert.deepEqual(await readEverywhere(cluster, [1, 2, 3], `any-${i}`), [`value-${i}`, `value-${i}`, `value-${i}`]);
      const status = await cluster.status(1);
      assert.ok(status !== null && status.leaderHttp !== null, "status names the leader's HTTP address");
    });

    test("kill -9 the leader: a new leader within 3 s, writes go on, nothing acknowledged is lost, and it catches up on restart", async (t) => {
      const oldLeader = await cluster.waitForLeader();
      const survivors = [1, 2, 3].filter((id) => id !== oldLeader);
      const acknowledged: string[] = [];
      for (let i = 0; i < 20; i++) if (await putAnywhere(cluster, [1, 2, 3], `failover-${i}`, `before-${i}`)) acknowledged.push(`failover-${i}`);
      assert.equal(acknowledged.length, 20);

      const killedAt = Date.now();
      await cluster.kill(oldLeader);
      const newLeader = await cluster.waitForLeader(3000, survivors);
      const electedMs = Date.now() - killedAt;
      assert.ok(electedMs < 3000, `a new leader took ${electedMs} ms`);
      t.diagnostic(`a new leader ${electedMs} ms after the kill`);
      assert.notEqual(newLeader, oldLeader);

      for (let i = 20; i < 40; i++) if (await putAnywhere(cluster, survivors, `failover-${i}`, `after-${i}`)) acknowledged.push(`failover-${i}`);
      assert.ok(acknowledged.length >= 35, `writes continue after the failover (${acknowledged.length} of 40 acknowledged)`);
      for (const key of acknowledged) {
        const values = await readEverywhere(cluster, survivors, key);
        for (const value of values) assert.ok(value !== null, `${key} was acknowledged and must survive, got ${JSON.stringify(values)}`);
      }

      cluster.startNode(oldLeader);
      const deadline = Date.now() + 10_000;
      let caughtUp = false;
      while (!caughtUp && Date.now() < deadline) {
        const last = acknowledged[acknowledged.length - 1] as string;
        const answer = await request("GET", `${cluster.node(oldLeader).http}/v1/kv/${last}?consistency=stale`);
        caughtUp = answer.status === 200;
        if (!caughtUp) await sleep(100);
      }
      assert.ok(caughtUp, "the restarted node caught up with the writes it missed");
      for (const key of acknowledged) {
        const answer = await request("GET", `${cluster.node(oldLeader).http}/v1/kv/${key}?consistency=stale`);
        assert.equal(answer.status, 200, `${key} on the restarted node: ${answer.text}`);
      }
    });

    test("restart every node: all data is still there", async () => {
      for (let i = 0; i < 10; i++) assert.ok(await putAnywhere(cluster, [1, 2, 3], `durable-${i}`, `kept-${i}`));
      for (const node of cluster.nodes) await cluster.kill(node.id);
      for (const node of cluster.nodes) cluster.startNode(node.id);
      await cluster.waitForLeader(10_000);
      for (let i = 0; i < 10; i++) assert.deepEqual(await readEverywhere(cluster, [1, 2, 3], `durable-${i}`), [`kept-${i}`, `kept-${i}`, `kept-${i}`]);
      for (let i = 0; i < 30; i++) assert.deepEqual(await readEverywhere(cluster, [1], `any-${i}`), [`value-${i}`]);
    });
  });
}

/**
 * Members of a sharded cluster of real processes: three `synod node`s with `--shards 2`, one
 * range split; a fourth node joins with `--join` and becomes a replica of every range, the
 * ones the split made included (it learns of them from their leaders); it then counts
 * toward every range's quorum while another node is down; removed, it leaves every range.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ProcessCluster, request, sleep, type ShardView } from "./process-cluster.test-util.js";

/** Waits until node `via` sees `count` ranges, each led and with exactly `replicas`; returns them. */
async function rangesWith(cluster: ProcessCluster, via: number, count: number, replicas: readonly number[], timeoutMs: number): Promise<ShardView[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const shards = await cluster.shards(via);
    if (shards !== null && shards.length === count && shards.every((s) => s.leader !== null && JSON.stringify(s.replicas) === JSON.stringify(replicas))) return shards;
    if (Date.now() > deadline) throw new Error(`node ${via} does not see ${count} ranges with replicas ${replicas.join(",")} after ${timeoutMs} ms: ${JSON.stringify(shards)}`);
    await sleep(100);
  }
}

async function put(cluster: ProcessCluster, via: number, key: string, value: string): Promise<void> {
  let answer = await request("PUT", `${cluster.node(via).http}/v1/kv/${key}`, value);
  // 503 while an election settles: retried, as the answer says.
  for (let retry = 0; answer.status === 503 && retry < 50; retry++) {
    await sleep(100);
    answer = await request("PUT", `${cluster.node(via).http}/v1/kv/${key}`, value);
  }
  assert.equal(answer.status, 200, `${key}: ${answer.text}`);
}

describe("members of a sharded cluster (--shards 2)", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 3, spare: 1, flags: ["--shards", "2"] });
    await rangesWith(cluster, 1, 2, [1, 2, 3], 15_000);
  });
  after(async () => cluster.close());

  test("a node that joins becomes a replica of every range, split ones included; it counts toward their quorums; removed, it leaves them all", async (t) => {
    for (let i = 0; i < 40; i++) await put(cluster, 1 + (i % 3), `k-${String(i).padStart(3, "0")}`, `v${i}`);
    const split = await request("POST", `${cluster.node(1).http}/v1/shards/1/split`, JSON.stringify({ key: "k-020" }), { "content-type": "application/json" });
    assert.equal(split.status, 200, split.text);

    const joinedAt = Date.now();
    cluster.joinNode(4, cluster.node(1).http);
    await rangesWith(cluster, 1, 3, [1, 2, 3, 4], 30_000);
    // Node 4 holds every range, with the same keys as the others.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const mine = await cluster.shards(4);
      const theirs = await cluster.shards(1);
      if (mine !== null && theirs !== null && mine.length === 3 && mine.every((s, i) => s.start === theirs[i]?.start && s.keys === theirs[i]?.keys && s.leader !== null)) break;
      if (Date.now() > deadline) assert.fail(`node 4 did not catch up on every range: ${JSON.stringify(mine)} against ${JSON.stringify(theirs)}`);
      await sleep(100);
    }
    t.diagnostic(`node 4 joined and holds every range ${Date.now() - joinedAt} ms after it started`);
    for (const i of [0, 19, 20, 39]) {
      const key = `k-${String(i).padStart(3, "0")}`;
      const answer = await request("GET", `${cluster.node(4).http}/v1/kv/${key}?consistency=stale`);
      assert.equal(answer.body["value"], `v${i}`, key);
    }

    // With node 2 down, every range still commits: node 4 is one of its three voters of four.
    await cluster.kill(2);
    await rangesWith(cluster, 1, 3, [1, 2, 3, 4], 10_000);
    for (const key of ["a-after", "k-005-after", "k-030-after"]) await put(cluster, 4, key, "four");

    // Removed, node 4 leaves every range (node 2 still down: each keeps 2 of its 3 voters).
    let removed = await request("DELETE", `${cluster.node(1).http}/v1/members/4`);
    for (let retry = 0; removed.status === 503 && retry < 50; retry++) {
      await sleep(100);
      removed = await request("DELETE", `${cluster.node(1).http}/v1/members/4`);
    }
    assert.equal(removed.status, 200, removed.text);
    await rangesWith(cluster, 1, 3, [1, 2, 3], 10_000);
    await put(cluster, 1, "k-031-after", "three");

    // Node 2 comes back and catches up on every range.
    cluster.startNode(2);
    await rangesWith(cluster, 2, 3, [1, 2, 3], 15_000);
    // Linearizable, through node 2: 503 while its replicas settle after the restart (an election, a snapshot to install), retried as the answer says.
    let back = await request("GET", `${cluster.node(2).http}/v1/kv/k-031-after`);
    for (let retry = 0; back.status === 503 && retry < 50; retry++) {
      await sleep(100);
      back = await request("GET", `${cluster.node(2).http}/v1/kv/k-031-after`);
    }
    assert.equal(back.status, 200, back.text);
    assert.equal(back.body["value"], "three");
  });
});

/**
 * Snapshots on real processes: nodes that snapshot every few entries compact their logs; a
 * follower that was down while the leader compacted is brought back with the leader's
 * snapshot; and every node recovers from snapshot plus log after a restart.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ProcessCluster, request, sleep, type Status, CONSENSUS_UNDER_TEST } from "./process-cluster.test-util.js";

for (const consensus of CONSENSUS_UNDER_TEST) {
  describe(`snapshots and log compaction on real nodes (${consensus})`, { timeout: 90_000 }, () => {
    let cluster: ProcessCluster;
    before(async () => {
      cluster = await ProcessCluster.start({ consensus, size: 3, flags: ["--snapshot-entries", "40"] });
      await cluster.waitForLeader();
    });
    after(async () => cluster.close());

    test("a follower that missed compacted entries catches up from the leader's snapshot", async () => {
      const leader = await cluster.waitForLeader();
      const lagging = [1, 2, 3].find((id) => id !== leader) as number;
      await cluster.kill(lagging);
      const live = [1, 2, 3].filter((id) => id !== lagging);
      for (let i = 0; i < 200; i++) {
        const answer = await request("PUT", `${cluster.node(live[i % 2] as number).http}/v1/kv/snap-${i % 50}`, `value-${i}`);
        assert.equal(answer.status, 200, answer.text);
      }
      // The leader holds compaction for a follower it last heard from within an election
      // timeout (one a little behind is cheaper to catch up from the log); once it counts
      // the killed one as gone, it compacts.
      const snapshotIndex = async (): Promise<number> => ((await request("GET", `${cluster.node(leader).http}/v1/status`)).body as unknown as Status & { snapshotIndex: number }).snapshotIndex;
      for (let waited = 0; (await snapshotIndex()) === 0 && waited < 5000; waited += 100) await sleep(100);
      assert.ok((await snapshotIndex()) > 0, "the leader compacted its log");
      // A snapshot's file is written before its compaction removes the older one: two may
      // coexist for a moment, never more, and once the writes stop one remains.
      const snapshotFiles = (): string[] => readdirSync(join(cluster.node(leader).dataDir, "snap")).filter((name) => name.endsWith(".snap"));
      assert.ok(snapshotFiles().length <= 2, snapshotFiles().join(", "));
      for (let waited = 0; snapshotFiles().length > 1 && waited < 2000; waited += 50) await sleep(50);
      assert.equal(snapshotFiles().length, 1, `old snapshots are removed: ${snapshotFiles().join(", ")}`);

      cluster.startNode(lagging);
      const deadline = Date.now() + 15_000;
      let caughtUp = false;
      while (!caughtUp && Date.now() < deadline) {
        const answer = await request("GET", `${cluster.node(lagging).http}/v1/kv/snap-49?consistency=stale`);
        caughtUp = answer.status === 200 && answer.body["value"] === "value-199";
        if (!caughtUp) await sleep(100);
      }
      assert.ok(caughtUp, `the lagging node caught up:\n${cluster.node(lagging).output.slice(-3000)}`);
      const metrics = (await request("GET", `${cluster.node(lagging).http}/metrics`)).text;
      assert.match(metrics, /^synod_snapshots_installed_total [1-9]/m, "it caught up through a snapshot, not the log");
      for (let i = 150; i < 200; i++) {
        const answer = await request("GET", `${cluster.node(lagging).http}/v1/kv/snap-${i % 50}?consistency=stale`);
        assert.equal(answer.body["value"], `value-${i}`);
      }
    });

    test("every node recovers from its snapshot and the log after it", async () => {
      for (let i = 0; i < 30; i++) assert.equal((await request("PUT", `${cluster.node(1).http}/v1/kv/late-${i}`, `late-${i}`)).status, 200);
      for (const node of cluster.nodes) await cluster.kill(node.id);
      for (const node of cluster.nodes) cluster.startNode(node.id);
      await cluster.waitForLeader(10_000);
      for (const node of cluster.nodes) {
        for (let i = 0; i < 30; i += 7) assert.equal((await request("GET", `${node.http}/v1/kv/late-${i}`)).body["value"], `late-${i}`);
        assert.equal((await request("GET", `${node.http}/v1/kv/snap-49`)).body["value"], "value-199");
      }
    });
  });
}

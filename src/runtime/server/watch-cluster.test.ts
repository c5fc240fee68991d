/**
 * History and watches on real node processes: a watcher through kill -9 of the node it
 * reads from sees every change exactly once, in order, as the cluster committed it; the
 * killed node, brought back by a snapshot (log compaction is frequent here), holds the same
 * history; compaction refuses what is below it (410), and a backup carries the history; a
 * node with --history-revisions compacts by itself.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "../../client/client.js";
import { CompactedError } from "../../client/errors.js";
import type { WatchEvent } from "../../client/watch.js";
import { KvStore } from "../../core/kv/store.js";
import { readBackup } from "../storage/backup-file.js";
import { ProcessCluster, request, sleep, within } from "./process-cluster.test-util.js";

const WRITES = 300;
const KILL_AFTER = 100;

/** Polls `check` until it returns a value, at most `timeoutMs`. */
async function eventually<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

const brief = (event: WatchEvent): string => `${event.revision} ${event.type} ${event.key} ${new TextDecoder().decode(event.value)}`;

describe("watch and history on a real cluster", { timeout: 240_000 }, () => {
  let cluster: ProcessCluster;
  let writer: Client;
  before(async () => {
    // Snapshots every ~100 entries, so a node killed for a few hundred writes comes back through one.
    cluster = await ProcessCluster.start({ size: 3, flags: ["--snapshot-entries", "100", "--history-revisions", "0"] });
    await cluster.waitForLeader(15_000);
    writer = new Client({ endpoints: cluster.nodes.map((node) => node.http), healthCheckIntervalMs: 200, membersIntervalMs: 0 });
  });
  after(async () => {
    await writer.close();
    await cluster.close();
  });

  test("a watcher through kill -9 of the node it reads from sees every change exactly once, in revision order", async () => {
    const start = (await writer.put("watched/start", "0")).revision + 1;
    const watcher = new Client({ endpoints: cluster.nodes.map((node) => node.http), healthCheckIntervalMs: 200, membersIntervalMs: 0, retry: { backoffMsBase: 20, backoffMsMax: 200 } });
    const watch = watcher.watch("watched/", { prefix: true, fromRevision: start });
    const seen: WatchEvent[] = [];
    const done = (async () => {
      for await (const event of watch) {
        seen.push(event);
        if (event.key === "watched/end") return;
      }
    })();
    const written: number[] = [];
    let victim: number | null = null;
    let victimLastIndex = 0;
    for (let i = 0; i < WRITES; i++) {
      written.push((await writer.put(`watched/${i}`, `v${i}`)).revision);
      if (i === KILL_AFTER) {
        // The node serving the watch, as its status says; then kill -9.
        victim = await eventually("the node serving the watch", 10_000, async () => {
          for (const node of cluster.nodes) if (((await cluster.status(node.id)) as { watchers?: number } | null)?.watchers === 1) return node.id;
          return undefined;
        });
        victimLastIndex = ((await cluster.status(victim)) as { lastIndex?: number } | null)?.lastIndex ?? 0;
        await cluster.kill(victim);
      }
    }
    const end = (await writer.put("watched/end", "done")).revision;
    await within(done, 60_000, () => assert.fail(`the watch did not reach the end: ${seen.length} changes, last ${seen.at(-1)?.revision}`));
    assert.ok(watch.stats.reconnects >= 1, "it moved to another node");
    const survivor = cluster.nodes.find((node) => node.id !== victim) as { http: string };
    // What the cluster committed, replayed from history on a node that was never killed.
    const replay = new Client({ endpoints: [survivor.http], healthCheckIntervalMs: 0, membersIntervalMs: 0 });
    const expected: WatchEvent[] = [];
    for await (const event of replay.watch("watched/", { prefix: true, fromRevision: start })) {
      expected.push(event);
      if (event.revision === end) break;
    }
    await replay.close();
    assert.deepEqual(seen.map(brief), expected.map(brief), "the same changes, once each, in the same order");
    for (const revision of written) assert.ok(seen.some((event) => event.revision === revision), `the acknowledged write at ${revision} was seen`);
    const revisions = seen.map((event) => event.revision);
    assert.deepEqual(revisions, [...revisions].sort((a, b) => a - b));
    assert.equal(watch.stats.duplicatesDropped, 0);
    assert.equal(watch.revision, end);
    watch.close();
    await watcher.close();

    // The killed node comes back (through a snapshot: its peers compacted their logs meanwhile) with the same history.
    assert.ok(victim !== null);
    // Only once both survivors compacted past what it holds: a live follower a little behind
    // holds a compaction back, and a node back early could still catch up from the log.
    const survivors = cluster.nodes.filter((node) => node.id !== victim).map((node) => node.id);
    await eventually(`both survivors compacted past index ${victimLastIndex}`, 30_000, async () => {
      for (const id of survivors) if ((((await cluster.status(id)) as { snapshotIndex?: number } | null)?.snapshotIndex ?? 0) <= victimLastIndex) return undefined;
      return true;
    });
    cluster.startNode(victim);
    const back = cluster.node(victim).http;
    await eventually("the restarted node caught up", 30_000, async () => (((await cluster.status(victim as number)) as { revision?: number } | null)?.revision ?? 0) >= end || undefined);
    const metrics = await (await fetch(`${back}/metrics`)).text();
    assert.match(metrics, /^synod_snapshots_installed_total [1-9]/m, "it was brought back by the leader's snapshot, so the history below came in it");
    const early = written[5] as number;
    const onIt = await request("GET", `${back}/v1/kv/watched/5?revision=${early}&consistency=stale`);
    assert.deepEqual([onIt.status, onIt.body["value"], onIt.body["revision"]], [200, "v5", early], onIt.text);
    const atStart = await request("GET", `${back}/v1/kv?prefix=watched/&revision=${start}&consistency=stale&limit=1000`);
    assert.deepEqual((atStart.body["kvs"] as { key: string }[]).map((kv) => kv.key), ["watched/0", "watched/start"], "the range as it was at the start");
  });

  test("compaction: reads and watches below it are 410 naming it; the history kept is in a backup", async () => {
    const before = (await writer.put("c/a", "old")).revision;
    const kept = (await writer.put("c/a", "new")).revision;
    await writer.put("c/b", "other");
    assert.deepEqual(await writer.compact(kept), { compactRevision: kept, revision: (await writer.range("c/")).revision });
    await assert.rejects(writer.get("c/a", { revision: before }), (error: unknown) => error instanceof CompactedError && error.compactRevision === kept);
    const raw = await request("GET", `${cluster.node(1).http}/v1/watch?prefix=c/&fromRevision=${before}`);
    assert.deepEqual([raw.status, raw.body["error"], raw.body["compactRevision"]], [410, "compacted", kept]);
    const watch = writer.watch("c/", { prefix: true, fromRevision: before });
    await assert.rejects(watch.next(), CompactedError);
    const latest = await writer.watch("c/", { prefix: true, fromRevision: kept }).next();
    assert.equal(latest.value?.revision, kept, "the compaction revision itself is still watchable");
    // A backup carries the history and the compaction point.
    const backup = await fetch(`${cluster.node(1).http}/v1/snapshot`);
    const { data } = readBackup(new Uint8Array(await backup.arrayBuffer()), "the backup");
    const restored = KvStore.restore(data);
    assert.equal(restored.compactRevision, kept);
    assert.equal(new TextDecoder().decode(restored.getAt("c/a", kept)?.value), "new");
    assert.throws(() => restored.getAt("c/a", before), /compacted/);
  });
});

describe("retention: a node keeping --history-revisions compacts by itself", { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 1, flags: ["--history-revisions", "20"] });
    await cluster.waitForLeader(10_000);
  });
  after(async () => {
    await cluster.close();
  });

  test("the leader proposes compactions that keep the last 20 revisions (and at most a tenth more)", async () => {
    const client = new Client({ endpoints: [cluster.node(1).http], healthCheckIntervalMs: 0, membersIntervalMs: 0 });
    try {
      let last = 0;
      for (let i = 0; i < 60; i++) last = (await client.put(`r/${i % 5}`, String(i))).revision;
      const compactRevision = await eventually("a compaction keeping the last 20 revisions", 10_000, async () => {
        const status = (await cluster.status(1)) as { compactRevision?: number } | null;
        const point = status?.compactRevision ?? 0;
        return point >= last - 22 ? point : undefined;
      });
      const revision = ((await cluster.status(1)) as unknown as { revision: number }).revision;
      assert.ok(compactRevision >= last - 22 && revision - compactRevision >= 20, `compacted at ${compactRevision} of ${revision}`);
      await assert.rejects(client.get("r/0", { revision: 1 }), CompactedError);
      assert.ok((await client.get("r/0", { revision: revision - 20 })) !== null);
    } finally {
      await client.close();
    }
  });
});

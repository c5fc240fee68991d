/**
 * A range moved to a node after it split, with real processes: four `synod node`s with
 * `--shards 3 --replicas 3`. The new replica is hosted with no state over the keys the range
 * holds now; the range's log still starts before the split (no snapshot yet: a range
 * snapshots every 100,000 entries), and entries from before the split applied over the
 * narrower span would build another state (writes to keys that moved away refused, the
 * split itself refused), with other revisions and another epoch. It must start from its
 * leader's snapshot instead (EngineOptions.awaitSnapshot), here and after a kill -9. The
 * node it moved from keeps a tombstone of its replica (SharedLog.drop): restarted, it does
 * not host the range, and moved back, it holds what the others hold.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "../../client/client.js";
import { ProcessCluster, request, sleep, type ShardView } from "./process-cluster.test-util.js";

const KEYS = Array.from({ length: 8 }, (_, i) => `p${i}`);

type Placed = ShardView & { readonly voters?: readonly number[]; readonly learners?: readonly number[]; readonly spanSince?: number };

interface Read {
  readonly value: string;
  readonly revision: number;
  readonly createRevision: number;
  readonly version: number;
}

describe("a range moved to a node after it split", { timeout: 150_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 4, flags: ["--shards", "3", "--replicas", "3"] });
    await cluster.waitForRangeLeaders(3);
  });
  after(async () => cluster.close());

  /** Key `key` as node `id`'s own replica holds it (a stale read), or null until it has it. */
  async function localRead(id: number, key: string): Promise<Read | null> {
    const answer = await request("GET", `${cluster.node(id).http}/v1/kv/${key}?consistency=stale`).catch(() => null);
    if (answer?.status !== 200) return null;
    return { value: String(answer.body["value"]), revision: Number(answer.body["revision"]), createRevision: Number(answer.body["createRevision"]), version: Number(answer.body["version"]) };
  }

  /** Waits until node `id` holds every key of `expected` with its value; returns what it holds. */
  async function caughtUp(id: number, expected: ReadonlyMap<string, Read>, timeoutMs: number): Promise<Map<string, Read | null>> {
    const deadline = Date.now() + timeoutMs;
    let held = new Map<string, Read | null>();
    while (Date.now() < deadline) {
      held = new Map(await Promise.all([...expected.keys()].map(async (key) => [key, await localRead(id, key)] as const)));
      if ([...expected].every(([key, read]) => held.get(key)?.value === read.value)) break;
      await sleep(200);
    }
    return held;
  }

  test("the new replica holds what the others hold, revisions and epoch included, and still after a kill -9", async (t) => {
    const client = new Client({ endpoints: [1, 2, 3, 4].map((id) => cluster.node(id).http), timeoutMs: 8000 });
    try {
      // Two writes to each key, so revisions and versions move on.
      for (const round of ["a", "b"]) for (const key of KEYS) await client.put(key, `${round}-${key}`);
      const before = (await cluster.shards(1)) as Placed[];
      const range = before.find((shard) => shard.id !== 0 && shard.start <= "p0" && (shard.end === null || "p7" < shard.end));
      assert.ok(range !== undefined, `one range holds the keys: ${JSON.stringify(before)}`);
      const split = await request("POST", `${cluster.node(1).http}/v1/shards/${range.id}/split`, JSON.stringify({ key: "p4" }));
      assert.equal(split.status, 200, JSON.stringify(split.body));
      const kept = KEYS.filter((key) => key < "p4");
      // Move a replica of the split range to the node that has none (placement may move it meanwhile: try again).
      let moved: { readonly from: number; readonly to: number } | null = null;
      for (let attempt = 0; attempt < 20 && moved === null; attempt++) {
        const shards = (await cluster.shards(1)) as Placed[];
        const now = shards.find((shard) => shard.id === range.id);
        const voters = now?.voters ?? now?.replicas ?? [];
        const to = [1, 2, 3, 4].find((id) => !voters.includes(id));
        const from = voters.find((id) => id !== now?.leader);
        if (now !== undefined && voters.length === 3 && (now.learners?.length ?? 0) === 0 && to !== undefined && from !== undefined) {
          const answer = await request("POST", `${cluster.node(1).http}/v1/shards/${range.id}/move`, JSON.stringify({ from, to }));
          if (answer.status === 200) moved = { from, to };
          else t.diagnostic(`move ${from} -> ${to}: ${answer.status} ${JSON.stringify(answer.body)}`);
        }
        if (moved === null) await sleep(500);
      }
      assert.ok(moved !== null, "a replica of the split range moved");
      const shards = (await cluster.shards(1)) as Placed[];
      const leader = shards.find((shard) => shard.id === range.id)?.leader;
      assert.ok(typeof leader === "number" && leader !== moved.to);
      // The index the split set the range's span at, as its leader's replica keeps it: the new replica's comes with the snapshot.
      const spanSince = ((await cluster.shards(leader)) as Placed[] | null)?.find((shard) => shard.id === range.id)?.spanSince;
      assert.ok(typeof spanSince === "number" && spanSince > 0, `the split range's span index: ${String(spanSince)}`);
      const expected = new Map<string, Read>();
      for (const key of kept) {
        const read = await localRead(leader, key);
        assert.ok(read !== null, key);
        expected.set(key, read);
      }
      const check = async (when: string): Promise<void> => {
        const held = await caughtUp(moved?.to ?? 0, expected, 30_000);
        for (const [key, read] of expected) assert.deepEqual(held.get(key), read, `${when}: node ${moved?.to}'s ${key} against its leader's`);
        // Its table is whole once it has heard its peers describe the ranges it does not host (a moment after a restart).
        let described: Placed | undefined;
        for (const deadline = Date.now() + 10_000; Date.now() < deadline && described?.epoch !== range.epoch + 1; await sleep(200)) {
          const view = (await request("GET", `${cluster.node(moved?.to ?? 0).http}/v1/shards`).catch(() => null))?.body["shards"] as Placed[] | undefined;
          described = view?.find((shard) => shard.id === range.id);
        }
        assert.equal(described?.epoch, range.epoch + 1, `${when}: node ${moved?.to} holds the range at the epoch the split made`);
        assert.equal(described?.spanSince, spanSince, `${when}: node ${moved?.to} holds the index the split set the span at`);
      };
      await check("moved");
      // A write after the move has the same revision everywhere.
      await client.put("p1", "c-p1");
      expected.set("p1", (await caughtUp(leader, new Map([["p1", { value: "c-p1", revision: 0, createRevision: 0, version: 0 }]]), 10_000)).get("p1") as Read);
      await check("written after");
      await cluster.kill(moved.to);
      cluster.startNode(moved.to);
      try {
        await check("restarted");
      } catch (error) {
        t.diagnostic(`node ${moved.to}'s output: ${cluster.node(moved.to).output.slice(-4000)}`);
        throw error;
      }
      // The node it moved from dropped its replica and kept a tombstone (its hard state alone):
      // restarted, it does not host the range; moved back, it starts from the tombstone and
      // its leader's snapshot, and holds what the others hold.
      const from = moved.from;
      const hosts = async (id: number): Promise<boolean> => ((await cluster.status(id).catch(() => null)) as { ranges?: { id: number; hosted?: boolean }[] } | null)?.ranges?.some((view) => view.id === range.id && view.hosted !== false) ?? true;
      for (const deadline = Date.now() + 15_000; Date.now() < deadline && (await hosts(from)); ) await sleep(200);
      assert.equal(await hosts(from), false, `node ${from} dropped its replica`);
      await cluster.kill(from);
      cluster.startNode(from);
      for (const deadline = Date.now() + 15_000; Date.now() < deadline && (await cluster.status(from).catch(() => null)) === null; ) await sleep(200);
      await sleep(1000);
      assert.equal(await hosts(from), false, `node ${from}, restarted, does not host the range it left`);
      let back = false;
      for (let attempt = 0; attempt < 20 && !back; attempt++) {
        const now = ((await cluster.shards(1)) as Placed[]).find((shard) => shard.id === range.id);
        const voters = now?.voters ?? now?.replicas ?? [];
        const away = voters.find((id) => id !== now?.leader && id !== from);
        if (now !== undefined && voters.length === 3 && !voters.includes(from) && (now.learners?.length ?? 0) === 0 && away !== undefined) {
          const answer = await request("POST", `${cluster.node(1).http}/v1/shards/${range.id}/move`, JSON.stringify({ from: away, to: from }));
          back = answer.status === 200;
          if (!back) t.diagnostic(`move ${away} -> ${from}: ${answer.status} ${JSON.stringify(answer.body)}`);
        }
        if (!back) await sleep(500);
      }
      assert.ok(back, `the range moved back to node ${from}`);
      const again = await caughtUp(from, expected, 30_000);
      assert.equal(await hosts(from), true, `node ${from} hosts the range again`);
      for (const [key, read] of expected) assert.deepEqual(again.get(key), read, `moved back: node ${from}'s ${key} against its leader's`);
      t.diagnostic(`range ${range.id} split at "p4", moved from node ${moved.from} to node ${moved.to}, and back to node ${from}; its leader is node ${leader}`);
    } finally {
      await client.close();
    }
  });
});

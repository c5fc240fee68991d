/**
 * Zones with real processes: four `synod node`s with `--shards 5 --replicas 2`, nodes 1 and 2
 * in zone a, 3 and 4 in zone b. The ranges start round the members in id order, each on two
 * nodes of one zone (a rack lost would take both replicas); the placement rule moves one
 * replica of each into the other zone by itself, a learner first, and nothing written
 * before is lost.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "../../client/client.js";
import { RangeTable } from "../../core/multi/ranges.js";
import { ProcessCluster, request, runSynod, sleep, type ShardView } from "./process-cluster.test-util.js";

const SHARDS = 5;
const ZONE_OF: Readonly<Record<number, string>> = { 1: "a", 2: "a", 3: "b", 4: "b" };
const KEYS = RangeTable.presplit(SHARDS)
  .list()
  .map((range) => `${range.start === "" ? "0" : range.start}-zoned`);

type Placed = ShardView & { readonly voters?: readonly number[]; readonly learners?: readonly number[] };

describe("ranges spread over zones (--zone, --replicas 2)", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 4, flags: ["--shards", String(SHARDS), "--replicas", "2"], nodeFlags: (id) => ["--zone", ZONE_OF[id] ?? "none"] });
    await cluster.waitForRangeLeaders(SHARDS);
  });
  after(async () => cluster.close());

  test("every range ends with a replica in each zone, moved there by itself, and keeps what was written", async (t) => {
    const status = await request("GET", `${cluster.node(3).http}/v1/status`);
    assert.equal(status.body["zone"], "b");
    const client = new Client({ endpoints: [1, 2, 3, 4].map((id) => cluster.node(id).http), timeoutMs: 8000 });
    try {
      for (const key of KEYS) await client.put(key, `v-${key}`);
      const deadline = Date.now() + 60_000;
      let shards: Placed[] | null = null;
      const zonesOf = (shard: Placed): string[] => [...new Set((shard.voters ?? []).map((id) => ZONE_OF[id] ?? "?"))].sort();
      const spread = (list: Placed[] | null): boolean => list !== null && list.length === SHARDS && list.every((s) => s.id === 0 || ((s.learners?.length ?? 0) === 0 && s.voters?.length === 2 && zonesOf(s).length === 2));
      while (Date.now() < deadline) {
        shards = (await cluster.shards(1)) as Placed[] | null;
        if (spread(shards)) break;
        await sleep(250);
      }
      t.diagnostic(`ranges: ${JSON.stringify(shards?.map((s) => ({ id: s.id, voters: s.voters })))}`);
      assert.ok(spread(shards), `every range in both zones: ${JSON.stringify(shards?.map((s) => ({ id: s.id, voters: s.voters, learners: s.learners })))}`);
      // The zones are listed with the ranges, and `synod shards list` shows each replica's.
      const listed = await request("GET", `${cluster.node(2).http}/v1/shards`);
      assert.deepEqual(listed.body["zones"], { 1: "a", 2: "a", 3: "b", 4: "b" });
      const table = await runSynod(["shards", "list", "--endpoints", cluster.node(2).http], 10_000);
      assert.equal(table.code, 0, table.output);
      assert.match(table.output, /\b[12]@a,[34]@b\b|\b[34]@b,[12]@a\b/, table.output);
      for (const key of KEYS) {
        const record = await client.get(key);
        assert.equal(record === null ? null : Buffer.from(record.value).toString("utf8"), `v-${key}`, key);
      }
    } finally {
      await client.close();
    }
  });

  test("a zone name that is not one is refused at the start with what to do", async () => {
    const refused = await runSynod(["node", "--id", "9", "--http", "127.0.0.1:1", "--peer", "127.0.0.1:2", "--data-dir", `${cluster.root}/refused`, "--zone", "rack 1"], 10_000);
    assert.notEqual(refused.code, 0);
    assert.match(refused.output, /--zone must be 1 to 64 letters, digits/);
  });
});

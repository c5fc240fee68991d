/**
 * Splitting ranges on a cluster of real processes: three `synod node`s started with
 * `--shards 2`, written through the SDK while range 1 splits twice (once by the CLI at its
 * middle key, once over HTTP at a named key), then a node leading a new range is killed
 * with SIGKILL. Every node routes by the new ranges, nothing acknowledged is lost, each key
 * is in exactly one range, the SDK follows the splits by itself, and the killed node comes
 * back with the ranges it had (recovered from its log and its state machine).
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Client } from "../../client/client.js";
import { TimeoutError } from "../../client/errors.js";
import { ProcessCluster, request, runSynod, sleep, type ShardView } from "./process-cluster.test-util.js";

/** Waits until node `via` sees `count` ranges, each led by one of `among`. */
async function rangesLed(cluster: ProcessCluster, via: number, count: number, among: readonly number[], timeoutMs: number): Promise<ShardView[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const shards = await cluster.shards(via).catch(() => null);
    if (shards !== null && shards.length === count && shards.every((s) => s.leader !== null && among.includes(s.leader))) return shards;
    if (Date.now() > deadline) throw new Error(`node ${via} does not see ${count} ranges led by ${among.join(",")} after ${timeoutMs} ms: ${JSON.stringify(shards)}`);
    await sleep(50);
  }
}

const json = { "content-type": "application/json" };

/** A PUT, sent again while the answer is 503 (a range just born or electing: "retry shortly"), for up to 5 s; asserts it was written. */
async function putRetrying(url: string, value: string): Promise<void> {
  let answer = await request("PUT", url, value);
  for (let retry = 0; answer.status === 503 && retry < 50; retry++) {
    await sleep(100);
    answer = await request("PUT", url, value);
  }
  assert.equal(answer.status, 200, `${url}: ${answer.text}`);
}

/** Range `range`'s latest snapshot index on node `id`, from its /metrics (0 when not there). */
async function rangeSnapshotIndex(cluster: ProcessCluster, id: number, range: number): Promise<number> {
  const answer = await request("GET", `${cluster.node(id).http}/metrics`).catch(() => null);
  const match = answer?.text.match(new RegExp(`^synod_range_snapshot_index\\{range="${range}"\\} (\\d+)$`, "m"));
  return match === null || match === undefined ? 0 : Number(match[1]);
}

/** A split request, sent again while the answer is 503 (an election under way: "retry shortly"), for up to 5 s. */
async function postSplit(url: string, body: string): Promise<Awaited<ReturnType<typeof request>>> {
  let answer = await request("POST", url, body, json);
  for (let retry = 0; answer.status === 503 && retry < 50; retry++) {
    await sleep(100);
    answer = await request("POST", url, body, json);
  }
  return answer;
}
/** Keys of range 1 (from "U" on, the presplit cut of two ranges): w-0000 .. w-0299 and x-... */
const keyOf = (writer: number, i: number): string => `${writer % 2 === 0 ? "w" : "x"}-${String(writer)}-${String(i).padStart(4, "0")}`;

describe("splitting ranges of a cluster of real processes (--shards 2)", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 3, flags: ["--shards", "2"] });
    await rangesLed(cluster, 1, 2, [1, 2, 3], 15_000);
  });
  after(async () => cluster.close());

  test("splits under load: every node routes by the new ranges, nothing acknowledged is lost, and kill -9 of a new range's leader loses nothing", async (t) => {
    const endpoints = cluster.nodes.map((node) => node.http);
    const client = new Client({ endpoints, healthCheckIntervalMs: 0 });
    const acknowledged = new Map<string, string>();
    const failures = new Map<string, number>();
    let unknown = 0;
    let writing = true;
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; writing && i < 2000; i++) {
        const key = keyOf(w, i);
        const value = `v${i}`;
        try {
          await client.put(key, value);
          acknowledged.set(key, value);
        } catch (error) {
          if (error instanceof TimeoutError) unknown += 1;
          const name = (error as Error).name;
          failures.set(name, (failures.get(name) ?? 0) + 1);
        }
      }
    };
    const writers = [0, 1, 2, 3].map((w) => writer(w));
    try {
      await sleep(800);
      // At the middle key, by the CLI, through node 2.
      const first = await runSynod(["shards", "split", "1", "--endpoints", cluster.node(2).http], 20_000);
      assert.equal(first.code, 0, first.output);
      assert.match(first.output, /^range 1 split at "(w|x)-[^"]+": range 2 holds the keys from there on/m);
      await sleep(500);
      // At a named key, over HTTP, through node 3: range 2 (the upper half) splits again.
      await rangesLed(cluster, 3, 3, [1, 2, 3], 10_000);
      const second = await postSplit(`${cluster.node(3).http}/v1/shards/2/split`, JSON.stringify({ key: "x-3" }));
      assert.equal(second.status, 200, second.text);
      // The new range's id is the next group 0 hands out: 3, or above if a try answered 503
      // (retried above) had taken one before failing: ids are unique, not dense.
      const child = Number(second.body["child"]);
      assert.ok(Number.isSafeInteger(child) && child >= 3, second.text);
      await sleep(500);

      // Every node sees the same four ranges, covering the key space once.
      const views = await Promise.all([1, 2, 3].map((id) => rangesLed(cluster, id, 4, [1, 2, 3], 10_000)));
      const spans = (views[0] ?? []).map(({ id, start, end, epoch }) => ({ id, start, end, epoch }));
      for (const view of views) assert.deepEqual(view.map(({ id, start, end, epoch }) => ({ id, start, end, epoch })), spans);
      assert.deepEqual(
        spans.map((s) => s.id),
        [0, 1, 2, child],
      );
      assert.equal(spans[3]?.start, "x-3");
      assert.equal(spans[3]?.end, null);
      assert.equal(spans[2]?.end, "x-3");
      assert.deepEqual(
        spans.map((s) => s.epoch),
        [1, 2, 3, 3],
        "an epoch moves at each split of the range, and a child starts at its parent's",
      );

      // kill -9 of the node leading the last range (born of the second split), while the writes go on.
      const victim = (views[0]?.[3]?.leader ?? 1) as number;
      const survivors = [1, 2, 3].filter((id) => id !== victim);
      const ackedBefore = acknowledged.size;
      await cluster.kill(victim);
      await rangesLed(cluster, survivors[0] as number, 4, survivors, 5000);
      const goOnDeadline = Date.now() + 10_000;
      while (acknowledged.size < ackedBefore + 60 && Date.now() < goOnDeadline) await sleep(50);
      writing = false;
      await Promise.all(writers);
      t.diagnostic(`${acknowledged.size} writes acknowledged (${ackedBefore} before node ${victim} was killed), ${unknown} with an unknown outcome; failures: ${JSON.stringify(Object.fromEntries(failures))}; the SDK read the ranges again ${client.stats().rangeRefreshes} times`);
      assert.ok(acknowledged.size > ackedBefore + 30, "writes went on after the kill");
      assert.ok(client.stats().rangeRefreshes >= 1, "the SDK learned the new ranges");

      // Nothing acknowledged is lost: read back linearizably through the survivors.
      const reader = new Client({ endpoints: survivors.map((id) => cluster.node(id).http), healthCheckIntervalMs: 0 });
      try {
        for (const [key, value] of acknowledged) {
          const record = await reader.get(key);
          assert.equal(record === null ? null : Buffer.from(record.value).toString("utf8"), value, key);
        }
      } finally {
        await reader.close();
      }

      // Each key is in exactly one range: the ranges' counts add up to what was written.
      const counts = (await cluster.shards(survivors[0] as number)) ?? [];
      const total = counts.reduce((sum, s) => sum + s.keys, 0);
      assert.ok(total >= acknowledged.size && total <= acknowledged.size + unknown, `the ranges hold ${total} keys; ${acknowledged.size} were acknowledged, ${unknown} unknown`);
      for (const range of counts) {
        const inside = [...acknowledged.keys()].filter((key) => key >= range.start && (range.end === null || key < range.end)).length;
        assert.ok(range.keys >= inside, `range ${range.id} holds ${range.keys} keys, at least the ${inside} acknowledged in its span`);
      }

      // The killed node comes back with the four ranges, and catches up on each.
      cluster.startNode(victim);
      const deadline = Date.now() + 20_000;
      for (;;) {
        const mine = await cluster.shards(victim).catch(() => null);
        const theirs = await cluster.shards(survivors[0] as number);
        if (mine !== null && theirs !== null && mine.length === 4 && mine.every((s, i) => s.keys === theirs[i]?.keys && s.start === theirs[i]?.start && s.leader !== null)) break;
        if (Date.now() > deadline) assert.fail(`node ${victim} did not catch up: ${JSON.stringify(mine)} against ${JSON.stringify(theirs)}`);
        await sleep(100);
      }
      const [someKey, someValue] = [...acknowledged.entries()].at(-1) as [string, string];
      const stale = await request("GET", `${cluster.node(victim).http}/v1/kv/${someKey}?consistency=stale`);
      assert.equal(stale.body["value"], someValue);
    } finally {
      writing = false;
      await Promise.all(writers);
      await client.close();
    }
  });

  test("a split that cannot be made is refused with what to do, and changes nothing", async () => {
    const http = cluster.node(1).http;
    await rangesLed(cluster, 1, 4, [1, 2, 3], 10_000);
    const before = (await cluster.shards(1))?.map(({ id, start, end, epoch }) => ({ id, start, end, epoch }));
    const refusals: [string, string, number, RegExp][] = [
      ["/v1/shards/1/split", JSON.stringify({ key: "0" }), 409, /not inside the range/],
      ["/v1/shards/3/split", JSON.stringify({ key: "x-3" }), 409, /not inside the range/],
      ["/v1/shards/0/split", "{}", 409, /name the key to split at/],
      ["/v1/shards/9/split", "{}", 404, /there is no range 9/],
      ["/v1/shards/1/split", "{not json", 400, /a split request is JSON/],
      ["/v1/shards/1/split", JSON.stringify({ at: "m" }), 400, /has no field "at"/],
    ];
    for (const [path, body, status, message] of refusals) {
      const answer = await postSplit(`${http}${path}`, body);
      assert.equal(answer.status, status, `${path} ${body}: ${answer.text}`);
      assert.match(String(answer.body["message"]), message);
    }
    const after = (await cluster.shards(1))?.map(({ id, start, end, epoch }) => ({ id, start, end, epoch }));
    assert.deepEqual(after, before);
  });
});

describe("a watch across a split", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 3, flags: ["--shards", "2"] });
    await rangesLed(cluster, 1, 2, [1, 2, 3], 15_000);
  });
  after(async () => cluster.close());

  test("the SDK's watch on a key a split moves gets every change before and after, in order, from the range that holds the key", async () => {
    const client = new Client({ endpoints: cluster.nodes.map((node) => node.http), healthCheckIntervalMs: 0 });
    try {
      await client.put("w-key", "1");
      const watch = client.watch("w-key", { fromRevision: 1 });
      const seen: string[] = [];
      const reading = (async () => {
        for await (const event of watch) {
          seen.push(event.type === "put" ? Buffer.from(event.value).toString("utf8") : "deleted");
          if (seen.length === 3) break;
        }
      })();
      const deadline = Date.now() + 10_000;
      while (seen.length < 1 && Date.now() < deadline) await sleep(20);
      await client.put("w-key", "2");
      while (seen.length < 2 && Date.now() < deadline) await sleep(20);
      // A write the watch does not follow: the split's revision is past the watch's last change.
      await client.put("v-other", "x");
      await client.put("v-other", "y");
      const split = await postSplit(`${cluster.node(2).http}/v1/shards/1/split`, JSON.stringify({ key: "w" }));
      assert.equal(split.status, 200, split.text);
      await client.put("w-key", "3");
      await Promise.race([reading, sleep(10_000)]);
      assert.deepEqual(seen, ["1", "2", "3"], "the change made in the new range came through the same watch");
    } finally {
      await client.close();
    }
  });
});

describe("a node that missed a split (its range's log compacted past it while the node was down)", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 3, flags: ["--shards", "2", "--snapshot-entries", "40"] });
    await rangesLed(cluster, 1, 2, [1, 2, 3], 15_000);
  });
  after(async () => cluster.close());

  test("hosts the range it missed once its leader reaches it, gets its state, serves it, and keeps it across a restart", async (t) => {
    const put = (id: number, key: string, value: string): Promise<void> => putRetrying(`${cluster.node(id).http}/v1/kv/${key}`, value);
    for (let i = 0; i < 20; i++) await put(1, `p-${String(i).padStart(3, "0")}`, `before-${i}`);
    await cluster.kill(3);
    const split = await postSplit(`${cluster.node(1).http}/v1/shards/1/split`, JSON.stringify({ key: "p-010" }));
    assert.equal(split.status, 200, split.text);
    await rangesLed(cluster, 1, 3, [1, 2], 10_000);
    const splitIndex = (await cluster.shards(1))?.find((shard) => shard.id === 1)?.appliedIndex ?? 0;
    // Enough writes to both halves that each compacts its log past the split (every 40-58
    // entries); p-015 to p-019 are left as they were before it, so the parent's history still
    // holds their changes when it is sent to the node that missed the split.
    const expected = new Map<string, string>();
    for (let i = 15; i < 20; i++) expected.set(`p-${String(i).padStart(3, "0")}`, `before-${i}`);
    for (let i = 0; i < 150; i++) {
      const key = `p-${String(i % 15).padStart(3, "0")}`;
      await put(1 + (i % 2), key, `after-${i}`);
      expected.set(key, `after-${i}`);
    }
    // Range 1 compacted past the split on both nodes (a compaction waits for the child to take
    // its first full snapshot, moments after its first leader: range-births.ts).
    for (const id of [1, 2]) {
      const deadline = Date.now() + 10_000;
      while ((await rangeSnapshotIndex(cluster, id, 1)) <= splitIndex) {
        if (Date.now() > deadline) assert.fail(`range 1 on node ${id} did not compact past the split (index ${splitIndex})`);
        await sleep(100);
      }
    }

    cluster.startNode(3);
    const deadline = Date.now() + 20_000;
    let mine: ShardView[] | null = null;
    for (;;) {
      mine = await cluster.shards(3).catch(() => null);
      const theirs = await cluster.shards(1);
      if (mine !== null && theirs !== null && mine.length === 3 && mine.every((s, i) => s.keys === theirs[i]?.keys && s.start === theirs[i]?.start && s.end === theirs[i]?.end)) break;
      if (Date.now() > deadline) assert.fail(`node 3 did not get the range it missed: ${JSON.stringify(mine)} against ${JSON.stringify(theirs)}; node 3 said: ${cluster.node(3).output.slice(-3000)}; shards: ${(await request("GET", `${cluster.node(3).http}/v1/shards`).catch((e: unknown) => ({ text: String(e) }))).text.slice(0, 1500)}`);
      await sleep(100);
    }
    t.diagnostic(`node 3 holds ${JSON.stringify(mine.map(({ id, start, end, keys }) => ({ id, start, end, keys })))}`);
    // It learned of range 2 from range 2's leader, not from range 1's log (compacted past the split).
    assert.match(cluster.node(3).output, /hosting a range this node missed the split of/);
    assert.doesNotMatch(cluster.node(3).output, /a range was born of a split/);
    for (const [key, value] of expected) {
      const answer = await request("GET", `${cluster.node(3).http}/v1/kv/${key}?consistency=stale`);
      assert.equal(answer.body["value"], value, key);
    }
    // Restarted, it recovers the range from its own log.
    await cluster.kill(3);
    cluster.startNode(3);
    await rangesLed(cluster, 3, 3, [1, 2, 3], 15_000);
    const again = await request("GET", `${cluster.node(3).http}/v1/kv/p-019?consistency=stale`);
    assert.equal(again.body["value"], expected.get("p-019"));
  });

  test("a machine crash right after a split (the store not trusted): the node rebuilds both halves from the logs, the moved keys made again by the parent's split", async () => {
    // A split copies nothing: the child's records stay where they were in the node's store,
    // and its log starts with a first state that only names them. Rebuilt from the logs, the
    // parent applies the split again and the child continues from there.
    const expected = new Map<string, string>();
    for (let i = 0; i < 30; i++) {
      const key = `q-${String(i).padStart(3, "0")}`;
      await putRetrying(`${cluster.node(1).http}/v1/kv/${key}`, `v${i}`);
      expected.set(key, `v${i}`);
    }
    const shardsBefore = (await cluster.shards(1))?.length ?? 0;
    const split = await postSplit(`${cluster.node(1).http}/v1/shards/2/split`, JSON.stringify({ key: "q-015" }));
    assert.equal(split.status, 200, split.text);
    // At once, more writes to the parent than it snapshots after (every 40-58 entries), while
    // its child has likely not yet elected a leader and taken a full snapshot: the parent must
    // keep the split in its log meanwhile, or the rebuilt node could not make the child again.
    for (let round = 0; round < 12; round++) {
      await Promise.all(
        Array.from({ length: 5 }, async (_, i) => {
          const key = `q-${String((i + round * 5) % 15).padStart(3, "0")}`;
          await putRetrying(`${cluster.node(1).http}/v1/kv/${key}`, `r${round}`);
          expected.set(key, `r${round}`);
        }),
      );
    }
    await cluster.kill(2);
    // As after a power loss: the store was open under another boot, so it is not trusted.
    writeFileSync(join(cluster.node(2).dataDir, "kv", "synod-kv-marker.json"), JSON.stringify({ state: "dirty", bootId: "a-boot-before-the-crash" }));
    cluster.startNode(2);
    await rangesLed(cluster, 2, shardsBefore + 1, [1, 2, 3], 20_000);
    assert.match(cluster.node(2).output, /cannot be trusted|not trusted|rebuilding/);
    const view = (shards: ShardView[] | null): unknown => shards?.map(({ id, start, end, keys }) => ({ id, start, end, keys }));
    const deadline = Date.now() + 10_000;
    while (JSON.stringify(view(await cluster.shards(2))) !== JSON.stringify(view(await cluster.shards(1))) && Date.now() < deadline) await sleep(100);
    assert.deepEqual(view(await cluster.shards(2)), view(await cluster.shards(1)), "the rebuilt node holds the ranges and keys its peers do");
    for (const [key, value] of expected) {
      const answer = await request("GET", `${cluster.node(2).http}/v1/kv/${key}?consistency=stale`);
      assert.equal(answer.body["value"], value, `${key} on the rebuilt node: ${answer.text}`);
    }
  });
});

describe("ranges that split by themselves (--split-keys, --split-load)", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 3, flags: ["--shards", "2", "--split-keys", "40", "--split-load", "150"] });
    await rangesLed(cluster, 1, 2, [1, 2, 3], 15_000);
  });
  after(async () => cluster.close());

  test("a range that outgrows --split-keys splits at its middle key until every range holds at most that many; every key stays readable", async (t) => {
    const client = new Client({ endpoints: cluster.nodes.map((node) => node.http), healthCheckIntervalMs: 0 });
    try {
      for (let i = 0; i < 150; i++) await client.put(`s-${String(i).padStart(3, "0")}`, `v${i}`);
      const startedMs = Date.now();
      let shards: ShardView[] | null = null;
      while (Date.now() - startedMs < 30_000) {
        shards = await cluster.shards(1);
        if (shards !== null && shards.every((s) => s.keys <= 40 && s.leader !== null)) break;
        await sleep(200);
      }
      t.diagnostic(`after ${Date.now() - startedMs} ms: ${JSON.stringify(shards?.map(({ id, start, end, keys }) => ({ id, start, end, keys })))}`);
      assert.ok(shards !== null && shards.every((s) => s.keys <= 40), `every range holds at most 40 keys: ${JSON.stringify(shards)}`);
      assert.ok(shards.length >= 5, "150 keys in ranges of at most 40 need at least 4 ranges besides range 0");
      assert.equal(
        shards.reduce((sum, s) => sum + s.keys, 0),
        150,
      );
      for (let i = 0; i < 150; i += 7) {
        const record = await client.get(`s-${String(i).padStart(3, "0")}`);
        assert.equal(record === null ? null : Buffer.from(record.value).toString("utf8"), `v${i}`);
      }
    } finally {
      await client.close();
    }
  });

  test("a range taking more than --split-load writes a second for 3 s splits at the key that halves its writes, though its key count stays small", async (t) => {
    const client = new Client({ endpoints: cluster.nodes.map((node) => node.http), healthCheckIntervalMs: 0 });
    // Eight keys written over and over: the range's key count never nears --split-keys.
    const keys = ["t-a", "t-b", "t-c", "t-d", "t-e", "t-f", "t-g", "t-h"];
    const last = new Map<string, string>();
    let writing = true;
    // One writer per key, so each key's last acknowledged value is known.
    const writer = async (w: number): Promise<void> => {
      const key = keys[w] as string;
      for (let i = 0; writing && i < 20_000; i++) {
        await client.put(key, `w${w}-${i}`);
        last.set(key, `w${w}-${i}`);
      }
    };
    const writers = keys.map((_, w) => writer(w));
    const startedMs = Date.now();
    let split: ShardView | undefined;
    try {
      while (Date.now() - startedMs < 30_000 && split === undefined) {
        await sleep(200);
        split = (await cluster.shards(1))?.find((s) => keys.includes(s.start));
      }
    } finally {
      writing = false;
      await Promise.all(writers);
    }
    t.diagnostic(`a range starting at ${JSON.stringify(split?.start)} ${Date.now() - startedMs} ms after the writes began`);
    assert.ok(split !== undefined, "the hot range split at one of its hot keys");
    // Writes were spread evenly over the keys: the halving key is in the middle, not at an end.
    assert.ok(["t-c", "t-d", "t-e", "t-f"].includes(split.start), `split at ${split.start}`);
    try {
      for (const [key, value] of last) {
        const record = await client.get(key);
        assert.equal(record === null ? null : Buffer.from(record.value).toString("utf8"), value, key);
      }
    } finally {
      await client.close();
    }
  });
});

/**
 * `synod snapshot save | status | restore` of a sharded cluster, on real processes: three
 * `synod node --shards 2`, keys written in both ranges, range 1 split (a range born of a
 * split), a backup saved through the CLI from a follower, its ranges shown by `status`,
 * restored into three fresh directories that start as a new `--shards 2` cluster serving
 * every key with the same value and revisions in the same ranges; a damaged or truncated
 * sharded backup is refused with what is wrong, and nothing is written.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ProcessCluster, request, runSynod, sleep, type ShardView } from "../runtime/server/process-cluster.test-util.js";

/** Keys of range 0 (before "U", the presplit cut of two ranges) and of range 1 (from "U" on); range 1 is split at "x". */
const KEYS = ["A", "B", "K", "a", "w", "x", "y"].flatMap((p) => [1, 2, 3].map((i) => `${p}-${i}`));

/** A request sent again while the answer is 503 (an election under way), for up to 5 s. */
async function retried(method: string, url: string, body?: string, headers: Record<string, string> = {}): Promise<Awaited<ReturnType<typeof request>>> {
  let answer = await request(method, url, body, headers);
  for (let retry = 0; answer.status === 503 && retry < 50; retry++) {
    await sleep(100);
    answer = await request(method, url, body, headers);
  }
  return answer;
}

const spansOf = (shards: readonly ShardView[]): object[] => shards.map(({ id, start, end, epoch }) => ({ id, start, end, epoch }));

describe("synod snapshot of a sharded cluster (--shards 2, one range split)", { timeout: 60_000 }, () => {
  let source: ProcessCluster;
  let restored: ProcessCluster | null = null;
  let dir: string;
  let backup: string;
  /** What the source cluster answers for each key, read after the writes. */
  const expected = new Map<string, Record<string, unknown>>();
  let sourceSpans: object[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "synod-sharded-snapshot-"));
    backup = join(dir, "sharded.snap");
    source = await ProcessCluster.start({ size: 3, flags: ["--shards", "2"] });
    await source.waitForRangeLeaders(2);
    const url = (key: string): string => `${source.node(1).http}/v1/kv/${encodeURIComponent(key)}`;
    for (const key of KEYS) assert.equal((await retried("PUT", url(key), `first ${key}`)).status, 200);
    const split = await retried("POST", `${source.node(2).http}/v1/shards/1/split`, JSON.stringify({ key: "x" }), { "content-type": "application/json" });
    assert.equal(split.status, 200, split.text);
    assert.equal(split.body["child"], 2);
    sourceSpans = spansOf(await source.waitForRangeLeaders(3));
    // Writes after the split, in every range, so each range's revisions move on their own.
    for (const key of ["A-1", "K-2", "w-3", "x-1", "y-2"]) assert.equal((await retried("PUT", url(key), `again ${key}`)).status, 200);
    assert.equal((await retried("DELETE", url("B-3"))).status, 200);
    for (const key of KEYS) expected.set(key, (await retried("GET", url(key))).body);
  });

  after(async () => {
    await source.close();
    await restored?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("save, from a follower, holds every range; status lists them with their keys", async () => {
    const leader = await source.waitForLeader();
    const follower = source.nodes.find((node) => node.id !== leader);
    assert.ok(follower !== undefined);
    const saved = await runSynod(["snapshot", "save", backup, "--endpoints", follower.http], 20_000);
    assert.equal(saved.code, 0, saved.output);
    assert.match(saved.output, new RegExp(`saved .*sharded\\.snap: 3 ranges, 20 keys, .* from node ${follower.id} \\(`));

    const status = await runSynod(["snapshot", "status", backup], 10_000);
    assert.equal(status.code, 0, status.output);
    assert.match(status.output, /a synod backup of a sharded cluster \(--shards 2\), checksum and every range's state verified/);
    assert.match(status.output, /range 0 +\["", "U"\) +8 keys, revision \d+, index \d+ \(term \d+\), epoch 1/);
    assert.match(status.output, /range 1 +\["U", "x"\) +6 keys, .* epoch 2/);
    assert.match(status.output, /range 2 +\["x", end\) +6 keys, .* epoch 2/);
    const report = JSON.parse((await runSynod(["snapshot", "status", backup, "--json"], 10_000)).output) as { shards: number; ranges: { id: number; keys: number; start: string; end: string | null; epoch: number }[] };
    assert.equal(report.shards, 2);
    assert.deepEqual(
      report.ranges.map(({ id, start, end, epoch }) => ({ id, start, end, epoch })),
      sourceSpans,
    );
  });

  test("restore seeds a new --shards 2 cluster that serves every key, in the same ranges, at the same revisions", async () => {
    restored = await ProcessCluster.start({
      size: 3,
      flags: ["--shards", "2"],
      prepare: async (nodes, peers) => {
        for (const node of nodes) {
          const run = await runSynod(["snapshot", "restore", backup, "--data-dir", node.dataDir, "--id", String(node.id), "--peers", peers], 15_000);
          assert.equal(run.code, 0, run.output);
          assert.match(run.output, new RegExp(`restored .*: 3 ranges, 20 keys\\nnode ${node.id} of a new cluster [0-9a-f]{16} \\(members 1,2,3\\)\\. Start it with:\\n {2}synod node .* --shards 2 \\.\\.\\.`));
        }
      },
    });
    const cluster = restored;
    assert.deepEqual(spansOf(await cluster.waitForRangeLeaders(3, 15_000)), sourceSpans, "the same ranges, spans and epochs");
    for (const node of cluster.nodes) {
      for (const [key, record] of expected) {
        const answer = await retried("GET", `${node.http}/v1/kv/${encodeURIComponent(key)}`);
        assert.deepEqual(answer.body, record, `${key} on node ${node.id}`);
      }
    }
    // The range born of the split takes writes, and its revisions continue the backup's.
    const before = (expected.get("y-2") as { revision: number }).revision;
    assert.ok(before > 0);
    const write = await retried("PUT", `${cluster.node(1).http}/v1/kv/y-9`, "after");
    assert.equal(write.status, 200, write.text);
    assert.ok((write.body["revision"] as number) > before, `revision ${String(write.body["revision"])} continues past ${before}`);
  });

  test("a sharded backup with one flipped byte, or cut short, is refused, and nothing is written", async () => {
    const bytes = readFileSync(backup);
    const damaged = Buffer.from(bytes);
    damaged[bytes.length - 100] = (damaged[bytes.length - 100] as number) ^ 0x04;
    writeFileSync(join(dir, "damaged.snap"), damaged);
    writeFileSync(join(dir, "truncated.snap"), bytes.subarray(0, bytes.length - 50));
    for (const [name, message] of [
      ["damaged.snap", /fails its SHA-256 checksum.*nothing was written/],
      ["truncated.snap", new RegExp(`is truncated: it holds ${bytes.length - 50} of its ${bytes.length} bytes.*nothing was written`)],
    ] as const) {
      const target = join(dir, `from-${name}`);
      const run = await runSynod(["snapshot", "restore", join(dir, name), "--data-dir", target, "--id", "1"], 10_000);
      assert.equal(run.code, 1, run.output);
      assert.match(run.output, message);
      assert.equal(existsSync(target), false, `${target} was not written`);
      const status = await runSynod(["snapshot", "status", join(dir, name)], 10_000);
      assert.equal(status.code, 1, status.output);
    }
  });
});

/**
 * `synod snapshot save | restore | status` on real processes: a backup saved from a
 * follower of a running cluster seeds a new three-node cluster that serves the same keys at
 * the same revisions; damaged, truncated and misdirected restores write nothing.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { freePorts, ProcessCluster, request, runSynod } from "../runtime/server/process-cluster.test-util.js";

describe("synod snapshot", { timeout: 180_000 }, () => {
  let source: ProcessCluster;
  let restored: ProcessCluster | null = null;
  let dir: string;
  let backup: string;
  /** What the source cluster answers for each key, read after the writes. */
  const expected = new Map<string, Record<string, unknown>>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "synod-snapshot-"));
    backup = join(dir, "backup.snap");
    source = await ProcessCluster.start({ size: 3 });
    const leader = await source.waitForLeader();
    const url = (key: string): string => `${source.node(leader).http}/v1/kv/${encodeURIComponent(key)}`;
    for (const [key, value] of [["a", "1"], ["b", "2"], ["a", "again"], ["gone", "x"]] as const) assert.equal((await request("PUT", url(key), value)).status, 200);
    assert.equal((await request("DELETE", url("gone"))).status, 200);
    assert.equal((await request("PUT", url("bin/ary"), Uint8Array.from([0xff, 0x00, 0x80]))).status, 200);
    for (const key of ["a", "b", "bin/ary"]) expected.set(key, (await request("GET", url(key))).body);
  });

  after(async () => {
    await source.close();
    await restored?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("save, from a follower, holds every acknowledged write; status verifies it", async () => {
    const leader = await source.waitForLeader();
    const follower = source.nodes.find((node) => node.id !== leader);
    assert.ok(follower !== undefined);
    const saved = await runSynod(["snapshot", "save", backup, "--endpoints", follower.http], 30_000);
    assert.equal(saved.code, 0, saved.output);
    assert.match(saved.output, new RegExp(`saved .*backup\\.snap: 3 keys, revision 6, index \\d+ \\(term \\d+\\), \\d+ bytes, from node ${follower.id} \\(`));
    assert.deepEqual(readdirSync(dir), ["backup.snap"], "no temporary file is left");

    const status = await runSynod(["snapshot", "status", backup, "--json"], 10_000);
    assert.equal(status.code, 0, status.output);
    const report = JSON.parse(status.output) as Record<string, unknown>;
    assert.equal(report["keys"], 3);
    assert.equal(report["revision"], 6);
    assert.equal(report["nodeId"], follower.id);
    assert.deepEqual(report["voters"], [1, 2, 3]);
  });

  test("restore seeds a new cluster that serves the keys at the same revisions, and continues them", async () => {
    const sourceStatus = await source.status(1);
    restored = await ProcessCluster.start({
      size: 3,
      prepare: async (nodes, peers) => {
        for (const node of nodes) {
          const run = await runSynod(["snapshot", "restore", backup, "--data-dir", node.dataDir, "--id", String(node.id), "--peers", peers], 30_000);
          assert.equal(run.code, 0, run.output);
          assert.match(run.output, new RegExp(`restored .* 3 keys, revision 6, .*\\nnode ${node.id} of a new cluster [0-9a-f]{16} \\(members 1,2,3\\)`));
        }
      },
    });
    const cluster = restored;
    const leader = await cluster.waitForLeader(20_000);
    for (const node of cluster.nodes) {
      for (const [key, record] of expected) {
        const answer = await request("GET", `${node.http}/v1/kv/${encodeURIComponent(key)}`);
        assert.equal(answer.status, 200, `${key} on node ${node.id}: ${answer.text}`);
        assert.deepEqual(answer.body, record, `${key} on node ${node.id}`);
      }
      assert.equal((await request("GET", `${node.http}/v1/kv/gone`)).status, 404);
    }
    const status = await cluster.status(leader);
    assert.notEqual(status?.clusterId, sourceStatus?.clusterId, "a restored cluster has an identity of its own");
    const write = await request("PUT", `${cluster.node(leader).http}/v1/kv/after`, "restore");
    assert.deepEqual(write.body, { revision: 7 }, "the revisions continue the backup's");

    // The restored log, and what was appended to it, recover like any node's.
    for (const node of cluster.nodes) await cluster.kill(node.id);
    for (const node of cluster.nodes) cluster.startNode(node.id);
    const again = await cluster.waitForLeader(20_000);
    assert.equal((await request("GET", `${cluster.node(again).http}/v1/kv/after`)).body["revision"], 7);
    assert.deepEqual((await request("GET", `${cluster.node(again).http}/v1/kv/a`)).body, expected.get("a"));
  });

  test("a Raft cluster's backup restored with --consensus paxos seeds a Paxos cluster that serves the keys and continues the revisions", async () => {
    const paxos = await ProcessCluster.start({
      consensus: "paxos",
      size: 3,
      prepare: async (nodes, peers) => {
        for (const node of nodes) {
          const run = await runSynod(["snapshot", "restore", backup, "--consensus", "paxos", "--data-dir", node.dataDir, "--id", String(node.id), "--peers", peers], 30_000);
          assert.equal(run.code, 0, run.output);
          assert.match(run.output, /Start it with:\n {2}synod node --id \d+ --peers \S+ --data-dir \S+ --consensus paxos \.\.\./, "the command it prints starts the node as Paxos");
        }
      },
    });
    try {
      const leader = await paxos.waitForLeader(20_000);
      assert.equal((await paxos.status(leader))?.["consensus"], "paxos");
      for (const node of paxos.nodes) {
        for (const [key, record] of expected) assert.deepEqual((await request("GET", `${node.http}/v1/kv/${encodeURIComponent(key)}`)).body, record, `${key} on node ${node.id}`);
      }
      const write = await request("PUT", `${paxos.node(leader).http}/v1/kv/after`, "paxos");
      assert.deepEqual(write.body, { revision: 7 });
      // Its data directories are Paxos's now: started as Raft, a node refuses.
      await paxos.kill(1);
      const refused = await runSynod(["node", "--id", "1", "--http", "127.0.0.1:0", "--peer", paxos.peerAddress(1), "--peers", paxos.bootstrapPeers(), "--data-dir", paxos.node(1).dataDir], 15_000);
      assert.equal(refused.code, 1, refused.output);
      assert.match(refused.output, /holds a paxos log, and this node was started with --consensus raft: start it with --consensus paxos/);
    } finally {
      await paxos.close();
    }
  });

  test("a backup with one flipped byte is refused by restore and status, and nothing is written", async () => {
    const damaged = join(dir, "damaged.snap");
    const bytes = readFileSync(backup);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = (bytes[middle] as number) ^ 0x10;
    writeFileSync(damaged, bytes);
    const target = join(dir, "from-damaged");
    const run = await runSynod(["snapshot", "restore", damaged, "--data-dir", target], 10_000);
    assert.equal(run.code, 1, run.output);
    assert.match(run.output, /fails its SHA-256 checksum.*nothing was written/);
    assert.equal(existsSync(target), false);
    const status = await runSynod(["snapshot", "status", damaged], 10_000);
    assert.equal(status.code, 1);
    assert.match(status.output, /fails its SHA-256 checksum/);
  });

  test("a truncated backup is refused as truncated, and nothing is written", async () => {
    const truncated = join(dir, "truncated.snap");
    const bytes = readFileSync(backup);
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 40));
    const target = join(dir, "from-truncated");
    mkdirSync(target);
    const run = await runSynod(["snapshot", "restore", truncated, "--data-dir", target], 10_000);
    assert.equal(run.code, 1, run.output);
    assert.match(run.output, new RegExp(`is truncated: it holds ${bytes.length - 40} of its ${bytes.length} bytes`));
    assert.deepEqual(readdirSync(target), [], "the empty directory given stays empty");
  });

  test("restore refuses a directory that holds anything, and leaves it as it was; lost+found alone is empty", async () => {
    const used = join(dir, "used");
    mkdirSync(used);
    writeFileSync(join(used, "precious"), "data");
    const run = await runSynod(["snapshot", "restore", backup, "--data-dir", used], 10_000);
    assert.equal(run.code, 2, run.output);
    assert.match(run.output, /is not empty \(it holds precious\): a restore never overwrites/);
    assert.deepEqual(readdirSync(used), ["precious"]);

    const volume = join(dir, "volume");
    mkdirSync(join(volume, "lost+found"), { recursive: true });
    const fresh = await runSynod(["snapshot", "restore", backup, "--data-dir", volume], 10_000);
    assert.equal(fresh.code, 0, fresh.output);
    assert.deepEqual(readdirSync(volume).sort(), ["kv", "lost+found", "node.json", "snap", "wal"]);
  });

  test("restore refuses an id missing from --peers", async () => {
    const run = await runSynod(["snapshot", "restore", backup, "--data-dir", join(dir, "x"), "--id", "4", "--peers", "1=127.0.0.1:1,2=127.0.0.1:2"], 10_000);
    assert.equal(run.code, 2, run.output);
    assert.match(run.output, /--peers must list this node \(4\) too/);
    assert.equal(existsSync(join(dir, "x")), false);
  });

  test("save with no node reachable says so, exits 3, and leaves an existing file as it was", async () => {
    const keep = join(dir, "keep.snap");
    writeFileSync(keep, "an earlier backup");
    const [port] = await freePorts(1);
    const run = await runSynod(["snapshot", "save", keep, "--endpoints", `http://127.0.0.1:${port}`], 20_000);
    assert.equal(run.code, 3, run.output);
    assert.match(run.output, new RegExp(`no node gave a backup:\n {2}http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
    assert.equal(readFileSync(keep, "utf8"), "an earlier backup");
    assert.deepEqual(readdirSync(dir).filter((name) => name.endsWith(".tmp")), []);
  });
});

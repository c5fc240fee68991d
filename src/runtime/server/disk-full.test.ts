/**
 * A disk that fills up, on a small tmpfs under a real node process (disk-guard.ts): below
 * the reserve, writes get 507 `no_space` while reads (and deletes) are served, and writes
 * are accepted again once space returns, without a restart; with no reserve, the log's
 * ENOSPC stops the node with a message naming what failed and what to do, and after space
 * is freed it restarts with every acknowledged write. Needs root to mount a tmpfs; skipped,
 * saying so, where mounting is not permitted.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from "node:fs";
import { join } from "node:path";
import { describe, test, type TestContext } from "node:test";
import { ProcessCluster, request, sleep } from "./process-cluster.test-util.js";

const TMPFS_BYTES = 16 * 1024 * 1024;
const RESERVE_BYTES = 4 * 1024 * 1024;
/** Small segments, so the log rolls (and needs new space) within a few MiB of writes. */
const SEGMENT_FLAGS = ["--wal-segment-bytes", String(1024 * 1024)];

function freeBytes(dir: string): number {
  const stats = statfsSync(dir);
  return stats.bavail * stats.bsize;
}

/** Fills `dir`'s filesystem with `file` until only `leaveBytes` (about) are free; as far as it will go for 0. */
function fill(file: string, leaveBytes: number): void {
  const fd = openSync(file, "a");
  const chunk = Buffer.alloc(256 * 1024, 0x7a);
  try {
    while (freeBytes(file.slice(0, file.lastIndexOf("/"))) > leaveBytes + chunk.length) writeSync(fd, chunk);
    if (leaveBytes === 0) {
      for (let size = chunk.length; size >= 512; size >>= 1) {
        try {
          for (;;) writeSync(fd, chunk, 0, size);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** A one-node cluster whose data directory is a fresh tmpfs; null (the test skipped) where mount is refused. */
async function startOnTmpfs(t: TestContext, flags: readonly string[]): Promise<{ cluster: ProcessCluster; dir: string } | null> {
  let mounted: string | null = null;
  let refusal: string | null = null;
  const cluster = await ProcessCluster.start({
    size: 1,
    flags,
    prepare: async (nodes) => {
      const dir = (nodes[0] as { dataDir: string }).dataDir;
      mkdirSync(dir, { recursive: true });
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", `size=${TMPFS_BYTES}`, "tmpfs", dir], { stdio: "pipe" });
        mounted = dir;
      } catch (error) {
        refusal = String((error as { stderr?: Buffer }).stderr ?? error).trim();
        // An empty directory where the tmpfs would be: the node starts, and is stopped below.
      }
    },
  });
  if (mounted === null) {
    await cluster.close();
    t.skip(`cannot mount a tmpfs here (needs root): ${refusal ?? "unknown"}`);
    return null;
  }
  return { cluster, dir: mounted };
}

async function stopAndUnmount(setup: { cluster: ProcessCluster; dir: string } | null): Promise<void> {
  if (setup === null) return;
  await setup.cluster.kill(1);
  try {
    execFileSync("umount", [setup.dir], { stdio: "pipe" });
  } finally {
    await setup.cluster.close();
  }
}

async function waitFor<T>(probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(value)})`);
    await sleep(100);
  }
}

describe("a disk that fills up", { timeout: 90_000 }, () => {
  test("below the reserve writes get 507 no_space, reads and deletes are served, and writes resume when space returns", async (t) => {
    const setup = await startOnTmpfs(t, [...SEGMENT_FLAGS, "--min-free-disk-bytes", String(RESERVE_BYTES)]);
    if (setup === null) return;
    try {
      const { cluster, dir } = setup;
      const url = cluster.node(1).http;
      await cluster.waitForLeader();
      assert.equal((await request("PUT", `${url}/v1/kv/kept`, "before the disk filled")).status, 200);
      assert.equal((await request("PUT", `${url}/v1/kv/doomed`, "to be deleted")).status, 200);
      const filler = join(dir, "filler");
      fill(filler, RESERVE_BYTES / 2);

      const refused = await waitFor(() => request("PUT", `${url}/v1/kv/new`, "x"), (answer) => answer.status !== 200, 3000, "writes are refused");
      assert.equal(refused.status, 507, refused.text);
      assert.equal(refused.body["error"], "no_space");
      assert.match(String(refused.body["message"]), /--min-free-disk-bytes/);
      assert.match(String(refused.body["message"]), new RegExp(dir));
      const txn = await request("POST", `${url}/v1/txn`, JSON.stringify({ success: [{ op: "put", key: "t", value: "v" }] }), { "content-type": "application/json" });
      assert.equal(txn.status, 507, txn.text);
      assert.equal((await request("GET", `${url}/v1/kv/kept`)).body["value"], "before the disk filled", "reads are served");
      assert.equal((await request("DELETE", `${url}/v1/kv/doomed`)).status, 200, "deletes are served");
      const metrics = await request("GET", `${url}/metrics`);
      assert.match(metrics.text, /^synod_disk_no_space 1$/m);

      rmSync(filler);
      const accepted = await waitFor(() => request("PUT", `${url}/v1/kv/new`, "after"), (answer) => answer.status === 200, 3000, "writes resume once space returns");
      assert.equal(accepted.status, 200);
      assert.equal((await request("GET", `${url}/v1/kv/new`)).body["value"], "after");
      assert.notEqual(cluster.node(1).process, null, "no restart");
    } finally {
      await stopAndUnmount(setup);
    }
  });

  test("with no reserve, the log's ENOSPC stops the node with what to do, and a restart after freeing space loses nothing acknowledged", async (t) => {
    const setup = await startOnTmpfs(t, [...SEGMENT_FLAGS, "--min-free-disk-bytes", "0"]);
    if (setup === null) return;
    try {
      const { cluster, dir } = setup;
      const url = cluster.node(1).http;
      await cluster.waitForLeader();
      const value = (i: number): string => `${i}:`.padEnd(16 * 1024, "v");
      const acknowledged: number[] = [];
      let i = 0;
      for (; i < 10; i++) if ((await request("PUT", `${url}/v1/kv/k${i}`, value(i))).status === 200) acknowledged.push(i);
      const filler = join(dir, "filler");
      fill(filler, 0);
      // Keep writing until the node stops: the current segment's preallocated space runs out, and the next cannot be made.
      const deadline = Date.now() + 20_000;
      const failures = new Map<string, number>();
      while (cluster.node(1).process !== null && Date.now() < deadline) {
        const answer = await request("PUT", `${url}/v1/kv/k${i}`, value(i));
        if (answer.status === 200) acknowledged.push(i);
        else failures.set(`${answer.status} ${String(answer.body["error"])}`, (failures.get(`${answer.status} ${String(answer.body["error"])}`) ?? 0) + 1);
        i++;
      }
      const exit = await cluster.exited(1, 5000);
      assert.notEqual(exit.code, 0, "the node exits with an error");
      assert.match(exit.output, /storage failure, stopping/, exit.output.slice(-3000));
      assert.match(exit.output, /ENOSPC/);
      assert.match(exit.output, new RegExp(`free space on the filesystem holding ${dir}`));
      console.log(`acknowledged ${acknowledged.length} writes (${acknowledged.length - 10} after the disk filled); refused: ${JSON.stringify(Object.fromEntries(failures))}; the node said: ${/storage failure[^\n"]*/.exec(exit.output)?.[0] ?? ""}`);

      rmSync(filler);
      cluster.startNode(1);
      await cluster.waitForLeader(15_000);
      for (const k of acknowledged) {
        const read = await request("GET", `${url}/v1/kv/k${k}`);
        assert.equal(read.body["value"], value(k), `acknowledged write k${k} survives (${read.status})`);
      }
      assert.equal((await request("PUT", `${url}/v1/kv/after-restart`, "ok")).status, 200);
    } finally {
      await stopAndUnmount(setup);
    }
  });
});

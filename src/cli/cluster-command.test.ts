import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePorts, request, sleep } from "../runtime/server/process-cluster.test-util.js";

const SYNOD_BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "synod.js");

async function until(condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(100);
  }
  return false;
}

test("synod cluster: its nodes serve, and stop when the cluster process dies, even by SIGKILL", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "synod-cluster-cmd-"));
  const [httpBase, peerBase] = await freePorts(2);
  try {
    const cluster = spawn(process.execPath, [SYNOD_BIN, "cluster", "--nodes", "1", "--base-port", String(httpBase), "--peer-base-port", String(peerBase), "--data-dir", dir], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    cluster.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    const url = `http://127.0.0.1:${httpBase}`;
    assert.ok(await until(async () => output.includes("leads"), 20_000), `the cluster elects a leader and says so:\n${output}`);
    assert.match(output, new RegExp(`node 1  http://127\\.0\\.0\\.1:${httpBase}`), "it prints where each node is");
    assert.equal((await request("PUT", `${url}/v1/kv/k`, "v")).status, 200);

    cluster.kill("SIGKILL");
    assert.ok(await until(async () => (await request("GET", `${url}/v1/status`)).status === 0, 10_000), "the orphaned node stopped");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

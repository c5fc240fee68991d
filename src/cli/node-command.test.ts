/** `synod node` as a user starts it by hand. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { request, sleep } from "../runtime/server/process-cluster.test-util.js";

const SYNOD_BIN = fileURLToPath(new URL("../../bin/synod.js", import.meta.url));

test("a node alone on ephemeral ports (--http and --peer port 0) leads and serves", { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "synod-node-alone-"));
  const child = spawn(process.execPath, [SYNOD_BIN, "node", "--id", "1", "--http", "127.0.0.1:0", "--peer", "127.0.0.1:0", "--data-dir", dir, "--log-format", "json"], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    let url = "";
    for (let i = 0; i < 100 && url === ""; i++) {
      url = /"http":"(http:\/\/127\.0\.0\.1:\d+)","peer"/.exec(output)?.[1] ?? "";
      if (url === "") await sleep(100);
    }
    assert.notEqual(url, "", `the node says where it serves:\n${output}`);
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await request("PUT", `${url}/v1/kv/k`, "v")).status;
      if (status !== 200) await sleep(100);
    }
    assert.equal(status, 200, output);
    assert.equal(child.exitCode, null, `it is still running:\n${output}`);
  } finally {
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
});

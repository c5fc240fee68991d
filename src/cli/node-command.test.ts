/** `synod node` as a user starts it: by hand on ephemeral ports, and its id, given or derived from a StatefulSet pod's host name. */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { request, sleep } from "../runtime/server/process-cluster.test-util.js";
import { nodeIdFrom } from "./node-command.js";

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

function synod(...args: string[]): { code: number; stderr: string } {
  const result = spawnSync(process.execPath, [SYNOD_BIN, ...args], { encoding: "utf8", timeout: 30_000 });
  return { code: result.status ?? -1, stderr: result.stderr };
}

describe("synod node's id", () => {
  test("--id-from-hostname: a pod's ordinal plus one, since ids start at 1", () => {
    assert.equal(nodeIdFrom({ idFromHostname: true }, "synod-0"), 1);
    assert.equal(nodeIdFrom({ idFromHostname: true }, "synod-2"), 3);
    assert.equal(nodeIdFrom({ idFromHostname: true }, "my-kv-store-11"), 12);
    assert.equal(nodeIdFrom({ id: 7, idFromHostname: false }, "synod-0"), 7);
  });

  test("a host name without a trailing number is refused with what to do", () => {
    assert.throws(() => nodeIdFrom({ idFromHostname: true }, "laptop"), /needs a host name ending in -NUMBER .* not "laptop"; give --id instead/);
    assert.throws(() => nodeIdFrom({ idFromHostname: true }, "synod-"), /ending in -NUMBER/);
  });

  test("neither --id nor --id-from-hostname is a usage error (exit 2) that names both", () => {
    const run = synod("node", "--data-dir", "/nonexistent/never-created");
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /give the node's id: --id N, or --id-from-hostname/);
  });

  test("both together are refused (exit 2)", () => {
    const run = synod("node", "--id", "1", "--id-from-hostname", "--data-dir", "/nonexistent/never-created");
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--id.*cannot be used with.*--id-from-hostname/);
  });
});

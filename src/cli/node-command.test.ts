// `synod node`'s id: given, or derived from a StatefulSet pod's host name.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { nodeIdFrom } from "./node-command.js";

const bin = fileURLToPath(new URL("../../bin/synod.js", import.meta.url));

function synod(...args: string[]): { code: number; stderr: string } {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 30_000 });
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

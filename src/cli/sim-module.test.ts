// `synod sim --state-machine MODULE` with a module that is missing, does not load, or has
// the wrong shape: one line that says what is wrong, exit code 2, nothing run.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const bin = fileURLToPath(new URL("../../bin/synod.js", import.meta.url));

function sim(module: string): { code: number; stderr: string } {
  const result = spawnSync(process.execPath, [bin, "sim", "--state-machine", module, "--seeds", "1"], { encoding: "utf8", timeout: 60_000 });
  return { code: result.status ?? -1, stderr: result.stderr };
}

test("a --state-machine module that is missing, broken or of the wrong shape is refused in one line", () => {
  const dir = mkdtempSync(join(tmpdir(), "synod-sim-module-"));
  try {
    const missing = sim(join(dir, "nowhere.js"));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^synod: --state-machine .*nowhere\.js: no such file/);
    writeFileSync(join(dir, "throws.mjs"), 'throw new Error("no luck");\n');
    const throws = sim(join(dir, "throws.mjs"));
    assert.equal(throws.code, 2);
    assert.match(throws.stderr, /could not be loaded: no luck/);
    writeFileSync(join(dir, "shape.mjs"), "export default { createStateMachine() {}, model: { init() {}, step() {} } };\n");
    const shape = sim(join(dir, "shape.mjs"));
    assert.equal(shape.code, 2);
    assert.match(shape.stderr, /client\(random, clientId\) is missing/);
    assert.equal(shape.stderr.trim().split("\n").length, 1, shape.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

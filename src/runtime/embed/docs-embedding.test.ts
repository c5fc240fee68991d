/**
 * docs/embedding.md's quick start, run as pasted (only its ports changed to free ones): a
 * user who copies it gets what the text says it prints.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePorts } from "../server/process-cluster.test-util.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

test("docs/embedding.md's counter prints 5, 3 and 3", { timeout: 60_000 }, async () => {
  const doc = readFileSync(join(ROOT, "docs", "embedding.md"), "utf8");
  const block = [...doc.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1] as string).find((code) => code.includes("class Counter"));
  assert.ok(block !== undefined, "the quick start is there");
  const ports = await freePorts(3);
  const code = [7201, 7202, 7203].reduce((text, port, i) => text.replaceAll(`127.0.0.1:${port}`, `127.0.0.1:${ports[i]}`), block);
  // Inside the package, so that `import ... from "synod"` finds it as it would in node_modules.
  mkdirSync(join(ROOT, "data"), { recursive: true });
  const dir = mkdtempSync(join(ROOT, "data", "docs-embedding-"));
  try {
    writeFileSync(join(dir, "counter.mjs"), code);
    const { status, stdout, stderr } = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [join(dir, "counter.mjs")], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
      child.once("exit", (exit) => resolve({ status: exit, stdout: out, stderr: err }));
    });
    assert.equal(status, 0, stderr);
    assert.equal(stdout, "5\n3\n3\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

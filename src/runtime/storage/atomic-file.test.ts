import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { removeLeftoverTempFiles, writeFileAtomic } from "./atomic-file.js";

test("an atomic write replaces the file whole and leaves no temporary file", () => {
  const dir = mkdtempSync(join(tmpdir(), "synod-atomic-"));
  try {
    const path = join(dir, "snapshot");
    writeFileAtomic(path, new TextEncoder().encode("first"));
    writeFileAtomic(path, new TextEncoder().encode("second version"));
    assert.equal(readFileSync(path, "utf8"), "second version");
    assert.equal(existsSync(`${path}.tmp`), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a temporary file a crash left behind is removed, and the old version kept", () => {
  const dir = mkdtempSync(join(tmpdir(), "synod-atomic-"));
  try {
    const path = join(dir, "snapshot");
    writeFileAtomic(path, new TextEncoder().encode("durable"));
    writeFileSync(`${path}.tmp`, "half written"); // a crash before the rename
    assert.deepEqual(removeLeftoverTempFiles(dir), ["snapshot.tmp"]);
    assert.equal(readFileSync(path, "utf8"), "durable");
    assert.equal(existsSync(`${path}.tmp`), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { writeSnapshotFile } from "../storage/snapshot-file.js";
import { RANGE_BIRTH_TERM, readBirths } from "./range-births.js";
import { RANGE_BIRTH_INDEX } from "../../core/kv/split.js";

test("birth files: a complete one is read; a directory a crash left without one (empty, or a temporary file only) is removed", () => {
  const dir = mkdtempSync(join(tmpdir(), "synod-births-"));
  try {
    mkdirSync(join(dir, "range-7"));
    mkdirSync(join(dir, "range-8"));
    writeFileSync(join(dir, "range-8", `${RANGE_BIRTH_INDEX}-${RANGE_BIRTH_TERM}.snap.tmp`), "half");
    mkdirSync(join(dir, "range-9"));
    writeSnapshotFile(join(dir, "range-9"), { index: RANGE_BIRTH_INDEX, term: RANGE_BIRTH_TERM, data: new Uint8Array([1, 2, 3]) }, "installed");
    const logged: string[] = [];
    const births = readBirths(dir, (message) => logged.push(message));
    assert.deepEqual([...births.keys()], [9]);
    assert.deepEqual(births.get(9)?.snapshot?.data, new Uint8Array([1, 2, 3]));
    assert.equal(existsSync(join(dir, "range-7")), false);
    assert.equal(existsSync(join(dir, "range-8")), false);
    assert.equal(logged.length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

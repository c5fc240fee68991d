import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { writeSnapshotFile } from "../storage/snapshot-file.js";
import type { DurableState } from "../../core/engine/contract.js";
import { heldFirstState, RANGE_BIRTH_INDEX } from "../../core/kv/split.js";
import type { SharedLog } from "../storage/shared-log.js";
import { RANGE_BIRTH_TERM, RangeBirths, readBirths } from "./range-births.js";

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

test("a held child whose parent caught up past its split waits for its leader's snapshot with no state, its hard state kept; with entries past its first state, its whole log kept (the engine waits where the store lost the records)", () => {
  const held = (parent: number, index: number): Uint8Array => heldFirstState(12, 0, { start: "m", end: null }, 2, parent, index);
  const hard = { term: 4, vote: 2, commit: RANGE_BIRTH_INDEX };
  const empty: DurableState<unknown> = { hardState: hard, snapshot: { index: RANGE_BIRTH_INDEX, term: RANGE_BIRTH_TERM, data: held(1, 30) }, entries: [] };
  const past: DurableState<unknown> = { ...empty, entries: [{ index: RANGE_BIRTH_INDEX + 1, term: 4, data: new Uint8Array() }] };
  const hosted: { id: number; how: string; durable: DurableState<unknown> }[] = [];
  const births = new RangeBirths(
    {
      sharedLog: {} as SharedLog<unknown>,
      dir: "/nonexistent",
      hosts: () => false,
      host: (id, _logStore, durable) => hosted.push({ id, how: "from its log", durable }),
      hostWithoutState: (id, span, durable) => hosted.push({ id, how: `without state over [${span.start}, ${String(span.end)})`, durable }),
    },
    new Map([
      [7, empty],
      [8, past],
    ]),
    new Set(),
  );
  // The parent still holds the span: both wait for its split.
  births.hostFreed(() => false);
  assert.equal(hosted.length, 0);
  assert.equal(births.waitsForParent(7), true);
  births.hostFreed(() => true);
  assert.deepEqual(
    hosted.map(({ id, how }) => [id, how]),
    [
      [7, "without state over [m, null)"],
      [8, "without state over [m, null)"],
    ],
  );
  // Range 7 forgot no entry and keeps its term and vote; range 8's held state and entry are kept (group-replica.ts leaves its store empty and the engine waits).
  assert.deepEqual(hosted[0]?.durable, { hardState: hard, snapshot: null, entries: [] });
  assert.equal(hosted[1]?.durable, past);
  assert.equal(births.waitsForParent(7), false);
});

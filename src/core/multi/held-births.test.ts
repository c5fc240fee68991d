import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { DurableState, LogEntry } from "../engine/contract.js";
import { HeldBirths, splitsWitnessed, withWitnessedCommit } from "./held-births.js";

interface Hard {
  readonly term: number;
  readonly vote: number | null;
  readonly commit: number;
}

/** A parent's durable state: a snapshot at `snapshotIndex` (none at 0), entries through `last`, a hard state committing `commit`. */
function parent(snapshotIndex: number, last: number, commit: number | null): DurableState<Hard> {
  const entries: LogEntry[] = [];
  for (let index = snapshotIndex + 1; index <= last; index++) entries.push({ index, term: 2, data: new Uint8Array() });
  return {
    hardState: commit === null ? null : { term: 3, vote: 1, commit },
    snapshot: snapshotIndex === 0 ? null : { index: snapshotIndex, term: 2, data: new Uint8Array() },
    entries,
  };
}

describe("held births", () => {
  test("a parent keeps its log through a split while a child of it is held, and no longer once released", () => {
    const births = new HeldBirths();
    births.add(7, { parent: 3, index: 40 });
    assert.equal(births.holds(3, 39), false);
    assert.equal(births.holds(3, 40), true);
    assert.equal(births.holds(4, 40), false);
    births.release(7);
    assert.equal(births.holds(3, 40), false);
    assert.equal(births.size, 0);
  });

  test("the splits held children name are the parents' highest witnessed commits", () => {
    const witnessed = splitsWitnessed([
      { parent: 1, index: 10 },
      { parent: 2, index: 5 },
      { parent: 1, index: 30 },
      { parent: 1, index: 20 },
    ]);
    assert.deepEqual([...witnessed].sort(), [
      [1, 30],
      [2, 5],
    ]);
  });

  test("a parent's commit index is raised to a split its log holds, and only then", () => {
    // The commit index saved before the split applied (saved without a sync of its own).
    assert.equal(withWitnessedCommit(parent(10, 50, 35), 40).hardState?.commit, 40);
    assert.deepEqual(withWitnessedCommit(parent(10, 50, 35), 40).entries, parent(10, 50, 35).entries);
    // The split at the log's last entry, and at its first.
    assert.equal(withWitnessedCommit(parent(10, 40, 35), 40).hardState?.commit, 40);
    assert.equal(withWitnessedCommit(parent(39, 45, 0), 40).hardState?.commit, 40);
    // Never lowered.
    const ahead = parent(10, 50, 45);
    assert.equal(withWitnessedCommit(ahead, 40), ahead);
    // Not in the log: compacted past it (a snapshot covers it), or never written here.
    const compacted = parent(40, 50, 30);
    assert.equal(withWitnessedCommit(compacted, 40), compacted);
    const short = parent(10, 39, 30);
    assert.equal(withWitnessedCommit(short, 40), short);
    // No hard state, or one with no commit index: nothing to raise.
    const fresh = parent(10, 50, null);
    assert.equal(withWitnessedCommit(fresh, 40), fresh);
    const noCommit: DurableState<{ readonly ballot: number }> = { hardState: { ballot: 4 }, snapshot: null, entries: parent(0, 50, 0).entries };
    assert.equal(withWitnessedCommit(noCommit, 40), noCommit);
  });
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { Prng } from "../core/common/prng.js";
import { appendEntries, SimDisk } from "./disk.js";

const entry = (index: number, term: number) => ({ index, term, data: new Uint8Array([index]) });

test("synced writes survive a crash; unsynced ones may not", () => {
  let lostSome = false;
  for (let seed = 1; seed <= 50; seed++) {
    const disk = new SimDisk<{ term: number }>(0.5);
    disk.write({ kind: "entries", entries: [entry(1, 1), entry(2, 1)] });
    disk.write({ kind: "hard-state", hardState: { term: 1 } });
    disk.sync();
    disk.write({ kind: "entries", entries: [entry(3, 2)] });
    disk.write({ kind: "hard-state", hardState: { term: 2 } });
    const outcome = disk.crash(new Prng(seed));
    const state = disk.recover();
    assert.ok(state.entries.length >= 2, "synced entries must survive");
    assert.deepEqual(state.entries.slice(0, 2).map((e) => e.index), [1, 2]);
    if (outcome.lost > 0) lostSome = true;
    if (outcome.lost === 2) {
      assert.equal(state.entries.length, 2);
      assert.deepEqual(state.hardState, { term: 1 });
    }
  }
  assert.ok(lostSome, "some crash must lose unsynced writes");
});

test("a torn last write is discarded on recovery, never half-applied", () => {
  let tornSeen = false;
  for (let seed = 1; seed <= 100; seed++) {
    const disk = new SimDisk<{ term: number }>(1);
    disk.write({ kind: "hard-state", hardState: { term: 7 } });
    const outcome = disk.crash(new Prng(seed));
    const state = disk.recover();
    if (outcome.torn) {
      tornSeen = true;
      assert.equal(state.hardState, null);
    }
  }
  assert.ok(tornSeen);
});

test("appending replaces the conflicting suffix, like a Raft follower", () => {
  const log = appendEntries([entry(1, 1), entry(2, 1), entry(3, 1)], [entry(2, 2)], null);
  assert.deepEqual(log.map((e) => [e.index, e.term]), [[1, 1], [2, 2]]);
  assert.throws(() => appendEntries([entry(1, 1)], [entry(3, 1)], null), /gap/);
});

test("recovery is idempotent", () => {
  const disk = new SimDisk<{ term: number }>(0);
  disk.write({ kind: "entries", entries: [entry(1, 1)] });
  disk.write({ kind: "entries", entries: [entry(2, 1), entry(3, 1)] });
  disk.write({ kind: "entries", entries: [entry(3, 2)] });
  disk.sync();
  const first = disk.recover();
  const second = disk.recover();
  assert.deepEqual(first, second);
  assert.deepEqual(first.entries.map((e) => e.term), [1, 1, 2]);
});

test("a compaction keeps the entries after the snapshot; an installed snapshot discards the log", () => {
  const snapshot = { index: 2, term: 1, data: new Uint8Array([9]) };
  const compacted = new SimDisk<{ term: number }>(0);
  compacted.write({ kind: "entries", entries: [entry(1, 1), entry(2, 1), entry(3, 1)] });
  compacted.sync();
  compacted.saveSnapshot(snapshot);
  const kept = compacted.recover();
  assert.deepEqual(kept.snapshot, snapshot);
  assert.deepEqual(kept.entries.map((e) => e.index), [3]);

  const installed = new SimDisk<{ term: number }>(0);
  installed.write({ kind: "entries", entries: [entry(1, 1), entry(2, 1), entry(3, 1)] });
  installed.write({ kind: "snapshot", snapshot: { index: 2, term: 2, data: new Uint8Array([9]) } });
  installed.write({ kind: "entries", entries: [entry(3, 2)] });
  installed.sync();
  const state = installed.recover();
  assert.equal(state.snapshot?.term, 2);
  assert.deepEqual(state.entries.map((e) => [e.index, e.term]), [[3, 2]]);
  assert.deepEqual(installed.recover(), state, "recovery after compaction is idempotent");
});

test("saving a snapshot makes the writes before it durable, as the WAL's checkpoint does; a sync covers only what was written before it began", () => {
  const prng = new Prng(1);
  const disk = new SimDisk<{ term: number }>(0);
  disk.write({ kind: "entries", entries: [entry(1, 1), entry(2, 1)] });
  disk.write({ kind: "hard-state", hardState: { term: 1 } });
  disk.saveSnapshot({ index: 1, term: 1, data: new Uint8Array() });
  disk.crash(prng);
  assert.deepEqual(disk.replay().entries.map((e) => e.index), [2]);
  assert.deepEqual(disk.replay().hardState, { term: 1 });
  // A sync that began before the third write makes only the first two durable.
  const begun = disk.unsyncedCount;
  disk.write({ kind: "entries", entries: [entry(3, 1)] });
  disk.sync(begun);
  assert.equal(disk.unsyncedCount, 1);
});

test("one disk holds every group of a node: each recovers its own records, and a crash cuts the one shared stream", () => {
  const disk = new SimDisk<{ term: number }>(0);
  disk.write({ kind: "entries", entries: [entry(1, 1)] }, 0);
  disk.write({ kind: "entries", entries: [entry(1, 5), entry(2, 5)] }, 3);
  disk.write({ kind: "hard-state", hardState: { term: 5 } }, 3);
  disk.sync();
  disk.write({ kind: "entries", entries: [entry(2, 1)] }, 0);
  disk.write({ kind: "entries", entries: [entry(3, 5)] }, 3);
  // The crash keeps a prefix of the two unsynced writes, across both groups.
  const prng = new Prng(7);
  const outcome = disk.crash(prng);
  const survivors = 2 - outcome.lost;
  const group0 = disk.recover(0);
  const group3 = disk.recover(3);
  assert.deepEqual(group0.entries.map((e) => e.index), survivors >= 1 ? [1, 2] : [1]);
  assert.deepEqual(group3.entries.map((e) => [e.index, e.term]), survivors >= 2 ? [[1, 5], [2, 5], [3, 5]] : [[1, 5], [2, 5]]);
  assert.deepEqual(group3.hardState, { term: 5 });
  assert.equal(group0.hardState, null);
  assert.deepEqual(disk.recover(0), group0, "recovering one group leaves the others' records alone");
  assert.deepEqual(disk.replay(3), group3);
});

test("a sync of one group covers what was written before it began, even after another group's checkpoint synced it", () => {
  const disk = new SimDisk<{ term: number }>(0);
  disk.write({ kind: "entries", entries: [entry(1, 1)] }, 1);
  const begun = disk.writtenCount;
  disk.write({ kind: "entries", entries: [entry(1, 1)] }, 2);
  disk.saveSnapshot({ index: 1, term: 1, data: new Uint8Array() }, 2); // durable at once, with everything before it
  disk.write({ kind: "entries", entries: [entry(2, 1)] }, 1);
  disk.syncThrough(begun);
  assert.equal(disk.unsyncedCount, 1, "the write made after the sync began is still volatile");
  disk.syncThrough(disk.writtenCount);
  assert.equal(disk.unsyncedCount, 0);
});

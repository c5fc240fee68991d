import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { LogEntry, Snapshot } from "../../core/engine/contract.js";
import { encodeLogRecord, type LogRecord } from "./log-record.js";
import { LogStore } from "./log-store.js";
import { SharedLog, type SharedLogOpened } from "./shared-log.js";
import { Wal } from "./wal.js";
import { files } from "./storage.test-util.js";

interface Dirs {
  readonly dir: string;
  readonly snapshotDir: string;
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const entry = (index: number, term: number, group = 0): LogEntry => ({ index, term, data: bytes(`group ${group}: entry ${index} of term ${term}`) });
const range = (from: number, to: number, term: number, group = 0): LogEntry[] => Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term, group));
const snapshotAt = (index: number, term: number, group = 0): Snapshot => ({ index, term, data: bytes(`group ${group}: state through ${index}`) });

async function withDirs(run: (dirs: Dirs) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "synod-shared-log-"));
  try {
    await run({ dir: join(root, "wal"), snapshotDir: join(root, "snap") });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function open(dirs: Dirs, segmentBytes = 64 * 1024, log: (line: string) => void = () => {}): SharedLogOpened<string> {
  return SharedLog.open<string>({ ...dirs, encodeHardState: bytes, decodeHardState: text, segmentBytes, log });
}

/** A record as a node before groups wrote it: format 2, no group field (nor a checkpoint's scope). */
function legacy(record: LogRecord): Uint8Array {
  const encoded = encodeLogRecord(record);
  const fields = encoded.subarray(6, record.kind === "checkpoint-begin" ? encoded.length - 1 : encoded.length);
  return Uint8Array.from([2, encoded[1] as number, ...fields]);
}

/**
 * Groups 0 and 2 hold entries 1-5 each; then a sweep began and wrote group 0's checkpoint,
 * and the crash came before group 2's and the sweep's end.
 */
async function crashMidSweep(dirs: Dirs): Promise<void> {
  const { log } = open(dirs);
  for (const group of [0, 2]) log.save(group, { snapshot: null, entries: range(1, 5, 1, group), hardState: `${group}` });
  await log.close();
  const { wal } = Wal.open({ dir: dirs.dir, segmentBytes: 64 * 1024 });
  wal.append(encodeLogRecord({ kind: "sweep-begin" }));
  wal.append(encodeLogRecord({ kind: "checkpoint-begin", snapshot: null, sweep: true }, 0));
  wal.append(encodeLogRecord({ kind: "checkpoint-entries", entries: range(1, 5, 1, 0) }, 0));
  wal.append(encodeLogRecord({ kind: "checkpoint-end", entryCount: 5, hardState: bytes("0") }, 0));
  await wal.close();
}

describe("shared log", () => {
  test("groups share one WAL: each recovers its own log, hard state and snapshot after a crash", async () => {
    await withDirs(async (dirs) => {
      const { log } = open(dirs);
      for (let i = 1; i <= 20; i++) {
        for (const group of [0, 1, 7]) log.save(group, { snapshot: null, entries: [entry(i, 1, group)], hardState: `group ${group} commit ${i}` });
        await log.syncAsync(); // one fdatasync for the three groups' writes
      }
      log.compact(7, snapshotAt(15, 1, 7));
      log.save(1, { snapshot: snapshotAt(30, 2, 1), entries: [entry(31, 2, 1)], hardState: "group 1 installed" });
      log.save(0, { snapshot: null, entries: [entry(21, 1)], hardState: null }); // never synced
      await log.backgroundSettled(); // the process dies here
      const { log: reopened, groups } = open(dirs);
      assert.deepEqual([...groups.keys()].sort(), [0, 1, 7]);
      assert.deepEqual(groups.get(0)?.durable, { hardState: "group 0 commit 20", snapshot: null, entries: range(1, 20, 1, 0) });
      assert.deepEqual(groups.get(1)?.durable, { hardState: "group 1 installed", snapshot: snapshotAt(30, 2, 1), entries: [entry(31, 2, 1)] });
      assert.equal(groups.get(1)?.snapshotKind, "installed");
      assert.deepEqual(groups.get(7)?.durable, { hardState: "group 7 commit 20", snapshot: snapshotAt(15, 1, 7), entries: range(16, 20, 1, 7) });
      assert.equal(groups.get(7)?.snapshotKind, "own");
      assert.ok(existsSync(join(dirs.snapshotDir, "group-7")), "group 7's snapshots live in a directory of their own");
      await reopened.close();
    });
  });

  test("a sweep of every group lets the old segments go, and each group still recovers", async () => {
    await withDirs(async (dirs) => {
      const { log } = open(dirs, 1024);
      for (let i = 1; i <= 60; i++) {
        for (const group of [0, 3]) log.save(group, { snapshot: null, entries: [entry(i, 1, group)], hardState: `${group}:${i}` });
        log.sync();
      }
      assert.ok(files(dirs.dir, ".wal").length >= 8, `${files(dirs.dir, ".wal").length} segments`);
      log.compact(3, snapshotAt(55, 1, 3));
      // Group 0 compacted nothing: the sweep rewrote its whole log (60 entries), group 3's 5.
      assert.ok(files(dirs.dir, ".wal").length <= 6, `${files(dirs.dir, ".wal").length} segments after the sweep`);
      await log.close();
      const { log: reopened, groups } = open(dirs, 1024);
      assert.deepEqual(groups.get(0)?.durable, { hardState: "0:60", snapshot: null, entries: range(1, 60, 1, 0) });
      assert.deepEqual(groups.get(3)?.durable, { hardState: "3:60", snapshot: snapshotAt(55, 1, 3), entries: range(56, 60, 1, 3) });
      await reopened.close();
    });
  });

  test("a compaction while another group's fdatasync runs is durable with the next sync, and frees its old snapshot only then", async () => {
    await withDirs(async (dirs) => {
      const { log } = open(dirs);
      for (const group of [0, 1]) log.save(group, { snapshot: null, entries: range(1, 10, 1, group), hardState: `${group}` });
      log.sync();
      log.compact(1, snapshotAt(4, 1, 1));
      const first = join(dirs.snapshotDir, "group-1", "0000000000000004-0000000000000001.snap");
      assert.ok(existsSync(first));
      log.save(0, { snapshot: null, entries: [entry(11, 1)], hardState: null });
      const running = log.syncAsync();
      log.compact(1, snapshotAt(8, 1, 1)); // while group 0's fdatasync runs
      assert.ok(existsSync(first), "the snapshot the durable log refers to stays until the compaction is durable");
      await running;
      await log.syncAsync();
      assert.equal(existsSync(first), false, "the next sync made the compaction durable and freed the old file");
      await log.close();
      const { log: reopened, groups } = open(dirs);
      assert.deepEqual(groups.get(1)?.durable.snapshot, snapshotAt(8, 1, 1));
      assert.deepEqual(groups.get(0)?.durable.entries, range(1, 11, 1, 0));
      await reopened.close();
    });
  });

  test("syncs asked for while one runs are served together by the next", async () => {
    await withDirs(async (dirs) => {
      const { log } = open(dirs);
      const order: string[] = [];
      log.save(0, { snapshot: null, entries: [entry(1, 1)], hardState: null });
      const first = log.syncAsync().then(() => order.push("first"));
      const waiting = [1, 2, 3].map((group) => {
        log.save(group, { snapshot: null, entries: [entry(1, 1, group)], hardState: null });
        return log.syncAsync().then(() => order.push(`group ${group}`));
      });
      await Promise.all([first, ...waiting]);
      assert.deepEqual(order, ["first", "group 1", "group 2", "group 3"]);
      await log.backgroundSettled();
      const { log: reopened, groups } = open(dirs); // the waiting groups' writes were durable when they heard so
      for (const group of [1, 2, 3]) assert.deepEqual(groups.get(group)?.durable.entries, [entry(1, 1, group)]);
      await reopened.close();
    });
  });

  test("a dropped group is gone after a restart, snapshot files and all; writing to it again starts it empty", async () => {
    await withDirs(async (dirs) => {
      const { log } = open(dirs);
      log.save(5, { snapshot: snapshotAt(10, 2, 5), entries: [entry(11, 2, 5)], hardState: "5" });
      log.save(0, { snapshot: null, entries: [entry(1, 1)], hardState: "0" });
      log.sync();
      log.drop(5);
      assert.equal(log.lastIndex(5), 0);
      await log.close();
      const second = open(dirs);
      assert.deepEqual([...second.groups.keys()], [0]);
      assert.equal(existsSync(join(dirs.snapshotDir, "group-5")), false);
      second.log.save(5, { snapshot: null, entries: [entry(1, 3, 5)], hardState: null });
      await second.log.close();
      const third = open(dirs);
      assert.deepEqual(third.groups.get(5)?.durable, { hardState: null, snapshot: null, entries: [entry(1, 3, 5)] });
      await third.log.close();
    });
  });

  test("a group dropped with a tombstone keeps that hard state alone, through restarts and sweeps; its snapshot files go", async () => {
    await withDirs(async (dirs) => {
      const { log } = open(dirs, 1024);
      log.save(5, { snapshot: snapshotAt(10, 2, 5), entries: [entry(11, 2, 5)], hardState: "term 2" });
      log.sync();
      let last: string | null = null;
      log.drop(5, (hardState) => {
        last = hardState;
        return `${hardState}, dropped at 11`;
      });
      assert.equal(last, "term 2");
      assert.equal(log.lastIndex(5), 0);
      // Other groups fill segments until a sweep rewrites every group's state.
      for (let i = 1; i <= 60; i++) {
        log.save(0, { snapshot: null, entries: [entry(i, 1)], hardState: `0:${i}` });
        log.sync();
      }
      log.compact(0, snapshotAt(55, 1));
      assert.ok(files(dirs.dir, ".wal").length <= 6, `${files(dirs.dir, ".wal").length} segments after the sweep`);
      await log.close();
      const second = open(dirs, 1024);
      assert.deepEqual(second.groups.get(5)?.durable, { hardState: "term 2, dropped at 11", snapshot: null, entries: [] });
      const group5 = join(dirs.snapshotDir, "group-5");
      assert.deepEqual(existsSync(group5) ? files(group5, ".snap") : [], []);
      // A replica made again writes on from the tombstone.
      second.log.save(5, { snapshot: null, entries: [entry(1, 3, 5)], hardState: "term 3" });
      await second.log.close();
      const third = open(dirs, 1024);
      assert.deepEqual(third.groups.get(5)?.durable, { hardState: "term 3", snapshot: null, entries: [entry(1, 3, 5)] });
      await third.log.close();
    });
  });

  test("a log written before groups (format 2) opens as group 0's, its checkpoint standing for a sweep", async () => {
    await withDirs(async (dirs) => {
      const { wal } = Wal.open({ dir: dirs.dir, segmentBytes: 1024 });
      for (let i = 1; i <= 30; i++) wal.append(legacy({ kind: "entries", entries: [entry(i, 1)] }));
      wal.append(legacy({ kind: "hard-state", hardState: bytes("old") }));
      wal.roll();
      const sequence = wal.currentSequence;
      // A checkpoint after which the first segments went, as the old store wrote it.
      wal.append(legacy({ kind: "checkpoint-begin", snapshot: null, sweep: false }));
      wal.append(legacy({ kind: "checkpoint-entries", entries: range(1, 30, 1) }));
      wal.append(legacy({ kind: "checkpoint-end", entryCount: 30, hardState: bytes("old") }));
      wal.append(legacy({ kind: "entries", entries: [entry(31, 2)] }));
      wal.sync();
      wal.removeSegmentsBefore(sequence);
      await wal.close();
      const { store, durable } = LogStore.open<string>({ ...dirs, encodeHardState: bytes, decodeHardState: text, segmentBytes: 1024 });
      assert.deepEqual(durable, { hardState: "old", snapshot: null, entries: [...range(1, 30, 1), entry(31, 2)] });
      // The new version goes on writing, in format 3, behind the old records.
      store.save({ snapshot: null, entries: [entry(32, 2)], hardState: "new" });
      await store.close();
      const again = LogStore.open<string>({ ...dirs, encodeHardState: bytes, decodeHardState: text, segmentBytes: 1024 });
      assert.deepEqual(again.durable, { hardState: "new", snapshot: null, entries: [...range(1, 30, 1), entry(31, 2), entry(32, 2)] });
      await again.store.close();
    });
  });

  test("an interrupted sweep is ignored: the records before it hold every group's state", async () => {
    await withDirs(async (dirs) => {
      await crashMidSweep(dirs);
      const lines: string[] = [];
      const { log: reopened, groups } = open(dirs, 64 * 1024, (line) => lines.push(line));
      assert.deepEqual(groups.get(0)?.durable.entries, range(1, 5, 1, 0));
      assert.deepEqual(groups.get(2)?.durable.entries, range(1, 5, 1, 2));
      assert.ok(lines.some((line) => /ignored the sweep begun/.test(line)), lines.join("\n"));
      await reopened.close();
    });
  });

  test("a snapshot installed right after a restart that followed an interrupted sweep is kept, not taken for part of that sweep", async () => {
    await withDirs(async (dirs) => {
      await crashMidSweep(dirs);
      const second = open(dirs);
      // The first thing after the restart: group 2 installs a leader's snapshot, durably.
      second.log.save(2, { snapshot: snapshotAt(9, 2, 2), entries: [], hardState: "2 installed" });
      second.log.save(2, { snapshot: null, entries: [entry(10, 2, 2)], hardState: null });
      await second.log.close();
      const { log: third, groups } = open(dirs);
      assert.deepEqual(groups.get(2)?.durable, { hardState: "2 installed", snapshot: snapshotAt(9, 2, 2), entries: [entry(10, 2, 2)] });
      assert.deepEqual(groups.get(0)?.durable.entries, range(1, 5, 1, 0));
      await third.close();
    });
  });
});


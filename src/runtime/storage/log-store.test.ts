import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, watch, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { AssertionError } from "../../core/common/assert.js";
import type { DurableState, LogEntry, Snapshot } from "../../core/engine/contract.js";
import { encodeLogRecord } from "./log-record.js";
import { LogStore, type LogStoreOpened } from "./log-store.js";
import { SnapshotFileError, writeSnapshotFile } from "./snapshot-file.js";
import { Wal, WalCorruptionError } from "./wal.js";
import { files, only } from "./storage.test-util.js";

interface Hard {
  readonly term: number;
  readonly vote: number;
  readonly commit: number;
}

interface Dirs {
  readonly dir: string;
  readonly snapshotDir: string;
}

const SEGMENT_BYTES = 64 * 1024;
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const entry = (index: number, term: number): LogEntry => ({ index, term, data: bytes(`entry ${index} of term ${term}`) });
const range = (from: number, to: number, term: number): LogEntry[] => Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));
const hard = (term: number, commit = 0): Hard => ({ term, vote: 1, commit });
const snapshotAt = (index: number, term: number): Snapshot => ({ index, term, data: bytes(`state through ${index}`) });

async function withDirs(run: (dirs: Dirs) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "synod-log-store-"));
  try {
    await run({ dir: join(root, "wal"), snapshotDir: join(root, "snap") });
  } finally {
    // No retries: a store that refused to open must leave nothing writing into the directory.
    rmSync(root, { recursive: true, force: true });
  }
}

function open(dirs: Dirs, options: { segmentBytes?: number; log?: (line: string) => void; decodeHardState?: (b: Uint8Array) => Hard } = {}): LogStoreOpened<Hard> {
  return LogStore.open<Hard>({
    ...dirs,
    encodeHardState: (h) => bytes(JSON.stringify(h)),
    decodeHardState: options.decodeHardState ?? ((b) => JSON.parse(new TextDecoder().decode(b)) as Hard),
    segmentBytes: options.segmentBytes ?? SEGMENT_BYTES,
    log: options.log ?? (() => {}),
  });
}

/** Reopens and checks the recovered state, then closes. */
async function assertRecovers(dirs: Dirs, expected: DurableState<Hard>, kind: "installed" | "own" | null = null): Promise<void> {
  const { store, durable, snapshotKind } = open(dirs);
  assert.deepEqual(durable, expected);
  assert.equal(snapshotKind, kind);
  await store.close();
}


describe("log store", () => {
  test("a new store is empty; what was saved comes back after a close, exactly", async () => {
    await withDirs(async (dirs) => {
      const { store, durable, snapshotKind } = open(dirs);
      assert.deepEqual(durable, { hardState: null, snapshot: null, entries: [] });
      assert.equal(snapshotKind, null);
      store.save({ snapshot: null, entries: range(1, 3, 1), hardState: hard(1) });
      store.sync();
      store.save({ snapshot: null, entries: [entry(4, 1)], hardState: null });
      assert.equal(store.lastIndex, 4);
      await store.close(); // close syncs what was queued
      await assertRecovers(dirs, { hardState: hard(1), snapshot: null, entries: range(1, 4, 1) });
    });
  });

  test("a crash after a sync (no close) recovers everything synced and nothing unsynced", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs);
      for (let term = 1; term <= 5; term++) {
        store.save({ snapshot: null, entries: range(term * 10 - 9, term * 10, term), hardState: hard(term, term * 10 - 5) });
        store.sync();
      }
      store.save({ snapshot: null, entries: [entry(51, 5)], hardState: hard(6) }); // never synced
      // The process dies here.
      const expected = { hardState: hard(5, 45), snapshot: null, entries: [1, 2, 3, 4, 5].flatMap((t) => range(t * 10 - 9, t * 10, t)) };
      await assertRecovers(dirs, expected);
    });
  });

  test("entries replace every stored entry from their first index on, like a Raft follower", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs);
      store.save({ snapshot: null, entries: range(1, 5, 1), hardState: hard(1) });
      store.sync();
      store.save({ snapshot: null, entries: range(3, 4, 2), hardState: hard(2) });
      store.sync();
      assert.equal(store.lastIndex, 4);
      await store.close();
      await assertRecovers(dirs, { hardState: hard(2), snapshot: null, entries: [...range(1, 2, 1), ...range(3, 4, 2)] });
    });
  });

  test("a save that would leave a gap is a programming error and changes nothing", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs);
      store.save({ snapshot: null, entries: range(1, 2, 1), hardState: null });
      assert.throws(() => store.save({ snapshot: null, entries: [entry(4, 1)], hardState: hard(1) }), AssertionError);
      assert.equal(store.lastIndex, 2);
      await store.close();
      await assertRecovers(dirs, { hardState: null, snapshot: null, entries: range(1, 2, 1) });
    });
  });

  test("compaction removes old segments and old snapshots, and a restart still recovers", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs, { segmentBytes: 1024 });
      for (let i = 1; i <= 100; i++) {
        store.save({ snapshot: null, entries: [entry(i, 1)], hardState: hard(1, i - 1) });
        store.sync();
      }
      const before = files(dirs.dir, ".wal").length;
      assert.ok(before >= 8, `${before} segments`);
      store.compact(snapshotAt(60, 1));
      assert.equal(store.snapshotIndex, 60);
      // What is left: the checkpoint (40 entries, about 1.8 KiB: two segments) and at most the segment it began in.
      assert.ok(files(dirs.dir, ".wal").length <= 3, `${files(dirs.dir, ".wal").length} segments after compaction`);
      assert.equal(files(dirs.snapshotDir, ".snap").length, 1);
      store.save({ snapshot: null, entries: [entry(101, 2)], hardState: hard(2, 100) });
      store.sync();
      store.compact(snapshotAt(90, 1));
      assert.deepEqual(files(dirs.snapshotDir, ".snap").map((p) => p.slice(-38)), ["0000000000000090-0000000000000001.snap"]);
      store.compact(snapshotAt(80, 1)); // behind the one held: ignored
      assert.equal(store.snapshotIndex, 90);
      // The process dies here; the compaction was durable on return.
      await assertRecovers(dirs, { hardState: hard(2, 100), snapshot: snapshotAt(90, 1), entries: [...range(91, 100, 1), entry(101, 2)] }, "own");
    });
  });

  test("configuration entries and a snapshot's configuration survive a restart", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs);
      const config = { index: 3, term: 1, data: bytes("voters 1,2,3,4"), kind: "config" as const };
      store.save({ snapshot: null, entries: [...range(1, 2, 1), config, entry(4, 1)], hardState: hard(1, 4) });
      store.sync();
      const membership = { voters: [1, 2, 3, 4], outgoing: [], learners: [5], autoPromote: [5], autoLeave: true, context: bytes('{"4":"127.0.0.1:7104"}') };
      store.compact({ ...snapshotAt(2, 1), membership });
      await store.close();
      await assertRecovers(dirs, { hardState: hard(1, 4), snapshot: { ...snapshotAt(2, 1), membership }, entries: [config, entry(4, 1)] }, "own");
    });
  });

  test("a snapshot file prepared off the event loop is taken by the next compaction, or written again if it vanished", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs);
      store.save({ snapshot: null, entries: range(1, 30, 1), hardState: hard(1, 30) });
      store.sync();
      const snapshot = snapshotAt(20, 1);
      await store.prepareCompaction(snapshot);
      const path = join(dirs.snapshotDir, "0000000000000020-0000000000000001.snap");
      const written = statSync(path).mtimeMs;
      store.save({ snapshot: null, entries: [entry(31, 1)], hardState: hard(1, 31) }); // the log goes on meanwhile
      store.sync();
      store.compact(snapshot);
      assert.equal(statSync(path).mtimeMs, written, "the prepared file was used as it was");
      await store.prepareCompaction(snapshotAt(25, 1));
      rmSync(join(dirs.snapshotDir, "0000000000000025-0000000000000001.snap"));
      store.compact(snapshotAt(25, 1));
      await store.close();
      await assertRecovers(dirs, { hardState: hard(1, 31), snapshot: snapshotAt(25, 1), entries: range(26, 31, 1) }, "own");
    });
  });

  test("an installed snapshot replaces the whole log, durably at once", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs);
      store.save({ snapshot: null, entries: range(1, 10, 1), hardState: hard(1) });
      store.sync();
      store.compact(snapshotAt(5, 1));
      store.save({ snapshot: snapshotAt(20, 3), entries: [entry(21, 3)], hardState: hard(3, 20) });
      assert.equal(store.snapshotIndex, 20);
      assert.equal(store.lastIndex, 21);
      assert.equal(files(dirs.snapshotDir, ".snap").length, 1, "the own snapshot at 5 is gone");
      // No sync and no close: installing is durable on return.
      await assertRecovers(dirs, { hardState: hard(3, 20), snapshot: snapshotAt(20, 3), entries: [entry(21, 3)] }, "installed");
    });
  });

  test("a torn tail is repaired with a log line, losing only the torn save", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs);
      store.save({ snapshot: null, entries: range(1, 3, 1), hardState: hard(1) });
      store.sync();
      store.save({ snapshot: null, entries: [entry(4, 1)], hardState: null });
      await store.close();
      const segment = only(files(dirs.dir, ".wal"), -1);
      truncateSync(segment, statSync(segment).size - 3); // the last write half done
      const lines: string[] = [];
      const reopened = open(dirs, { log: (line) => lines.push(line) });
      assert.deepEqual(reopened.durable, { hardState: hard(1), snapshot: null, entries: range(1, 3, 1) });
      assert.equal(lines.length, 1);
      assert.match(only(lines, 0), /cut short .* truncated/);
      await reopened.store.close();
    });
  });

  test("a corrupt byte in the middle of a segment that is not the last refuses, naming file and offset", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs, { segmentBytes: 1024 });
      for (let i = 1; i <= 60; i++) {
        store.save({ snapshot: null, entries: [entry(i, 1)], hardState: null });
        store.sync();
      }
      await store.close();
      const first = only(files(dirs.dir, ".wal"), 0);
      const segment = readFileSync(first);
      const second = 8 + segment.readUInt32LE(0); // the second record's frame
      segment[second + 8 + 30] = (segment[second + 8 + 30] ?? 0) ^ 0x04;
      writeFileSync(first, segment);
      assert.throws(
        () => open(dirs, { segmentBytes: 1024 }),
        (error: unknown) => error instanceof WalCorruptionError && error.file === first && error.offset === second && /refusing to start/.test(error.message),
      );
    });
  });

  test("a record that passes its checksum but does not decode refuses, naming the file", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs);
      store.save({ snapshot: null, entries: [entry(1, 1)], hardState: null });
      await store.close();
      const { wal } = Wal.open({ dir: dirs.dir, segmentBytes: SEGMENT_BYTES });
      wal.append(new Uint8Array([1, 2, 0, 0, 0, 9])); // an entry batch claiming 9 entries, holding none
      await wal.close();
      assert.throws(() => open(dirs), (error: unknown) => error instanceof WalCorruptionError && error.file.endsWith("0000000000000001.wal") && /does not decode: entry 0's index runs past the end/.test(error.message));
    });
  });

  test("a hard state the caller cannot decode refuses, naming where it was read", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs);
      store.save({ snapshot: null, entries: [], hardState: hard(1) });
      await store.close();
      const refuse = (): Hard => {
        throw new Error("not msgpack");
      };
      assert.throws(() => open(dirs, { decodeHardState: refuse }), (error: unknown) => error instanceof WalCorruptionError && error.offset === 0 && /hard state that does not decode \(Error: not msgpack\)/.test(error.message));
    });
  });

  test("a missing or damaged snapshot file refuses to start, naming the file and what to do", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs);
      store.save({ snapshot: null, entries: range(1, 4, 1), hardState: null });
      store.compact(snapshotAt(3, 1));
      await store.close();
      const file = only(files(dirs.snapshotDir, ".snap"), 0);
      const good = readFileSync(file);
      const damaged = Buffer.from(good);
      damaged[damaged.length - 2] = (damaged[damaged.length - 2] ?? 0) ^ 0x01;
      writeFileSync(file, damaged);
      assert.throws(() => open(dirs), (error: unknown) => error instanceof SnapshotFileError && error.file === file && /data failing its checksum.*rejoin/.test(error.message));
      rmSync(file);
      assert.throws(() => open(dirs), (error: unknown) => error instanceof SnapshotFileError && error.file === file && /is missing.*refuses to start/.test(error.message));
      writeFileSync(file, good);
      await assertRecovers(dirs, { hardState: null, snapshot: snapshotAt(3, 1), entries: [entry(4, 1)] }, "own");
    });
  });

  test("snapshot files no recovered state refers to, and half-written ones, are removed with a log line", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs);
      store.save({ snapshot: null, entries: range(1, 4, 1), hardState: null });
      store.compact(snapshotAt(2, 1));
      // A crash after writing the next snapshot's file, before the checkpoint recorded it.
      writeSnapshotFile(dirs.snapshotDir, snapshotAt(4, 1), "own");
      writeFileSync(join(dirs.snapshotDir, "0000000000000005-0000000000000001.snap.tmp"), "half");
      const lines: string[] = [];
      const reopened = open(dirs, { log: (line) => lines.push(line) });
      assert.deepEqual(reopened.durable, { hardState: null, snapshot: snapshotAt(2, 1), entries: range(3, 4, 1) });
      assert.deepEqual(readdirSync(dirs.snapshotDir), ["0000000000000002-0000000000000001.snap"]);
      assert.equal(lines.filter((line) => /snap/.test(line)).length, 2, lines.join("\n"));
      assert.ok(lines.some((line) => /removed 0000000000000004-0000000000000001\.snap, a snapshot file no recovered state refers to/.test(line)));
      assert.ok(lines.some((line) => /removed .*\.snap\.tmp, a snapshot file a crash left half-written/.test(line)));
      await reopened.store.close();
      await store.close();
    });
  });

  test("a checkpoint a crash cut short is ignored, and the older segments still hold the state", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs);
      store.save({ snapshot: null, entries: range(1, 6, 1), hardState: hard(1, 2) });
      await store.close();
      // What a compaction at 4 had written when the process died: its file, and no checkpoint end.
      writeSnapshotFile(dirs.snapshotDir, snapshotAt(4, 1), "own");
      const { wal } = Wal.open({ dir: dirs.dir, segmentBytes: SEGMENT_BYTES });
      wal.roll();
      wal.append(encodeLogRecord({ kind: "checkpoint-begin", snapshot: { index: 4, term: 1, kind: "own" }, sweep: false }));
      wal.append(encodeLogRecord({ kind: "checkpoint-entries", entries: range(5, 6, 1) }));
      await wal.close();
      const lines: string[] = [];
      const reopened = open(dirs, { log: (line) => lines.push(line) });
      const expected = { hardState: hard(1, 2), snapshot: null, entries: range(1, 6, 1) };
      assert.deepEqual(reopened.durable, expected);
      assert.ok(lines.some((line) => /ignored the checkpoint begun at byte 16 of .*0000000000000002\.wal/.test(line)), lines.join("\n"));
      assert.equal(existsSync(join(dirs.snapshotDir, "0000000000000004-0000000000000001.snap")), false);
      // Normal records after the broken checkpoint's beginning: it stays ignored.
      reopened.store.save({ snapshot: null, entries: [entry(7, 2)], hardState: hard(2, 6) });
      await reopened.store.close();
      await assertRecovers(dirs, { hardState: hard(2, 6), snapshot: null, entries: [...range(1, 6, 1), entry(7, 2)] });
    });
  });

  test("a large log is checkpointed over several records and segments", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs, { segmentBytes: 64 * 1024 });
      const big = (index: number): LogEntry => ({ index, term: 1, data: new Uint8Array(300 * 1024).fill(index) });
      const entries = Array.from({ length: 30 }, (_, i) => big(i + 1)); // 9 MiB: three checkpoint batches
      store.save({ snapshot: null, entries, hardState: hard(1, 1) });
      store.sync();
      store.compact(snapshotAt(1, 1));
      await store.close();
      await assertRecovers(dirs, { hardState: hard(1, 1), snapshot: snapshotAt(1, 1), entries: entries.slice(1) }, "own");
    });
  });

  test("segments an interrupted removal left behind replay harmlessly, even holding half an older checkpoint", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs, { segmentBytes: 1024 });
      for (let i = 1; i <= 60; i++) {
        store.save({ snapshot: null, entries: [entry(i, 1)], hardState: hard(1, i - 1) });
        store.sync();
      }
      store.compact(snapshotAt(10, 1)); // a checkpoint of 50 entries, over several segments
      for (let i = 61; i <= 120; i++) {
        store.save({ snapshot: null, entries: [entry(i, 2)], hardState: hard(2, i - 1) });
        store.sync();
      }
      const saved = new Map(files(dirs.dir, ".wal").map((path) => [path, readFileSync(path)]));
      store.compact(snapshotAt(100, 2));
      await store.close();
      const removed = [...saved.keys()].filter((path) => !existsSync(path));
      assert.ok(removed.length >= 4, `${removed.length} segments removed`);
      const expected = { hardState: hard(2, 119), snapshot: snapshotAt(100, 2), entries: range(101, 120, 2) };
      // Each suffix of the removed segments is what a crash during the removal (oldest first) leaves.
      for (let kept = 1; kept <= removed.length; kept++) {
        for (const path of removed.slice(-kept)) writeFileSync(path, saved.get(path) ?? new Uint8Array(0));
        await assertRecovers(dirs, expected, "own");
      }
    });
  });

  test("a log whose first segments are gone with no checkpoint after them refuses", async () => {
    await withDirs(async (dirs) => {
      const { store } = open(dirs, { segmentBytes: 1024 });
      for (let i = 1; i <= 40; i++) {
        store.save({ snapshot: null, entries: [entry(i, 1)], hardState: null });
        store.sync();
      }
      await store.close();
      rmSync(only(files(dirs.dir, ".wal"), 0));
      const second = only(files(dirs.dir, ".wal"), 0);
      // The refusal starts nothing in the background: no segment being prepared appears (were
      // one written, a caller removing the directory at once would race it).
      const touched: string[] = [];
      const watcher = watch(dirs.dir, (_event, name) => touched.push(String(name)));
      try {
        assert.throws(() => open(dirs, { segmentBytes: 1024 }), (error: unknown) => error instanceof WalCorruptionError && error.file === second && /no complete checkpoint/.test(error.message));
        await new Promise((resolve) => setTimeout(resolve, 100));
      } finally {
        watcher.close();
      }
      assert.deepEqual(touched, []);
    });
  });
});

/**
 * The engine's durable log: what a Ready asks to persist (snapshot, entries, hard state),
 * on the write-ahead log, with snapshot data in files of their own. Recovery gives back
 * exactly what the simulator's disk gives back (`SimDisk.replay()`), which the conformance
 * test checks over random histories with crashes.
 *
 * On disk:
 * - `<dir>/*.wal`: WAL records (log-record.ts): hard states, entry batches, checkpoints.
 *   A snapshot's data never goes in the WAL (it can be large); a checkpoint refers to it.
 * - `<snapshotDir>/<index>-<term>.snap`: snapshot files (snapshot-file.ts), written
 *   atomically, verified by CRC-32C when read back.
 *
 * Checkpoints. The store keeps in memory what replay would rebuild (snapshot reference,
 * every entry after the snapshot, the latest hard state), updated on every `save`; the
 * engine holds those entries too, so this costs a second reference, not a second copy. A
 * checkpoint writes that state whole: `checkpoint-begin` (the snapshot reference),
 * `checkpoint-entries` batches, `checkpoint-end` (the entry count and the hard state),
 * synced; the directory entry of its segment is already durable (a roll fsyncs it). Only
 * then are older segments deleted, and then snapshot files other than the current one.
 * Why that is safe:
 * - Replay applies a complete checkpoint by replacing its state whole, so the records
 *   before it cannot change the result.
 * - Segments are removed only behind a durable checkpoint and oldest first, so what
 *   survives, even an interrupted removal, is a contiguous run of segments holding a
 *   complete checkpoint. Once segment 1 is gone, replay ignores everything before the first
 *   complete checkpoint it meets (normal records, and the remains of an older checkpoint
 *   whose beginning went): those replay harmlessly, superseded. Segment 1 gone and no
 *   complete checkpoint is damage, and refuses to start.
 * - A checkpoint a crash cut short has no end record (or, after the restart, normal records
 *   follow its beginning): replay ignores it, and the older segments, which are removed
 *   only once the checkpoint is durable, still hold the state it would have replaced.
 * - The snapshot file is written (atomically, durably) before the checkpoint that refers to
 *   it, and old snapshot files are removed only after it. A crash in between leaves a file
 *   no recovered state refers to: open removes it, with a log line.
 * The store checkpoints on `compact()` (the node's own snapshot) and on installing a
 * leader's snapshot. It rolls to a fresh segment first only when the current one is at
 * least half full: each roll consumes a preallocated segment, and compacting often should
 * not mean zero-filling 64 MiB as often; what stays behind a checkpoint in its own segment
 * is bounded by the segment size and goes at a later checkpoint.
 *
 * Entry batches larger than ENTRY_RECORD_BYTES_TARGET are split over several records. A
 * crash may then keep a prefix of one save's batches, which is safe because Raft hands the
 * driver entries starting at the first conflicting or new index: a prefix is a shorter
 * log, never one missing entries that were durable.
 *
 * Errors: open throws WalCorruptionError (damaged WAL, or a record that passes its
 * checksum but does not decode) and SnapshotFileError (a referenced snapshot file missing or
 * damaged), both naming the file and what to do. Writes throw whatever the file system
 * throws; after that the store is unusable and the process should exit and recover.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { assert } from "../../core/common/assert.js";
import type { DurableState, LogEntry, Snapshot } from "../../core/engine/contract.js";
import { removeLeftoverTempFiles } from "./atomic-file.js";
import { ENTRY_OVERHEAD_BYTES, encodeLogRecord, entryBatchBytes, type LogRecord, type SnapshotRef } from "./log-record.js";
import { LogState, replayLogRecords } from "./log-state.js";
import { readSnapshotFile, removeSnapshotFilesExcept, snapshotFileName, writeSnapshotFile, writeSnapshotFileAsync } from "./snapshot-file.js";
import { Wal, WAL_RECORD_BYTES_MAX, WAL_SEGMENT_BYTES_DEFAULT, WalCorruptionError } from "./wal.js";

/** Entry batches are split into records of about this size (a single larger entry gets a record of its own). */
export const ENTRY_RECORD_BYTES_TARGET = 4 * 1024 * 1024;
/** The largest entry data a record can hold. */
export const ENTRY_DATA_BYTES_MAX = WAL_RECORD_BYTES_MAX - entryBatchBytes([]) - ENTRY_OVERHEAD_BYTES;

export interface LogStoreOptions<H> {
  /** The WAL's directory, e.g. `<data-dir>/wal`; created if missing. */
  readonly dir: string;
  /** The snapshot files' directory, e.g. `<data-dir>/snap`; created if missing. */
  readonly snapshotDir: string;
  /** The hard state's encoding (the node uses msgpack); opaque to the store. */
  readonly encodeHardState: (hardState: H) => Uint8Array;
  /** Its inverse; a throw at open is reported as corruption of the record it came from. */
  readonly decodeHardState: (bytes: Uint8Array) => H;
  /** WAL segment size (default 64 MiB). */
  readonly segmentBytes?: number;
  /** Recovery notes: a torn tail repaired, leftovers removed, an interrupted checkpoint ignored. */
  readonly log?: (message: string) => void;
}

export interface LogStoreOpened<H> {
  readonly store: LogStore<H>;
  /** What the engine starts from; the caller owns it (the store keeps no reference to the arrays). */
  readonly durable: DurableState<H>;
  /** Whether the snapshot was installed from a leader or taken by this node, or null without one. */
  readonly snapshotKind: SnapshotRef["kind"] | null;
}

/** What one Ready asks to persist. */
export interface LogWrite<H> {
  readonly snapshot: Snapshot | null;
  readonly entries: readonly LogEntry[];
  readonly hardState: H | null;
}

export class LogStore<H> {
  private closing: Promise<void> | null = null;
  /** The snapshot file `prepareCompaction` wrote last, not yet taken by `compact`. */
  private preparedSnapshotFile: string | null = null;

  private constructor(
    private readonly wal: Wal,
    private readonly state: LogState,
    private readonly options: LogStoreOptions<H>,
    private readonly segmentBytes: number,
  ) {}

  /** Opens (creating if needed) the store and recovers the durable state. Throws on damage (see the file comment). */
  static open<H>(options: LogStoreOptions<H>): LogStoreOpened<H> {
    const log = options.log ?? (() => {});
    mkdirSync(options.snapshotDir, { recursive: true });
    for (const name of removeLeftoverTempFiles(options.snapshotDir)) log(`log store: removed ${name}, a snapshot file a crash left half-written`);
    const segmentBytes = options.segmentBytes ?? WAL_SEGMENT_BYTES_DEFAULT;
    const { wal, records, positions, firstSegment } = Wal.open({ dir: options.dir, segmentBytes, log, deferPreparation: true });
    try {
      const start = { wholeHistory: firstSegment.sequence === 1, firstFile: firstSegment.file };
      const { state, hardStatePosition } = replayLogRecords(records, positions, start, log);
      const snapshot = state.snapshot === null ? null : readSnapshotFile(options.snapshotDir, state.snapshot);
      const current = state.snapshot === null ? null : snapshotFileName(state.snapshot.index, state.snapshot.term);
      for (const name of removeSnapshotFilesExcept(options.snapshotDir, current)) {
        log(`log store: removed ${name}, a snapshot file no recovered state refers to (a crash came before it was recorded, or while older ones were removed)`);
      }
      let hardState: H | null = null;
      if (state.hardState !== null) {
        assert(hardStatePosition !== null, "a hard state read from somewhere");
        try {
          hardState = options.decodeHardState(state.hardState);
        } catch (error) {
          throw new WalCorruptionError(hardStatePosition.file, hardStatePosition.offset, `a hard state that does not decode (${String(error)})`);
        }
      }
      const durable: DurableState<H> = { hardState, snapshot, entries: [...state.entries] };
      // Only now, with the recovered log accepted: a refusal above leaves no background
      // write in the directory (a caller may remove it at once).
      wal.prepareNextSegment();
      return { store: new LogStore(wal, state, options, segmentBytes), durable, snapshotKind: state.snapshot?.kind ?? null };
    } catch (error) {
      void wal.close().catch(() => {});
      throw error;
    }
  }

  /** The last index held: the last entry's, or the snapshot's when no entry follows it. */
  get lastIndex(): number {
    return this.state.lastIndex;
  }

  /** The index of the snapshot held (0 without one). */
  get snapshotIndex(): number {
    return this.state.snapshotIndex;
  }

  /**
   * Queues what a Ready asks to persist, in the contract's order: the snapshot (installed
   * from a leader: it replaces the whole log), the entries (replacing every stored entry
   * at or after `entries[0].index`), the hard state. Entries and hard state are durable
   * once `sync()` returns; a snapshot makes the whole write durable at once (its file, then
   * a checkpoint). The store keeps references to the entries, whose data the caller must
   * not modify. Entries behind the snapshot, leaving a gap or not contiguous are a
   * programming error (AssertionError); entry data above ENTRY_DATA_BYTES_MAX is a RangeError.
   * Nothing changes when it throws.
   */
  save(write: LogWrite<H>): void {
    this.assertOpen();
    for (const entry of write.entries) {
      assert(Number.isSafeInteger(entry.index) && entry.index >= 1 && Number.isSafeInteger(entry.term) && entry.term >= 0, `an entry's index and term must be safe integers, got ${entry.index} and ${entry.term}`);
      if (entry.data.length > ENTRY_DATA_BYTES_MAX) throw new RangeError(`entry ${entry.index} holds ${entry.data.length} bytes, above the maximum of ${ENTRY_DATA_BYTES_MAX}`);
    }
    const hardState = write.hardState === null ? null : this.options.encodeHardState(write.hardState);
    if (write.snapshot !== null) return this.install(write.snapshot, write.entries, hardState);
    const problem = this.state.appendProblem(write.entries);
    assert(problem === null, `save: ${problem}`);
    if (write.entries.length > 0) {
      this.state.append(write.entries);
      for (const batch of batches(write.entries)) this.wal.append(encodeLogRecord({ kind: "entries", entries: batch }));
    }
    if (hardState !== null) {
      this.state.hardState = hardState;
      this.wal.append(encodeLogRecord({ kind: "hard-state", hardState }));
    }
  }

  /** Makes everything saved durable: one write and one fdatasync (group commit). */
  sync(): void {
    this.assertOpen();
    this.wal.sync();
  }

  /**
   * `sync()` with the fdatasync off the event loop; what was saved before the call is durable
   * when the promise resolves. Until then only `save` of entries and hard states may be
   * called (they buffer, for the next sync); anything else throws (see `Wal.syncAsync`).
   */
  syncAsync(): Promise<void> {
    this.assertOpen();
    return this.wal.syncAsync();
  }

  /**
   * The node's own snapshot at `snapshot.index` (at most the applied index): writes the
   * snapshot file atomically, then checkpoints the log so everything before is removable,
   * then removes old segments and old snapshot files. Durable on return, with everything
   * saved before it. A snapshot at or behind the one held changes nothing (the simulator's
   * disk ignores it too).
   */
  compact(snapshot: Snapshot): void {
    this.assertOpen();
    assertSnapshot(snapshot);
    if (snapshot.index <= this.state.snapshotIndex) return;
    const name = snapshotFileName(snapshot.index, snapshot.term);
    // A file `prepareCompaction` wrote is used as it is (unless something removed it since).
    if (this.preparedSnapshotFile !== name || !existsSync(join(this.options.snapshotDir, name))) writeSnapshotFile(this.options.snapshotDir, snapshot, "own");
    this.preparedSnapshotFile = null;
    this.state.compact({ index: snapshot.index, term: snapshot.term, kind: "own" });
    this.checkpoint();
  }

  /**
   * Writes the file of a snapshot that `compact` will take next, off the event loop (it is
   * the bulk of a compaction's I/O); `compact` then only checkpoints the log. It touches
   * nothing but its own file, so it may run while the log is being written. A snapshot
   * never compacted leaves a file that the next checkpoint or open removes.
   */
  async prepareCompaction(snapshot: Snapshot): Promise<void> {
    this.assertOpen();
    assertSnapshot(snapshot);
    // `compact` will ignore a snapshot at or behind the one held — and its file would have
    // the held snapshot's name when index and term are equal, overwriting it.
    if (snapshot.index <= this.state.snapshotIndex) return;
    await writeSnapshotFileAsync(this.options.snapshotDir, snapshot, "own");
    this.preparedSnapshotFile = snapshotFileName(snapshot.index, snapshot.term);
  }

  /**
   * Resolves once the WAL's background preparation of its next segment is idle. Tests that
   * simulate a crash by abandoning a store in-process wait for it, so that the abandoned
   * store's fill cannot touch the next store's files (a real crash ends it with the process).
   */
  async backgroundSettled(): Promise<void> {
    await this.wal.nextSegmentSettled();
  }

  /** Syncs what is queued, closes the WAL, and waits for its background work to stop. */
  close(): Promise<void> {
    if (this.closing === null) this.closing = this.wal.close();
    return this.closing;
  }

  private install(snapshot: Snapshot, entries: readonly LogEntry[], hardState: Uint8Array | null): void {
    assertSnapshot(snapshot);
    // After the snapshot the log is empty: the entries must begin right after it.
    const problem = new LogState({ index: snapshot.index, term: snapshot.term, kind: "installed" }).appendProblem(entries);
    assert(problem === null, `save: ${problem}`);
    writeSnapshotFile(this.options.snapshotDir, snapshot, "installed");
    this.state.install({ index: snapshot.index, term: snapshot.term, kind: "installed" });
    this.state.append(entries);
    if (hardState !== null) this.state.hardState = hardState;
    this.checkpoint();
  }

  /** Writes the whole state as a checkpoint, durably, then removes what it supersedes. */
  private checkpoint(): void {
    if (this.wal.currentSegmentUsedBytes >= this.segmentBytes / 2) this.wal.roll();
    const sequence = this.wal.currentSequence;
    const records: LogRecord[] = [{ kind: "checkpoint-begin", snapshot: this.state.snapshot }];
    for (const batch of batches(this.state.entries)) records.push({ kind: "checkpoint-entries", entries: batch });
    records.push({ kind: "checkpoint-end", entryCount: this.state.entries.length, hardState: this.state.hardState });
    for (const record of records) this.wal.append(encodeLogRecord(record));
    this.wal.sync();
    this.wal.removeSegmentsBefore(sequence);
    const current = this.state.snapshot === null ? null : snapshotFileName(this.state.snapshot.index, this.state.snapshot.term);
    removeSnapshotFilesExcept(this.options.snapshotDir, current);
  }

  private assertOpen(): void {
    if (this.closing !== null) throw new Error("use of a closed log store");
  }
}

function assertSnapshot(snapshot: Snapshot): void {
  assert(Number.isSafeInteger(snapshot.index) && snapshot.index >= 1, `a snapshot index must be a positive safe integer, got ${snapshot.index}`);
  assert(Number.isSafeInteger(snapshot.term) && snapshot.term >= 0, `a snapshot term must be a safe non-negative integer, got ${snapshot.term}`);
}

/** Cuts entries into runs whose records stay near ENTRY_RECORD_BYTES_TARGET. */
function batches(entries: readonly LogEntry[]): (readonly LogEntry[])[] {
  const out: (readonly LogEntry[])[] = [];
  let start = 0;
  let bytes = entryBatchBytes([]);
  for (let i = 0; i < entries.length; i++) {
    const entryBytes = ENTRY_OVERHEAD_BYTES + (entries[i] as LogEntry).data.length;
    if (i > start && bytes + entryBytes > ENTRY_RECORD_BYTES_TARGET) {
      out.push(entries.slice(start, i));
      start = i;
      bytes = entryBatchBytes([]);
    }
    bytes += entryBytes;
  }
  if (start < entries.length) out.push(entries.slice(start));
  return out;
}

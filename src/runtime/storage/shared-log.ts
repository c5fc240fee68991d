/**
 * One write-ahead log for every consensus group a node hosts (multi-raft storage, as TiKV's
 * raft-engine and dragonboat do it): each group's hard state, entries and snapshots go to
 * the same WAL, in records tagged with the group (log-record.ts), so one fdatasync makes
 * every group's writes of an event-loop turn durable. `LogStore` (log-store.ts) is one
 * group's view of it, which the replica drives through `WalLogStorage`.
 *
 * The records, the files, and why removing segments behind a sweep (a checkpoint of every
 * group) is safe are in log-store.ts. The cost of sharing: a compaction frees no segment by
 * itself, since other groups' records share them; a sweep rewrites what every group holds
 * after its snapshot, and comes at most once per segment the WAL fills.
 *
 * Syncs. `syncAsync` runs the fdatasync on the thread pool. A request that comes while one
 * runs waits for the next, which starts as soon as that one completes and serves every
 * request that waited (group commit, core/multi/group-commit.ts). Compactions and installs
 * that come while a sync runs only buffer their records; what they free (older snapshot
 * files, segments) goes once a later sync has made them durable. With one group, nothing
 * ever waits: the replica compacts and installs only while none of its syncs runs, and each
 * call is durable on return, as before groups.
 *
 * Errors: open throws WalCorruptionError and SnapshotFileError, naming the file and what to
 * do. Writes throw whatever the file system throws; after that the log is unusable and the
 * process should exit and recover.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { assert } from "../../core/common/assert.js";
import { ownedCopy } from "../../core/common/bytes.js";
import type { DurableState, LogEntry, Snapshot } from "../../core/engine/contract.js";
import { assertGroupId, DEFAULT_GROUP, type GroupId } from "../../core/multi/group.js";
import { removeLeftoverTempFiles, syncDirectory } from "./atomic-file.js";
import { ENTRY_OVERHEAD_BYTES, encodeLogRecord, entryBatchBytes, type LogRecord, type SnapshotRef } from "./log-record.js";
import { LogState, replayLogRecords } from "./log-state.js";
import { readSnapshotFile, removeSnapshotFilesExcept, snapshotFileName, writeSnapshotFile, writeSnapshotFileAsync } from "./snapshot-file.js";
import { Wal, WAL_RECORD_BYTES_MAX, WAL_SEGMENT_BYTES_DEFAULT, WalCorruptionError } from "./wal.js";

/** Entry batches are split into records of about this size (a single larger entry gets a record of its own). */
export const ENTRY_RECORD_BYTES_TARGET = 4 * 1024 * 1024;
/** The largest entry data a record can hold. */
export const ENTRY_DATA_BYTES_MAX = WAL_RECORD_BYTES_MAX - entryBatchBytes([]) - ENTRY_OVERHEAD_BYTES;

const GROUP_DIR_PATTERN = /^group-(\d+)$/;

export interface SharedLogOptions<H> {
  /** The WAL's directory, e.g. `<data-dir>/wal`; created if missing. */
  readonly dir: string;
  /** The snapshot files' directory, e.g. `<data-dir>/snap`; created if missing. */
  readonly snapshotDir: string;
  /** The hard state's encoding (the node uses msgpack); opaque to the log. */
  readonly encodeHardState: (hardState: H) => Uint8Array;
  /** Its inverse; a throw at open is reported as corruption of the record it came from. */
  readonly decodeHardState: (bytes: Uint8Array) => H;
  /** WAL segment size (default 64 MiB). */
  readonly segmentBytes?: number;
  /** Recovery notes: a torn tail repaired, leftovers removed, an interrupted checkpoint ignored. */
  readonly log?: (message: string) => void;
}

/** One group's durable state as recovered at open. */
export interface RecoveredGroup<H> {
  /** What the engine starts from; the caller owns it (the log keeps no reference to the arrays). */
  readonly durable: DurableState<H>;
  /** Whether the snapshot was installed from a leader or taken by this node, or null without one. */
  readonly snapshotKind: SnapshotRef["kind"] | null;
}

export interface SharedLogOpened<H> {
  readonly log: SharedLog<H>;
  /** Every group with something durable, by id. A group absent here starts empty. */
  readonly groups: ReadonlyMap<GroupId, RecoveredGroup<H>>;
}

/** What one Ready asks to persist. */
export interface LogWrite<H> {
  readonly snapshot: Snapshot | null;
  readonly entries: readonly LogEntry[];
  readonly hardState: H | null;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class SharedLog<H> {
  private closing: Promise<void> | null = null;
  /** The snapshot file `prepareCompaction` wrote last for each group, not yet taken by `compact`. */
  private readonly preparedSnapshotFiles = new Map<GroupId, string>();
  /** An fdatasync of `syncAsync` runs; the WAL only buffers meanwhile. */
  private syncing = false;
  /** Sync requests that came while one ran: the next sync serves them. */
  private waiting: Waiter[] = [];
  /** What may go once the records buffered so far are durable (taken by the next sync to start). */
  private afterDurable: (() => void)[] = [];
  /** A compaction or install asked for a sweep that a running sync held back. */
  private sweepWanted = false;

  private constructor(
    private readonly wal: Wal,
    private readonly states: Map<GroupId, LogState>,
    private readonly options: SharedLogOptions<H>,
    private readonly segmentBytes: number,
  ) {}

  /** Opens (creating if needed) the log and recovers every group's durable state. Throws on damage (see the file comment). */
  static open<H>(options: SharedLogOptions<H>): SharedLogOpened<H> {
    const log = options.log ?? (() => {});
    mkdirSync(options.snapshotDir, { recursive: true });
    const segmentBytes = options.segmentBytes ?? WAL_SEGMENT_BYTES_DEFAULT;
    const { wal, records, positions, firstSegment } = Wal.open({ dir: options.dir, segmentBytes, log, deferPreparation: true });
    try {
      const start = { wholeHistory: firstSegment.sequence === 1, firstFile: firstSegment.file };
      const replayed = replayLogRecords(records, positions, start, log);
      const states = new Map<GroupId, LogState>();
      const groups = new Map<GroupId, RecoveredGroup<H>>();
      for (const [group, { state, hardStatePosition }] of replayed) {
        const dir = snapshotDirOf(options.snapshotDir, group);
        const snapshot = state.snapshot === null ? null : readSnapshotFile(dir, state.snapshot);
        let hardState: H | null = null;
        if (state.hardState !== null) {
          assert(hardStatePosition !== null, "a hard state read from somewhere");
          try {
            hardState = options.decodeHardState(state.hardState);
          } catch (error) {
            throw new WalCorruptionError(hardStatePosition.file, hardStatePosition.offset, `a hard state that does not decode (${String(error)})`);
          }
        }
        states.set(group, state);
        groups.set(group, { durable: { hardState, snapshot, entries: [...state.entries] }, snapshotKind: state.snapshot?.kind ?? null });
      }
      removeUnreferencedSnapshots(options.snapshotDir, states, log);
      // Only now, with the recovered log accepted: a refusal above leaves no background
      // write in the directory (a caller may remove it at once).
      wal.prepareNextSegment();
      return { log: new SharedLog(wal, states, options, segmentBytes), groups };
    } catch (error) {
      void wal.close().catch(() => {});
      throw error;
    }
  }

  /** The groups whose log is held (recovered, or written since). */
  get groupIds(): GroupId[] {
    return [...this.states.keys()];
  }

  /** The last index held for `group`: its last entry's, or its snapshot's (0 for a group with nothing). */
  lastIndex(group: GroupId): number {
    return this.states.get(group)?.lastIndex ?? 0;
  }

  /** The index of the snapshot held for `group` (0 without one). */
  snapshotIndex(group: GroupId): number {
    return this.states.get(group)?.snapshotIndex ?? 0;
  }

  /**
   * Queues what one of `group`'s Readies asks to persist, in the contract's order: the
   * snapshot (installed from a leader: it replaces the group's whole log), the entries
   * (replacing every stored entry at or after `entries[0].index`), the hard state. Entries
   * and hard state are durable once a sync that began after this call completes; an
   * installed snapshot makes the whole write durable on return when no sync runs (else with
   * the next one). The log keeps references to the entries, whose data the caller must not
   * modify. Entries behind the snapshot, leaving a gap or not contiguous are a programming
   * error (AssertionError); entry data above ENTRY_DATA_BYTES_MAX is a RangeError. Nothing
   * changes when it throws.
   */
  save(group: GroupId, write: LogWrite<H>): void {
    this.assertOpen();
    assertGroupId(group);
    for (const entry of write.entries) {
      assert(Number.isSafeInteger(entry.index) && entry.index >= 1 && Number.isSafeInteger(entry.term) && entry.term >= 0, `an entry's index and term must be safe integers, got ${entry.index} and ${entry.term}`);
      if (entry.data.length > ENTRY_DATA_BYTES_MAX) throw new RangeError(`entry ${entry.index} holds ${entry.data.length} bytes, above the maximum of ${ENTRY_DATA_BYTES_MAX}`);
    }
    // Kept in memory until the next: a copy of its own, not a view into the encoder's buffer (see ownedCopy).
    const hardState = write.hardState === null ? null : ownedCopy(this.options.encodeHardState(write.hardState));
    if (write.snapshot !== null) return this.install(group, write.snapshot, write.entries, hardState);
    const state = this.stateOf(group);
    const problem = state.appendProblem(write.entries);
    assert(problem === null, `save: ${problem}`);
    if (write.entries.length > 0) {
      state.append(write.entries);
      for (const batch of batches(write.entries)) this.wal.append(encodeLogRecord({ kind: "entries", entries: batch }, group));
    }
    if (hardState !== null) {
      state.hardState = hardState;
      this.wal.append(encodeLogRecord({ kind: "hard-state", hardState }, group));
    }
  }

  /** Makes everything saved durable: one write and one fdatasync. Throws while a `syncAsync` runs. */
  sync(): void {
    this.assertOpen();
    this.wal.sync();
    this.afterSync(this.takeAfterDurable());
  }

  /**
   * Makes everything saved before the call durable, with the fdatasync off the event loop.
   * A call while a sync runs waits for the next one, which serves every call that waited.
   * Meanwhile `save`, `compact` and `drop` may go on (they buffer for a later sync).
   */
  syncAsync(): Promise<void> {
    this.assertOpen();
    if (this.syncing) return new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
    return this.startSync();
  }

  /**
   * `group`'s own snapshot at `snapshot.index` (at most its applied index): writes the
   * snapshot file atomically (unless `prepareCompaction` did), records the compaction, and
   * sweeps when that lets a segment go. Durable on return, with everything saved before it,
   * when no sync runs; else with the next sync (a crash before then loses only the
   * compaction: the log still holds the entries). A snapshot at or behind the one held
   * changes nothing (the simulator's disk ignores it too).
   */
  compact(group: GroupId, snapshot: Snapshot): void {
    this.assertOpen();
    assertSnapshot(snapshot);
    const state = this.stateOf(group);
    if (snapshot.index <= state.snapshotIndex) return;
    const dir = this.snapshotDir(group);
    const name = snapshotFileName(snapshot.index, snapshot.term);
    // A file `prepareCompaction` wrote is used as it is (unless something removed it since).
    if (this.preparedSnapshotFiles.get(group) !== name || !existsSync(join(dir, name))) writeSnapshotFile(dir, snapshot, "own");
    this.preparedSnapshotFiles.delete(group);
    state.compact({ index: snapshot.index, term: snapshot.term, kind: "own" });
    this.wal.append(encodeLogRecord({ kind: "compact", index: snapshot.index, term: snapshot.term }, group));
    this.freeWhenDurable(group);
  }

  /**
   * Writes the file of a snapshot that `compact` will take next, off the event loop (it is
   * the bulk of a compaction's I/O); `compact` then only records it. It touches nothing but
   * its own file, so it may run while the log is being written. A snapshot never compacted
   * leaves a file that a later compaction or open removes.
   */
  async prepareCompaction(group: GroupId, snapshot: Snapshot): Promise<void> {
    this.assertOpen();
    assertSnapshot(snapshot);
    // `compact` will ignore a snapshot at or behind the one held — and its file would have
    // the held snapshot's name when index and term are equal, overwriting it.
    if (snapshot.index <= this.snapshotIndex(group)) return;
    await writeSnapshotFileAsync(this.snapshotDir(group), snapshot, "own");
    this.preparedSnapshotFiles.set(group, snapshotFileName(snapshot.index, snapshot.term));
  }

  /**
   * Forgets `group` (its replica left this node): a drop record, then, once it is durable,
   * its snapshot files. What `tombstone` makes of its last hard state (EngineFactory.tombstone),
   * when not null, is saved after the drop record, in the same sync, and returned: the group
   * holds that hard state alone, and a replica made again starts from it. Saving to the
   * group again starts it from there.
   */
  drop(group: GroupId, tombstone: (last: H | null) => H | null = () => null): H | null {
    this.assertOpen();
    const state = this.states.get(group);
    if (state === undefined) return null;
    const last = state.hardState === null ? null : this.options.decodeHardState(state.hardState);
    this.states.delete(group);
    this.preparedSnapshotFiles.delete(group);
    this.wal.append(encodeLogRecord({ kind: "drop" }, group));
    const kept = tombstone(last);
    if (kept !== null) this.save(group, { snapshot: null, entries: [], hardState: kept });
    this.afterDurable.push(() => {
      // A replica made again may have been sent a snapshot meanwhile: its file stays.
      const snapshot = this.states.get(group)?.snapshot ?? null;
      removeSnapshotFilesExcept(this.snapshotDir(group), new Set(snapshot === null ? [] : [snapshotFileName(snapshot.index, snapshot.term)]));
    });
    if (!this.syncing) this.sync();
    return kept;
  }

  /**
   * Resolves once the WAL's background preparation of its next segment is idle. Tests that
   * simulate a crash by abandoning a log in-process wait for it, so that the abandoned
   * log's fill cannot touch the next one's files (a real crash ends it with the process).
   */
  async backgroundSettled(): Promise<void> {
    await this.wal.nextSegmentSettled();
  }

  /** Waits for a running sync, syncs what is queued, closes the WAL and waits for its background work to stop. */
  close(): Promise<void> {
    if (this.closing === null) this.closing = this.wal.close();
    return this.closing;
  }

  private install(group: GroupId, snapshot: Snapshot, entries: readonly LogEntry[], hardState: Uint8Array | null): void {
    assertSnapshot(snapshot);
    const ref: SnapshotRef = { index: snapshot.index, term: snapshot.term, kind: "installed" };
    // After the snapshot the log is empty: the entries must begin right after it.
    const problem = new LogState(ref).appendProblem(entries);
    assert(problem === null, `save: ${problem}`);
    writeSnapshotFile(this.snapshotDir(group), snapshot, "installed");
    const state = this.stateOf(group);
    state.install(ref);
    state.append(entries);
    if (hardState !== null) state.hardState = hardState;
    for (const record of checkpointOf(state, false)) this.wal.append(encodeLogRecord(record, group));
    this.freeWhenDurable(group);
  }

  /**
   * After a compaction or an install: their records become durable now (no sync runs) or
   * with the next sync; then the group's older snapshot files go, and a sweep frees segments.
   */
  private freeWhenDurable(group: GroupId): void {
    this.afterDurable.push(() => this.removeOldSnapshots(group));
    this.sweepWanted = true;
    if (!this.syncing) this.sync();
  }

  private startSync(): Promise<void> {
    const covered = this.takeAfterDurable();
    const syncing = this.wal.syncAsync();
    this.syncing = true;
    return syncing.then(
      () => {
        this.syncing = false;
        try {
          this.afterSync(covered);
        } catch (error) {
          // A sweep that could not be written leaves the log unusable: every waiting request fails.
          for (const waiter of this.waiting.splice(0)) waiter.reject(error);
          throw error;
        }
        this.serveWaiting();
      },
      (error: unknown) => {
        this.syncing = false;
        const waiting = this.waiting;
        this.waiting = [];
        for (const waiter of waiting) waiter.reject(error);
        throw error;
      },
    );
  }

  /** Starts the sync the waiting requests need, if any waited. */
  private serveWaiting(): void {
    if (this.waiting.length === 0) return;
    const waiting = this.waiting;
    this.waiting = [];
    // Closing syncs what is queued: the waiting requests are served by that.
    (this.closing ?? this.startSync()).then(
      () => {
        for (const waiter of waiting) waiter.resolve();
      },
      (error: unknown) => {
        for (const waiter of waiting) waiter.reject(error);
      },
    );
  }

  private takeAfterDurable(): (() => void)[] {
    const taken = this.afterDurable;
    this.afterDurable = [];
    return taken;
  }

  /** What a sync made durable lets go: older snapshot files, then (when asked for) segments behind a sweep. */
  private afterSync(covered: readonly (() => void)[]): void {
    for (const free of covered) free();
    if (this.sweepWanted && !this.syncing && this.closing === null) this.sweep();
  }

  /** Writes every group's whole log, durably, then removes the segments before it (if any could go). */
  private sweep(): void {
    this.sweepWanted = false;
    if (this.wal.currentSequence === this.wal.firstSequence) return; // nothing older to free
    if (this.wal.currentSegmentUsedBytes >= this.segmentBytes / 2) this.wal.roll();
    const sequence = this.wal.currentSequence;
    if (sequence === this.wal.firstSequence) return;
    this.wal.append(encodeLogRecord({ kind: "sweep-begin" }));
    for (const [group, state] of this.states) for (const record of checkpointOf(state, true)) this.wal.append(encodeLogRecord(record, group));
    this.wal.append(encodeLogRecord({ kind: "sweep-end", groupCount: this.states.size }));
    this.wal.sync();
    this.wal.removeSegmentsBefore(sequence);
    for (const group of this.states.keys()) this.removeOldSnapshots(group);
  }

  /** Removes `group`'s snapshot files but the one its log refers to now. */
  private removeOldSnapshots(group: GroupId): void {
    const state = this.states.get(group);
    if (state === undefined) return;
    const keep = new Set<string>();
    if (state.snapshot !== null) keep.add(snapshotFileName(state.snapshot.index, state.snapshot.term));
    const prepared = this.preparedSnapshotFiles.get(group);
    if (prepared !== undefined) keep.add(prepared);
    removeSnapshotFilesExcept(this.snapshotDir(group), keep);
  }

  private stateOf(group: GroupId): LogState {
    let state = this.states.get(group);
    if (state === undefined) {
      assertGroupId(group);
      state = new LogState();
      this.states.set(group, state);
    }
    return state;
  }

  /** `group`'s snapshot directory, created (durably) the first time it is needed. */
  private snapshotDir(group: GroupId): string {
    const dir = snapshotDirOf(this.options.snapshotDir, group);
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true });
      syncDirectory(this.options.snapshotDir);
    }
    return dir;
  }

  private assertOpen(): void {
    if (this.closing !== null) throw new Error("use of a closed log store");
  }
}

/** Where `group`'s snapshot files are: group 0's in the directory itself (as before groups). */
export function snapshotDirOf(snapshotDir: string, group: GroupId): string {
  return group === DEFAULT_GROUP ? snapshotDir : join(snapshotDir, `group-${group}`);
}

/** A group's whole log as a checkpoint's records. */
function checkpointOf(state: LogState, sweep: boolean): LogRecord[] {
  const records: LogRecord[] = [{ kind: "checkpoint-begin", snapshot: state.snapshot, sweep }];
  for (const batch of batches(state.entries)) records.push({ kind: "checkpoint-entries", entries: batch });
  records.push({ kind: "checkpoint-end", entryCount: state.entries.length, hardState: state.hardState });
  return records;
}

/** At open: snapshot files (and group directories) no recovered log refers to go. */
function removeUnreferencedSnapshots(snapshotDir: string, states: ReadonlyMap<GroupId, LogState>, log: (message: string) => void): void {
  const why = "a snapshot file no recovered state refers to (a crash came before it was recorded, or while older ones were removed)";
  const groupDirs = readdirSync(snapshotDir).filter((name) => GROUP_DIR_PATTERN.test(name));
  const groups = new Set<GroupId>([DEFAULT_GROUP, ...groupDirs.map((name) => Number((GROUP_DIR_PATTERN.exec(name) as RegExpExecArray)[1]))]);
  for (const group of groups) {
    const dir = snapshotDirOf(snapshotDir, group);
    const state = states.get(group);
    for (const name of removeLeftoverTempFiles(dir)) log(`log store: removed ${name}, a snapshot file a crash left half-written`);
    const keep = new Set<string>();
    if (state !== undefined && state.snapshot !== null) keep.add(snapshotFileName(state.snapshot.index, state.snapshot.term));
    for (const name of removeSnapshotFilesExcept(dir, keep)) log(`log store: removed ${group === DEFAULT_GROUP ? name : `group-${group}/${name}`}, ${why}`);
    if (group !== DEFAULT_GROUP && state === undefined) {
      rmSync(dir, { recursive: true, force: true });
      syncDirectory(snapshotDir);
    }
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

/**
 * One group's durable log: what a Ready asks to persist (snapshot, entries, hard state), on
 * the write-ahead log the node's groups share (shared-log.ts), with snapshot data in files
 * of their own. `LogStore.open` opens a log for one group (group 0) and closes it with the
 * store; a node hosting many groups opens a `SharedLog` and takes a `LogStore` per group.
 * Recovery gives back exactly what the simulator's disk gives back (`SimDisk.replay()`),
 * for one group and for many over one WAL, which the conformance test checks over random
 * histories with crashes.
 *
 * On disk:
 * - `<dir>/*.wal`: WAL records (log-record.ts), each tagged with its group: hard states,
 *   entry batches, compactions, checkpoints and sweeps. A snapshot's data never goes in
 *   the WAL (it can be large); a record refers to its file.
 * - `<snapshotDir>/<index>-<term>.snap` (group 0) and `<snapshotDir>/group-<g>/...`:
 *   snapshot files (snapshot-file.ts), written atomically, verified by CRC-32C when read.
 *
 * In memory the log keeps what replay would rebuild for each group (snapshot reference,
 * every entry after the snapshot, the latest hard state), updated on every `save`; the
 * engine holds those entries too, so this costs a second reference, not a second copy.
 * The node's own snapshot is a `compact` record; a leader's snapshot is a *checkpoint* of
 * the group: `checkpoint-begin` (the snapshot reference), `checkpoint-entries` batches,
 * `checkpoint-end` (the entry count and the hard state), which replaces the group's log.
 * Segments go behind a *sweep*: `sweep-begin`, a checkpoint of every group, `sweep-end`,
 * synced; the directory entry of its segment is already durable (a roll fsyncs it). Only
 * then are older segments deleted, and then snapshot files other than the current ones.
 * Why that is safe:
 * - Replay applies a complete sweep by replacing the whole state, so the records before it
 *   cannot change the result.
 * - Segments are removed only behind a durable sweep and oldest first, so what survives,
 *   even an interrupted removal, is a contiguous run of segments holding a complete sweep.
 *   Once segment 1 is gone, replay ignores everything before the first complete sweep it
 *   meets (normal records, and the remains of an older sweep whose beginning went): those
 *   replay harmlessly, superseded. Segment 1 gone and no complete sweep is damage, and
 *   refuses to start.
 * - A checkpoint or sweep a crash cut short has no end record (or, after the restart,
 *   normal records follow its beginning): replay ignores it, and the records before it,
 *   which are removed only once it is durable, still hold the state it would have replaced.
 * - A snapshot file is written (atomically, durably) before the record that refers to it,
 *   and old snapshot files are removed only once that record is durable. A crash in
 *   between leaves a file no recovered state refers to: open removes it, with a log line.
 * A sweep follows a compaction or an installed snapshot when an older segment exists. It
 * rolls to a fresh segment first only when the current one is at least half full: each
 * roll consumes a preallocated segment, and compacting often should not mean zero-filling
 * 64 MiB as often; what stays behind a sweep in its own segment is bounded by the segment
 * size and goes at a later one.
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
import { DEFAULT_GROUP, type GroupId } from "../../core/multi/group.js";
import type { SnapshotRef } from "./log-record.js";
import { type LogWrite, SharedLog, type SharedLogOptions } from "./shared-log.js";
import type { DurableState, Snapshot } from "../../core/engine/contract.js";

export { ENTRY_DATA_BYTES_MAX, ENTRY_RECORD_BYTES_TARGET, type LogWrite } from "./shared-log.js";

export type LogStoreOptions<H> = SharedLogOptions<H>;

export interface LogStoreOpened<H> {
  readonly store: LogStore<H>;
  /** What the engine starts from; the caller owns it (the store keeps no reference to the arrays). */
  readonly durable: DurableState<H>;
  /** Whether the snapshot was installed from a leader or taken by this node, or null without one. */
  readonly snapshotKind: SnapshotRef["kind"] | null;
}

export class LogStore<H> {
  constructor(
    private readonly log: SharedLog<H>,
    readonly group: GroupId,
  ) {}

  /**
   * Opens (creating if needed) a log of one group, group 0, and recovers its durable state.
   * Throws on damage (see the file comment). Closing the store closes the log.
   */
  static open<H>(options: LogStoreOptions<H>): LogStoreOpened<H> {
    const { log, groups } = SharedLog.open(options);
    const recovered = groups.get(DEFAULT_GROUP);
    return {
      store: new LogStore(log, DEFAULT_GROUP),
      durable: recovered?.durable ?? { hardState: null, snapshot: null, entries: [] },
      snapshotKind: recovered?.snapshotKind ?? null,
    };
  }

  /** The last index held: the last entry's, or the snapshot's when no entry follows it. */
  get lastIndex(): number {
    return this.log.lastIndex(this.group);
  }

  /** The index of the snapshot held (0 without one). */
  get snapshotIndex(): number {
    return this.log.snapshotIndex(this.group);
  }

  /**
   * Queues what a Ready asks to persist, in the contract's order: the snapshot (installed
   * from a leader: it replaces the whole log), the entries (replacing every stored entry
   * at or after `entries[0].index`), the hard state. Entries and hard state are durable
   * once `sync()` returns; a snapshot makes the whole write durable at once (its file, then
   * a checkpoint) when no sync of the shared log runs. The store keeps references to the
   * entries, whose data the caller must not modify. Entries behind the snapshot, leaving a
   * gap or not contiguous are a programming error (AssertionError); entry data above
   * ENTRY_DATA_BYTES_MAX is a RangeError. Nothing changes when it throws.
   */
  save(write: LogWrite<H>): void {
    this.log.save(this.group, write);
  }

  /** Makes everything saved durable: one write and one fdatasync (group commit). */
  sync(): void {
    this.log.sync();
  }

  /**
   * `sync()` with the fdatasync off the event loop; what was saved before the call is durable
   * when the promise resolves. Meanwhile `save` may be called (it buffers, for the next sync).
   */
  syncAsync(): Promise<void> {
    return this.log.syncAsync();
  }

  /**
   * The node's own snapshot at `snapshot.index` (at most the applied index): writes the
   * snapshot file atomically, then records the compaction, then lets old segments and old
   * snapshot files go. Durable on return, with everything saved before it, unless another
   * group's sync runs (then with the next sync). A snapshot at or behind the one held
   * changes nothing (the simulator's disk ignores it too).
   */
  compact(snapshot: Snapshot): void {
    this.log.compact(this.group, snapshot);
  }

  /**
   * Writes the file of a snapshot that `compact` will take next, off the event loop (it is
   * the bulk of a compaction's I/O). It touches nothing but its own file, so it may run
   * while the log is being written.
   */
  prepareCompaction(snapshot: Snapshot): Promise<void> {
    return this.log.prepareCompaction(this.group, snapshot);
  }

  /** Resolves once the WAL's background preparation of its next segment is idle (see SharedLog). */
  backgroundSettled(): Promise<void> {
    return this.log.backgroundSettled();
  }

  /** Syncs what is queued and closes the log this store is part of (every group's). */
  close(): Promise<void> {
    return this.log.close();
  }
}

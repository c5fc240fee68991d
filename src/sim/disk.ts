import { assert } from "../core/common/assert.js";
import type { Prng } from "../core/common/prng.js";
import type { DurableState, LogEntry, Snapshot } from "../core/engine/contract.js";
import type { LogStorage, LogWrite } from "../core/replica/contract.js";
import type { SyncDevice } from "../core/multi/group-commit.js";
import { DEFAULT_GROUP, type GroupId } from "../core/multi/group.js";

/** One write to the simulated disk. */
export type DiskRecord<H> =
  | { readonly kind: "hard-state"; readonly hardState: H }
  | { readonly kind: "entries"; readonly entries: readonly LogEntry[] }
  /** A snapshot installed from a leader: it replaces the whole log. */
  | { readonly kind: "snapshot"; readonly snapshot: Snapshot }
  /** The node's own snapshot: the log through its index is compacted away, the rest stays. */
  | { readonly kind: "compact"; readonly snapshot: Snapshot };

export interface CrashOutcome {
  readonly lost: number;
  readonly torn: boolean;
}

/** A record with the group whose log it belongs to: one disk holds every group of a node. */
interface GroupRecord<H> {
  readonly group: GroupId;
  readonly record: DiskRecord<H>;
}

/**
 * A disk that loses what was not synced. Writes queue in a volatile buffer; `sync()` makes
 * them durable. On a crash a random prefix of the unsynced writes may still have reached
 * the platter (an OS flush), and the last of those may be torn — half-written, which the
 * checksum catches on recovery, so it is discarded. Recovery replays the durable records.
 *
 * One disk serves every group its node hosts, as the node's WAL will: each record is
 * tagged with its group (group 0 by default), a crash cuts the one shared stream, and each
 * group replays its own records.
 */
export class SimDisk<H> {
  private durable: GroupRecord<H>[] = [];
  private unsynced: GroupRecord<H>[] = [];
  /** Writes ever made: a position in the stream that a sync can make durable up to. */
  private written = 0;

  constructor(private readonly tornWriteProbability: number) {}

  write(record: DiskRecord<H>, group: GroupId = DEFAULT_GROUP): void {
    this.unsynced.push({ group, record });
    this.written++;
  }

  get hasUnsynced(): boolean {
    return this.unsynced.length > 0;
  }

  /** How many writes are unsynced: a sync that starts now makes that many durable. */
  get unsyncedCount(): number {
    return this.unsynced.length;
  }

  /** How many writes were ever made: a sync that starts now covers them (see `syncThrough`). */
  get writtenCount(): number {
    return this.written;
  }

  /** Makes the first `count` unsynced writes durable (default: all). */
  sync(count = this.unsynced.length): void {
    assert(count <= this.unsynced.length, `sync of ${count} writes, ${this.unsynced.length} unsynced`);
    for (const record of this.unsynced.slice(0, count)) this.durable.push(record);
    this.unsynced = this.unsynced.slice(count);
  }

  /**
   * Makes every write up to `writtenCount` = `position` durable, if it is not already: a
   * sync that began at that position. Another group's checkpoint (`saveSnapshot`) may have
   * made some or all of them durable meanwhile.
   */
  syncThrough(position: number): void {
    assert(position <= this.written, `sync through write ${position}, only ${this.written} written`);
    this.sync(Math.max(0, position - (this.written - this.unsynced.length)));
  }

  /**
   * Saves the node's own snapshot and compacts the log behind it, durably at once: a real
   * store writes the snapshot to a new file, fsyncs it and renames it into place, then
   * writes a checkpoint of the log that makes everything saved before it durable too (as
   * the WAL's checkpoint does). Called only while no sync of this group runs.
   */
  saveSnapshot(snapshot: Snapshot, group: GroupId = DEFAULT_GROUP): void {
    this.sync();
    this.durable.push({ group, record: { kind: "compact", snapshot } });
  }

  /**
   * Saves a range's first snapshot, made by its parent's split (`synod sim --splits`),
   * durably at once and alone: production writes it to a birth file with an fsync of its
   * own (runtime/server/range-births.ts), not through the log's sync, which may be under way.
   */
  saveBirth(snapshot: Snapshot, group: GroupId): void {
    this.durable.push({ group, record: { kind: "snapshot", snapshot } });
  }

  crash(prng: Prng): CrashOutcome {
    const reached = prng.int(0, this.unsynced.length);
    let kept = this.unsynced.slice(0, reached);
    let torn = false;
    if (kept.length > 0 && prng.chance(this.tornWriteProbability)) {
      kept = kept.slice(0, -1);
      torn = true;
    }
    for (const record of kept) this.durable.push(record);
    const lost = this.unsynced.length - kept.length;
    this.unsynced = [];
    return { lost, torn };
  }

  /**
   * Removes `group`'s log and snapshot, durably (a node that left the group deletes its
   * replica's files, `synod sim --replicas`): what was unsynced is synced first, as a real
   * store's delete follows its pending writes. A hard state stays, as a tombstone: what
   * `tombstone` makes of the last one (EngineFactory.tombstone: the term and vote it holds
   * are promises a replica made again must keep, without which a node removed and added
   * back could vote twice in one term; and what it must hold again before it votes).
   */
  dropGroup(group: GroupId, tombstone: (last: H | null) => H | null = (last) => last): void {
    this.sync();
    const hardState = tombstone(this.replay(group).hardState);
    this.durable = this.durable.filter((tagged) => tagged.group !== group);
    if (hardState !== null) this.durable.push({ group, record: { kind: "hard-state", hardState } });
  }

  /** The groups with a log or a snapshot here (not a dropped group's tombstone alone): those a restarted node recovers a replica of. */
  groupsWithLog(): GroupId[] {
    return [...new Set(this.durable.filter((tagged) => tagged.record.kind !== "hard-state").map((tagged) => tagged.group))].sort((a, b) => a - b);
  }

  /** Rebuilds a group's durable state from its records, and compacts them into it. */
  recover(group: GroupId = DEFAULT_GROUP): DurableState<H> {
    assert(this.unsynced.length === 0, "recover with unsynced writes");
    const state = this.replay(group);
    const compacted: GroupRecord<H>[] = this.durable.filter((tagged) => tagged.group !== group);
    if (state.snapshot !== null) compacted.push({ group, record: { kind: "compact", snapshot: state.snapshot } });
    if (state.entries.length > 0) compacted.push({ group, record: { kind: "entries", entries: state.entries } });
    if (state.hardState !== null) compacted.push({ group, record: { kind: "hard-state", hardState: state.hardState } });
    this.durable = compacted;
    return state;
  }

  /** What a restart would read back now for `group` (its durable records only), changing nothing. */
  replay(group: GroupId = DEFAULT_GROUP): DurableState<H> {
    let hardState: H | null = null;
    let snapshot: Snapshot | null = null;
    let entries: LogEntry[] = [];
    for (const tagged of this.durable) {
      if (tagged.group !== group) continue;
      const record = tagged.record;
      switch (record.kind) {
        case "hard-state":
          hardState = record.hardState;
          break;
        case "snapshot":
          snapshot = record.snapshot;
          entries = [];
          break;
        case "compact":
          if (snapshot !== null && snapshot.index >= record.snapshot.index) break;
          snapshot = record.snapshot;
          entries = entries.filter((entry) => entry.index > record.snapshot.index);
          if (entries.length > 0 && (entries[0] as LogEntry).index !== record.snapshot.index + 1) entries = [];
          break;
        case "entries":
          entries = appendEntries(entries, record.entries, snapshot);
          break;
      }
    }
    return { hardState, snapshot, entries };
  }
}

/** Raft append semantics: new entries replace everything from their first index on. */
export function appendEntries(log: LogEntry[], added: readonly LogEntry[], snapshot: Snapshot | null): LogEntry[] {
  const first = added[0];
  if (first === undefined) return log;
  const base = snapshot === null ? 0 : snapshot.index;
  const logFirst = log.length > 0 ? (log[0] as LogEntry).index : base + 1;
  assert(first.index >= base + 1, `append at ${first.index} behind the snapshot at ${base}`);
  assert(first.index <= logFirst + log.length, `append at ${first.index} leaves a gap after ${logFirst + log.length - 1}`);
  const keep = log.slice(0, first.index - logFirst);
  for (const entry of added) keep.push(entry);
  return keep;
}

/**
 * A `SimDisk` as the replica's log storage: a save queues records, a sync makes them
 * durable once the fsync latency has passed (`afterFsync` decides when, and whether the
 * process is still there to hear of it), and a compaction record is durable at once.
 * `group` tags its records, for a disk shared by several groups.
 */
export class SimLogStorage<H> implements LogStorage<H> {
  private readonly device: SimSyncDevice<H>;

  constructor(
    private readonly disk: SimDisk<H>,
    /** Runs `completed` when an fsync started now completes (never, if the process crashed meanwhile). */
    afterFsync: (completed: () => void) => void,
    /** Hands the replica an outcome, when the process runs (it may be paused). */
    deliver: (action: () => void) => void,
    private readonly group: GroupId = DEFAULT_GROUP,
  ) {
    this.device = new SimSyncDevice(disk, afterFsync, deliver);
  }

  save(write: LogWrite<H>): void {
    if (write.snapshot !== null) this.disk.write({ kind: "snapshot", snapshot: write.snapshot }, this.group);
    if (write.entries.length > 0) this.disk.write({ kind: "entries", entries: write.entries }, this.group);
    if (write.hardState !== null) this.disk.write({ kind: "hard-state", hardState: write.hardState }, this.group);
  }

  sync(done: (error: unknown) => void): void {
    this.device.sync(done);
  }

  /** A snapshot in memory is written with its compaction record: nothing to do ahead. */
  prepareSnapshot(_snapshot: Snapshot, done: (error: unknown) => void): void {
    done(null);
  }

  compact(snapshot: Snapshot): void {
    this.disk.saveSnapshot(snapshot, this.group);
  }
}

/**
 * The simulated disk as the device every group of a node syncs through (see
 * core/multi/group-commit.ts): one fsync, with the disk's latency, covering every write
 * made before it began, whichever group made it.
 */
export class SimSyncDevice<H> implements SyncDevice {
  constructor(
    private readonly disk: SimDisk<H>,
    private readonly afterFsync: (completed: () => void) => void,
    private readonly deliver: (action: () => void) => void,
  ) {}

  sync(done: (error: unknown) => void): void {
    // Only what was written before the fsync began: a save meanwhile waits for the next.
    const through = this.disk.writtenCount;
    this.afterFsync(() => {
      // The disk finishes whatever the process is doing; the process hears of it when it runs.
      this.disk.syncThrough(through);
      this.deliver(() => done(null));
    });
  }
}

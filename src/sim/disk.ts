import { assert } from "../core/common/assert.js";
import type { Prng } from "../core/common/prng.js";
import type { DurableState, LogEntry, Snapshot } from "../core/engine/contract.js";
import type { LogStorage, LogWrite } from "../core/replica/contract.js";

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

/**
 * A disk that loses what was not synced. Writes queue in a volatile buffer; `sync()` makes
 * them durable. On a crash a random prefix of the unsynced writes may still have reached
 * the platter (an OS flush), and the last of those may be torn — half-written, which the
 * checksum catches on recovery, so it is discarded. Recovery replays the durable records.
 */
export class SimDisk<H> {
  private durable: DiskRecord<H>[] = [];
  private unsynced: DiskRecord<H>[] = [];

  constructor(private readonly tornWriteProbability: number) {}

  write(record: DiskRecord<H>): void {
    this.unsynced.push(record);
  }

  get hasUnsynced(): boolean {
    return this.unsynced.length > 0;
  }

  /** How many writes are unsynced: a sync that starts now makes that many durable. */
  get unsyncedCount(): number {
    return this.unsynced.length;
  }

  /** Makes the first `count` unsynced writes durable (default: all). */
  sync(count = this.unsynced.length): void {
    assert(count <= this.unsynced.length, `sync of ${count} writes, ${this.unsynced.length} unsynced`);
    for (const record of this.unsynced.slice(0, count)) this.durable.push(record);
    this.unsynced = this.unsynced.slice(count);
  }

  /**
   * Saves the node's own snapshot and compacts the log behind it, durably at once: a real
   * store writes the snapshot to a new file, fsyncs it and renames it into place, then
   * writes a checkpoint of the log that makes everything saved before it durable too (as
   * the WAL's checkpoint does). Called only while no sync runs.
   */
  saveSnapshot(snapshot: Snapshot): void {
    this.sync();
    this.durable.push({ kind: "compact", snapshot });
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

  /** Rebuilds the engine's durable state from the records, and compacts them into it. */
  recover(): DurableState<H> {
    assert(this.unsynced.length === 0, "recover with unsynced writes");
    const state = this.replay();
    const compacted: DiskRecord<H>[] = [];
    if (state.snapshot !== null) compacted.push({ kind: "compact", snapshot: state.snapshot });
    if (state.entries.length > 0) compacted.push({ kind: "entries", entries: state.entries });
    if (state.hardState !== null) compacted.push({ kind: "hard-state", hardState: state.hardState });
    this.durable = compacted;
    return state;
  }

  /** What a restart would read back now (the durable records only), changing nothing. */
  replay(): DurableState<H> {
    let hardState: H | null = null;
    let snapshot: Snapshot | null = null;
    let entries: LogEntry[] = [];
    for (const record of this.durable) {
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
 */
export class SimLogStorage<H> implements LogStorage<H> {
  constructor(
    private readonly disk: SimDisk<H>,
    /** Runs `completed` when an fsync started now completes (never, if the process crashed meanwhile). */
    private readonly afterFsync: (completed: () => void) => void,
    /** Hands the replica an outcome, when the process runs (it may be paused). */
    private readonly deliver: (action: () => void) => void,
  ) {}

  save(write: LogWrite<H>): void {
    if (write.snapshot !== null) this.disk.write({ kind: "snapshot", snapshot: write.snapshot });
    if (write.entries.length > 0) this.disk.write({ kind: "entries", entries: write.entries });
    if (write.hardState !== null) this.disk.write({ kind: "hard-state", hardState: write.hardState });
  }

  sync(done: (error: unknown) => void): void {
    // Only what was written before the fsync began: a save meanwhile waits for the next.
    const count = this.disk.unsyncedCount;
    this.afterFsync(() => {
      // The disk finishes whatever the process is doing; the process hears of it when it runs.
      this.disk.sync(count);
      this.deliver(() => done(null));
    });
  }

  /** A snapshot in memory is written with its compaction record: nothing to do ahead. */
  prepareSnapshot(_snapshot: Snapshot, done: (error: unknown) => void): void {
    done(null);
  }

  compact(snapshot: Snapshot): void {
    this.disk.saveSnapshot(snapshot);
  }
}

/**
 * The engine's durable log as the store holds it in memory and as recovery rebuilds it from
 * WAL records: a snapshot reference, the entries after it, the latest hard state (still
 * encoded). Its operations have exactly the semantics of the simulator's disk
 * (`SimDisk.replay()` in src/sim/disk.ts): an append replaces every entry from its first
 * index on; an installed snapshot replaces the whole log; the node's own snapshot drops the
 * log through its index, keeps the rest, and is ignored when a snapshot at or after its
 * index is already held. The conformance test holds the two to the same answers.
 */
import { assert } from "../../core/common/assert.js";
import type { LogEntry } from "../../core/engine/contract.js";
import { decodeLogRecord, type LogRecord, LogRecordDecodeError, type SnapshotRef } from "./log-record.js";
import { WalCorruptionError, type WalRecordPosition } from "./wal.js";

export class LogState {
  /** `entries[i].index === snapshotIndex + 1 + i` in every state the store writes. */
  readonly entries: LogEntry[] = [];
  hardState: Uint8Array | null = null;

  constructor(public snapshot: SnapshotRef | null = null) {}

  get snapshotIndex(): number {
    return this.snapshot === null ? 0 : this.snapshot.index;
  }

  get lastIndex(): number {
    const last = this.entries[this.entries.length - 1];
    return last === undefined ? this.snapshotIndex : last.index;
  }

  /** Why `added` cannot be appended (behind the snapshot, a gap, not contiguous), or null. */
  appendProblem(added: readonly LogEntry[]): string | null {
    const first = added[0];
    if (first === undefined) return null;
    const base = this.snapshotIndex;
    const logFirst = this.entries[0]?.index ?? base + 1;
    if (first.index < base + 1) return `entries at ${first.index} are behind the snapshot at ${base}`;
    if (first.index > logFirst + this.entries.length) return `entries at ${first.index} leave a gap after ${logFirst + this.entries.length - 1}`;
    for (let i = 1; i < added.length; i++) {
      const entry = added[i] as LogEntry;
      if (entry.index !== first.index + i) return `entries are not contiguous: ${entry.index} follows ${first.index + i - 1}`;
    }
    return null;
  }

  /** Raft append: `added` replaces every entry at or after `added[0].index`. */
  append(added: readonly LogEntry[]): void {
    const problem = this.appendProblem(added);
    assert(problem === null, problem ?? "");
    const first = added[0];
    if (first === undefined) return;
    const logFirst = this.entries[0]?.index ?? this.snapshotIndex + 1;
    this.entries.length = first.index - logFirst;
    for (const entry of added) this.entries.push(entry);
  }

  /** A leader's snapshot: it replaces the whole log. */
  install(snapshot: SnapshotRef): void {
    this.snapshot = snapshot;
    this.entries.length = 0;
  }

  /** The node's own snapshot: the log through its index goes, the rest stays. False when ignored. */
  compact(snapshot: SnapshotRef): boolean {
    if (this.snapshot !== null && this.snapshot.index >= snapshot.index) return false;
    this.snapshot = snapshot;
    const first = this.entries[0];
    if (first !== undefined) this.entries.splice(0, Math.max(0, Math.min(this.entries.length, snapshot.index - first.index + 1)));
    if (this.entries.length > 0 && (this.entries[0] as LogEntry).index !== snapshot.index + 1) this.entries.length = 0;
    return true;
  }
}

export interface ReplayedLog {
  readonly state: LogState;
  /** Where the recovered hard state was read, to name it if it does not decode. */
  readonly hardStatePosition: WalRecordPosition | null;
}

/** What replay starts from. */
export interface ReplayStart {
  /**
   * True when the records are the log's whole history (its first segment survives);
   * false once older segments were removed behind a checkpoint: the records then begin
   * with what followed them (normal records, even the remains of an older checkpoint whose
   * beginning went), which mean nothing until the first complete checkpoint.
   */
  readonly wholeHistory: boolean;
  /** The oldest segment, named when a removal left no complete checkpoint behind. */
  readonly firstFile: string;
}

/**
 * Rebuilds the log from the WAL's records. A complete checkpoint (begin .. end) replaces the
 * state whole, so whatever older records precede it cannot change the result; a checkpoint a
 * crash interrupted (its end never written, or normal records after its beginning) is
 * ignored, and the records before it still hold the state. Throws WalCorruptionError, naming
 * the record's file and offset, for a record that passes its checksum but does not decode or
 * cannot follow what came before, and for a log whose beginning was removed with no complete
 * checkpoint after it.
 */
export function replayLogRecords(records: readonly Uint8Array[], positions: readonly WalRecordPosition[], start: ReplayStart, log: (message: string) => void): ReplayedLog {
  assert(records.length === positions.length, "a position for every record");
  const replay = new Replay(start.wholeHistory, log);
  for (let i = 0; i < records.length; i++) replay.apply(records[i] as Uint8Array, positions[i] as WalRecordPosition);
  replay.abandonCheckpoint();
  if (replay.state === null) {
    throw new WalCorruptionError(start.firstFile, 0, "the segments before this one were removed, yet no complete checkpoint follows to replace them");
  }
  return { state: replay.state, hardStatePosition: replay.hardStatePosition };
}

class Replay {
  /** Null until the first complete checkpoint when the log's beginning was removed. */
  state: LogState | null;
  hardStatePosition: WalRecordPosition | null = null;
  private checkpoint: { readonly state: LogState; readonly position: WalRecordPosition } | null = null;

  constructor(
    wholeHistory: boolean,
    private readonly log: (message: string) => void,
  ) {
    this.state = wholeHistory ? new LogState() : null;
  }

  apply(payload: Uint8Array, position: WalRecordPosition): void {
    const fail = (reason: string): WalCorruptionError => new WalCorruptionError(position.file, position.offset, reason);
    const record = decodeAt(payload, fail);
    if (record.kind === "checkpoint-begin") {
      this.abandonCheckpoint();
      this.checkpoint = { state: new LogState(record.snapshot), position };
      return;
    }
    if (record.kind === "checkpoint-entries" || record.kind === "checkpoint-end") return this.applyToCheckpoint(record, fail);
    this.abandonCheckpoint();
    if (this.state === null) return; // superseded by a checkpoint still to come
    if (record.kind === "hard-state") {
      this.state.hardState = record.hardState;
      this.hardStatePosition = position;
      return;
    }
    const problem = this.state.appendProblem(record.entries);
    if (problem !== null) throw fail(`a record of entries that cannot follow the log: ${problem}`);
    this.state.append(record.entries);
  }

  private applyToCheckpoint(record: Extract<LogRecord, { kind: "checkpoint-entries" | "checkpoint-end" }>, fail: (reason: string) => WalCorruptionError): void {
    const checkpoint = this.checkpoint;
    if (checkpoint === null) {
      // The remains of a checkpoint whose beginning was removed are harmless; anywhere else they are damage.
      if (this.state === null) return;
      throw fail(record.kind === "checkpoint-end" ? "the end of a checkpoint that never began" : "checkpoint entries outside a checkpoint");
    }
    if (record.kind === "checkpoint-entries") {
      const problem = checkpoint.state.appendProblem(record.entries);
      if (problem !== null) throw fail(`checkpoint entries that cannot follow its log: ${problem}`);
      checkpoint.state.append(record.entries);
      return;
    }
    if (record.entryCount !== checkpoint.state.entries.length) throw fail(`a checkpoint of ${record.entryCount} entries that holds ${checkpoint.state.entries.length}`);
    checkpoint.state.hardState = record.hardState;
    this.state = checkpoint.state;
    this.hardStatePosition = record.hardState === null ? null : checkpoint.position;
    this.checkpoint = null;
  }

  abandonCheckpoint(): void {
    if (this.checkpoint === null) return;
    this.log(`log store: ignored the checkpoint begun at byte ${this.checkpoint.position.offset} of ${this.checkpoint.position.file}, which a crash interrupted; the records before it hold the state`);
    this.checkpoint = null;
  }
}

function decodeAt(payload: Uint8Array, fail: (reason: string) => WalCorruptionError): LogRecord {
  try {
    return decodeLogRecord(payload);
  } catch (error) {
    if (error instanceof LogRecordDecodeError) throw fail(`a record that passes its checksum but does not decode: ${error.message}`);
    throw error;
  }
}

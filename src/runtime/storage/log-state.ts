/**
 * One group's durable log as the store holds it in memory and as recovery rebuilds it from
 * WAL records: a snapshot reference, the entries after it, the latest hard state (still
 * encoded). Its operations have exactly the semantics of the simulator's disk
 * (`SimDisk.replay()` in src/sim/disk.ts): an append replaces every entry from its first
 * index on; an installed snapshot replaces the whole log; the node's own snapshot drops the
 * log through its index, keeps the rest, and is ignored when a snapshot at or after its
 * index is already held. The conformance test holds the two to the same answers.
 */
import { assert } from "../../core/common/assert.js";
import { ownedCopy } from "../../core/common/bytes.js";
import type { LogEntry } from "../../core/engine/contract.js";
import type { GroupId } from "../../core/multi/group.js";
import { decodeGroupLogRecord, type DecodedLogRecord, type LogRecord, LogRecordDecodeError, type SnapshotRef } from "./log-record.js";
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

/** One group's log as replay rebuilt it. */
export interface ReplayedGroup {
  readonly state: LogState;
  /** Where the recovered hard state was read, to name it if it does not decode. */
  readonly hardStatePosition: WalRecordPosition | null;
}

/** What replay starts from. */
export interface ReplayStart {
  /**
   * True when the records are the log's whole history (its first segment survives);
   * false once older segments were removed behind a sweep: the records then begin with
   * what followed them (normal records, even the remains of an older sweep whose beginning
   * went), which mean nothing until the first complete sweep.
   */
  readonly wholeHistory: boolean;
  /** The oldest segment, named when a removal left no complete sweep behind. */
  readonly firstFile: string;
}

/**
 * Rebuilds every group's log from the WAL's records. Normal records (hard state, entries,
 * compaction, drop) change their group's log. A complete checkpoint (begin .. end) replaces
 * its group's log whole; a complete sweep (begin, a checkpoint per group, end) replaces
 * every group's, so whatever older records precede it cannot change the result. A
 * checkpoint or sweep a crash interrupted (its end never written, or normal records after
 * its beginning) is ignored, and the records before it still hold the state. Throws
 * WalCorruptionError, naming the record's file and offset, for a record that passes its
 * checksum but does not decode or cannot follow what came before, and for a log whose
 * beginning was removed with no complete sweep after it.
 */
export function replayLogRecords(records: readonly Uint8Array[], positions: readonly WalRecordPosition[], start: ReplayStart, log: (message: string) => void): Map<GroupId, ReplayedGroup> {
  assert(records.length === positions.length, "a position for every record");
  const replay = new Replay(start.wholeHistory, log);
  for (let i = 0; i < records.length; i++) replay.apply(records[i] as Uint8Array, positions[i] as WalRecordPosition);
  replay.abandon();
  if (replay.groups === null) {
    throw new WalCorruptionError(start.firstFile, 0, "the segments before this one were removed, yet no complete checkpoint follows to replace them");
  }
  return replay.groups;
}

interface OpenCheckpoint {
  readonly group: GroupId;
  readonly state: LogState;
  readonly position: WalRecordPosition;
  /** Written before groups: it stands for a sweep of the one group there was. */
  readonly legacy: boolean;
}

interface OpenSweep {
  readonly groups: Map<GroupId, ReplayedGroup>;
  readonly position: WalRecordPosition;
}

class Replay {
  /** Null until the first complete sweep when the log's beginning was removed. */
  groups: Map<GroupId, ReplayedGroup> | null;
  private sweep: OpenSweep | null = null;
  private checkpoint: OpenCheckpoint | null = null;

  constructor(
    wholeHistory: boolean,
    private readonly log: (message: string) => void,
  ) {
    this.groups = wholeHistory ? new Map() : null;
  }

  apply(payload: Uint8Array, position: WalRecordPosition): void {
    const fail = (reason: string): WalCorruptionError => new WalCorruptionError(position.file, position.offset, reason);
    const { record, group, legacy } = decodeAt(payload, fail);
    switch (record.kind) {
      case "sweep-begin":
        this.abandon();
        this.sweep = { groups: new Map(), position };
        return;
      case "sweep-end":
        return this.endSweep(record.groupCount, fail);
      case "checkpoint-begin":
        if (record.sweep) {
          // One of a sweep's checkpoints: it follows the sweep's beginning or the previous group's end.
          if (this.sweep === null) {
            if (this.groups === null) return; // the remains of a sweep whose beginning was removed
            throw fail(`a checkpoint of group ${group} that belongs to a sweep, outside any`);
          }
          if (this.checkpoint !== null) throw fail(`a checkpoint of group ${group} begins inside group ${this.checkpoint.group}'s`);
        } else {
          // A group's own checkpoint (a leader's snapshot installed) ends whatever a crash
          // interrupted before it, a sweep included: written after a restart, it belongs to
          // no sweep, and taking it for the rest of one would lose it with that sweep.
          this.abandon();
        }
        this.checkpoint = { group, state: new LogState(record.snapshot), position, legacy };
        return;
      case "checkpoint-entries":
      case "checkpoint-end":
        return this.applyToCheckpoint(record, group, fail);
      default:
        break;
    }
    this.abandon();
    if (this.groups === null) return; // superseded by a sweep still to come
    if (record.kind === "drop") {
      this.groups.delete(group);
      return;
    }
    let replayed = this.groups.get(group);
    if (replayed === undefined) {
      replayed = { state: new LogState(), hardStatePosition: null };
      this.groups.set(group, replayed);
    }
    if (record.kind === "hard-state") {
      // Kept until the group writes another: a copy, not a view into the segment read (see ownedCopy).
      replayed.state.hardState = ownedCopy(record.hardState);
      this.groups.set(group, { state: replayed.state, hardStatePosition: position });
      return;
    }
    if (record.kind === "compact") {
      replayed.state.compact({ index: record.index, term: record.term, kind: "own" });
      return;
    }
    const problem = replayed.state.appendProblem(record.entries);
    if (problem !== null) throw fail(`a record of entries of group ${group} that cannot follow its log: ${problem}`);
    replayed.state.append(record.entries);
  }

  private applyToCheckpoint(record: Extract<LogRecord, { kind: "checkpoint-entries" | "checkpoint-end" }>, group: GroupId, fail: (reason: string) => WalCorruptionError): void {
    const checkpoint = this.checkpoint;
    if (checkpoint === null) {
      // The remains of a checkpoint whose beginning was removed are harmless; anywhere else they are damage.
      if (this.groups === null) return;
      throw fail(record.kind === "checkpoint-end" ? "the end of a checkpoint that never began" : "checkpoint entries outside a checkpoint");
    }
    if (checkpoint.group !== group) throw fail(`a record of group ${group}'s checkpoint inside group ${checkpoint.group}'s`);
    if (record.kind === "checkpoint-entries") {
      const problem = checkpoint.state.appendProblem(record.entries);
      if (problem !== null) throw fail(`checkpoint entries that cannot follow its log: ${problem}`);
      checkpoint.state.append(record.entries);
      return;
    }
    if (record.entryCount !== checkpoint.state.entries.length) throw fail(`a checkpoint of ${record.entryCount} entries that holds ${checkpoint.state.entries.length}`);
    checkpoint.state.hardState = record.hardState === null ? null : ownedCopy(record.hardState);
    const replayed: ReplayedGroup = { state: checkpoint.state, hardStatePosition: record.hardState === null ? null : checkpoint.position };
    this.checkpoint = null;
    if (this.sweep !== null) {
      if (this.sweep.groups.has(group)) throw fail(`a sweep that holds group ${group} twice`);
      this.sweep.groups.set(group, replayed);
    } else if (this.groups !== null) {
      this.groups.set(group, replayed);
    } else if (checkpoint.legacy) {
      // A log from before groups: its checkpoint replaced the whole (one-group) log.
      this.groups = new Map([[group, replayed]]);
    }
  }

  private endSweep(groupCount: number, fail: (reason: string) => WalCorruptionError): void {
    const sweep = this.sweep;
    if (sweep === null) {
      if (this.groups === null) return; // the remains of a sweep whose beginning was removed
      throw fail("the end of a sweep that never began");
    }
    if (this.checkpoint !== null) throw fail(`a sweep that ends inside group ${this.checkpoint.group}'s checkpoint`);
    if (groupCount !== sweep.groups.size) throw fail(`a sweep of ${groupCount} groups that holds ${sweep.groups.size}`);
    this.groups = sweep.groups;
    this.sweep = null;
  }

  /** Forgets a checkpoint or sweep a crash interrupted: the records before it hold the state. */
  abandon(): void {
    const begun = this.sweep?.position ?? this.checkpoint?.position;
    if (begun === undefined) return;
    this.log(`log store: ignored the ${this.sweep !== null ? "sweep" : "checkpoint"} begun at byte ${begun.offset} of ${begun.file}, which a crash interrupted; the records before it hold the state`);
    this.sweep = null;
    this.checkpoint = null;
  }
}

function decodeAt(payload: Uint8Array, fail: (reason: string) => WalCorruptionError): DecodedLogRecord {
  try {
    return decodeGroupLogRecord(payload);
  } catch (error) {
    if (error instanceof LogRecordDecodeError) throw fail(`a record that passes its checksum but does not decode: ${error.message}`);
    throw error;
  }
}

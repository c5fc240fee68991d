import { assert, assertIndex } from "../common/assert.js";
import type { DurableState, LogEntry, Snapshot } from "../engine/contract.js";

/** Bytes an entry counts for in message and window budgets: its data plus a fixed overhead. */
export function entryBytes(entry: LogEntry): number {
  return entry.data.length + 24;
}

/**
 * The Raft log of one node: every entry after the last snapshot, held in memory, with three
 * cursors. `unstableFrom`: entries from here on have not been handed to the driver to write.
 * `commitIndex`: known committed. `applyingIndex`: committed entries up to here have been
 * handed out for applying; `appliedIndex`: the driver confirmed (advance) applying them.
 *
 *   snapshotIndex < applied <= applying <= commit <= lastIndex
 */
export class RaftLog {
  private snapshotIndex: number;
  private snapshotTerm: number;
  /** entries[i].index === snapshotIndex + 1 + i */
  private entries: LogEntry[];
  private unstableFrom: number;
  commitIndex: number;
  appliedIndex: number;
  applyingIndex: number;
  /** Entries up to here are known durable: written by a Ready the driver has advanced past. */
  durableIndex: number;

  constructor(durable: DurableState<unknown>, commitIndex: number, appliedIndex: number) {
    this.snapshotIndex = durable.snapshot?.index ?? 0;
    this.snapshotTerm = durable.snapshot?.term ?? 0;
    this.entries = [...durable.entries];
    this.entries.forEach((entry, i) => assert(entry.index === this.snapshotIndex + 1 + i, `durable log is not contiguous at ${entry.index}`));
    this.unstableFrom = this.lastIndex + 1;
    this.durableIndex = this.lastIndex;
    assertIndex(commitIndex, "commit index");
    // The applied index may be ahead of the durable commit (a state machine with its own
    // durable record); the commit index is at least what was applied.
    this.commitIndex = Math.min(Math.max(commitIndex, appliedIndex, this.snapshotIndex), this.lastIndex);
    this.appliedIndex = Math.max(appliedIndex, this.snapshotIndex);
    assert(this.appliedIndex <= this.commitIndex, `applied ${this.appliedIndex} is beyond the log's end ${this.lastIndex}`);
    this.applyingIndex = this.appliedIndex;
  }

  get firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  get lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  get lastTerm(): number {
    return this.term(this.lastIndex) as number;
  }

  /** The term at `index`, or null when compacted away (before the snapshot) or beyond the end. */
  term(index: number): number | null {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    if (index < this.snapshotIndex || index > this.lastIndex) return null;
    return (this.entries[index - this.snapshotIndex - 1] as LogEntry).term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Section 5.4.1: the candidate's log is at least as up to date as this one. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }

  /** Entries in [from, to], at most `countMax` and `bytesMax` (but always at least one). */
  slice(from: number, to: number, countMax = Number.POSITIVE_INFINITY, bytesMax = Number.POSITIVE_INFINITY): LogEntry[] {
    assert(from >= this.firstIndex, `slice from ${from} before the first index ${this.firstIndex}`);
    const end = Math.min(to, this.lastIndex);
    const out: LogEntry[] = [];
    let bytes = 0;
    for (let index = from; index <= end && out.length < countMax; index++) {
      const entry = this.entries[index - this.snapshotIndex - 1] as LogEntry;
      bytes += entryBytes(entry);
      if (out.length > 0 && bytes > bytesMax) break;
      out.push(entry);
    }
    return out;
  }

  /** A leader appends its own new entries. */
  appendNew(entries: readonly LogEntry[]): void {
    for (const entry of entries) {
      assert(entry.index === this.lastIndex + 1, `leader append at ${entry.index} after ${this.lastIndex}`);
      this.entries.push(entry);
    }
  }

  /**
   * A follower takes an append (section 5.3): if its log holds (prevIndex, prevTerm), it
   * drops any conflicting suffix, appends what it lacks, and returns the last index the
   * message proves it shares with the leader; otherwise null.
   */
  tryAppend(prevIndex: number, prevTerm: number, entries: readonly LogEntry[]): number | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as LogEntry;
      assert(entry.index === prevIndex + 1 + i, "append entries must be contiguous");
      const existing = this.term(entry.index);
      if (existing === entry.term) continue;
      if (existing !== null || entry.index <= this.snapshotIndex) {
        // A conflict: this and everything after it go (Figure 2, receiver rule 3).
        assert(entry.index > this.commitIndex, `conflict at committed index ${entry.index} (commit ${this.commitIndex})`);
        this.truncateFrom(entry.index);
      }
      for (let j = i; j < entries.length; j++) this.entries.push(entries[j] as LogEntry);
      break;
    }
    return prevIndex + entries.length;
  }

  private truncateFrom(index: number): void {
    this.entries.length = index - this.snapshotIndex - 1;
    this.unstableFrom = Math.min(this.unstableFrom, index);
    this.durableIndex = Math.min(this.durableIndex, index - 1);
  }

  /**
   * The fast-backtracking hint: the last index at or before `index` whose term is at most
   * `term`, with that term (0 when unknown because compacted).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = Math.min(index, this.lastIndex); i > this.snapshotIndex; i--) {
      const t = this.term(i) as number;
      if (t <= term) return { index: i, term: t };
    }
    return { index: Math.min(index, this.snapshotIndex), term: Math.min(index, this.snapshotIndex) === this.snapshotIndex ? this.snapshotTerm : 0 };
  }

  commitTo(index: number): boolean {
    if (index <= this.commitIndex) return false;
    assert(index <= this.lastIndex, `commit ${index} beyond the last index ${this.lastIndex}`);
    this.commitIndex = index;
    return true;
  }

  get hasUnstable(): boolean {
    return this.unstableFrom <= this.lastIndex;
  }

  /** The entries to write now; they count as handed out from here on. */
  takeUnstable(): LogEntry[] {
    if (!this.hasUnstable) return [];
    const out = this.entries.slice(this.unstableFrom - this.snapshotIndex - 1);
    this.unstableFrom = this.lastIndex + 1;
    return out;
  }

  get hasCommittedToApply(): boolean {
    return this.applyingIndex < this.commitIndex;
  }

  /** The next committed entries to apply (at most `countMax`); they count as being applied. */
  takeCommitted(countMax: number): LogEntry[] {
    if (!this.hasCommittedToApply) return [];
    const out = this.slice(this.applyingIndex + 1, this.commitIndex, countMax);
    this.applyingIndex += out.length;
    return out;
  }

  appliedTo(index: number): void {
    assert(index <= this.applyingIndex, `applied ${index} beyond what was handed out (${this.applyingIndex})`);
    // A snapshot installed meanwhile may already have moved the applied index past it.
    this.appliedIndex = Math.max(this.appliedIndex, index);
  }

  get snapshotIndexValue(): number {
    return this.snapshotIndex;
  }

  /** Discards the entries up to and including `index`, which the state machine has applied. */
  compact(index: number): void {
    assert(index <= this.appliedIndex, `compaction at ${index} beyond the applied index ${this.appliedIndex}`);
    if (index <= this.snapshotIndex) return;
    this.snapshotTerm = this.term(index) as number;
    this.entries = this.entries.slice(index - this.snapshotIndex);
    this.snapshotIndex = index;
  }

  /**
   * Replaces the whole log by a snapshot from the leader (section 7): everything it held is
   * discarded, and the state machine restarts from the snapshot.
   */
  restore(snapshot: Snapshot): void {
    this.snapshotIndex = snapshot.index;
    this.snapshotTerm = snapshot.term;
    this.entries = [];
    this.unstableFrom = snapshot.index + 1;
    this.commitIndex = snapshot.index;
    this.applyingIndex = snapshot.index;
    this.appliedIndex = snapshot.index;
    this.durableIndex = snapshot.index;
  }

  /**
   * A snapshot installed into a state machine that held nothing, whose log holds the
   * snapshot's last entry: the entries after it stay, to be written again after the snapshot
   * (the driver discards its stored log for it). Committed through the snapshot at least.
   */
  restoreKeeping(snapshot: Snapshot): void {
    assert(this.term(snapshot.index) === snapshot.term, `the log does not hold the snapshot's last entry ${snapshot.index}`);
    this.entries = this.entries.filter((entry) => entry.index > snapshot.index);
    this.snapshotIndex = snapshot.index;
    this.snapshotTerm = snapshot.term;
    this.unstableFrom = snapshot.index + 1;
    this.commitIndex = Math.max(this.commitIndex, snapshot.index);
    this.applyingIndex = snapshot.index;
    this.appliedIndex = snapshot.index;
    this.durableIndex = snapshot.index;
  }

  /** The driver wrote `entries` (a Ready's), unless a conflict replaced them since. */
  stableTo(entries: readonly LogEntry[]): void {
    const last = entries[entries.length - 1];
    if (last !== undefined && this.term(last.index) === last.term) this.durableIndex = Math.max(this.durableIndex, last.index);
  }
}

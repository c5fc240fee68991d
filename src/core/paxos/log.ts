import { assert, assertIndex, AssertionError } from "../common/assert.js";
import type { DurableState, LogEntry, Snapshot } from "../engine/contract.js";

const EMPTY = new Uint8Array(0);

/** Bytes an entry counts for in message and window budgets: its data plus a fixed overhead. */
export function entryBytes(entry: LogEntry): number {
  return entry.data.length + 24;
}

/** A slot with nothing accepted: ballot 0, no data. Phase 1 treats it as nothing to report. */
export function hole(index: number): LogEntry {
  return { index, term: 0, data: EMPTY };
}

export function isHole(entry: LogEntry): boolean {
  return entry.term === 0;
}

/**
 * The most holes one message may make a node create. A slot further than this past an
 * acceptor's log is not accepted, and a promise page that would leave more holes in a
 * candidate's phase 1 is not counted: one peer message naming slot 2^40 made the acceptor
 * push 2^40 holes (the peer fuzzer's find). Refusing is always safe (it is a lost message),
 * and an honest leader never needs more: it writes within α of its chosen prefix, and
 * probes a lagging acceptor from the prefix the acceptor reports.
 */
export const HOLES_PER_MESSAGE_MAX = 1 << 16;

/**
 * One acceptor's slots after its snapshot, held in memory: slot i holds what was accepted
 * there and at which ballot (`term`), or a hole (ballot 0) when nothing was — an acceptor
 * may accept slot 9 before slot 8. The replica's storage wants a contiguous log whose
 * writes replace every entry from the first one written on, so a change inside the log
 * hands out the whole suffix from the changed slot again (`unstableFrom`).
 *
 *   snapshotIndex <= applied <= applying <= commit <= lastIndex
 *
 * Slots up to `commitIndex` are chosen (the contiguous chosen prefix, no hole in it), and
 * are never written again.
 */
export class PaxosLog {
  private snapshotIndex: number;
  private snapshotTerm: number;
  /** entries[i].index === snapshotIndex + 1 + i */
  private entries: LogEntry[];
  /** The lowest slot changed since entries were last handed to the driver (lastIndex + 1: none). */
  private unstableFrom: number;
  /**
   * The first slot of each batch of entries handed out and not yet durable, oldest first:
   * the driver may write several Readies' entries before the first is durable, and a later
   * batch may rewrite slots of an earlier one.
   */
  private readonly handedFrom: number[] = [];
  commitIndex: number;
  appliedIndex: number;
  applyingIndex: number;

  constructor(durable: DurableState<unknown>, commitIndex: number, appliedIndex: number) {
    this.snapshotIndex = durable.snapshot?.index ?? 0;
    this.snapshotTerm = durable.snapshot?.term ?? 0;
    this.entries = [...durable.entries];
    this.entries.forEach((entry, i) => assert(entry.index === this.snapshotIndex + 1 + i, `durable log is not contiguous at ${entry.index}`));
    this.unstableFrom = this.lastIndex + 1;
    assertIndex(commitIndex, "commit index");
    // The state machine may be ahead of the durable commit index (its own durable record).
    this.commitIndex = Math.min(Math.max(commitIndex, appliedIndex, this.snapshotIndex), this.lastIndex);
    this.appliedIndex = Math.max(appliedIndex, this.snapshotIndex);
    assert(this.appliedIndex <= this.commitIndex, `applied ${this.appliedIndex} is beyond the log's end ${this.lastIndex}`);
    for (let i = this.snapshotIndex + 1; i <= this.commitIndex; i++) assert(!isHole(this.entry(i) as LogEntry), `a hole at ${i}, inside the chosen prefix ${this.commitIndex}`);
    this.applyingIndex = this.appliedIndex;
  }

  get firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  get lastIndex(): number {
    return this.snapshotIndex + this.entries.length;
  }

  get snapshotIndexValue(): number {
    return this.snapshotIndex;
  }

  /** The ballot slot `index` was accepted at (0: a hole), or null when compacted away or beyond the end. */
  term(index: number): number | null {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    if (index < this.snapshotIndex || index > this.lastIndex) return null;
    return (this.entries[index - this.snapshotIndex - 1] as LogEntry).term;
  }

  /** The entry at `index` (a hole included), or null outside (snapshotIndex, lastIndex]. */
  entry(index: number): LogEntry | null {
    if (index <= this.snapshotIndex || index > this.lastIndex) return null;
    return this.entries[index - this.snapshotIndex - 1] as LogEntry;
  }

  /** The highest ballot anything in the log was accepted at: a promise at least that high was made. */
  maxBallot(): number {
    let max = 0;
    for (const entry of this.entries) if (entry.term > max) max = entry.term;
    return max;
  }

  /**
   * Writes `entry` into its slot, filling the slots between the end of the log and it with
   * holes. Slots in the chosen prefix are never written (the caller checks).
   */
  write(entry: LogEntry): void {
    // Checked without building the message unless it fails: this runs once per slot per node.
    if (entry.index <= this.commitIndex) throw new AssertionError(`write at ${entry.index}, inside the chosen prefix ${this.commitIndex}`);
    while (this.lastIndex < entry.index - 1) this.entries.push(hole(this.lastIndex + 1));
    if (entry.index === this.lastIndex + 1) this.entries.push(entry);
    else this.entries[entry.index - this.snapshotIndex - 1] = entry;
    if (entry.index < this.unstableFrom) this.unstableFrom = entry.index;
  }

  /** Entries in [from, to], at most `countMax` and `bytesMax` (but always at least one). */
  slice(from: number, to: number, countMax = Number.POSITIVE_INFINITY, bytesMax = Number.POSITIVE_INFINITY): LogEntry[] {
    if (from <= this.snapshotIndex) throw new AssertionError(`slice from ${from}, inside the snapshot at ${this.snapshotIndex}`);
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

  /**
   * A page of a phase 1 report: the accepted entries (holes left out) from `from` on, at most
   * `countMax` of them and `bytesMax` bytes, and the last slot the page covers.
   */
  acceptedPage(from: number, countMax: number, bytesMax: number): { readonly entries: LogEntry[]; readonly through: number; readonly complete: boolean } {
    assert(from > this.snapshotIndex, `report from ${from}, inside the snapshot at ${this.snapshotIndex}`);
    const entries: LogEntry[] = [];
    let bytes = 0;
    for (let index = from; index <= this.lastIndex; index++) {
      const entry = this.entries[index - this.snapshotIndex - 1] as LogEntry;
      if (isHole(entry)) continue;
      bytes += entryBytes(entry);
      if (entries.length > 0 && (entries.length >= countMax || bytes > bytesMax)) return { entries, through: index - 1, complete: false };
      entries.push(entry);
    }
    return { entries, through: Math.max(from - 1, this.lastIndex), complete: true };
  }

  commitTo(index: number): boolean {
    if (index <= this.commitIndex) return false;
    if (index > this.lastIndex) throw new AssertionError(`commit ${index} beyond the last index ${this.lastIndex}`);
    for (let i = Math.max(this.commitIndex, this.snapshotIndex) + 1; i <= index; i++) if (isHole(this.entry(i) as LogEntry)) throw new AssertionError(`commit over a hole at ${i}`);
    this.commitIndex = index;
    return true;
  }

  get hasUnstable(): boolean {
    return this.unstableFrom <= this.lastIndex;
  }

  /** The entries to write now: the suffix from the lowest changed slot. */
  takeUnstable(): LogEntry[] {
    if (!this.hasUnstable) return [];
    const out = this.entries.slice(this.unstableFrom - this.snapshotIndex - 1);
    this.handedFrom.push(this.unstableFrom);
    this.unstableFrom = this.lastIndex + 1;
    return out;
  }

  /** The driver made durable the entries of the oldest Ready not yet advanced (`entries`, as handed out). */
  stable(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    const from = this.handedFrom.shift();
    assert(from === (entries[0] as LogEntry).index, `entries from ${(entries[0] as LogEntry).index} made durable, but the oldest handed out start at ${from}`);
  }

  /** Every slot up to here is on disk as it is in memory: before whatever is unwritten, or written and not durable. */
  get durableThrough(): number {
    let first = Math.min(this.unstableFrom, this.lastIndex + 1);
    for (const from of this.handedFrom) if (from < first) first = from;
    return first - 1;
  }

  get hasCommittedToApply(): boolean {
    return this.applyingIndex < this.commitIndex;
  }

  takeCommitted(countMax: number): LogEntry[] {
    if (!this.hasCommittedToApply) return [];
    const out = this.slice(this.applyingIndex + 1, this.commitIndex, countMax);
    this.applyingIndex += out.length;
    return out;
  }

  appliedTo(index: number): void {
    if (index > this.applyingIndex) throw new AssertionError(`applied ${index} beyond what was handed out (${this.applyingIndex})`);
    this.appliedIndex = Math.max(this.appliedIndex, index);
  }

  /** Discards the slots up to and including `index`, which the state machine has applied. */
  compact(index: number): void {
    assert(index <= this.appliedIndex, `compaction at ${index} beyond the applied index ${this.appliedIndex}`);
    if (index <= this.snapshotIndex) return;
    this.snapshotTerm = this.term(index) as number;
    this.entries = this.entries.slice(index - this.snapshotIndex);
    this.snapshotIndex = index;
  }

  /**
   * Installs a leader's snapshot: every slot through its index is chosen and replaced by it.
   * The slots after it are kept — they hold this acceptor's acceptances, which it must not
   * forget — and written again after the snapshot (the driver discards the whole stored log
   * when it installs one).
   */
  restore(snapshot: Snapshot): void {
    const kept = this.entries.filter((entry) => entry.index > snapshot.index);
    this.snapshotIndex = snapshot.index;
    this.snapshotTerm = snapshot.term;
    this.entries = kept;
    // Slots between the snapshot and what was kept (the log ended before the snapshot): none.
    this.unstableFrom = snapshot.index + 1;
    this.commitIndex = snapshot.index;
    this.applyingIndex = snapshot.index;
    this.appliedIndex = snapshot.index;
  }
}

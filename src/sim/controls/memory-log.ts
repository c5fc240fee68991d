import { assert } from "../../core/common/assert.js";
import type { DurableState, LogEntry } from "../../core/engine/contract.js";

/**
 * The in-memory log the control engines share: entries from `firstIndex` on, and which of
 * them are not yet handed to the driver for writing. The control engines have no snapshots.
 */
export class MemoryLog {
  private entries: LogEntry[];
  /** Entries at and after this index have not been handed out in a Ready yet. */
  private unstableFrom: number;

  constructor(durable: DurableState<unknown>) {
    assert(durable.snapshot === null, "the control engines do not use snapshots");
    this.entries = [...durable.entries];
    assert(this.entries.every((entry, i) => entry.index === i + 1), "durable log must start at 1 and be contiguous");
    this.unstableFrom = this.entries.length + 1;
  }

  get lastIndex(): number {
    return this.entries.length;
  }

  term(index: number): number | null {
    if (index === 0) return 0;
    return this.entries[index - 1]?.term ?? null;
  }

  entry(index: number): LogEntry | undefined {
    return this.entries[index - 1];
  }

  /** Entries in [from, to], inclusive. */
  slice(from: number, to: number): LogEntry[] {
    return this.entries.slice(from - 1, to);
  }

  append(term: number, data: Uint8Array): LogEntry {
    const entry = { index: this.entries.length + 1, term, data };
    this.entries.push(entry);
    return entry;
  }

  /** Replaces everything after `afterIndex` with `added` (which start at afterIndex + 1). */
  replaceAfter(afterIndex: number, added: readonly LogEntry[]): void {
    assert(afterIndex <= this.entries.length, "replace beyond the end of the log");
    this.entries.length = afterIndex;
    for (const entry of added) this.entries.push(entry);
    this.unstableFrom = Math.min(this.unstableFrom, afterIndex + 1);
  }

  /** The entries to hand to the driver now, marking them handed out. */
  takeUnstable(): LogEntry[] {
    const out = this.entries.slice(this.unstableFrom - 1);
    this.unstableFrom = this.entries.length + 1;
    return out;
  }

  get hasUnstable(): boolean {
    return this.unstableFrom <= this.entries.length;
  }
}

/**
 * Deliberately broken splits, so the simulator (`synod sim --splits N`, sim/split-run.ts)
 * can prove its checkers catch the bugs range-sharded stores have shipped. Production never
 * builds one.
 *
 * - `split-serves-moved-keys` breaks the store's backend (backend.ts `setSpan`): a split
 *   does not narrow the parent's span, so the parent keeps the keys its split moved to the
 *   child and goes on taking writes and answering reads of them. Clients that route a moved
 *   key to the parent and those that route it to the child see two registers: stale reads,
 *   and writes the range that owns the key at the end never saw.
 * - `split-read-epoch-unchecked` breaks where a read checks its range: on arrival only, not
 *   again once its read index applied. A read that reaches a replica which has not applied
 *   the split yet passes the check, waits for its read index, which covers the split, and is
 *   answered from a range that no longer holds the key: "not found" for a key that exists.
 *   TiKV shipped this (tikv/tikv#14699, "Response read without checking epoch": raftstore v2
 *   answered follower reads without checking the region's epoch, so a read concurrent with a
 *   split read out of range; and tikv/tikv#1682, a read index proposed before a split and
 *   applied long after it). Production checks after the wait (runtime/server/node-ranges.ts
 *   `rangeService.get`, and `readRangeCheck` below).
 */
import { MemoryKvBackend } from "./backend.js";
import { compareUtf8 } from "../common/utf8.js";
import type { KeySpan } from "./split.js";
import { KvStore } from "./store.js";

export const SPLIT_MUTANTS = {
  "split-serves-moved-keys": "a split does not narrow the parent's span: the parent keeps the keys it moved to the new range and goes on answering reads and taking writes of them",
  "split-read-epoch-unchecked":
    "a read checks its key against the range's span when it arrives, not again once its read index applied: a split applied meanwhile and the parent answers 'not found' for a key that moved (tikv/tikv#14699: reads answered without checking the region's epoch after a split)",
} as const;

export type SplitMutant = keyof typeof SPLIT_MUTANTS;

export function isSplitMutant(name: string): name is SplitMutant {
  return Object.hasOwn(SPLIT_MUTANTS, name);
}

/**
 * When a read of one key checks that its range holds the key: on arrival, and again once its
 * read index applied (a split may have moved the key while it waited), as production does;
 * the `split-read-epoch-unchecked` mutant checks on arrival only.
 */
export function readRangeCheck(mutant: SplitMutant | null): { readonly onArrival: boolean; readonly afterReadIndex: boolean } {
  return { onArrival: true, afterReadIndex: mutant !== "split-read-epoch-unchecked" };
}

/** The `split-serves-moved-keys` backend: a span cut short at its end (a split) keeps the span it had. */
class WideSpanBackend extends MemoryKvBackend {
  override setSpan(span: KeySpan): void {
    const current = this.span;
    const cutAtEnd = current !== undefined && span.start === current.start && span.end !== null && (current.end === null || compareUtf8(span.end, current.end) < 0);
    super.setSpan(cutAtEnd ? current : span);
  }
}

/** A store for a range of the simulator's split runs: production's, or the `split-serves-moved-keys` mutant's. */
export function createRangeStore(mutant: SplitMutant | null): KvStore {
  return new KvStore(mutant === "split-serves-moved-keys" ? new WideSpanBackend() : new MemoryKvBackend());
}

/**
 * Ranges born of a split whose records stayed in the node's store (src/core/kv/split.ts):
 * their log starts with a first state that only names those records, until each one's
 * first full snapshot. One object per node, used by production's node
 * (runtime/server/range-births.ts) and the simulator's alike.
 */
import type { DurableState } from "../engine/contract.js";
import type { GroupId } from "./group.js";

/** The split a range's held first state came of: range `parent`'s entry `index` (src/core/kv/split.ts). */
export interface HeldSplit {
  readonly parent: GroupId;
  readonly index: number;
}

/**
 * The ranges of a node that started from a held first state (their records are where their
 * parent's split left them in the node's store: src/core/kv/split.ts), until each one's log
 * starts with a full snapshot. Meanwhile the parent keeps the split in its log (`holds`):
 * were the store rebuilt from the logs (after a machine crash: runtime/storage/kv-lmdb.ts, "Durability"),
 * the parent applying the split again is what makes the child's records again. The shared
 * write-ahead log is one sequence, so a child's compaction is durable before any later
 * compaction of its parent is.
 */
export class HeldBirths {
  private readonly byChild = new Map<GroupId, HeldSplit>();

  /** Range `child` started from a held first state that came of `split`. */
  add(child: GroupId, split: HeldSplit): void {
    this.byChild.set(child, split);
  }

  /** Range `child`'s log starts with a full snapshot now, or the range left this node. */
  release(child: GroupId): void {
    this.byChild.delete(child);
  }

  /** Whether range `parent` must keep its log through `index`: a split there made a child still held. */
  holds(parent: GroupId, index: number): boolean {
    if (this.byChild.size === 0) return false;
    for (const split of this.byChild.values()) if (split.parent === parent && index >= split.index) return true;
    return false;
  }

  /** How many ranges here still start from a held first state. */
  get size(): number {
    return this.byChild.size;
  }
}

/** The highest split index each parent's held children name: entries of the parent known to be committed. */
export function splitsWitnessed(splits: Iterable<HeldSplit>): Map<GroupId, number> {
  const witnessed = new Map<GroupId, number>();
  for (const { parent, index } of splits) witnessed.set(parent, Math.max(index, witnessed.get(parent) ?? 0));
  return witnessed;
}

/**
 * A parent's durable state at restart, its commit index raised to `witnessed`, the split a
 * held child of it names. A child is born only when its parent applies the split, and an
 * entry applies only once durable in the log, so the child's first state is durable proof
 * that the entry committed and is in the parent's log, even when the parent's hard state
 * is older: a commit index alone is saved without a sync of its own. Applying again through
 * it at restart is what makes the child's records again when the store is rebuilt from the
 * logs. Without it, a parent whose leader compacted past its log while it was down catches
 * up from the leader's snapshot, never applies the split here again, and the child cannot
 * start. Unchanged when the log does not hold entry `witnessed` (compacted past it or
 * never written: the child is then no longer held, or was not born here) or the hard state
 * records no commit index.
 */
export function withWitnessedCommit<H>(durable: DurableState<H>, witnessed: number): DurableState<H> {
  const hard: unknown = durable.hardState;
  if (hard === null || typeof hard !== "object" || !("commit" in hard) || typeof hard.commit !== "number" || hard.commit >= witnessed) return durable;
  const first = (durable.snapshot?.index ?? 0) + 1;
  const last = first - 1 + durable.entries.length;
  if (witnessed < first || witnessed > last) return durable;
  return { ...durable, hardState: { ...hard, commit: witnessed } as H };
}

/**
 * What a held child is hosted from when its parent here will not make its records again (it
 * caught up from a leader's snapshot taken after the split, and the store that held them is
 * gone): with nothing in its log past the held first state, no state at all, its hard state
 * kept, to be sent its leader's snapshot as a replica that missed the split is. Safe: its log
 * acknowledged nothing past its birth, so no committed entry counts on it, and with no state
 * it knows no configuration, so it cannot campaign. Null when its log holds entries past its
 * first state: dropping them could forget entries it acknowledged (a leader could then be
 * elected without one that committed), so it is hosted from its whole log, its store empty,
 * and its engine waits for a full snapshot keeping that log (EngineOptions.awaitSnapshot
 * with a held snapshot: no entry applied, none taken, no election stood for).
 */
export function unmadeChildState<H>(durable: DurableState<H>): DurableState<H> | null {
  return durable.entries.length === 0 ? { hardState: durable.hardState, snapshot: null, entries: [] } : null;
}

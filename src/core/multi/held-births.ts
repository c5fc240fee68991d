/**
 * Ranges born of a split whose records stayed in the node's store (src/core/kv/split.ts):
 * their log starts with a first state that only names those records, until each one's
 * first full snapshot. One object per node, used by production's node
 * (runtime/server/range-births.ts) and the simulator's alike.
 */
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

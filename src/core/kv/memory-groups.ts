/**
 * Memory stores that hand a split's records over the way a node's LMDB environment does
 * (runtime/storage/kv-lmdb-env.ts): a split moves the records it cuts off into the child's
 * store (`splitOff`) and the child's first state only names them (split.ts,
 * `heldFirstState`). The simulator's nodes run their ranges on these, one `MemoryKvGroups`
 * per process lifetime (a crash loses it, as a machine crash loses an LMDB store that is
 * not trusted), so its splits take the path production's take: a first state that cannot
 * be sent or restored elsewhere, replaced by a full snapshot, and a parent that keeps the
 * split in its log meanwhile.
 */
import { assert } from "../common/assert.js";
import { spanHolds } from "../multi/ranges.js";
import { MemoryKvBackend } from "./backend.js";
import type { KvMeta, KvRecord } from "./model.js";
import type { KeySpan } from "./split.js";

/** The stores of one simulated process's ranges that splits made, by range id. */
export class MemoryKvGroups {
  private readonly byGroup = new Map<number, SharedMemoryKvBackend>();

  /** The store a split made for range `group` in this process's lifetime, if one did. */
  backend(group: number): SharedMemoryKvBackend | undefined {
    return this.byGroup.get(group);
  }

  register(group: number, backend: SharedMemoryKvBackend): void {
    this.byGroup.set(group, backend);
  }

  unregister(group: number): void {
    this.byGroup.delete(group);
  }
}

/**
 * A range's memory store in a `MemoryKvGroups`: `setSpan` keeps what it cuts off for a
 * `splitOff` in the same transaction, which moves it to the child's new store.
 */
export class SharedMemoryKvBackend extends MemoryKvBackend {
  /** The records the last `setSpan` of the transaction under way left out (null: none yet). */
  private cut: KvRecord[] | null = null;

  constructor(private readonly groups: MemoryKvGroups) {
    super();
  }

  /** The groups this store is in (for a subclass's `sibling`). */
  protected get siblingGroups(): MemoryKvGroups {
    return this.groups;
  }

  override setSpan(span: KeySpan): void {
    const leaving = this.allRecords().filter((record) => !spanHolds(span, record.key));
    super.setSpan(span);
    this.cut = [...(this.cut ?? []), ...leaving];
  }

  /**
   * See KvBackend.splitOff: the records `setSpan` cut off that lie in `span` (and any this
   * store still holds there: a mutant's parent that kept them) become range `child`'s new
   * store, with `meta`, registered with the groups; undone if the transaction rolls back. A
   * child already registered is left as it is: only a simulated node, whose stores are
   * apart, hosts a child from its own snapshot before its parent applies the split again.
   */
  splitOff(child: number, span: KeySpan, meta: KvMeta): void {
    assert(this.cut !== null, "splitOff follows a setSpan in the same transaction");
    if (this.groups.backend(child) !== undefined) return;
    const records = [...this.cut.filter((record) => spanHolds(span, record.key)), ...this.allRecords().filter((record) => spanHolds(span, record.key))];
    const backend = this.sibling();
    backend.span = span;
    backend.transaction(() => {
      for (const record of records) backend.putRecord(record);
      backend.writeMeta(meta);
    });
    this.groups.register(child, backend);
    this.onRollback(() => this.groups.unregister(child));
  }

  override transaction<T>(fn: () => T): T {
    try {
      return super.transaction(fn);
    } finally {
      this.cut = null;
    }
  }

  /** A new store of the same kind in the same groups (a mutant's children are the mutant's). */
  protected sibling(): SharedMemoryKvBackend {
    return new SharedMemoryKvBackend(this.groups);
  }
}

/**
 * The writes part of the KV state machine (store.ts): every record a command writes or
 * deletes (a lease's keys as it goes too) goes through `KvWrites`, which keeps the record, its
 * lease attachment, the key count and the history together, and keeps each change for the
 * store's observer until the transaction commits (`takeChanges`).
 *
 * KvStore owns the transaction and the revision: it tells each write its revision, and moves
 * its own when a write was made. Every method is called inside its transaction, and
 * `mark` / `rollback` let it undo the caches when one throws.
 */
import type { KvBackend } from "./backend.js";
import type { TxnOperation } from "./command.js";
import { inheritedChange } from "./history.js";
import type { KvLeases } from "./leases.js";
import type { KvChange, KvRecord, TxnOperationResult } from "./model.js";

/** A range delete reads and deletes the keys it matches this many at a time (and `startHistory` reads the records so). */
export const DELETE_PAGE_RECORDS = 1000;

export class KvWrites {
  /** How many keys the backend holds (derived from it at open, then kept as keys come and go). */
  private keyCount: number;
  /** The changes of the transaction under way, for the observer once it commits. */
  private pendingChanges: KvChange[] = [];
  /** The revision the range was born at by a split (KvMeta.bornAt; 0: not so): its keys' first writes since put their inherited change first. */
  bornAt = 0;

  constructor(
    private readonly backend: KvBackend,
    private readonly leases: KvLeases,
  ) {
    this.keyCount = backend.recordCount();
  }

  /** How many keys the backend holds. */
  get keys(): number {
    return this.keyCount;
  }

  /** Counts the keys again: after a snapshot replaced the state, or a split gave keys away. */
  recount(): void {
    this.keyCount = this.backend.recordCount();
  }

  /** The key count at the start of a transaction, to put back if it throws. */
  mark(): number {
    return this.keyCount;
  }

  /** Undoes a transaction that threw: the key count it started with, and none of its changes. */
  rollback(keyCount: number): void {
    this.keyCount = keyCount;
    this.pendingChanges = [];
  }

  /** The committed transaction's changes, in the order they were made; the next transaction starts with none. */
  takeChanges(): KvChange[] {
    const changes = this.pendingChanges;
    if (changes.length > 0) this.pendingChanges = [];
    return changes;
  }

  /**
   * A transaction's branch: its operations in order, every write at `revision`, the store's
   * next. Returns the operations' results, and whether any wrote (then the store is at `revision`).
   */
  runBranch(branch: readonly TxnOperation[], revision: number): { readonly results: TxnOperationResult[]; readonly wrote: boolean } {
    let wrote = false;
    const results = branch.map((operation): TxnOperationResult => {
      const current = this.backend.getRecord(operation.key);
      switch (operation.op) {
        case "get":
          return { op: "get", record: current ?? null };
        case "put":
          wrote = true;
          this.write(operation.key, operation.value, current, revision, operation.lease);
          return { op: "put", revision };
        case "delete":
          if (current === undefined) return { op: "delete", deleted: 0 };
          wrote = true;
          this.remove(operation.key, revision);
          return { op: "delete", deleted: 1 };
      }
    });
    return { results, wrote };
  }

  /**
   * Deletes every key under `prefix` at `revision`, a page at a time (reads in a backend
   * transaction see its deletes, so each page is the next keys left); returns how many.
   * Each round deletes a full page or ends the loop.
   */
  deletePrefix(prefix: string, revision: number): number {
    let deleted = 0;
    for (;;) {
      const page = this.backend.rangeRecords({ prefix, limit: DELETE_PAGE_RECORDS });
      for (const record of page) this.remove(record.key, revision);
      deleted += page.length;
      if (page.length < DELETE_PAGE_RECORDS) return deleted;
    }
  }

  /** Deletes an existing key's record at `revision`, recording the delete in the history. */
  remove(key: string, revision: number): void {
    if (this.bornAt !== 0) this.inherit(key, this.backend.getRecord(key));
    this.backend.detachKey(key);
    this.backend.deleteRecord(key);
    this.keyCount--;
    this.addChange({ key, revision, record: null });
  }

  /** Writes a key's new record at `revision`, attached to `lease` (a lease the store holds) or to none. */
  write(key: string, value: Uint8Array, current: KvRecord | undefined, revision: number, lease?: number): number {
    if (current === undefined) this.keyCount++;
    if (this.bornAt !== 0) this.inherit(key, current);
    this.leases.attach(key, lease);
    const record: KvRecord = {
      key,
      value,
      createRevision: current === undefined ? revision : current.createRevision,
      modRevision: revision,
      version: current === undefined ? 1 : current.version + 1,
    };
    this.backend.putRecord(record);
    this.addChange({ key, revision, record });
    return revision;
  }

  /** In a range born of a split, the key's change as it was born, before its first write since (history.ts, "Born of a split"); not told to the observer. */
  private inherit(key: string, current: KvRecord | undefined): void {
    const change = inheritedChange(this.backend, this.bornAt, key, current);
    if (change !== undefined) this.backend.putChange(change);
  }

  /** Records a change in the history (and for the observer). */
  private addChange(change: KvChange): void {
    this.backend.putChange(change);
    this.pendingChanges.push(change);
  }
}

import type { Snapshot } from "../../core/engine/contract.js";
import type { LogStorage, LogWrite } from "../../core/replica/contract.js";
import { emptySet, writableSet } from "../../core/common/empty.js";
import type { LogStore } from "./log-store.js";

/**
 * The WAL as the replica's log storage: fdatasync and snapshot files off the event loop.
 * It remembers what runs in the background, so the node can wait for it before closing.
 */
export class WalLogStorage<H> implements LogStorage<H> {
  /** The syncs and compactions running; the shared empty set while none is (a range's is idle nearly always: core/common/empty.ts). */
  private running = emptySet<Promise<void>>();

  constructor(private readonly store: LogStore<H>) {}

  save(write: LogWrite<H>): void {
    this.store.save(write);
  }

  sync(done: (error: unknown) => void): void {
    this.track(this.store.syncAsync(), done);
  }

  prepareSnapshot(snapshot: Snapshot, done: (error: unknown) => void): void {
    this.track(this.store.prepareCompaction(snapshot), done);
  }

  compact(snapshot: Snapshot): void {
    this.store.compact(snapshot);
  }

  /** Resolves once nothing runs in the background. */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  private track(work: Promise<void>, done: (error: unknown) => void): void {
    const tracked = work.then(
      () => done(null),
      (error: unknown) => done(error ?? new Error("the log store failed")),
    );
    this.running = writableSet(this.running);
    this.running.add(tracked);
    void tracked.finally(() => {
      this.running.delete(tracked);
      if (this.running.size === 0) this.running = emptySet();
    });
  }
}


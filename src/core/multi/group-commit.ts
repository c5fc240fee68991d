/**
 * Group commit of syncs: the replicas a node hosts share one durable device (the node's
 * WAL; `SimDisk` in the simulator), and when several of them ask their `LogStorage` to
 * `sync` in the same turn, one device sync serves all of them. A node with a hundred busy
 * groups then pays one fdatasync per event-loop turn, not a hundred.
 *
 * The rules, each tested in group-commit.test.ts:
 * - A group's `done` comes only after a device sync that *started after* its request, so
 *   the sync covers every save the group made before asking (a group saves, then syncs).
 * - At most one device sync runs at a time. Requests that arrive while it runs wait for the
 *   next one, which starts (soon) after it completes and covers all of them.
 * - A device sync that fails fails every request it covered, and every later one: a device
 *   that could not make data durable cannot be trusted to have kept what it held (an
 *   fsync error may have dropped dirty pages), so no group may believe a later sync.
 */
import type { LogStorage, LogWrite } from "../replica/contract.js";
import type { Snapshot } from "../engine/contract.js";

/**
 * A durable device shared by every group of a node. Writes reach it through each group's
 * storage; `sync` makes everything written before the call durable, then calls `done(null)`
 * (possibly before returning), or `done(error)` when it could not. GroupCommit asks for at
 * most one sync at a time.
 */
export interface SyncDevice {
  sync(done: (error: unknown) => void): void;
}

export interface GroupCommitOptions {
  readonly device: SyncDevice;
  /**
   * Runs `action` after the input being handled and the others that arrive with it (the
   * runtime: the next turn of the event loop; the simulator: later at the same virtual
   * instant), so every group that asks in one turn shares one device sync.
   */
  readonly soon: (action: () => void) => void;
}

type Done = (error: unknown) => void;

export class GroupCommit {
  /** Requests no device sync has started for yet. */
  private pending: Done[] = [];
  private flushScheduled = false;
  private syncing = false;
  private failure: { readonly error: unknown } | null = null;
  /** Device syncs started, for metrics and tests. */
  deviceSyncs = 0;
  /** Sync requests taken, for metrics and tests: `requests / deviceSyncs` is the batching won. */
  requests = 0;

  constructor(private readonly options: GroupCommitOptions) {}

  /** Calls `done` once a device sync that started after this call completes (or failed). */
  sync(done: Done): void {
    this.requests++;
    this.pending.push(done);
    this.schedule();
  }

  /** A group's storage whose `sync` joins the node's group commit; the rest goes to `storage`. */
  storage<H>(storage: Omit<LogStorage<H>, "sync">): LogStorage<H> {
    return {
      save: (write: LogWrite<H>) => storage.save(write),
      sync: (done) => this.sync(done),
      prepareSnapshot: (snapshot: Snapshot, done) => storage.prepareSnapshot(snapshot, done),
      compact: (snapshot: Snapshot) => storage.compact(snapshot),
    };
  }

  private schedule(): void {
    if (this.flushScheduled || this.syncing) return;
    this.flushScheduled = true;
    this.options.soon(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.syncing || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    if (this.failure !== null) {
      const { error } = this.failure;
      for (const done of batch) done(error);
      return;
    }
    this.syncing = true;
    this.deviceSyncs++;
    this.options.device.sync((error) => {
      this.syncing = false;
      if (error !== null && error !== undefined && this.failure === null) this.failure = { error };
      for (const done of batch) done(error ?? null);
      if (this.pending.length > 0) this.schedule();
    });
  }
}

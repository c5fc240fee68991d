/**
 * Conformance of the replica's `LogStorage` (core/replica/contract.ts): the node's WAL
 * (`WalLogStorage` over `LogStore`) and the simulator's disk (`SimLogStorage` over
 * `SimDisk`), both driven through that interface only, must recover the same durable state
 * from the same history. Random histories of what the replica does —
 * appends that extend or replace a suffix, hard states, leader snapshots, compactions at
 * applied indexes, syncs, crashes after a sync, clean restarts — go to both; after every
 * restart, `LogStore.open().durable` must deep-equal `SimDisk.replay()`. Segments are tiny,
 * so rolls, checkpoints over several segments and segment removal all happen.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import type { DurableState, LogEntry, Snapshot } from "../../core/engine/contract.js";
import type { LogStorage, LogWrite } from "../../core/replica/contract.js";
import { SimDisk, SimLogStorage } from "../../sim/disk.js";
import { LogStore, type LogStoreOpened } from "./log-store.js";
import { WalLogStorage } from "./wal-log-storage.js";

interface Hard {
  readonly term: number;
  readonly vote: number;
  readonly commit: number;
}

/** One step of a history, in numbers the run maps onto valid indexes of the log at that moment (`from: null`: append at the end). */
type Step =
  | { readonly kind: "save"; readonly from: number | null; readonly count: number; readonly newTerm: boolean; readonly hardState: boolean; readonly dataBytes: number }
  | { readonly kind: "install"; readonly ahead: number; readonly count: number; readonly dataBytes: number }
  | { readonly kind: "compact"; readonly at: number; readonly behind: boolean }
  | { readonly kind: "sync" }
  | { readonly kind: "crash" }
  | { readonly kind: "restart" };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ kind: fc.constant("save" as const), from: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat() }), count: fc.integer({ min: 0, max: 8 }), newTerm: fc.boolean(), hardState: fc.boolean(), dataBytes: fc.integer({ min: 0, max: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("install" as const), ahead: fc.integer({ min: 0, max: 12 }), count: fc.integer({ min: 0, max: 3 }), dataBytes: fc.integer({ min: 0, max: 400 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("compact" as const), at: fc.nat(), behind: fc.boolean() }) },
  { weight: 2, arbitrary: fc.constant({ kind: "sync" as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: "crash" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "restart" as const }) },
);

const SEGMENT_BYTES = 2048;

/** Deterministic bytes, different for every entry and term. */
function data(length: number, index: number, term: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (index * 31 + term * 7 + i) & 0xff);
}

/** One history run against both stores. */
class Run {
  private readonly disk = new SimDisk<Hard>(0);
  /** The simulator's storage: its fsyncs complete at once (this suite is about what is recovered, not when). */
  private readonly sim = new SimLogStorage<Hard>(this.disk, (completed) => completed(), (action) => action());
  private term = 1;
  private kind: "installed" | "own" | null = null;
  private store: LogStore<Hard>;
  private wal: WalLogStorage<Hard>;

  constructor(private readonly dirs: { readonly dir: string; readonly snapshotDir: string }) {
    this.store = this.open().store;
    this.wal = new WalLogStorage(this.store);
  }

  /** Both storages, as the replica uses them. */
  private get storages(): readonly LogStorage<Hard>[] {
    return [this.wal, this.sim];
  }

  private save(write: LogWrite<Hard>): void {
    for (const storage of this.storages) storage.save(write);
  }

  private async sync(): Promise<void> {
    for (const storage of this.storages) await new Promise<void>((resolve, reject) => storage.sync((error) => (error === null ? resolve() : reject(error as Error))));
  }

  /** The replica's order: the snapshot's file first (possibly in the background), then the compaction. */
  private async compact(snapshot: Snapshot): Promise<void> {
    for (const storage of this.storages) {
      await new Promise<void>((resolve, reject) => storage.prepareSnapshot(snapshot, (error) => (error === null ? resolve() : reject(error as Error))));
      storage.compact(snapshot);
    }
  }

  private open(): LogStoreOpened<Hard> {
    return LogStore.open<Hard>({
      ...this.dirs,
      encodeHardState: (h) => new TextEncoder().encode(JSON.stringify(h)),
      decodeHardState: (b) => JSON.parse(new TextDecoder().decode(b)) as Hard,
      segmentBytes: SEGMENT_BYTES,
    });
  }

  private get model(): DurableState<Hard> {
    return this.disk.replay();
  }

  private lastIndex(model: DurableState<Hard>): number {
    return model.entries[model.entries.length - 1]?.index ?? model.snapshot?.index ?? 0;
  }

  async apply(next: Step): Promise<void> {
    const model = this.model;
    const snapshotIndex = model.snapshot?.index ?? 0;
    const last = this.lastIndex(model);
    switch (next.kind) {
      case "save": {
        if (next.newTerm) this.term++;
        // Mostly appending at the end, now and then replacing a suffix (a follower's conflict).
        const first = next.from === null ? last + 1 : snapshotIndex + 1 + (next.from % (last - snapshotIndex + 1));
        const entries: LogEntry[] = Array.from({ length: next.count }, (_, i) => ({ index: first + i, term: this.term, data: data(next.dataBytes, first + i, this.term) }));
        const hardState = next.hardState ? { term: this.term, vote: this.term % 3, commit: Math.min(first - 1, snapshotIndex + next.count) } : null;
        this.save({ snapshot: null, entries, hardState });
        break;
      }
      case "install": {
        this.term++;
        const index = snapshotIndex + 1 + next.ahead;
        const snapshot = { index, term: this.term, data: data(next.dataBytes, index, this.term) };
        const entries: LogEntry[] = Array.from({ length: next.count }, (_, i) => ({ index: index + 1 + i, term: this.term, data: data(20, index + 1 + i, this.term) }));
        const hardState = { term: this.term, vote: 0, commit: index };
        this.save({ snapshot, entries, hardState });
        this.kind = "installed";
        break;
      }
      case "compact": {
        // The driver compacts at an applied index, which the log holds; now and then one behind the snapshot, which changes nothing.
        const index = next.behind && snapshotIndex > 0 ? 1 + (next.at % snapshotIndex) : last > snapshotIndex ? snapshotIndex + 1 + (next.at % (last - snapshotIndex)) : null;
        if (index === null) break;
        const term = model.entries.find((entry) => entry.index === index)?.term ?? model.snapshot?.term ?? 0;
        const snapshot = { index, term, data: data(50, index, term) };
        // What the replica has saved is synced before it compacts (it compacts between syncs).
        await this.sync();
        await this.compact(snapshot);
        if (index > snapshotIndex) this.kind = "own";
        break;
      }
      case "sync":
        await this.sync();
        break;
      case "crash":
        await this.sync();
        await this.store.backgroundSettled(); // a real crash ends the fill with the process
        this.reopen();
        break;
      case "restart":
        await this.store.close();
        this.reopen();
        break;
    }
    this.disk.sync(); // the model: every step durable, no tearing (the WAL's unsynced tail is tested in log-store.test.ts)
    const now = this.model;
    assert.equal(this.store.lastIndex, this.lastIndex(now), "lastIndex");
    assert.equal(this.store.snapshotIndex, now.snapshot?.index ?? 0, "snapshotIndex");
  }

  reopen(): void {
    const opened = this.open();
    this.store = opened.store;
    this.wal = new WalLogStorage(this.store);
    assert.deepEqual(opened.durable, this.model);
    assert.equal(opened.snapshotKind, this.kind);
  }

  async finish(): Promise<void> {
    await this.store.close();
    this.reopen();
    await this.store.close();
  }
}

test("LogStorage conformance: the WAL recovers what the simulator's disk recovers, both driven through the replica's interface, over random histories with crashes", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 20, maxLength: 50 }), async (steps) => {
      const root = mkdtempSync(join(tmpdir(), "synod-log-conformance-"));
      try {
        const run = new Run({ dir: join(root, "wal"), snapshotDir: join(root, "snap") });
        for (const next of steps) await run.apply(next);
        await run.finish();
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    }),
    { numRuns: 100 },
  );
});

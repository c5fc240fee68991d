/**
 * Conformance of the replica's `LogStorage` (core/replica/contract.ts): the node's WAL
 * (`WalLogStorage` over `LogStore`) and the simulator's disk (`SimLogStorage` over
 * `SimDisk`), both driven through that interface only, must recover the same durable state
 * from the same history. Random histories of what the replica does —
 * appends that extend or replace a suffix, hard states, leader snapshots, compactions at
 * applied indexes, syncs, crashes after a sync, clean restarts — go to both; after every
 * restart, `LogStore.open().durable` must deep-equal `SimDisk.replay()`. Segments are tiny,
 * so rolls, checkpoints over several segments and segment removal all happen.
 *
 * The second property runs several groups over one shared WAL (`SharedLog`) and one shared
 * simulated disk, each step on one group, with one group's compaction now and then made
 * while another group's fdatasync runs: every group must recover what the disk replays
 * for it.
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
import { LogStore } from "./log-store.js";
import { SharedLog, type SharedLogOpened } from "./shared-log.js";
import { WalLogStorage } from "./wal-log-storage.js";

interface Hard {
  readonly term: number;
  readonly vote: number;
  readonly commit: number;
}

/**
 * One step of a history, in numbers the run maps onto valid indexes of the log at that
 * moment (`from: null`: append at the end) and onto the groups (`group`, modulo their count).
 */
type Step = { readonly group: number } & (
  | { readonly kind: "save"; readonly from: number | null; readonly count: number; readonly newTerm: boolean; readonly hardState: boolean; readonly dataBytes: number }
  | { readonly kind: "install"; readonly ahead: number; readonly count: number; readonly dataBytes: number }
  | { readonly kind: "compact"; readonly at: number; readonly behind: boolean }
  | { readonly kind: "compact-during-sync"; readonly syncing: number; readonly at: number }
  | { readonly kind: "sync" }
  | { readonly kind: "crash" }
  | { readonly kind: "restart" }
);

const group = fc.nat({ max: 7 });
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ group, kind: fc.constant("save" as const), from: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat() }), count: fc.integer({ min: 0, max: 8 }), newTerm: fc.boolean(), hardState: fc.boolean(), dataBytes: fc.integer({ min: 0, max: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ group, kind: fc.constant("install" as const), ahead: fc.integer({ min: 0, max: 12 }), count: fc.integer({ min: 0, max: 3 }), dataBytes: fc.integer({ min: 0, max: 400 }) }) },
  { weight: 2, arbitrary: fc.record({ group, kind: fc.constant("compact" as const), at: fc.nat(), behind: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ group, kind: fc.constant("compact-during-sync" as const), syncing: group, at: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ group, kind: fc.constant("sync" as const) }) },
  { weight: 2, arbitrary: fc.record({ group, kind: fc.constant("crash" as const) }) },
  { weight: 1, arbitrary: fc.record({ group, kind: fc.constant("restart" as const) }) },
);

const SEGMENT_BYTES = 2048;

/** Deterministic bytes, different for every entry and term. */
function data(length: number, index: number, term: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (index * 31 + term * 7 + i) & 0xff);
}

/** One group's two storages, as its replica would use them. */
interface GroupStorages {
  readonly wal: WalLogStorage<Hard>;
  readonly sim: SimLogStorage<Hard>;
  term: number;
  kind: "installed" | "own" | null;
}

function syncOf(storage: LogStorage<Hard>): Promise<void> {
  return new Promise<void>((resolve, reject) => storage.sync((error) => (error === null ? resolve() : reject(error as Error))));
}

/** One history run against both stores, over `groupCount` groups sharing one WAL and one simulated disk. */
class Run {
  private readonly disk = new SimDisk<Hard>(0);
  private log: SharedLog<Hard>;
  private readonly groups = new Map<number, GroupStorages>();

  constructor(
    private readonly dirs: { readonly dir: string; readonly snapshotDir: string },
    private readonly groupCount: number,
  ) {
    this.log = this.open().log;
  }

  private storages(group: number): GroupStorages {
    let storages = this.groups.get(group);
    if (storages === undefined) {
      // The simulator's storage: its fsyncs complete at once (this suite is about what is recovered, not when).
      storages = { wal: new WalLogStorage(new LogStore(this.log, group)), sim: new SimLogStorage<Hard>(this.disk, (completed) => completed(), (action) => action(), group), term: 1, kind: null };
      this.groups.set(group, storages);
    }
    return storages;
  }

  private save(group: number, write: LogWrite<Hard>): void {
    const { wal, sim } = this.storages(group);
    wal.save(write);
    sim.save(write);
  }

  private async sync(group: number): Promise<void> {
    const { wal, sim } = this.storages(group);
    await syncOf(wal);
    await syncOf(sim);
  }

  /** The replica's order: the snapshot's file first (possibly in the background), then the compaction. */
  private async compact(group: number, snapshot: Snapshot): Promise<void> {
    for (const storage of [this.storages(group).wal, this.storages(group).sim]) {
      await new Promise<void>((resolve, reject) => storage.prepareSnapshot(snapshot, (error) => (error === null ? resolve() : reject(error as Error))));
      storage.compact(snapshot);
    }
  }

  private open(): SharedLogOpened<Hard> {
    return SharedLog.open<Hard>({
      ...this.dirs,
      encodeHardState: (h) => new TextEncoder().encode(JSON.stringify(h)),
      decodeHardState: (b) => JSON.parse(new TextDecoder().decode(b)) as Hard,
      segmentBytes: SEGMENT_BYTES,
    });
  }

  private lastIndex(model: DurableState<Hard>): number {
    return model.entries[model.entries.length - 1]?.index ?? model.snapshot?.index ?? 0;
  }

  /** A snapshot the replica could compact `group` at (an index its log holds), or null. */
  private compaction(group: number, at: number, behind: boolean): Snapshot | null {
    const model = this.disk.replay(group);
    const snapshotIndex = model.snapshot?.index ?? 0;
    const last = this.lastIndex(model);
    // The driver compacts at an applied index, which the log holds; now and then one behind the snapshot, which changes nothing.
    const index = behind && snapshotIndex > 0 ? 1 + (at % snapshotIndex) : last > snapshotIndex ? snapshotIndex + 1 + (at % (last - snapshotIndex)) : null;
    if (index === null) return null;
    const term = model.entries.find((entry) => entry.index === index)?.term ?? model.snapshot?.term ?? 0;
    return { index, term, data: data(50, index, term) };
  }

  async apply(next: Step): Promise<void> {
    const group = next.group % this.groupCount;
    const storages = this.storages(group);
    const model = this.disk.replay(group);
    const snapshotIndex = model.snapshot?.index ?? 0;
    const last = this.lastIndex(model);
    switch (next.kind) {
      case "save": {
        if (next.newTerm) storages.term++;
        const term = storages.term;
        // Mostly appending at the end, now and then replacing a suffix (a follower's conflict).
        const first = next.from === null ? last + 1 : snapshotIndex + 1 + (next.from % (last - snapshotIndex + 1));
        const entries: LogEntry[] = Array.from({ length: next.count }, (_, i) => ({ index: first + i, term, data: data(next.dataBytes, first + i, term) }));
        const hardState = next.hardState ? { term, vote: term % 3, commit: Math.min(first - 1, snapshotIndex + next.count) } : null;
        this.save(group, { snapshot: null, entries, hardState });
        break;
      }
      case "install": {
        const term = ++storages.term;
        const index = snapshotIndex + 1 + next.ahead;
        const snapshot = { index, term, data: data(next.dataBytes, index, term) };
        const entries: LogEntry[] = Array.from({ length: next.count }, (_, i) => ({ index: index + 1 + i, term, data: data(20, index + 1 + i, term) }));
        this.save(group, { snapshot, entries, hardState: { term, vote: 0, commit: index } });
        storages.kind = "installed";
        break;
      }
      case "compact": {
        const snapshot = this.compaction(group, next.at, next.behind);
        if (snapshot === null) break;
        // What the replica has saved is synced before it compacts (it compacts between syncs).
        await this.sync(group);
        await this.compact(group, snapshot);
        if (snapshot.index > snapshotIndex) storages.kind = "own";
        break;
      }
      case "compact-during-sync": {
        // Another group's fdatasync runs while this group compacts (a node of many groups).
        const other = next.syncing % this.groupCount;
        const snapshot = this.compaction(group, next.at, false);
        if (snapshot === null || other === group) break;
        await this.sync(group);
        const { wal, sim } = storages;
        for (const storage of [wal, sim]) await new Promise<void>((resolve, reject) => storage.prepareSnapshot(snapshot, (error) => (error === null ? resolve() : reject(error as Error))));
        const otherStorages = this.storages(other);
        const appended = this.lastIndex(this.disk.replay(other)) + 1;
        this.save(other, { snapshot: null, entries: [{ index: appended, term: otherStorages.term, data: data(10, appended, otherStorages.term) }], hardState: null });
        const running = syncOf(otherStorages.wal); // its fdatasync runs on the thread pool now
        wal.compact(snapshot);
        sim.compact(snapshot);
        await running;
        await syncOf(otherStorages.sim);
        storages.kind = "own";
        break;
      }
      case "sync":
        await this.sync(group);
        break;
      case "crash":
        for (const synced of this.groups.keys()) await this.sync(synced);
        await this.log.backgroundSettled(); // a real crash ends the fill with the process
        this.reopen();
        break;
      case "restart":
        await this.log.close();
        this.reopen();
        break;
    }
    this.disk.sync(); // the model: every step durable, no tearing (the WAL's unsynced tail is tested in log-store.test.ts)
    for (const checked of this.groups.keys()) {
      const now = this.disk.replay(checked);
      assert.equal(this.log.lastIndex(checked), this.lastIndex(now), `group ${checked}'s lastIndex`);
      assert.equal(this.log.snapshotIndex(checked), now.snapshot?.index ?? 0, `group ${checked}'s snapshotIndex`);
    }
  }

  reopen(): void {
    const opened = this.open();
    this.log = opened.log;
    const storages = [...this.groups];
    this.groups.clear();
    for (const [group, { term, kind }] of storages) {
      const model = this.disk.replay(group);
      const recovered = opened.groups.get(group) ?? { durable: { hardState: null, snapshot: null, entries: [] }, snapshotKind: null };
      assert.deepEqual(recovered.durable, model, `group ${group}'s recovered state`);
      assert.equal(recovered.snapshotKind, kind, `group ${group}'s snapshot kind`);
      this.groups.set(group, { ...this.storages(group), term, kind });
    }
    for (const group of opened.groups.keys()) assert.ok(this.groups.has(group), `group ${group} recovered, yet never written`);
  }

  async finish(): Promise<void> {
    await this.log.close();
    this.reopen();
    await this.log.close();
  }
}

async function runHistory(steps: readonly Step[], groupCount: number): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "synod-log-conformance-"));
  try {
    const run = new Run({ dir: join(root, "wal"), snapshotDir: join(root, "snap") }, groupCount);
    for (const next of steps) await run.apply(next);
    await run.finish();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test("LogStorage conformance: the WAL recovers what the simulator's disk recovers, both driven through the replica's interface, over random histories with crashes", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 20, maxLength: 50 }), (steps) => runHistory(steps, 1)),
    { numRuns: 100 },
  );
});

test("LogStorage conformance, many groups on one WAL: each group recovers what the shared simulated disk replays for it, with compactions during other groups' syncs", async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 2, max: 4 }), fc.array(step, { minLength: 30, maxLength: 80 }), (groupCount, steps) => runHistory(steps, groupCount)),
    { numRuns: 100 },
  );
});

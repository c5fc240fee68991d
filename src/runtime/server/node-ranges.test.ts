/**
 * `recoverRanges` at a restart whose store was rebuilt (a machine crash), for a range born of
 * a split whose log starts with a held first state (docs/sharding.md, "Splits"): the parent's
 * commit index is raised to the split the child names, a child whose parent is past the
 * split waits with no state for its leader's snapshot, and one whose log holds entries past
 * its first state waits for it with that log kept; and a range this node's replica was dropped
 * from, whose tombstone waits for a replica made again.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import type { DurableState, Membership } from "../../core/engine/contract.js";
import { MemoryKvBackend } from "../../core/kv/backend.js";
import { heldFirstState, RANGE_BIRTH_INDEX } from "../../core/kv/split.js";
import { KvStore } from "../../core/kv/store.js";
import { RangeTable } from "../../core/multi/ranges.js";
import type { RecoveredGroup, SharedLog } from "../storage/shared-log.js";
import { DEFAULT_NODE_CONFIG, type NodeConfig } from "./config.js";
import { consensusFor } from "./consensus.js";
import type { DataDirIdentity } from "./data-dir.js";
import { recoverRanges } from "./node-ranges.js";
import { RANGE_BIRTH_TERM } from "./range-births.js";

const TABLE = RangeTable.presplit(2);
const RANGE_1 = TABLE.get(1);
const SPLIT_AT = "x";
const SPLIT_INDEX = 30;
const MEMBERSHIP: Membership = { voters: [1, 2, 3], learners: [], outgoing: [], autoPromote: [], autoLeave: false, context: new Uint8Array() };

/** Range 1's state as a snapshot at `index`: its span cut at the split when `afterSplit`. */
function rangeOneAt(index: number, afterSplit: boolean): DurableState<unknown> {
  assert.ok(RANGE_1 !== undefined);
  const backend = new MemoryKvBackend();
  backend.transaction(() => backend.setSpan?.({ start: RANGE_1.start, end: afterSplit ? SPLIT_AT : RANGE_1.end }));
  const kv = KvStore.open(backend);
  const data = kv.snapshot();
  return { hardState: { term: 3, vote: 1, commit: index }, snapshot: { index, term: 2, data, membership: MEMBERSHIP }, entries: [] };
}

/** Range 2, born of range 1's split at SPLIT_INDEX: its held first state, and `entries` past it. */
function heldChild(entries: number): DurableState<unknown> {
  const data = heldFirstState(5, 0, { start: SPLIT_AT, end: null }, 2, 1, SPLIT_INDEX);
  return {
    hardState: { term: 4, vote: 2, commit: RANGE_BIRTH_INDEX },
    snapshot: { index: RANGE_BIRTH_INDEX, term: RANGE_BIRTH_TERM, data, membership: MEMBERSHIP },
    entries: Array.from({ length: entries }, (_, i) => ({ index: RANGE_BIRTH_INDEX + 1 + i, term: 4, data: new Uint8Array() })),
  };
}

/** The data directories made, removed once every test is done (an environment closes asynchronously). */
const dirs: string[] = [];
after(async () => {
  await sleep(200);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function close(ranges: ReturnType<typeof recoverRanges>): Promise<void> {
  await Promise.all(ranges.recovered.map((group) => group.backend.close()));
  await ranges.environment?.close();
}

function recover(range1: DurableState<unknown>, range2: DurableState<unknown>): ReturnType<typeof recoverRanges> {
  const dir = mkdtempSync(join(tmpdir(), "synod-node-ranges-"));
  dirs.push(dir);
  const config = {
    ...DEFAULT_NODE_CONFIG,
    id: 3,
    dataDir: dir,
    shards: 2,
    members: [1, 2, 3].map((id) => ({ id, peer: { host: "127.0.0.1", port: 1 + id }, http: `http://127.0.0.1:${10 + id}` })),
  } as unknown as NodeConfig;
  const identity = { clusterId: "c", nodeId: 3, consensus: "raft", joined: false, shards: 2 } as DataDirIdentity;
  const replayed = new Map<number, RecoveredGroup<unknown>>([
    [0, { durable: { hardState: null, snapshot: null, entries: [] }, snapshotKind: null }],
    [1, { durable: range1, snapshotKind: "own" }],
    [2, { durable: range2, snapshotKind: "installed" }],
  ]);
  return recoverRanges(config, consensusFor("raft", { electionTicks: 10, heartbeatTicks: 1 }), identity, {} as SharedLog<unknown>, replayed, pino({ level: "silent" }));
}

test("a held child whose parent's log holds the split: the parent starts committed through it, and the child waits to be made again", async () => {
  // The parent's snapshot is from before the split; its log holds entries through it; its hard state's commit is older.
  const before = rangeOneAt(20, false);
  const parent: DurableState<unknown> = {
    ...before,
    hardState: { term: 3, vote: 1, commit: 25 },
    entries: Array.from({ length: 15 }, (_, i) => ({ index: 21 + i, term: 3, data: new Uint8Array() })),
  };
  const ranges = recover(parent, heldChild(0));
  try {
    const one = ranges.recovered.find((group) => group.group === 1);
    assert.equal(one?.engine.status().commitIndex, SPLIT_INDEX, "committed through the split the child names");
    assert.equal(ranges.recovered.some((group) => group.group === 2), false);
    assert.notEqual(ranges.deferred.get(2)?.snapshot ?? null, null, "waits for its parent to apply the split again, held state kept");
  } finally {
    await close(ranges);
  }
});

test("a held child whose parent is past the split waits with no state, its term and vote kept; with entries past its first state, it starts with its log kept, applies nothing and stands for no election until its leader's snapshot", async () => {
  const ranges = recover(rangeOneAt(40, true), heldChild(0));
  try {
    assert.equal(ranges.recovered.some((group) => group.group === 2), false);
    assert.deepEqual(ranges.deferred.get(2), { hardState: { term: 4, vote: 2, commit: RANGE_BIRTH_INDEX }, snapshot: null, entries: [] });
  } finally {
    await close(ranges);
  }
  // It refused to start before: the entries it may have acknowledged are kept, and it waits.
  const withLog = recover(rangeOneAt(40, true), heldChild(2));
  try {
    const child = withLog.recovered.find((group) => group.group === 2);
    assert.ok(child !== undefined, "hosted");
    assert.equal(child.kv.applied, 0, "its store holds nothing");
    assert.equal(child.engine.status().lastIndex, RANGE_BIRTH_INDEX + 2, "its log kept");
    for (let i = 0; i < 200; i++) child.engine.tick();
    assert.equal(child.engine.status().role, "follower", "it stands for no election");
    const ready = child.engine.hasReady() ? child.engine.ready() : null;
    assert.deepEqual(ready?.committedEntries ?? [], [], "and applies nothing");
  } finally {
    await close(withLog);
  }
});

test("a range whose replica was dropped here (it moved away) left a tombstone: at a restart it is not hosted, and its hard state waits for a replica made again", async () => {
  // Range 1, one the cluster started with, and range 2, born of a split: both dropped here.
  const tombstone = (term: number, applied: number): DurableState<unknown> => ({ hardState: { term, vote: 2, commit: 0, forgot: applied }, snapshot: null, entries: [] });
  const ranges = recover(tombstone(5, 40), tombstone(6, 12));
  try {
    assert.deepEqual(
      ranges.recovered.map((group) => group.group).filter((id) => id !== 0),
      [],
      "neither is hosted (range 1 would have started as a bootstrap voter with nothing)",
    );
    assert.deepEqual(ranges.deferred.get(1), tombstone(5, 40));
    assert.deepEqual(ranges.deferred.get(2), tombstone(6, 12));
  } finally {
    await close(ranges);
  }
});

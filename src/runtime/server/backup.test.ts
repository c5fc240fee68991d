/**
 * BackupSource against fakes: the read barrier comes before the state is opened, a view
 * older than the barrier is not used, and one backup is taken at a time.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { OverloadedError } from "../../core/common/errors.js";
import { encodeTxnState } from "../../core/kv/intents.js";
import { encodeSnapshot } from "../../core/kv/snapshot.js";
import { backupFilePieces, isShardedBackup, readBackup, readBackupFile } from "../storage/backup-file.js";
import { BackupSource, type BackupBuilder, type BackupSourceOptions, type RangeBackupSource } from "./backup.js";

/** A builder over a state at `appliedIndex`, finished after `steps` steps; `shape` gives it a span and transactions' state. */
function fakeBuilder(appliedIndex: number, events: string[], steps = 2, shape: Pick<BackupBuilder, "range" | "txnState"> = {}): BackupBuilder {
  const data = encodeSnapshot({ appliedIndex, revision: appliedIndex, clockMs: 0 }, [{ key: "k", value: new Uint8Array([1]), createRevision: 1, modRevision: 1, version: 1 }], []);
  let left = steps;
  return {
    meta: { appliedIndex, revision: appliedIndex },
    index: appliedIndex,
    step: () => --left <= 0,
    get data() {
      return data;
    },
    abort: () => void events.push(`abort ${appliedIndex}`),
    ...shape,
  };
}

const VOTERS = { voters: [1, 2, 3], outgoing: [], learners: [], autoPromote: [], autoLeave: true, context: new Uint8Array(0) };
/** One intent: a transaction across ranges prepared here and not resolved. */
const INTENT = encodeTxnState([{ txn: "t1", anchor: 0, compares: [], success: [{ op: "put", key: "m", value: new Uint8Array([1]) }], failure: [], preparedMs: 0 }], new Map());

/** A range of a sharded node over `[start, end)`, its builder's transactions' state given by `txnState` at each open. */
function fakeRange(id: number, start: string, end: string | null, events: string[], txnState: () => Uint8Array | undefined = () => undefined): RangeBackupSource {
  return {
    id,
    read: async () => void events.push(`barrier ${id}`),
    applied: () => 20 + id,
    beginSnapshot: () => {
      const state = txnState();
      events.push(`open ${id}${state === undefined ? "" : " (intents)"}`);
      return fakeBuilder(20 + id, events, 1, { range: { start, end, epoch: 2, nextRangeId: 0 }, ...(state === undefined ? {} : { txnState: state }) });
    },
    entryTerm: () => 3,
    membershipAt: () => VOTERS,
  };
}

function sharded(ranges: () => readonly RangeBackupSource[], intentsWaitMs = 200): BackupSource {
  return new BackupSource({ ranges, shards: 2, clusterId: "c", nodeId: 1, version: "test", intentsWaitMs });
}

function source(events: string[], overrides: Partial<RangeBackupSource> = {}, options: Partial<BackupSourceOptions> = {}): BackupSource {
  let applied = 5;
  const range: RangeBackupSource = {
    id: 0,
    read: async () => {
      events.push("barrier");
      applied = 9;
    },
    applied: () => applied,
    beginSnapshot: () => {
      events.push(`open at ${applied}`);
      return fakeBuilder(applied, events);
    },
    entryTerm: () => 4,
    membershipAt: () => ({ voters: [1, 2, 3], outgoing: [], learners: [], autoPromote: [], autoLeave: true, context: new Uint8Array(0) }),
    ...overrides,
  };
  return new BackupSource({ ranges: () => [range], shards: 1, clusterId: "c", nodeId: 2, version: "test", ...options });
}

describe("BackupSource", () => {
  test("the read barrier comes first, and the backup is of the state after it", async () => {
    const events: string[] = [];
    const backup = await source(events).take("linearizable");
    assert.deepEqual(events.slice(0, 2), ["barrier", "open at 9"]);
    const file = Buffer.concat([backup.prefix, ...backup.parts, Buffer.alloc(32)]);
    const header = readBackup(Buffer.concat([...backupFilePieces(backup.prefix, backup.parts, 64)]), "f").header;
    assert.deepEqual({ index: header.index, term: header.term, keys: header.keys, voters: header.voters }, { index: 9, term: 4, keys: 1, voters: [1, 2, 3] });
    assert.equal(backup.header.dataBytes, backup.parts[0]?.length);
    assert.throws(() => readBackup(file, "f"), /checksum/, "the digest is the stream's to add");
    backup.release();
  });

  test("a view older than the barrier's index is dropped and opened again", async () => {
    const events: string[] = [];
    let opened = 0;
    const backup = await source(events, {
      applied: () => 9,
      beginSnapshot: () => fakeBuilder(opened++ === 0 ? 7 : 9, events),
    }).take("linearizable");
    assert.equal(readBackup(Buffer.concat([...backupFilePieces(backup.prefix, backup.parts, 64)]), "f").header.index, 9);
    assert.ok(events.includes("abort 7"), events.join(", "));
    backup.release();
  });

  test("one backup at a time: a second meanwhile is refused as overloaded, and taken once the first is released", async () => {
    const backups = source([]);
    const first = await backups.take("stale");
    await assert.rejects(backups.take("stale"), (error: unknown) => error instanceof OverloadedError && /already/.test(error.message));
    first.release();
    (await backups.take("stale")).release();
  });

  test("a failed barrier frees the slot", async () => {
    const backups = source([], {
      read: () => Promise.reject(new Error("no quorum")),
    });
    await assert.rejects(backups.take("linearizable"), /no quorum/);
    await assert.rejects(backups.take("linearizable"), /no quorum/, "not refused as busy");
  });

  test("a sharded cluster: every range, each after its own barrier, in key order, in a format 2 file", async () => {
    const events: string[] = [];
    const ranges = [fakeRange(0, "", "U", events), fakeRange(2, "x", null, events), fakeRange(1, "U", "x", events)];
    const backup = await sharded(() => ranges).take("linearizable");
    assert.deepEqual(events.filter((e) => e.startsWith("barrier") || e.startsWith("open")), ["barrier 0", "open 0", "barrier 2", "open 2", "barrier 1", "open 1"]);
    const read = readBackupFile(Buffer.concat([...backupFilePieces(backup.prefix, backup.parts, 64)]), "f");
    assert.ok(isShardedBackup(read.header));
    assert.deepEqual(
      read.header.ranges.map(({ id, start, end, epoch, index, term }) => ({ id, start, end, epoch, index, term })),
      [
        { id: 0, start: "", end: "U", epoch: 2, index: 20, term: 3 },
        { id: 1, start: "U", end: "x", epoch: 2, index: 21, term: 3 },
        { id: 2, start: "x", end: null, epoch: 2, index: 22, term: 3 },
      ],
    );
    assert.equal(read.parts.length, 3);
    assert.throws(() => readBackup(Buffer.concat([...backupFilePieces(backup.prefix, backup.parts, 64)]), "f"), /is a backup of a sharded cluster \(3 ranges, started with --shards 2\)/);
    backup.release();
  });

  test("a range holding a transaction's intent is read once it resolves, and never while it holds one", async () => {
    const events: string[] = [];
    let opens = 0;
    const ranges = [fakeRange(0, "", "U", events), fakeRange(1, "U", null, events, () => (opens++ < 3 ? INTENT : undefined))];
    const backup = await sharded(() => ranges, 5000).take("linearizable");
    assert.deepEqual(events.filter((e) => e.startsWith("open 1")), ["open 1 (intents)", "open 1 (intents)", "open 1 (intents)", "open 1"]);
    assert.equal(events.filter((e) => e === "abort 21").length, 3, "each view holding an intent was dropped");
    backup.release();
  });

  test("a range whose intent does not resolve fails the backup as overloaded (503), and frees the slot", async () => {
    let resolved = false;
    const backups = sharded(() => [fakeRange(0, "", "U", []), fakeRange(1, "U", null, [], () => (resolved ? undefined : INTENT))], 100);
    await assert.rejects(backups.take("linearizable"), (error: unknown) => error instanceof OverloadedError && /range 1 has held 1 transaction across ranges prepared and not resolved/.test(error.message));
    resolved = true;
    (await backups.take("linearizable")).release();
  });

  test("ranges that stop covering the key space (a split between two reads) are read again, and refused if they keep changing", async () => {
    const events: string[] = [];
    let listings = 0;
    // The first listing predates the split of range 1 at "x", its read follows it: "x" on is nobody's.
    const backup = await sharded(() => (listings++ === 0 ? [fakeRange(0, "", "U", events), fakeRange(1, "U", "x", events)] : [fakeRange(0, "", "U", events), fakeRange(1, "U", "x", events), fakeRange(2, "x", null, events)])).take("stale");
    assert.equal(listings, 2);
    assert.equal(readBackupFile(Buffer.concat([...backupFilePieces(backup.prefix, backup.parts, 64)]), "f").parts.length, 3);
    backup.release();
    const never = sharded(() => [fakeRange(0, "", "U", []), fakeRange(1, "U", "x", [])]);
    await assert.rejects(never.take("stale"), (error: unknown) => error instanceof OverloadedError && /the ranges changed while the backup read them, 3 times \(the last range ends at "x"/.test(error.message));
  });
});

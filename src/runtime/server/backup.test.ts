/**
 * BackupSource against fakes: the read barrier comes before the state is opened, a view
 * older than the barrier is not used, and one backup is taken at a time.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { OverloadedError } from "../../core/common/errors.js";
import { encodeSnapshot } from "../../core/kv/snapshot.js";
import { backupFilePieces, readBackup } from "../storage/backup-file.js";
import { BackupSource, type BackupBuilder, type BackupSourceOptions, type RangeBackupSource } from "./backup.js";

/** A builder over a state at `appliedIndex`, finished after `steps` steps. */
function fakeBuilder(appliedIndex: number, events: string[], steps = 2): BackupBuilder {
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
  };
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
});

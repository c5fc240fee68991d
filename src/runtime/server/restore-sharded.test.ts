/**
 * Restoring a sharded backup file, without processes: a file whose ranges' states are what
 * its header says writes a sharded data directory (every range's log and state, `--shards`
 * recorded); a file that passes its checksum but holds a range with an unresolved
 * transaction, or a state whose span is not its header's, is refused and nothing is
 * written.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { encodeTxnState } from "../../core/kv/intents.js";
import { encodeSnapshot } from "../../core/kv/snapshot.js";
import { BackupFileError, backupFilePieces, encodeBackupPrefix, type ShardedBackupHeader } from "../storage/backup-file.js";
import { LmdbKvEnvironment } from "../storage/kv-lmdb-env.js";
import { restoreDataDir } from "./restore.js";

const INTENT = encodeTxnState([{ txn: "t1", anchor: 0, compares: [], success: [{ op: "put", key: "m", value: new Uint8Array([1]) }], failure: [], preparedMs: 0 }], new Map());

/** A range's state with no keys, at `index` and `revision`, over `[start, end)`, with an intent when `intent`. */
function rangeState(index: number, revision: number, start: string, end: string | null, intent = false): Uint8Array {
  return encodeSnapshot({ appliedIndex: index, revision, clockMs: 0 }, [], [], { compactRevision: 0, changes: [] }, [], undefined, { start, end, epoch: 2, nextRangeId: 3 }, intent ? INTENT : undefined);
}

/** A sharded backup file of ranges 0 ["", "U"), 1 ["U", "x") and 2 ["x", end), the header describing `declared` spans. */
function shardedBackup(path: string, options: { intent?: boolean; declaredEnd?: string } = {}): void {
  const parts = [rangeState(30, 12, "", "U"), rangeState(31, 9, "U", "x", options.intent), rangeState(40, 10, "x", null)];
  const spans: [string, string | null][] = [
    ["", "U"],
    ["U", options.declaredEnd ?? "x"],
    [options.declaredEnd ?? "x", null],
  ];
  const header: ShardedBackupHeader = {
    shards: 2,
    ranges: parts.map((part, id) => ({ id, start: spans[id]?.[0] as string, end: spans[id]?.[1] as string | null, epoch: 2, index: [30, 31, 40][id] as number, term: 3, revision: [12, 9, 10][id] as number, keys: 0, dataBytes: part.length, voters: [1] })),
    keys: 0,
    dataBytes: parts.reduce((sum, part) => sum + part.length, 0),
    clusterId: "abcdef0123456789",
    nodeId: 1,
    takenAt: "2025-01-01T00:00:00.000Z",
    synodVersion: "test",
  };
  writeFileSync(path, Buffer.concat([...backupFilePieces(encodeBackupPrefix(header), parts, 1024)]));
}

const members = [{ id: 1, peer: { host: "127.0.0.1", port: 7101 }, http: null }];

describe("restoring a sharded backup file", () => {
  const dir = mkdtempSync(join(tmpdir(), "synod-restore-sharded-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("writes every range's state, under its span, and records --shards", async () => {
    const file = join(dir, "good.snap");
    shardedBackup(file);
    const dataDir = join(dir, "good");
    const result = await restoreDataDir({ file, dataDir, id: 1, members, clusterToken: "t", consensus: "raft" });
    assert.equal(JSON.parse(readFileSync(join(dataDir, "node.json"), "utf8")).shards, 2);
    assert.match(result.clusterId, /^[0-9a-f]{16}$/);
    const environment = LmdbKvEnvironment.open({ path: join(dataDir, "kv") });
    try {
      assert.deepEqual(environment.groups().sort((a, b) => a.group - b.group), [
        { group: 0, span: { start: "", end: "U" } },
        { group: 1, span: { start: "U", end: "x" } },
        { group: 2, span: { start: "x", end: null } },
      ]);
    } finally {
      await environment.close();
    }
  });

  for (const [name, options, message] of [
    ["intent", { intent: true }, /range 1: it holds 1 transaction across ranges not resolved, which a restore cannot decide/],
    ["span", { declaredEnd: "w" }, /range 1: its header's span and epoch do not match its state's \("U" to "x", epoch 2\)/],
  ] as const) {
    test(`a file that passes its checksum but whose range 1 ${name === "intent" ? "holds an unresolved transaction" : "is not the span its header says"} is refused, and nothing is written`, async () => {
      const file = join(dir, `${name}.snap`);
      shardedBackup(file, options);
      const dataDir = join(dir, name);
      await assert.rejects(restoreDataDir({ file, dataDir, id: 1, members, clusterToken: "t", consensus: "raft" }), (error: unknown) => error instanceof BackupFileError && message.test(error.message));
      assert.equal(existsSync(dataDir), false);
    });
  }
});

/**
 * The backup file format: what is written reads back; any changed byte, a cut anywhere and
 * trailing bytes are refused with a message that says which; a stream checked in pieces of
 * any size gives the answer the whole file gives.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { BackupFileError, BackupVerifier, backupFileBytes, backupFilePieces, encodeBackupPrefix, readBackup, readBackupFile, ShardedBackupError, type BackupHeader, type ShardedBackupHeader } from "./backup-file.js";

const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) % 256);
const header: BackupHeader = {
  index: 42,
  term: 3,
  revision: 17,
  keys: 5,
  dataBytes: data.length,
  clusterId: "abcdef0123456789",
  nodeId: 2,
  voters: [1, 2, 3],
  takenAt: "2025-01-01T00:00:00.000Z",
  synodVersion: "0.1.0",
};

function file(h: BackupHeader = header, d: Uint8Array = data, chunkBytes = 64): Uint8Array {
  return Buffer.concat([...backupFilePieces(encodeBackupPrefix(h), d, chunkBytes)]);
}

function refusal(bytes: Uint8Array): string {
  try {
    readBackup(bytes, "the file x");
  } catch (error) {
    assert.ok(error instanceof BackupFileError, String(error));
    return error.message;
  }
  assert.fail("a damaged file was accepted");
}

describe("backup files", () => {
  test("a file reads back as written: header, data, and the SHA-256 of all before the digest", () => {
    const bytes = file();
    assert.equal(bytes.length, backupFileBytes(encodeBackupPrefix(header), data.length));
    const read = readBackup(bytes, "the file x");
    assert.deepEqual(read.header, header);
    assert.deepEqual(Buffer.from(read.data), Buffer.from(data));
    assert.equal(read.sha256, createHash("sha256").update(bytes.subarray(0, bytes.length - 32)).digest("hex"));
    assert.deepEqual(Buffer.from(bytes.subarray(bytes.length - 32)).toString("hex"), read.sha256);
  });

  test("the chunk size of the writer does not change the file", () => {
    assert.deepEqual(file(header, data, 1), file(header, data, 1 << 20));
  });

  test("checked a byte at a time, or in uneven pieces, a stream gives what the whole file gives", () => {
    const bytes = file();
    for (const size of [1, 3, 31, 32, 33, 100]) {
      const verifier = new BackupVerifier("the stream");
      for (let offset = 0; offset < bytes.length; offset += size) verifier.update(bytes.subarray(offset, offset + size));
      assert.deepEqual(verifier.finish().header, header, `pieces of ${size}`);
      assert.equal(verifier.bytes, bytes.length);
    }
  });

  test("a changed byte anywhere, header, data or digest, is refused", () => {
    const bytes = file();
    for (let i = 0; i < bytes.length; i++) {
      const damaged = Uint8Array.from(bytes);
      damaged[i] = (damaged[i] as number) ^ 0x01;
      const message = refusal(damaged);
      assert.match(message, /^the file x (fails its SHA-256 checksum|is not a synod backup|is truncated|has \d+ bytes more)/, `byte ${i}: ${message}`);
    }
  });

  test("a file cut short anywhere is refused, and past the header it says it is truncated", () => {
    const bytes = file();
    const prefixBytes = encodeBackupPrefix(header).length;
    for (let length = 0; length < bytes.length; length++) {
      const message = refusal(bytes.subarray(0, length));
      if (length >= prefixBytes) assert.match(message, new RegExp(`is truncated: it holds ${length} of its ${bytes.length} bytes`), `length ${length}`);
    }
  });

  test("bytes after the end are refused", () => {
    assert.match(refusal(Buffer.concat([file(), Buffer.from("x")])), /has 1 bytes more than its header declares/);
  });

  test("another file is not taken for a backup", () => {
    assert.match(refusal(Buffer.from("SYNODSNP".padEnd(100, "\0"))), /is not a synod backup/);
    assert.match(refusal(Buffer.from("short")), /too short to be a synod backup/);
  });

  test("a header that passes the checksum but lacks a field is refused as another version's", () => {
    const broken = { ...header, index: -1 };
    assert.match(refusal(file(broken)), /passes its checksum but has a header with a bad index/);
  });
});

/** A sharded backup of three ranges (the last born of a split), its data cut 100, 120 and 80 bytes. */
const parts = [data.subarray(0, 100), data.subarray(100, 220), data.subarray(220)];
const range = (id: number, start: string, end: string | null, dataBytes: number, keys: number): ShardedBackupHeader["ranges"][number] => ({ id, start, end, epoch: id === 0 ? 1 : 2, index: 40 + id, term: 2, revision: 30 + id, keys, dataBytes, voters: [1, 2, 3] });
const shardedHeader: ShardedBackupHeader = {
  shards: 2,
  ranges: [range(0, "", "U", 100, 2), range(1, "U", "x", 120, 3), range(2, "x", null, 80, 1)],
  keys: 6,
  dataBytes: data.length,
  clusterId: "abcdef0123456789",
  nodeId: 3,
  takenAt: "2025-01-01T00:00:00.000Z",
  synodVersion: "0.1.0",
};

function shardedFile(h: ShardedBackupHeader = shardedHeader, chunkBytes = 64): Uint8Array {
  return Buffer.concat([...backupFilePieces(encodeBackupPrefix(h), parts, chunkBytes)]);
}

function shardedRefusal(bytes: Uint8Array): string {
  try {
    readBackupFile(bytes, "the file y");
  } catch (error) {
    assert.ok(error instanceof BackupFileError, String(error));
    return error.message;
  }
  assert.fail("a damaged sharded file was accepted");
}

describe("backup files of a sharded cluster (format 2)", () => {
  test("a file reads back as written: format 2, every range's descriptor, and its data cut into each range's snapshot", () => {
    const bytes = shardedFile();
    assert.equal(new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true), 2);
    const read = readBackupFile(bytes, "the file y");
    assert.deepEqual(read.header, shardedHeader);
    assert.deepEqual(read.parts.map((part) => Buffer.from(part)), parts.map((part) => Buffer.from(part)));
    assert.equal(read.sha256, createHash("sha256").update(bytes.subarray(0, bytes.length - 32)).digest("hex"));
    assert.deepEqual(shardedFile(shardedHeader, 1), bytes, "the chunk size of the writer does not change the file");
  });

  test("a format 1 file still reads through readBackupFile, as one part", () => {
    const read = readBackupFile(file(), "the file x");
    assert.deepEqual(read.header, header);
    assert.equal(read.parts.length, 1);
  });

  test("the reader of one range's backups refuses a sharded one whole, with its own error", () => {
    assert.throws(
      () => readBackup(shardedFile(), "the file y"),
      (error: unknown) => error instanceof ShardedBackupError && error.code === "backup_sharded" && /is a backup of a sharded cluster \(3 ranges, started with --shards 2\): it is restored whole, every range, or not at all/.test(error.message),
    );
  });

  test("a changed byte anywhere, or a cut anywhere past the header, is refused and says which", () => {
    const bytes = shardedFile();
    for (let i = 0; i < bytes.length; i++) {
      const damaged = Uint8Array.from(bytes);
      damaged[i] = (damaged[i] as number) ^ 0x01;
      assert.match(shardedRefusal(damaged), /^the file y (fails its SHA-256 checksum|is not a synod backup|is truncated|has \d+ bytes more)/, `byte ${i}`);
    }
    const prefixBytes = encodeBackupPrefix(shardedHeader).length;
    for (let length = 0; length < bytes.length; length++) {
      const message = shardedRefusal(bytes.subarray(0, length));
      if (length >= prefixBytes) assert.match(message, new RegExp(`is truncated: it holds ${length} of its ${bytes.length} bytes`), `length ${length}`);
    }
  });

  test("a header whose ranges do not cover the key space once, lack one the cluster started with, or do not add up, is refused", () => {
    const [r0, r1, r2] = shardedHeader.ranges as [ShardedBackupHeader["ranges"][number], ShardedBackupHeader["ranges"][number], ShardedBackupHeader["ranges"][number]];
    const cases: [Partial<ShardedBackupHeader>, RegExp][] = [
      [{ ranges: [r0, { ...r1, end: "w" }, r2] }, /ranges that do not cover the key space once \(range 2 starts at "x"\)/],
      [{ ranges: [r0, r1, { ...r2, end: "z" }] }, /the last one ends/],
      [{ ranges: [r0, r2, r1] }, /ranges that do not cover the key space once/],
      [{ ranges: [r0, { ...r1, id: 5 }, r2] }, /no range 1, one the cluster started with/],
      [{ ranges: [r0, { ...r1, id: 2 }, r2] }, /a bad or repeated range id \(2\)/],
      [{ keys: 7 }, /a key count that is not its ranges' \(6\)/],
      [{ shards: 1 }, /a bad shards count/],
      [{ ranges: [r0, { ...r1, epoch: 0 }, r2] }, /range 1 with a bad epoch/],
    ];
    for (const [change, message] of cases) assert.match(shardedRefusal(shardedFile({ ...shardedHeader, ...change })), message, JSON.stringify(change));
  });

  test("a header larger than one range's limit (128 ranges with long span keys) is written and read", () => {
    const ranges = Array.from({ length: 128 }, (_, i) => range(i, i === 0 ? "" : `${String(i).padStart(4, "0")}${"k".repeat(1000)}`, i === 127 ? null : `${String(i + 1).padStart(4, "0")}${"k".repeat(1000)}`, i === 0 ? data.length : 0, 0));
    const big: ShardedBackupHeader = { ...shardedHeader, shards: 2, ranges, keys: 0 };
    assert.ok(encodeBackupPrefix(big).length > 64 * 1024);
    const bytes = Buffer.concat([...backupFilePieces(encodeBackupPrefix(big), [data], 1000)]);
    const verifier = new BackupVerifier("the stream");
    for (let offset = 0; offset < bytes.length; offset += 4096) verifier.update(bytes.subarray(offset, offset + 4096));
    assert.equal((verifier.finish().header as ShardedBackupHeader).ranges.length, 128);
  });
});


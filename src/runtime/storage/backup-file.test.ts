/**
 * The backup file format: what is written reads back; any changed byte, a cut anywhere and
 * trailing bytes are refused with a message that says which; a stream checked in pieces of
 * any size gives the answer the whole file gives.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { BackupFileError, BackupVerifier, backupFileBytes, backupFilePieces, encodeBackupPrefix, readBackup, type BackupHeader } from "./backup-file.js";

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

import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { crc32c } from "./crc32c.js";
import { Wal, WalCorruptionError } from "./wal.js";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (records: Uint8Array[]): string[] => records.map((r) => new TextDecoder().decode(r));

function withDir(run: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "synod-wal-"));
  try {
    run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function flip(bytes: Uint8Array, at: number, mask: number): void {
  bytes[at] = (bytes[at] ?? 0) ^ mask;
}

function segments(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith(".wal"))
    .sort()
    .map((n) => join(dir, n));
}

describe("CRC-32C", () => {
  test("matches the standard check value and continues across pieces", () => {
    assert.equal(crc32c(text("123456789")), 0xe3069283);
    assert.equal(crc32c(text("456789"), crc32c(text("123"))), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(0)), 0);
  });
});

describe("write-ahead log", () => {
  test("records synced survive closing and reopening, in order", () => {
    withDir((dir) => {
      const { wal, records } = Wal.open({ dir });
      assert.deepEqual(records, []);
      for (const r of ["a", "bb", "ccc"]) wal.append(text(r));
      wal.sync();
      wal.append(text("dddd"));
      wal.close();
      assert.deepEqual(decode(Wal.open({ dir }).records), ["a", "bb", "ccc", "dddd"]);
    });
  });

  test("segments roll at their size and are read back in order", () => {
    withDir((dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: 64 });
      const written = Array.from({ length: 40 }, (_, i) => `record-${i}`);
      for (const r of written) {
        wal.append(text(r));
        if (r.endsWith("7")) wal.sync();
      }
      wal.close();
      assert.ok(segments(dir).length > 5, `${segments(dir).length} segments`);
      for (const path of segments(dir)) assert.ok(statSync(path).size <= 64 + 8 + 16);
      assert.deepEqual(decode(Wal.open({ dir, segmentBytes: 64 }).records), written);
    });
  });

  test("a torn tail is truncated with a log line, and appending goes on after it", () => {
    withDir((dir) => {
      const { wal } = Wal.open({ dir });
      for (const r of ["one", "two", "three"]) wal.append(text(r));
      wal.close();
      const [segment] = segments(dir);
      assert.ok(segment !== undefined);
      truncateSync(segment, statSync(segment).size - 2); // the last write half done
      const lines: string[] = [];
      const reopened = Wal.open({ dir, log: (line) => lines.push(line) });
      assert.deepEqual(decode(reopened.records), ["one", "two"]);
      assert.equal(lines.length, 1);
      assert.match(lines[0] ?? "", /cut short .* truncated/);
      reopened.wal.append(text("four"));
      reopened.wal.close();
      assert.deepEqual(decode(Wal.open({ dir }).records), ["one", "two", "four"]);
    });
  });

  test("a last record failing its checksum at the very end is a torn write too", () => {
    withDir((dir) => {
      const { wal } = Wal.open({ dir });
      for (const r of ["one", "two"]) wal.append(text(r));
      wal.close();
      const [segment] = segments(dir);
      assert.ok(segment !== undefined);
      const bytes = readFileSync(segment);
      flip(bytes, bytes.length - 1, 0xff);
      writeFileSync(segment, bytes);
      assert.deepEqual(decode(Wal.open({ dir, log: () => {} }).records), ["one"]);
    });
  });

  test("a corrupt byte before the tail refuses to open, naming the file and the offset", () => {
    withDir((dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: 64 });
      for (let i = 0; i < 20; i++) {
        wal.append(text(`record-${i}`));
        wal.sync();
      }
      wal.close();
      const [first] = segments(dir);
      assert.ok(first !== undefined);
      const bytes = readFileSync(first);
      flip(bytes, 10, 0x01); // inside the first record's payload, in a segment that is not the last
      writeFileSync(first, bytes);
      assert.throws(
        () => Wal.open({ dir, segmentBytes: 64 }),
        (error: unknown) => error instanceof WalCorruptionError && error.file === first && error.offset === 0 && /refusing to start/.test(error.message),
      );
    });
  });

  test("corruption in the middle of the last segment, with records after it, refuses too", () => {
    withDir((dir) => {
      const { wal } = Wal.open({ dir });
      for (const r of ["alpha", "beta", "gamma"]) wal.append(text(r));
      wal.close();
      const [segment] = segments(dir);
      assert.ok(segment !== undefined);
      const bytes = readFileSync(segment);
      flip(bytes, 8 + 5 + 8 + 1, 0x40); // a byte of "beta", with "gamma" after it
      writeFileSync(segment, bytes);
      assert.throws(() => Wal.open({ dir }), (error: unknown) => error instanceof WalCorruptionError && error.offset === 13);
    });
  });

  test("an empty or oversized record is refused", () => {
    withDir((dir) => {
      const { wal } = Wal.open({ dir });
      assert.throws(() => wal.append(new Uint8Array(0)), RangeError);
      wal.close();
      assert.throws(() => wal.append(text("late")), /closed/);
    });
  });
});

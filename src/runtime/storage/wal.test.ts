import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { crc32c } from "./crc32c.js";
import { Wal, WAL_SEGMENT_HEADER_BYTES, WalCorruptionError } from "./wal.js";
import { files, only } from "./storage.test-util.js";

/** Small segments keep the background zero-fill cheap. */
const SEGMENT_BYTES = 64 * 1024;

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (records: Uint8Array[]): string[] => records.map((r) => new TextDecoder().decode(r));

async function withDir(run: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "synod-wal-"));
  try {
    await run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function flip(bytes: Uint8Array, at: number, mask: number): void {
  bytes[at] = (bytes[at] ?? 0) ^ mask;
}

const segments = (dir: string): string[] => files(dir, ".wal");

/** Opens a log whose next segment is already prepared in the background, then rolls into it. */
async function openPreallocated(dir: string, log: (line: string) => void = () => {}): Promise<Wal> {
  const { wal } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES, log });
  assert.equal(await wal.nextSegmentSettled(), true);
  wal.append(text("first segment"));
  wal.roll();
  return wal;
}

describe("CRC-32C", () => {
  test("matches the standard check value and continues across pieces", () => {
    assert.equal(crc32c(text("123456789")), 0xe3069283);
    assert.equal(crc32c(text("456789"), crc32c(text("123"))), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(0)), 0);
  });
});

describe("write-ahead log", () => {
  test("records synced survive closing and reopening, in order", async () => {
    await withDir(async (dir) => {
      const { wal, records } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      assert.deepEqual(records, []);
      for (const r of ["a", "bb", "ccc"]) wal.append(text(r));
      wal.sync();
      wal.append(text("dddd"));
      await wal.close();
      const reopened = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      assert.deepEqual(decode(reopened.records), ["a", "bb", "ccc", "dddd"]);
      assert.deepEqual(
        reopened.positions.map((p) => p.offset),
        [0, 9, 19, 30],
      );
      await reopened.wal.close();
      assert.equal(existsSync(join(dir, "next.wal.tmp")), false, "close removes the prepared segment");
    });
  });

  test("syncAsync: durable when it resolves; appends meanwhile buffer for the next sync, other calls are refused; close waits for it", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      const record = (i: number): string => `record-${i}`.padEnd(500, ".");
      for (let i = 0; i < 200; i++) wal.append(text(record(i))); // 100 KiB: a roll inside
      const syncing = wal.syncAsync();
      // The replica saves the next Ready while the last one flushes.
      wal.append(text("during"));
      assert.equal(wal.pendingBytes > 0, true, "buffered, not yet written");
      assert.throws(() => wal.sync(), /in flight/);
      assert.throws(() => wal.syncAsync(), /in flight/);
      await syncing;
      wal.append(text("after"));
      const second = wal.syncAsync();
      const closed = wal.close(); // while the fdatasync runs: waits for it
      await second;
      await closed;
      const reopened = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      assert.deepEqual(decode(reopened.records), [...Array.from({ length: 200 }, (_, i) => record(i)), "during", "after"]);
      assert.ok(segments(dir).length >= 2, "the records filled more than one segment");
      await reopened.wal.close();
    });
  });

  test("segments roll at their size and are read back in order", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: 64 });
      const written = Array.from({ length: 40 }, (_, i) => `record-${i}`);
      for (const r of written) {
        wal.append(text(r));
        if (r.endsWith("7")) wal.sync();
      }
      await wal.close();
      assert.ok(segments(dir).length > 5, `${segments(dir).length} segments`);
      for (const path of segments(dir)) assert.ok(statSync(path).size <= 64 + 8 + 16);
      const reopened = Wal.open({ dir, segmentBytes: 64 });
      assert.deepEqual(decode(reopened.records), written);
      await reopened.wal.close();
    });
  });

  test("a torn tail is truncated with a log line, and appending goes on after it", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      for (const r of ["one", "two", "three"]) wal.append(text(r));
      await wal.close();
      const segment = only(segments(dir), 0);
      truncateSync(segment, statSync(segment).size - 2); // the last write half done
      const lines: string[] = [];
      const reopened = Wal.open({ dir, segmentBytes: SEGMENT_BYTES, log: (line) => lines.push(line) });
      assert.deepEqual(decode(reopened.records), ["one", "two"]);
      assert.equal(lines.length, 1);
      assert.match(only(lines, 0), /cut short .* truncated/);
      reopened.wal.append(text("four"));
      await reopened.wal.close();
      const again = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      assert.deepEqual(decode(again.records), ["one", "two", "four"]);
      await again.wal.close();
    });
  });

  test("a last record failing its checksum at the very end is a torn write too", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      for (const r of ["one", "two"]) wal.append(text(r));
      await wal.close();
      const segment = only(segments(dir), 0);
      const bytes = readFileSync(segment);
      flip(bytes, bytes.length - 1, 0xff);
      writeFileSync(segment, bytes);
      const reopened = Wal.open({ dir, segmentBytes: SEGMENT_BYTES, log: () => {} });
      assert.deepEqual(decode(reopened.records), ["one"]);
      await reopened.wal.close();
    });
  });

  test("a corrupt byte before the tail refuses to open, naming the file and the offset", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: 64 });
      for (let i = 0; i < 20; i++) {
        wal.append(text(`record-${i}`));
        wal.sync();
      }
      await wal.close();
      const first = only(segments(dir), 0);
      const bytes = readFileSync(first);
      flip(bytes, 10, 0x01); // inside the first record's payload, in a segment that is not the last
      writeFileSync(first, bytes);
      assert.throws(
        () => Wal.open({ dir, segmentBytes: 64 }),
        (error: unknown) => error instanceof WalCorruptionError && error.file === first && error.offset === 0 && /refusing to start/.test(error.message),
      );
    });
  });

  test("corruption in the middle of the last segment, with records after it, refuses too", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      for (const r of ["alpha", "beta", "gamma"]) wal.append(text(r));
      await wal.close();
      const segment = only(segments(dir), 0);
      const bytes = readFileSync(segment);
      flip(bytes, 8 + 5 + 8 + 1, 0x40); // a byte of "beta", with "gamma" after it
      writeFileSync(segment, bytes);
      assert.throws(() => Wal.open({ dir, segmentBytes: SEGMENT_BYTES }), (error: unknown) => error instanceof WalCorruptionError && error.offset === 13);
    });
  });

  test("an empty or oversized record is refused", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      assert.throws(() => wal.append(new Uint8Array(0)), RangeError);
      await wal.close();
      assert.throws(() => wal.append(text("late")), /closed/);
    });
  });
});

describe("write-ahead log: preallocation", () => {
  test("a prepared segment is used on a roll, and a new one is prepared behind it", async () => {
    await withDir(async (dir) => {
      const wal = await openPreallocated(dir);
      assert.equal(wal.currentSequence, 2);
      assert.equal(statSync(only(segments(dir), 1)).size, SEGMENT_BYTES, "the prepared, zero-filled segment");
      assert.equal(await wal.nextSegmentSettled(), true);
      assert.equal(statSync(join(dir, "next.wal.tmp")).size, SEGMENT_BYTES);
      await wal.close();
    });
  });

  test("a roll before the preparation is done creates an empty segment instead", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      wal.append(text("one"));
      wal.roll(); // synchronously: the background fill has not had a turn of the event loop
      assert.equal(statSync(only(segments(dir), 1)).size, WAL_SEGMENT_HEADER_BYTES, "the new segment holds only its header");
      wal.append(text("two"));
      wal.sync();
      await wal.close();
      const reopened = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      assert.deepEqual(decode(reopened.records), ["one", "two"]);
      await reopened.wal.close();
    });
  });

  test("a roll truncates the finished segment to its records and fsyncs it before the next", async () => {
    await withDir(async (dir) => {
      const wal = await openPreallocated(dir);
      assert.equal(await wal.nextSegmentSettled(), true);
      wal.append(text("second segment"));
      wal.sync();
      assert.equal(statSync(only(segments(dir), 1)).size, SEGMENT_BYTES);
      wal.roll();
      assert.equal(statSync(only(segments(dir), 1)).size, WAL_SEGMENT_HEADER_BYTES + 8 + "second segment".length, "no preallocated zeros left behind");
      assert.equal(statSync(only(segments(dir), 2)).size, SEGMENT_BYTES);
      await wal.close();
    });
  });

  test("the unused zeros of a preallocated last segment are no damage and no news", async () => {
    await withDir(async (dir) => {
      const wal = await openPreallocated(dir);
      for (const r of ["a", "b", "c"]) wal.append(text(r));
      wal.sync();
      await wal.close();
      const lines: string[] = [];
      const reopened = Wal.open({ dir, segmentBytes: SEGMENT_BYTES, log: (line) => lines.push(line) });
      assert.deepEqual(decode(reopened.records), ["first segment", "a", "b", "c"]);
      assert.deepEqual(lines, []);
      assert.equal(reopened.wal.currentSegmentUsedBytes, WAL_SEGMENT_HEADER_BYTES + 3 * 9);
      reopened.wal.append(text("d"));
      reopened.wal.sync();
      assert.equal(statSync(only(segments(dir), -1)).size, SEGMENT_BYTES, "appending reuses the preallocated blocks");
      await reopened.wal.close();
    });
  });

  test("a record torn inside a preallocated segment is repaired, whatever of the same write reached the disk", async () => {
    await withDir(async (dir) => {
      const wal = await openPreallocated(dir);
      wal.append(text("durable"));
      wal.sync();
      wal.append(new Uint8Array(3000).fill(7)); // spans sectors
      wal.append(text("later in the same write"));
      wal.sync();
      await wal.close();
      const segment = only(segments(dir), -1);
      const bytes = readFileSync(segment);
      bytes.fill(0, 1024, 1536); // a sector of the big record never reached the disk; the next record did
      writeFileSync(segment, bytes);
      const lines: string[] = [];
      const reopened = Wal.open({ dir, segmentBytes: SEGMENT_BYTES, log: (line) => lines.push(line) });
      assert.deepEqual(decode(reopened.records), ["first segment", "durable"]);
      assert.equal(lines.length, 1);
      assert.match(only(lines, 0), /sector never written .* truncated/);
      reopened.wal.append(text("after the repair"));
      await reopened.wal.close();
      const again = Wal.open({ dir, segmentBytes: SEGMENT_BYTES, log: (line) => lines.push(line) });
      assert.deepEqual(decode(again.records), ["first segment", "durable", "after the repair"]);
      assert.equal(lines.length, 1, "the repair is durable: nothing to repair the second time");
      await again.wal.close();
    });
  });

  test("a crash (no close) loses only what was not synced, across rolls", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: 256 });
      const synced = Array.from({ length: 30 }, (_, i) => `synced-${i}`);
      for (const r of synced) {
        wal.append(text(r));
        if (r.endsWith("3")) wal.sync();
      }
      wal.sync();
      wal.append(text("never synced"));
      assert.ok(segments(dir).length > 1);
      // The process dies here: no close. (Its background fill would die with it; here it is waited out.)
      await wal.nextSegmentSettled();
      const reopened = Wal.open({ dir, segmentBytes: 256, log: () => {} });
      assert.deepEqual(decode(reopened.records), synced);
      await reopened.wal.close();
    });
  });

  test("a corrupt byte in the middle of a segment that is not the last refuses, naming file and offset", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      for (const r of ["aaaa", "bbbb", "cccc"]) wal.append(text(r));
      wal.roll();
      wal.append(text("in the last segment"));
      await wal.close();
      const first = only(segments(dir), 0);
      const bytes = readFileSync(first);
      flip(bytes, 12 + 8 + 2, 0x10); // a byte of "bbbb", the second record
      writeFileSync(first, bytes);
      assert.throws(
        () => Wal.open({ dir, segmentBytes: SEGMENT_BYTES }),
        (error: unknown) => error instanceof WalCorruptionError && error.file === first && error.offset === 12 && /not the last/.test(error.message),
      );
    });
  });

  test("zeros at the end of a segment that is not the last are damage, not a tail", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      wal.append(text("one"));
      wal.roll();
      wal.append(text("two"));
      await wal.close();
      const first = only(segments(dir), 0);
      writeFileSync(first, Buffer.concat([readFileSync(first), new Uint8Array(100)]));
      assert.throws(() => Wal.open({ dir, segmentBytes: SEGMENT_BYTES }), (error: unknown) => error instanceof WalCorruptionError && error.offset === 11 && /zeros/.test(error.message));
    });
  });

  test("removing segments behind a checkpoint keeps the rest readable; a gap in the sequence refuses", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      for (const r of ["one", "two", "three"]) {
        wal.append(text(r));
        wal.roll();
      }
      wal.append(text("four"));
      assert.equal(wal.currentSequence, 4);
      assert.throws(() => wal.removeSegmentsBefore(5), /current/);
      assert.deepEqual(wal.removeSegmentsBefore(3), ["0000000000000001.wal", "0000000000000002.wal"]);
      await wal.close();
      const reopened = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      assert.deepEqual(decode(reopened.records), ["three", "four"]);
      await reopened.wal.close();
      rmSync(only(segments(dir), 0)); // segment 3 lost, not by a removal: 4 alone would be fine, so add a later one
      writeFileSync(join(dir, "0000000000000006.wal"), "");
      assert.throws(() => Wal.open({ dir, segmentBytes: SEGMENT_BYTES }), (error: unknown) => error instanceof WalCorruptionError && /missing/.test(error.message));
    });
  });

  test("a half-prepared segment a crash left is removed at open, with a log line", async () => {
    await withDir(async (dir) => {
      const { wal } = Wal.open({ dir, segmentBytes: SEGMENT_BYTES });
      wal.append(text("one"));
      await wal.close();
      writeFileSync(join(dir, "next.wal.tmp"), new Uint8Array(100).fill(1));
      const lines: string[] = [];
      const reopened = Wal.open({ dir, segmentBytes: SEGMENT_BYTES, log: (line) => lines.push(line) });
      assert.deepEqual(decode(reopened.records), ["one"]);
      assert.equal(lines.length, 1);
      assert.match(only(lines, 0), /removed .*next\.wal\.tmp/);
      assert.equal(await reopened.wal.nextSegmentSettled(), true);
      assert.ok(allZeroFile(join(dir, "next.wal.tmp")), "prepared anew, all zeros");
      await reopened.wal.close();
    });
  });
});

describe("write-ahead log: segment headers", () => {
  /** Six records of 20 bytes in segments of 64: two in the first segment, then a header and one record in each of four more. */
  function writeSix(dir: string): Promise<void> {
    const { wal } = Wal.open({ dir, segmentBytes: 64, deferPreparation: true });
    for (let i = 1; i <= 6; i++) {
      wal.append(new Uint8Array(20).fill(i));
      wal.sync();
    }
    return wal.close();
  }

  test("a segment that is not the last, cut at a record boundary, refuses to open, naming the file and offset (found by npm run fuzz)", async () => {
    await withDir(async (dir) => {
      await writeSix(dir);
      const first = only(segments(dir), 0);
      truncateSync(first, 28); // its first record of two: 8 bytes of frame, 20 of data
      assert.throws(
        () => Wal.open({ dir, segmentBytes: 64, deferPreparation: true }),
        (error: unknown) => error instanceof WalCorruptionError && error.file === first && error.offset === 28 && /28 bytes of records are missing from its end/.test(error.message),
      );
    });
  });

  test("a later segment cut the same way refuses too; a segment grown at its end as well", async () => {
    await withDir(async (dir) => {
      await writeSix(dir);
      const second = only(segments(dir), 1);
      const length = statSync(second).size;
      truncateSync(second, length - 28);
      assert.throws(() => Wal.open({ dir, segmentBytes: 64, deferPreparation: true }), (error: unknown) => error instanceof WalCorruptionError && error.file === second);
    });
    await withDir(async (dir) => {
      await writeSix(dir);
      const first = only(segments(dir), 0);
      const bytes = readFileSync(first);
      writeFileSync(first, Buffer.concat([bytes, bytes.subarray(0, 28)])); // a whole record more than was written
      assert.throws(() => Wal.open({ dir, segmentBytes: 64, deferPreparation: true }), (error: unknown) => error instanceof WalCorruptionError && error.file === first && /longer than it was/.test(error.message));
    });
  });

  test("a header a crash kept from the disk is written again at open, so the segment before stays checked", async () => {
    await withDir(async (dir) => {
      await writeSix(dir);
      const names = segments(dir);
      const last = only(names, -1);
      const { wal } = Wal.open({ dir, segmentBytes: 64, deferPreparation: true });
      await wal.close();
      truncateSync(last, 0); // as if the roll into it happened and nothing of it was synced
      const lines: string[] = [];
      const reopened = Wal.open({ dir, segmentBytes: 64, deferPreparation: true, log: (line) => lines.push(line) });
      assert.equal(reopened.records.length, 5, "the record of the last segment was lost with it, the rest are whole");
      assert.equal(statSync(last).size, WAL_SEGMENT_HEADER_BYTES, "its header is back");
      reopened.wal.append(new Uint8Array(20).fill(9));
      reopened.wal.append(new Uint8Array(20).fill(10)); // rolls: the segment with the new header is finished
      await reopened.wal.close();
      truncateSync(last, WAL_SEGMENT_HEADER_BYTES); // its one record cut at its boundary
      assert.throws(() => Wal.open({ dir, segmentBytes: 64, deferPreparation: true }), (error: unknown) => error instanceof WalCorruptionError && error.file === last);
    });
  });

  test("a torn header of the last segment is repaired like any torn tail; a damaged one elsewhere refuses", async () => {
    await withDir(async (dir) => {
      await writeSix(dir);
      const last = only(segments(dir), -1);
      const bytes = readFileSync(last);
      writeFileSync(last, Buffer.concat([bytes.subarray(0, 10), new Uint8Array(bytes.length - 10)])); // the header cut short, zeros after
      const lines: string[] = [];
      const reopened = Wal.open({ dir, segmentBytes: 64, deferPreparation: true, log: (line) => lines.push(line) });
      assert.equal(reopened.records.length, 5);
      assert.match(only(lines, 0), /segment header cut short or failing its checksum at byte 0/);
      await reopened.wal.close();
    });
    await withDir(async (dir) => {
      await writeSix(dir);
      const middle = only(segments(dir), 1);
      const bytes = readFileSync(middle);
      flip(bytes, 9, 0x10); // inside the header's payload: its checksum fails
      writeFileSync(middle, bytes);
      assert.throws(() => Wal.open({ dir, segmentBytes: 64, deferPreparation: true }), (error: unknown) => error instanceof WalCorruptionError && error.file === middle && error.offset === 0);
    });
  });

  test("segments written before headers existed are read as before, and the next roll starts them", async () => {
    await withDir(async (dir) => {
      // Two legacy segments: records only, no header in the second.
      const frame = (fill: number): Buffer => {
        const payload = new Uint8Array(20).fill(fill);
        const out = Buffer.alloc(28);
        out.writeUInt32LE(20, 0);
        out.writeUInt32LE(crc32c(payload), 4);
        out.set(payload, 8);
        return out;
      };
      writeFileSync(join(dir, "0000000000000001.wal"), Buffer.concat([frame(1), frame(2)]));
      writeFileSync(join(dir, "0000000000000002.wal"), Buffer.concat([frame(3), frame(4)]));
      const { wal, records } = Wal.open({ dir, segmentBytes: 64, deferPreparation: true });
      assert.deepEqual(records.map((r) => r[0]), [1, 2, 3, 4]);
      wal.append(new Uint8Array(20).fill(5)); // does not fit: rolls into segment 3, with a header
      wal.sync();
      await wal.close();
      truncateSync(join(dir, "0000000000000002.wal"), 28);
      assert.throws(() => Wal.open({ dir, segmentBytes: 64, deferPreparation: true }), (error: unknown) => error instanceof WalCorruptionError && error.file.endsWith("0000000000000002.wal"));
    });
  });
});

function allZeroFile(path: string): boolean {
  const bytes = readFileSync(path);
  return bytes.length === SEGMENT_BYTES && bytes.every((b) => b === 0);
}

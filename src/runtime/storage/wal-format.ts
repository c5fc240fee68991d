/**
 * The write-ahead log's format on disk, and recovery: reading a segment back.
 *
 * Each record is framed as
 *
 *   u32 length (little-endian) | u32 CRC-32C of the payload | payload
 *
 * Every segment after the first begins with a **segment header**, a frame whose length field
 * is SEGMENT_HEADER_MARK (no record is that long) and whose payload is the byte length of the
 * segment before it, as it was when it was finished. A segment that is not the last holds
 * nothing but whole records, so one cut short exactly at a record boundary would otherwise
 * read as complete, and the records cut from it would vanish without a word; its successor's
 * header says how long it must be. (Segments written before headers existed have none; the
 * first one rolled after an upgrade starts them. A WAL with headers cannot be read by a
 * version without them: it refuses the header as a record too long.)
 *
 * Recovery reads every segment in order; their sequence numbers must be contiguous. Zeros
 * after the last record of the LAST segment are its unused preallocated space, not worth a
 * word. A torn *tail* of the last segment — a record cut short, failing its checksum with
 * nothing but zeros after it, or with a sector of zeros inside it (blocks of the final,
 * unsynced write that never reached the disk, the test etcd's WAL applies) — is what a crash
 * in the middle of a write leaves: it is zeroed, with a log line. Anything else that fails to
 * decode is damage to data that was once durable: opening refuses with a WalCorruptionError
 * that names the file and the offset, and nothing is skipped silently. Because a roll
 * truncates a segment before the next one exists, zeros at the end of a segment that is not
 * the last are damage too.
 */
import { closeSync, fdatasyncSync, openSync, readFileSync, writeSync } from "node:fs";
import { assert } from "../../core/common/assert.js";
import { SynodError } from "../../core/common/errors.js";
import { crc32c } from "./crc32c.js";

export const HEADER_BYTES = 8;
/** The length field of a segment header (see the file comment); above WAL_RECORD_BYTES_MAX, so never a record's. */
const SEGMENT_HEADER_MARK = 0xffffffff;
/** A segment header's payload: the previous segment's length, a float64 (little-endian). */
const SEGMENT_HEADER_PAYLOAD_BYTES = 8;
export const SEGMENT_HEADER_BYTES = HEADER_BYTES + SEGMENT_HEADER_PAYLOAD_BYTES;
/** The bytes a segment header takes at the start of every segment after the first. */
export const WAL_SEGMENT_HEADER_BYTES = SEGMENT_HEADER_BYTES;
/** A length above this is not a record but damage. */
export const WAL_RECORD_BYTES_MAX = 64 * 1024 * 1024;
/** The smallest unit a disk writes whole: a sector of zeros inside a record was never written. */
const SECTOR_BYTES = 512;

export class WalCorruptionError extends SynodError {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, reason: string) {
    super(
      "wal_corrupt",
      `the write-ahead log is corrupt in ${file} at byte ${offset}: ${reason}. This is not a torn write at the tail ` +
        "(which would be repaired) but damage to data that was durable; refusing to start rather than skip it. " +
        "Restore this node's data directory from a backup, or remove it and let the node rejoin empty from its peers.",
    );
    this.name = "WalCorruptionError";
    this.file = file;
    this.offset = offset;
  }
}

/** Where a recovered record starts: its segment file and the byte offset of its frame. */
export interface WalRecordPosition {
  readonly file: string;
  readonly offset: number;
}

function allZero(bytes: Uint8Array, from: number, to = bytes.length): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0) return false;
  return true;
}

export function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  let written = 0;
  while (written < bytes.length) {
    const now = writeSync(fd, bytes, written, bytes.length - written, position + written);
    assert(now > 0, "a write that made no progress");
    written += now;
  }
}

export function segmentHeader(previousBytes: number): Uint8Array {
  const frame = new Uint8Array(SEGMENT_HEADER_BYTES);
  const view = new DataView(frame.buffer);
  view.setUint32(0, SEGMENT_HEADER_MARK, true);
  view.setFloat64(HEADER_BYTES, previousBytes, true);
  view.setUint32(4, crc32c(frame.subarray(HEADER_BYTES)), true);
  return frame;
}

export interface SegmentReading {
  readonly path: string;
  readonly isLast: boolean;
  readonly records: Uint8Array[];
  readonly positions: WalRecordPosition[];
  readonly log: (message: string) => void;
}

/** What is at an offset of a segment. */
type Scan =
  | { readonly outcome: "record"; readonly end: number }
  | { readonly outcome: "unused" }
  | { readonly outcome: "torn" | "corrupt"; readonly reason: string };

/** One segment as read: the bytes holding its header and records, and what its header says of the segment before (null: no header). */
export interface SegmentRead {
  readonly usedBytes: number;
  readonly previousBytes: number | null;
}

/**
 * Reads one segment's records into `reading.records`; repairs a torn tail of the last
 * segment.
 */
export function readSegment(reading: SegmentReading): SegmentRead {
  const bytes = readFileSync(reading.path);
  const header = readSegmentHeader(reading, bytes);
  if (header === "torn") return { usedBytes: 0, previousBytes: null };
  let offset = header === null ? 0 : SEGMENT_HEADER_BYTES;
  // A segment is finished only once it holds a record (see roll and writeBuffered).
  if (!reading.isLast && bytes.length <= offset) throw new WalCorruptionError(reading.path, offset, "no record, in a segment that is not the last");
  const done = (usedBytes: number): SegmentRead => ({ usedBytes, previousBytes: header });
  // Each step moves past a whole record or ends: at most one step per 9 bytes.
  while (offset < bytes.length) {
    const scan = scanAt(bytes, offset);
    if (scan.outcome === "record") {
      reading.records.push(new Uint8Array(bytes.subarray(offset + HEADER_BYTES, scan.end)));
      reading.positions.push({ file: reading.path, offset });
      offset = scan.end;
      continue;
    }
    if (!reading.isLast) {
      const reason = scan.outcome === "unused" ? "zeros after the last record" : scan.reason;
      throw new WalCorruptionError(reading.path, offset, `${reason}, in a segment that is not the last`);
    }
    if (scan.outcome === "corrupt") throw new WalCorruptionError(reading.path, offset, scan.reason);
    if (scan.outcome === "torn") repairTail(reading, bytes, offset, scan.reason);
    return done(offset);
  }
  return done(offset);
}

/**
 * The segment's header, if it begins with one: the previous segment's length. "torn" when
 * the last segment's header is cut short or fails its checksum with nothing but zeros after
 * it (a crash right after a roll; the tail is repaired and `Wal.open` writes the header
 * again); damage anywhere else is refused.
 */
function readSegmentHeader(reading: SegmentReading, bytes: Buffer): number | null | "torn" {
  if (bytes.length < 4 || bytes.readUInt32LE(0) !== SEGMENT_HEADER_MARK) return null;
  const intact = bytes.length >= SEGMENT_HEADER_BYTES && crc32c(bytes.subarray(HEADER_BYTES, SEGMENT_HEADER_BYTES)) === bytes.readUInt32LE(4);
  const previousBytes = intact ? bytes.readDoubleLE(HEADER_BYTES) : Number.NaN;
  if (intact && Number.isSafeInteger(previousBytes) && previousBytes >= 0) return previousBytes;
  const reason = intact ? `a segment header naming an impossible length (${previousBytes})` : "a segment header cut short or failing its checksum";
  if (!reading.isLast || !allZero(bytes, Math.min(bytes.length, SEGMENT_HEADER_BYTES)) || intact) throw new WalCorruptionError(reading.path, 0, reason);
  repairTail(reading, bytes, 0, reason);
  return "torn";
}

function scanAt(bytes: Buffer, offset: number): Scan {
  if (offset + HEADER_BYTES > bytes.length) {
    return allZero(bytes, offset) ? { outcome: "unused" } : { outcome: "torn", reason: "a record header cut short" };
  }
  const length = bytes.readUInt32LE(offset);
  if (length === 0) {
    if (allZero(bytes, offset)) return { outcome: "unused" };
    // The header's sector still holds what it held before the last write: zeros.
    const sectorEnd = Math.min(bytes.length, Math.ceil((offset + HEADER_BYTES) / SECTOR_BYTES) * SECTOR_BYTES);
    if (allZero(bytes, offset, sectorEnd)) return { outcome: "torn", reason: "a record header never written, with later blocks of the same write on disk" };
    return { outcome: "corrupt", reason: "a zero-length record followed by data" };
  }
  if (length === SEGMENT_HEADER_MARK) return { outcome: "corrupt", reason: "a segment header where a record should be" };
  if (length > WAL_RECORD_BYTES_MAX) return { outcome: "corrupt", reason: `a record length of ${length} bytes, above the maximum of ${WAL_RECORD_BYTES_MAX}` };
  const end = offset + HEADER_BYTES + length;
  if (end > bytes.length) return { outcome: "torn", reason: `a record cut short (${length} bytes declared, ${bytes.length - offset - HEADER_BYTES} present)` };
  if (crc32c(bytes.subarray(offset + HEADER_BYTES, end)) === bytes.readUInt32LE(offset + 4)) return { outcome: "record", end };
  if (allZero(bytes, end)) return { outcome: "torn", reason: "a record failing its checksum" };
  if (hasZeroSectorPiece(bytes, offset + HEADER_BYTES, end)) return { outcome: "torn", reason: "a record failing its checksum with a sector never written inside it" };
  return { outcome: "corrupt", reason: "a record failing its checksum, with records after it" };
}

/** Whether a piece of [from, to) cut at sector boundaries is all zeros: a sector the crash kept from the disk. */
function hasZeroSectorPiece(bytes: Uint8Array, from: number, to: number): boolean {
  let start = from;
  while (start < to) {
    const end = Math.min(to, (Math.floor(start / SECTOR_BYTES) + 1) * SECTOR_BYTES);
    if (allZero(bytes, start, end)) return true;
    start = end;
  }
  return false;
}

/** Zeros the torn bytes (keeping the segment's preallocated blocks) and makes that durable. */
function repairTail(reading: SegmentReading, bytes: Uint8Array, offset: number, reason: string): void {
  let lastNonZero = bytes.length - 1;
  while (lastNonZero >= offset && bytes[lastNonZero] === 0) lastNonZero--;
  const dropped = lastNonZero + 1 - offset;
  const fd = openSync(reading.path, "r+");
  try {
    writeFully(fd, new Uint8Array(dropped), offset);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  reading.log(`write-ahead log: ${reason} at byte ${offset} of ${reading.path}, the tail a crash tore; truncated the log there (${dropped} bytes dropped)`);
}

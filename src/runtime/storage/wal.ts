/**
 * The write-ahead log: an append-only sequence of opaque records in segment files, each
 * record framed as
 *
 *   u32 length (little-endian) | u32 CRC-32C of the payload | payload
 *
 * Appends are buffered; `sync()` writes everything buffered with one write and one
 * fdatasync (group commit: a driver syncs once per turn, however many records it queued).
 * A segment that reaches `segmentBytes` is synced and closed, and the next one begins.
 *
 * Recovery reads every segment in order. A torn or corrupt *tail* — the last record of the
 * last segment, cut short or failing its checksum with nothing but zeros after it — is what
 * a crash in the middle of a write leaves: it is truncated, and the truncation is logged.
 * Anything else that fails to decode is corruption of data that was once durable: opening
 * refuses with a WalCorruptionError that names the file and the offset, and nothing is
 * skipped silently.
 *
 * Not yet: preallocating segments, and removing segments behind a snapshot (issue 4 goes
 * on with both).
 */
import { closeSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, ftruncateSync, writeSync } from "node:fs";
import { join } from "node:path";
import { crc32c } from "./crc32c.js";

const HEADER_BYTES = 8;
/** A length above this is not a record but damage. */
export const WAL_RECORD_BYTES_MAX = 64 * 1024 * 1024;
const SEGMENT_SUFFIX = ".wal";

export class WalCorruptionError extends Error {
  override readonly name = "WalCorruptionError";
  constructor(
    readonly file: string,
    readonly offset: number,
    reason: string,
  ) {
    super(
      `the write-ahead log is corrupt in ${file} at byte ${offset}: ${reason}. This is not a torn write at the tail ` +
        "(which would be repaired) but damage to data that was durable; refusing to start rather than skip it. " +
        "Restore this node's data directory from a backup, or remove it and let the node rejoin empty from its peers.",
    );
  }
}

export interface WalOptions {
  readonly dir: string;
  /** Roll to a new segment once the current one holds this many bytes. */
  readonly segmentBytes?: number;
  /** Where recovery reports a repaired tail. */
  readonly log?: (message: string) => void;
}

export interface WalOpened {
  readonly wal: Wal;
  /** Every record recovered, oldest first. */
  readonly records: Uint8Array[];
}

function segmentName(sequence: number): string {
  return `${String(sequence).padStart(16, "0")}${SEGMENT_SUFFIX}`;
}

function allZero(bytes: Uint8Array, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

export class Wal {
  private fd: number;
  private sequence: number;
  private segmentSize: number;
  private buffered: Uint8Array[] = [];
  private bufferedBytes = 0;
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly segmentBytes: number,
    sequence: number,
    segmentSize: number,
  ) {
    this.sequence = sequence;
    this.segmentSize = segmentSize;
    this.fd = openSync(join(dir, segmentName(sequence)), "a");
  }

  /** Opens (creating if needed) the log in `options.dir` and recovers its records. */
  static open(options: WalOptions): WalOpened {
    const segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024;
    mkdirSync(options.dir, { recursive: true });
    const segments = readdirSync(options.dir)
      .filter((name) => /^\d{16}\.wal$/.test(name))
      .sort();
    const records: Uint8Array[] = [];
    let lastSize = 0;
    segments.forEach((name, i) => {
      lastSize = readSegment(join(options.dir, name), i === segments.length - 1, records, options.log ?? (() => {}));
    });
    const last = segments[segments.length - 1];
    const sequence = last === undefined ? 1 : Number(last.slice(0, 16));
    if (last === undefined) {
      // The first segment: create it and make its directory entry durable.
      closeSync(openSync(join(options.dir, segmentName(sequence)), "a"));
      syncDirectory(options.dir);
    }
    return { wal: new Wal(options.dir, segmentBytes, sequence, lastSize), records };
  }

  /** Queues a record; it is durable once `sync()` returns. */
  append(payload: Uint8Array): void {
    if (this.closed) throw new Error("append to a closed write-ahead log");
    if (payload.length === 0 || payload.length > WAL_RECORD_BYTES_MAX) {
      throw new RangeError(`a WAL record must hold 1 to ${WAL_RECORD_BYTES_MAX} bytes, not ${payload.length}`);
    }
    const frame = new Uint8Array(HEADER_BYTES + payload.length);
    const view = new DataView(frame.buffer);
    view.setUint32(0, payload.length, true);
    view.setUint32(4, crc32c(payload), true);
    frame.set(payload, HEADER_BYTES);
    this.buffered.push(frame);
    this.bufferedBytes += frame.length;
  }

  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  /** Writes everything queued with one write and one fdatasync, rolling segments as they fill. */
  sync(): void {
    if (this.closed) throw new Error("sync of a closed write-ahead log");
    if (this.buffered.length === 0) return;
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    const flush = (): void => {
      if (batchBytes === 0) return;
      const joined = Buffer.concat(batch, batchBytes);
      let written = 0;
      while (written < joined.length) written += writeSync(this.fd, joined, written, joined.length - written);
      fdatasyncSync(this.fd);
      this.segmentSize += batchBytes;
      batch = [];
      batchBytes = 0;
    };
    for (const frame of this.buffered) {
      if (this.segmentSize + batchBytes > 0 && this.segmentSize + batchBytes + frame.length > this.segmentBytes) {
        flush();
        this.roll();
      }
      batch.push(frame);
      batchBytes += frame.length;
    }
    flush();
    this.buffered = [];
    this.bufferedBytes = 0;
  }

  private roll(): void {
    closeSync(this.fd);
    this.sequence++;
    this.fd = openSync(join(this.dir, segmentName(this.sequence)), "a");
    this.segmentSize = 0;
    syncDirectory(this.dir);
  }

  /** Syncs what is queued and closes the file. */
  close(): void {
    if (this.closed) return;
    this.sync();
    closeSync(this.fd);
    this.closed = true;
  }
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads one segment's records into `records`; repairs a torn tail of the last segment.
 * Returns the segment's size after any repair.
 */
function readSegment(path: string, isLast: boolean, records: Uint8Array[], log: (message: string) => void): number {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  const tail = (reason: string): number => {
    if (!isLast) throw new WalCorruptionError(path, offset, `${reason} in a segment that is not the last`);
    const fd = openSync(path, "r+");
    try {
      ftruncateSync(fd, offset);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    log(`write-ahead log: ${reason} at byte ${offset} of ${path}, the tail a crash tore; truncated to ${offset} bytes (${bytes.length - offset} dropped)`);
    return offset;
  };
  while (offset < bytes.length) {
    if (offset + HEADER_BYTES > bytes.length) return tail("a record header cut short");
    const length = view.getUint32(offset, true);
    if (length === 0) {
      // Zeros: space never written (a preallocated or partly flushed end), else damage.
      if (allZero(bytes, offset)) return tail("zeros after the last record");
      throw new WalCorruptionError(path, offset, "a zero-length record followed by data");
    }
    const end = offset + HEADER_BYTES + length;
    if (length > WAL_RECORD_BYTES_MAX || end > bytes.length) {
      if (end > bytes.length && isLast) return tail("a record cut short");
      throw new WalCorruptionError(path, offset, `a record length of ${length} bytes that does not fit`);
    }
    const payload = bytes.subarray(offset + HEADER_BYTES, end);
    if (crc32c(payload) !== view.getUint32(offset + 4, true)) {
      if (allZero(bytes, end)) return tail("a record failing its checksum");
      throw new WalCorruptionError(path, offset, "a record failing its checksum, with records after it");
    }
    records.push(new Uint8Array(payload));
    offset = end;
  }
  return offset;
}

/**
 * The write-ahead log: an append-only sequence of opaque records in segment files
 * (`<16-digit sequence>.wal`); the format on disk and how recovery reads it back are in
 * wal-format.ts.
 *
 * Appends are buffered; `sync()` writes everything buffered with one positional write and
 * one fdatasync (group commit: a driver syncs once per turn, however many records it queued).
 *
 * Preallocation. A segment is a zero-filled file of `segmentBytes` made in advance, so an
 * fdatasync only has to write the data blocks, not the file's new size and extents (here:
 * ~90 µs per sync on a preallocated file against ~150-190 µs when appending). Filling 64 MiB
 * synchronously would stall the event loop, so the NEXT segment is prepared in the
 * background with async I/O as `next.wal.tmp` (etcd's file pipeline does the same). On a
 * roll the finished segment is truncated to its used length and fsynced, and only then is
 * the prepared file renamed into place (and the directory fsynced); when it is not ready,
 * the segment is created empty instead and grows by its writes. A `next.wal.tmp` found at
 * open is what a crash left half-filled: it is removed and prepared anew.
 *
 * A roll begins the new segment with its header (wal-format.ts): the length of the
 * segment just finished. It is made durable by the next sync; if a crash comes first, open
 * finds the last segment empty and writes the header again.
 *
 * `removeSegmentsBefore` deletes segments behind a checkpoint (see log-store.ts), oldest
 * first, so that what survives an interrupted deletion is always a contiguous suffix.
 *
 * Errors: an I/O error while writing leaves the log in an unknown state (after a failed
 * fdatasync the page cache may already have dropped the data), so the log refuses every
 * later call; the process should exit and recover from the disk. It is thrown as a
 * WalWriteError naming the segment, with the system error's code (ENOSPC, EIO).
 */
import { closeSync, existsSync, fdatasync, fdatasyncSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, renameSync, rmSync } from "node:fs";
import { open as openAsync } from "node:fs/promises";
import { join } from "node:path";
import { assert } from "../../core/common/assert.js";
import { syncDirectory } from "./atomic-file.js";
import { crc32c } from "./crc32c.js";
import { HEADER_BYTES, readSegment, SEGMENT_HEADER_BYTES, segmentHeader, WAL_RECORD_BYTES_MAX, WalCorruptionError, writeFully, type WalRecordPosition } from "./wal-format.js";

export { WAL_RECORD_BYTES_MAX, WAL_SEGMENT_HEADER_BYTES, WalCorruptionError, type WalRecordPosition } from "./wal-format.js";

export const WAL_SEGMENT_BYTES_DEFAULT = 64 * 1024 * 1024;

/** A system error (ENOSPC, EIO, ...) while writing or syncing a segment; `code` is the system error's. */
export class WalWriteError extends Error {
  readonly code: string | undefined;
  constructor(
    readonly file: string,
    what: string,
    cause: unknown,
  ) {
    super(`${what} of the write-ahead log segment ${file} failed (${cause instanceof Error ? cause.message : String(cause)})`, { cause });
    this.name = "WalWriteError";
    this.code = (cause as NodeJS.ErrnoException | null)?.code;
  }
}

/** A system error gets the segment's name; anything else (an assertion) is thrown as it is. */
function namingSegment(error: unknown, file: string, what: string): unknown {
  return typeof (error as NodeJS.ErrnoException | null)?.code === "string" ? new WalWriteError(file, what, error) : error;
}
/** The background fill writes zeros this many bytes at a time. */
const FILL_CHUNK_BYTES = 1024 * 1024;
const SEGMENT_PATTERN = /^\d{16}\.wal$/;
const NEXT_SEGMENT_TEMP = "next.wal.tmp";
export interface WalOptions {
  readonly dir: string;
  /** Segment size in bytes, at least 64 (default 64 MiB); a record larger than it gets a segment of its own. */
  readonly segmentBytes?: number;
  /** Where recovery notes go: a repaired tail, a removed leftover, a failed background fill. */
  readonly log?: (message: string) => void;
  /**
   * Do not start preparing the next segment on open; the caller calls `prepareNextSegment()`
   * once it has accepted what was recovered. A caller that may still refuse the log (and
   * throw) leaves nothing running in the background that writes into the directory.
   */
  readonly deferPreparation?: boolean;
}

export interface WalOpened {
  readonly wal: Wal;
  /** Every record recovered, oldest first; each is a copy the caller owns. */
  readonly records: Uint8Array[];
  /** `positions[i]` is where `records[i]` was read, for error messages. */
  readonly positions: WalRecordPosition[];
  /**
   * The oldest segment: sequence 1 while the log still holds its whole history; above 1
   * once segments behind a checkpoint were removed, so that the records read begin with
   * whatever followed them (the caller's checkpoint must then supersede that).
   */
  readonly firstSegment: { readonly sequence: number; readonly file: string };
}

function segmentName(sequence: number): string {
  return `${String(sequence).padStart(16, "0")}.wal`;
}

function sequenceOf(name: string): number {
  return Number(name.slice(0, 16));
}

function listSegments(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => SEGMENT_PATTERN.test(name))
    .sort();
}


/**
 * The next segment, zero-filled in the background. At most one fill runs at a time; its
 * errors are caught and logged (the roll then falls back to an empty segment), never thrown.
 */
class NextSegment {
  private status: "idle" | "filling" | "ready" = "idle";
  private cancelled = false;
  private done: Promise<void> = Promise.resolve();
  private static readonly zeros = new Uint8Array(FILL_CHUNK_BYTES);

  constructor(
    readonly path: string,
    private readonly bytes: number,
    private readonly log: (message: string) => void,
  ) {}

  /** Starts filling, unless a fill is running or its file is ready. */
  start(): void {
    if (this.status !== "idle") return;
    this.status = "filling";
    this.cancelled = false;
    this.done = this.fill().then(
      () => {
        this.status = this.cancelled ? "idle" : "ready";
      },
      (error: unknown) => {
        this.status = "idle";
        // A fill that ran out of space would otherwise keep what it wrote, the very space
        // the log's real writes need (on a small disk, all of it).
        rmSync(this.path, { force: true });
        if (!this.cancelled) this.log(`write-ahead log: preparing the next segment failed (${String(error)}); removed it, and the next roll creates it unprepared`);
      },
    );
  }

  private async fill(): Promise<void> {
    const handle = await openAsync(this.path, "w");
    try {
      let position = 0;
      while (position < this.bytes && !this.cancelled) {
        const { bytesWritten } = await handle.write(NextSegment.zeros, 0, Math.min(FILL_CHUNK_BYTES, this.bytes - position), position);
        assert(bytesWritten > 0, "a write that made no progress");
        position += bytesWritten;
      }
      if (!this.cancelled) await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  /** True when the prepared file is complete; the caller then renames it into place. */
  take(): boolean {
    if (this.status !== "ready") return false;
    this.status = "idle";
    return true;
  }

  /** Resolves once no fill is running; true when the prepared file is ready. For tests and metrics. */
  async settled(): Promise<boolean> {
    await this.done;
    return this.status === "ready";
  }

  /** Stops a running fill and removes the file. */
  async stop(): Promise<void> {
    this.cancelled = true;
    await this.done;
    this.status = "idle";
    rmSync(this.path, { force: true });
  }
}

export class Wal {
  private fd: number;
  private sequence: number;
  /** The oldest segment's sequence: what `removeSegmentsBefore` has not removed. */
  private oldestSequence: number;
  /** Bytes of the current segment holding records (and its header); the next write goes here. */
  private position: number;
  /** Where records begin in the current segment: after its header, if it has one. */
  private recordsStart: number;
  private buffered: Uint8Array[] = [];
  private bufferedBytes = 0;
  private closing: Promise<void> | null = null;
  private broken: unknown = null;
  /** An fdatasync of `syncAsync` is running on the thread pool; nothing else may touch the file (appends only buffer). */
  private syncing: Promise<void> | null = null;
  private readonly next: NextSegment;

  private constructor(
    private readonly dir: string,
    private readonly segmentBytes: number,
    firstSequence: number,
    sequence: number,
    position: number,
    recordsStart: number,
    log: (message: string) => void,
    deferPreparation: boolean,
  ) {
    this.sequence = sequence;
    this.oldestSequence = firstSequence;
    this.position = position;
    this.recordsStart = recordsStart;
    this.fd = openSync(join(dir, segmentName(sequence)), "r+");
    this.next = new NextSegment(join(dir, NEXT_SEGMENT_TEMP), segmentBytes, log);
    if (!deferPreparation) this.next.start();
  }

  /** Starts preparing the next segment in the background (for a log opened with `deferPreparation`); idempotent. */
  prepareNextSegment(): void {
    this.assertUsable("prepare the next segment of", { duringSync: true });
    this.next.start();
  }

  /**
   * Opens (creating if needed) the log in `options.dir`, recovers its records and starts
   * preparing the next segment. Throws WalCorruptionError on damage (see the file comment).
   */
  static open(options: WalOptions): WalOpened {
    const segmentBytes = options.segmentBytes ?? WAL_SEGMENT_BYTES_DEFAULT;
    assert(Number.isSafeInteger(segmentBytes) && segmentBytes >= 64, `segmentBytes must be an integer of at least 64, got ${segmentBytes}`);
    const log = options.log ?? (() => {});
    mkdirSync(options.dir, { recursive: true });
    const temp = join(options.dir, NEXT_SEGMENT_TEMP);
    if (existsSync(temp)) {
      rmSync(temp, { force: true });
      log(`write-ahead log: removed ${temp}, a segment being prepared when the process stopped`);
    }
    const segments = listSegments(options.dir);
    const records: Uint8Array[] = [];
    const positions: WalRecordPosition[] = [];
    let lastUsed = 0;
    let previousUsed = 0;
    let lastRecordsStart = 0;
    /** The length of the segment before the last. */
    let usedBeforeLast = 0;
    segments.forEach((name, i) => {
      const path = join(options.dir, name);
      const previous = segments[i - 1];
      if (previous !== undefined && sequenceOf(name) !== sequenceOf(previous) + 1) {
        throw new WalCorruptionError(path, 0, `the segments between ${previous} and ${name} are missing`);
      }
      const read = readSegment({ path, isLast: i === segments.length - 1, records, positions, log });
      // The first segment present may follow removed ones: its header speaks of a file gone.
      if (previous !== undefined && read.previousBytes !== null && read.previousBytes !== previousUsed) {
        const missing = read.previousBytes - previousUsed;
        const what = missing > 0 ? `${missing} bytes of records are missing from its end` : `it is ${-missing} bytes longer than it was`;
        throw new WalCorruptionError(join(options.dir, previous), Math.min(previousUsed, read.previousBytes), `${what} (the next segment, ${name}, says it was ${read.previousBytes} bytes long when it was finished)`);
      }
      usedBeforeLast = previousUsed;
      previousUsed = read.usedBytes;
      lastUsed = read.usedBytes;
      lastRecordsStart = read.previousBytes === null ? 0 : SEGMENT_HEADER_BYTES;
    });
    const first = segments[0];
    const last = segments[segments.length - 1];
    const sequence = last === undefined ? 1 : sequenceOf(last);
    if (last === undefined) {
      // The first segment is created empty (preparing 64 MiB here would stall the caller);
      // its directory entry is made durable at once.
      closeSync(openSync(join(options.dir, segmentName(sequence)), "wx"));
      syncDirectory(options.dir);
    } else if (lastUsed === 0 && segments.length > 1) {
      // A roll whose header never reached the disk (a crash right after it): write it now,
      // so the segment before is checked once this one is finished too.
      const fd = openSync(join(options.dir, last), "r+");
      try {
        writeFully(fd, segmentHeader(usedBeforeLast), 0);
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
      }
      lastUsed = SEGMENT_HEADER_BYTES;
      lastRecordsStart = SEGMENT_HEADER_BYTES;
    }
    const firstSequence = first === undefined ? sequence : sequenceOf(first);
    const firstSegment = { sequence: firstSequence, file: join(options.dir, segmentName(firstSequence)) };
    return { wal: new Wal(options.dir, segmentBytes, firstSequence, sequence, lastUsed, lastRecordsStart, log, options.deferPreparation === true), records, positions, firstSegment };
  }

  /** Queues a record of 1 to WAL_RECORD_BYTES_MAX bytes (copied); it is durable once `sync()` returns. */
  append(payload: Uint8Array): void {
    // Appending only buffers, so it may go on while an fdatasync of earlier writes runs:
    // the replica saves the next Ready while the last one flushes. The next sync writes it.
    this.assertUsable("append to", { duringSync: true });
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

  /** The sequence number of the segment the next record goes to. */
  get currentSequence(): number {
    return this.sequence;
  }

  /** The sequence number of the oldest segment kept. */
  get firstSequence(): number {
    return this.oldestSequence;
  }

  /** Bytes of the current segment already holding records. */
  get currentSegmentUsedBytes(): number {
    return this.position;
  }

  /** Writes everything queued with one write and one fdatasync per segment it touches, rolling as segments fill. */
  sync(): void {
    this.assertUsable("sync of");
    if (this.buffered.length === 0) return;
    this.guard(() => {
      this.writeBuffered();
      fdatasyncSync(this.fd);
    });
  }

  /**
   * `sync()` with its final fdatasync on libuv's thread pool, so the event loop goes on
   * (receiving requests and acknowledgements) while the disk flushes. The records are
   * durable when the promise resolves; what is appended meanwhile is not (the next sync
   * writes it). Until then every other call but `append` throws (and `close`, which waits);
   * a failed fdatasync makes the log unusable, as a failed `sync` does (after an fsync error
   * the kernel may have dropped the dirty pages, so a retry could report success falsely).
   */
  syncAsync(): Promise<void> {
    this.assertUsable("sync of");
    if (this.buffered.length === 0) return Promise.resolve();
    this.guard(() => this.writeBuffered());
    const fd = this.fd;
    this.syncing = new Promise<void>((resolve, reject) => {
      fdatasync(fd, (error) => {
        this.syncing = null;
        if (error === null) return resolve();
        this.broken = namingSegment(error, this.currentPath(), "the fdatasync");
        reject(this.broken);
      });
    });
    return this.syncing;
  }

  /** Writes what is buffered, rolling segments as they fill; leaves the last write unsynced. */
  private writeBuffered(): void {
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    for (const frame of this.buffered) {
      const used = this.position + batchBytes;
      if (used > this.recordsStart && used + frame.length > this.segmentBytes) {
        this.writeAndSync(batch, batchBytes);
        batch = [];
        batchBytes = 0;
        this.startNextSegment();
      }
      batch.push(frame);
      batchBytes += frame.length;
    }
    if (batchBytes > 0) {
      writeFully(this.fd, Buffer.concat(batch, batchBytes), this.position);
      this.position += batchBytes;
    }
    this.buffered = [];
    this.bufferedBytes = 0;
  }

  /**
   * Syncs what is queued, then finishes the current segment (unless it holds no record yet)
   * so that the next record begins a fresh one: a checkpoint written after a roll lets
   * every older segment go.
   */
  roll(): void {
    this.sync();
    if (this.position <= this.recordsStart) return;
    this.guard(() => this.startNextSegment());
  }

  /**
   * Removes every segment whose sequence is below `sequence` (at most the current one),
   * oldest first, then fsyncs the directory. Returns the names removed. The caller must
   * have made durable whatever supersedes them.
   */
  removeSegmentsBefore(sequence: number): string[] {
    this.assertUsable("removing segments of");
    assert(Number.isSafeInteger(sequence) && sequence <= this.sequence, `segments before ${sequence} include the current one (${this.sequence})`);
    const removed = listSegments(this.dir).filter((name) => sequenceOf(name) < sequence);
    if (removed.length === 0) return [];
    this.guard(() => {
      for (const name of removed) rmSync(join(this.dir, name));
      syncDirectory(this.dir);
    });
    this.oldestSequence = Math.max(this.oldestSequence, sequence);
    return removed;
  }

  /** Resolves once the background preparation is idle; true when a prepared segment is waiting. */
  nextSegmentSettled(): Promise<boolean> {
    return this.next.settled();
  }

  /**
   * Syncs what is queued and closes the segment at once (synchronously, before the first
   * await: even a caller that does not wait has its records durable), then stops the
   * background preparation and removes its file. Later calls return the same promise.
   */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    const syncing = this.syncing;
    if (syncing !== null) {
      // The thread pool still uses the descriptor: close after its fdatasync.
      this.closing = syncing.catch(() => undefined).then(() => {
        this.closing = null;
        return this.close();
      });
      return this.closing;
    }
    try {
      if (this.broken === null) this.sync();
    } finally {
      closeSync(this.fd);
      this.closing = this.next.stop();
    }
    return this.closing;
  }

  private assertUsable(what: string, options: { readonly duringSync?: boolean } = {}): void {
    if (this.closing !== null) throw new Error(`${what} a closed write-ahead log`);
    if (this.syncing !== null && options.duringSync !== true) throw new Error(`${what} a write-ahead log while an fdatasync is in flight`);
    if (this.broken !== null) throw new Error(`${what} a write-ahead log that failed an earlier write`, { cause: this.broken });
  }

  /** Runs an I/O step; a failure marks the log unusable (its state on disk is unknown). */
  private guard(step: () => void): void {
    try {
      step();
    } catch (error) {
      this.broken = namingSegment(error, this.currentPath(), "a write");
      throw this.broken;
    }
  }

  private currentPath(): string {
    return join(this.dir, segmentName(this.sequence));
  }

  private writeAndSync(batch: Uint8Array[], batchBytes: number): void {
    if (batchBytes === 0) return;
    writeFully(this.fd, Buffer.concat(batch, batchBytes), this.position);
    fdatasyncSync(this.fd);
    this.position += batchBytes;
  }

  /**
   * Truncates the finished segment to its records and fsyncs it, then puts the next in
   * place with its header (made durable by the next sync, or written again at open if a
   * crash comes first).
   */
  private startNextSegment(): void {
    const finishedBytes = this.position;
    ftruncateSync(this.fd, finishedBytes);
    fsyncSync(this.fd);
    closeSync(this.fd);
    const path = join(this.dir, segmentName(this.sequence + 1));
    if (!this.placePrepared(path)) closeSync(openSync(path, "wx"));
    syncDirectory(this.dir);
    this.fd = openSync(path, "r+");
    this.sequence++;
    const header = segmentHeader(finishedBytes);
    writeFully(this.fd, header, 0);
    this.position = header.length;
    this.recordsStart = header.length;
    this.next.start();
  }

  private placePrepared(path: string): boolean {
    if (!this.next.take()) return false;
    try {
      renameSync(this.next.path, path);
      return true;
    } catch {
      return false; // someone removed it; the fallback is always safe
    }
  }
}

/**
 * Backup files: what `GET /v1/snapshot` streams and `synod snapshot save` writes, and what
 * `synod snapshot restore` seeds a new cluster from. One layout for the wire and the disk,
 * so the file is the response's bytes, unchanged:
 *
 *   0      "SYNODBAK"    magic, 8 bytes
 *   8      u32 format    1 or 2 (little-endian, as the other files of a data directory)
 *   12     u32 H         length of the header, at most HEADER_BYTES_MAX
 *   16     header        UTF-8 JSON: what the file holds and where from
 *   16+H   data          `dataBytes` long (see below)
 *   end-32 SHA-256       of every byte before it
 *
 * Format 1, a cluster of one range: the header is a `BackupHeader`, the data the state
 * machine's snapshot (core/kv/snapshot.ts). Format 2, a sharded cluster (`--shards`, and
 * ranges born of splits): the header is a `ShardedBackupHeader`, which lists every range
 * (its descriptor, index, term, revision, keys and `dataBytes`) in key order, and the data
 * is their snapshots one after the other, in that order. A new format number rather than a
 * section: a reader of format 1 only (an older synod) refuses the file whole, saying which
 * format it is in, instead of restoring the first range and dropping the others; this
 * version's `readBackup`, which is for format 1, refuses it with ShardedBackupError.
 *
 * The checksum covers the header too, so a flipped bit anywhere is found. SHA-256 rather
 * than the CRC-32C of the WAL: a backup travels (over HTTP, between machines, through
 * object stores), and `sha256sum` can check it without synod; it is also what names the
 * restored cluster (see restore.ts). The header's `dataBytes` makes a truncated file (a
 * download cut short, a full disk) say so, rather than only fail its checksum.
 *
 * Reading verifies the checksum before anything in the file is trusted; `BackupVerifier`
 * does it incrementally, for a stream.
 */
import { createHash } from "node:crypto";
import { SynodError } from "../../core/common/errors.js";
import { compareUtf8 } from "../../core/common/utf8.js";
import { GROUP_ID_MAX } from "../../core/multi/group.js";

const MAGIC = new TextEncoder().encode("SYNODBAK");
/** A cluster of one range. */
export const BACKUP_FORMAT = 1;
/** A sharded cluster: every range. */
export const SHARDED_BACKUP_FORMAT = 2;
const PREFIX_BYTES = 16;
export const BACKUP_DIGEST_BYTES = 32;
/** A header is a few hundred bytes; past this the length field itself is damaged. */
const HEADER_BYTES_MAX = 64 * 1024;
/**
 * A sharded backup's header lists every range, with its span's two keys (each up to 1 KiB,
 * six times that as escaped JSON at worst): room for RANGES_MAX (128) of them.
 */
const SHARDED_HEADER_BYTES_MAX = 4 * 1024 * 1024;
/** Far more ranges than a cluster runs (config.ts RANGES_MAX): a list longer than this is damage. */
const RANGES_IN_BACKUP_MAX = 4096;

/** What a backup file says about itself (its JSON header). */
export interface BackupHeader {
  /** The last log entry the state covers, and its term. */
  readonly index: number;
  readonly term: number;
  /** The store's revision at `index`. */
  readonly revision: number;
  /** How many keys the state holds. */
  readonly keys: number;
  /** Length of the state machine's snapshot after the header. */
  readonly dataBytes: number;
  /** The cluster and node it was taken from. */
  readonly clusterId: string;
  readonly nodeId: number;
  /** The voters of the configuration at `index` (informational: a restore names its own members). */
  readonly voters: readonly number[];
  /** When it was taken, ISO 8601, by the node's clock. */
  readonly takenAt: string;
  readonly synodVersion: string;
}

/** One range of a sharded backup: its descriptor, and its state machine's snapshot's part of the data. */
export interface RangeBackupHeader {
  /** The range's consensus group, its span `[start, end)` (end null: no end) and its epoch. */
  readonly id: number;
  readonly start: string;
  readonly end: string | null;
  readonly epoch: number;
  /** The range's last log entry the state covers, its term, and the range's revision there. */
  readonly index: number;
  readonly term: number;
  readonly revision: number;
  readonly keys: number;
  /** Length of the range's snapshot in the data. */
  readonly dataBytes: number;
  /** The range's voters at `index` (informational). */
  readonly voters: readonly number[];
}

/** What a backup of a sharded cluster says about itself (format 2). */
export interface ShardedBackupHeader {
  /** The ranges the cluster started with (`--shards`): a restored cluster starts with as many. */
  readonly shards: number;
  /** Every range, in key order; their spans cover the key space once. */
  readonly ranges: readonly RangeBackupHeader[];
  /** The sums of the ranges'. */
  readonly keys: number;
  readonly dataBytes: number;
  readonly clusterId: string;
  readonly nodeId: number;
  /** When the first range was read, ISO 8601, by the node's clock. */
  readonly takenAt: string;
  readonly synodVersion: string;
}

export type AnyBackupHeader = BackupHeader | ShardedBackupHeader;

export function isShardedBackup(header: AnyBackupHeader): header is ShardedBackupHeader {
  return "ranges" in header;
}

/** A backup file is damaged, truncated, or not a backup file; the message says which. */
export class BackupFileError extends SynodError {
  constructor(what: string, reason: string, code = "backup_corrupt") {
    super(code, `${what} ${reason}`);
    this.name = "BackupFileError";
  }
}

/** An intact backup of a sharded cluster given to a reader of one range's backups (`readBackup`). */
export class ShardedBackupError extends BackupFileError {
  constructor(what: string, header: ShardedBackupHeader) {
    super(what, `is a backup of a sharded cluster (${header.ranges.length} ranges, started with --shards ${header.shards}): it is restored whole, every range, or not at all (readBackupFile), never as one range`, "backup_sharded");
    this.name = "ShardedBackupError";
  }
}

/** The bytes before the data: magic, format, header length, header. */
export function encodeBackupPrefix(header: AnyBackupHeader): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const max = isShardedBackup(header) ? SHARDED_HEADER_BYTES_MAX : HEADER_BYTES_MAX;
  if (json.length > max) throw new RangeError(`a backup header of ${json.length} bytes is over ${max}`);
  const prefix = new Uint8Array(PREFIX_BYTES + json.length);
  const view = new DataView(prefix.buffer);
  prefix.set(MAGIC, 0);
  view.setUint32(8, isShardedBackup(header) ? SHARDED_BACKUP_FORMAT : BACKUP_FORMAT, true);
  view.setUint32(12, json.length, true);
  prefix.set(json, PREFIX_BYTES);
  return prefix;
}

/** The whole file's size for a header and data of these sizes. */
export function backupFileBytes(prefix: Uint8Array, dataBytes: number): number {
  return prefix.length + dataBytes + BACKUP_DIGEST_BYTES;
}

/**
 * The whole file in pieces of at most `chunkBytes`: the prefix, the data (one snapshot, or
 * a sharded backup's, one after the other), and last the digest, computed as the pieces go,
 * for a writer that waits for its reader between them.
 */
export function* backupFilePieces(prefix: Uint8Array, data: Uint8Array | readonly Uint8Array[], chunkBytes: number): Generator<Uint8Array> {
  const hash = createHash("sha256");
  hash.update(prefix);
  yield prefix;
  for (const part of data instanceof Uint8Array ? [data] : data) {
    for (let offset = 0; offset < part.length; offset += chunkBytes) {
      const piece = part.subarray(offset, offset + chunkBytes);
      hash.update(piece);
      yield piece;
    }
  }
  yield hash.digest();
}

/**
 * Checks a backup file as its bytes arrive (`update`), holding back the last 32 bytes seen,
 * which are the digest once the stream ends. Memory: the header (at most its format's
 * largest) and 32 bytes; the data passes through.
 */
export class BackupVerifier {
  private readonly hash = createHash("sha256");
  private held: Uint8Array = new Uint8Array(0);
  private head: Uint8Array = new Uint8Array(0);
  private total = 0;

  /** `what` names the file in messages ("the file x.snap", "the answer of http://..."). */
  constructor(private readonly what: string) {}

  update(chunk: Uint8Array): void {
    this.total += chunk.length;
    // The head: the stream's first bytes, to the end of the header (known once the prefix is in).
    for (let offset = 0; offset < chunk.length && this.head.length < headBytesWanted(this.head); ) {
      const taken = chunk.subarray(offset, offset + headBytesWanted(this.head) - this.head.length);
      this.head = concat(this.head, taken);
      offset += taken.length;
    }
    if (chunk.length >= BACKUP_DIGEST_BYTES) {
      // The usual case: everything held, and all of the chunk but its last 32 bytes, is data.
      this.hash.update(this.held);
      this.hash.update(chunk.subarray(0, chunk.length - BACKUP_DIGEST_BYTES));
      this.held = chunk.slice(chunk.length - BACKUP_DIGEST_BYTES);
      return;
    }
    const joined = concat(this.held, chunk);
    const release = Math.max(0, joined.length - BACKUP_DIGEST_BYTES);
    this.hash.update(joined.subarray(0, release));
    this.held = joined.slice(release);
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.total;
  }

  /**
   * Ends the stream: returns the header and the file's SHA-256 (hex) when the file is whole
   * and intact; throws BackupFileError with what is wrong otherwise.
   */
  finish(): { readonly header: AnyBackupHeader; readonly sha256: string } {
    if (this.total < PREFIX_BYTES + BACKUP_DIGEST_BYTES) throw new BackupFileError(this.what, `is ${this.total} bytes long, too short to be a synod backup`);
    if (!MAGIC.every((byte, i) => this.head[i] === byte)) throw new BackupFileError(this.what, "is not a synod backup (it does not begin with SYNODBAK)");
    const digest = this.hash.digest();
    const intact = Buffer.compare(digest, this.held) === 0;
    const parsed = parseHeader(this.head);
    if (!intact) {
      // A header that still reads may tell a truncated file from a damaged one.
      if (typeof parsed !== "string") {
        const expected = PREFIX_BYTES + parsed.headerBytes + parsed.header.dataBytes + BACKUP_DIGEST_BYTES;
        if (this.total < expected) throw new BackupFileError(this.what, `is truncated: it holds ${this.total} of its ${expected} bytes. Save the backup again`);
        if (this.total > expected) throw new BackupFileError(this.what, `has ${this.total - expected} bytes more than its header declares (${expected}); it is damaged`);
      }
      throw new BackupFileError(this.what, "fails its SHA-256 checksum: it is damaged (a changed byte, or a partial copy). Use another copy, or save the backup again");
    }
    if (typeof parsed === "string") throw new BackupFileError(this.what, `passes its checksum but ${parsed}; it was written by another version of synod, or by a bug`);
    const expected = PREFIX_BYTES + parsed.headerBytes + parsed.header.dataBytes + BACKUP_DIGEST_BYTES;
    if (this.total !== expected) throw new BackupFileError(this.what, `passes its checksum but is ${this.total} bytes, where its header declares ${expected}`);
    return { header: parsed.header, sha256: digest.toString("hex") };
  }
}

/**
 * A whole backup file of one range in memory: its header, the state machine's data (a
 * view), and its SHA-256. Throws BackupFileError, or ShardedBackupError for an intact
 * backup of a sharded cluster (`readBackupFile` reads both).
 */
export function readBackup(bytes: Uint8Array, what: string): { readonly header: BackupHeader; readonly data: Uint8Array; readonly sha256: string } {
  const read = readBackupFile(bytes, what);
  if (isShardedBackup(read.header)) throw new ShardedBackupError(what, read.header);
  return { header: read.header, data: read.data, sha256: read.sha256 };
}

/**
 * A whole backup file, of either format, in memory: its header, its data, the data cut into
 * each range's snapshot (views; one part for format 1), and its SHA-256. Throws
 * BackupFileError.
 */
export function readBackupFile(bytes: Uint8Array, what: string): { readonly header: AnyBackupHeader; readonly data: Uint8Array; readonly parts: readonly Uint8Array[]; readonly sha256: string } {
  const verifier = new BackupVerifier(what);
  verifier.update(bytes);
  const { header, sha256 } = verifier.finish();
  const start = bytes.length - BACKUP_DIGEST_BYTES - header.dataBytes;
  const data = bytes.subarray(start, start + header.dataBytes);
  if (!isShardedBackup(header)) return { header, data, parts: [data], sha256 };
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const range of header.ranges) {
    parts.push(data.subarray(offset, offset + range.dataBytes));
    offset += range.dataBytes;
  }
  return { header, data, parts, sha256 };
}

/** The header from the file's first bytes, or why it cannot be read. */
function parseHeader(head: Uint8Array): { readonly header: AnyBackupHeader; readonly headerBytes: number } | string {
  if (head.length < PREFIX_BYTES) return "is too short for its header";
  const view = new DataView(head.buffer, head.byteOffset, head.length);
  const format = view.getUint32(8, true);
  if (format !== BACKUP_FORMAT && format !== SHARDED_BACKUP_FORMAT) return `is in format ${format}, where this version reads formats ${BACKUP_FORMAT} and ${SHARDED_BACKUP_FORMAT}`;
  const headerBytes = view.getUint32(12, true);
  if (headerBytes > (format === BACKUP_FORMAT ? HEADER_BYTES_MAX : SHARDED_HEADER_BYTES_MAX) || PREFIX_BYTES + headerBytes > head.length) return `declares a header of ${headerBytes} bytes, more than it holds`;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(PREFIX_BYTES, PREFIX_BYTES + headerBytes)));
  } catch {
    return "has a header that is not JSON";
  }
  const problem = format === BACKUP_FORMAT ? headerProblem(value) : shardedHeaderProblem(value);
  return problem === null ? { header: value as AnyBackupHeader, headerBytes } : `has a header with ${problem}`;
}

const count = (v: unknown): boolean => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

function headerProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "no fields";
  const fields = value as Record<string, unknown>;
  if ("ranges" in fields) return "a list of ranges in format 1";
  const state = stateProblem(fields);
  if (state !== null) return state;
  return originProblem(fields);
}

/** What a range's state says of itself: index, term, revision, keys, length, voters. */
function stateProblem(fields: Record<string, unknown>): string | null {
  for (const name of ["index", "term", "revision", "keys", "dataBytes"] as const) if (!count(fields[name])) return `a bad ${name}`;
  if ((fields["index"] as number) < 1) return "index 0 (a backup holds at least one applied entry)";
  if (!Array.isArray(fields["voters"]) || !fields["voters"].every(count)) return "a bad voters list";
  return null;
}

/** Where and when it was taken. */
function originProblem(fields: Record<string, unknown>): string | null {
  if (!count(fields["nodeId"])) return "a bad nodeId";
  for (const name of ["clusterId", "takenAt", "synodVersion"] as const) if (typeof fields[name] !== "string") return `a bad ${name}`;
  return null;
}

/** A sharded header: its ranges are whole, cover the key space once in key order, and add up. */
function shardedHeaderProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "no fields";
  const fields = value as Record<string, unknown>;
  const origin = originProblem(fields);
  if (origin !== null) return origin;
  const shards = fields["shards"];
  if (typeof shards !== "number" || !Number.isSafeInteger(shards) || shards < 2) return "a bad shards count (a sharded backup is of 2 ranges or more)";
  const ranges = fields["ranges"];
  if (!Array.isArray(ranges) || ranges.length < shards || ranges.length > RANGES_IN_BACKUP_MAX) return "a bad list of ranges";
  const ids = new Set<number>();
  let keys = 0;
  let dataBytes = 0;
  let previousEnd: string | null = "";
  for (const [i, range] of (ranges as unknown[]).entries()) {
    if (typeof range !== "object" || range === null || Array.isArray(range)) return `range ${i} with no fields`;
    const r = range as Record<string, unknown>;
    const id = r["id"];
    if (!count(id) || (id as number) >= GROUP_ID_MAX || ids.has(id as number)) return `a bad or repeated range id (${String(id)})`;
    ids.add(id as number);
    const state = stateProblem(r);
    if (state !== null) return `range ${String(id)} with ${state}`;
    if (!count(r["epoch"]) || (r["epoch"] as number) < 1) return `range ${String(id)} with a bad epoch`;
    const start = r["start"];
    const end = r["end"];
    if (typeof start !== "string" || (end !== null && typeof end !== "string")) return `range ${String(id)} with a bad span`;
    // Key order, each range starting where the one before ended, the last with no end.
    if (previousEnd === null || start !== previousEnd || (end !== null && compareUtf8(start, end) >= 0)) return `ranges that do not cover the key space once (range ${String(id)} starts at ${JSON.stringify(start)})`;
    previousEnd = end;
    keys += r["keys"] as number;
    dataBytes += r["dataBytes"] as number;
  }
  if (previousEnd !== null) return "ranges that do not cover the key space once (the last one ends)";
  for (let id = 0; id < shards; id++) if (!ids.has(id)) return `no range ${id}, one the cluster started with`;
  if (fields["keys"] !== keys) return `a key count that is not its ranges' (${keys})`;
  if (fields["dataBytes"] !== dataBytes) return `a data length that is not its ranges' (${dataBytes})`;
  return null;
}

/** How much of a file's first bytes its header needs, given the first `head.length` of them. */
function headBytesWanted(head: Uint8Array): number {
  if (head.length < PREFIX_BYTES) return PREFIX_BYTES;
  const view = new DataView(head.buffer, head.byteOffset, head.length);
  const format = view.getUint32(8, true);
  const max = format === BACKUP_FORMAT ? HEADER_BYTES_MAX : format === SHARDED_BACKUP_FORMAT ? SHARDED_HEADER_BYTES_MAX : 0;
  return PREFIX_BYTES + Math.min(view.getUint32(12, true), max);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

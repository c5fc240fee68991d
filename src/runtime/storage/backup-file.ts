/**
 * Backup files: what `GET /v1/snapshot` streams and `synod snapshot save` writes, and what
 * `synod snapshot restore` seeds a new cluster from. One layout for the wire and the disk,
 * so the file is the response's bytes, unchanged:
 *
 *   0      "SYNODBAK"    magic, 8 bytes
 *   8      u32 format    1 (little-endian, as the other files of a data directory)
 *   12     u32 H         length of the header, at most HEADER_BYTES_MAX
 *   16     header        UTF-8 JSON (`BackupHeader`): what the file holds and where from
 *   16+H   data          the state machine's snapshot (core/kv/snapshot.ts), `dataBytes` long
 *   end-32 SHA-256       of every byte before it
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

const MAGIC = new TextEncoder().encode("SYNODBAK");
export const BACKUP_FORMAT = 1;
const PREFIX_BYTES = 16;
export const BACKUP_DIGEST_BYTES = 32;
/** A header is a few hundred bytes; past this the length field itself is damaged. */
const HEADER_BYTES_MAX = 64 * 1024;

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

/** A backup file is damaged, truncated, or not a backup file; the message says which. */
export class BackupFileError extends SynodError {
  constructor(what: string, reason: string) {
    super("backup_corrupt", `${what} ${reason}`);
    this.name = "BackupFileError";
  }
}

/** The bytes before the data: magic, format, header length, header. */
export function encodeBackupPrefix(header: BackupHeader): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  if (json.length > HEADER_BYTES_MAX) throw new RangeError(`a backup header of ${json.length} bytes is over ${HEADER_BYTES_MAX}`);
  const prefix = new Uint8Array(PREFIX_BYTES + json.length);
  const view = new DataView(prefix.buffer);
  prefix.set(MAGIC, 0);
  view.setUint32(8, BACKUP_FORMAT, true);
  view.setUint32(12, json.length, true);
  prefix.set(json, PREFIX_BYTES);
  return prefix;
}

/** The whole file's size for a header and data of these sizes. */
export function backupFileBytes(prefix: Uint8Array, dataBytes: number): number {
  return prefix.length + dataBytes + BACKUP_DIGEST_BYTES;
}

/**
 * The whole file in pieces of at most `chunkBytes`: the prefix, the data, and last the
 * digest, computed as the pieces go, for a writer that waits for its reader between them.
 */
export function* backupFilePieces(prefix: Uint8Array, data: Uint8Array, chunkBytes: number): Generator<Uint8Array> {
  const hash = createHash("sha256");
  hash.update(prefix);
  yield prefix;
  for (let offset = 0; offset < data.length; offset += chunkBytes) {
    const piece = data.subarray(offset, offset + chunkBytes);
    hash.update(piece);
    yield piece;
  }
  yield hash.digest();
}

/**
 * Checks a backup file as its bytes arrive (`update`), holding back the last 32 bytes seen,
 * which are the digest once the stream ends. Memory: the header, until it is complete, and
 * 32 bytes; the data passes through.
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
    if (this.head.length < PREFIX_BYTES + HEADER_BYTES_MAX) this.head = concat(this.head, chunk.subarray(0, PREFIX_BYTES + HEADER_BYTES_MAX - this.head.length));
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
  finish(): { readonly header: BackupHeader; readonly sha256: string } {
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

/** A whole backup file in memory: its header, the state machine's data (a view), and its SHA-256. */
export function readBackup(bytes: Uint8Array, what: string): { readonly header: BackupHeader; readonly data: Uint8Array; readonly sha256: string } {
  const verifier = new BackupVerifier(what);
  verifier.update(bytes);
  const { header, sha256 } = verifier.finish();
  const start = bytes.length - BACKUP_DIGEST_BYTES - header.dataBytes;
  return { header, data: bytes.subarray(start, start + header.dataBytes), sha256 };
}

/** The header from the file's first bytes, or why it cannot be read. */
function parseHeader(head: Uint8Array): { readonly header: BackupHeader; readonly headerBytes: number } | string {
  if (head.length < PREFIX_BYTES) return "is too short for its header";
  const view = new DataView(head.buffer, head.byteOffset, head.length);
  const format = view.getUint32(8, true);
  if (format !== BACKUP_FORMAT) return `is in format ${format}, where this version reads format ${BACKUP_FORMAT}`;
  const headerBytes = view.getUint32(12, true);
  if (headerBytes > HEADER_BYTES_MAX || PREFIX_BYTES + headerBytes > head.length) return `declares a header of ${headerBytes} bytes, more than it holds`;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(PREFIX_BYTES, PREFIX_BYTES + headerBytes)));
  } catch {
    return "has a header that is not JSON";
  }
  const problem = headerProblem(value);
  return problem === null ? { header: value as BackupHeader, headerBytes } : `has a header with ${problem}`;
}

function headerProblem(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "no fields";
  const fields = value as Record<string, unknown>;
  const count = (v: unknown): boolean => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  for (const name of ["index", "term", "revision", "keys", "dataBytes", "nodeId"] as const) if (!count(fields[name])) return `a bad ${name}`;
  if ((fields["index"] as number) < 1) return "index 0 (a backup holds at least one applied entry)";
  for (const name of ["clusterId", "takenAt", "synodVersion"] as const) if (typeof fields[name] !== "string") return `a bad ${name}`;
  if (!Array.isArray(fields["voters"]) || !fields["voters"].every(count)) return "a bad voters list";
  return null;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

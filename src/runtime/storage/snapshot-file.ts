/**
 * Snapshot files: `<16-digit index>-<16-digit term>.snap`, written atomically (temp file,
 * fsync, rename, fsync the directory), holding a 48-byte header and the snapshot's data:
 *
 *   0  "SYNODSNP"          magic, 8 bytes
 *   8  u32 format (2)
 *   12 u32 kind            1 installed from a leader, 2 the node's own
 *   16 f64 index           the last entry the snapshot covers
 *   24 f64 term            that entry's term
 *   32 f64 data length     bytes after the header
 *   40 u32 CRC-32C of the data
 *   44 u32 CRC-32C of bytes 0..43
 *
 * After the header, in format 2: u32 length | the configuration at the snapshot's index
 * (core/engine/membership; length 0: none), then the state machine's data. Both are
 * covered by the data's CRC. Format 1 files (from before membership) hold only the data.
 *
 * The WAL refers to a snapshot by index and term, and is the authority on which snapshot
 * is current and of which kind; the header's kind is informational (a leader's snapshot at
 * the index and term of the node's own replaces the file, and holds the same state).
 */
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { SynodError } from "../../core/common/errors.js";
import type { Snapshot } from "../../core/engine/contract.js";
import { decodeMembership, encodeMembership } from "../../core/engine/membership.js";
import { syncDirectory, writeFileAtomic, writeFileAtomicAsync } from "./atomic-file.js";
import { crc32c } from "./crc32c.js";
import type { SnapshotRef } from "./log-record.js";

const MAGIC = new TextEncoder().encode("SYNODSNP");
const SNAPSHOT_FORMAT = 2;
const SNAPSHOT_FORMAT_WITHOUT_MEMBERSHIP = 1;
export const SNAPSHOT_HEADER_BYTES = 48;
const SNAPSHOT_PATTERN = /^\d{16}-\d{16}\.snap$/;
const KIND_CODES = { installed: 1, own: 2 } as const;

/** A snapshot file the WAL refers to is missing or damaged: the node cannot rebuild its state. */
export class SnapshotFileError extends SynodError {
  readonly file: string;
  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super(
      "snapshot_corrupt",
      `the snapshot file ${file}, which the write-ahead log refers to, ${reason}. Without it this node cannot rebuild its state, ` +
        "so it refuses to start. Restore this node's data directory from a backup, or remove it and let the node rejoin empty from its peers.",
      options,
    );
    this.name = "SnapshotFileError";
    this.file = file;
  }
}

export function snapshotFileName(index: number, term: number): string {
  return `${String(index).padStart(16, "0")}-${String(term).padStart(16, "0")}.snap`;
}

/** The snapshot files in `dir`, by name, oldest index first. */
export function listSnapshotFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => SNAPSHOT_PATTERN.test(name))
    .sort();
}

/** The parts of a snapshot's file: header, configuration section, data. */
function encodeFile(snapshot: Snapshot, kind: SnapshotRef["kind"]): Uint8Array[] {
  const membership = snapshot.membership === undefined ? new Uint8Array(0) : encodeMembership(snapshot.membership);
  const section = new Uint8Array(4 + membership.length);
  new DataView(section.buffer).setUint32(0, membership.length, true);
  section.set(membership, 4);
  return [encodeHeader(snapshot, kind, section), section, snapshot.data];
}

function encodeHeader(snapshot: Snapshot, kind: SnapshotRef["kind"], section: Uint8Array): Uint8Array {
  const header = new Uint8Array(SNAPSHOT_HEADER_BYTES);
  const view = new DataView(header.buffer);
  header.set(MAGIC, 0);
  view.setUint32(8, SNAPSHOT_FORMAT, true);
  view.setUint32(12, KIND_CODES[kind], true);
  view.setFloat64(16, snapshot.index, true);
  view.setFloat64(24, snapshot.term, true);
  view.setFloat64(32, section.length + snapshot.data.length, true);
  view.setUint32(40, crc32c(snapshot.data, crc32c(section)), true);
  view.setUint32(44, crc32c(header.subarray(0, 44)), true);
  return header;
}

/** Writes the snapshot's file in `dir` atomically and durably; returns its path. */
export function writeSnapshotFile(dir: string, snapshot: Snapshot, kind: SnapshotRef["kind"]): string {
  const path = join(dir, snapshotFileName(snapshot.index, snapshot.term));
  writeFileAtomic(path, encodeFile(snapshot, kind));
  return path;
}

/** `writeSnapshotFile` off the event loop (see `writeFileAtomicAsync`); resolves with the path once durable. */
export async function writeSnapshotFileAsync(dir: string, snapshot: Snapshot, kind: SnapshotRef["kind"]): Promise<string> {
  const path = join(dir, snapshotFileName(snapshot.index, snapshot.term));
  await writeFileAtomicAsync(path, encodeFile(snapshot, kind));
  return path;
}

/** Reads and verifies the snapshot `ref` names; throws SnapshotFileError when it is missing or damaged. */
export function readSnapshotFile(dir: string, ref: SnapshotRef): Snapshot {
  const path = join(dir, snapshotFileName(ref.index, ref.term));
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    throw new SnapshotFileError(path, missing ? "is missing" : `cannot be read (${String(error)})`, { cause: error });
  }
  const problem = headerProblem(bytes, ref);
  if (problem !== null) throw new SnapshotFileError(path, problem);
  // Views, not copies: snapshots can be large, and the file's buffer is ours alone.
  const body = new Uint8Array(bytes.buffer, bytes.byteOffset + SNAPSHOT_HEADER_BYTES, bytes.length - SNAPSHOT_HEADER_BYTES);
  const format = new DataView(bytes.buffer, bytes.byteOffset, SNAPSHOT_HEADER_BYTES).getUint32(8, true);
  if (format === SNAPSHOT_FORMAT_WITHOUT_MEMBERSHIP) return { index: ref.index, term: ref.term, data: body };
  const sectionBytes = body.length >= 4 ? new DataView(body.buffer, body.byteOffset, 4).getUint32(0, true) : -1;
  if (sectionBytes < 0 || 4 + sectionBytes > body.length) throw new SnapshotFileError(path, "has a configuration section running past its end");
  const data = body.subarray(4 + sectionBytes);
  if (sectionBytes === 0) return { index: ref.index, term: ref.term, data };
  try {
    return { index: ref.index, term: ref.term, data, membership: decodeMembership(body.subarray(4, 4 + sectionBytes)) };
  } catch (error) {
    throw new SnapshotFileError(path, `has a configuration that does not decode (${(error as Error).message})`, { cause: error });
  }
}

function headerProblem(bytes: Uint8Array, ref: SnapshotRef): string | null {
  if (bytes.length < SNAPSHOT_HEADER_BYTES) return `is ${bytes.length} bytes long, too short for its ${SNAPSHOT_HEADER_BYTES}-byte header`;
  const view = new DataView(bytes.buffer, bytes.byteOffset, SNAPSHOT_HEADER_BYTES);
  if (!MAGIC.every((byte, i) => bytes[i] === byte)) return "does not begin with the snapshot magic bytes";
  if (crc32c(bytes.subarray(0, 44)) !== view.getUint32(44, true)) return "has a header failing its checksum";
  const format = view.getUint32(8, true);
  if (format !== SNAPSHOT_FORMAT && format !== SNAPSHOT_FORMAT_WITHOUT_MEMBERSHIP) return `is in format ${format}, where this version reads formats 1 and ${SNAPSHOT_FORMAT}`;
  const index = view.getFloat64(16, true);
  const term = view.getFloat64(24, true);
  if (index !== ref.index || term !== ref.term) return `holds the snapshot at index ${index}, term ${term}, not ${ref.index}, ${ref.term}`;
  const length = view.getFloat64(32, true);
  if (length !== bytes.length - SNAPSHOT_HEADER_BYTES) return `declares ${length} bytes of data but holds ${bytes.length - SNAPSHOT_HEADER_BYTES}`;
  if (crc32c(bytes.subarray(SNAPSHOT_HEADER_BYTES)) !== view.getUint32(40, true)) return "has data failing its checksum";
  return null;
}

/** Removes every snapshot file in `dir` (if it exists) but those named in `keep`, then fsyncs the directory. Returns the names removed. */
export function removeSnapshotFilesExcept(dir: string, keep: ReadonlySet<string>): string[] {
  if (!existsSync(dir)) return [];
  const removed = listSnapshotFiles(dir).filter((name) => !keep.has(name));
  if (removed.length === 0) return [];
  for (const name of removed) rmSync(join(dir, name));
  syncDirectory(dir);
  return removed;
}

/**
 * The log store's WAL records: a small versioned binary encoding, little-endian. One WAL
 * serves every consensus group of a node, so each record names its group.
 *
 *   u8 format (3) | u8 kind | u32 group | fields
 *
 *   1 hard-state          the engine's hard state, encoded by the caller (the rest of the record)
 *   2 entries             an entry batch (below): Raft append, replacing from its first index
 *   3 checkpoint-begin    u8 snapshot kind (0 none, 1 installed, 2 own) | f64 index | f64 term
 *                         | u8 scope (0 the group's own checkpoint, 1 one of a sweep's)
 *   4 checkpoint-entries  an entry batch, part of the checkpoint's log
 *   5 checkpoint-end      f64 entry count | u8 has hard state | hard state bytes
 *   6 sweep-begin         (no fields) a checkpoint of every group follows
 *   7 sweep-end           u32 the number of groups the sweep held
 *   8 compact             f64 index | f64 term: the group's own snapshot, the log through it dropped
 *   9 drop                (no fields) the group left this node: its log and snapshot are gone
 *
 *   entry batch: u32 count, then per entry f64 index | f64 term | u8 entry kind | u32 length | data
 *     entry kind: 0 a state-machine command, 1 a configuration (the engine's own)
 *
 * A checkpoint (kinds 3-5) holds one group's whole log. A sweep (6, the checkpoint of each
 * group, 7) holds the whole WAL's state; the sweep records carry group 0, which means
 * nothing for them. Formats 1 and 2, written before groups, have no group field (their
 * records are group 0's) and only kinds 1-5; format 1 also lacks the entry kind byte. Both
 * are still read, and a checkpoint in them stands for a sweep (the log had one group).
 *
 * Indexes and terms are f64 because they are JavaScript safe integers (up to 2^53), which
 * u32 would cut short. Decoding is defensive: every length is checked against what is left,
 * every number must be a safe non-negative integer, nothing may trail; a record that passes
 * its CRC but fails here is corruption, which the caller reports with the record's position.
 */
import type { LogEntry } from "../../core/engine/contract.js";
import { DEFAULT_GROUP, type GroupId } from "../../core/multi/group.js";

export const LOG_RECORD_FORMAT = 3;
const LOG_RECORD_FORMAT_WITHOUT_GROUP = 2;
const LOG_RECORD_FORMAT_WITHOUT_ENTRY_KIND = 1;

/** How the store holds a snapshot in the log: by reference to its file, never its data. */
export interface SnapshotRef {
  readonly index: number;
  readonly term: number;
  /** "installed": from a leader, it replaced the log. "own": this node's compaction. */
  readonly kind: "installed" | "own";
}

export type LogRecord =
  | { readonly kind: "hard-state"; readonly hardState: Uint8Array }
  | { readonly kind: "entries"; readonly entries: readonly LogEntry[] }
  /** `sweep`: one of the checkpoints of a sweep, else a group's own (a leader's snapshot installed). */
  | { readonly kind: "checkpoint-begin"; readonly snapshot: SnapshotRef | null; readonly sweep: boolean }
  | { readonly kind: "checkpoint-entries"; readonly entries: readonly LogEntry[] }
  | { readonly kind: "checkpoint-end"; readonly entryCount: number; readonly hardState: Uint8Array | null }
  | { readonly kind: "sweep-begin" }
  | { readonly kind: "sweep-end"; readonly groupCount: number }
  | { readonly kind: "compact"; readonly index: number; readonly term: number }
  | { readonly kind: "drop" };

/** A record as read back: its group, and whether it predates groups (formats 1 and 2). */
export interface DecodedLogRecord {
  readonly record: LogRecord;
  readonly group: GroupId;
  readonly legacy: boolean;
}

const KIND_CODES = { "hard-state": 1, entries: 2, "checkpoint-begin": 3, "checkpoint-entries": 4, "checkpoint-end": 5, "sweep-begin": 6, "sweep-end": 7, compact: 8, drop: 9 } as const;
/** Kinds a record before groups could hold. */
const LEGACY_KIND_MAX = 5;
const SNAPSHOT_KIND_CODES = { installed: 1, own: 2 } as const;
/** Bytes of an entry's fixed part in a batch: index, term, kind, length. */
export const ENTRY_OVERHEAD_BYTES = 8 + 8 + 1 + 4;
/** Bytes before a record's fields: format, kind, group. */
const RECORD_HEADER_BYTES = 1 + 1 + 4;
const BATCH_OVERHEAD_BYTES = RECORD_HEADER_BYTES + 4;

/** A record that passed its checksum but does not decode; the store adds where it was. */
export class LogRecordDecodeError extends Error {
  override readonly name = "LogRecordDecodeError";
}

/** The encoded size of an entry batch record holding `entries`. */
export function entryBatchBytes(entries: readonly LogEntry[]): number {
  let bytes = BATCH_OVERHEAD_BYTES;
  for (const entry of entries) bytes += ENTRY_OVERHEAD_BYTES + entry.data.length;
  return bytes;
}

class Writer {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private offset = 0;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
  u8(value: number): void {
    this.view.setUint8(this.offset, value);
    this.offset += 1;
  }
  u32(value: number): void {
    this.view.setUint32(this.offset, value, true);
    this.offset += 4;
  }
  f64(value: number): void {
    this.view.setFloat64(this.offset, value, true);
    this.offset += 8;
  }
  raw(data: Uint8Array): void {
    this.bytes.set(data, this.offset);
    this.offset += data.length;
  }
  done(): Uint8Array {
    if (this.offset !== this.bytes.length) throw new Error(`encoded ${this.offset} of ${this.bytes.length} bytes`);
    return this.bytes;
  }
}

class Reader {
  private readonly view: DataView;
  private offset = 0;
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(count: number, what: string): void {
    if (this.offset + count > this.bytes.length) throw new LogRecordDecodeError(`${what} runs past the end of the record (${this.bytes.length} bytes)`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.offset++);
  }
  u32(what: string): number {
    this.need(4, what);
    const value = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return value;
  }
  /** A safe non-negative integer stored as f64. */
  integer(what: string): number {
    this.need(8, what);
    const value = this.view.getFloat64(this.offset, true);
    this.offset += 8;
    if (!Number.isSafeInteger(value) || value < 0) throw new LogRecordDecodeError(`${what} is ${value}, not a safe non-negative integer`);
    return value;
  }
  /** A view of the next `count` bytes (the record is the caller's copy, so views are safe to keep). */
  raw(count: number, what: string): Uint8Array {
    this.need(count, what);
    const slice = this.bytes.subarray(this.offset, this.offset + count);
    this.offset += count;
    return slice;
  }
  rest(): Uint8Array {
    return this.raw(this.bytes.length - this.offset, "the rest");
  }
  end(): void {
    if (this.offset !== this.bytes.length) throw new LogRecordDecodeError(`${this.bytes.length - this.offset} bytes trail the record`);
  }
}

function writeBatch(writer: Writer, entries: readonly LogEntry[]): void {
  writer.u32(entries.length);
  for (const entry of entries) {
    writer.f64(entry.index);
    writer.f64(entry.term);
    writer.u8(entry.kind === "config" ? 1 : 0);
    writer.u32(entry.data.length);
    writer.raw(entry.data);
  }
}

function readBatch(reader: Reader, format: number): LogEntry[] {
  const count = reader.u32("the entry count");
  const entries: LogEntry[] = [];
  for (let i = 0; i < count; i++) {
    const index = reader.integer(`entry ${i}'s index`);
    const term = reader.integer(`entry ${i}'s term`);
    const kind = format === LOG_RECORD_FORMAT_WITHOUT_ENTRY_KIND ? 0 : reader.u8(`entry ${i}'s kind`);
    if (kind > 1) throw new LogRecordDecodeError(`entry ${i} has the unknown kind ${kind}`);
    const data = reader.raw(reader.u32(`entry ${i}'s length`), `entry ${i}'s data`);
    entries.push(kind === 1 ? { index, term, data, kind: "config" } : { index, term, data });
  }
  return entries;
}

/** Encodes `record` as one of `group`'s. */
export function encodeLogRecord(record: LogRecord, group: GroupId = DEFAULT_GROUP): Uint8Array {
  const writer = new Writer(recordBytes(record));
  writer.u8(LOG_RECORD_FORMAT);
  writer.u8(KIND_CODES[record.kind]);
  writer.u32(group);
  switch (record.kind) {
    case "hard-state":
      writer.raw(record.hardState);
      break;
    case "entries":
    case "checkpoint-entries":
      writeBatch(writer, record.entries);
      break;
    case "checkpoint-begin":
      writer.u8(record.snapshot === null ? 0 : SNAPSHOT_KIND_CODES[record.snapshot.kind]);
      writer.f64(record.snapshot?.index ?? 0);
      writer.f64(record.snapshot?.term ?? 0);
      writer.u8(record.sweep ? 1 : 0);
      break;
    case "checkpoint-end":
      writer.f64(record.entryCount);
      writer.u8(record.hardState === null ? 0 : 1);
      if (record.hardState !== null) writer.raw(record.hardState);
      break;
    case "sweep-end":
      writer.u32(record.groupCount);
      break;
    case "compact":
      writer.f64(record.index);
      writer.f64(record.term);
      break;
    case "sweep-begin":
    case "drop":
      break;
  }
  return writer.done();
}

function recordBytes(record: LogRecord): number {
  switch (record.kind) {
    case "hard-state":
      return RECORD_HEADER_BYTES + record.hardState.length;
    case "entries":
    case "checkpoint-entries":
      return entryBatchBytes(record.entries);
    case "checkpoint-begin":
      return RECORD_HEADER_BYTES + 1 + 8 + 8 + 1;
    case "checkpoint-end":
      return RECORD_HEADER_BYTES + 8 + 1 + (record.hardState?.length ?? 0);
    case "sweep-end":
      return RECORD_HEADER_BYTES + 4;
    case "compact":
      return RECORD_HEADER_BYTES + 8 + 8;
    case "sweep-begin":
    case "drop":
      return RECORD_HEADER_BYTES;
  }
}

/** Decodes a record, dropping its group; throws LogRecordDecodeError when it is not one this version reads. */
export function decodeLogRecord(payload: Uint8Array): LogRecord {
  return decodeGroupLogRecord(payload).record;
}

/** Decodes a record with its group; throws LogRecordDecodeError when it is not one this version reads. */
export function decodeGroupLogRecord(payload: Uint8Array): DecodedLogRecord {
  const reader = new Reader(payload);
  const format = reader.u8("the format");
  if (format < LOG_RECORD_FORMAT_WITHOUT_ENTRY_KIND || format > LOG_RECORD_FORMAT) {
    throw new LogRecordDecodeError(`format ${format}, where this version reads formats ${LOG_RECORD_FORMAT_WITHOUT_ENTRY_KIND} to ${LOG_RECORD_FORMAT}`);
  }
  const legacy = format <= LOG_RECORD_FORMAT_WITHOUT_GROUP;
  const code = reader.u8("the kind");
  if (legacy && code > LEGACY_KIND_MAX) throw new LogRecordDecodeError(`a record of kind ${code} in format ${format}, which has kinds 1 to ${LEGACY_KIND_MAX} only`);
  const group = legacy ? DEFAULT_GROUP : reader.u32("the group");
  let record: LogRecord;
  switch (code) {
    case KIND_CODES["hard-state"]:
      record = { kind: "hard-state", hardState: reader.rest() };
      break;
    case KIND_CODES.entries:
      record = { kind: "entries", entries: readBatch(reader, format) };
      break;
    case KIND_CODES["checkpoint-begin"]:
      record = { kind: "checkpoint-begin", snapshot: readSnapshotRef(reader), sweep: legacy ? false : readScope(reader) };
      break;
    case KIND_CODES["checkpoint-entries"]:
      record = { kind: "checkpoint-entries", entries: readBatch(reader, format) };
      break;
    case KIND_CODES["checkpoint-end"]: {
      const entryCount = reader.integer("the entry count");
      const hasHardState = reader.u8("the hard-state flag");
      if (hasHardState > 1) throw new LogRecordDecodeError(`a hard-state flag of ${hasHardState}`);
      record = { kind: "checkpoint-end", entryCount, hardState: hasHardState === 1 ? reader.rest() : null };
      break;
    }
    case KIND_CODES["sweep-begin"]:
      record = { kind: "sweep-begin" };
      break;
    case KIND_CODES["sweep-end"]:
      record = { kind: "sweep-end", groupCount: reader.u32("the group count") };
      break;
    case KIND_CODES.compact: {
      const index = reader.integer("the snapshot index");
      const term = reader.integer("the snapshot term");
      if (index === 0) throw new LogRecordDecodeError("a compaction at index 0");
      record = { kind: "compact", index, term };
      break;
    }
    case KIND_CODES.drop:
      record = { kind: "drop" };
      break;
    default:
      throw new LogRecordDecodeError(`an unknown record kind ${code}`);
  }
  reader.end();
  return { record, group, legacy };
}

function readScope(reader: Reader): boolean {
  const scope = reader.u8("the checkpoint's scope");
  if (scope > 1) throw new LogRecordDecodeError(`a checkpoint scope of ${scope}`);
  return scope === 1;
}

function readSnapshotRef(reader: Reader): SnapshotRef | null {
  const kindCode = reader.u8("the snapshot kind");
  const index = reader.integer("the snapshot index");
  const term = reader.integer("the snapshot term");
  if (kindCode === 0) {
    if (index !== 0 || term !== 0) throw new LogRecordDecodeError("no snapshot, yet an index or term");
    return null;
  }
  if (kindCode !== SNAPSHOT_KIND_CODES.installed && kindCode !== SNAPSHOT_KIND_CODES.own) throw new LogRecordDecodeError(`an unknown snapshot kind ${kindCode}`);
  if (index === 0) throw new LogRecordDecodeError("a snapshot at index 0");
  return { index, term, kind: kindCode === SNAPSHOT_KIND_CODES.installed ? "installed" : "own" };
}

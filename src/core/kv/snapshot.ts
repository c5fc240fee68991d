import { assert } from "../common/assert.js";
import { ByteReader, ByteWriter, bytesEqual, compareBytes } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { limits } from "../common/limits.js";
import { utf8Decode, utf8Encode } from "../common/utf8.js";
import { NO_SESSION, type KvMeta, type KvRecord, type KvResult, type KvSession, type TxnOperationResult } from "./model.js";

/**
 * The KV state machine's snapshot format, and the session-result format the LMDB backend
 * stores too. Big-endian:
 *
 *   f64 appliedIndex | f64 revision | u32 recordCount | record... | sessions
 *   record:   u32 keyLength | key | u32 valueLength | value | f64 createRevision | f64 modRevision | f64 version
 *   sessions: u32 0xFFFFFFFF | f64 clockMs | u32 sessionCount | session...
 *   session:  f64 clientId | f64 sequence | result | f64 lastActiveMs
 *   result:   u8 kind | u8 flag | f64 revision   (+ for a transaction: u32 count | u8 per operation;
 *                                                 + for a range delete: f64 deleted)
 *
 * Snapshots written before sessions expired have `u32 sessionCount | session...` there,
 * each session without `lastActiveMs` (read as clock 0, sessions last used at 0); the
 * 0xFFFFFFFF marker, never a real count, tells them apart.
 *
 * Records are in the UTF-8 byte order of their keys and sessions by increasing client id,
 * so equal states give equal bytes on every node and every backend. Decoding validates
 * everything a correct store could not have written (unsorted or repeated keys, revisions
 * out of order, malformed UTF-8) and refuses it with InvalidInputError: a snapshot comes
 * from a peer or a disk, and a bad one must not become this node's state.
 */
export function encodeSnapshot(meta: KvMeta, records: readonly KvRecord[], sessions: readonly KvSession[]): Uint8Array {
  const keys = records.map((record) => utf8Encode(record.key));
  let size = 8 + 8 + 4 + 4 + 8 + 4;
  records.forEach((record, i) => (size += 4 + (keys[i] as Uint8Array).length + 4 + record.value.length + 24));
  for (const session of sessions) size += 8 + sessionValueBytes(session);
  const writer = new ByteWriter(size);
  writer.f64(meta.appliedIndex);
  writer.f64(meta.revision);
  writer.u32(records.length);
  records.forEach((record, i) => {
    writer.bytes(keys[i] as Uint8Array);
    writer.bytes(record.value);
    writer.f64(record.createRevision);
    writer.f64(record.modRevision);
    writer.f64(record.version);
  });
  writer.u32(SESSIONS_V2_MARKER);
  writer.f64(meta.clockMs ?? 0);
  writer.u32(sessions.length);
  for (const session of sessions) {
    writer.f64(session.clientId);
    writeSessionValue(writer, session);
  }
  return writer.finish("KV snapshot");
}

/** Where `decodeSnapshot` hands what it read, in order, as soon as it is validated. */
export interface SnapshotSink {
  record(record: KvRecord): void;
  session(session: KvSession): void;
}

/**
 * Decodes and validates a snapshot, handing each record and session to `sink` in order;
 * returns the meta once the whole snapshot proved valid. Throws InvalidInputError at the
 * first fault, possibly after some records went to `sink` (restore runs it inside one
 * backend transaction, so those are rolled back).
 */
export function decodeSnapshot(bytes: Uint8Array, sink: SnapshotSink): KvMeta {
  const reader = new ByteReader(bytes, "KV snapshot");
  const meta: KvMeta = { appliedIndex: reader.safeInteger(), revision: reader.safeInteger() };
  const recordCount = reader.u32();
  let previousKey: Uint8Array | null = null;
  for (let i = 0; i < recordCount; i++) {
    const keyBytes = reader.bytes(limits.keyBytesMax);
    if (keyBytes.length === 0) throw new InvalidInputError("KV snapshot has an empty key");
    if (previousKey !== null && compareBytes(previousKey, keyBytes) >= 0) throw new InvalidInputError("KV snapshot has keys out of order or repeated");
    previousKey = keyBytes;
    const key = utf8Decode(keyBytes);
    if (!bytesEqual(utf8Encode(key), keyBytes)) throw new InvalidInputError("KV snapshot has a key that is not valid UTF-8");
    const record: KvRecord = { key, value: reader.bytes(limits.valueBytesMax), createRevision: reader.safeInteger(), modRevision: reader.safeInteger(), version: reader.safeInteger() };
    checkRecordRevisions(record, meta.revision);
    sink.record(record);
  }
  let sessionCount = reader.u32();
  const withTimes = sessionCount === SESSIONS_V2_MARKER;
  let clockMs = 0;
  if (withTimes) {
    clockMs = reader.safeInteger();
    sessionCount = reader.u32();
  }
  let previousClient = NO_SESSION;
  for (let i = 0; i < sessionCount; i++) {
    const clientId = reader.safeInteger();
    if (clientId <= previousClient) throw new InvalidInputError("KV snapshot has sessions out of order, repeated, or for client 0");
    previousClient = clientId;
    const session = readSessionValue(reader, clientId, withTimes);
    if ((session.lastActiveMs ?? 0) > clockMs) throw new InvalidInputError("KV snapshot has a session used after the store's clock");
    if ("revision" in session.result && session.result.revision > meta.revision) throw new InvalidInputError("KV snapshot has a session result from a future revision");
    sink.session(session);
  }
  reader.expectEnd();
  return withTimes ? { ...meta, clockMs } : meta;
}

/** Marks a sessions section with the store's clock and each session's last use. */
export const SESSIONS_V2_MARKER = 0xffff_ffff;

/** How many bytes `writeSessionValue` writes. */
export function sessionValueBytes(session: KvSession): number {
  return 8 + sessionResultBytes(session.result) + 8;
}

/** A session without its client id (the LMDB backend's value, and a snapshot's session after the id): f64 sequence | result | f64 lastActiveMs. */
export function writeSessionValue(writer: ByteWriter, session: KvSession): void {
  writer.f64(session.sequence);
  writeSessionResult(writer, session.result);
  writer.f64(session.lastActiveMs ?? 0);
}

/** Reads what `writeSessionValue` wrote; `withTime` false reads the older form without `lastActiveMs`. */
export function readSessionValue(reader: ByteReader, clientId: number, withTime: boolean): KvSession {
  const sequence = reader.safeInteger();
  const result = readSessionResult(reader);
  return withTime ? { clientId, sequence, result, lastActiveMs: reader.safeInteger() } : { clientId, sequence, result };
}

/**
 * 1 <= createRevision <= modRevision <= the store's revision, and 1 <= version <=
 * modRevision - createRevision + 1 (a key changes at most once per revision).
 */
function checkRecordRevisions(record: KvRecord, storeRevision: number): void {
  const { createRevision, modRevision, version } = record;
  if (createRevision < 1 || createRevision > modRevision || modRevision > storeRevision) {
    throw new InvalidInputError(`KV snapshot has a record with revisions out of order (create ${createRevision}, mod ${modRevision}, store ${storeRevision})`);
  }
  if (version < 1 || version > modRevision - createRevision + 1) throw new InvalidInputError(`KV snapshot has a record with an impossible version ${version}`);
}

const RESULT_KINDS = ["put", "delete", "cas", "noop", "rejected", "txn", "delete-prefix"] as const;
/** A transaction operation's result in one byte; a get's record is not kept (see "get-forgotten"). */
const TXN_RESULT_CODES = { put: 0, deleted0: 1, deleted1: 2, get: 3 } as const;

export function sessionResultBytes(result: KvResult): number {
  return 10 + (result.op === "txn" ? 4 + result.results.length : result.op === "delete-prefix" ? 8 : 0);
}

export function writeSessionResult(writer: ByteWriter, result: KvResult): void {
  const kind = RESULT_KINDS.indexOf(result.op as (typeof RESULT_KINDS)[number]);
  assert(kind >= 0, `a ${result.op} result is never kept in a session`);
  writer.u8(kind);
  const flag = result.op === "delete" ? result.deleted : result.op === "cas" || result.op === "txn" ? (result.succeeded ? 1 : 0) : 0;
  writer.u8(flag);
  writer.f64("revision" in result ? result.revision : 0);
  if (result.op === "delete-prefix") writer.f64(result.deleted);
  if (result.op !== "txn") return;
  writer.u32(result.results.length);
  for (const operation of result.results) {
    if (operation.op === "put") writer.u8(TXN_RESULT_CODES.put);
    else if (operation.op === "delete") writer.u8(operation.deleted === 1 ? TXN_RESULT_CODES.deleted1 : TXN_RESULT_CODES.deleted0);
    else writer.u8(TXN_RESULT_CODES.get);
  }
}

/** Reads what `writeSessionResult` wrote, refusing any other bytes (so encoding is canonical). */
export function readSessionResult(reader: ByteReader): KvResult {
  const kind = RESULT_KINDS[reader.u8()];
  const flag = reader.u8();
  const revision = reader.safeInteger();
  if (flag > 1 || (flag === 1 && (kind === "put" || kind === "noop" || kind === "rejected"))) throw new InvalidInputError("KV session result has a bad flag");
  if (revision !== 0 && (kind === "noop" || kind === "rejected")) throw new InvalidInputError("KV session result has a revision it cannot have");
  switch (kind) {
    case "put":
      return { op: "put", revision };
    case "delete":
      return { op: "delete", deleted: flag as 0 | 1, revision };
    case "cas":
      return { op: "cas", succeeded: flag === 1, revision };
    case "noop":
      return { op: "noop" };
    case "rejected":
      return { op: "rejected", reason: "superseded by a newer request from the same client" };
    case "txn":
      return { op: "txn", succeeded: flag === 1, revision, results: readTxnResults(reader, revision) };
    case "delete-prefix":
      if (flag !== 0) throw new InvalidInputError("KV session result has a bad flag");
      return { op: "delete-prefix", deleted: reader.safeInteger(), revision };
    default:
      throw new InvalidInputError("KV session result has an unknown kind");
  }
}

function readTxnResults(reader: ByteReader, revision: number): TxnOperationResult[] {
  const count = reader.u32();
  if (count > limits.txnOpsPerBranchMax) throw new InvalidInputError("KV session result has too many transaction results");
  const results: TxnOperationResult[] = [];
  for (let i = 0; i < count; i++) {
    const code = reader.u8();
    if (code === TXN_RESULT_CODES.put) results.push({ op: "put", revision });
    else if (code === TXN_RESULT_CODES.deleted0 || code === TXN_RESULT_CODES.deleted1) results.push({ op: "delete", deleted: code === TXN_RESULT_CODES.deleted1 ? 1 : 0 });
    else if (code === TXN_RESULT_CODES.get) results.push({ op: "get-forgotten" });
    else throw new InvalidInputError("KV session result has an unknown transaction result");
  }
  return results;
}

/**
 * The LMDB backend's stored values (kv-lmdb.ts has the layout they sit in): the meta, a
 * record and a session, encoded and decoded. Decoding checks what it reads, and names the
 * store in a KvStorageCorruptionError when the bytes are not what a correct store writes.
 */
import { ByteReader } from "../../core/common/bytes.js";
import { InvalidInputError } from "../../core/common/errors.js";
import type { KvMeta, KvRecord, KvSession } from "../../core/kv/model.js";
import { readSessionResult } from "../../core/kv/session-codec.js";
import { KvStorageCorruptionError, KvStorageFormatError, META_FORMAT } from "./kv-lmdb-errors.js";

/** A stored record's numbers before its value: f64 createRevision | f64 modRevision | f64 version. */
export const RECORD_HEADER_BYTES = 24;

/**
 * The meta, in format 3: u8 format | f64 appliedIndex | f64 revision | f64 clockMs | f64
 * compactRevision | f64 purged revision | u32 length | purged key; in format 4 (a range of a
 * sharded node that split or handed out range ids) followed by f64 rangeEpoch | f64
 * nextRangeId; in format 5 (a range born of a split whose history does not hold every
 * record's change) followed by f64 bornAt too; in format 6 (a range that split) followed by
 * f64 bornAt (0 for none) | f64 spanSince. The least format that says everything is written,
 * so a store that is not such a range stays readable by an earlier synod.
 */
export function encodeMeta(meta: KvMeta): Buffer {
  const purgedKey = meta.purged?.afterKey ?? "";
  const keyLength = Buffer.byteLength(purgedKey, "utf8");
  const since = (meta.spanSince ?? 0) !== 0;
  const born = since || (meta.bornAt ?? 0) !== 0;
  const ranged = born || (meta.rangeEpoch ?? 1) !== 1 || (meta.nextRangeId ?? 0) !== 0;
  const stored = Buffer.alloc(45 + keyLength + (ranged ? 16 : 0) + (born ? 8 : 0) + (since ? 8 : 0));
  stored[0] = since ? 6 : born ? 5 : ranged ? 4 : 3;
  if (ranged) {
    stored.writeDoubleBE(meta.rangeEpoch ?? 1, 45 + keyLength);
    stored.writeDoubleBE(meta.nextRangeId ?? 0, 53 + keyLength);
  }
  if (born) stored.writeDoubleBE(meta.bornAt ?? 0, 61 + keyLength);
  if (since) stored.writeDoubleBE(meta.spanSince as number, 69 + keyLength);
  stored.writeDoubleBE(meta.appliedIndex, 1);
  stored.writeDoubleBE(meta.revision, 9);
  stored.writeDoubleBE(meta.clockMs ?? 0, 17);
  stored.writeDoubleBE(meta.compactRevision ?? 0, 25);
  stored.writeDoubleBE(meta.purged?.revision ?? 0, 33);
  stored.writeUInt32BE(keyLength, 41);
  stored.write(purgedKey, 45, "utf8");
  return stored;
}

/** The meta stored (in format 1 to 6), or zeros if none is. */
export function parseMeta(path: string, stored: Buffer | undefined): KvMeta {
  if (stored === undefined) return { appliedIndex: 0, revision: 0, clockMs: 0, compactRevision: 0, purged: { revision: 0, afterKey: "" } };
  if (stored.length >= 1 && (stored[0] as number) > META_FORMAT) throw new KvStorageFormatError(path, stored[0] as number);
  const known = (stored.length === 17 && stored[0] === 1) || (stored.length === 25 && stored[0] === 2) || (stored.length >= 45 && (stored[0] === 3 || stored[0] === 4 || stored[0] === 5 || stored[0] === 6));
  if (!known) throw new KvStorageCorruptionError(path, "the meta record has an unknown format");
  const meta = { appliedIndex: stored.readDoubleBE(1), revision: stored.readDoubleBE(9), clockMs: stored.length >= 25 ? stored.readDoubleBE(17) : 0 };
  if (!isCount(meta.appliedIndex) || !isCount(meta.revision) || !isCount(meta.clockMs)) throw new KvStorageCorruptionError(path, "the meta record holds a bad number");
  if (stored[0] === 1 || stored[0] === 2) return meta;
  const compactRevision = stored.readDoubleBE(25);
  const purgedRevision = stored.readDoubleBE(33);
  const keyLength = stored.readUInt32BE(41);
  const since = stored[0] === 6;
  const born = since || stored[0] === 5;
  const ranged = born || stored[0] === 4;
  if (!isCount(compactRevision) || !isCount(purgedRevision) || compactRevision > meta.revision || stored.length !== 45 + keyLength + (ranged ? 16 : 0) + (born ? 8 : 0) + (since ? 8 : 0)) {
    throw new KvStorageCorruptionError(path, "the meta record's history fields are bad");
  }
  const withHistory = { ...meta, compactRevision, purged: { revision: purgedRevision, afterKey: stored.toString("utf8", 45, 45 + keyLength) } };
  if (!ranged) return withHistory;
  const rangeEpoch = stored.readDoubleBE(45 + keyLength);
  const nextRangeId = stored.readDoubleBE(53 + keyLength);
  if (!isCount(rangeEpoch) || rangeEpoch < 1 || !isCount(nextRangeId)) throw new KvStorageCorruptionError(path, "the meta record's range fields are bad");
  const bornAt = born ? stored.readDoubleBE(61 + keyLength) : 0;
  if (born && (!isCount(bornAt) || (bornAt < 1 && !since) || bornAt > compactRevision)) throw new KvStorageCorruptionError(path, "the meta record's birth revision is bad");
  const spanSince = since ? stored.readDoubleBE(69 + keyLength) : 0;
  if (since && (!isCount(spanSince) || spanSince < 1 || spanSince > meta.appliedIndex)) throw new KvStorageCorruptionError(path, "the meta record's span index is bad");
  return { ...withHistory, ...(rangeEpoch === 1 ? {} : { rangeEpoch }), ...(nextRangeId === 0 ? {} : { nextRangeId }), ...(bornAt === 0 ? {} : { bornAt }), ...(since ? { spanSince } : {}) };
}

/** A record's value: f64 createRevision | f64 modRevision | f64 version | value. */
export function encodeRecord(record: KvRecord): Buffer {
  const stored = Buffer.allocUnsafe(RECORD_HEADER_BYTES + record.value.length);
  stored.writeDoubleBE(record.createRevision, 0);
  stored.writeDoubleBE(record.modRevision, 8);
  stored.writeDoubleBE(record.version, 16);
  stored.set(record.value, RECORD_HEADER_BYTES);
  return stored;
}

export function decodeRecord(path: string, key: string, stored: Uint8Array): KvRecord {
  if (stored.length < RECORD_HEADER_BYTES) throw new KvStorageCorruptionError(path, `the record of ${JSON.stringify(key)} is truncated`);
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  const createRevision = view.getFloat64(0);
  const modRevision = view.getFloat64(8);
  const version = view.getFloat64(16);
  if (!isCount(createRevision) || !isCount(modRevision) || !isCount(version)) throw new KvStorageCorruptionError(path, `the record of ${JSON.stringify(key)} holds a bad number`);
  // A copy: lmdb-js reuses the buffer it read into.
  const value = new Uint8Array(stored.subarray(RECORD_HEADER_BYTES));
  return { key, value, createRevision, modRevision, version };
}

/** A stored session value: f64 sequence | result | f64 lastActiveMs (without the last, if stored before sessions expired). */
export function decodeStoredSession(path: string, clientId: number, stored: Uint8Array): KvSession {
  try {
    const reader = new ByteReader(stored, "KV session");
    const sequence = reader.safeInteger();
    const result = readSessionResult(reader);
    const session: KvSession = reader.atEnd ? { clientId, sequence, result } : { clientId, sequence, result, lastActiveMs: reader.safeInteger() };
    reader.expectEnd();
    return session;
  } catch (error) {
    if (error instanceof InvalidInputError) throw new KvStorageCorruptionError(path, `the session of client ${clientId}: ${error.message}`);
    throw error;
  }
}

function isCount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

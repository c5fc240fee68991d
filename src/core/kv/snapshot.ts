import { assert } from "../common/assert.js";
import { ByteReader, ByteWriter, bytesEqual, compareBytes } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { limits } from "../common/limits.js";
import { utf8Decode, utf8Encode } from "../common/utf8.js";
import { decodeAuthState } from "./auth.js";
import { decodeTxnState } from "./intents.js";
import { readSessionValue, sessionValueBytes, writeSessionValue } from "./session-codec.js";
import { LEASE_LIMITS, NO_SESSION, type KvChange, type KvLease, type KvMeta, type KvRecord, type KvSession } from "./model.js";

/**
 * The KV state machine's snapshot format, and the session-result format the LMDB backend
 * stores too. Big-endian:
 *
 *   f64 appliedIndex | f64 revision | u32 recordCount | record... | sessions | history
 *   record:   u32 keyLength | key | u32 valueLength | value | f64 createRevision | f64 modRevision | f64 version
 *   sessions: u32 0xFFFFFFFE | f64 clockMs | u32 sessionCount | session...
 *   session:  f64 clientId | f64 sequence | result | f64 lastActiveMs
 *   result:   u8 kind | u8 flag | f64 revision   (+ for a transaction: u32 count | u8 per operation;
 *                                                 + for a range delete: f64 deleted;
 *                                                 + for a compaction: f64 compactRevision)
 *   history:  u32 0x4D564343 ("MVCC") | f64 compactRevision | f64 changeCount | change...
 *   change:   f64 revision | u32 keyLength | key | u8 kind
 *             kind 0: a delete; 2: a put that is the key's current record (the record above
 *             says the rest); 1: any other put, followed by f64 createRevision | f64 version
 *             | u32 valueLength | value
 *   leases:   (only when the store holds some) u32 0x4C454153 ("LEAS") | f64 leaseCount | lease...
 *   lease:    f64 id | f64 ttlMs | f64 expiresAtMs | u32 keyCount | (u32 keyLength | key)...
 *             by increasing id, each lease's keys in UTF-8 byte order
 *   auth:     (only once users, roles or auth were ever changed) u32 0x41555448 ("AUTH")
 *             | u32 length | the auth state (src/core/kv/auth.ts)
 *   range:    (only for a range of a sharded node: its span is not every key, it split, or
 *             it handed out range ids) u32 0x52414E47 ("RANG") | u32 length | span start
 *             | u8 has end (0 or 1) | [u32 length | span end] | f64 epoch | f64 nextRangeId
 *   born:     (only for a range born of a split whose history does not hold every record's
 *             change, right after the range section) u32 0x424F524E ("BORN") | f64 bornAt
 *   held:     (only in a range's first state that names its records rather than holding
 *             them: split.ts, `heldFirstState`; right after the range and born sections)
 *             u32 0x48454C44 ("HELD") | u32 parent range | f64 the split's index in its log
 *   txns:     (only once a transaction across ranges was prepared or decided here)
 *             u32 0x54584E53 ("TXNS") | u32 length | the state (src/core/kv/intents.ts)
 *
 * The history holds the changes compaction kept (src/core/kv/history.ts), in (revision,
 * key) order. It includes every current record's own change, which is why those are
 * written as kind 2 rather than a second copy of the value, except in a range born of a
 * split (the born section): there a record last written at or before `bornAt` may have
 * none (history.ts, "Born of a split"). Snapshots written before
 * there was history end after the sessions; a store restored from one starts its history
 * at the snapshot's revision (its records as the changes that made them).
 *
 * Snapshots written before sessions expired have `u32 sessionCount | session...` there,
 * each session without `lastActiveMs` (read as clock 0, sessions last used at 0); those
 * written before there was history have the marker 0xFFFFFFFF and end after the sessions.
 * The markers, never a real count, tell them apart, so a snapshot cut short just before its
 * history is refused rather than read as an old one.
 *
 * Records are in the UTF-8 byte order of their keys and sessions by increasing client id,
 * so equal states give equal bytes on every node and every backend. Decoding validates
 * everything a correct store could not have written (unsorted or repeated keys, revisions
 * out of order, malformed UTF-8) and refuses it with InvalidInputError: a snapshot comes
 * from a peer or a disk, and a bad one must not become this node's state.
 */
export function encodeSnapshot(
  meta: KvMeta,
  records: readonly KvRecord[],
  sessions: readonly KvSession[],
  history?: SnapshotHistory,
  leases: readonly SnapshotLease[] = [],
  auth?: Uint8Array,
  range?: SnapshotRange,
  txnState?: Uint8Array,
): Uint8Array {
  assert((leases.length === 0 && auth === undefined && range === undefined && txnState === undefined) || history !== undefined, "leases, auth, range and transactions are written after a history");
  const keys = records.map((record) => utf8Encode(record.key));
  let size = 8 + 8 + 4 + 4 + 8 + 4;
  records.forEach((record, i) => (size += 4 + (keys[i] as Uint8Array).length + 4 + record.value.length + 24));
  for (const session of sessions) size += 8 + sessionValueBytes(session);
  const modRevisions = new Map(records.map((record) => [record.key, record.modRevision]));
  const changes = (history?.changes ?? []).map((change) => ({ change, key: utf8Encode(change.key), current: modRevisions.get(change.key) === change.revision && change.record !== null }));
  if (history !== undefined) size += 4 + 8 + 8;
  for (const { change, key, current } of changes) size += changeBytes(key.length, change, current);
  const leaseSection = encodeLeases(leases);
  size += leaseSection.length;
  const authSection = encodeAuthSection(auth);
  size += authSection.length;
  const rangeSection = encodeRangeSection(range);
  size += rangeSection.length;
  const txnSection = encodeTxnSection(txnState);
  size += txnSection.length;
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
  writer.u32(history === undefined ? SESSIONS_V2_MARKER : SESSIONS_V3_MARKER);
  writer.f64(meta.clockMs ?? 0);
  writer.u32(sessions.length);
  for (const session of sessions) {
    writer.f64(session.clientId);
    writeSessionValue(writer, session);
  }
  if (history !== undefined) {
    writeHistoryHeader(writer, history.compactRevision, changes.length);
    for (const { change, key, current } of changes) writeChange(writer, key, change, current);
  }
  writer.raw(leaseSection);
  writer.raw(authSection);
  writer.raw(rangeSection);
  writer.raw(txnSection);
  return writer.finish("KV snapshot");
}

/** Opens a snapshot's transactions section. */
export const TXNS_MARKER = 0x5458_4e53;
const TXNS_SECTION_BYTES_MAX = 256 * 1024 * 1024;

/** The transactions section (empty bytes, the section left out, when there is no state). */
export function encodeTxnSection(state: Uint8Array | undefined): Uint8Array {
  if (state === undefined) return new Uint8Array(0);
  const writer = new ByteWriter(8 + state.length);
  writer.u32(TXNS_MARKER);
  writer.bytes(state);
  return writer.finish("KV snapshot transactions");
}

/** A sharded node's range as its snapshot holds it (see the range section above). */
export interface SnapshotRange {
  readonly start: string;
  readonly end: string | null;
  readonly epoch: number;
  readonly nextRangeId: number;
  /** See KvMeta.bornAt; absent for 0. */
  readonly bornAt?: number;
  /** A first state that holds no records: they are in the node's store, where the split of range `parent` at `index` left them (split.ts, `heldFirstState`). */
  readonly held?: { readonly parent: number; readonly index: number };
  /** See KvMeta.spanSince; absent for 0. */
  readonly spanSince?: number;
}

/**
 * The range section of a snapshot (null: it has none), read by decoding the snapshot
 * without keeping anything: the section comes last. Throws InvalidInputError for a
 * snapshot that does not decode.
 */
export function readSnapshotRange(bytes: Uint8Array): SnapshotRange | null {
  const ignore = (): void => undefined;
  return decodeSnapshot(bytes, { record: ignore, session: ignore, change: ignore, lease: ignore }).range ?? null;
}

/** Opens a snapshot's range section. */
export const RANGE_MARKER = 0x5241_4e47;
/** Opens a snapshot's born section, right after its range section. */
export const BORN_MARKER = 0x424f_524e;
/** Opens a snapshot's held section, right after its range and born sections. */
export const HELD_MARKER = 0x4845_4c44;
/** Opens a snapshot's span-since section (KvMeta.spanSince), right after its range, born and held sections. */
export const SINCE_MARKER = 0x5349_4e43;

/**
 * The range section of a store over `span` (absent: every key) at `epoch` that hands out ids
 * from `nextRangeId`; undefined (the section left out) for a store that is not a range of a
 * sharded node, so its snapshots are what they were before ranges.
 */
export function snapshotRangeOf(span: { readonly start: string; readonly end: string | null } | undefined, epoch: number, nextRangeId: number, bornAt = 0, spanSince = 0): SnapshotRange | undefined {
  const start = span?.start ?? "";
  const end = span === undefined ? null : span.end;
  if (start === "" && end === null && epoch === 1 && nextRangeId === 0 && bornAt === 0 && spanSince === 0) return undefined;
  return { start, end, epoch, nextRangeId, ...(bornAt === 0 ? {} : { bornAt }), ...(spanSince === 0 ? {} : { spanSince }) };
}

/** The range section, then the born, held and span-since sections after it when they are set (empty bytes when `range` is undefined: the sections are then left out). */
export function encodeRangeSection(range: SnapshotRange | undefined): Uint8Array {
  if (range === undefined) return new Uint8Array(0);
  const start = utf8Encode(range.start);
  const end = range.end === null ? null : utf8Encode(range.end);
  const born = range.bornAt !== undefined && range.bornAt > 0;
  const since = range.spanSince !== undefined && range.spanSince > 0;
  const writer = new ByteWriter(4 + 4 + start.length + 1 + (end === null ? 0 : 4 + end.length) + 16 + (born ? 12 : 0) + (range.held === undefined ? 0 : 16) + (since ? 12 : 0));
  writer.u32(RANGE_MARKER);
  writer.bytes(start);
  writer.u8(end === null ? 0 : 1);
  if (end !== null) writer.bytes(end);
  writer.f64(range.epoch);
  writer.f64(range.nextRangeId);
  if (born) {
    writer.u32(BORN_MARKER);
    writer.f64(range.bornAt as number);
  }
  if (range.held !== undefined) {
    writer.u32(HELD_MARKER);
    writer.u32(range.held.parent);
    writer.f64(range.held.index);
  }
  if (since) {
    writer.u32(SINCE_MARKER);
    writer.f64(range.spanSince as number);
  }
  return writer.finish("KV snapshot range");
}

function decodeRangeSection(reader: ByteReader): SnapshotRange {
  const text = (bytes: Uint8Array): string => {
    const decoded = utf8Decode(bytes);
    if (!bytesEqual(utf8Encode(decoded), bytes)) throw new InvalidInputError("KV snapshot's range has a bound that is not valid UTF-8");
    return decoded;
  };
  const start = text(reader.bytes(limits.keyBytesMax));
  const hasEnd = reader.u8();
  if (hasEnd > 1) throw new InvalidInputError("KV snapshot's range has a bad end flag");
  const end = hasEnd === 1 ? text(reader.bytes(limits.keyBytesMax)) : null;
  if (end !== null && compareBytes(utf8Encode(start), utf8Encode(end)) >= 0) throw new InvalidInputError("KV snapshot's range ends before it starts");
  const epoch = reader.safeInteger();
  const nextRangeId = reader.safeInteger();
  if (epoch < 1) throw new InvalidInputError("KV snapshot's range has an epoch below 1");
  return { start, end, epoch, nextRangeId };
}

/** Opens a snapshot's auth section: u32 0x41555448 ("AUTH") | u32 length | auth state (src/core/kv/auth.ts). */
export const AUTH_MARKER = 0x4155_5448;
const AUTH_SECTION_BYTES_MAX = 64 * 1024 * 1024;

/** The auth section; empty bytes (the section left out) for a store whose auth state never changed. */
export function encodeAuthSection(state: Uint8Array | undefined): Uint8Array {
  if (state === undefined) return new Uint8Array(0);
  const writer = new ByteWriter(8 + state.length);
  writer.u32(AUTH_MARKER);
  writer.bytes(state);
  return writer.finish("KV snapshot auth");
}

/** A lease as a snapshot holds it: the lease and its keys, in UTF-8 byte order. */
export interface SnapshotLease {
  readonly lease: KvLease;
  readonly keys: readonly string[];
}

/** Opens a snapshot's leases section. */
export const LEASES_MARKER = 0x4c45_4153;

/** The leases section (empty bytes when there are no leases: the section is then left out). */
export function encodeLeases(leases: readonly SnapshotLease[]): Uint8Array {
  if (leases.length === 0) return new Uint8Array(0);
  const encoded = leases.map(({ lease, keys }) => ({ lease, keys: keys.map((key) => utf8Encode(key)) }));
  let size = 4 + 8;
  for (const { keys } of encoded) size += 8 * 3 + 4 + keys.reduce((sum, key) => sum + 4 + key.length, 0);
  const writer = new ByteWriter(size);
  writer.u32(LEASES_MARKER);
  writer.f64(leases.length);
  for (const { lease, keys } of encoded) {
    writer.f64(lease.id);
    writer.f64(lease.ttlMs);
    writer.f64(lease.expiresAtMs);
    writer.u32(keys.length);
    for (const key of keys) writer.bytes(key);
  }
  return writer.finish("KV snapshot leases");
}

/**
 * The leases section: ids strictly increasing, times to live within LEASE_LIMITS, each
 * lease's keys non-empty, valid UTF-8 and strictly increasing. A section with no lease is
 * refused (the encoder leaves it out), so equal states give equal bytes.
 */
function decodeLeases(reader: ByteReader, sink: SnapshotSink): void {
  const count = reader.safeInteger();
  if (count < 1 || count > LEASE_LIMITS.leasesMax) throw new InvalidInputError(`KV snapshot holds ${count} leases; a leases section holds 1 to ${LEASE_LIMITS.leasesMax}`);
  let previousId = 0;
  for (let i = 0; i < count; i++) {
    const lease: KvLease = { id: reader.safeInteger(), ttlMs: reader.safeInteger(), expiresAtMs: reader.safeInteger() };
    if (lease.id <= previousId) throw new InvalidInputError("KV snapshot has leases out of order, repeated, or with id 0");
    previousId = lease.id;
    if (lease.ttlMs < LEASE_LIMITS.ttlMsMin || lease.ttlMs > LEASE_LIMITS.ttlMsMax) throw new InvalidInputError(`KV snapshot has lease ${lease.id} with a time to live of ${lease.ttlMs} ms, out of bounds`);
    const keyCount = reader.u32();
    const keys: string[] = [];
    let previousKey: Uint8Array | null = null;
    for (let k = 0; k < keyCount; k++) {
      const keyBytes = reader.bytes(limits.keyBytesMax);
      if (keyBytes.length === 0) throw new InvalidInputError("KV snapshot attaches an empty key to a lease");
      if (previousKey !== null && compareBytes(previousKey, keyBytes) >= 0) throw new InvalidInputError("KV snapshot has a lease's keys out of order or repeated");
      previousKey = keyBytes;
      const key = utf8Decode(keyBytes);
      if (!bytesEqual(utf8Encode(key), keyBytes)) throw new InvalidInputError("KV snapshot attaches a key that is not valid UTF-8 to a lease");
      keys.push(key);
    }
    sink.lease?.(lease, keys);
  }
}

/** What a snapshot holds of the history: the compaction point and the changes kept, in (revision, key) order. */
export interface SnapshotHistory {
  readonly compactRevision: number;
  readonly changes: readonly KvChange[];
}

/** Opens a snapshot's history section. */
export const HISTORY_MARKER = 0x4d56_4343;
const CHANGE_DELETE = 0;
const CHANGE_PUT = 1;
const CHANGE_CURRENT = 2;

/** The history section's start: marker, compaction point, change count. */
export function writeHistoryHeader(writer: ByteWriter, compactRevision: number, changeCount: number): void {
  writer.u32(HISTORY_MARKER);
  writer.f64(compactRevision);
  writer.f64(changeCount);
}

/** How many bytes `writeChange` writes for a change whose key is `keyBytes` long. */
export function changeBytes(keyBytes: number, change: KvChange, current: boolean): number {
  const head = 8 + 4 + keyBytes + 1;
  return change.record === null || current ? head : head + 8 + 8 + 4 + change.record.value.length;
}

/** One change of the history section; `current`: it is its key's current record (kind 2). */
export function writeChange(writer: ByteWriter, key: Uint8Array, change: KvChange, current: boolean): void {
  writer.f64(change.revision);
  writer.bytes(key);
  if (change.record === null) return writer.u8(CHANGE_DELETE);
  if (current) return writer.u8(CHANGE_CURRENT);
  writer.u8(CHANGE_PUT);
  writer.f64(change.record.createRevision);
  writer.f64(change.record.version);
  writer.bytes(change.record.value);
}

/**
 * A change as a snapshot holds it. A "current" one is its key's current record, which the
 * snapshot gave earlier: the sink looks it up (its `record` is null here).
 */
export interface SnapshotChange {
  readonly key: string;
  readonly revision: number;
  readonly kind: "put" | "delete" | "current";
  /** The put's record; null for a delete and for a "current" change. */
  readonly record: KvRecord | null;
}

/** Where `decodeSnapshot` hands what it read, in order, as soon as it is validated. */
export interface SnapshotSink {
  record(record: KvRecord): void;
  session(session: KvSession): void;
  /**
   * A change of the history, after every record and session. The sink checks what needs the
   * state to check (a "current" change has its record; a change at or below the compaction
   * point is its key's first), throwing InvalidInputError. Absent: changes are only validated.
   */
  change?(change: SnapshotChange, compactRevision: number): void;
  /** A lease and its keys, after the history; the sink checks that its keys have records. */
  lease?(lease: KvLease, keys: readonly string[]): void;
  /** The auth state's bytes (src/core/kv/auth.ts), validated, after the leases. */
  auth?(state: Uint8Array): void;
  /** The transactions' state (src/core/kv/intents.ts), validated, last. */
  txnState?(state: Uint8Array): void;
}

/**
 * Decodes and validates a snapshot, handing each record, session and change to `sink` in
 * order; returns the meta once the whole snapshot proved valid, with `compactRevision` set
 * if it holds a history and absent if it was written before there was one. Throws
 * InvalidInputError at the first fault, possibly after some records went to `sink` (restore
 * runs it inside one backend transaction, so those are rolled back).
 */
/** A snapshot's meta, with its range when it has a range section. */
export type DecodedSnapshot = KvMeta & { readonly range?: SnapshotRange };

export function decodeSnapshot(bytes: Uint8Array, sink: SnapshotSink): DecodedSnapshot {
  const reader = new ByteReader(bytes, "KV snapshot");
  const meta: KvMeta = { appliedIndex: reader.safeInteger(), revision: reader.safeInteger() };
  const recordCount = reader.u32();
  let previousKey: Uint8Array | null = null;
  let firstKey: Uint8Array | null = null;
  // Each record's last write, for the check that the history holds a change for every record it must.
  const modRevisions: number[] = [];
  for (let i = 0; i < recordCount; i++) {
    const keyBytes = reader.bytes(limits.keyBytesMax);
    if (keyBytes.length === 0) throw new InvalidInputError("KV snapshot has an empty key");
    if (previousKey !== null && compareBytes(previousKey, keyBytes) >= 0) throw new InvalidInputError("KV snapshot has keys out of order or repeated");
    previousKey = keyBytes;
    firstKey ??= keyBytes;
    const key = utf8Decode(keyBytes);
    if (!bytesEqual(utf8Encode(key), keyBytes)) throw new InvalidInputError("KV snapshot has a key that is not valid UTF-8");
    const record: KvRecord = { key, value: reader.bytes(limits.valueBytesMax), createRevision: reader.safeInteger(), modRevision: reader.safeInteger(), version: reader.safeInteger() };
    checkRecordRevisions(record, meta.revision);
    modRevisions.push(record.modRevision);
    sink.record(record);
  }
  let sessionCount = reader.u32();
  const withHistory = sessionCount === SESSIONS_V3_MARKER;
  const withTimes = withHistory || sessionCount === SESSIONS_V2_MARKER;
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
  const decoded = withTimes ? { ...meta, clockMs } : meta;
  if (!withHistory) {
    reader.expectEnd();
    return decoded;
  }
  const { compactRevision, currentCount } = decodeHistory(reader, meta.revision, sink);
  let marker = reader.atEnd ? null : reader.u32();
  if (marker === LEASES_MARKER) {
    decodeLeases(reader, sink);
    marker = reader.atEnd ? null : reader.u32();
  }
  if (marker === AUTH_MARKER) {
    const state = reader.bytes(AUTH_SECTION_BYTES_MAX);
    const auth = new ByteReader(state, "KV snapshot's auth state");
    if (decodeAuthState(auth).revision === 0) throw new InvalidInputError("KV snapshot has an auth section with no change in it (the encoder leaves it out)");
    auth.expectEnd();
    sink.auth?.(state);
    marker = reader.atEnd ? null : reader.u32();
  }
  let range: SnapshotRange | undefined;
  if (marker === RANGE_MARKER) {
    range = decodeRangeSection(reader);
    marker = reader.atEnd ? null : reader.u32();
    if (marker === BORN_MARKER) {
      const bornAt = reader.safeInteger();
      if (bornAt < 1 || bornAt > compactRevision) throw new InvalidInputError(`KV snapshot's range was born at revision ${bornAt}: it is from 1 to its compaction point, ${compactRevision}`);
      range = { ...range, bornAt };
      marker = reader.atEnd ? null : reader.u32();
    }
    if (marker === HELD_MARKER) {
      const held = { parent: reader.u32(), index: reader.safeInteger() };
      if (recordCount !== 0) throw new InvalidInputError("KV snapshot is a held first state (its records are where its parent's split left them) yet holds records");
      if (held.index < 1) throw new InvalidInputError("KV snapshot is a held first state with no split index");
      range = { ...range, held };
      marker = reader.atEnd ? null : reader.u32();
    }
    if (marker === SINCE_MARKER) {
      const spanSince = reader.safeInteger();
      if (spanSince < 1 || spanSince > meta.appliedIndex) throw new InvalidInputError(`KV snapshot's range says its span was set at index ${spanSince}: it is from 1 to its applied index, ${meta.appliedIndex}`);
      range = { ...range, spanSince };
      marker = reader.atEnd ? null : reader.u32();
    }
    const outside = (firstKey !== null && compareBytes(firstKey, utf8Encode(range.start)) < 0) || (previousKey !== null && range.end !== null && compareBytes(previousKey, utf8Encode(range.end)) >= 0);
    if (outside) throw new InvalidInputError("KV snapshot has a record outside its range's span");
  }
  if (marker === TXNS_MARKER) {
    const state = reader.bytes(TXNS_SECTION_BYTES_MAX);
    decodeTxnState(state);
    sink.txnState?.(state);
    marker = null;
  }
  if (marker !== null) throw new InvalidInputError("KV snapshot has bytes after its history that are not a leases, an auth, a range or a transactions section");
  reader.expectEnd();
  // Every record has its change in the history, but in a range born of a split those last written at or before its birth.
  const bornAt = range?.bornAt ?? 0;
  let mustHave = 0;
  for (const modRevision of modRevisions) if (modRevision > bornAt) mustHave++;
  if (bornAt === 0 ? currentCount !== recordCount : currentCount < mustHave || currentCount > recordCount) {
    throw new InvalidInputError(`KV snapshot's history has ${currentCount} changes for its ${recordCount} records`);
  }
  return range === undefined ? { ...decoded, compactRevision } : { ...decoded, compactRevision, range };
}

/**
 * The history section: changes in strictly increasing (revision, key) order, none past the
 * store's revision, no delete below the compaction point (compaction drops those), puts with
 * possible revisions, and "current" changes (counted: the caller checks them against the
 * records). Returns the compaction point and that count.
 */
function decodeHistory(reader: ByteReader, storeRevision: number, sink: SnapshotSink): { readonly compactRevision: number; readonly currentCount: number } {
  if (reader.u32() !== HISTORY_MARKER) throw new InvalidInputError("KV snapshot's history section has no history marker");
  const compactRevision = reader.safeInteger();
  if (compactRevision > storeRevision) throw new InvalidInputError(`KV snapshot's compaction point ${compactRevision} is past its revision ${storeRevision}`);
  const changeCount = reader.safeInteger();
  let previous: { revision: number; key: Uint8Array } | null = null;
  let currentCount = 0;
  for (let i = 0; i < changeCount; i++) {
    const revision = reader.safeInteger();
    const keyBytes = reader.bytes(limits.keyBytesMax);
    if (keyBytes.length === 0) throw new InvalidInputError("KV snapshot has a change of an empty key");
    if (revision < 1 || revision > storeRevision) throw new InvalidInputError(`KV snapshot has a change at revision ${revision}, outside 1..${storeRevision}`);
    if (previous !== null && (revision < previous.revision || (revision === previous.revision && compareBytes(previous.key, keyBytes) >= 0))) {
      throw new InvalidInputError("KV snapshot has history changes out of order or repeated");
    }
    previous = { revision, key: keyBytes };
    const key = utf8Decode(keyBytes);
    if (!bytesEqual(utf8Encode(key), keyBytes)) throw new InvalidInputError("KV snapshot has a change of a key that is not valid UTF-8");
    const change = readChangeBody(reader, key, revision, storeRevision);
    if (change.kind === "delete" && revision < compactRevision) throw new InvalidInputError(`KV snapshot has a delete at revision ${revision}, below its compaction point ${compactRevision}`);
    if (change.kind === "current") currentCount++;
    sink.change?.(change, compactRevision);
  }
  return { compactRevision, currentCount };
}

function readChangeBody(reader: ByteReader, key: string, revision: number, storeRevision: number): SnapshotChange {
  const kind = reader.u8();
  if (kind === CHANGE_DELETE) return { key, revision, kind: "delete", record: null };
  if (kind === CHANGE_CURRENT) return { key, revision, kind: "current", record: null };
  if (kind !== CHANGE_PUT) throw new InvalidInputError(`KV snapshot has a change of unknown kind ${kind}`);
  const createRevision = reader.safeInteger();
  const version = reader.safeInteger();
  const record: KvRecord = { key, value: reader.bytes(limits.valueBytesMax), createRevision, modRevision: revision, version };
  checkRecordRevisions(record, storeRevision);
  return { key, revision, kind: "put", record };
}

/** Marks a sessions section with the store's clock and each session's last use. */
export const SESSIONS_V2_MARKER = 0xffff_ffff;
/** As SESSIONS_V2_MARKER, and a history section follows the sessions. */
export const SESSIONS_V3_MARKER = 0xffff_fffe;

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

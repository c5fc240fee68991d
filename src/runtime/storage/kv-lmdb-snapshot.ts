/**
 * The LMDB backend's incremental snapshot builder (`LmdbKvBackend.beginSnapshot` in
 * kv-lmdb.ts says what it promises): it turns what one LMDB read transaction sees into the
 * snapshot format of src/core/kv/snapshot.ts, a few entries per `step`. The records are
 * copied from their stored bytes without decoding them (only reordered: stored, a record's
 * numbers come before its value; in a snapshot, after), then come the sessions, the history
 * changes that compaction keeps, the leases and the auth state.
 */
import { assert } from "../../core/common/assert.js";
import { ByteWriter } from "../../core/common/bytes.js";
import type { KvChange, KvMeta, KvSession } from "../../core/kv/model.js";
import { changeBytes, encodeAuthSection, encodeLeases, encodeRangeSection, encodeTxnSection, type SnapshotRange, SESSIONS_V3_MARKER, writeChange, writeHistoryHeader, type SnapshotLease } from "../../core/kv/snapshot.js";
import { sessionValueBytes, writeSessionValue } from "../../core/kv/session-codec.js";
import { KvStorageCorruptionError } from "./kv-lmdb-errors.js";
import { decodeChange, HistoryCorruption } from "./kv-lmdb-history.js";
import { decodeStoredSession, RECORD_HEADER_BYTES } from "./kv-lmdb-values.js";

/** What a snapshot builder reads of the history, in its read transaction. */
export interface SnapshotHistoryView {
  /** Every stored change, in (revision, key) order. */
  readonly changes: Iterator<{ key: Buffer; value: Buffer }>;
  /** Whether compaction keeps the change (src/core/kv/history.ts). */
  readonly retained: (change: KvChange) => boolean;
  /** The modification revision of the key's record, if it has one. */
  readonly modRevision: (key: string) => number | undefined;
}

/** See `LmdbKvBackend.beginSnapshot`. */
export class LmdbSnapshotBuilder {
  private readonly pieces: Uint8Array[] = [];
  private recordCount = 0;
  private changeCount = 0;
  /** The history section's header (its change count is set at the end); null before the records are done. */
  private historyHeader: Uint8Array | null = null;
  private finished: Uint8Array | null = null;
  private ended = false;

  constructor(
    private readonly path: string,
    /** The state's applied index and revision: what the snapshot is of. */
    readonly meta: KvMeta,
    private readonly records: Iterator<{ key: Buffer; value: Buffer }>,
    private readonly sessions: Iterable<{ key: Buffer; value: Buffer }>,
    private readonly history: SnapshotHistoryView,
    private readonly end: () => void,
    /** The leases and their keys, read in the snapshot's transaction. */
    private readonly leases: () => readonly SnapshotLease[] = () => [],
    /** The auth state's bytes, if it was ever written. */
    private readonly auth?: Uint8Array,
    /** The range section's contents (snapshot.ts), for a range of a sharded node. */
    readonly range?: SnapshotRange,
    /** The transactions' state (src/core/kv/intents.ts), if it was ever written. */
    readonly txnState?: Uint8Array,
  ) {
    const header = new ByteWriter(20);
    header.f64(meta.appliedIndex);
    header.f64(meta.revision);
    header.u32(0); // the record count, set when known
    this.pieces.push(header.buffer);
  }

  /** The applied index the snapshot is of. */
  get index(): number {
    return this.meta.appliedIndex;
  }

  /** Copies up to `recordsMax` more records (or history changes); returns true once the snapshot is complete. */
  step(recordsMax: number): boolean {
    assert(!this.ended, "step of a snapshot that ended");
    try {
      for (let i = 0; i < recordsMax; i++) {
        if (this.historyHeader === null) {
          const next = this.records.next();
          if (next.done === true) this.endRecords();
          else this.copyRecord(next.value.key, next.value.value);
          continue;
        }
        const next = this.history.changes.next();
        if (next.done === true) {
          this.complete();
          return true;
        }
        this.copyChange(next.value.key, next.value.value);
      }
      return false;
    } catch (error) {
      this.abort();
      if (error instanceof HistoryCorruption) throw new KvStorageCorruptionError(this.path, `its history: ${error.message}`);
      throw error;
    }
  }

  /** The snapshot's bytes, once `step` returned true. */
  get data(): Uint8Array {
    assert(this.finished !== null, "the snapshot is not complete");
    return this.finished;
  }

  abort(): void {
    if (this.ended) return;
    this.ended = true;
    this.end();
  }

  private copyRecord(key: Buffer, stored: Buffer): void {
    if (stored.length < RECORD_HEADER_BYTES || key.length < 2) throw new KvStorageCorruptionError(this.path, "a record is truncated");
    // snapshot: u32 keyLength | key | u32 valueLength | value | f64 create | f64 mod | f64 version
    // stored:   f64 create | f64 mod | f64 version | value
    const keyLength = key.length - 1;
    const valueLength = stored.length - RECORD_HEADER_BYTES;
    const out = Buffer.allocUnsafe(4 + keyLength + 4 + valueLength + RECORD_HEADER_BYTES);
    out.writeUInt32BE(keyLength, 0);
    key.copy(out, 4, 1);
    out.writeUInt32BE(valueLength, 4 + keyLength);
    stored.copy(out, 8 + keyLength, RECORD_HEADER_BYTES);
    stored.copy(out, 8 + keyLength + valueLength, 0, RECORD_HEADER_BYTES);
    this.pieces.push(out);
    this.recordCount++;
  }

  /** The records are copied: the sessions follow, then the history section's header. */
  private endRecords(): void {
    // Sessions are few (one per client process, or per concurrent writer), so they are
    // decoded and written in one go, in the snapshot's sessions format (see snapshot.ts).
    const sessions: KvSession[] = [];
    for (const { key, value } of this.sessions) {
      if (key.length !== 9) throw new KvStorageCorruptionError(this.path, "a session key has the wrong length");
      sessions.push(decodeStoredSession(this.path, key.readDoubleBE(1), value));
    }
    let size = 4 + 8 + 4;
    for (const session of sessions) size += 8 + sessionValueBytes(session);
    const writer = new ByteWriter(size);
    writer.u32(SESSIONS_V3_MARKER);
    writer.f64(this.meta.clockMs ?? 0);
    writer.u32(sessions.length);
    for (const session of sessions) {
      writer.f64(session.clientId);
      writeSessionValue(writer, session);
    }
    this.pieces.push(writer.finish("KV snapshot sessions"));
    const header = new ByteWriter(4 + 8 + 8);
    writeHistoryHeader(header, this.meta.compactRevision ?? 0, 0); // the change count, set when known
    this.historyHeader = header.finish("KV snapshot history header");
    this.pieces.push(this.historyHeader);
  }

  /** One stored change, if compaction keeps it, in the snapshot's change format (snapshot.ts). */
  private copyChange(key: Buffer, stored: Buffer): void {
    const change = decodeChange(key, stored);
    if (!this.history.retained(change)) return;
    const current = change.record !== null && this.history.modRevision(change.key) === change.revision;
    const keyBytes = key.subarray(9);
    const writer = new ByteWriter(changeBytes(keyBytes.length, change, current));
    writeChange(writer, keyBytes, change, current);
    this.pieces.push(writer.finish("KV snapshot change"));
    this.changeCount++;
  }

  private complete(): void {
    // Leases are few beside records: read whole, before the read transaction ends.
    this.pieces.push(encodeLeases(this.leases()));
    this.pieces.push(encodeAuthSection(this.auth));
    this.pieces.push(encodeRangeSection(this.range));
    this.pieces.push(encodeTxnSection(this.txnState));
    this.abort();
    assert(this.historyHeader !== null, "the history follows the records");
    new DataView((this.pieces[0] as Uint8Array).buffer).setUint32(16, this.recordCount);
    new DataView(this.historyHeader.buffer, this.historyHeader.byteOffset).setFloat64(12, this.changeCount);
    this.finished = Buffer.concat(this.pieces);
    this.pieces.length = 0;
  }
}

/**
 * `GET /v1/snapshot`: a backup of the state machine, taken from whichever member is asked,
 * for `synod snapshot save` (the file format is storage/backup-file.ts).
 *
 * Consistency. By default the member first passes a linearizable read barrier (the leader's
 * read index, confirmed by a quorum, then applied here), and only then opens the state: the
 * backup holds every write acknowledged before the request, whichever member serves it. Any
 * member can therefore serve it, so the leader need not bear the copy. `?consistency=stale`
 * skips the barrier: the member's state as it is, for taking a backup from a survivor when
 * the quorum is lost (the answer's header says which index it holds).
 *
 * A sharded cluster (format 2): every range the node hosts, in key order, one after the
 * other, each after its own read barrier. Each range's state is consistent in itself, and
 * holds every write acknowledged in it before the request; the ranges are read one after
 * the other, not at one instant, so the backup is not one snapshot across ranges (a
 * transaction across ranges that commits while the backup is read may be in it for one
 * range and not another). Two rules keep it restorable:
 * - No range is read while it holds a transaction across ranges prepared and not resolved
 *   (an intent): its outcome may be decided in a range read before it, or after, and a
 *   restored intent could resolve the other way. The read waits for the intents to resolve
 *   (they do within a few seconds, or a recovery aborts them), up to INTENTS_WAIT_MS, then
 *   the backup fails with 503 and may be asked again.
 * - The ranges read must cover the key space once (a split between two reads would leave
 *   keys out, or in twice): read again, up to COVER_ATTEMPTS_MAX times, else 503.
 *
 * Cost. Each range's state is read from one LMDB read transaction (a consistent view while
 * entries keep applying), a few hundred records per event-loop turn as the node's own
 * snapshots are, into memory; then the transaction ends. Once every range is read the
 * bytes are streamed out, waiting for the client between chunks. Holding the bytes, not the
 * transactions, while a slow client downloads keeps LMDB free to reuse its pages; the
 * memory is the whole backup's size, as for one range. One backup at a time per node: a
 * second request meanwhile gets 503 and may ask another member.
 */
import type { ServerResponse } from "node:http";
import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";
import { assert } from "../../core/common/assert.js";
import { NotLeaderError, OverloadedError } from "../../core/common/errors.js";
import type { Membership } from "../../core/engine/contract.js";
import { decodeTxnState } from "../../core/kv/intents.js";
import type { SnapshotRange } from "../../core/kv/snapshot.js";
import type { GroupId } from "../../core/multi/group.js";
import { compareUtf8 } from "../../core/common/utf8.js";
import { backupFileBytes, backupFilePieces, encodeBackupPrefix, isShardedBackup, type AnyBackupHeader, type RangeBackupHeader } from "../storage/backup-file.js";
import type { SnapshotBuilder } from "../../core/replica/contract.js";
import { StoppedError, type ReadConsistency } from "./driver.js";

/** Records copied per event-loop turn (as the driver's snapshots: about a millisecond each). */
const RECORDS_PER_TURN = 500;
/** Bytes handed to the socket at a time; the next waits for the socket to drain. */
const CHUNK_BYTES = 1024 * 1024;
/** A state opened below the read barrier's index is retried this often (see `open`). */
const OPEN_ATTEMPTS_MAX = 10;
/** How long a range's read waits for its transactions across ranges to resolve (a recovery aborts one within seconds). */
export const INTENTS_WAIT_MS = 10_000;
/** How often a range holding intents is looked at again. */
const INTENTS_POLL_MS = 10;
/** How many times the ranges are read again when a split made them miss or repeat keys. */
const COVER_ATTEMPTS_MAX = 3;

/** A backup ready to send; `release` frees the node's backup slot once it is sent (or abandoned). */
export interface Backup {
  readonly header: AnyBackupHeader;
  readonly prefix: Uint8Array;
  /** The data: each range's snapshot, in the header's order (one for a cluster of one range). */
  readonly parts: readonly Uint8Array[];
  release(): void;
}

/** A view of a range's state, with what the snapshot will say of its span and transactions. */
export type BackupBuilder = SnapshotBuilder & {
  readonly meta: { readonly appliedIndex: number; readonly revision: number };
  /** The range section (snapshot.ts): absent for a store over every key that never split. */
  readonly range?: SnapshotRange | undefined;
  /** The transactions' state (intents and outcomes), if it was ever written. */
  readonly txnState?: Uint8Array | undefined;
};

/** One range (consensus group) this node hosts, as a backup reads it. */
export interface RangeBackupSource {
  readonly id: GroupId;
  /** Resolves once this node's replica of the range may serve a read at `consistency`. */
  readonly read: (consistency: ReadConsistency) => Promise<void>;
  /** The index the range's state machine has applied. */
  readonly applied: () => number;
  /** Opens a consistent view of the range's state machine at its applied index. */
  readonly beginSnapshot: () => BackupBuilder;
  readonly entryTerm: (index: number) => number | null;
  readonly membershipAt: (index: number) => Membership | undefined;
}

export interface BackupSourceOptions {
  /**
   * The ranges to back up: group 0 alone for a cluster of one range (a format 1 file);
   * every range this node hosts for a sharded one (format 2).
   */
  readonly ranges: () => readonly RangeBackupSource[];
  /** The ranges the cluster started with (`--shards`); above 1, the cluster is sharded. */
  readonly shards: number;
  readonly clusterId: string;
  readonly nodeId: number;
  readonly version: string;
  /** How long a range's read waits for its intents to resolve (default INTENTS_WAIT_MS; tests shorten it). */
  readonly intentsWaitMs?: number;
}

/** One range's state, read. */
interface RangeRead {
  readonly header: RangeBackupHeader;
  readonly data: Uint8Array;
}

/** Takes backups of one node's state machines, one at a time. */
export class BackupSource {
  private busy = false;
  private stopped = false;

  constructor(private readonly options: BackupSourceOptions) {}

  /**
   * A backup at or after every write acknowledged before the call (unless `stale`). Throws
   * OverloadedError while another is taken, or when a sharded cluster's ranges would not
   * settle (see the file comment).
   */
  async take(consistency: ReadConsistency): Promise<Backup> {
    if (this.stopped) throw new StoppedError();
    if (this.busy) throw new OverloadedError("a backup is being taken on this node already; retry when it is done, or ask another member");
    this.busy = true;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.busy = false;
    };
    try {
      const backup = this.options.shards > 1 ? await this.takeSharded(consistency) : await this.takeSingle(consistency);
      return { ...backup, prefix: encodeBackupPrefix(backup.header), release };
    } catch (error) {
      release();
      throw error;
    }
  }

  /** The node is stopping: a backup being built ends (its read transaction must end before the store closes). */
  stop(): void {
    this.stopped = true;
  }

  private async takeSingle(consistency: ReadConsistency): Promise<{ header: AnyBackupHeader; parts: Uint8Array[] }> {
    const [source] = this.options.ranges();
    assert(source !== undefined, "a node hosts group 0");
    await source.read(consistency);
    const { header, data } = await this.build(source, await this.open(source, source.applied()));
    const { index, term, revision, keys, dataBytes, voters } = header;
    const { clusterId, nodeId, version } = this.options;
    return { header: { index, term, revision, keys, dataBytes, clusterId, nodeId, voters, takenAt: new Date().toISOString(), synodVersion: version }, parts: [data] };
  }

  private async takeSharded(consistency: ReadConsistency): Promise<{ header: AnyBackupHeader; parts: Uint8Array[] }> {
    let problem = "";
    for (let attempt = 0; attempt < COVER_ATTEMPTS_MAX; attempt++) {
      const takenAt = new Date().toISOString();
      const reads: RangeRead[] = [];
      for (const source of this.options.ranges()) {
        await source.read(consistency);
        const floorIndex = source.applied();
        reads.push(await this.build(source, await this.openSettled(source, floorIndex)));
      }
      reads.sort((a, b) => compareUtf8(a.header.start, b.header.start));
      const uncovered = coverageProblem(reads.map((read) => read.header), this.options.shards);
      if (uncovered === null) {
        const ranges = reads.map((read) => read.header);
        const { clusterId, nodeId, version, shards } = this.options;
        const keys = ranges.reduce((sum, range) => sum + range.keys, 0);
        const dataBytes = ranges.reduce((sum, range) => sum + range.dataBytes, 0);
        return { header: { shards, ranges, keys, dataBytes, clusterId, nodeId, takenAt, synodVersion: version }, parts: reads.map((read) => read.data) };
      }
      problem = uncovered;
    }
    throw new OverloadedError(`the ranges changed while the backup read them, ${COVER_ATTEMPTS_MAX} times (${problem}: a split); retry`);
  }

  /**
   * A view of the state at or after `floorIndex`. lmdb-js shares one read transaction
   * between readers until the next turn, so a view opened in the turn of a write may predate
   * it: that one is dropped and the next turn's taken.
   */
  private async open(source: RangeBackupSource, floorIndex: number): Promise<BackupBuilder> {
    for (let attempt = 0; attempt < OPEN_ATTEMPTS_MAX; attempt++) {
      const builder = source.beginSnapshot();
      if (builder.meta.appliedIndex >= floorIndex) return builder;
      builder.abort();
      await nextTurn();
    }
    throw new OverloadedError(`could not open the state at or after index ${floorIndex}; retry`);
  }

  /** `open`, of a view that holds no transaction across ranges prepared and not resolved (see the file comment). */
  private async openSettled(source: RangeBackupSource, floorIndex: number): Promise<BackupBuilder> {
    const waitMs = this.options.intentsWaitMs ?? INTENTS_WAIT_MS;
    const deadlineMs = Date.now() + waitMs;
    for (;;) {
      const builder = await this.open(source, floorIndex);
      const intents = builder.txnState === undefined ? 0 : decodeTxnState(builder.txnState).intents.length;
      if (intents === 0) return builder;
      builder.abort();
      if (this.stopped) throw new StoppedError();
      if (Date.now() > deadlineMs) {
        throw new OverloadedError(`range ${source.id} has held ${intents} transaction${intents === 1 ? "" : "s"} across ranges prepared and not resolved for ${waitMs / 1000} s; a backup holds none: retry once they resolve`);
      }
      await sleep(INTENTS_POLL_MS);
    }
  }

  private async build(source: RangeBackupSource, builder: BackupBuilder): Promise<RangeRead> {
    try {
      const index = builder.meta.appliedIndex;
      // A node that applied nothing has never seen a leader commit; its state is no backup.
      if (index < 1) throw new NotLeaderError(null);
      const term = source.entryTerm(index);
      assert(term !== null, `no term for the applied index ${index} of range ${source.id}`);
      const voters = source.membershipAt(index)?.voters ?? [];
      const span = builder.range ?? { start: "", end: null, epoch: 1 };
      while (!builder.step(RECORDS_PER_TURN)) {
        await nextTurn();
        if (this.stopped) throw new StoppedError();
      }
      const data = builder.data;
      // The state machine's snapshot begins f64 appliedIndex | f64 revision | u32 record count (big-endian, core/kv/snapshot.ts).
      const view = new DataView(data.buffer, data.byteOffset, data.length);
      assert(view.getFloat64(0) === index && view.getFloat64(8) === builder.meta.revision, "a backup's data is of the state its header names");
      const header: RangeBackupHeader = {
        id: source.id,
        start: span.start,
        end: span.end,
        epoch: span.epoch,
        index,
        term,
        revision: builder.meta.revision,
        keys: view.getUint32(16),
        dataBytes: data.length,
        voters: [...voters],
      };
      return { header, data };
    } catch (error) {
      builder.abort();
      throw error;
    }
  }
}

/** Why ranges, in key order, do not cover the key space once, with every range the cluster started with; null if they do. */
function coverageProblem(ranges: readonly RangeBackupHeader[], shards: number): string | null {
  let previousEnd: string | null = "";
  for (const range of ranges) {
    if (previousEnd === null || range.start !== previousEnd) return `range ${range.id} starts at ${JSON.stringify(range.start)}, where the range before it ends at ${JSON.stringify(previousEnd)}`;
    previousEnd = range.end;
  }
  if (previousEnd !== null) return `the last range ends at ${JSON.stringify(previousEnd)}`;
  const ids = new Set(ranges.map((range) => range.id));
  for (let id = 0; id < shards; id++) if (!ids.has(id)) return `range ${id} is missing`;
  return null;
}

/**
 * Streams a backup as the answer: its index, term, revision and key count in headers, the
 * file's bytes as the body, a chunk at a time as the client takes them. A client that goes
 * away ends it. The backup's slot is released however it ends.
 */
export async function sendBackup(backup: Backup, response: ServerResponse): Promise<void> {
  try {
    const { header } = backup;
    const described = isShardedBackup(header)
      ? { "content-disposition": `attachment; filename="synod-${header.clusterId}-${header.ranges.length}-ranges.snap"`, "x-synod-snapshot-ranges": header.ranges.length }
      : {
          "content-disposition": `attachment; filename="synod-${header.clusterId}-${header.index}.snap"`,
          "x-synod-snapshot-index": header.index,
          "x-synod-snapshot-term": header.term,
          "x-synod-snapshot-revision": header.revision,
        };
    response.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": backupFileBytes(backup.prefix, header.dataBytes),
      ...described,
      "x-synod-snapshot-keys": header.keys,
    });
    for (const piece of backupFilePieces(backup.prefix, backup.parts, CHUNK_BYTES)) {
      if (response.destroyed) return;
      if (!response.write(piece)) await drainedOrClosed(response);
    }
    response.end();
  } finally {
    backup.release();
  }
}

function drainedOrClosed(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      response.off("drain", done);
      response.off("close", done);
      resolve();
    };
    response.once("drain", done);
    response.once("close", done);
  });
}

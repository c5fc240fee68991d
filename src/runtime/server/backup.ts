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
 * Cost. The state is read from one LMDB read transaction (a consistent view while entries
 * keep applying), a few hundred records per event-loop turn as the node's own snapshots
 * are, into memory; then the transaction ends and the bytes are streamed out, waiting for
 * the client between chunks. Holding the bytes, not the transaction, while a slow client
 * downloads keeps LMDB free to reuse its pages. One backup at a time per node: a second
 * request meanwhile gets 503 and may ask another member.
 */
import type { ServerResponse } from "node:http";
import { setImmediate as nextTurn } from "node:timers/promises";
import { assert } from "../../core/common/assert.js";
import { NotLeaderError, OverloadedError } from "../../core/common/errors.js";
import type { Membership } from "../../core/engine/contract.js";
import { backupFileBytes, backupFilePieces, encodeBackupPrefix, type BackupHeader } from "../storage/backup-file.js";
import type { SnapshotBuilder } from "../../core/replica/contract.js";
import { StoppedError, type ReadConsistency } from "./driver.js";

/** Records copied per event-loop turn (as the driver's snapshots: about a millisecond each). */
const RECORDS_PER_TURN = 500;
/** Bytes handed to the socket at a time; the next waits for the socket to drain. */
const CHUNK_BYTES = 1024 * 1024;
/** A state opened below the read barrier's index is retried this often (see `open`). */
const OPEN_ATTEMPTS_MAX = 10;

/** A backup ready to send; `release` frees the node's backup slot once it is sent (or abandoned). */
export interface Backup {
  readonly header: BackupHeader;
  readonly prefix: Uint8Array;
  readonly data: Uint8Array;
  release(): void;
}

export interface BackupSourceOptions {
  /** Resolves once this node's state machine may serve a read at `consistency`. */
  readonly read: (consistency: ReadConsistency) => Promise<void>;
  /** The index the state machine has applied. */
  readonly applied: () => number;
  /** Opens a consistent view of the state machine at its applied index. */
  readonly beginSnapshot: () => SnapshotBuilder & { readonly meta: { readonly appliedIndex: number; readonly revision: number } };
  readonly entryTerm: (index: number) => number | null;
  readonly membershipAt: (index: number) => Membership | undefined;
  readonly clusterId: string;
  readonly nodeId: number;
  readonly version: string;
}

/** Takes backups of one node's state machine, one at a time. */
export class BackupSource {
  private busy = false;
  private stopped = false;

  constructor(private readonly options: BackupSourceOptions) {}

  /** A backup at or after every write acknowledged before the call (unless `stale`). Throws OverloadedError while another is taken. */
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
      await this.options.read(consistency);
      const builder = await this.open(this.options.applied());
      const { header, data } = await this.build(builder);
      return { header, prefix: encodeBackupPrefix(header), data, release };
    } catch (error) {
      release();
      throw error;
    }
  }

  /** The node is stopping: a backup being built ends (its read transaction must end before the store closes). */
  stop(): void {
    this.stopped = true;
  }

  /**
   * A view of the state at or after `floorIndex`. lmdb-js shares one read transaction
   * between readers until the next turn, so a view opened in the turn of a write may predate
   * it: that one is dropped and the next turn's taken.
   */
  private async open(floorIndex: number): Promise<ReturnType<BackupSourceOptions["beginSnapshot"]>> {
    for (let attempt = 0; attempt < OPEN_ATTEMPTS_MAX; attempt++) {
      const builder = this.options.beginSnapshot();
      if (builder.meta.appliedIndex >= floorIndex) return builder;
      builder.abort();
      await nextTurn();
    }
    throw new OverloadedError(`could not open the state at or after index ${floorIndex}; retry`);
  }

  private async build(builder: ReturnType<BackupSourceOptions["beginSnapshot"]>): Promise<{ header: BackupHeader; data: Uint8Array }> {
    try {
      const index = builder.meta.appliedIndex;
      // A node that applied nothing has never seen a leader commit; its state is no backup.
      if (index < 1) throw new NotLeaderError(null);
      const term = this.options.entryTerm(index);
      assert(term !== null, `no term for the applied index ${index}`);
      const voters = this.options.membershipAt(index)?.voters ?? [];
      while (!builder.step(RECORDS_PER_TURN)) {
        await nextTurn();
        if (this.stopped) throw new StoppedError();
      }
      const data = builder.data;
      // The state machine's snapshot begins f64 appliedIndex | f64 revision | u32 record count (big-endian, core/kv/snapshot.ts).
      const view = new DataView(data.buffer, data.byteOffset, data.length);
      assert(view.getFloat64(0) === index && view.getFloat64(8) === builder.meta.revision, "a backup's data is of the state its header names");
      const header: BackupHeader = {
        index,
        term,
        revision: builder.meta.revision,
        keys: view.getUint32(16),
        dataBytes: data.length,
        clusterId: this.options.clusterId,
        nodeId: this.options.nodeId,
        voters: [...voters],
        takenAt: new Date().toISOString(),
        synodVersion: this.options.version,
      };
      return { header, data };
    } catch (error) {
      builder.abort();
      throw error;
    }
  }
}

/**
 * Streams a backup as the answer: its index, term, revision and key count in headers, the
 * file's bytes as the body, a chunk at a time as the client takes them. A client that goes
 * away ends it. The backup's slot is released however it ends.
 */
export async function sendBackup(backup: Backup, response: ServerResponse): Promise<void> {
  try {
    const { header } = backup;
    response.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": backupFileBytes(backup.prefix, backup.data.length),
      "content-disposition": `attachment; filename="synod-${header.clusterId}-${header.index}.snap"`,
      "x-synod-snapshot-index": header.index,
      "x-synod-snapshot-term": header.term,
      "x-synod-snapshot-revision": header.revision,
      "x-synod-snapshot-keys": header.keys,
    });
    for (const piece of backupFilePieces(backup.prefix, backup.data, CHUNK_BYTES)) {
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

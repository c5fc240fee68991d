import { assert } from "../common/assert.js";
import type { Membership, Snapshot } from "../engine/contract.js";
import type { SnapshotChunk } from "./messages.js";

/** A snapshot a follower is receiving, chunk by chunk. */
interface IncomingSnapshot {
  readonly leaderTerm: number;
  readonly index: number;
  readonly term: number;
  readonly size: number;
  readonly chunks: Uint8Array[];
  readonly membership: Membership | undefined;
  received: number;
}

/**
 * A follower's side of a leader's snapshot sent in chunks (section 7, Figure 13's `offset`
 * and `done`): it keeps the chunks of one snapshot in order and hands out the whole once the
 * last arrives. The leader sends one chunk at a time and resends from the offset this side
 * reports, so a lost chunk, a duplicate or a restart on either side costs a resend, not the
 * transfer. The configuration travels with the first chunk only.
 */
export class SnapshotReceiver {
  private incoming: IncomingSnapshot | null = null;

  /** Forgets the snapshot being received (the node already has what it holds). */
  abandon(): void {
    this.incoming = null;
  }

  /**
   * Takes a chunk of a leader of `chunk.term`. Returns the whole snapshot once its last
   * chunk arrived; the number of bytes received so far — where the leader is to resume —
   * when more is needed or the chunk was out of order (a duplicate, or one after a lost
   * chunk); null to ignore a late chunk of an older snapshot from the same leader, which
   * must not wipe the transfer in progress.
   */
  receive(chunk: SnapshotChunk): Snapshot | number | null {
    let incoming = this.incoming;
    // A chunk declaring another size belongs to another transfer (a broken peer's, if nothing
    // else): taken as the same, it could overrun the size the first chunk declared.
    const same = incoming !== null && incoming.leaderTerm === chunk.term && incoming.index === chunk.index && incoming.term === chunk.snapshotTerm && incoming.size === chunk.size;
    if (!same && incoming !== null && incoming.leaderTerm === chunk.term && chunk.index < incoming.index) return null;
    if (!same) {
      incoming = null;
      this.incoming = null;
      if (chunk.offset === 0) {
        incoming = { leaderTerm: chunk.term, index: chunk.index, term: chunk.snapshotTerm, size: chunk.size, chunks: [], membership: chunk.membership, received: 0 };
        this.incoming = incoming;
      }
    }
    if (incoming === null || chunk.offset !== incoming.received) return incoming?.received ?? 0;
    assert(incoming.received + chunk.chunk.length <= incoming.size, `snapshot chunk overruns the snapshot's size ${incoming.size}`);
    incoming.chunks.push(chunk.chunk);
    incoming.received += chunk.chunk.length;
    if (incoming.received < incoming.size) return incoming.received;
    this.incoming = null;
    const data = new Uint8Array(incoming.size);
    let at = 0;
    for (const piece of incoming.chunks) {
      data.set(piece, at);
      at += piece.length;
    }
    return incoming.membership === undefined ? { index: incoming.index, term: incoming.term, data } : { index: incoming.index, term: incoming.term, data, membership: incoming.membership };
  }
}

import { assert } from "../common/assert.js";
import type { Snapshot } from "../engine/contract.js";

/**
 * What a leader knows about one follower (thesis 10.2 / etcd-io/raft's Progress):
 * - probe: the leader does not know where the follower's log matches; it sends one append
 *   at a time and waits for the answer;
 * - replicate: it knows; it streams appends optimistically, up to a window in flight;
 * - snapshot: the follower needs entries the leader has compacted away, so it is sent the
 *   leader's snapshot, one chunk at a time, and nothing else until it acknowledges it.
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  /** Highest index known to be replicated on the follower. */
  match = 0;
  /** Next index to send. */
  next: number;
  state: ProgressState = "probe";
  /** In probe state: an append is outstanding, so wait for its answer or a heartbeat. */
  probeSent = false;
  /** The highest commit index sent to this follower in an append. */
  sentCommit = 0;
  /** The leader's tick of the last empty append probing this follower's tail. */
  tailProbeTick = -1;
  /** The last index sent when the follower last answered a heartbeat (to spot a stalled pipeline). */
  sentAtLastHeartbeat = 0;
  /** The leader's tick at which it sent the latest heartbeat this follower acknowledged (leases). */
  leaseAckTick = Number.NEGATIVE_INFINITY;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Heard from in the CheckQuorum round before: with recentActive, heard from within one or two election timeouts. */
  activeRoundBefore = false;
  readonly inflight: Inflight;
  /** In snapshot state: the snapshot being sent ... */
  snapshot: Snapshot | null = null;
  /** ... how many of its bytes the follower has acknowledged ... */
  snapshotAcked = 0;
  /** ... whether a chunk is unanswered, and for how many ticks. */
  snapshotChunkInFlight = false;
  snapshotStallTicks = 0;
  /** Chunks resent since the follower last answered: a follower that stops answering stops holding compaction. */
  snapshotResends = 0;
  /**
   * The least index of a snapshot the follower can take (it takes no entries until it has
   * one: AppendResponse.snapshotFrom); 0 when it takes the log.
   */
  snapshotWanted = 0;
  /**
   * The index of the configuration entry that made the follower a member (the snapshot's
   * index when it was one before). A node removed from a group, its replica dropped, and
   * added back hosts a new replica that holds nothing, while acknowledgements its earlier
   * replica sent may still arrive (delayed, duplicated): that replica never held this entry
   * (it would not have been dropped), so a match below it may be one it acknowledged. Such
   * a match promotes no learner, and is forgotten when the follower says it lacks it.
   */
  addedAt = 0;

  constructor(next: number, inflightMessagesMax: number, inflightBytesMax: number) {
    this.next = next;
    this.inflight = new Inflight(inflightMessagesMax, inflightBytesMax);
  }

  becomeProbe(): void {
    this.state = "probe";
    this.snapshot = null;
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflight.reset();
  }

  becomeSnapshot(snapshot: Snapshot): void {
    this.state = "snapshot";
    this.snapshot = snapshot;
    this.snapshotAcked = 0;
    this.snapshotChunkInFlight = false;
    this.snapshotStallTicks = 0;
    this.snapshotResends = 0;
    this.probeSent = false;
    this.inflight.reset();
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.snapshot = null;
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflight.reset();
  }

  /** Forgets the match (an earlier replica of the follower's acknowledged it) and probes from `next`. */
  forgetMatch(next: number): void {
    this.match = 0;
    this.becomeProbe();
    this.next = Math.max(1, next);
  }

  /** Records an acknowledged match; returns whether it moved forward. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A rejection of the append at `rejected`; `hint` is where the leader should try next.
   * Returns false for a stale rejection (one about an append already superseded).
   */
  maybeDecreaseTo(rejected: number, hint: number): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.match) return false; // stale: we already know a later match
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false; // stale: not the probe we sent last
    const next = Math.max(Math.min(rejected, hint + 1), this.match + 1, 1);
    // A rejection that moves nothing (a duplicate) waits for the next heartbeat rather than
    // resending the same probe at once, which could loop without time passing.
    if (next === this.next) return false;
    this.next = next;
    this.probeSent = false;
    return true;
  }

  /** The index of the snapshot being sent (0 outside snapshot state). */
  get pendingSnapshot(): number {
    return this.snapshot?.index ?? 0;
  }

  /** Whether the leader should hold back appends to this follower for now. */
  get paused(): boolean {
    if (this.state === "snapshot") return this.snapshotChunkInFlight;
    return this.state === "probe" ? this.probeSent : this.inflight.full;
  }
}

/**
 * The appends in flight to one follower: the last index and size of each, oldest first,
 * bounded in count and bytes. An acknowledgement frees everything up to its index.
 */
export class Inflight {
  private readonly lastIndexes: number[] = [];
  private readonly sizes: number[] = [];
  private bytes = 0;

  constructor(
    private readonly countMax: number,
    private readonly bytesMax: number,
  ) {}

  add(lastIndex: number, bytes: number): void {
    assert(!this.full, "inflight window overflow");
    assert(this.lastIndexes.length === 0 || lastIndex > (this.lastIndexes[this.lastIndexes.length - 1] as number), "inflight indexes must grow");
    this.lastIndexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  freeTo(index: number): void {
    let drop = 0;
    while (drop < this.lastIndexes.length && (this.lastIndexes[drop] as number) <= index) {
      this.bytes -= this.sizes[drop] as number;
      drop++;
    }
    this.lastIndexes.splice(0, drop);
    this.sizes.splice(0, drop);
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.bytes = 0;
  }

  get full(): boolean {
    return this.lastIndexes.length >= this.countMax || this.bytes >= this.bytesMax;
  }

  get count(): number {
    return this.lastIndexes.length;
  }
}

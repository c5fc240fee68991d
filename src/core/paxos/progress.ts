import type { Snapshot } from "../engine/contract.js";

/**
 * What a leader knows about one acceptor (the shape of etcd-io/raft's Progress):
 * - probe: the leader does not know where the acceptor's prefix at its ballot ends; one
 *   accept at a time, each answered before the next;
 * - replicate: it knows; accepts stream, up to a window in flight;
 * - snapshot: the acceptor needs slots the leader has compacted away: it is sent the
 *   leader's snapshot, one chunk at a time.
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  /** Every slot through here is accepted at the leader's ballot (or known chosen) there. */
  match = 0;
  /** The next slot to send. */
  next: number;
  state: ProgressState = "probe";
  /** In probe state: an accept is unanswered. */
  probeSent = false;
  /** The last slot of the latest probe sent: once streaming starts, it counts as in flight. */
  probeThrough = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Heard from in the CheckQuorum round before: with recentActive, heard from within one or two election timeouts. */
  activeRoundBefore = false;
  /** The match when the acceptor last answered a heartbeat (a stalled pipeline shows no progress). */
  matchAtLastHeartbeat = 0;
  /** The leader's tick when it last compared the match with matchAtLastHeartbeat. */
  matchCheckedTick = Number.NEGATIVE_INFINITY;
  /** The highest chosen prefix the leader sent this acceptor (with slots or in a heartbeat). */
  sentCommit = 0;
  /** The leader's tick at which it sent the latest heartbeat this acceptor acknowledged (leases). */
  leaseAckTick = Number.NEGATIVE_INFINITY;
  /** Accepts in flight: the last slot of each, and their bytes. */
  private readonly inflightLast: number[] = [];
  private readonly inflightBytes: number[] = [];
  private inflightBytesTotal = 0;
  snapshot: Snapshot | null = null;
  snapshotAcked = 0;
  snapshotChunkInFlight = false;
  snapshotStallTicks = 0;
  /** Chunks resent since the follower last answered: a follower that stops answering stops holding compaction. */
  snapshotResends = 0;

  constructor(
    next: number,
    private readonly inflightMessagesMax: number,
    private readonly inflightBytesMax: number,
  ) {
    this.next = next;
  }

  get paused(): boolean {
    if (this.state === "probe") return this.probeSent;
    if (this.state === "snapshot") return true;
    return this.inflightLast.length >= this.inflightMessagesMax || this.inflightBytesTotal >= this.inflightBytesMax;
  }

  get inflightCount(): number {
    return this.inflightLast.length;
  }

  addInflight(last: number, bytes: number): void {
    this.inflightLast.push(last);
    this.inflightBytes.push(bytes);
    this.inflightBytesTotal += bytes;
  }

  /** Frees the accepts whose last slot is at or below `index`. */
  freeTo(index: number): void {
    while (this.inflightLast.length > 0 && (this.inflightLast[0] as number) <= index) {
      this.inflightLast.shift();
      this.inflightBytesTotal -= this.inflightBytes.shift() as number;
    }
  }

  private resetInflight(): void {
    this.inflightLast.length = 0;
    this.inflightBytes.length = 0;
    this.inflightBytesTotal = 0;
  }

  becomeProbe(): void {
    this.state = "probe";
    this.snapshot = null;
    this.next = this.match + 1;
    this.probeSent = false;
    this.probeThrough = 0;
    this.resetInflight();
  }

  becomeReplicate(): void {
    this.state = "replicate";
    this.snapshot = null;
    this.next = this.match + 1;
    this.probeSent = false;
    this.resetInflight();
    // A probe beyond the match may still be on its way: do not send its slots again.
    if (this.probeThrough > this.match) {
      this.addInflight(this.probeThrough, 0);
      this.next = this.probeThrough + 1;
    }
  }

  becomeSnapshot(snapshot: Snapshot): void {
    this.state = "snapshot";
    this.snapshot = snapshot;
    this.snapshotAcked = 0;
    this.snapshotChunkInFlight = false;
    this.snapshotStallTicks = 0;
    this.snapshotResends = 0;
    this.probeSent = false;
    this.resetInflight();
  }

  /**
   * While probing, the acceptor's answer is what it holds now, even below the match: a
   * restarted acceptor reports less than before when the chosen prefix it had learned was
   * not yet durable (a heartbeat's answer leaves at once, and may report a prefix learned
   * along with a promise still being synced). Slots it holds at an older ballot then count
   * again only once sent at this one; sending on from the old match would skip them for ever.
   */
  rewindTo(index: number): void {
    if (this.state !== "probe" || index >= this.match) return;
    this.match = index;
    this.next = index + 1;
  }

  /** Records an acknowledged prefix; returns whether it moved forward. */
  update(index: number): boolean {
    if (index <= this.match) return false;
    this.match = index;
    this.next = Math.max(this.next, index + 1);
    return true;
  }
}

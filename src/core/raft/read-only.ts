import type { NodeId } from "../engine/contract.js";
import { emptyMap, writable } from "../common/empty.js";

/** What the read queue needs from the engine that owns it: functions made once, not per call. */
export interface ReadOnlyHost {
  /** Whether these members (the leader included) are a majority of every group of the configuration acted on. */
  readonly quorumConfirms: (acks: ReadonlySet<NodeId>) => boolean;
  /** The latest tick, by the leader's clock, at which it sent heartbeats that a majority of every group acknowledged. */
  readonly leaseAcknowledgedAt: () => number;
  /** Answers a read with its read index, to this node or to the follower that forwarded it. */
  readonly release: (from: NodeId, requestId: number, index: number) => void;
}

/** A read waiting for its heartbeat round to be acknowledged by a quorum (thesis 6.4 step 3). */
interface PendingRead {
  readonly requestId: number;
  /** Who asked: this node, or a follower that forwarded it. */
  readonly from: NodeId;
  /** Its read index: the leader's commit index when the read arrived. */
  readonly index: number;
  readonly round: number;
  readonly acks: Set<NodeId>;
}

/** A read that arrived before the leader committed an entry of its term (thesis 6.4 step 1). */
export interface ReadAwaitingTermCommit {
  readonly requestId: number;
  readonly from: NodeId;
  /** The asker accepts a lease-confirmed read. */
  readonly lease: boolean;
}

/**
 * A Raft leader's linearizable reads, confirmed without writing to the log (thesis 6.4,
 * etcd-io/raft's read_only.go): the reads waiting for the leader's first commit of its term,
 * the reads waiting for a round of heartbeats to confirm that it still leads, and the
 * leader lease (thesis 6.4.1) that lets it skip the round.
 *
 * Heartbeats carry a round number, and an answer for round r confirms every read of round r
 * or before. The engine opens rounds, sends them, and feeds this queue the answers; the
 * queue releases each read (in arrival order) once a quorum has answered its round. Every
 * read that arrives before the next Ready joins one batched round, as etcd-io/raft batches
 * ReadIndex: under load a round costs one message per follower for many reads.
 *
 * Time is the engine's tick count (`now`), counted whatever its role.
 */
export class ReadOnly {
  /** The latest round opened; rounds are numbered for the engine's life, across terms. */
  private round = 0;
  /** The tick each recent round was sent at, oldest first (the shared empty map until a round is sent: a follower sends none). */
  private roundSentAt = emptyMap<number, number>();
  private pending: PendingRead[] = [];
  private awaitingTermCommit: ReadAwaitingTermCommit[] = [];
  /**
   * The round that reads arriving now join, opened by the first of them and sent with the
   * next Ready (0: none open).
   */
  private batchedRound = 0;
  /**
   * Set once this leader has told a member to campaign: that member's voters will not wait
   * out this leader's lease, so the lease can no longer vouch for a read this term.
   */
  private leaseGivenAway = false;

  /**
   * @param selfId this node, which confirms its own leadership
   * @param electionTicks rounds sent more than two election timeouts ago are forgotten
   * @param leaseTicks how long a quorum's acknowledgement vouches for leadership (see `leaseTicks` in config.ts)
   */
  constructor(
    private readonly selfId: NodeId,
    private readonly electionTicks: number,
    private readonly leaseTicks: number,
    private readonly host: ReadOnlyHost,
  ) {}

  /** The latest round opened: heartbeats that open none of their own repeat it. */
  get lastRound(): number {
    return this.round;
  }

  /** Opens a heartbeat round, remembering that it was sent at `now`. */
  newRound(now: number): number {
    const round = ++this.round;
    this.roundSentAt = writable(this.roundSentAt);
    this.roundSentAt.set(round, now);
    // Rounds older than an election timeout can no longer extend a lease: forget them.
    for (const [old, sentAt] of this.roundSentAt) {
      if (sentAt >= now - 2 * this.electionTicks) break;
      this.roundSentAt.delete(old);
    }
    return round;
  }

  /** The tick `round` was sent at, while it may still extend a lease. */
  sentAt(round: number): number | undefined {
    return this.roundSentAt.get(round);
  }

  /** Whether a quorum acknowledged a heartbeat sent within the lease's length (thesis 6.4.1). */
  leaseValid(now: number): boolean {
    if (this.leaseGivenAway) return false;
    return now - this.host.leaseAcknowledgedAt() < this.leaseTicks;
  }

  /** The lease no longer vouches for reads, until this node next leads (see `leaseGivenAway`). */
  giveLeaseAway(): void {
    this.leaseGivenAway = true;
  }

  /** Keeps a read until this leader commits an entry of its term (step 1). */
  awaitTermCommit(read: ReadAwaitingTermCommit): void {
    this.awaitingTermCommit.push(read);
  }

  get hasReadsAwaitingTermCommit(): boolean {
    return this.awaitingTermCommit.length > 0;
  }

  /** The reads kept by `awaitTermCommit`, handed back once (the leader has committed an entry of its term). */
  takeReadsAwaitingTermCommit(): ReadAwaitingTermCommit[] {
    const waiting = this.awaitingTermCommit;
    this.awaitingTermCommit = [];
    return waiting;
  }

  /**
   * Queues a read at `index` for the batched round, opening it if none is open. The round's
   * heartbeats leave with the next Ready, after this read arrived, so their answers confirm
   * leadership at a time after it (step 3). Recording the round's send time `now`,
   * possibly a tick early, only shortens a lease it starts.
   */
  awaitConfirmation(from: NodeId, requestId: number, index: number, now: number): void {
    if (this.batchedRound === 0) this.batchedRound = this.newRound(now);
    this.pending.push({ requestId, from, index, round: this.batchedRound, acks: new Set([this.selfId]) });
  }

  /** A round opened by reads is waiting to be sent. */
  get hasBatchedRound(): boolean {
    return this.batchedRound !== 0;
  }

  /** The round opened by reads since the last Ready, to send now (0: none); the next read opens another. */
  takeBatchedRound(): number {
    const round = this.batchedRound;
    this.batchedRound = 0;
    return round;
  }

  /** `from` answered a heartbeat of `round`: it confirms every read of that round or before; the confirmed ones are released. */
  acknowledge(from: NodeId, round: number): void {
    for (const read of this.pending) {
      if (read.round > round) break;
      read.acks.add(from);
    }
    while (this.pending.length > 0 && this.host.quorumConfirms((this.pending[0] as PendingRead).acks)) {
      const read = this.pending.shift() as PendingRead;
      this.host.release(read.from, read.requestId, read.index);
    }
  }

  /** No read is waiting: for a term commit, a round to be sent, or a quorum to confirm it (a leader with reads to do does not go quiet). */
  get idle(): boolean {
    return this.pending.length === 0 && this.awaitingTermCommit.length === 0 && this.batchedRound === 0;
  }

  /**
   * Forgets when every round was sent, so no answer to a round opened before now extends
   * the lease (the engine also forgets the acknowledgements it had): a leader that went
   * quiet stopped counting ticks, so its lease clock no longer measures time, and it must
   * earn a new lease from heartbeats sent after it woke.
   */
  forgetRounds(): void {
    this.roundSentAt = emptyMap();
  }

  /** This node's role changed: reads it was confirming are dropped (their clients retry), and a new term starts with its lease its own. */
  reset(): void {
    this.pending = [];
    this.awaitingTermCommit = [];
    this.batchedRound = 0;
    this.leaseGivenAway = false;
  }
}

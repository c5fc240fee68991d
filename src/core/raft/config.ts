import { assert } from "../common/assert.js";

/** Raft's tunables. Time is in ticks; the driver decides how long a tick is. */
export interface RaftConfig {
  /** A follower that hears no leader for this many ticks (plus jitter) campaigns. */
  readonly electionTicks: number;
  /** The leader sends heartbeats every this many ticks. */
  readonly heartbeatTicks: number;
  /** Probe with PreVote before disrupting a cluster with a higher term (thesis 9.6). */
  readonly preVote: boolean;
  /** A leader that has not heard from a quorum within an election timeout steps down (thesis 6.2). */
  readonly checkQuorum: boolean;
  /** Bounds on one append message. */
  readonly entriesPerMessageMax: number;
  readonly bytesPerMessageMax: number;
  /** Bounds on appends in flight to one follower in the replicate state (pipelining window). */
  readonly inflightMessagesMax: number;
  readonly inflightBytesMax: number;
  /** Proposals are refused (OverloadedError) while the uncommitted tail holds this many bytes. */
  readonly uncommittedBytesMax: number;
  /** Committed entries handed to the driver in one Ready. */
  readonly applyEntriesPerReadyMax: number;
  /**
   * Serve linearizable reads from the leader's lease instead of a heartbeat round (thesis
   * 6.4.1). Needs `checkQuorum` (followers then refuse to vote while they hear from a
   * leader), and assumes bounded clock drift: no node's ticks run more than
   * `maxClockDrift` (a ratio, 0.1 = 10%) slower than another's. Off by default.
   */
  readonly leaseReads: boolean;
  readonly maxClockDrift: number;
  /** A snapshot is sent in chunks of at most this many bytes, one chunk in flight. */
  readonly snapshotChunkBytes: number;
  /** A chunk unanswered for this many ticks is sent again from the last acknowledged offset. */
  readonly snapshotResendTicks: number;
  /**
   * A learner marked for automatic promotion becomes a voter once its log is within this
   * many entries of the leader's (and it answered within the last election timeout).
   */
  readonly learnerLagEntriesMax: number;
  /**
   * Idle groups go quiet (CockroachDB's quiescence): a leader with nothing to do — every
   * follower holds its whole log, all of it committed, no read, transfer or configuration
   * change under way — sends a last heartbeat marked `quiesce` and stops ticking; a follower
   * that holds exactly that log stops its election timer. Any proposal, read, change,
   * transfer, message (other than that heartbeat and its answers) or `wake()` wakes it. A
   * quiet follower never notices a dead leader by itself: the node must call `wake()` on it
   * when it suspects the leader's node failed (core/multi/liveness.ts). Off by default.
   */
  readonly quiesce: boolean;
}

export const DEFAULT_RAFT_CONFIG: RaftConfig = Object.freeze({
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  entriesPerMessageMax: 256,
  bytesPerMessageMax: 1024 * 1024,
  inflightMessagesMax: 256,
  inflightBytesMax: 32 * 1024 * 1024,
  uncommittedBytesMax: 64 * 1024 * 1024,
  applyEntriesPerReadyMax: 4096,
  leaseReads: false,
  maxClockDrift: 0.1,
  snapshotChunkBytes: 256 * 1024,
  snapshotResendTicks: 3,
  learnerLagEntriesMax: 64,
  quiesce: false,
});

export function validateRaftConfig(config: RaftConfig): RaftConfig {
  const positive = (value: number, name: string): void => assert(Number.isSafeInteger(value) && value > 0, `${name} must be a positive integer, got ${value}`);
  positive(config.electionTicks, "electionTicks");
  positive(config.heartbeatTicks, "heartbeatTicks");
  positive(config.entriesPerMessageMax, "entriesPerMessageMax");
  positive(config.bytesPerMessageMax, "bytesPerMessageMax");
  positive(config.inflightMessagesMax, "inflightMessagesMax");
  positive(config.inflightBytesMax, "inflightBytesMax");
  positive(config.uncommittedBytesMax, "uncommittedBytesMax");
  positive(config.applyEntriesPerReadyMax, "applyEntriesPerReadyMax");
  positive(config.snapshotChunkBytes, "snapshotChunkBytes");
  positive(config.snapshotResendTicks, "snapshotResendTicks");
  positive(config.learnerLagEntriesMax, "learnerLagEntriesMax");
  // A leader must be able to heartbeat several times per election timeout, or followers
  // campaign against a healthy leader.
  assert(config.heartbeatTicks * 2 <= config.electionTicks, "electionTicks must be at least twice heartbeatTicks");
  assert(!config.leaseReads || config.checkQuorum, "leaseReads needs checkQuorum: followers must refuse votes while they hear from a leader");
  assert(config.maxClockDrift >= 0 && config.maxClockDrift < 1, `maxClockDrift must be in [0, 1), got ${config.maxClockDrift}`);
  assert(!config.leaseReads || leaseTicks(config) >= 1, "electionTicks is too short for a lease under maxClockDrift");
  assert(config.inflightBytesMax >= config.bytesPerMessageMax, "the in-flight window must hold at least one full message");
  return config;
}

/**
 * How many of its own ticks a leader may serve reads after sending a heartbeat that a quorum
 * acknowledged. A follower that acknowledged it refuses votes until it has counted
 * `electionTicks` of its own ticks after receiving it — at least (electionTicks - 1) tick
 * periods later, as the first may come at once. The leader counts whole ticks since sending
 * (one more may have partly passed), and its ticks may be up to `maxClockDrift` longer.
 */
export function leaseTicks(config: RaftConfig): number {
  return Math.floor((config.electionTicks - 1) / (1 + config.maxClockDrift)) - 1;
}

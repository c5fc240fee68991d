import { assert } from "../common/assert.js";

/** Multi-Paxos tunables. Time is in ticks; the driver decides how long a tick is. */
export interface PaxosConfig {
  /** A node that hears no leader for this many ticks (plus jitter) runs phase 1. */
  readonly electionTicks: number;
  /** The leader sends heartbeats (and the chosen prefix) every this many ticks. */
  readonly heartbeatTicks: number;
  /**
   * Before raising its ballot, a node asks whether a majority would promise it (the Paxos
   * counterpart of Raft's PreVote): a node cut off from the others then keeps its ballot, and
   * does not depose a healthy leader when it comes back.
   */
  readonly probe: boolean;
  /** A leader that has not heard from a quorum within an election timeout steps down. */
  readonly checkQuorum: boolean;
  /**
   * The configuration window α (van Renesse and Altinbuken's WINDOW): a configuration chosen
   * in slot s governs the slots from s + α on. A leader proposes slot x only once every slot
   * up to x - α is chosen, so it always knows which configuration's quorum x needs — and at
   * most α slots are in flight.
   */
  readonly windowSlots: number;
  /** Bounds on one accept message; a promise's page is bounded by the bytes alone. */
  readonly entriesPerMessageMax: number;
  readonly bytesPerMessageMax: number;
  /** Bounds on accepts in flight to one acceptor while it keeps up (the pipelining window). */
  readonly inflightMessagesMax: number;
  readonly inflightBytesMax: number;
  /** Proposals are refused (OverloadedError) while this many bytes wait unchosen. */
  readonly uncommittedBytesMax: number;
  /** Chosen entries handed to the driver in one Ready. */
  readonly applyEntriesPerReadyMax: number;
  /**
   * Serve linearizable reads from the leader's lease instead of a heartbeat round. Needs
   * `checkQuorum` (acceptors then refuse to promise while they hear from a leader), and
   * assumes no node's ticks run more than `maxClockDrift` (a ratio) slower than another's.
   */
  readonly leaseReads: boolean;
  readonly maxClockDrift: number;
  /** A snapshot is sent in chunks of at most this many bytes, one chunk in flight. */
  readonly snapshotChunkBytes: number;
  /** A chunk unanswered for this many ticks is sent again from the last acknowledged offset. */
  readonly snapshotResendTicks: number;
  /** A learner marked for promotion becomes a voter once it holds all but this many slots. */
  readonly learnerLagEntriesMax: number;
}

export const DEFAULT_PAXOS_CONFIG: PaxosConfig = Object.freeze({
  electionTicks: 10,
  heartbeatTicks: 1,
  probe: true,
  checkQuorum: true,
  windowSlots: 1024,
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
});

export function validatePaxosConfig(config: PaxosConfig): PaxosConfig {
  const positive = (value: number, name: string): void => assert(Number.isSafeInteger(value) && value > 0, `${name} must be a positive integer, got ${value}`);
  positive(config.electionTicks, "electionTicks");
  positive(config.heartbeatTicks, "heartbeatTicks");
  positive(config.windowSlots, "windowSlots");
  positive(config.entriesPerMessageMax, "entriesPerMessageMax");
  positive(config.bytesPerMessageMax, "bytesPerMessageMax");
  positive(config.inflightMessagesMax, "inflightMessagesMax");
  positive(config.inflightBytesMax, "inflightBytesMax");
  positive(config.uncommittedBytesMax, "uncommittedBytesMax");
  positive(config.applyEntriesPerReadyMax, "applyEntriesPerReadyMax");
  positive(config.snapshotChunkBytes, "snapshotChunkBytes");
  positive(config.snapshotResendTicks, "snapshotResendTicks");
  positive(config.learnerLagEntriesMax, "learnerLagEntriesMax");
  // A leader must heartbeat several times per election timeout, or followers campaign
  // against a healthy leader.
  assert(config.heartbeatTicks * 2 <= config.electionTicks, "electionTicks must be at least twice heartbeatTicks");
  assert(!config.leaseReads || config.checkQuorum, "leaseReads needs checkQuorum: acceptors must refuse to promise while they hear from a leader");
  assert(config.maxClockDrift >= 0 && config.maxClockDrift < 1, `maxClockDrift must be in [0, 1), got ${config.maxClockDrift}`);
  assert(!config.leaseReads || leaseTicks(config) >= 1, "electionTicks is too short for a lease under maxClockDrift");
  assert(config.inflightBytesMax >= config.bytesPerMessageMax, "the in-flight window must hold at least one full message");
  return config;
}

/**
 * How many of its own ticks a leader may serve reads after sending a heartbeat that a quorum
 * acknowledged. An acceptor that acknowledged it refuses to promise anyone else until it has
 * counted `electionTicks` of its own ticks — at least (electionTicks - 1) tick periods later,
 * as the first may come at once. The leader counts whole ticks since sending (one more may
 * have partly passed), and its ticks may be up to `maxClockDrift` longer. (The same
 * arithmetic as Raft's lease, thesis 6.4.1.)
 */
export function leaseTicks(config: PaxosConfig): number {
  return Math.floor((config.electionTicks - 1) / (1 + config.maxClockDrift)) - 1;
}

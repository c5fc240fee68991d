import type { LogEntry, Membership, NodeId } from "../engine/contract.js";

/**
 * Raft's messages. Every message carries the sender's term; the engine's `step` compares
 * it with its own before anything else (Raft paper, Figure 2, "Rules for Servers").
 */
export type RaftMessage =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | ForwardedProposal
  | ForwardedRead
  | ReadIndexResponse
  | SnapshotChunk
  | SnapshotChunkResponse
  | TimeoutNow;

/** RequestVote (section 5.2), or a PreVote probe (thesis 9.6) for `term` = the sender's term + 1. */
export interface VoteRequest {
  readonly type: "vote";
  readonly term: number;
  readonly preVote: boolean;
  readonly lastIndex: number;
  readonly lastTerm: number;
  /**
   * The candidate campaigns because the leader handed it leadership (thesis 3.10): voters
   * grant it even while they hear from that leader, who gave up its lease to it.
   */
  readonly transfer?: boolean;
}

export interface VoteResponse {
  readonly type: "vote-response";
  readonly term: number;
  readonly preVote: boolean;
  readonly granted: boolean;
}

/** AppendEntries (section 5.3): entries after (prevIndex, prevTerm), and the leader's commit. */
export interface AppendRequest {
  readonly type: "append";
  readonly term: number;
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly LogEntry[];
  readonly commit: number;
}

/**
 * The answer to an append. Accepted: `index` is the follower's last index now known to match
 * the leader. Rejected: `index` is the rejected prevIndex, and (`hintIndex`, `hintTerm`) is
 * the follower's last entry at or before it whose term is at most the leader's prevTerm —
 * the fast-backtracking hint (thesis 5.4.1 style), so one round trip skips a whole
 * divergent term instead of one entry.
 */
export interface AppendResponse {
  readonly type: "append-response";
  readonly term: number;
  readonly reject: boolean;
  readonly index: number;
  readonly hintIndex: number;
  readonly hintTerm: number;
  /**
   * A rejection from a follower that takes no entries until it installs a snapshot at this
   * index or later (EngineOptions.awaitSnapshot): the leader sends it one, capturing one
   * first if its own is older. Absent on every other answer (and from older nodes).
   */
  readonly snapshotFrom?: number;
}

/** A heartbeat: the leader's commit (capped at what the follower matches), and a read round. */
export interface HeartbeatRequest {
  readonly type: "heartbeat";
  readonly term: number;
  readonly commit: number;
  /** The leader's read-confirmation round this heartbeat belongs to (0: none). */
  readonly readRound: number;
  /**
   * The leader's last heartbeat before it goes quiet (RaftConfig.quiesce): `commit` is then
   * its last index, and a follower whose log ends exactly there goes quiet too.
   */
  readonly quiesce?: boolean;
}

export interface HeartbeatResponse {
  readonly type: "heartbeat-response";
  readonly term: number;
  readonly readRound: number;
}

/** A follower hands a client's proposals to the leader it knows. */
export interface ForwardedProposal {
  readonly type: "propose";
  readonly term: number;
  readonly data: readonly Uint8Array[];
}

/** A follower asks the leader for a read index on behalf of its client. */
export interface ForwardedRead {
  readonly type: "read-index";
  readonly term: number;
  readonly requestId: number;
  /** The client accepts a lease-confirmed read (see ReadOptions.lease); absent means no. */
  readonly lease?: boolean;
}

export interface ReadIndexResponse {
  readonly type: "read-index-response";
  readonly term: number;
  readonly requestId: number;
  readonly index: number;
}

/**
 * One chunk of a snapshot a leader sends a follower whose next entry it has compacted away
 * (section 7). Chunks go one at a time; a lost one is resent from the last acknowledged
 * offset, so a transfer resumes rather than restarts.
 */
export interface SnapshotChunk {
  readonly type: "snapshot";
  readonly term: number;
  /** The snapshot's last included index and term. */
  readonly index: number;
  readonly snapshotTerm: number;
  /** The snapshot's full size in bytes, and where this chunk starts. */
  readonly size: number;
  readonly offset: number;
  readonly chunk: Uint8Array;
  /** The configuration at the snapshot's index (absent for snapshots from before membership). */
  readonly membership?: Membership;
}

/**
 * A follower's answer to a chunk that did not complete the snapshot: how many bytes of it
 * it holds (the offset the next chunk must start at). A completed snapshot is answered by
 * an accepting append-response at the snapshot's index, after it is durable.
 */
export interface SnapshotChunkResponse {
  readonly type: "snapshot-response";
  readonly term: number;
  readonly index: number;
  readonly received: number;
}

/**
 * Leadership transfer (thesis 3.10): the leader, having brought the recipient's log up to
 * its own, tells it to campaign at once, without waiting for an election timeout.
 */
export interface TimeoutNow {
  readonly type: "timeout-now";
  readonly term: number;
}

export function describeRaftMessage(m: RaftMessage): string {
  switch (m.type) {
    case "vote":
      return `${m.preVote ? "pre-vote" : "vote"} request term=${m.term} last=${m.lastIndex}@${m.lastTerm}${m.transfer === true ? " transfer" : ""}`;
    case "timeout-now":
      return `timeout-now term=${m.term}`;
    case "vote-response":
      return `${m.preVote ? "pre-vote" : "vote"} ${m.granted ? "granted" : "rejected"} term=${m.term}`;
    case "append":
      return `append term=${m.term} prev=${m.prevIndex}@${m.prevTerm} entries=${m.entries.length}${m.entries.length > 0 ? `[${m.entries[0]?.index}..${m.entries[m.entries.length - 1]?.index}]` : ""} commit=${m.commit}`;
    case "append-response":
      return m.reject
        ? `append rejected term=${m.term} at=${m.index} hint=${m.hintIndex}@${m.hintTerm}`
        : `append ok term=${m.term} match=${m.index}`;
    case "heartbeat":
      return `heartbeat term=${m.term} commit=${m.commit}${m.readRound > 0 ? ` read-round=${m.readRound}` : ""}${m.quiesce === true ? " quiesce" : ""}`;
    case "heartbeat-response":
      return `heartbeat ok term=${m.term}${m.readRound > 0 ? ` read-round=${m.readRound}` : ""}`;
    case "propose":
      return `forwarded proposal term=${m.term} count=${m.data.length}`;
    case "read-index":
      return `forwarded read term=${m.term} request=${m.requestId}${m.lease === true ? " lease" : ""}`;
    case "read-index-response":
      return `read index term=${m.term} request=${m.requestId} index=${m.index}`;
    case "snapshot":
      return `snapshot term=${m.term} at=${m.index}@${m.snapshotTerm} bytes=${m.offset}..${m.offset + m.chunk.length}/${m.size}`;
    case "snapshot-response":
      return `snapshot progress term=${m.term} at=${m.index} received=${m.received}`;
  }
}

/** Raft's durable state besides the log (Figure 2, "Persistent state"), plus the commit index. */
export interface RaftHardState {
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
  /**
   * Set in the hard state a node keeps for a group after it dropped its replica (its log and
   * state gone: `raftTombstone`): the index that replica had applied. A replica hosted again
   * from it grants no vote until its commit index reaches it. Its earlier replica's
   * acknowledgements may have counted toward entries up to there (its removal included),
   * and an empty log would make any candidate look up to date, one that lacks them too.
   * Dropped from the hard state once reached.
   */
  readonly forgot?: number;
}

/**
 * The hard state a node keeps for a group once it has dropped its replica: the term and
 * vote it promised (a replica made again must keep them: without them it could vote twice
 * in one term), no commit index (it holds nothing), and `forgot`, the index the dropped
 * replica had applied (a later drop's, where an earlier one's is still owed).
 */
export function raftTombstone(last: RaftHardState | null, applied: number): RaftHardState {
  return { term: last?.term ?? 0, vote: last?.vote ?? null, commit: 0, forgot: Math.max(applied, last?.forgot ?? 0) };
}

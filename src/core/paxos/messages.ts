import type { LogEntry, Membership } from "../engine/contract.js";
import { describeBallot } from "./ballot.js";

/**
 * Multi-Paxos' messages. Every message carries a ballot (see ballot.ts): a request, the
 * ballot it is sent at; a reply, the ballot it answers — a reply is counted only toward the
 * round of that very ballot (the MyPaxos #18 bug counted a promise for an older one).
 */
export type PaxosMessage =
  | Prepare
  | PromiseReply
  | Nack
  | Accept
  | Accepted
  | Heartbeat
  | HeartbeatResponse
  | ForwardedProposal
  | ForwardedRead
  | ReadIndexResponse
  | SnapshotChunk
  | SnapshotChunkResponse
  | TimeoutNow;

/**
 * Phase 1a ("prepare"), for every slot from `from` on: the candidate's first slot not known
 * chosen. A probe asks only whether the acceptor would promise `ballot` (nothing changes on
 * either side); `transfer` says the leader handed leadership to the sender, so acceptors
 * that still hear from that leader promise all the same.
 */
export interface Prepare {
  readonly type: "prepare";
  readonly ballot: number;
  readonly from: number;
  readonly probe: boolean;
  readonly transfer?: boolean;
}

/**
 * Phase 1b ("promise"): the acceptor will accept nothing below `ballot`, and reports what it
 * has accepted in the slots `from`..`through` (holes left out), each entry with the ballot
 * it was accepted at. `commit`: the acceptor's chosen prefix (reported slots up to it are
 * chosen values). A report too large for one message comes in pages: `complete` is false
 * until the page that reaches the acceptor's last slot, and the candidate asks for the next
 * page with another prepare at the same ballot from `through` + 1. A probe's answer carries
 * no entries.
 */
export interface PromiseReply {
  readonly type: "promise";
  readonly ballot: number;
  readonly probe: boolean;
  readonly from: number;
  readonly through: number;
  readonly complete: boolean;
  readonly entries: readonly LogEntry[];
  readonly commit: number;
}

/**
 * A refusal: of a prepare (probe or not) or of a leader's accept, heartbeat or snapshot,
 * because the acceptor promised `promised`, a higher ballot (or, for a prepare, because it
 * hears from a leader). `behind`: the candidate asked about slots this acceptor has
 * compacted into a snapshot — it must catch up from a leader, not lead.
 */
export interface Nack {
  readonly type: "nack";
  readonly ballot: number;
  readonly promised: number;
  readonly probe: boolean;
  readonly behind: boolean;
}

/** Phase 2a ("accept"): accept these slots at `ballot` (each entry's term is `ballot`); `commit`: the leader's chosen prefix. */
export interface Accept {
  readonly type: "accept";
  readonly ballot: number;
  readonly entries: readonly LogEntry[];
  readonly commit: number;
}

/**
 * Phase 2b ("accepted"): every slot through `index` is accepted at `ballot` or known chosen
 * by this acceptor (its prefix at the ballot). `last` is the last slot of the accept it
 * answers: `index` below it means a hole (an accept lost on the way), which the leader fills.
 */
export interface Accepted {
  readonly type: "accepted";
  readonly ballot: number;
  readonly index: number;
  readonly last: number;
}

/** The leader is alive: its chosen prefix, and a read-confirmation round (0: none). */
export interface Heartbeat {
  readonly type: "heartbeat";
  readonly ballot: number;
  readonly commit: number;
  readonly readRound: number;
}

/** The answer to a heartbeat: still promised to `ballot`; `index`, the acceptor's durable prefix at it. */
export interface HeartbeatResponse {
  readonly type: "heartbeat-response";
  readonly ballot: number;
  readonly readRound: number;
  readonly index: number;
}

/** A node hands a client's proposals to the leader it knows. */
export interface ForwardedProposal {
  readonly type: "propose";
  readonly ballot: number;
  readonly data: readonly Uint8Array[];
}

/** A node asks the leader for a read index on behalf of its client. */
export interface ForwardedRead {
  readonly type: "read-index";
  readonly ballot: number;
  readonly requestId: number;
  readonly lease?: boolean;
}

export interface ReadIndexResponse {
  readonly type: "read-index-response";
  readonly ballot: number;
  readonly requestId: number;
  readonly index: number;
}

/** One chunk of the leader's snapshot, for an acceptor that needs slots the leader compacted. */
export interface SnapshotChunk {
  readonly type: "snapshot";
  readonly ballot: number;
  /** The snapshot's last slot, and the ballot of that slot's entry. */
  readonly index: number;
  readonly snapshotTerm: number;
  readonly size: number;
  readonly offset: number;
  readonly chunk: Uint8Array;
  readonly membership?: Membership;
}

/** How many bytes of the snapshot at `index` the acceptor holds (the next chunk's offset). */
export interface SnapshotChunkResponse {
  readonly type: "snapshot-response";
  readonly ballot: number;
  readonly index: number;
  readonly received: number;
}

/** Leadership transfer: the leader, having brought the recipient up to date, tells it to run phase 1 now. */
export interface TimeoutNow {
  readonly type: "timeout-now";
  readonly ballot: number;
  /**
   * The leader's chosen prefix, which the recipient (holding every slot of it at this ballot)
   * learns before its phase 1: the leader may have compacted its log through it, and refuses
   * a phase 1 from below its snapshot. Absent from nodes that predate it.
   */
  readonly commit?: number;
}

function range(entries: readonly LogEntry[]): string {
  const first = entries[0];
  const last = entries[entries.length - 1];
  return first === undefined || last === undefined ? "" : `[${first.index}..${last.index}]`;
}

export function describePaxosMessage(m: PaxosMessage): string {
  const b = describeBallot(m.ballot);
  switch (m.type) {
    case "prepare":
      return `${m.probe ? "probe" : "prepare"} ballot=${b} from=${m.from}${m.transfer === true ? " transfer" : ""}`;
    case "promise":
      if (m.probe) return `probe granted ballot=${b}`;
      if (m.entries.length === 0) return `promise ballot=${b} from=${m.from} nothing accepted${m.complete ? "" : ` through ${m.through} (more)`} commit=${m.commit}`;
      return `promise ballot=${b} slots=${m.from}..${m.through}${m.complete ? "" : " (more)"} accepted=${m.entries.map((e) => `${e.index}@${describeBallot(e.term)}`).join(",")} commit=${m.commit}`;
    case "nack":
      return `${m.probe ? "probe refused" : "nack"} ballot=${b} promised=${describeBallot(m.promised)}${m.behind ? " behind" : ""}`;
    case "accept":
      return `accept ballot=${b} entries=${m.entries.length}${range(m.entries)} commit=${m.commit}`;
    case "accepted":
      return `accepted ballot=${b} through=${m.index}${m.index < m.last ? ` hole-before=${m.last}` : ""}`;
    case "heartbeat":
      return `heartbeat ballot=${b} commit=${m.commit}${m.readRound > 0 ? ` read-round=${m.readRound}` : ""}`;
    case "heartbeat-response":
      return `heartbeat ok ballot=${b} through=${m.index}${m.readRound > 0 ? ` read-round=${m.readRound}` : ""}`;
    case "propose":
      return `forwarded proposal ballot=${b} count=${m.data.length}`;
    case "read-index":
      return `forwarded read ballot=${b} request=${m.requestId}${m.lease === true ? " lease" : ""}`;
    case "read-index-response":
      return `read index ballot=${b} request=${m.requestId} index=${m.index}`;
    case "snapshot":
      return `snapshot ballot=${b} at=${m.index}@${describeBallot(m.snapshotTerm)} bytes=${m.offset}..${m.offset + m.chunk.length}/${m.size}`;
    case "snapshot-response":
      return `snapshot progress ballot=${b} at=${m.index} received=${m.received}`;
    case "timeout-now":
      return `timeout-now ballot=${b}${m.commit === undefined ? "" : ` commit=${m.commit}`}`;
  }
}

/**
 * What an acceptor keeps on disk besides its log of accepted slots: the ballot it promised
 * (it must never accept below it, across crashes), and its chosen prefix.
 */
export interface PaxosHardState {
  readonly promised: number;
  readonly commit: number;
}

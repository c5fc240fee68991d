import type { NodeId } from "../engine/contract.js";
import { emptyMap, writable } from "../common/empty.js";
import { majorityImpossible } from "./membership.js";
import type { RaftMessage, VoteRequest, VoteResponse } from "./messages.js";
import type { QuiescenceHost } from "./quiescence.js";
import type { ReplicatorHost } from "./replication.js";

/** What elections need from the engine that owns them: its parts, its role changes, its voting rules, and functions made once, not per call. */
export interface ElectionHost extends Pick<ReplicatorHost, "id" | "log" | "term" | "membership" | "send">, Pick<QuiescenceHost, "role"> {
  /** Queues a message that may leave only once the Ready's writes are durable. */
  readonly sendAfterPersist: (to: NodeId, message: RaftMessage) => void;
  /**
   * The engine stands for election and forgets its leader: as a pre-candidate (its term
   * unchanged), or as a candidate of the next term that votes for itself.
   */
  readonly stand: (preVote: boolean) => void;
  /** The engine records its vote for `candidate` in this term, and hears no election timeout yet. */
  readonly voteFor: (candidate: NodeId) => void;
  /** The engine's election timer starts afresh, with a new randomized timeout. */
  readonly resetElectionTimer: () => void;
  /** This candidate won: it leads. */
  readonly becomeLeader: () => void;
  /** This candidate lost: it becomes a follower of no one. */
  readonly stepDown: () => void;
  /** The engine's rule for granting a vote (see its `mayGrantVote`). */
  readonly mayGrantVote: (from: NodeId, message: VoteRequest) => boolean;
  /** This node grants no vote now: it lost a log it held, and its commit index is not yet back where that log was (RaftHardState.forgot). */
  abstains(): boolean;
  /** The engine's rule for when a granted vote leaves (see its `sendGrantedVote`). */
  readonly sendGrantedVote: (to: NodeId, response: VoteResponse) => void;
  /** The engine's rule for who is asked for votes (see its `campaignPeers`). */
  readonly campaignPeers: () => NodeId[];
  /** The engine's rule for whose votes elect (see its `votesWin`). */
  readonly votesWin: (votes: ReadonlyMap<NodeId, boolean>) => boolean;
}

/**
 * Raft's elections (section 5.2, thesis 9.6 for PreVote): a node's campaign — a pre-vote
 * round, then a real one — the votes it counts, and its answers to others' vote requests.
 * Which votes may be granted, when a granted vote may leave, who is asked and whose votes
 * elect are the engine's rules (the mutants override them); so are its term, its vote and
 * its role, which this changes only through the host.
 */
export class Election {
  /**
   * The answers to this node's current campaign, its own included: granted or refused, by
   * voter. A map of its own only while a campaign is undecided (the shared empty one
   * otherwise: an engine per range, nearly all of them not campaigning).
   */
  private votes = emptyMap<NodeId, boolean>();

  constructor(private readonly host: ElectionHost) {}

  /**
   * Campaigns: with `preVote`, asks whether it would win in the next term without moving to
   * it; otherwise moves to the next term and asks for votes, saying with `transfer` that a
   * leader handed over to it (so voters grant despite that leader's lease).
   */
  campaign(preVote: boolean, transfer = false): void {
    // Section 5.2: every election starts a fresh randomized timeout, so candidates that
    // collided once are unlikely to collide again (the host restarts the timer).
    this.host.stand(preVote);
    this.votes = new Map([[this.host.id, true]]);
    if (this.tally(preVote)) return;
    const { log } = this.host;
    const term = this.host.term();
    const base: VoteRequest = { type: "vote", term: preVote ? term + 1 : term, preVote, lastIndex: log.lastIndex, lastTerm: log.lastTerm };
    const request: VoteRequest = transfer ? { ...base, transfer } : base;
    for (const peer of this.host.campaignPeers()) {
      if (peer === this.host.id) continue;
      // A real vote request carries this node's vote for itself, which must be durable first.
      if (preVote) this.host.send(peer, request);
      else this.host.sendAfterPersist(peer, request);
    }
  }

  /** Counts votes; acts on a decision. Returns true when the election is decided. */
  private tally(preVote: boolean): boolean {
    if (this.host.votesWin(this.votes)) {
      this.votes = emptyMap();
      if (preVote) this.campaign(false);
      else this.host.becomeLeader();
      return true;
    }
    if (majorityImpossible(this.host.membership(), (id) => this.votes.get(id) === false)) {
      this.votes = emptyMap();
      this.host.stepDown();
      return true;
    }
    return false;
  }

  /** A vote request of this term or a later one (step has adopted a later term, unless it is a pre-vote's). */
  voteRequested(from: NodeId, message: VoteRequest): void {
    // Figure 2, RequestVote receiver: grant when this node may still vote for the candidate
    // and the candidate's log is at least as up to date as its own.
    if (!this.host.abstains() && this.host.mayGrantVote(from, message) && this.host.log.isUpToDate(message.lastIndex, message.lastTerm)) {
      const response: VoteResponse = { type: "vote-response", term: message.term, preVote: message.preVote, granted: true };
      if (!message.preVote) this.host.voteFor(from);
      this.host.sendGrantedVote(from, response);
    } else {
      this.host.sendAfterPersist(from, { type: "vote-response", term: this.host.term(), preVote: message.preVote, granted: false });
      this.yieldToBetterLog(message);
    }
  }

  /**
   * A candidate refusing a vote to a node whose log is strictly more up to date than its
   * own restarts its election timer. The asker learns this node's term from the refusal and
   * restarts its timer too, so the next round is a fair race — and the asker, if it times
   * out first, wins this node's vote. Without this the candidate, whose timer started
   * earlier, always campaigns first; if the asker is not in its configuration (it is behind
   * on a membership change that needs them both) it never hears the candidate's request,
   * asks in the term the candidate already voted in, and loses every round (simulator seed
   * 102696). Only a candidate yields: a follower of a live leader must not be kept from
   * noticing its death, and a timer is all that moves — no vote or term, so safety is as it
   * was.
   */
  yieldToBetterLog(message: VoteRequest): void {
    if (this.host.role() !== "candidate" || message.preVote) return;
    const { log } = this.host;
    const strictlyBetter = log.isUpToDate(message.lastIndex, message.lastTerm) && !(message.lastIndex === log.lastIndex && message.lastTerm === log.lastTerm);
    if (strictlyBetter) this.host.resetElectionTimer();
  }

  /** An answer to this node's vote request: counted if it answers the round under way. */
  voteAnswered(from: NodeId, message: VoteResponse): void {
    const role = this.host.role();
    const expecting = (role === "precandidate" && message.preVote) || (role === "candidate" && !message.preVote);
    if (!expecting) return;
    this.votes = writable(this.votes);
    this.votes.set(from, message.granted);
    this.tally(message.preVote);
  }
}

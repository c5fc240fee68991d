import type { EngineOptions, LogEntry, Membership, NodeId } from "../engine/contract.js";
import type { RaftConfig } from "./config.js";
import { majority, majorityGroups } from "./membership.js";
import type { AppendRequest, RaftHardState, RaftMessage, VoteResponse } from "./messages.js";
import { RaftEngine } from "./raft.js";

/**
 * Deliberately broken variants of the Raft engine, each a classic mistake. They exist so the
 * simulator can prove it catches every one (`synod sim --protocol raft --mutant NAME`); the
 * production engine never selects one.
 *
 * Each mutant is a subclass of `RaftEngine` that overrides the protected method implementing
 * the one rule it breaks (documented there, with its section of the paper or thesis), so the
 * correct engine carries no trace of them and its hot paths test no mutant flag.
 */
export const RAFT_MUTANTS = {
  "vote-twice": "grants a vote to any up-to-date candidate, even after voting in this term",
  "vote-before-persist": "sends a granted vote before the vote is durable",
  "commit-previous-term": "commits an entry of an earlier term by counting replicas (Figure 8)",
  "keep-conflicting-entries": "keeps conflicting entries instead of truncating the follower's log",
  "read-without-quorum": "serves linearizable reads at the commit index without confirming leadership",
  "apply-before-commit": "hands entries to the state machine before they are committed",
  "accept-stale-append-response": "forgets the term check on AppendEntries responses",
  "snapshot-drops-later-entries": "installs every snapshot it receives, even one behind its commit index, discarding the log after it",
  "transfer-keeps-lease": "keeps serving lease reads after handing leadership over, though the new leader's voters ignored that lease",
  "config-on-commit": "acts on a new configuration only once it knows it committed, instead of as soon as it is in the log",
  "two-changes-in-flight": "starts a configuration change before the previous one committed",
  "learner-vote-counts": "asks learners for votes and counts theirs toward a majority",
  "config-never-commits": "waits for a configuration entry to apply before counting acknowledgements of it, and applies only what committed: no change ever commits",
  "quiesce-with-lagging-follower": "with quiesce on, a leader goes quiet once its log is committed even if a follower does not hold all of it (that follower may go quiet behind it)",
} as const;

export type RaftMutant = keyof typeof RAFT_MUTANTS;

export function isRaftMutant(name: string): name is RaftMutant {
  return Object.hasOwn(RAFT_MUTANTS, name);
}

/** Builds the engine of mutant `name`: a `RaftEngine` with one rule broken. */
export function createRaftMutant(name: RaftMutant, options: EngineOptions<RaftHardState>, config: RaftConfig): RaftEngine {
  return new MUTANT_ENGINES[name](options, config);
}

/** Votes again in a term it already voted in, for any candidate whose log is up to date. */
class VoteTwice extends RaftEngine {
  protected override mayGrantVote(): boolean {
    return true;
  }
}

/** A granted vote leaves with the Ready's other messages, before the vote is on disk. */
class VoteBeforePersist extends RaftEngine {
  protected override sendGrantedVote(to: NodeId, response: VoteResponse): void {
    this.send(to, response);
  }
}

/** Commits whatever a majority holds, whatever its term (the history of Figure 8). */
class CommitPreviousTerm extends RaftEngine {
  protected override commitsByCounting(): boolean {
    return true;
  }
}

/** Keeps what its log has where the leader's entries conflict, and appends only beyond it. */
class KeepConflictingEntries extends RaftEngine {
  protected override appendFromLeader(message: AppendRequest): number | null {
    if (!this.log.matchTerm(message.prevIndex, message.prevTerm)) return null;
    const fresh = message.entries.filter((entry) => entry.index > this.log.lastIndex);
    if (fresh.length > 0) this.log.tryAppend(this.log.lastIndex, this.log.lastTerm, fresh);
    return message.prevIndex + message.entries.length;
  }
}

/** Answers every read at once with its commit index, without confirming it still leads. */
class ReadWithoutQuorum extends RaftEngine {
  protected override handleReadRequest(from: NodeId, requestId: number): void {
    this.releaseRead(from, requestId, this.log.commitIndex);
  }
}

/** Hands out every entry in the log for applying, committed or not. */
class ApplyBeforeCommit extends RaftEngine {
  protected override takeEntriesToApply(): LogEntry[] {
    const saved = this.log.commitIndex;
    this.log.commitIndex = this.log.lastIndex;
    const entries = this.log.takeCommitted(this.config.applyEntriesPerReadyMax);
    this.log.commitIndex = saved;
    return entries;
  }
}

/** Counts an append acknowledgement of an earlier term as if it were of this one. */
class AcceptStaleAppendResponse extends RaftEngine {
  protected override heardFromEarlierTerm(message: RaftMessage): boolean {
    return super.heardFromEarlierTerm(message) || message.type === "append-response";
  }
}

/** Installs every snapshot, even one its commit index is past, and drops the log after it. */
class SnapshotDropsLaterEntries extends RaftEngine {
  protected override snapshotAlreadyCommitted(): boolean {
    return false;
  }

  protected override logHoldsSnapshot(): boolean {
    return false;
  }
}

/** Goes on trusting its lease after telling another member to campaign. */
class TransferKeepsLease extends RaftEngine {
  protected override surrenderLease(): void {
    // The lease is kept: the mistake.
  }
}

/** Acts on the configuration in force at its commit index rather than the latest in its log. */
class ConfigOnCommit extends RaftEngine {
  protected override configurationActedOn(): Membership {
    return this.membershipAt(this.log.commitIndex);
  }

  /** The configuration acted on now follows the commit index, so it is recomputed as that moves. */
  protected override commitLearned(): void {
    this.refreshMembership();
  }
}

/** Lets a configuration change start while the previous one is still uncommitted. */
class TwoChangesInFlight extends RaftEngine {
  protected override uncommittedChangeIndex(): number | null {
    return null;
  }
}

/** Asks learners for their votes, and adds those to every group's count. */
class LearnerVoteCounts extends RaftEngine {
  protected override campaignPeers(): NodeId[] {
    const peers = super.campaignPeers();
    peers.push(...this.current.learners);
    return peers;
  }

  protected override votesWin(votes: ReadonlyMap<NodeId, boolean>): boolean {
    let learnerVotes = 0;
    for (const id of this.current.learners) if (votes.get(id) === true) learnerVotes++;
    for (const group of majorityGroups(this.current)) {
      let granted = learnerVotes;
      for (const id of group) if (votes.get(id) === true) granted++;
      if (granted < majority(group.length)) return false;
    }
    return true;
  }
}

/** Never counts a configuration entry as committed: a change waits for ever, and the log behind it. */
class ConfigNeverCommits extends RaftEngine {
  protected override committableThrough(quorumIndex: number): number {
    const pending = this.configLog.firstAfter(this.log.commitIndex);
    return pending === null ? quorumIndex : Math.min(quorumIndex, pending - 1);
  }
}

/** Goes quiet without checking that every follower holds its whole log. */
class QuiesceWithLaggingFollower extends RaftEngine {
  protected override followersHoldWholeLog(): boolean {
    return true;
  }
}

const MUTANT_ENGINES: { readonly [name in RaftMutant]: new (options: EngineOptions<RaftHardState>, config: RaftConfig) => RaftEngine } = {
  "vote-twice": VoteTwice,
  "vote-before-persist": VoteBeforePersist,
  "commit-previous-term": CommitPreviousTerm,
  "keep-conflicting-entries": KeepConflictingEntries,
  "read-without-quorum": ReadWithoutQuorum,
  "apply-before-commit": ApplyBeforeCommit,
  "accept-stale-append-response": AcceptStaleAppendResponse,
  "snapshot-drops-later-entries": SnapshotDropsLaterEntries,
  "transfer-keeps-lease": TransferKeepsLease,
  "config-on-commit": ConfigOnCommit,
  "two-changes-in-flight": TwoChangesInFlight,
  "learner-vote-counts": LearnerVoteCounts,
  "config-never-commits": ConfigNeverCommits,
  "quiesce-with-lagging-follower": QuiesceWithLaggingFollower,
};

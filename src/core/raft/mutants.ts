/**
 * Deliberately broken variants of the Raft engine, each a classic mistake. They exist so the
 * simulator can prove it catches every one (`synod sim --protocol raft --mutant NAME`); the
 * production engine never selects one.
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
} as const;

export type RaftMutant = keyof typeof RAFT_MUTANTS;

export function isRaftMutant(name: string): name is RaftMutant {
  return Object.hasOwn(RAFT_MUTANTS, name);
}

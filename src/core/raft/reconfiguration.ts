import { InvalidInputError, MembershipChangeInProgressError } from "../common/errors.js";
import type { Admission, LogEntry, Membership, MembershipChange } from "../engine/contract.js";
import { isJoint, isVoter, leaveJoint, nextMembership, promoted } from "./membership.js";
import type { Replicator, ReplicatorHost } from "./replication.js";
import type { LeadershipTransfer } from "./transfer.js";

/** What configuration changes need from the engine that owns them (beside its Replicator and LeadershipTransfer): its parts, and functions made once, not per call. */
export interface ReconfigurationHost extends Pick<ReplicatorHost, "id" | "config" | "log" | "configLog" | "term" | "leading" | "membership"> {
  /** The engine's one-change-at-a-time rule (see its `uncommittedChangeIndex`). */
  readonly uncommittedChangeIndex: () => number | null;
  /** The engine learned a higher commit index (see its `commitLearned`). */
  readonly commitLearned: () => void;
  /** The engine recomputes the configuration it acts on (see its `refreshMembership`). */
  readonly refreshMembership: () => void;
  /** This leader steps down, and follows no one. */
  readonly stepDown: () => void;
  /** A leader appends a configuration entry of its term, and acts on it at once. */
  readonly appendConfig: (next: Membership) => void;
}

/**
 * A Raft node's configuration changes (thesis chapter 4), as the engine carries them out:
 * when a leader may start one (one at a time, after a commit of its term), what follows its
 * commit (leaving a joint configuration, a removed leader handing over, removed members let
 * go), learners promoted once caught up, configuration entries a follower appends or has
 * truncated, and who may campaign. Which configuration is acted on, and when a change
 * counts as in flight, are the engine's rules (the mutants override them); the
 * configurations themselves are in config-log.ts and membership.ts.
 */
export class Reconfiguration {
  /** The configuration index whose commit this leader has acted on (-1: none this term). */
  private settledIndex = -1;

  constructor(
    private readonly host: ReconfigurationHost,
    private readonly replicator: Replicator,
    private readonly transfer: LeadershipTransfer,
  ) {}

  /** A new leader has acted on no commit of its term yet. */
  newTerm(): void {
    this.settledIndex = -1;
  }

  /**
   * A leader's change (see `nextMembership` for which changes are direct and which go
   * through a joint configuration). Refused while a transfer is under way, while an earlier
   * change has not committed, or before this leader has committed an entry of its term.
   */
  propose(change: MembershipChange): Admission {
    if (this.transfer.target !== null) return { accepted: false, error: new MembershipChangeInProgressError("a leadership transfer is under way; retry when it ends") };
    const blocked = this.blocked();
    if (blocked !== null) return { accepted: false, error: new MembershipChangeInProgressError(blocked) };
    let next: Membership;
    try {
      next = nextMembership(this.host.membership(), change);
    } catch (error) {
      if (error instanceof InvalidInputError) return { accepted: false, error };
      throw error;
    }
    this.host.appendConfig(next);
    return { accepted: true };
  }

  /** Why a configuration change cannot start now, or null when it can. */
  private blocked(): string | null {
    const log = this.host.log;
    if (log.term(log.commitIndex) !== this.host.term()) return "this leader has not yet committed an entry of its term; retry in a moment";
    const pending = this.host.uncommittedChangeIndex();
    if (pending !== null) return `the configuration change at index ${pending} has not committed yet; one change at a time`;
    return null;
  }

  /**
   * After a follower's append: configuration entries that a conflict truncated away are
   * forgotten (the configuration before them applies again), and new ones take effect.
   */
  reconcile(appended: readonly LogEntry[]): void {
    const dropped = this.host.configLog.dropTruncated(this.host.log);
    const added = this.host.configLog.addAppended(appended, this.host.log);
    if (dropped || added) this.host.refreshMembership(); // from the new commit index too
    else this.host.commitLearned();
  }

  /**
   * Voters campaign; so does a node that the latest configuration removes while, as far as
   * it knows, that configuration has not committed. It may hold the most up-to-date log —
   * a leader that appended its own removal and crashed — and then the remaining voters
   * cannot win without its vote, which it refuses them: it must lead once more, commit its
   * removal, and hand over (thesis 4.2.2). Once the removal commits, it stops; before, a
   * cluster that moved on ignores its vote requests (they come from a non-member).
   */
  mayCampaign(): boolean {
    const { id, configLog } = this.host;
    if (isVoter(this.host.membership(), id)) return true;
    const latestIndex = configLog.latestIndex;
    return latestIndex > this.host.log.commitIndex && isVoter(configLog.membershipAt(latestIndex - 1), id);
  }

  /** This leader's configuration, committed, no longer has it as a voter. */
  removedFromCommittedConfig(): boolean {
    return this.host.configLog.latestIndex <= this.host.log.commitIndex && !isVoter(this.host.membership(), this.host.id);
  }

  /**
   * Once the latest configuration commits: a joint one set to leave automatically is left
   * (thesis 4.3), and a leader that is no longer a voter hands over to the most
   * up-to-date voter and steps down (thesis 4.2.2).
   */
  afterCommit(): void {
    this.host.commitLearned();
    const { replicator, transfer } = this;
    const latestIndex = this.host.configLog.latestIndex;
    // Hot path (every commit): act once per configuration and leader term.
    if (!this.host.leading() || latestIndex <= this.settledIndex || this.blocked() !== null) return;
    this.settledIndex = latestIndex;
    if (replicator.tracksRemoved()) replicator.sync(); // the removed ones' time is up
    if (this.removedFromCommittedConfig()) {
      if (transfer.target !== null) return;
      const target = replicator.mostUpToDateFollower();
      if (target === null) this.host.stepDown();
      else transfer.start(target);
      return;
    }
    const current = this.host.membership();
    if (isJoint(current) && current.autoLeave) this.host.appendConfig(leaveJoint(current));
  }

  /** A leader's tick: promotes one caught-up learner marked for it, when no change is in flight. */
  autoPromote(): void {
    const current = this.host.membership();
    if (current.autoPromote.length === 0 || isJoint(current) || this.transfer.target !== null) return;
    if (this.blocked() !== null) return;
    for (const id of current.autoPromote) {
      const pr = this.replicator.progress.get(id);
      if (pr === undefined || pr.state !== "replicate" || !pr.recentActive) continue;
      if (pr.match + this.host.config.learnerLagEntriesMax < this.host.log.lastIndex) continue;
      if (pr.match < pr.addedAt) continue; // it may not hold the entry that added it (Progress.addedAt)
      this.host.appendConfig(promoted(current, id));
      return;
    }
  }
}

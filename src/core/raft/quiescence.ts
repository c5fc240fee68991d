import type { NodeId, Role } from "../engine/contract.js";
import type { RaftMessage } from "./messages.js";
import type { ReadOnly } from "./read-only.js";
import type { Replicator, ReplicatorHost } from "./replication.js";
import type { LeadershipTransfer, TransferHost } from "./transfer.js";

/** What quiescence needs from the engine that owns it (beside its Replicator, LeadershipTransfer and ReadOnly): its parts, and functions made once, not per call. */
export interface QuiescenceHost extends Pick<ReplicatorHost, "config" | "log" | "term" | "leading" | "membership">, Pick<TransferHost, "lead"> {
  /** The engine's role (only a follower agrees to go quiet with its leader). */
  readonly role: () => Role;
  /** Entries were appended that the next Ready sends out (the engine's `broadcastPending`). */
  readonly broadcastPending: () => boolean;
  /** The engine's rule on followers before its leader goes quiet (see its `followersHoldWholeLog`). */
  readonly followersHoldWholeLog: () => boolean;
  /** A leader that wakes restarts its heartbeat and election (CheckQuorum) timers, and heartbeats at once. */
  readonly heartbeatAfresh: () => void;
}

/**
 * Quiescence (RaftConfig.quiesce; CockroachDB's quiesced ranges): an idle group goes quiet,
 * and a quiet engine ignores ticks — a leader sends no heartbeats, a follower's election
 * timer stands still — until something wakes it. This holds whether the engine is quiet,
 * and the rules: when a leader may go quiet, when a follower agrees, which messages a quiet
 * engine takes without waking, and what waking means. The engine skips its ticks while
 * quiet; the node wakes a quiet group whose leader's node it suspects has failed
 * (core/multi/liveness.ts), since a quiet follower counts no election timeout.
 */
export class Quiescence {
  private quietNow = false;

  constructor(
    private readonly host: QuiescenceHost,
    private readonly replicator: Replicator,
    private readonly transfer: LeadershipTransfer,
    private readonly reads: ReadOnly,
  ) {}

  /** Whether the engine is quiet: it ignores ticks until something wakes it. */
  get quiet(): boolean {
    return this.quietNow;
  }

  /**
   * Wakes a quiet engine; a no-op on one awake. Proposals, reads, transfers, configuration
   * changes and every message but a quiet group's own last heartbeat and its answers wake it
   * by themselves (see `received`); the node calls the engine's `wake` when it suspects the
   * node of this engine's leader has failed.
   *
   * A leader that wakes heartbeats at once — its followers wake, and if another leader was
   * elected meanwhile, their answers carry the newer term and it steps down — and starts
   * afresh: a CheckQuorum round begins (it steps down if no quorum answers within an
   * election timeout), and it holds no lease until a quorum acknowledges a heartbeat sent
   * after it woke (its lease clock stood still while it was quiet). A follower that wakes
   * resumes its election timer where it stopped: the time it was quiet counts toward no
   * timeout, so it keeps refusing votes for at least as long as an awake follower would.
   */
  wake(): void {
    if (!this.quietNow) return;
    this.quietNow = false;
    if (!this.host.leading()) return;
    this.replicator.forgetAcknowledgements();
    this.reads.forgetRounds();
    this.host.heartbeatAfresh();
  }

  /** The engine's role changed (it became a follower): it is awake, with nothing to redo. */
  reset(): void {
    this.quietNow = false;
  }

  /** A message arrived: it wakes a quiet engine, unless it is one a quiet engine takes without waking. */
  received(from: NodeId, message: RaftMessage): void {
    if (this.quietNow && !this.keepsQuiet(from, message)) this.wake();
  }

  /**
   * A leader's heartbeat is due: with quiescence on, a leader with nothing to do and
   * nothing to tell anyone goes quiet instead (`mayQuiesce`). Returns whether it did.
   */
  quiesceIfIdle(): boolean {
    if (!this.host.config.quiesce || !this.mayQuiesce()) return false;
    this.quiesce();
    return true;
  }

  /**
   * What a leader checks before it goes quiet, at a heartbeat: it has nothing to do and
   * nothing to tell anyone. Its log is all committed, an entry of its term included, and
   * durable here; no read waits, no proposal is held, no transfer or configuration change
   * (joint, or a learner to promote, or a removed member still tracked) is under way; and
   * every member holds its whole log (the engine's `followersHoldWholeLog`).
   */
  private mayQuiesce(): boolean {
    const { log } = this.host;
    const membership = this.host.membership();
    return (
      log.commitIndex === log.lastIndex &&
      log.durableIndex === log.lastIndex &&
      log.term(log.lastIndex) === this.host.term() &&
      !this.host.broadcastPending() &&
      this.reads.idle &&
      this.transfer.target === null &&
      this.transfer.heldBytes === 0 &&
      membership.outgoing.length === 0 &&
      membership.autoPromote.length === 0 &&
      !this.replicator.tracksRemoved() &&
      this.host.followersHoldWholeLog()
    );
  }

  /**
   * Goes quiet: the last heartbeat tells every follower the commit index (its last index)
   * and to go quiet too. The lease is given up now, not on waking: the lease clock stops
   * with the ticks, so it could not tell how long the leader was quiet.
   */
  private quiesce(): void {
    this.quietNow = true;
    this.replicator.broadcastQuiesce();
    this.replicator.forgetAcknowledgements();
    this.reads.forgetRounds();
  }

  /**
   * A follower told to go quiet (by its leader's last heartbeat, which says `commit`) does
   * so only if it agrees: it follows the sender (step made sure: same term, that leader)
   * and its log ends exactly at the leader's commit index, all of it committed. Otherwise
   * it stays awake; its election timer then runs, and its campaign (or any message) wakes
   * the group.
   */
  askedToQuiesce(commit: number): void {
    if (!this.host.config.quiesce || this.host.role() !== "follower") return;
    const { log } = this.host;
    if (log.lastIndex !== commit || log.commitIndex !== commit) return;
    this.quietNow = true;
  }

  /**
   * The messages a quiet engine takes without waking: a follower, its leader's last
   * heartbeat again (a duplicate); a leader, the answers to it. Anything else — a newer
   * term, an append, a vote request, a proposal or read forwarded to it — wakes it.
   */
  private keepsQuiet(from: NodeId, message: RaftMessage): boolean {
    if (message.term !== this.host.term()) return false;
    if (this.host.leading()) return message.type === "heartbeat-response";
    return message.type === "heartbeat" && message.quiesce === true && from === this.host.lead();
  }
}

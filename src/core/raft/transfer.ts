import type { NodeId } from "../engine/contract.js";
import type { Progress } from "./progress.js";
import type { Replicator, ReplicatorHost } from "./replication.js";

/** What a leadership transfer needs from the engine that owns it (beside its Replicator): its parts, and functions made once, not per call. */
export interface TransferHost extends Pick<ReplicatorHost, "config" | "log" | "term" | "leading" | "send"> {
  /** The leader the engine follows, if it knows one. */
  readonly lead: () => NodeId | null;
  /** The engine's rule for its lease once it has told a member to campaign (see its `surrenderLease`). */
  readonly surrenderLease: () => void;
  /** This leader's configuration, committed, no longer has it as a voter. */
  readonly removedFromCommittedConfig: () => boolean;
  /** This leader steps down, and follows no one. */
  readonly stepDown: () => void;
  /** A leader appends a proposal, if the bound on uncommitted bytes admits it. */
  readonly appendProposal: (data: Uint8Array) => void;
}

/**
 * Leadership transfer (thesis 3.10): the member a leader is handing over to, brought up to
 * the leader's log and then told to campaign at once (timeout-now), or given up on after an
 * election timeout. And the proposals held meanwhile: those that arrive while this node
 * cannot append them — it is handing leadership over, or they were forwarded to it after it
 * stopped leading. They wait, and go to whoever leads next (appended here if this node
 * leads again or abandons the transfer, forwarded to the leader once this node hears from
 * one), so clients see a pause, not a refusal. Bounded by `uncommittedBytesMax`.
 */
export class LeadershipTransfer {
  /** The member this leader is handing over to, if any. */
  private targetId: NodeId | null = null;
  private elapsedTicks = 0;
  private held: Uint8Array[] = [];
  private heldByteCount = 0;

  constructor(
    private readonly host: TransferHost,
    private readonly replicator: Replicator,
  ) {}

  get target(): NodeId | null {
    return this.targetId;
  }

  /** Bytes of proposals waiting for the next leader. */
  get heldBytes(): number {
    return this.heldByteCount;
  }

  /** Starts handing over to `target`: at once if its log matches this leader's, else once it does. */
  start(target: NodeId): void {
    this.targetId = target;
    this.elapsedTicks = 0;
    if ((this.replicator.progress.get(target) as Progress).match === this.host.log.lastIndex) this.handOver(target);
    else this.replicator.sendAppend(target);
  }

  /** The target's log has caught up with this leader's (`pr` is its progress): hand over. */
  caughtUp(from: NodeId, pr: Progress): void {
    if (from === this.targetId && pr.match === this.host.log.lastIndex) this.handOver(from);
  }

  /** Tells the caught-up transfer target to campaign; a removed leader steps down at once. */
  private handOver(target: NodeId): void {
    this.host.surrenderLease();
    this.host.send(target, { type: "timeout-now", term: this.host.term() });
    if (this.host.removedFromCommittedConfig()) this.host.stepDown();
  }

  /**
   * A leader's tick. The target did not take over within an election timeout (it is down,
   * or cut off): give up, and append what waited — unless this leader was removed, when it
   * steps down and lets the remaining voters elect one.
   */
  tick(): void {
    if (this.targetId === null || ++this.elapsedTicks < this.host.config.electionTicks) return;
    this.targetId = null;
    if (this.host.removedFromCommittedConfig()) {
      this.host.stepDown();
      return;
    }
    this.releaseHeld();
  }

  /** Forgets the transfer (this node's role changed); what is held stays held. */
  forget(): void {
    this.targetId = null;
  }

  /** The configuration no longer has the target as a voter: the transfer is abandoned, and what waited is appended. */
  targetLeft(voters: readonly NodeId[]): void {
    if (this.targetId === null || voters.includes(this.targetId)) return;
    this.targetId = null;
    this.releaseHeld();
  }

  /** Keeps a proposal for the next leader; false when the bound on held bytes is reached. */
  hold(data: Uint8Array): boolean {
    if (this.heldByteCount > 0 && this.heldByteCount + data.length > this.host.config.uncommittedBytesMax) return false;
    this.held.push(data);
    this.heldByteCount += data.length;
    return true;
  }

  /** Proposals held during a transfer go to the log (this node leads) or to the leader it follows. */
  releaseHeld(): void {
    if (this.held.length === 0) return;
    const held = this.held;
    this.held = [];
    this.heldByteCount = 0;
    if (this.host.leading()) {
      for (const data of held) this.host.appendProposal(data);
    } else {
      const lead = this.host.lead();
      if (lead !== null) this.host.send(lead, { type: "propose", term: this.host.term(), data: held });
    }
  }
}

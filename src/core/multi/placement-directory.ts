/**
 * What a node decides from the ranges' descriptions its peers send it (docs/sharding.md,
 * "Placement"): which of two descriptions of a range to believe, whether its own replica
 * was removed from the range, and whether a member's message for a range it does not host
 * should make it host it. Pure, and the same for the real node
 * (src/runtime/server/range-placement.ts) and the simulator (src/sim/placement.ts).
 */
import { isMember } from "../engine/membership.js";
import type { Membership, NodeId } from "../engine/contract.js";

/** A range as the node hosting it describes it. */
export interface RangeDescription {
  /** The range's epoch (it moves on every split); absent where ranges do not split. */
  readonly epoch?: number;
  readonly term: number;
  readonly role: string;
  readonly leader: NodeId | null;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly applied: number;
  /**
   * The index the range's span was last set at (KvMeta.spanSince: its last split's; 0: it
   * never split). Absent where ranges do not split, or from a node from before it was said.
   */
  readonly spanSince?: number;
}

/**
 * Which of two descriptions of a range is fresher: a later epoch, then one that knows a
 * leader, then term, then the leader's own, then the further applied. A replica that knows
 * no leader says little of the range: a removed one its removal never reached campaigns on
 * and on, each try a term higher, and ranked by term alone its description would hide the
 * leader's for good (the nodes its leader added would never host the range, and it would
 * never learn it was removed; the simulator found it).
 */
export function fresher<D extends RangeDescription>(a: D, b: D): D {
  if ((a.epoch ?? 0) !== (b.epoch ?? 0)) return (a.epoch ?? 0) > (b.epoch ?? 0) ? a : b;
  if ((a.leader === null) !== (b.leader === null)) return a.leader !== null ? a : b;
  if (a.term !== b.term) return a.term > b.term ? a : b;
  const aLeads = a.role === "leader";
  if (aLeads !== (b.role === "leader")) return aLeads ? a : b;
  return a.applied >= b.applied ? a : b;
}

/** Whether the description counts `self` among the range's replicas. */
export function counts(description: RangeDescription, self: NodeId): boolean {
  return description.voters.includes(self) || description.learners.includes(self);
}

/** What a node's own replica of a range says of itself. */
export interface OwnReplica {
  /** The latest configuration in its log, and the one in force at what it applied. */
  readonly membership: Membership;
  readonly appliedMembership: Membership;
  /** The last index in its log. */
  readonly lastIndex: number;
}

/**
 * Whether `self`'s replica was removed from its range: the configuration it applied leaves
 * it out (a removal still only in its log may yet be undone) and the range's freshest
 * description does not count it in, or the range's leader, having applied past the end of
 * this replica's log, describes it without this node (a configuration later than any this
 * replica holds, its joining one included). Only for a replica that has been a member since
 * it was hosted.
 *
 * The description guards a node added again to a range it was removed from: its replica,
 * catching up from the log it kept, applies its old removal before it reaches the entry
 * that added it back. Dropped then, it would be sent the range's state again for nothing.
 * (It once did worse: its leader promoted it on the acknowledgements it had sent, and a
 * quorum that needed it never formed again; a leader now counts none below the entry that
 * added a node back, Progress.addedAt.)
 */
export function removedFrom(own: OwnReplica, described: RangeDescription | undefined, self: NodeId): "here" | "by-leader" | null {
  if (!isMember(own.membership, self) && !isMember(own.appliedMembership, self) && (described === undefined || !counts(described, self))) return "here";
  if (described !== undefined && described.role === "leader" && described.leader !== self && described.applied > own.lastIndex && !counts(described, self)) return "by-leader";
  return null;
}

/**
 * Whether `self`'s replica, which has never been a member since it was hosted (so
 * `removedFrom` does not judge it), is a stray: neither configuration it holds counts it in,
 * nor does the freshest description of its range (a range not described says nothing). A replica hosted for its leader's message
 * can be sent a snapshot whose configuration has removed it already (the move was undone
 * before it caught up): nothing will ever send it more, and its span, stale from then on,
 * keeps the node from hosting the ranges later split from it. Dropped once it has been one
 * for a while (a learner taking the log from its first entry is counted in by its leader's
 * description meanwhile).
 */
export function strayReplica(own: Omit<OwnReplica, "lastIndex">, described: RangeDescription | undefined, self: NodeId): boolean {
  return !isMember(own.membership, self) && !isMember(own.appliedMembership, self) && described !== undefined && !counts(described, self);
}

/**
 * Whether a member's message for a range this node does not host should make it host the
 * range (with nothing, to be sent its state): the freshest description counts this node
 * in, at a later applied index than any at which this node dropped the range (an older one
 * must not bring back a replica just removed).
 */
export function adoptable(described: RangeDescription, self: NodeId, droppedAt: number | undefined): boolean {
  return counts(described, self) && described.applied > (droppedAt ?? -1);
}

/**
 * The least index of the snapshot a replica hosted with no state, over the span `described`
 * gives, must install before it takes any entry (EngineOptions.awaitSnapshot): one at or
 * after the index the span was last set at holds that span or a narrower one (a later
 * split's); an earlier one, or the log from its start, a wider one, and applied over this
 * span it would build another state. Where the description does not say that index (a node
 * from before it was said), the index it was described at, which is later: a leader may then
 * have to apply that far before it can send one.
 */
export function snapshotFloor(described: Pick<RangeDescription, "applied" | "spanSince">): number {
  return Math.max(1, described.spanSince ?? described.applied);
}

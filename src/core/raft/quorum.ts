import type { Membership, NodeId } from "../engine/contract.js";
import { majority, majorityGroups } from "./membership.js";
import type { Progress } from "./progress.js";

/**
 * What a quorum of a Raft configuration has reached, from the leader's view of each member
 * (its `Progress`): the highest index a majority holds (the commit rule, section 5.3), or
 * the latest heartbeat a majority acknowledged (the leader's lease, thesis 6.4.1).
 *
 * For each voter group of the configuration — the voters, and while joint the outgoing
 * voters too (thesis 4.3: a joint decision needs a majority of both) — the value is the
 * majority-th largest of the members' values: at least that many members have reached it.
 * The configuration's value is the least over its groups. Learners count toward nothing.
 *
 * A leader computes this on every acknowledgement, so it allocates nothing: the values of a
 * group are insertion-sorted, descending, into one array reused from call to call. One
 * instance per engine; not reentrant (a `value` function must not compute a quorum itself).
 */
export class QuorumValue {
  private readonly sorted: number[] = [];

  /** The value a majority of every group of `membership` has reached; every voter must be in `progress`. */
  of(membership: Membership, progress: ReadonlyMap<NodeId, Progress>, value: (peer: NodeId, pr: Progress) => number): number {
    let agreed = Number.POSITIVE_INFINITY;
    for (const group of majorityGroups(membership)) agreed = Math.min(agreed, this.ofGroup(group, progress, value));
    return agreed;
  }

  private ofGroup(group: readonly NodeId[], progress: ReadonlyMap<NodeId, Progress>, value: (peer: NodeId, pr: Progress) => number): number {
    const values = this.sorted;
    let n = 0;
    for (const peer of group) {
      const v = value(peer, progress.get(peer) as Progress);
      let i = n++;
      while (i > 0 && (values[i - 1] as number) < v) {
        values[i] = values[i - 1] as number;
        i--;
      }
      values[i] = v;
    }
    return values[majority(group.length) - 1] as number;
  }
}

/** Whether `id` alone is a majority of every group: it commits and confirms reads without asking anyone. */
export function isSoleQuorum(membership: Membership, id: NodeId): boolean {
  return majorityGroups(membership).every((group) => group.length === 1 && group[0] === id);
}

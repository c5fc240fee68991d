/**
 * A sharded cluster's ranges follow group 0's members (docs/sharding.md, "Members"). Who is
 * in the cluster is decided in group 0, as on a cluster of one range: `POST /v1/members`
 * and a join change group 0's configuration. Every other range is a group of the same
 * members, brought there by its leader, one configuration change at a time, whichever node
 * leads it and however often leaders change on the way: `rangeMembershipChange` says what a
 * range's leader proposes next. Pure, so it is tested over every shape of configuration.
 */
import type { Membership, MembershipChange, NodeId } from "../engine/contract.js";

/**
 * The change that brings `range`'s configuration to `cluster`'s (group 0's), or null when it
 * is there already, or is in a joint configuration (which it leaves by itself first). A
 * learner group 0 will promote once caught up may be a voter of the range already (the range
 * promoted it first), and a voter of group 0 may still be a learner the range is about to
 * promote: both count as there, so neither is undone.
 */
export function rangeMembershipChange(cluster: Membership, range: Membership): MembershipChange | null {
  if (range.outgoing.length > 0 || cluster.outgoing.length > 0) return null;
  const promoting = new Set(cluster.autoPromote);
  const rangePromoting = new Set(range.autoPromote);
  const rangeVoters = new Set(range.voters);
  const rangeLearners = new Set(range.learners);
  const voters: NodeId[] = [];
  const learners: NodeId[] = [];
  const autoPromote: NodeId[] = [];
  for (const id of cluster.voters) {
    // About to be promoted in the range: leave it to the range's leader.
    if (rangeLearners.has(id) && rangePromoting.has(id)) {
      learners.push(id);
      autoPromote.push(id);
    } else voters.push(id);
  }
  for (const id of cluster.learners) {
    // Promoted in the range already: keep it a voter there.
    if (promoting.has(id) && rangeVoters.has(id)) voters.push(id);
    else {
      learners.push(id);
      if (promoting.has(id)) autoPromote.push(id);
    }
  }
  const same = sameSet(voters, range.voters) && sameSet(learners, range.learners) && sameSet(autoPromote, range.autoPromote);
  if (same) return null;
  return { voters: sorted(voters), learners: sorted(learners), autoPromote: sorted(autoPromote), context: cluster.context };
}

function sameSet(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((id) => set.has(id));
}

function sorted(ids: readonly NodeId[]): NodeId[] {
  return [...ids].sort((x, y) => x - y);
}

import { assert } from "../common/assert.js";
import { InvalidInputError } from "../common/errors.js";
import type { Membership, MembershipChange, NodeId } from "../engine/contract.js";

import { checkMembership } from "../engine/membership.js";

export { decodeMembership, encodeMembership, isMember, members, validateMembership } from "../engine/membership.js";

const EMPTY = new Uint8Array(0);

/** The configuration of a cluster bootstrapped with `voters`. */
export function bootstrapMembership(voters: readonly NodeId[]): Membership {
  return { voters: [...voters], outgoing: [], learners: [], autoPromote: [], autoLeave: true, context: EMPTY };
}

export function isJoint(m: Membership): boolean {
  return m.outgoing.length > 0;
}

/** Voters of either half of a joint configuration: whoever may campaign and vote. */
export function isVoter(m: Membership, id: NodeId): boolean {
  return m.voters.includes(id) || m.outgoing.includes(id);
}



/** The majority groups a decision needs: the voters, and the outgoing voters while joint. */
export function majorityGroups(m: Membership): readonly (readonly NodeId[])[] {
  // Memoized per configuration: quorum checks run on every acknowledgement.
  let groups = GROUPS.get(m);
  if (groups === undefined) {
    groups = isJoint(m) ? [m.voters, m.outgoing] : [m.voters];
    GROUPS.set(m, groups);
  }
  return groups;
}

const GROUPS = new WeakMap<Membership, readonly (readonly NodeId[])[]>();

export function majority(size: number): number {
  return Math.floor(size / 2) + 1;
}

/**
 * Whether `has` holds for a majority of every group: a vote won, a read confirmed, a quorum
 * active. No allocation (hot path for reads).
 */
export function hasMajority(m: Membership, has: (id: NodeId) => boolean): boolean {
  for (const group of majorityGroups(m)) {
    let count = 0;
    for (const id of group) if (has(id)) count++;
    if (count < majority(group.length)) return false;
  }
  return true;
}

/** Whether `refused` holds for so many of some group that a majority of it can no longer agree. */
export function majorityImpossible(m: Membership, refused: (id: NodeId) => boolean): boolean {
  for (const group of majorityGroups(m)) {
    let count = 0;
    for (const id of group) if (refused(id)) count++;
    if (count > group.length - majority(group.length)) return true;
  }
  return false;
}

function sameSet(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}

/**
 * The configuration that `change` asks to go to from `current` (thesis chapter 4): the new
 * one directly when at most one voter changes, else the joint configuration; when
 * `current` is joint, the configuration that leaves it. Throws InvalidInputError for a
 * change that is malformed or that cannot be made from here.
 */
export function nextMembership(current: Membership, change: MembershipChange): Membership {
  const autoPromote = change.autoPromote ?? [];
  checkMembership({ voters: change.voters, outgoing: [], learners: change.learners, autoPromote, autoLeave: true, context: change.context }, { votersRequired: true });
  const base = { voters: [...change.voters], learners: [...change.learners], autoPromote: [...autoPromote], context: change.context };
  if (isJoint(current)) {
    if (!sameSet(change.voters, current.voters)) {
      throw new InvalidInputError(`the cluster is in a joint configuration (voters ${current.voters.join(",")} and ${current.outgoing.join(",")}); leave it first, with the voters ${current.voters.join(",")}`);
    }
    return { ...base, outgoing: [], autoLeave: true };
  }
  const changedVoters = change.voters.filter((id) => !current.voters.includes(id)).length + current.voters.filter((id) => !change.voters.includes(id)).length;
  if (changedVoters <= 1 && change.joint !== true) return { ...base, outgoing: [], autoLeave: true };
  // While joint, the old voters still vote; one that is to end as a learner is added to the
  // learners only when the joint configuration is left, so no id is in two lists.
  for (const id of change.learners) {
    if (current.voters.includes(id)) throw new InvalidInputError(`node ${id} cannot turn from voter into learner in a joint change; remove it, then add it as a learner`);
  }
  return { ...base, outgoing: [...current.voters], autoLeave: change.autoLeave ?? true };
}

/** The configuration that leaves the joint configuration `joint`, keeping its learners. */
export function leaveJoint(joint: Membership): Membership {
  assert(isJoint(joint), "leaving a configuration that is not joint");
  return { ...joint, outgoing: [], autoLeave: true };
}

/** `m` with learner `id` made a voter (a change of one voter). */
export function promoted(m: Membership, id: NodeId): Membership {
  assert(m.learners.includes(id) && !isJoint(m), `node ${id} is not a learner of a simple configuration`);
  return { ...m, voters: [...m.voters, id], learners: m.learners.filter((x) => x !== id), autoPromote: m.autoPromote.filter((x) => x !== id) };
}

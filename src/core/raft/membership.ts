import { assert } from "../common/assert.js";
import { InvalidInputError } from "../common/errors.js";
import type { Membership, MembershipChange, NodeId } from "../engine/contract.js";

import { checkIds, MEMBERSHIP_CONTEXT_BYTES_MAX } from "../engine/membership-codec.js";

export { decodeMembership, encodeMembership, validateMembership } from "../engine/membership-codec.js";

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

export function isMember(m: Membership, id: NodeId): boolean {
  return isVoter(m, id) || m.learners.includes(id);
}

/** Every member, each once: voters, then outgoing voters not among them, then learners. */
export function members(m: Membership): NodeId[] {
  const out = [...m.voters];
  for (const id of m.outgoing) if (!out.includes(id)) out.push(id);
  for (const id of m.learners) if (!out.includes(id)) out.push(id);
  return out;
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

export function sameMembers(a: Membership, b: Membership): boolean {
  return sameSet(a.voters, b.voters) && sameSet(a.outgoing, b.outgoing) && sameSet(a.learners, b.learners) && sameSet(a.autoPromote, b.autoPromote);
}


/**
 * The configuration that `change` asks to go to from `current` (thesis chapter 4): the new
 * one directly when at most one voter changes, else the joint configuration; when
 * `current` is joint, the configuration that leaves it. Throws InvalidInputError for a
 * change that is malformed or that cannot be made from here.
 */
export function nextMembership(current: Membership, change: MembershipChange): Membership {
  checkIds(change.voters, "voters");
  checkIds(change.learners, "learners");
  const autoPromote = change.autoPromote ?? [];
  checkIds(autoPromote, "learners to promote");
  if (change.voters.length === 0) throw new InvalidInputError("a configuration needs at least one voter");
  for (const id of change.learners) if (change.voters.includes(id)) throw new InvalidInputError(`node ${id} cannot be both a voter and a learner`);
  for (const id of autoPromote) if (!change.learners.includes(id)) throw new InvalidInputError(`node ${id} is to be promoted but is not a learner`);
  if (change.context.length > MEMBERSHIP_CONTEXT_BYTES_MAX) throw new InvalidInputError(`the configuration's context is ${change.context.length} bytes; at most ${MEMBERSHIP_CONTEXT_BYTES_MAX}`);
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

export function describeMembership(m: Membership): string {
  const joint = isJoint(m) ? ` & ${m.outgoing.join(",")}` : "";
  const learners = m.learners.length > 0 ? ` learners ${m.learners.join(",")}` : "";
  return `voters ${m.voters.join(",")}${joint}${learners}`;
}

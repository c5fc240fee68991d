import { assert } from "../common/assert.js";
import { InvalidInputError } from "../common/errors.js";
import type { Membership, MembershipChange, NodeId } from "../engine/contract.js";

import { checkMembership, isJoint } from "../engine/membership.js";

export {
  decodeMembership,
  encodeMembership,
  hasMajority,
  isJoint,
  isMember,
  isVoter,
  majority,
  majorityGroups,
  majorityImpossible,
  members,
  validateMembership,
} from "../engine/membership.js";

const EMPTY = new Uint8Array(0);

/** The configuration of a cluster bootstrapped with `voters`. */
export function bootstrapMembership(voters: readonly NodeId[]): Membership {
  return { voters: [...voters], outgoing: [], learners: [], autoPromote: [], autoLeave: true, context: EMPTY };
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

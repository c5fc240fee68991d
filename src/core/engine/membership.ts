import { InvalidInputError } from "../common/errors.js";
import type { Membership, NodeId } from "./contract.js";

/**
 * What every layer needs to know of a configuration (`Membership`) without knowing the
 * engine: its rules, its encoding (engines put it in configuration entries, storage in
 * snapshot files) and a few questions about it. The encoding:
 *
 *   u8 format (1) | 4 id lists: voters, outgoing, learners, autoPromote (u32 count, f64 each)
 *   | u8 autoLeave | u32 context length | context
 *
 * Big-endian, as DataView writes by default.
 */
const MEMBERSHIP_FORMAT = 1;
/** More members than this in one configuration is a mistake, not a cluster. */
export const MEMBERS_MAX = 1024;
/** The context is replicated in every configuration entry and snapshot: keep it small. */
export const MEMBERSHIP_CONTEXT_BYTES_MAX = 1024 * 1024;

function checkIds(ids: readonly NodeId[], what: string): void {
  if (ids.length > MEMBERS_MAX) throw new InvalidInputError(`${ids.length} ${what}; at most ${MEMBERS_MAX}`);
  for (const id of ids) if (!Number.isSafeInteger(id) || id <= 0) throw new InvalidInputError(`${what} must be positive integers, got ${id}`);
  if (new Set(ids).size !== ids.length) throw new InvalidInputError(`${what} must not repeat an id`);
}

/**
 * The rules every configuration obeys, for one decoded from a peer or a file: ids valid
 * and each in one list only (a joint configuration's outgoing voters may also be voters),
 * learners to promote among the learners, and — for a configuration entry — some voter. An
 * engine would otherwise trust a configuration that counts one node twice, or that asks it
 * to promote a node that is not a learner. Throws InvalidInputError.
 */
export function checkMembership(m: Membership, options: { readonly votersRequired: boolean }): void {
  checkIds(m.voters, "voters");
  checkIds(m.outgoing, "outgoing voters");
  checkIds(m.learners, "learners");
  checkIds(m.autoPromote, "learners to promote");
  if (options.votersRequired && m.voters.length === 0) throw new InvalidInputError("a configuration needs at least one voter");
  for (const id of m.learners) {
    if (m.voters.includes(id) || m.outgoing.includes(id)) throw new InvalidInputError(`node ${id} cannot be both a voter and a learner`);
  }
  for (const id of m.autoPromote) if (!m.learners.includes(id)) throw new InvalidInputError(`node ${id} is to be promoted but is not a learner`);
  if (m.context.length > MEMBERSHIP_CONTEXT_BYTES_MAX) throw new InvalidInputError(`the configuration's context is ${m.context.length} bytes; at most ${MEMBERSHIP_CONTEXT_BYTES_MAX}`);
}

export function encodeMembership(m: Membership): Uint8Array {
  const lists = [m.voters, m.outgoing, m.learners, m.autoPromote];
  let bytes = 1 + 1 + 4 + m.context.length;
  for (const list of lists) bytes += 4 + 8 * list.length;
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  let at = 0;
  view.setUint8(at, MEMBERSHIP_FORMAT);
  at += 1;
  for (const list of lists) {
    view.setUint32(at, list.length);
    at += 4;
    for (const id of list) {
      view.setFloat64(at, id);
      at += 8;
    }
  }
  view.setUint8(at, m.autoLeave ? 1 : 0);
  at += 1;
  view.setUint32(at, m.context.length);
  at += 4;
  out.set(m.context, at);
  return out;
}

/** Decodes a configuration entry's data; InvalidInputError when it is not one. */
export function decodeMembership(data: Uint8Array): Membership {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = 0;
  const need = (bytes: number): void => {
    if (at + bytes > data.length) throw new InvalidInputError(`a configuration entry of ${data.length} bytes is cut short`);
  };
  need(1);
  const format = view.getUint8(at);
  at += 1;
  if (format !== MEMBERSHIP_FORMAT) throw new InvalidInputError(`unknown configuration format ${format}`);
  const lists: NodeId[][] = [];
  for (let l = 0; l < 4; l++) {
    need(4);
    const count = view.getUint32(at);
    at += 4;
    if (count > MEMBERS_MAX) throw new InvalidInputError(`a configuration with ${count} ids in one list`);
    need(8 * count);
    const list: NodeId[] = [];
    for (let i = 0; i < count; i++) {
      const id = view.getFloat64(at);
      at += 8;
      if (!Number.isSafeInteger(id) || id <= 0) throw new InvalidInputError(`a configuration with the node id ${id}`);
      list.push(id);
    }
    lists.push(list);
  }
  need(5);
  const autoLeave = view.getUint8(at) === 1;
  at += 1;
  const contextBytes = view.getUint32(at);
  at += 4;
  need(contextBytes);
  const context = data.slice(at, at + contextBytes);
  at += contextBytes;
  if (at !== data.length) throw new InvalidInputError(`a configuration entry has ${data.length - at} bytes too many`);
  const [voters, outgoing, learners, autoPromote] = lists as [NodeId[], NodeId[], NodeId[], NodeId[]];
  const m = { voters, outgoing, learners, autoPromote, autoLeave, context };
  checkMembership(m, { votersRequired: false });
  return m;
}

/** Checks a membership decoded from a peer (in a snapshot chunk). */
export function validateMembership(value: unknown): Membership {
  if (typeof value !== "object" || value === null) throw new InvalidInputError("a membership must be an object");
  const m = value as Record<string, unknown>;
  for (const field of ["voters", "outgoing", "learners", "autoPromote"]) {
    const list = m[field];
    if (!Array.isArray(list) || !list.every((id) => typeof id === "number")) throw new InvalidInputError(`membership.${field} must be a list of ids`);
  }
  if (typeof m["autoLeave"] !== "boolean") throw new InvalidInputError("membership.autoLeave must be a boolean");
  if (!(m["context"] instanceof Uint8Array)) throw new InvalidInputError("membership.context must be bytes");
  checkMembership(value as Membership, { votersRequired: false });
  return value as Membership;
}

/** In either voter list, or a learner. */
export function isMember(m: Membership, id: NodeId): boolean {
  return m.voters.includes(id) || m.outgoing.includes(id) || m.learners.includes(id);
}

/** Every member, each once: voters, then outgoing voters not among them, then learners. */
export function members(m: Membership): NodeId[] {
  const out = [...m.voters];
  for (const id of m.outgoing) if (!out.includes(id)) out.push(id);
  for (const id of m.learners) if (!out.includes(id)) out.push(id);
  return out;
}

/** One line for traces and logs: voters, the outgoing half of a joint configuration, learners. */
export function describeMembership(m: Membership): string {
  const joint = m.outgoing.length > 0 ? ` & ${m.outgoing.join(",")} (joint${m.autoLeave ? "" : ", left on request"})` : "";
  const learners = m.learners.length > 0 ? `, learners ${m.learners.join(",")}` : "";
  const promote = m.autoPromote.length > 0 ? ` (to promote: ${m.autoPromote.join(",")})` : "";
  return `voters ${m.voters.join(",") || "none"}${joint}${learners}${promote}`;
}

// ---- quorums, shared by every engine with membership ----

/** A configuration with an outgoing half: decisions need a majority of both. */
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

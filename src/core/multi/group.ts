/**
 * Consensus groups: a node hosts any number of replicas, each a member of one group, and
 * every message between nodes says which group it is for. Group 0 is the group every
 * cluster has today (the whole key space); later groups are ranges of it (issue 16).
 */
import { assert } from "../common/assert.js";

/** Names a consensus group: an integer in 0 .. GROUP_ID_MAX. */
export type GroupId = number;

/** The one group every cluster has. */
export const DEFAULT_GROUP: GroupId = 0;

/** The largest group id: what the wire's group field holds (an unsigned 32-bit integer). */
export const GROUP_ID_MAX = 0xffff_ffff;

export function isGroupId(value: unknown): value is GroupId {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= GROUP_ID_MAX;
}

export function assertGroupId(value: number, what = "a group id"): asserts value is GroupId {
  assert(isGroupId(value), `${what} must be an integer in 0 .. ${GROUP_ID_MAX}, got ${value}`);
}

/** A peer message tagged with the group it is for. `M` is the engine's message type. */
export interface GroupEnvelope<M> {
  readonly group: GroupId;
  readonly message: M;
}

/**
 * The group that owns `key` when `groupCount` groups split the key space by a fixed hash
 * (FNV-1a, 32 bits, over the key's UTF-16 code units): the simulator's stand-in for ranges,
 * the same on every node and every run.
 */
export function groupOfKey(key: string, groupCount: number): GroupId {
  assert(Number.isSafeInteger(groupCount) && groupCount >= 1, `a key space splits over at least one group, got ${groupCount}`);
  if (groupCount === 1) return DEFAULT_GROUP;
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return hash % groupCount;
}

/**
 * The member directory: where each member of the cluster can be reached. It travels as the
 * configuration's `context` (opaque to the engine), so every node learns a new member's
 * addresses from the same log entry that makes it a member, and a restarted node finds them
 * in its log or snapshot. An empty context is the bootstrap configuration's: the addresses
 * are then the ones the node was started with (`--peers`).
 *
 *   {"members":[{"id":4,"peer":"127.0.0.1:7104","http":"http://127.0.0.1:7004"}, ...]}
 */
import { InvalidInputError } from "../../core/common/errors.js";
import { utf8Decode, utf8Encode } from "../../core/common/utf8.js";
import type { Membership, NodeId } from "../../core/engine/contract.js";
import { formatHostPort, parseHostPort, type MemberAddress } from "./config.js";

export function encodeDirectory(members: readonly MemberAddress[]): Uint8Array {
  const list = [...members].sort((a, b) => a.id - b.id).map((m) => ({ id: m.id, peer: formatHostPort(m.peer), http: m.http }));
  return utf8Encode(JSON.stringify({ members: list }));
}

/** The directory in a configuration's context; null for an empty (bootstrap) context. Throws InvalidInputError when malformed. */
export function decodeDirectory(context: Uint8Array): MemberAddress[] | null {
  if (context.length === 0) return null;
  let value: unknown;
  try {
    value = JSON.parse(utf8Decode(context));
  } catch (error) {
    throw new InvalidInputError("the member directory is not JSON", { cause: error });
  }
  const list = (value as { members?: unknown } | null)?.members;
  if (!Array.isArray(list)) throw new InvalidInputError("the member directory has no members list");
  return list.map((item: unknown) => {
    const { id, peer, http } = (item ?? {}) as Record<string, unknown>;
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id <= 0) throw new InvalidInputError("a member directory entry has a bad id");
    if (typeof peer !== "string") throw new InvalidInputError(`member ${id} has no peer address`);
    if (http !== null && typeof http !== "string") throw new InvalidInputError(`member ${id} has a bad HTTP address`);
    return { id, peer: parseHostPort(peer, `member ${id}'s peer address`), http };
  });
}

/** How a member takes part, for `GET /v1/members`. */
export function memberRole(m: Membership, id: NodeId): "voter" | "learner" | "leaving" {
  if (m.voters.includes(id)) return "voter";
  if (m.outgoing.includes(id)) return "leaving";
  return "learner";
}

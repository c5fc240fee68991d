import { describeUntrusted, InvalidInputError } from "../common/errors.js";
import type { LogEntry } from "../engine/contract.js";
import { checkMembership, decodeMembership, validateMembership } from "../engine/membership.js";
import type { PaxosMessage } from "./messages.js";

/**
 * The largest ballot taken from a peer: round 2^32, half the rounds a ballot can hold. No
 * cluster reaches it by elections, and a larger one, from a broken peer, would leave this
 * node's next ballot (round + 1) outside the range ballotOf accepts, and stop the engine.
 */
export const PEER_BALLOT_MAX = 2 ** 52;

/**
 * Checks that a value decoded off the wire is a well-formed Multi-Paxos message before the
 * engine sees it. The engine trusts its inputs' shapes (a wrong one trips an assertion and
 * stops the process); a peer's bytes are not trusted that far — a bug or a corrupted frame
 * elsewhere costs one dropped message, not this node.
 */
export function validatePaxosMessage(value: unknown): PaxosMessage {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidInputError("a Paxos message must be an object");
  const m = value as Record<string, unknown>;
  ballot(m, "ballot");
  switch (m["type"]) {
    case "prepare":
      positive(m, "from");
      flag(m, "probe");
      if (m["transfer"] !== undefined) flag(m, "transfer");
      break;
    case "promise":
      flag(m, "probe");
      positive(m, "from");
      index(m, "through");
      flag(m, "complete");
      index(m, "commit");
      entries(m["entries"], { contiguous: false, ballot: null });
      if ((m["through"] as number) < (m["from"] as number) - 1) throw new InvalidInputError("a promise's pages end before they start");
      for (const e of m["entries"] as LogEntry[]) {
        if (e.index < (m["from"] as number) || e.index > (m["through"] as number)) throw new InvalidInputError("a promise reports a slot outside its page");
        if (e.term === 0 || e.term > (m["ballot"] as number)) throw new InvalidInputError("a promise reports a slot accepted at no ballot, or above the ballot promised");
      }
      break;
    case "nack":
      ballot(m, "promised");
      flag(m, "probe");
      flag(m, "behind");
      break;
    case "accept":
      index(m, "commit");
      entries(m["entries"], { contiguous: true, ballot: m["ballot"] as number });
      if ((m["entries"] as unknown[]).length === 0) throw new InvalidInputError("an accept must carry at least one slot");
      break;
    case "accepted":
      index(m, "index");
      index(m, "last");
      break;
    case "heartbeat":
      index(m, "commit");
      index(m, "readRound");
      break;
    case "heartbeat-response":
      index(m, "readRound");
      index(m, "index");
      break;
    case "propose":
      if (!Array.isArray(m["data"]) || !m["data"].every((item) => item instanceof Uint8Array)) throw new InvalidInputError("a forwarded proposal's data must be a list of byte strings");
      break;
    case "read-index":
      index(m, "requestId");
      if (m["lease"] !== undefined) flag(m, "lease");
      break;
    case "read-index-response":
      index(m, "requestId");
      index(m, "index");
      break;
    case "snapshot":
      index(m, "index");
      ballot(m, "snapshotTerm");
      index(m, "size");
      index(m, "offset");
      if (!(m["chunk"] instanceof Uint8Array)) throw new InvalidInputError("a snapshot chunk must carry bytes");
      if ((m["offset"] as number) + m["chunk"].length > (m["size"] as number)) throw new InvalidInputError("a snapshot chunk runs past the snapshot's size");
      if (m["membership"] !== undefined) validateMembership(m["membership"]);
      break;
    case "snapshot-response":
      index(m, "index");
      index(m, "received");
      break;
    case "timeout-now":
      if (m["commit"] !== undefined) index(m, "commit");
      break;
    default:
      throw new InvalidInputError(`unknown Paxos message type ${describeUntrusted(m["type"])}`);
  }
  return value as PaxosMessage;
}

/** A ballot: an index that leaves room to grow. */
function ballot(m: Record<string, unknown>, field: string): void {
  index(m, field);
  if ((m[field] as number) > PEER_BALLOT_MAX) throw new InvalidInputError(`field ${field} is above the largest ballot accepted from a peer, ${PEER_BALLOT_MAX}`);
}

function index(m: Record<string, unknown>, field: string): void {
  const value = m[field];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) throw new InvalidInputError(`field ${field} must be a non-negative integer`);
}

function positive(m: Record<string, unknown>, field: string): void {
  index(m, field);
  if ((m[field] as number) === 0) throw new InvalidInputError(`field ${field} must be positive`);
}

function flag(m: Record<string, unknown>, field: string): void {
  if (typeof m[field] !== "boolean") throw new InvalidInputError(`field ${field} must be a boolean`);
}

/** Entries in increasing slot order (consecutive for an accept, each at the accept's ballot). */
function entries(value: unknown, rules: { readonly contiguous: boolean; readonly ballot: number | null }): void {
  if (!Array.isArray(value)) throw new InvalidInputError("entries must be a list");
  let previous = 0;
  for (const entry of value as unknown[]) {
    if (typeof entry !== "object" || entry === null) throw new InvalidInputError("an entry must be an object");
    const e = entry as Record<string, unknown>;
    positive(e, "index");
    ballot(e, "term");
    if (!(e["data"] instanceof Uint8Array)) throw new InvalidInputError("an entry's data must be bytes");
    if (e["kind"] !== undefined && e["kind"] !== "config") throw new InvalidInputError(`an entry's kind must be "config" or absent, got ${describeUntrusted(e["kind"])}`);
    // A configuration decides quorums as soon as it governs slots: it must be one.
    if (e["kind"] === "config") checkMembership(decodeMembership(e["data"]), { votersRequired: true });
    if (rules.ballot !== null && e["term"] !== rules.ballot) throw new InvalidInputError("an accept's slots must carry its ballot");
    const at = e["index"] as number;
    if (previous > 0 && (rules.contiguous ? at !== previous + 1 : at <= previous)) throw new InvalidInputError(rules.contiguous ? "an accept's slots must be consecutive" : "a promise's slots must increase");
    previous = at;
  }
}

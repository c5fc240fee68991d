import { describeUntrusted, InvalidInputError } from "../common/errors.js";
import type { LogEntry } from "../engine/contract.js";
import { checkMembership } from "../engine/membership.js";
import { decodeMembership, validateMembership } from "./membership.js";
import type { RaftMessage } from "./messages.js";

/**
 * The largest term taken from a peer. No cluster reaches it by elections (2^52 of them), and
 * a larger one, from a broken peer, would leave this node's term no room to grow: the next
 * election's term + 1 must still be a safe integer, or the engine stops on an assertion.
 */
export const PEER_TERM_MAX = 2 ** 52;

/**
 * Checks that a value decoded off the wire is a well-formed Raft message before the engine
 * sees it. The engine trusts its inputs' shapes (a wrong one would trip an assertion and stop
 * the process), and a peer's bytes are not to be trusted that far: a bug or a corrupted
 * frame on another node must cost one dropped message, not this node. The handshake has
 * already said who the sender is; this says only what it sent is a message.
 */
export function validateRaftMessage(value: unknown): RaftMessage {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidInputError("a Raft message must be an object");
  const m = value as Record<string, unknown>;
  const type = m["type"];
  term(m, "term");
  switch (type) {
    case "vote":
      flag(m, "preVote");
      index(m, "lastIndex");
      term(m, "lastTerm");
      if (m["transfer"] !== undefined) flag(m, "transfer");
      break;
    case "timeout-now":
      break;
    case "vote-response":
      flag(m, "preVote");
      flag(m, "granted");
      break;
    case "append":
      index(m, "prevIndex");
      term(m, "prevTerm");
      index(m, "commit");
      entries(m["entries"]);
      // The engine appends the entries right after prevIndex: a gap or an overlap would corrupt its log.
      if (m["entries"].length > 0 && (m["entries"][0] as LogEntry).index !== (m["prevIndex"] as number) + 1) throw new InvalidInputError("an append's entries must begin right after prevIndex");
      break;
    case "append-response":
      flag(m, "reject");
      index(m, "index");
      index(m, "hintIndex");
      term(m, "hintTerm");
      if (m["snapshotFrom"] !== undefined) index(m, "snapshotFrom");
      break;
    case "heartbeat":
      index(m, "commit");
      index(m, "readRound");
      if (m["quiesce"] !== undefined) flag(m, "quiesce");
      break;
    case "heartbeat-response":
      index(m, "readRound");
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
      term(m, "snapshotTerm");
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
    default:
      throw new InvalidInputError(`unknown Raft message type ${describeUntrusted(type)}`);
  }
  return value as RaftMessage;
}

/** A term: an index that leaves room to grow. */
function term(m: Record<string, unknown>, field: string): void {
  index(m, field);
  if ((m[field] as number) > PEER_TERM_MAX) throw new InvalidInputError(`field ${field} is above the largest term accepted from a peer, ${PEER_TERM_MAX}`);
}

function index(m: Record<string, unknown>, field: string): void {
  const value = m[field];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) throw new InvalidInputError(`field ${field} must be a non-negative integer`);
}

function flag(m: Record<string, unknown>, field: string): void {
  if (typeof m[field] !== "boolean") throw new InvalidInputError(`field ${field} must be a boolean`);
}

function entries(value: unknown): asserts value is LogEntry[] {
  if (!Array.isArray(value)) throw new InvalidInputError("entries must be a list");
  let previous = -1;
  for (const entry of value as unknown[]) {
    if (typeof entry !== "object" || entry === null) throw new InvalidInputError("an entry must be an object");
    const e = entry as Record<string, unknown>;
    index(e, "index");
    term(e, "term");
    if (!(e["data"] instanceof Uint8Array)) throw new InvalidInputError("an entry's data must be bytes");
    if (e["kind"] !== undefined && e["kind"] !== "config") throw new InvalidInputError(`an entry's kind must be "config" or absent, got ${describeUntrusted(e["kind"])}`);
    // The engine acts on a configuration as soon as it is appended: it must be one.
    if (e["kind"] === "config") checkMembership(decodeMembership(e["data"]), { votersRequired: true });
    // The engine appends entries as a contiguous run; a gap would corrupt its log.
    if (previous >= 0 && e["index"] !== previous + 1) throw new InvalidInputError("entries must have consecutive indexes");
    previous = e["index"] as number;
  }
}

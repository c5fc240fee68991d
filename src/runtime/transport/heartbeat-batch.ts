/**
 * Heartbeat batches (issue 16, "heartbeats coalesced per pair of nodes"): the heartbeats and
 * heartbeat responses of many groups that one node sends another in one event-loop turn
 * travel as one frame, as CockroachDB coalesces its ranges' heartbeats. A node hosting a
 * thousand awake ranges otherwise encodes, frames, decodes and dispatches a thousand tiny
 * frames per peer per heartbeat interval; batched, it is one frame, one decode, and a loop.
 *
 * Payload (after the frame header):
 *
 *   0xc1 0x80 0x00 (HEARTBEAT_BATCH_PREFIX) | one MessagePack array of non-negative integers
 *
 * The array holds the entries one after another, each led by its kind:
 *
 *   0, group, term, commit, readRound   { type: "heartbeat", term, commit, readRound }
 *   1, group, term, commit, readRound   the same with quiesce: true
 *   2, group, term, readRound           { type: "heartbeat-response", term, readRound }
 *
 * What is batched: a message of exactly Raft's heartbeat or heartbeat-response shape
 * (core/raft/messages.ts): those fields and no others, numbers that are safe non-negative
 * integers, `quiesce` absent or true. The receiver rebuilds an object equal to the one
 * sent, field for field, and hands it to its group as if it had come alone; the engine's
 * validator sees it as before. Anything else (a field more, Paxos's heartbeats, which
 * carry a ballot) goes in a frame of its own, as before. The transport does not know what a
 * heartbeat means; it knows only these two shapes.
 *
 * Decoding is defensive: a payload that does not decode, is not a flat list of safe
 * non-negative integers, has an unknown kind, a group id out of range, an entry cut short,
 * or no entry at all is refused whole with an InvalidInputError (nothing of it is
 * delivered), and the connection is closed as for any other malformed frame.
 */
import type { HeartbeatRequest, HeartbeatResponse } from "../../core/raft/messages.js";
import { InvalidInputError } from "../../core/common/errors.js";
import { HEARTBEAT_BATCH_PREFIX, isHeartbeatBatch } from "../../core/wire/group.js";
import { isGroupId, type GroupId } from "../../core/multi/group.js";
import { assert } from "../../core/common/assert.js";
import { decodeMessage, encodeMessage } from "./codec.js";

const KIND_HEARTBEAT = 0;
const KIND_HEARTBEAT_QUIESCE = 1;
const KIND_RESPONSE = 2;

/**
 * The most bytes one entry takes encoded: a kind (1 byte), a group id (up to 5: a u32),
 * and three numbers of up to 9 bytes each (msgpackr writes integers above 32 bits as
 * float64). A batch's size is bounded by its entry count times this, plus its overhead.
 */
export const HEARTBEAT_ENTRY_BYTES_MAX = 1 + 5 + 3 * 9;
/** The prefix and the array's header (0xdd and a u32 length at most). */
export const HEARTBEAT_BATCH_OVERHEAD_BYTES = HEARTBEAT_BATCH_PREFIX.length + 5;
/**
 * Heartbeats per batch at most: a batch is sealed (and another begun) at this many, so a
 * batch's frame stays near 130 KiB, whatever the number of groups two nodes share.
 */
export const HEARTBEATS_PER_BATCH_MAX = 4096;

/** One heartbeat taken out of a batch, with its group: what the receiver delivers. */
export interface BatchedHeartbeat {
  readonly group: GroupId;
  readonly message: HeartbeatRequest | HeartbeatResponse;
}

const isCount = (value: unknown): value is number => typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

/**
 * Appends `message`, a message of `group`, to `entries` (a batch being built) if it has
 * exactly a heartbeat's or a heartbeat response's shape (see the file comment); returns
 * whether it did. `entries` is left as it was when it did not.
 */
export function appendHeartbeat(entries: number[], group: GroupId, message: unknown): boolean {
  if (typeof message !== "object" || message === null) return false;
  const m = message as Record<string, unknown>;
  const type = m["type"];
  if (type !== "heartbeat" && type !== "heartbeat-response") return false;
  const { term, readRound } = m;
  if (!isCount(term) || !isCount(readRound) || Array.isArray(message)) return false;
  let fields = 0;
  for (const key in m) if (Object.prototype.hasOwnProperty.call(m, key)) fields++;
  if (type === "heartbeat-response") {
    if (fields !== 3) return false;
    entries.push(KIND_RESPONSE, group, term, readRound);
    return true;
  }
  const { commit, quiesce } = m;
  if (!isCount(commit)) return false;
  if (quiesce === undefined ? fields !== 4 : quiesce !== true || fields !== 5) return false;
  entries.push(quiesce === true ? KIND_HEARTBEAT_QUIESCE : KIND_HEARTBEAT, group, term, commit, readRound);
  return true;
}

/** The entry at `entries[at ..]` as the message it stands for, and the index of the next entry. */
function entryAt(entries: readonly number[], at: number): { readonly heartbeat: BatchedHeartbeat; readonly next: number } | null {
  const kind = entries[at];
  const group = entries[at + 1];
  const term = entries[at + 2];
  const third = entries[at + 3];
  if (!isGroupId(group) || !isCount(term) || !isCount(third)) return null;
  if (kind === KIND_RESPONSE) return { heartbeat: { group, message: { type: "heartbeat-response", term, readRound: third } }, next: at + 4 };
  const readRound = entries[at + 4];
  if ((kind !== KIND_HEARTBEAT && kind !== KIND_HEARTBEAT_QUIESCE) || !isCount(readRound)) return null;
  const message: HeartbeatRequest = kind === KIND_HEARTBEAT ? { type: "heartbeat", term, commit: third, readRound } : { type: "heartbeat", term, commit: third, readRound, quiesce: true };
  return { heartbeat: { group, message }, next: at + 5 };
}

/** The heartbeats `entries` (built by appendHeartbeat) hold, in order. */
export function heartbeatsOf(entries: readonly number[]): BatchedHeartbeat[] {
  const out: BatchedHeartbeat[] = [];
  for (let at = 0; at < entries.length; ) {
    const entry = entryAt(entries, at);
    assert(entry !== null, "appendHeartbeat builds only whole entries");
    out.push(entry.heartbeat);
    at = entry.next;
  }
  return out;
}

/** The encoded array of a batch; the sender writes HEARTBEAT_BATCH_PREFIX before it. */
export function encodeHeartbeatBatch(entries: readonly number[]): Uint8Array {
  assert(entries.length > 0, "a heartbeat batch holds at least one heartbeat");
  return encodeMessage(entries);
}

/** The heartbeats of a batch's whole payload (prefix included); throws InvalidInputError for a broken one. */
export function decodeHeartbeatBatch(payload: Uint8Array): BatchedHeartbeat[] {
  assert(isHeartbeatBatch(payload), "only a heartbeat batch's payload is decoded as one");
  const value = decodeMessage(payload.subarray(HEARTBEAT_BATCH_PREFIX.length));
  if (!Array.isArray(value)) throw new InvalidInputError("a heartbeat batch is not a list");
  if (value.length === 0) throw new InvalidInputError("a heartbeat batch holds no heartbeat");
  const entries = value as unknown[];
  const out: BatchedHeartbeat[] = [];
  // Each turn consumes 4 or 5 values, so this ends within entries.length / 4 turns.
  for (let at = 0; at < entries.length; ) {
    const entry = entryAt(entries as number[], at);
    if (entry === null || entry.next > entries.length) throw new InvalidInputError(`a heartbeat batch's entry at position ${at} is malformed (kind ${String(entries[at]).slice(0, 24)})`);
    out.push(entry.heartbeat);
    at = entry.next;
  }
  return out;
}

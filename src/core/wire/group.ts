/**
 * The group id inside a peer frame's payload, so one connection between two nodes carries
 * the messages of every group they share:
 *
 *   0xc1 | group id, unsigned LEB128, 1 to 5 bytes, shortest form | encoded message
 *
 * 0xc1 is the one byte MessagePack never uses, so no message a node wrote before groups
 * existed can begin with it: a payload that does not start with 0xc1 is such an old frame,
 * and is read as a message of group 0 (the group every cluster has). Every new frame
 * carries the tag, group 0 included, so a reader never has to guess.
 *
 * Decoding is defensive: a tagged payload whose id is cut short, longer than 5 bytes, not in
 * its shortest form, or above GROUP_ID_MAX is refused with an InvalidInputError, never
 * misread as another group.
 *
 * One payload is not a group's: a heartbeat batch (many groups' heartbeats in one frame,
 * runtime/transport/heartbeat-batch.ts) begins `0xc1 0x80 0x00`, a zero in a form no group
 * header uses. A node sends it only to a peer that said in its handshake that it reads
 * batches; a node of an older version would refuse it as a group id "not in its shortest
 * form" and close the connection, so it can never be misread as some group's message.
 */
import { InvalidInputError } from "../common/errors.js";
import { assertGroupId, DEFAULT_GROUP, GROUP_ID_MAX, type GroupId } from "../multi/group.js";
import { assert } from "../common/assert.js";

/** The first byte of a group-tagged payload: "never used" in MessagePack. */
export const GROUP_TAG = 0xc1;
/** The longest id field: 5 LEB128 bytes hold 35 bits, enough for any u32. */
const GROUP_ID_BYTES_MAX = 5;

/** The first bytes of a heartbeat batch's payload (see the file comment), never a group header. */
export const HEARTBEAT_BATCH_PREFIX: readonly number[] = Object.freeze([GROUP_TAG, 0x80, 0x00]);

/** Whether `payload` is a heartbeat batch rather than one group's message. */
export function isHeartbeatBatch(payload: Uint8Array): boolean {
  return payload.length >= 3 && payload[0] === GROUP_TAG && payload[1] === 0x80 && payload[2] === 0x00;
}

/** The bytes the tag and id of `group` take at the start of a payload. */
export function groupHeaderBytes(group: GroupId): number {
  assertGroupId(group);
  let bytes = 2;
  for (let rest = Math.floor(group / 128); rest > 0; rest = Math.floor(rest / 128)) bytes++;
  return bytes;
}

/** Writes the tag and id of `group` at `target[offset ..]`; returns the offset after them. */
export function writeGroupHeader(target: Uint8Array, offset: number, group: GroupId): number {
  const end = offset + groupHeaderBytes(group);
  assert(Number.isInteger(offset) && offset >= 0 && end <= target.length, "the group header must fit the target");
  target[offset] = GROUP_TAG;
  let at = offset + 1;
  // Division, not bit shifts: ids go up to 2^32 - 1, past what a signed 32-bit shift keeps.
  let rest = group;
  while (rest >= 128) {
    target[at++] = (rest % 128) | 0x80;
    rest = Math.floor(rest / 128);
  }
  target[at++] = rest;
  return at;
}

/** A new array: the group header, then a copy of `message` (an encoded message). */
export function tagWithGroup(group: GroupId, message: Uint8Array): Uint8Array {
  const out = new Uint8Array(groupHeaderBytes(group) + message.length);
  out.set(message, writeGroupHeader(out, 0, group));
  return out;
}

/** A payload split into its group and its message (a view of the payload, not a copy). */
export interface GroupPayload {
  readonly group: GroupId;
  readonly message: Uint8Array;
  /** False for an untagged payload from a node that predates groups (read as group 0). */
  readonly tagged: boolean;
}

/** Reads the group header of a frame's payload; throws InvalidInputError for a broken one. */
export function readGroupHeader(payload: Uint8Array): GroupPayload {
  if (payload.length === 0 || payload[0] !== GROUP_TAG) return { group: DEFAULT_GROUP, message: payload, tagged: false };
  let group = 0;
  let scale = 1;
  for (let i = 1; i <= GROUP_ID_BYTES_MAX; i++) {
    const byte = payload[i];
    if (byte === undefined) throw new InvalidInputError(`a frame's group id is cut short after ${i - 1} byte(s)`);
    group += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) {
      if (byte === 0 && i > 1) throw new InvalidInputError("a frame's group id is not in its shortest form");
      if (group > GROUP_ID_MAX) throw new InvalidInputError(`a frame's group id ${group} is above the largest, ${GROUP_ID_MAX}`);
      return { group, message: payload.subarray(i + 1), tagged: true };
    }
    scale *= 128;
  }
  throw new InvalidInputError(`a frame's group id runs past ${GROUP_ID_BYTES_MAX} bytes`);
}

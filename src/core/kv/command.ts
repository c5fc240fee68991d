import { assert } from "../common/assert.js";
import { ByteReader } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { limits } from "../common/limits.js";
import { utf8Decode, utf8Encode } from "../common/utf8.js";

/**
 * The KV state machine's commands and their byte format: the format written into the log,
 * so it is versioned and decoded defensively (a bad command is refused, never applied).
 *
 *   u8 version (1) | u8 op | f64 clientId | f64 sequence | u32 keyLength | key bytes | op body
 *   put:             u32 valueLength | value
 *   delete:          (nothing)
 *   cas-value:       u8 expectedPresent | [u32 expectedLength | expected] | u32 valueLength | value
 *   cas-revision:    f64 expectedModRevision | u32 valueLength | value
 *
 * `clientId` and `sequence` name the request, so the node that took it can answer the
 * client when the entry applies, and so retried writes can be recognised.
 */
export type KvCommand =
  | { readonly op: "put"; readonly request: RequestId; readonly key: string; readonly value: Uint8Array }
  | { readonly op: "delete"; readonly request: RequestId; readonly key: string }
  | {
      readonly op: "cas-value";
      readonly request: RequestId;
      readonly key: string;
      /** The value the key must hold, or null for "must not exist". */
      readonly expected: Uint8Array | null;
      readonly value: Uint8Array;
    }
  | {
      readonly op: "cas-revision";
      readonly request: RequestId;
      readonly key: string;
      /** The key's modification revision must equal this; 0 means "must not exist". */
      readonly expectedRevision: number;
      readonly value: Uint8Array;
    };

export interface RequestId {
  readonly clientId: number;
  readonly sequence: number;
}

const VERSION = 1;
const OPS = ["put", "delete", "cas-value", "cas-revision"] as const;
type Op = (typeof OPS)[number];

export function encodeCommand(command: KvCommand): Uint8Array {
  const key = utf8Encode(command.key);
  if (key.length === 0) throw new InvalidInputError("key must not be empty");
  if (key.length > limits.keyBytesMax) throw new InvalidInputError(`key is ${key.length} bytes; the limit is ${limits.keyBytesMax}`);
  const parts: Uint8Array[] = [];
  let size = 2 + 8 + 8 + 4 + key.length;
  const addBytes = (bytes: Uint8Array): void => {
    if (bytes.length > limits.valueBytesMax) {
      throw new InvalidInputError(`value is ${bytes.length} bytes; the limit is ${limits.valueBytesMax}`);
    }
    parts.push(bytes);
    size += 4 + bytes.length;
  };
  let expectedPresent = 0;
  switch (command.op) {
    case "put":
      addBytes(command.value);
      break;
    case "delete":
      break;
    case "cas-value":
      size += 1;
      if (command.expected !== null) {
        expectedPresent = 1;
        addBytes(command.expected);
      }
      addBytes(command.value);
      break;
    case "cas-revision":
      assert(Number.isSafeInteger(command.expectedRevision) && command.expectedRevision >= 0, "expected revision must be a non-negative integer");
      size += 8;
      addBytes(command.value);
      break;
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = VERSION;
  out[1] = OPS.indexOf(command.op);
  view.setFloat64(2, command.request.clientId);
  view.setFloat64(10, command.request.sequence);
  view.setUint32(18, key.length);
  out.set(key, 22);
  let at = 22 + key.length;
  if (command.op === "cas-value") out[at++] = expectedPresent;
  if (command.op === "cas-revision") {
    view.setFloat64(at, command.expectedRevision);
    at += 8;
  }
  for (const part of parts) {
    view.setUint32(at, part.length);
    out.set(part, at + 4);
    at += 4 + part.length;
  }
  assert(at === size, "command size mismatch");
  return out;
}

/** Decodes a command; throws InvalidInputError (never an assertion) on malformed bytes. */
export function decodeCommand(bytes: Uint8Array): KvCommand {
  const reader = new ByteReader(bytes, "command");
  const version = reader.u8();
  if (version !== VERSION) throw new InvalidInputError(`unknown command version ${version}`);
  const op: Op | undefined = OPS[reader.u8()];
  if (op === undefined) throw new InvalidInputError("unknown command op");
  const request = { clientId: reader.safeInteger(), sequence: reader.safeInteger() };
  const keyBytes = reader.bytes(limits.keyBytesMax);
  if (keyBytes.length === 0) throw new InvalidInputError("empty key");
  const key = utf8Decode(keyBytes);
  let command: KvCommand;
  switch (op) {
    case "put":
      command = { op, request, key, value: reader.bytes(limits.valueBytesMax) };
      break;
    case "delete":
      command = { op, request, key };
      break;
    case "cas-value": {
      const present = reader.u8();
      if (present > 1) throw new InvalidInputError("bad expected-present flag");
      const expected = present === 1 ? reader.bytes(limits.valueBytesMax) : null;
      command = { op, request, key, expected, value: reader.bytes(limits.valueBytesMax) };
      break;
    }
    case "cas-revision": {
      const expectedRevision = reader.safeInteger();
      command = { op, request, key, expectedRevision, value: reader.bytes(limits.valueBytesMax) };
      break;
    }
  }
  reader.expectEnd();
  return command;
}

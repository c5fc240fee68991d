/**
 * The peer wire's message codec: one engine message, opaque to the transport, as one
 * MessagePack value (msgpackr).
 *
 * What round-trips: plain objects, arrays, strings, numbers (integers up to 2^53 exactly;
 * msgpackr writes those above 32 bits as float64), booleans, null, undefined, and
 * Uint8Array (decoded as a Buffer, a Uint8Array subclass, with memory of its own). Not
 * preserved: -0 (arrives as 0) and Map (arrives as a plain object).
 *
 * Options, chosen because the bytes come from the network:
 * - `useRecords: false` and no shared `structures`: every frame decodes on its own, so a
 *   lost or hostile frame cannot redefine how later frames decode. (Records would make
 *   Raft's repetitive messages smaller, but need per-connection state kept in step on both
 *   sides; not worth it yet.)
 * - `structuredClone: false`: no reference or cycle extensions, so no graph tricks.
 * - `bundleStrings: false`, `moreTypes: false`: only the core types are written.
 * - `copyBuffers: true`: decoded byte strings get their own memory. The engine keeps log
 *   entries for a long time; a view would pin the whole socket chunk (often 64 KiB) that a
 *   small entry arrived in.
 *
 * A decoder given hostile bytes may still produce msgpackr's built-in extension types
 * (Date, Set, Error, RegExp, BigInt, typed arrays) or record-shaped objects; the value is
 * `unknown`, and the engine must validate what it receives before trusting its shape.
 * Deeply nested input overflows the stack inside the decoder, which is caught and reported
 * like any other malformed input.
 */
import { Packr } from "msgpackr";
import { InvalidInputError } from "../../core/common/errors.js";

const packr = new Packr({
  useRecords: false,
  structuredClone: false,
  bundleStrings: false,
  moreTypes: false,
  copyBuffers: true,
  mapsAsObjects: true,
});

/**
 * Encodes a message. The result is a view into msgpackr's reusable output memory: valid
 * indefinitely (later encodes write elsewhere), but it shares an ArrayBuffer with other
 * results, so copy it before handing it to anything that transfers ArrayBuffers.
 * Throws whatever msgpackr throws for a value it cannot encode (a cycle, for example):
 * the engine sending such a value is a programming error.
 */
export function encodeMessage(message: unknown): Uint8Array {
  return packr.pack(message);
}

/** Decodes exactly one message from `bytes`; throws InvalidInputError (with `cause`) otherwise. */
export function decodeMessage(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw new InvalidInputError("an empty frame is not a message");
  try {
    return packr.unpack(bytes);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new InvalidInputError(`a peer message does not decode: ${reason.slice(0, 200)}`, { cause: error });
  }
}

/**
 * Length-prefixed frames for a byte stream:
 *
 *   u32 big-endian payload length | payload
 *
 * The payload is opaque here (the peer transport puts one encoded message in each). A
 * zero-length payload is a valid frame. The length field is unsigned 32-bit, but a decoder
 * refuses anything above its own `frameBytesMax` as soon as it has read the header, before
 * it buffers a byte of the payload, so a hostile or broken sender cannot make it hold more
 * than one frame's worth of memory.
 */
import { assert } from "../common/assert.js";
import { InvalidInputError } from "../common/errors.js";

export const FRAME_HEADER_BYTES = 4;
/** The largest length the header can express. */
export const FRAME_PAYLOAD_BYTES_LIMIT = 0xffff_ffff;

/** A header announced a payload above the decoder's `frameBytesMax`. */
export class FrameTooLargeError extends InvalidInputError {
  constructor(
    readonly frameBytes: number,
    readonly frameBytesMax: number,
  ) {
    super(`a frame announces ${frameBytes} bytes, over the limit of ${frameBytesMax}`);
    this.name = "FrameTooLargeError";
  }
}

/** Writes the header for a payload of `payloadBytes` at `target[offset .. offset + 4)`. */
export function writeFrameHeader(target: Uint8Array, offset: number, payloadBytes: number): void {
  assert(Number.isInteger(payloadBytes) && payloadBytes >= 0 && payloadBytes <= FRAME_PAYLOAD_BYTES_LIMIT, `a frame payload of ${payloadBytes} bytes does not fit the header`);
  assert(Number.isInteger(offset) && offset >= 0 && offset + FRAME_HEADER_BYTES <= target.length, "the frame header must fit the target");
  target[offset] = payloadBytes >>> 24;
  target[offset + 1] = (payloadBytes >>> 16) & 0xff;
  target[offset + 2] = (payloadBytes >>> 8) & 0xff;
  target[offset + 3] = payloadBytes & 0xff;
}

/** A new array holding the header and then a copy of `payload`. */
export function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(out, 0, payload.length);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export interface FrameDecoderOptions {
  /** The largest payload accepted, in bytes: 0 .. 2^32 - 1. */
  readonly frameBytesMax: number;
}

/**
 * An incremental decoder: push the stream's chunks as they arrive, in any sizes, and get
 * back the payloads completed so far, in order.
 *
 * Memory: a payload that lies wholly inside one pushed chunk is returned as a view of that
 * chunk (no copy), so the caller must not reuse a chunk's memory while it holds payloads
 * from it. A payload split across chunks is copied exactly once, into an array allocated
 * when its header is complete; the decoder never concatenates what it buffers, so the work
 * per push is proportional to the chunk, not to the data held.
 *
 * Errors: an oversize header throws FrameTooLargeError from `push`; payloads completed
 * earlier in the same chunk are not returned (the stream is broken, so the caller drops
 * the connection anyway). After that the decoder is failed, and every later `push` throws
 * InvalidInputError.
 */
export class FrameDecoder {
  private readonly frameBytesMax: number;
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  /** The payload being assembled across chunks, or null while reading a header. */
  private partial: Uint8Array | null = null;
  private partialFilled = 0;
  private failure: InvalidInputError | null = null;

  constructor(options: FrameDecoderOptions) {
    const max = options.frameBytesMax;
    assert(Number.isInteger(max) && max >= 0 && max <= FRAME_PAYLOAD_BYTES_LIMIT, `frameBytesMax must be an integer in 0 .. 2^32 - 1, got ${max}`);
    this.frameBytesMax = max;
  }

  /** Bytes held for a frame not yet complete (a partial header or payload). */
  get bufferedBytes(): number {
    return this.headerFilled + this.partialFilled;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    if (this.failure !== null) throw new InvalidInputError("the frame decoder failed earlier and cannot go on", { cause: this.failure });
    const payloads: Uint8Array[] = [];
    let at = 0;
    // Each pass consumes at least one byte or completes a zero-length frame after its
    // four header bytes, so the loop ends within chunk.length + 1 passes.
    while (at < chunk.length || (this.partial !== null && this.partialFilled === this.partial.length)) {
      if (this.partial !== null) {
        at = this.fillPartial(chunk, at, payloads);
        continue;
      }
      if (this.headerFilled === 0 && chunk.length - at >= FRAME_HEADER_BYTES) {
        const length = this.checkLength(readU32(chunk, at));
        at += FRAME_HEADER_BYTES;
        if (chunk.length - at >= length) {
          payloads.push(chunk.subarray(at, at + length));
          at += length;
        } else {
          this.partial = new Uint8Array(length);
        }
        continue;
      }
      at = this.fillHeader(chunk, at);
    }
    return payloads;
  }

  private fillHeader(chunk: Uint8Array, at: number): number {
    const take = Math.min(FRAME_HEADER_BYTES - this.headerFilled, chunk.length - at);
    this.header.set(chunk.subarray(at, at + take), this.headerFilled);
    this.headerFilled += take;
    if (this.headerFilled === FRAME_HEADER_BYTES) {
      this.headerFilled = 0;
      this.partial = new Uint8Array(this.checkLength(readU32(this.header, 0)));
      this.partialFilled = 0;
    }
    return at + take;
  }

  private fillPartial(chunk: Uint8Array, at: number, payloads: Uint8Array[]): number {
    const partial = this.partial;
    assert(partial !== null, "fillPartial runs only while a payload is being assembled");
    const take = Math.min(partial.length - this.partialFilled, chunk.length - at);
    partial.set(chunk.subarray(at, at + take), this.partialFilled);
    this.partialFilled += take;
    if (this.partialFilled === partial.length) {
      payloads.push(partial);
      this.partial = null;
      this.partialFilled = 0;
    }
    return at + take;
  }

  private checkLength(length: number): number {
    if (length > this.frameBytesMax) {
      this.failure = new FrameTooLargeError(length, this.frameBytesMax);
      throw this.failure;
    }
    return length;
  }
}

function readU32(bytes: Uint8Array, at: number): number {
  return (((bytes[at] as number) << 24) | ((bytes[at + 1] as number) << 16) | ((bytes[at + 2] as number) << 8) | (bytes[at + 3] as number)) >>> 0;
}

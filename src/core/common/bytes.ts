import { InvalidInputError } from "./errors.js";

/**
 * A bounds-checked big-endian reader for synod's own byte formats. Every read checks the
 * remaining length, so a truncated or hostile input raises InvalidInputError, never a
 * RangeError or an out-of-bounds read.
 */
export class ByteReader {
  private at = 0;
  private readonly view: DataView;

  constructor(
    private readonly buffer: Uint8Array,
    private readonly what: string,
  ) {
    this.view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }

  private need(count: number): void {
    if (this.at + count > this.buffer.length) throw new InvalidInputError(`${this.what} is truncated`);
  }

  u8(): number {
    this.need(1);
    return this.buffer[this.at++] as number;
  }

  u32(): number {
    this.need(4);
    const value = this.view.getUint32(this.at);
    this.at += 4;
    return value;
  }

  /** A non-negative safe integer stored as a float64. */
  safeInteger(): number {
    this.need(8);
    const value = this.view.getFloat64(this.at);
    this.at += 8;
    if (!Number.isSafeInteger(value) || value < 0) throw new InvalidInputError(`${this.what} has a bad integer field`);
    return value;
  }

  /** A u32 length and that many bytes (copied), refusing lengths above `max`. */
  bytes(max: number): Uint8Array {
    const length = this.u32();
    if (length > max) throw new InvalidInputError(`${this.what} has a field of ${length} bytes, over the limit of ${max}`);
    this.need(length);
    const out = this.buffer.slice(this.at, this.at + length);
    this.at += length;
    return out;
  }

  expectEnd(): void {
    if (this.at !== this.buffer.length) throw new InvalidInputError(`${this.what} has trailing bytes`);
  }
}

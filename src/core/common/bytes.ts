import { assert } from "./assert.js";
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

  /** Exactly `count` bytes, no length before them (a view: copy to keep). */
  raw(count: number): Uint8Array {
    this.need(count);
    const out = this.buffer.subarray(this.at, this.at + count);
    this.at += count;
    return out;
  }

  /** Whether every byte was read. */
  get atEnd(): boolean {
    return this.at === this.buffer.length;
  }

  expectEnd(): void {
    if (this.at !== this.buffer.length) throw new InvalidInputError(`${this.what} has trailing bytes`);
  }
}

/**
 * A big-endian writer into a buffer of a size computed beforehand: synod's formats measure
 * first and write second, so no buffer grows and the final length is checked exactly.
 */
export class ByteWriter {
  private at = 0;
  readonly buffer: Uint8Array;
  private readonly view: DataView;

  constructor(size: number) {
    this.buffer = new Uint8Array(size);
    this.view = new DataView(this.buffer.buffer);
  }

  u8(value: number): void {
    this.view.setUint8(this.at, value);
    this.at += 1;
  }

  u32(value: number): void {
    this.view.setUint32(this.at, value);
    this.at += 4;
  }

  f64(value: number): void {
    this.view.setFloat64(this.at, value);
    this.at += 8;
  }

  /** Raw bytes, no length. */
  raw(bytes: Uint8Array): void {
    this.buffer.set(bytes, this.at);
    this.at += bytes.length;
  }

  /** A u32 length and the bytes: what `ByteReader.bytes` reads. */
  bytes(bytes: Uint8Array): void {
    this.u32(bytes.length);
    this.raw(bytes);
  }

  /** The buffer, once exactly `size` bytes were written. */
  finish(what: string): Uint8Array {
    assert(this.at === this.buffer.length, `${what}: wrote ${this.at} bytes of ${this.buffer.length} measured`);
    return this.buffer;
  }
}

/** Orders byte strings lexicographically (a shorter prefix first). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const difference = (a[i] as number) - (b[i] as number);
    if (difference !== 0) return difference;
  }
  return a.length - b.length;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A copy of `bytes` in a buffer of its own, exactly its length. For small bytes kept long:
 * a view into a larger buffer (Node's 8 KiB pool, an encoder's scratch buffer, a log
 * segment read whole) keeps all of that buffer alive. A node kept each range's last hard
 * state that way, and at 1,000 ranges the pool slabs so held were 1.7 MB.
 */
export function ownedCopy(bytes: Uint8Array): Uint8Array {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy;
}

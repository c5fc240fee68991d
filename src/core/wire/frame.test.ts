import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { InvalidInputError } from "../common/errors.js";
import { FRAME_HEADER_BYTES, FrameDecoder, FrameTooLargeError, frame, writeFrameHeader } from "./frame.js";

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Cuts `bytes` at the given offsets (taken modulo its length, sorted, duplicates allowed). */
function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [0, ...cuts.map((cut) => (bytes.length === 0 ? 0 : cut % (bytes.length + 1))).sort((a, b) => a - b), bytes.length];
  const chunks: Uint8Array[] = [];
  for (let i = 1; i < points.length; i++) chunks.push(bytes.subarray(points[i - 1], points[i]));
  return chunks;
}

function decodeAll(decoder: FrameDecoder, chunks: readonly Uint8Array[]): Uint8Array[] {
  return chunks.flatMap((chunk) => decoder.push(chunk));
}

const bytesOf = (...values: number[]): Uint8Array => Uint8Array.from(values);

describe("frames", () => {
  test("the header is the payload length, big-endian, in four bytes", () => {
    assert.deepEqual(frame(bytesOf(7, 8, 9)), bytesOf(0, 0, 0, 3, 7, 8, 9));
    const header = new Uint8Array(6);
    writeFrameHeader(header, 2, 0x01020304);
    assert.deepEqual(header, bytesOf(0, 0, 1, 2, 3, 4));
  });

  test("whole frames in one chunk come back in order, as views of the chunk", () => {
    const chunk = concat([frame(bytesOf(1)), frame(bytesOf(2, 2)), frame(bytesOf(3, 3, 3))]);
    const payloads = new FrameDecoder({ frameBytesMax: 16 }).push(chunk);
    assert.deepEqual(payloads, [bytesOf(1), bytesOf(2, 2), bytesOf(3, 3, 3)]);
    assert.equal(payloads[0]?.buffer, chunk.buffer, "a payload inside one chunk is not copied");
  });

  test("byte by byte, every frame appears exactly when its last byte arrives", () => {
    const frames = [bytesOf(10, 11), new Uint8Array(0), bytesOf(12)];
    const stream = concat(frames.map(frame));
    const decoder = new FrameDecoder({ frameBytesMax: 16 });
    const seen: { at: number; payload: Uint8Array }[] = [];
    stream.forEach((byte, at) => {
      for (const payload of decoder.push(bytesOf(byte))) seen.push({ at, payload });
    });
    assert.deepEqual(seen, [
      { at: 5, payload: bytesOf(10, 11) },
      { at: 9, payload: new Uint8Array(0) },
      { at: 14, payload: bytesOf(12) },
    ]);
    assert.equal(decoder.bufferedBytes, 0);
  });

  test("zero-length payloads, alone and in a run, are frames too", () => {
    const decoder = new FrameDecoder({ frameBytesMax: 0 });
    assert.deepEqual(decoder.push(new Uint8Array(FRAME_HEADER_BYTES * 3)), [new Uint8Array(0), new Uint8Array(0), new Uint8Array(0)]);
    assert.deepEqual(decoder.push(bytesOf(0, 0)), []);
    assert.deepEqual(decoder.push(bytesOf(0, 0)), [new Uint8Array(0)]);
  });

  test("an empty chunk changes nothing", () => {
    const decoder = new FrameDecoder({ frameBytesMax: 8 });
    assert.deepEqual(decoder.push(bytesOf(0, 0)), []);
    assert.deepEqual(decoder.push(new Uint8Array(0)), []);
    assert.equal(decoder.bufferedBytes, 2);
    assert.deepEqual(decoder.push(bytesOf(0, 1, 42)), [bytesOf(42)]);
  });

  test("property: any split of any sequence of frames gives the same payloads", () => {
    const payloads = fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 20 });
    const cuts = fc.array(fc.nat(), { maxLength: 30 });
    fc.assert(
      fc.property(payloads, cuts, (sent, at) => {
        const stream = concat(sent.map(frame));
        const got = decodeAll(new FrameDecoder({ frameBytesMax: 40 }), split(stream, at));
        assert.deepEqual(got, sent);
      }),
      { numRuns: 500 },
    );
  });

  test("a header over the limit throws at once, before its payload arrives, and the decoder stays failed", () => {
    const decoder = new FrameDecoder({ frameBytesMax: 1024 });
    assert.deepEqual(decoder.push(frame(bytesOf(1))), [bytesOf(1)]);
    assert.deepEqual(decoder.push(bytesOf(0, 0)), []);
    assert.throws(
      () => decoder.push(bytesOf(4, 1)),
      (error: unknown) => error instanceof FrameTooLargeError && error instanceof InvalidInputError && error.frameBytes === 1025 && error.frameBytesMax === 1024,
    );
    assert.throws(() => decoder.push(frame(bytesOf(2))), InvalidInputError);
  });

  test("a header over the limit in the middle of a chunk throws, and the frames before it were valid", () => {
    const decoder = new FrameDecoder({ frameBytesMax: 3 });
    const chunk = concat([frame(bytesOf(1, 2, 3)), bytesOf(0xff, 0xff, 0xff, 0xff)]);
    assert.throws(() => decoder.push(chunk), (error: unknown) => error instanceof FrameTooLargeError && error.frameBytes === 0xffff_ffff);
  });

  test("a payload at exactly the limit is accepted", () => {
    const payload = new Uint8Array(1000).fill(7);
    assert.deepEqual(decodeAll(new FrameDecoder({ frameBytesMax: 1000 }), split(frame(payload), [1, 3, 500])), [payload]);
  });

  test("a hundred thousand small frames in one chunk decode in one pass", () => {
    const count = 100_000;
    const stream = new Uint8Array(count * (FRAME_HEADER_BYTES + 1));
    for (let i = 0; i < count; i++) {
      writeFrameHeader(stream, i * 5, 1);
      stream[i * 5 + 4] = i & 0xff;
    }
    const payloads = new FrameDecoder({ frameBytesMax: 1 }).push(stream);
    assert.equal(payloads.length, count);
    assert.ok(payloads.every((payload, i) => payload.length === 1 && payload[0] === (i & 0xff)));
  });

  test("a large frame in many small chunks is assembled without quadratic work", () => {
    // 8 MiB in 64-byte chunks is 131,072 pushes; re-concatenating what is buffered on each
    // push would copy about 2^39 bytes and never finish within the test's time.
    const payload = new Uint8Array(8 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4096) payload[i] = (i >>> 12) & 0xff;
    const stream = frame(payload);
    const decoder = new FrameDecoder({ frameBytesMax: payload.length });
    const got: Uint8Array[] = [];
    for (let at = 0; at < stream.length; at += 64) got.push(...decoder.push(stream.subarray(at, at + 64)));
    assert.equal(got.length, 1);
    assert.deepEqual(got[0], payload);
  });
});

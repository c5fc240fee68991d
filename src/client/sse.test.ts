import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { SseParser, SseTooLargeError, type SseEvent } from "./sse.js";

const encoder = new TextEncoder();

/** Feeds `bytes` cut at `cuts` (offsets), returning every event. */
function parse(bytes: Uint8Array, cuts: readonly number[], bytesMax = 1 << 20): SseEvent[] {
  const parser = new SseParser(bytesMax);
  const events: SseEvent[] = [];
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    events.push(...parser.push(bytes.subarray(at, cut)));
    at = cut;
  }
  events.push(...parser.push(bytes.subarray(at)));
  return events;
}

const STREAM = [
  "event: created\nid: 4\ndata: {\"revision\":4}\n\n",
  ": a comment\n",
  "id: 5\r\ndata: {\"revision\":5,\r\ndata: \"events\":[]}\r\n\r\n",
  "event: progress\rid: 9\rdata:{\"revision\":9}\r\r",
  "data: é😀 no id, no type\n\n",
  "id\nevent\ndata\n\n",
  "event: canceled\ndata: {\"error\":\"compacted\"}\n\n",
  "data: unfinished",
].join("");

const EXPECTED: SseEvent[] = [
  { event: "created", id: "4", data: '{"revision":4}' },
  { event: "message", id: "5", data: '{"revision":5,\n"events":[]}' },
  { event: "progress", id: "9", data: '{"revision":9}' },
  { event: "message", id: null, data: "é😀 no id, no type" },
  { event: "message", id: "", data: "" },
  { event: "canceled", id: null, data: '{"error":"compacted"}' },
];

describe("SSE parser", () => {
  test("a whole stream: LF, CRLF and CR line ends, comments, fields without values, multi-line data", () => {
    assert.deepEqual(parse(encoder.encode(STREAM), []), EXPECTED);
  });

  test("byte by byte, and cut anywhere (within a CRLF, within a UTF-8 character), the same events", () => {
    const bytes = encoder.encode(STREAM);
    assert.deepEqual(
      parse(
        bytes,
        Array.from({ length: bytes.length }, (_, i) => i),
      ),
      EXPECTED,
    );
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: bytes.length }), { maxLength: 30 }), (cuts) => {
        assert.deepEqual(parse(bytes, cuts), EXPECTED);
      }),
      { numRuns: 300 },
    );
  });

  test("an empty chunk between a CR and its LF does not make the LF a line of its own (found by the property above)", () => {
    assert.deepEqual(parse(encoder.encode("id: 5\r\ndata: x\r\n\r\n"), [6, 6]), [{ event: "message", id: "5", data: "x" }]);
  });

  test("an event over the bound is refused, whether it comes whole or a byte at a time", () => {
    const big = encoder.encode(`data: ${"x".repeat(200)}\n\n`);
    assert.throws(() => parse(big, [], 100), SseTooLargeError);
    assert.throws(
      () =>
        parse(
          big,
          Array.from({ length: big.length }, (_, i) => i),
          100,
        ),
      SseTooLargeError,
    );
    assert.deepEqual(parse(encoder.encode(`data: ${"x".repeat(50)}\n\n`.repeat(5)), [], 100).length, 5, "the bound is per event");
  });
});

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { utf8Decode, utf8Encode } from "./utf8.js";

test("encodes exactly like the platform's TextEncoder", () => {
  fc.assert(
    fc.property(fc.string({ unit: "grapheme" }), (text) => {
      assert.deepEqual(utf8Encode(text), new TextEncoder().encode(text));
      assert.equal(utf8Decode(utf8Encode(text)), text);
    }),
    { numRuns: 2000 },
  );
});

test("lone surrogates become U+FFFD, as TextEncoder does", () => {
  for (const text of ["\ud800", "a\udc00b", "\ud800\ud800"]) assert.deepEqual(utf8Encode(text), new TextEncoder().encode(text));
});

test("decodes malformed bytes to U+FFFD without throwing, like TextDecoder", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
      assert.equal(utf8Decode(bytes), new TextDecoder().decode(bytes));
    }),
    { numRuns: 3000 },
  );
});

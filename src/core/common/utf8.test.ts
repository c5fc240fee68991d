import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { compareBytes } from "./bytes.js";
import { compareUtf8, toWellFormed, utf8Decode, utf8Encode } from "./utf8.js";

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

test("compareUtf8 orders strings as their UTF-8 bytes do, unlike JS's UTF-16 order", () => {
  assert.ok("\u{1F600}" < "\uE000", "JS orders an astral character before U+E000");
  assert.ok(compareUtf8("\u{1F600}", "\uE000") > 0, "UTF-8 orders it after");
  const text = fc.string({ unit: fc.constantFrom("a", "z", "é", "\uE000", "\uFFFD", "\uFFFF", "\u{10000}", "\u{1F600}", "\u{10FFFF}"), maxLength: 4 });
  fc.assert(
    fc.property(text, text, (a, b) => {
      assert.equal(Math.sign(compareUtf8(a, b)), Math.sign(compareBytes(utf8Encode(a), utf8Encode(b))));
    }),
    { numRuns: 3000 },
  );
});

test("toWellFormed replaces lone surrogates as the encoder does, and returns well-formed text as it is", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 8 }), (text) => {
      const wellFormed = toWellFormed(text);
      assert.deepEqual(utf8Encode(wellFormed), utf8Encode(text));
      assert.equal(utf8Decode(utf8Encode(text)), wellFormed);
    }),
    { numRuns: 2000 },
  );
  const text = "ok 😀";
  assert.equal(toWellFormed(text), text);
});

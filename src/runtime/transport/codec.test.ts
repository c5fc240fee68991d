import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { InvalidInputError } from "../../core/common/errors.js";
import { decodeMessage, encodeMessage } from "./codec.js";

/** Compares decoded values treating Buffer and Uint8Array with the same bytes as equal. */
function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return { bytes: Array.from(value) };
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]));
  return value;
}

describe("peer message codec", () => {
  test("an append-shaped message with nested entries round-trips, byte strings as Uint8Array", () => {
    const message = {
      type: "append",
      term: 7,
      prevIndex: 2 ** 40,
      prevTerm: 6,
      commit: Number.MAX_SAFE_INTEGER,
      entries: [
        { index: 2 ** 40 + 1, term: 7, data: new Uint8Array([1, 2, 3]) },
        { index: 2 ** 40 + 2, term: 7, data: new Uint8Array(0) },
        { index: 2 ** 40 + 3, term: 7, data: new Uint8Array(70_000).fill(9) },
      ],
      nested: [[1, [2, [3, null]]], { ok: true, no: false, ratio: 0.25, name: "ünïcödé" }],
    };
    const decoded = decodeMessage(encodeMessage(message)) as typeof message;
    assert.deepEqual(normalize(decoded), normalize(message));
    for (const entry of decoded.entries) assert.ok(entry.data instanceof Uint8Array);
  });

  test("decoded byte strings own their memory instead of pinning the frame", () => {
    const frame = Uint8Array.from(encodeMessage({ data: new Uint8Array([5, 6, 7]) }));
    const decoded = decodeMessage(frame) as { data: Uint8Array };
    assert.notEqual(decoded.data.buffer, frame.buffer);
    frame.fill(0);
    assert.deepEqual(Array.from(decoded.data), [5, 6, 7]);
  });

  test("property: JSON-like values with byte strings round-trip", () => {
    // -0 is left out: msgpackr writes it as the integer 0, and no engine field is a float.
    const double = fc.double({ noNaN: true }).filter((x) => !Object.is(x, -0));
    const leaf = fc.oneof(fc.integer(), fc.maxSafeNat(), double, fc.string(), fc.string({ unit: "grapheme" }), fc.boolean(), fc.constant(null), fc.uint8Array({ maxLength: 32 }));
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: "small" }, leaf, fc.array(tie("node"), { maxLength: 5 }), fc.dictionary(fc.string({ maxLength: 8 }), tie("node"), { maxKeys: 5 })),
    })).node;
    fc.assert(
      fc.property(value, (message) => {
        assert.deepEqual(normalize(decodeMessage(encodeMessage(message))), normalize(message));
      }),
      { numRuns: 300 },
    );
  });

  test("a __proto__ key from the wire does not reach the prototype", () => {
    // fixmap(1) { "__proto__": { polluted: true } }, written by hand as a hostile peer would.
    const key = new TextEncoder().encode("__proto__");
    const inner = [0x81, 0xa8, ...new TextEncoder().encode("polluted"), 0xc3];
    const decoded = decodeMessage(Uint8Array.from([0x81, 0xa0 + key.length, ...key, ...inner])) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
    assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
  });

  test("empty, truncated and trailing input is InvalidInputError with a cause", () => {
    const whole = encodeMessage({ term: 1, entries: [1, 2, 3] });
    for (const bad of [new Uint8Array(0), whole.subarray(0, whole.length - 1), Uint8Array.from([...whole, 0x01])]) {
      assert.throws(() => decodeMessage(bad), (error: unknown) => error instanceof InvalidInputError && (bad.length === 0 || error.cause !== undefined));
    }
  });

  test("huge declared lengths and deep nesting fail fast instead of allocating or crashing", () => {
    const array32 = Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]);
    const map32 = Uint8Array.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 0x01]);
    const bin32 = Uint8Array.from([0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]);
    const deep = new Uint8Array(1_000_000).fill(0x91);
    for (const bad of [array32, map32, bin32, deep]) assert.throws(() => decodeMessage(bad), InvalidInputError);
  });

  test("property: random bytes either decode to some value or throw InvalidInputError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 64 }), (bytes) => {
        try {
          decodeMessage(bytes);
        } catch (error) {
          assert.ok(error instanceof InvalidInputError, `unexpected ${String(error)}`);
        }
      }),
      { numRuns: 3000 },
    );
  });

  test("a failed decode leaves the codec working for the next message", () => {
    assert.throws(() => decodeMessage(Uint8Array.from([0x92, 0x01])), InvalidInputError);
    assert.deepEqual(decodeMessage(encodeMessage({ a: [1] })), { a: [1] });
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { InvalidInputError } from "../common/errors.js";
import { GROUP_ID_MAX } from "../multi/group.js";
import { GROUP_TAG, groupHeaderBytes, readGroupHeader, tagWithGroup } from "./group.js";

const bytesOf = (...values: number[]): Uint8Array => Uint8Array.from(values);

describe("group-tagged frame payloads", () => {
  test("every group id round-trips, with the message after it untouched", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: GROUP_ID_MAX }), fc.uint8Array({ maxLength: 40 }), (group, message) => {
        const payload = tagWithGroup(group, message);
        assert.equal(payload.length, groupHeaderBytes(group) + message.length);
        const read = readGroupHeader(payload);
        assert.equal(read.group, group);
        assert.equal(read.tagged, true);
        assert.deepEqual([...read.message], [...message]);
      }),
    );
  });

  test("the id is LEB128 after the tag: 2 bytes for groups below 128, 6 for the largest", () => {
    assert.deepEqual([...tagWithGroup(0, bytesOf(0x80))], [GROUP_TAG, 0, 0x80]);
    assert.deepEqual([...tagWithGroup(300, bytesOf())], [GROUP_TAG, 0xac, 0x02]);
    assert.equal(groupHeaderBytes(127), 2);
    assert.equal(groupHeaderBytes(128), 3);
    assert.equal(groupHeaderBytes(GROUP_ID_MAX), 6);
  });

  test("a payload written before groups existed (a MessagePack value) is read as group 0, untouched", () => {
    // {} and {"type":1} as MessagePack: a fixmap, never the 0xc1 tag.
    for (const old of [bytesOf(0x80), bytesOf(0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0x01), bytesOf()]) {
      const read = readGroupHeader(old);
      assert.equal(read.group, 0);
      assert.equal(read.tagged, false);
      assert.equal(read.message, old);
    }
  });

  test("a broken id is refused with InvalidInputError, never read as another group", () => {
    const cases: [Uint8Array, RegExp][] = [
      [bytesOf(GROUP_TAG), /cut short/],
      [bytesOf(GROUP_TAG, 0x80), /cut short/],
      [bytesOf(GROUP_TAG, 0x80, 0x00), /shortest form/],
      [bytesOf(GROUP_TAG, 0xff, 0xff, 0xff, 0xff, 0x10), /above the largest/],
      [bytesOf(GROUP_TAG, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), /past 5 bytes/],
    ];
    for (const [payload, message] of cases) assert.throws(() => readGroupHeader(payload), (error: unknown) => error instanceof InvalidInputError && message.test(error.message));
  });

  test("any bytes at all either read as a group id in range or throw InvalidInputError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), fc.boolean(), (tail, tagged) => {
        const payload = tagged ? Uint8Array.from([GROUP_TAG, ...tail]) : tail;
        try {
          const read = readGroupHeader(payload);
          assert.ok(Number.isInteger(read.group) && read.group >= 0 && read.group <= GROUP_ID_MAX);
        } catch (error) {
          assert.ok(error instanceof InvalidInputError);
        }
      }),
    );
  });
});

import { assert } from "./assert.js";

/**
 * Every bound in one place. Relationships between limits are asserted when this module
 * loads, so an edit that breaks one fails at once rather than in production.
 */
export const limits = Object.freeze({
  /** Longest key, in UTF-8 bytes. */
  keyBytesMax: 4096,
  /** Largest value. */
  valueBytesMax: 1024 * 1024,
  /** Largest encoded KV command: a key, a value, an expected value and headers. */
  commandBytesMax: 4096 + 2 * 1024 * 1024 + 64,
});

assert(limits.commandBytesMax >= limits.keyBytesMax + 2 * limits.valueBytesMax, "a command must fit its key and two values");

import { assert } from "./assert.js";

/**
 * Every bound in one place. Relationships between limits are asserted when this module
 * loads, so an edit that breaks one fails at once rather than in production.
 */
export const limits = Object.freeze({
  /**
   * Longest key, in UTF-8 bytes. The state machine's LMDB store keys a record by one prefix
   * byte and the key, and LMDB refuses keys over 1978 bytes (`lmdbKeyBytesMax`).
   */
  keyBytesMax: 1024,
  /** Largest value. */
  valueBytesMax: 1024 * 1024,
  /**
   * Largest encoded KV command: a key, a value, an expected value and headers; a transaction
   * (any number of compares and operations up to the two limits below) must fit it too.
   */
  commandBytesMax: 4096 + 2 * 1024 * 1024 + 64,
  /** Most compares in one transaction command. */
  txnComparesMax: 128,
  /** Most operations in one branch (success or failure) of a transaction command. */
  txnOpsPerBranchMax: 128,
  /** LMDB's own key limit (its default build: 511 would be too small, 1978 is lmdb-js's). */
  lmdbKeyBytesMax: 1978,
});

assert(limits.commandBytesMax >= limits.keyBytesMax + 2 * limits.valueBytesMax, "a command must fit its key and two values");
assert(limits.keyBytesMax + 1 <= limits.lmdbKeyBytesMax, "a key and its one-byte prefix must fit an LMDB key");
assert(limits.txnComparesMax >= 1 && limits.txnOpsPerBranchMax >= 1, "a transaction must be able to hold a compare and an operation");

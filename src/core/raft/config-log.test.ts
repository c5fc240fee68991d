import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { LogEntry } from "../engine/contract.js";
import { ConfigLog } from "./config-log.js";
import { bootstrapMembership, encodeMembership } from "./membership.js";

const config = (index: number, term: number, voters: number[]): LogEntry => ({ index, term, data: encodeMembership(bootstrapMembership(voters)), kind: "config" });
const plain = (index: number, term: number): LogEntry => ({ index, term, data: new Uint8Array(0) });

/** A stand-in for the log: the term at each index, nothing before `snapshotIndexValue`. */
function logWith(entries: readonly LogEntry[], snapshotIndexValue = 0): { term: (index: number) => number | null; snapshotIndexValue: number } {
  return { term: (index) => entries.find((e) => e.index === index)?.term ?? null, snapshotIndexValue };
}

describe("4.1 the configurations in the log", () => {
  test("the configuration at an index is the latest entry at or before it; the latest is used at once, committed or not", () => {
    const configs = new ConfigLog(bootstrapMembership([1]), [plain(1, 1), config(2, 1, [1, 2]), plain(3, 1), config(4, 1, [1, 2, 3])]);
    assert.deepEqual(configs.membershipAt(1).voters, [1]);
    assert.deepEqual(configs.membershipAt(3).voters, [1, 2]);
    assert.deepEqual(configs.latest.voters, [1, 2, 3]);
    assert.equal(configs.latestIndex, 4);
  });

  test("a configuration entry a leader's conflicting append truncated is forgotten: the one before applies again", () => {
    const configs = new ConfigLog(bootstrapMembership([1, 2, 3]), [config(2, 1, [1, 2, 3, 4])]);
    // A leader of term 2 overwrote index 2 with an entry of its own, and appended a configuration at 3.
    const log = [plain(1, 1), plain(2, 2), config(3, 2, [1, 2])];
    assert.equal(configs.dropTruncated(logWith(log)), true);
    assert.deepEqual(configs.latest.voters, [1, 2, 3]);
    assert.equal(configs.addAppended(log.slice(1), logWith(log)), true);
    assert.deepEqual(configs.latest.voters, [1, 2]);
    assert.equal(configs.dropTruncated(logWith(log)), false, "entries the log still holds stay");
    assert.equal(configs.addAppended(log.slice(1), logWith(log)), false, "an entry already known is not added twice");
  });

  test("compaction folds the configurations through the index into the base; a snapshot replaces them", () => {
    const configs = new ConfigLog(bootstrapMembership([1]), [config(2, 1, [1, 2]), config(5, 1, [1, 2, 3])]);
    assert.deepEqual(configs.compact(3).voters, [1, 2]);
    assert.deepEqual(configs.membershipAt(3).voters, [1, 2]);
    assert.equal(configs.latestIndex, 5);
    configs.restore(bootstrapMembership([7, 8, 9]));
    assert.equal(configs.latestIndex, 0);
    assert.deepEqual(configs.latest.voters, [7, 8, 9]);
    configs.restore(undefined);
    assert.deepEqual(configs.latest.voters, [7, 8, 9], "a snapshot without a configuration keeps the one in force");
  });
});

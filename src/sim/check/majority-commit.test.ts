import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { checkMajorityCommit, type NodeLog } from "./majority-commit.js";

describe("majority commit", () => {
  test("a leader that counts a replica it does not have is caught at once", () => {
    const up = (terms: Record<number, number>): NodeLog => ({ up: true, snapshotIndex: 0, entryTerm: (i: number) => terms[i] ?? null });
    const nodes = new Map<number, NodeLog>([
      [1, up({ 5: 3 })],
      [2, up({ 5: 1 })],
      [3, up({ 5: 3 })],
      [4, up({})],
      [5, { up: false, durable: { hardState: null, snapshot: null, entries: [{ index: 5, term: 3, data: new Uint8Array() }] } }],
    ]);
    assert.doesNotThrow(() => checkMajorityCommit(1, 5, 3, nodes), "1, 3 and the crashed 5 hold it");
    nodes.delete(5);
    nodes.set(5, up({}));
    assert.throws(() => checkMajorityCommit(1, 5, 3, nodes), /held by 2 of 5 nodes \(1, 3\)/);
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { KvResult } from "../../core/kv/model.js";
import { GroupRouter } from "../../core/multi/router.js";
import type { KvOperation } from "./driver.js";
import { RangeWrites } from "./range-writes.js";

/** Nodes whose routers deliver to each other on the next turn; `hosted` says which node hosts which ranges. */
function nodes(hosted: Record<number, readonly number[]>, leaders: Record<number, readonly number[]>, timeoutMs = 500) {
  const routers = new Map<number, GroupRouter<unknown>>();
  const written: { node: number; range: number; operation: KvOperation }[] = [];
  const writes = new Map<number, RangeWrites>();
  for (const id of Object.keys(hosted).map(Number)) {
    const router: GroupRouter<unknown> = new GroupRouter<unknown>({
      send: (to, envelope) => {
        setImmediate(() => routers.get(to)?.deliver(id, envelope));
        return true;
      },
    });
    routers.set(id, router);
    writes.set(
      id,
      new RangeWrites({
        groups: router,
        replica: (range) =>
          hosted[id]?.includes(range) === true
            ? {
                driver: {
                  write: (operation: KvOperation): Promise<KvResult> => {
                    written.push({ node: id, range, operation });
                    if (operation.op === "txn-decide") return Promise.resolve({ op: "txn-decide", txn: operation.txn, outcome: operation.outcome });
                    return Promise.reject(Object.assign(new Error("not the leader"), { name: "NotLeaderError" }));
                  },
                },
              }
            : undefined,
        hostsOf: (range) => leaders[range] ?? [],
        timeoutMs,
      }),
    );
  }
  return { writes: (id: number) => writes.get(id) as RangeWrites, written };
}

describe("a transaction's phases for a range this node does not host", () => {
  test("go through a node hosting the range, which writes them through its replica and answers the result", async () => {
    const { writes, written } = nodes({ 1: [0], 2: [0, 5] }, { 5: [2] });
    const result = await writes(1).write(5, { op: "txn-decide", txn: "t-1", outcome: "success" });
    assert.deepEqual(result, { op: "txn-decide", txn: "t-1", outcome: "success" });
    assert.deepEqual(written, [{ node: 2, range: 5, operation: { op: "txn-decide", txn: "t-1", outcome: "success" } }]);
  });

  test("a node that turns out not to host the range, or does not answer, is passed over for the next; an error from the range itself is passed back", async () => {
    // Node 3 is named first but hosts nothing; node 9 is not there at all (no answer); node 2 hosts the range.
    const { writes, written } = nodes({ 1: [], 2: [5], 3: [] }, { 5: [3, 9, 2] }, 200);
    const result = await writes(1).write(5, { op: "txn-decide", txn: "t-2", outcome: "abort" });
    assert.equal(result.op, "txn-decide");
    assert.equal(written.length, 1);
    await assert.rejects(writes(1).write(5, { op: "txn-resolve", txn: "t-2", outcome: "abort" }), { name: "NotLeaderError", message: "not the leader" });
  });

  test("only a transaction's phases are written through another node, and none known is an error that says so", async () => {
    const { writes } = nodes({ 1: [], 2: [5] }, { 5: [2] });
    await assert.rejects(writes(1).write(5, { op: "put", key: "k", value: new Uint8Array() } as KvOperation), /only a transaction's phases/);
    await assert.rejects(writes(1).write(7, { op: "txn-decide", txn: "t-3", outcome: "abort" }), /no node hosting range 7 took the transaction's txn-decide \(none known yet\)/);
  });
});

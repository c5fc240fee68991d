// The coordinator and the recovery of transactions across ranges (cross-range-txn.ts), over
// three ranges' real state machines whose "drivers" apply each write at once: a coordinator
// that vanished after any phase is finished by the recovery with the outcome that stands.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { NotLeaderError } from "../../core/common/errors.js";
import { utf8Decode, utf8Encode } from "../../core/common/utf8.js";
import { MemoryKvBackend } from "../../core/kv/backend.js";
import { encodeCommand, type KvCommand, type TxnOutcome } from "../../core/kv/command.js";
import { KvStore } from "../../core/kv/store.js";
import { RangeTable } from "../../core/multi/ranges.js";
import { RequestTimeoutError, WriteOutcomeUnknownError } from "../../core/replica/errors.js";
import { ABANDONED_AFTER_MS, CrossRangeTxns, TxnAbortedError, type TxnReplica } from "./cross-range-txn.js";

const TABLE = new RangeTable([
  { id: 0, start: "", end: "h", epoch: 1 },
  { id: 1, start: "h", end: "q", epoch: 1 },
  { id: 2, start: "q", end: null, epoch: 1 },
]);
const request = { clientId: 0, sequence: 0, timeMs: 1_000 };

/** A write's fate in a test: what it throws, whether it applied first (an answer lost), or null to apply and answer. */
type Fault = (range: number, operation: { readonly op: string }) => { readonly error: Error; readonly applied: boolean } | null;

function world(fault: Fault = () => null): { txns: CrossRangeTxns; stores: KvStore[]; clock: { ms: number }; write: (range: number, command: KvCommand) => void } {
  const stores = TABLE.list().map((range) => {
    const backend = new MemoryKvBackend();
    backend.span = { start: range.start, end: range.end };
    return new KvStore(backend);
  });
  const apply = (store: KvStore, command: KvCommand) => store.apply(store.applied + 1, encodeCommand(command)).result;
  const replicas: TxnReplica[] = stores.map((kv) => ({
    kv,
    engine: { status: () => ({ role: "leader" }) } as unknown as TxnReplica["engine"],
    driver: {
      write: (operation) => {
        const failure = fault(kv === stores[0] ? 0 : kv === stores[1] ? 1 : 2, operation);
        if (failure === null) return Promise.resolve(apply(kv, { ...operation, request } as KvCommand));
        if (failure.applied) apply(kv, { ...operation, request } as KvCommand);
        return Promise.reject(failure.error);
      },
    },
  }));
  const clock = { ms: 1_000_000 };
  const silent = { info: () => undefined, warn: () => undefined } as unknown as ConstructorParameters<typeof CrossRangeTxns>[0]["log"];
  const txns = new CrossRangeTxns({ nodeId: 1, table: () => TABLE, replica: (id) => replicas[id], log: silent, now: () => clock.ms });
  return { txns, stores, clock, write: (range, command) => void apply(stores[range] as KvStore, command) };
}

const value = (store: KvStore | undefined, key: string): string | null => {
  const record = store?.get(key);
  return record === undefined ? null : utf8Decode(record.value);
};

const transfer = {
  compares: [{ key: "ann", target: "value" as const, op: "=" as const, value: utf8Encode("10") }],
  success: [
    { op: "put" as const, key: "ann", value: utf8Encode("5") },
    { op: "put" as const, key: "kim", value: utf8Encode("5") },
    { op: "get" as const, key: "zed" },
  ],
  failure: [],
};

describe("transactions across ranges: the coordinator and its recovery", () => {
  test("a transaction over three ranges: every range applies its part, results in the client's order", async () => {
    const { txns, stores, write } = world();
    write(0, { op: "put", request, key: "ann", value: utf8Encode("10") });
    write(2, { op: "put", request, key: "zed", value: utf8Encode("z") });
    assert.equal(txns.spansRanges(transfer), true);
    const result = await txns.run(transfer);
    assert.equal(result.outcome, "success");
    assert.deepEqual(result.ranges.map((r) => r.id), [0, 1, 2], "the anchor (the smallest key's range) first");
    assert.deepEqual(result.results.map((r) => r.op), ["put", "put", "get"]);
    const get = result.results[2];
    assert.equal(get?.op === "get" ? utf8Decode(get.record?.value ?? new Uint8Array()) : null, "z");
    assert.deepEqual([value(stores[0], "ann"), value(stores[1], "kim")], ["5", "5"]);
  });

  test("a key held by another transaction aborts it, changing nothing", async () => {
    const { txns, stores, write } = world();
    write(0, { op: "put", request, key: "ann", value: utf8Encode("10") });
    write(1, { op: "txn-prepare", request, txn: "other", anchor: 1, compares: [], success: [{ op: "put", key: "kim", value: utf8Encode("1") }], failure: [] });
    await assert.rejects(txns.run(transfer), TxnAbortedError);
    assert.equal(value(stores[0], "ann"), "10");
    assert.equal(stores[0]?.intents.inFlight, 0, "its own prepares were resolved (aborted)");
  });

  test("a decision whose answer was lost, then refused for want of a leader: outcome unknown (a 503 timeout), never an abort; the recovery commits it", async () => {
    let decides = 0;
    const { txns, stores, clock, write } = world((range, operation) => {
      // The coordinator's three attempts fail; the recovery's, later, is answered.
      if (range !== 0 || operation.op !== "txn-decide" || decides >= 3) return null;
      decides += 1;
      // The first attempt is recorded but its answer lost; the retries are refused (no leader known).
      return decides === 1 ? { error: new RequestTimeoutError("write", 5000), applied: true } : { error: new NotLeaderError(null), applied: false };
    });
    write(0, { op: "put", request, key: "ann", value: utf8Encode("10") });
    const error = await txns.run(transfer).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(error instanceof WriteOutcomeUnknownError, `rejected with ${String(error)}`);
    assert.equal(decides, 3, "the decision was proposed again, up to its attempts");
    assert.deepEqual([value(stores[0], "ann"), value(stores[1], "kim")], ["10", null], "held, not applied, until resolved");
    clock.ms += ABANDONED_AFTER_MS;
    await txns.recoverOnce();
    clock.ms += ABANDONED_AFTER_MS;
    await txns.recoverOnce();
    for (const store of stores) assert.equal(store.intents.inFlight, 0);
    assert.deepEqual([value(stores[0], "ann"), value(stores[1], "kim")], ["5", "5"], "the success first recorded stands");
  });

  for (const [stopped, recorded, expected] of [
    ["after prepare", null, "abort"],
    ["after deciding success", "success", "success"],
    ["after deciding abort", "abort", "abort"],
  ] as const) {
    test(`a coordinator that vanished ${stopped}: the recovery resolves every range with the outcome that stands (${expected})`, async () => {
      const { txns, stores, clock, write } = world();
      write(0, { op: "put", request, key: "ann", value: utf8Encode("10") });
      for (const [range, part] of [
        [0, { compares: transfer.compares, success: [transfer.success[0]], failure: [] }],
        [1, { compares: [], success: [transfer.success[1]], failure: [] }],
      ] as const) {
        write(range, { op: "txn-prepare", request, txn: "lost", anchor: 0, compares: [...part.compares], success: [...part.success] as never, failure: [] });
      }
      if (recorded !== null) write(0, { op: "txn-decide", request, txn: "lost", outcome: recorded as TxnOutcome });
      await txns.recoverOnce();
      assert.equal(stores[1]?.intents.inFlight, 1, "not before it has sat for a while");
      clock.ms += ABANDONED_AFTER_MS;
      await txns.recoverOnce();
      for (const store of stores) assert.equal(store.intents.inFlight, 0);
      assert.deepEqual([value(stores[0], "ann"), value(stores[1], "kim")], expected === "success" ? ["5", "5"] : ["10", null]);
    });
  }
});

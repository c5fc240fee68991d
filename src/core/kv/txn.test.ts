import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { AssertionError } from "../common/assert.js";
import { InvalidInputError } from "../common/errors.js";
import { limits } from "../common/limits.js";
import { utf8Encode } from "../common/utf8.js";
import { decodeCommand, encodeCommand, type KvCommand, type TxnCommand, type TxnCompare, type TxnOperation } from "./command.js";
import { txnArbitrary } from "./arbitraries.test-util.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM, type KvResult } from "./store.js";

const bytes = (s: string): Uint8Array => utf8Encode(s);
const anonymous = { clientId: 0, sequence: 0 };

function txn(compares: TxnCompare[], success: TxnOperation[], failure: TxnOperation[] = [], request = anonymous): TxnCommand {
  return { op: "txn", request, compares, success, failure };
}

/** A store with a = "m" (created at revision 1, modified at 2, version 2) and b = "x" at 3. */
function seeded(): { store: KvStore; run: (command: KvCommand) => KvResult } {
  const store = new KvStore();
  const run = (command: KvCommand): KvResult => store.apply(store.applied + 1, encodeCommand(command)).result;
  run({ op: "put", request: anonymous, key: "a", value: bytes("k") });
  run({ op: "put", request: anonymous, key: "a", value: bytes("m") });
  run({ op: "put", request: anonymous, key: "b", value: bytes("x") });
  return { store, run };
}

function succeeded(result: KvResult): boolean {
  assert.equal(result.op, "txn");
  return result.op === "txn" && result.succeeded;
}

describe("transactions: compares", () => {
  test("every target and operator, on a present key (a: value m, create 1, mod 2, version 2)", () => {
    const { run } = seeded();
    const cases: [TxnCompare, boolean][] = [
      [{ key: "a", target: "value", op: "=", value: bytes("m") }, true],
      [{ key: "a", target: "value", op: "!=", value: bytes("m") }, false],
      [{ key: "a", target: "value", op: "<", value: bytes("n") }, true],
      [{ key: "a", target: "value", op: "<", value: bytes("m") }, false],
      [{ key: "a", target: "value", op: ">", value: bytes("l") }, true],
      [{ key: "a", target: "value", op: ">", value: bytes("m\0") }, false],
      [{ key: "a", target: "value", op: "<", value: bytes("m\0") }, true],
      [{ key: "a", target: "createRevision", op: "=", value: 1 }, true],
      [{ key: "a", target: "createRevision", op: ">", value: 0 }, true],
      [{ key: "a", target: "modRevision", op: "=", value: 2 }, true],
      [{ key: "a", target: "modRevision", op: "<", value: 2 }, false],
      [{ key: "a", target: "modRevision", op: "!=", value: 3 }, true],
      [{ key: "a", target: "version", op: "=", value: 2 }, true],
      [{ key: "a", target: "version", op: ">", value: 2 }, false],
      [{ key: "a", target: "version", op: "<", value: 3 }, true],
    ];
    for (const [compare, expected] of cases) assert.equal(succeeded(run(txn([compare], []))), expected, JSON.stringify(compare));
  });

  test("a missing key has version and revisions 0; a value compare on it holds only for !=", () => {
    const { run } = seeded();
    const cases: [TxnCompare, boolean][] = [
      [{ key: "none", target: "version", op: "=", value: 0 }, true],
      [{ key: "none", target: "createRevision", op: "=", value: 0 }, true],
      [{ key: "none", target: "modRevision", op: "<", value: 1 }, true],
      [{ key: "none", target: "version", op: ">", value: 0 }, false],
      [{ key: "none", target: "value", op: "=", value: new Uint8Array() }, false],
      [{ key: "none", target: "value", op: "<", value: bytes("z") }, false],
      [{ key: "none", target: "value", op: ">", value: new Uint8Array() }, false],
      [{ key: "none", target: "value", op: "!=", value: bytes("x") }, true],
      [{ key: "none", target: "value", op: "!=", value: new Uint8Array() }, true],
    ];
    for (const [compare, expected] of cases) assert.equal(succeeded(run(txn([compare], []))), expected, JSON.stringify(compare));
  });

  test("all compares must hold; none means success", () => {
    const { run } = seeded();
    const holds: TxnCompare = { key: "a", target: "version", op: "=", value: 2 };
    const fails: TxnCompare = { key: "b", target: "version", op: "=", value: 2 };
    assert.equal(succeeded(run(txn([holds, holds], []))), true);
    assert.equal(succeeded(run(txn([holds, fails], []))), false);
    assert.equal(succeeded(run(txn([], []))), true);
  });
});

describe("transactions: effects", () => {
  test("the chosen branch runs; its writes share one new revision; gets see earlier writes", () => {
    const { store, run } = seeded();
    const result = run(
      txn(
        [{ key: "a", target: "value", op: "=", value: bytes("m") }],
        [
          { op: "get", key: "a" },
          { op: "put", key: "a", value: bytes("n") },
          { op: "put", key: "c", value: bytes("new") },
          { op: "delete", key: "b" },
          { op: "delete", key: "missing" },
          { op: "get", key: "a" },
          { op: "get", key: "b" },
        ],
        [{ op: "put", key: "failure-ran", value: bytes("1") }],
      ),
    );
    assert.deepEqual(result, {
      op: "txn",
      succeeded: true,
      revision: 4,
      results: [
        { op: "get", record: { key: "a", value: bytes("m"), createRevision: 1, modRevision: 2, version: 2 } },
        { op: "put", revision: 4 },
        { op: "put", revision: 4 },
        { op: "delete", deleted: 1 },
        { op: "delete", deleted: 0 },
        { op: "get", record: { key: "a", value: bytes("n"), createRevision: 1, modRevision: 4, version: 3 } },
        { op: "get", record: null },
      ],
    });
    assert.equal(store.currentRevision, 4, "one revision for the whole transaction");
    assert.deepEqual(store.get("c"), { key: "c", value: bytes("new"), createRevision: 4, modRevision: 4, version: 1 });
    assert.equal(store.get("b"), undefined);
    assert.equal(store.get("failure-ran"), undefined);
  });

  test("the failure branch runs when a compare fails", () => {
    const { store, run } = seeded();
    const result = run(txn([{ key: "a", target: "modRevision", op: "=", value: 99 }], [{ op: "put", key: "s", value: bytes("1") }], [{ op: "put", key: "f", value: bytes("1") }, { op: "get", key: "a" }]));
    assert.equal(succeeded(result), false);
    assert.equal(store.get("s"), undefined);
    assert.equal(store.get("f")?.modRevision, 4);
  });

  test("a transaction that writes nothing keeps the revision", () => {
    const { store, run } = seeded();
    assert.deepEqual(run(txn([], [{ op: "get", key: "b" }, { op: "delete", key: "missing" }])), {
      op: "txn",
      succeeded: true,
      revision: 3,
      results: [{ op: "get", record: { key: "b", value: bytes("x"), createRevision: 3, modRevision: 3, version: 1 } }, { op: "delete", deleted: 0 }],
    });
    assert.equal(store.currentRevision, 3);
  });

  test("a duplicate transaction takes effect once; its session keeps puts and deletes, not read records", () => {
    const { store, run } = seeded();
    const command = txn([], [{ op: "put", key: "k", value: bytes("1") }, { op: "get", key: "a" }, { op: "delete", key: "b" }], [], { clientId: SELF_ASSIGNED_SESSIONS_FROM + 7, sequence: 1 });
    const first = store.apply(store.applied + 1, encodeCommand(command));
    assert.equal(first.duplicate, false);
    const again = store.apply(store.applied + 1, encodeCommand(command));
    assert.equal(again.duplicate, true);
    assert.deepEqual(again.result, { op: "txn", succeeded: true, revision: 4, results: [{ op: "put", revision: 4 }, { op: "get-forgotten" }, { op: "delete", deleted: 1 }] });
    assert.equal(store.currentRevision, 4);
    assert.equal(store.get("k")?.version, 1);
    // The session survives a snapshot, and the snapshot of a store after a transaction restores to the same bytes.
    const restored = KvStore.restore(store.snapshot());
    assert.deepEqual(restored.snapshot(), store.snapshot());
    assert.deepEqual(restored.apply(restored.applied + 1, encodeCommand(command)).result, again.result);
    assert.deepEqual(run({ op: "put", request: anonymous, key: "z", value: bytes("") }), { op: "put", revision: 5 });
  });

  test("a batch is atomic: an entry out of order undoes the transactions before it", () => {
    const { store } = seeded();
    const before = store.snapshot();
    const write = encodeCommand(txn([], [{ op: "put", key: "a", value: bytes("lost") }]));
    assert.throws(
      () =>
        store.applyBatch([
          { index: 4, data: write },
          { index: 6, data: write },
        ]),
      AssertionError,
    );
    assert.deepEqual(store.snapshot(), before);
    assert.equal(store.applied, 3);
    assert.equal(store.currentRevision, 3);
    assert.deepEqual(store.get("a")?.value, bytes("m"));
  });
});

describe("transactions: byte format", () => {
  test("any transaction round-trips", () => {
    fc.assert(
      fc.property(txnArbitrary, (command) => {
        assert.deepEqual(decodeCommand(encodeCommand(command)), command);
      }),
      { numRuns: 500 },
    );
  });

  test("limits and rules are refused with InvalidInputError when encoding", () => {
    const get: TxnOperation = { op: "get", key: "k" };
    const compare: TxnCompare = { key: "k", target: "version", op: "=", value: 0 };
    const refused = (command: TxnCommand): void => assert.throws(() => encodeCommand(command), InvalidInputError);
    assert.ok(encodeCommand(txn(Array(limits.txnComparesMax).fill(compare), Array(limits.txnOpsPerBranchMax).fill(get))).length > 0);
    refused(txn(Array(limits.txnComparesMax + 1).fill(compare), []));
    refused(txn([], Array(limits.txnOpsPerBranchMax + 1).fill(get)));
    refused(txn([], [], Array(limits.txnOpsPerBranchMax + 1).fill(get)));
    refused(txn([], [{ op: "put", key: "k", value: bytes("1") }, { op: "delete", key: "k" }]));
    refused(txn([], [{ op: "get", key: "" }]));
    refused(txn([{ key: "k".repeat(limits.keyBytesMax + 1), target: "version", op: "=", value: 0 }], []));
    refused(txn([{ key: "k", target: "version", op: "=", value: -1 }], []));
    refused(txn([{ key: "k", target: "modRevision", op: "=", value: 1.5 }], []));
    // Three values of 1 MiB are each allowed but together over the command limit.
    const big = new Uint8Array(limits.valueBytesMax);
    refused(txn([], [{ op: "put", key: "1", value: big }, { op: "put", key: "2", value: big }, { op: "put", key: "3", value: big }]));
    // A key written in one branch may be written in the other, and read any number of times.
    assert.ok(encodeCommand(txn([], [{ op: "put", key: "k", value: bytes("1") }, get, get], [{ op: "delete", key: "k" }])).length > 0);
  });

  test("a decoded transaction obeys the same rules: a key written twice is refused", () => {
    const once = encodeCommand(txn([], [{ op: "put", key: "k", value: bytes("1") }, { op: "put", key: "j", value: bytes("2") }]));
    const twice = once.slice();
    // Turn the second key "j" into "k": the op is otherwise well formed.
    twice[twice.lastIndexOf("j".charCodeAt(0))] = "k".charCodeAt(0);
    assert.throws(() => decodeCommand(twice), /more than once/);
  });

  test("truncated, corrupted or random transactions are refused with InvalidInputError, never a crash", () => {
    const good = encodeCommand(
      txn([{ key: "a", target: "value", op: "<", value: bytes("v") }, { key: "b", target: "version", op: ">", value: 3 }], [{ op: "put", key: "a", value: bytes("1") }, { op: "get", key: "b" }], [{ op: "delete", key: "a" }]),
    );
    for (let cut = 0; cut < good.length; cut++) assert.throws(() => decodeCommand(good.slice(0, cut)), InvalidInputError);
    const header = good.slice(0, 18);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), (garbage, at, flip) => {
        const variants = [new Uint8Array([...header, ...garbage]), good.map((byte, i) => (i === at ? byte ^ flip : byte))];
        for (const variant of variants) {
          try {
            decodeCommand(variant);
          } catch (error) {
            assert.ok(error instanceof InvalidInputError, String(error));
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  test("version-1 commands decode as before (the txn op is new, the others unchanged)", () => {
    // put "k" = [7] from client 1, sequence 2, written out by hand in the version-1 layout.
    const put = new Uint8Array([1, 0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x6b, 0, 0, 0, 1, 7]);
    assert.deepEqual(decodeCommand(put), { op: "put", request: { clientId: 1, sequence: 2 }, key: "k", value: new Uint8Array([7]) });
    // Written today as version 2, with the proposer's time after the sequence.
    const encoded = encodeCommand({ op: "put", request: { clientId: 1, sequence: 2, timeMs: 3 }, key: "k", value: new Uint8Array([7]) });
    assert.deepEqual(encoded, new Uint8Array([2, ...put.subarray(1, 18), 0x40, 0x08, 0, 0, 0, 0, 0, 0, ...put.subarray(18)]));
    assert.deepEqual(decodeCommand(encoded), { op: "put", request: { clientId: 1, sequence: 2, timeMs: 3 }, key: "k", value: new Uint8Array([7]) });
  });
});

// The transactional checker on hand-written histories: one per anomaly class it names, a
// valid history that must pass, a serializable one that is not strict serializable, the
// register workload's weaker inference, bad input, and the text a person reads.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { InvalidInputError } from "../../core/common/errors.js";
import { checkListAppend, checkRegisters, type AnomalyKind, type ListAppendOp, type RegisterOp, type Transaction, type TxnCheckResult } from "./txn-check.js";

// Builders. Times are in the simulator's unit (virtual µs); T1 is the history's first transaction.
const txn = <Op>(client: number, call: number, ret: number, ops: Op[], status: Transaction<Op>["status"] = "ok"): Transaction<Op> => ({ client, call, return: ret, status, ops });
const append = (key: string, value: number): ListAppendOp => ({ f: "append", key, value });
const readList = (key: string, value: number[] | null): ListAppendOp => ({ f: "read", key, value });
const write = (key: string, value: number): RegisterOp => ({ f: "write", key, value });
const readRegister = (key: string, value: number | null): RegisterOp => ({ f: "read", key, value });

function kinds(result: TxnCheckResult): AnomalyKind[] {
  return result.verdict === "valid" ? [] : result.anomalies.map((anomaly) => anomaly.kind);
}

/** Asserts exactly these anomaly kinds were found, and returns the explanation. */
function expectAnomalies(result: TxnCheckResult, expected: AnomalyKind[]): string {
  const explanation = result.verdict === "violation" ? result.explanation : "(valid)";
  assert.deepEqual(kinds(result).sort(), [...expected].sort(), explanation);
  return explanation;
}

/** The cycle of the first anomaly (of kind `kind`, if given), as `T1 -ww-> T2` steps. */
function cycleOf(result: TxnCheckResult, kind?: AnomalyKind): string[] {
  assert.equal(result.verdict, "violation");
  const anomaly = result.verdict === "violation" ? result.anomalies.find((a) => kind === undefined || a.kind === kind) : undefined;
  assert.ok(anomaly !== undefined && "cycle" in anomaly, "expected a cycle");
  return anomaly.cycle.map((step) => `T${step.from + 1} -${step.type}-> T${step.to + 1}`);
}

describe("list-append: hand-written histories", () => {
  test("a serializable history passes, strict too", () => {
    const history = [
      txn(1, 0, 10, [append("x", 1)]),
      txn(2, 20, 30, [readList("x", [1]), append("y", 1)]),
      txn(3, 40, 50, [readList("x", [1]), readList("y", [1]), append("x", 2)]),
      txn(1, 60, 70, [readList("x", [1, 2]), readList("y", [1])]),
    ];
    expectAnomalies(checkListAppend(history), []);
    expectAnomalies(checkListAppend(history, { consistency: "strict-serializable" }), []);
  });

  test("G0: two transactions' appends interleave on two keys", () => {
    const history = [
      txn(1, 0, 10, [append("x", 1), append("y", 1)]),
      txn(2, 0, 10, [append("x", 2), append("y", 2)]),
      txn(3, 20, 30, [readList("x", [1, 2]), readList("y", [2, 1])]),
    ];
    const result = checkListAppend(history);
    expectAnomalies(result, ["G0"]);
    assert.deepEqual(cycleOf(result), ["T1 -ww-> T2", "T2 -ww-> T1"]);
  });

  test("G1a: a committed read sees a failed transaction's append", () => {
    const history = [txn(1, 0, 10, [append("x", 1)], "fail"), txn(2, 20, 30, [readList("x", [1])])];
    const explanation = expectAnomalies(checkListAppend(history), ["G1a"]);
    assert.match(explanation, /T2 read x = \[1\], including 1, appended by T1, which failed/);
  });

  test("G1b: a read ends in an append its writer followed with another", () => {
    // T2 also sits in a cycle with T1 (it read T1's 1 but missed T1's 2): a list shows both.
    const history = [txn(1, 0, 10, [append("x", 1), append("x", 2)]), txn(2, 0, 10, [readList("x", [1])]), txn(3, 20, 30, [readList("x", [1, 2])])];
    const result = checkListAppend(history);
    expectAnomalies(result, ["G1b", "G-single"]);
    assert.deepEqual(cycleOf(result, "G-single"), ["T2 -rw-> T1", "T1 -wr-> T2"]);
  });

  test("G1c: each of two transactions reads the other's append", () => {
    const history = [txn(1, 0, 10, [append("x", 1), readList("y", [1])]), txn(2, 0, 10, [append("y", 1), readList("x", [1])])];
    const result = checkListAppend(history);
    expectAnomalies(result, ["G1c"]);
    assert.deepEqual(cycleOf(result), ["T1 -wr-> T2", "T2 -wr-> T1"]);
  });

  test("G-single: read skew, one transaction sees half of another", () => {
    const history = [
      txn(1, 0, 10, [append("x", 1), append("y", 1)]),
      txn(2, 0, 10, [readList("x", []), readList("y", [1])]),
      txn(3, 20, 30, [readList("x", [1])]),
    ];
    const result = checkListAppend(history);
    expectAnomalies(result, ["G-single"]);
    assert.deepEqual(cycleOf(result), ["T2 -rw-> T1", "T1 -wr-> T2"]);
  });

  test("G2-item: write skew, each reads what the other then appends to", () => {
    const history = [
      txn(1, 0, 10, [readList("x", []), append("y", 1)]),
      txn(2, 0, 10, [readList("y", []), append("x", 1)]),
      txn(3, 20, 30, [readList("x", [1]), readList("y", [1])]),
    ];
    const result = checkListAppend(history);
    expectAnomalies(result, ["G2-item"]);
    assert.deepEqual(cycleOf(result), ["T1 -rw-> T2", "T2 -rw-> T1"]);
  });

  test("incompatible order: two reads that are not prefixes of one list", () => {
    const history = [txn(1, 0, 10, [append("x", 1)]), txn(2, 0, 10, [append("x", 2)]), txn(3, 20, 30, [readList("x", [1, 2])]), txn(4, 20, 30, [readList("x", [2, 1])])];
    const explanation = expectAnomalies(checkListAppend(history), ["incompatible-order"]);
    assert.match(explanation, /not a prefix of the second/);
  });

  test("incompatible order: a transaction's own appends seen in the other order", () => {
    // The read also ends in T1's first append, which T1 followed with another: G1b too.
    const history = [txn(1, 0, 10, [append("x", 1), append("x", 2)]), txn(2, 20, 30, [readList("x", [2, 1])])];
    expectAnomalies(checkListAppend(history), ["incompatible-order", "G1b"]);
    // With no read ending inside T2's appends, only their order gives it away (found by the
    // brute-force property test, at 50,000 runs, with this check removed).
    const hidden = [txn(1, 0, 10, [append("x", 1)]), txn(2, 0, 10, [append("x", 2), append("x", 3)]), txn(3, 20, 30, [readList("x", [3, 2, 1])])];
    expectAnomalies(checkListAppend(hidden), ["incompatible-order"]);
  });

  test("internal: a read that misses the transaction's own append, and one that sees it early", () => {
    expectAnomalies(checkListAppend([txn(1, 0, 10, [append("x", 1), readList("x", [])])]), ["internal"]);
    expectAnomalies(checkListAppend([txn(1, 0, 10, [readList("x", [1]), append("x", 1)])]), ["internal"]);
    // A repeated read that changed with no append of its own in between: the reads before
    // and after T1's append also close a cycle through T1.
    const changed = [txn(1, 0, 10, [append("x", 1)]), txn(2, 0, 10, [readList("x", []), readList("x", [1])])];
    expectAnomalies(checkListAppend(changed), ["internal", "G-single"]);
  });

  test("duplicate elements and garbage reads", () => {
    expectAnomalies(checkListAppend([txn(1, 0, 10, [append("x", 1)]), txn(2, 20, 30, [readList("x", [1, 1])])]), ["duplicate-elements"]);
    expectAnomalies(checkListAppend([txn(1, 0, 10, [readList("x", [9])])]), ["garbage-read"]);
  });

  test("a timed-out append may have committed, or not", () => {
    const seen = [txn(1, 0, 10, [append("x", 1)], "unknown"), txn(2, 20, 30, [readList("x", [1])])];
    expectAnomalies(checkListAppend(seen, { consistency: "strict-serializable" }), []);
    const unseen = [txn(1, 0, 10, [append("x", 1)], "unknown"), txn(2, 20, 30, [readList("x", [])])];
    expectAnomalies(checkListAppend(unseen, { consistency: "strict-serializable" }), []);
  });

  test("serializable but not strict serializable: a read that ignores a completed append", () => {
    // T2 starts after T1 completed, yet misses its append: ordering T2 first explains the
    // reads (serializable), but real time puts T1 first.
    const history = [txn(1, 0, 10, [append("x", 1)]), txn(2, 20, 30, [readList("x", [])]), txn(3, 40, 50, [readList("x", [1])])];
    expectAnomalies(checkListAppend(history), []);
    const strict = checkListAppend(history, { consistency: "strict-serializable" });
    const explanation = expectAnomalies(strict, ["G-single-realtime"]);
    assert.deepEqual(cycleOf(strict), ["T2 -rw-> T1", "T1 -rt-> T2"]);
    assert.match(explanation, /^The history of 3 transactions is not strict serializable \(every cycle found needs real-time order\): G-single-realtime x1\./);
    assert.match(explanation, /T1 -> T2 \(rt\): T1 completed at 0\.010ms, before T2 was invoked at 0\.020ms/);
  });

  test("G0-realtime: appends land in the opposite order to real time", () => {
    const history = [txn(1, 0, 10, [append("x", 1)]), txn(2, 20, 30, [append("x", 2)]), txn(3, 40, 50, [readList("x", [2, 1])])];
    expectAnomalies(checkListAppend(history), []);
    expectAnomalies(checkListAppend(history, { consistency: "strict-serializable" }), ["G0-realtime"]);
  });

  test("touching intervals are concurrent: no real-time order between them", () => {
    const history = [txn(1, 0, 10, [append("x", 1)]), txn(2, 10, 30, [readList("x", [])]), txn(3, 40, 50, [readList("x", [1])])];
    expectAnomalies(checkListAppend(history, { consistency: "strict-serializable" }), []);
  });
});

describe("register: hand-written histories", () => {
  test("a serializable history passes, strict too", () => {
    const history = [
      txn(1, 0, 10, [write("x", 1)]),
      txn(2, 20, 30, [readRegister("x", 1), write("x", 2), readRegister("y", null)]),
      txn(3, 40, 50, [readRegister("x", 2), write("y", 1)]),
    ];
    expectAnomalies(checkRegisters(history), []);
    expectAnomalies(checkRegisters(history, { consistency: "strict-serializable" }), []);
  });

  test("G0: both read nil and wrote two keys, each first on one of them", () => {
    const history = [txn(1, 0, 10, [readRegister("x", null), write("x", 1), write("y", 1)]), txn(2, 0, 10, [readRegister("y", null), write("y", 2), write("x", 2)])];
    expectAnomalies(checkRegisters(history), ["G0"]);
  });

  test("G1a, G1b and garbage reads", () => {
    expectAnomalies(checkRegisters([txn(1, 0, 10, [write("x", 1)], "fail"), txn(2, 20, 30, [readRegister("x", 1)])]), ["G1a"]);
    expectAnomalies(checkRegisters([txn(1, 0, 10, [write("x", 1), write("x", 2)]), txn(2, 0, 10, [readRegister("x", 1)])]), ["G1b"]);
    expectAnomalies(checkRegisters([txn(1, 0, 10, [readRegister("x", 7)])]), ["garbage-read"]);
  });

  test("G1c: each reads the other's write", () => {
    const history = [txn(1, 0, 10, [write("x", 1), readRegister("y", 1)]), txn(2, 0, 10, [write("y", 1), readRegister("x", 1)])];
    expectAnomalies(checkRegisters(history), ["G1c"]);
  });

  test("G-single: a read of nil next to a read of the same transaction's other write", () => {
    const history = [txn(1, 0, 10, [write("x", 1), write("y", 1)]), txn(2, 0, 10, [readRegister("x", null), readRegister("y", 1)])];
    expectAnomalies(checkRegisters(history), ["G-single"]);
  });

  test("G2-item: write skew over nil", () => {
    const history = [txn(1, 0, 10, [readRegister("x", null), write("y", 1)]), txn(2, 0, 10, [readRegister("y", null), write("x", 1)])];
    expectAnomalies(checkRegisters(history), ["G2-item"]);
  });

  test("lost update: two read the same version and both wrote over it", () => {
    const history = [txn(1, 0, 10, [write("x", 1)]), txn(2, 20, 30, [readRegister("x", 1), write("x", 2)]), txn(3, 20, 30, [readRegister("x", 1), write("x", 3)])];
    expectAnomalies(checkRegisters(history), ["lost-update", "G2-item"]);
  });

  test("internal: a read that misses the transaction's own write", () => {
    expectAnomalies(checkRegisters([txn(1, 0, 10, [write("x", 1)]), txn(2, 20, 30, [write("x", 2), readRegister("x", 1)])]), ["internal"]);
  });

  test("serializable but not strict: a read of nil after a write completed", () => {
    const history = [txn(1, 0, 10, [write("x", 1)]), txn(2, 20, 30, [readRegister("x", null)])];
    expectAnomalies(checkRegisters(history), []);
    expectAnomalies(checkRegisters(history, { consistency: "strict-serializable" }), ["G-single-realtime"]);
  });

  test("weaker than lists: blind writes have no known order, so this G0 goes unseen", () => {
    // Not serializable (T3 sees x from T2 and y from T1, and whichever of T1 and T2 goes
    // second overwrites both), but no read precedes a write, so no version order is known.
    // The list-append twin of this history is caught as G0 above.
    const history = [txn(1, 0, 10, [write("x", 1), write("y", 1)]), txn(2, 0, 10, [write("x", 2), write("y", 2)]), txn(3, 20, 30, [readRegister("x", 2), readRegister("y", 1)])];
    expectAnomalies(checkRegisters(history), []);
  });
});

describe("transactional checker: input and output", () => {
  test("bad input is an InvalidInputError naming the transaction", () => {
    const bad: unknown[] = [
      [txn(1, 0, 10, [append("x", 1)]), txn(2, 0, 10, [append("x", 1)])],
      [txn(1, 10, 0, [append("x", 1)])],
      [{ ...txn(1, 0, 10, [append("x", 1)]), status: "maybe" }],
      [txn(1, 0, 10, [readList("x", null)])],
      [txn(1, 0, 10, [{ f: "write", key: "x", value: 1 }])],
      [txn(1, 0, 10, [{ f: "append", key: "x", value: 1.5 }])],
      "not a history",
    ];
    for (const history of bad) {
      assert.throws(() => checkListAppend(history as Transaction<ListAppendOp>[]), (error: unknown) => error instanceof InvalidInputError && /transaction|array/.test(error.message), JSON.stringify(history));
    }
    assert.throws(() => checkRegisters([txn(1, 0, 10, [write("x", 1), write("x", 1)])]), /value 1 is written to x twice/);
  });

  test("a timed-out transaction's reads are not held against it", () => {
    const history = [txn(1, 0, 10, [append("x", 1)]), txn(2, 20, 30, [readList("x", null), append("y", 5)], "unknown")];
    expectAnomalies(checkListAppend(history), []);
  });

  test("the explanation a person reads, for a G-single", () => {
    const history = [
      txn(1, 0, 10, [append("x", 3), append("y", 2)]),
      txn(2, 20, 30, [append("x", 4)]),
      txn(3, 5, 40, [readList("x", [3, 4]), readList("y", [])]),
      txn(4, 50, 60, [readList("y", [2])]),
    ];
    const result = checkListAppend(history);
    assert.equal(result.verdict === "violation" ? result.explanation : "",
      [
        "The history of 4 transactions is not serializable: G-single x1.",
        "",
        "G-single: T3 -> T1 -> T2 -> T3 (rw, ww, wr)",
        "  G-single means read skew: a cycle with exactly one anti-dependency (rw).",
        "  The cycle, edge by edge:",
        "    T3 -> T1 (rw): T3 read y = [], missing T1's append of 2, the next in y's order",
        "    T1 -> T2 (ww): T2 appended 4 to x right after T1 appended 3",
        "    T2 -> T3 (wr): T3 read x = [3, 4], ending in T2's append of 4",
        "  Transactions:",
        "    T3 (client 3, ok, 0.005ms .. 0.040ms): read(x) -> [3, 4], read(y) -> []",
        "    T1 (client 1, ok, 0.000ms .. 0.010ms): append(x, 3), append(y, 2)",
        "    T2 (client 2, ok, 0.020ms .. 0.030ms): append(x, 4)",
      ].join("\n"));
  });

  test("many anomalies of one kind are counted, and only the first few kept", () => {
    const history = [txn(1, 0, 10, [append("x", 1)], "fail"), ...Array.from({ length: 50 }, (_, i) => txn(2 + i, 20, 30, [readList("x", [1])]))];
    const result = checkListAppend(history);
    assert.ok(result.verdict === "violation");
    assert.equal(result.counts.G1a, 50);
    assert.equal(result.anomalies.length, 20);
    assert.match(result.explanation, /G1a x50 \(showing the first 20 of each kind\)/);
  });
});

describe("docs/txn-checker.md", () => {
  test("the example, run as the doc says, prints what the doc shows", () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
    const doc = readFileSync(join(root, "docs", "txn-checker.md"), "utf8");
    const program = /```js\n([\s\S]*?)```/.exec(doc)?.[1];
    const printed = /It prints:\n\n```\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(program !== undefined && printed !== undefined, "the doc has the example and its output");
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", program], { cwd: root, encoding: "utf8", timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, printed);
  });
});

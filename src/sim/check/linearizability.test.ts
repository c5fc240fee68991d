import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { Operation } from "../history.js";
import { checkLinearizability, truncateAt } from "./linearizability.js";

// Builders for readable hand-written histories (times in arbitrary units).
const put = (client: number, key: string, value: string, call: number, ret: number, status: Operation["status"] = "ok"): Operation => ({
  client, op: "put", key, value, output: null, call, return: ret, status,
});
const get = (client: number, key: string, output: string | null, call: number, ret: number): Operation => ({
  client, op: "get", key, output, call, return: ret, status: "ok",
});
const del = (client: number, key: string, call: number, ret: number, status: Operation["status"] = "ok"): Operation => ({
  client, op: "delete", key, output: null, call, return: ret, status,
});
const cas = (client: number, key: string, expected: string, value: string, output: boolean | null, call: number, ret: number, status: Operation["status"] = "ok"): Operation => ({
  client, op: "cas", key, expected, value, output: output ?? null, call, return: ret, status,
});

describe("linearizability: hand-written histories", () => {
  test("sequential history that reads its writes", () => {
    const h = [put(1, "x", "a", 0, 1), get(1, "x", "a", 2, 3), del(1, "x", 4, 5), get(1, "x", null, 6, 7)];
    assert.equal(checkLinearizability(h).verdict, "linearizable");
  });

  test("a stale read after a completed write is a violation", () => {
    const h = [put(1, "x", "a", 0, 10), put(1, "x", "b", 20, 30), get(2, "x", "a", 40, 50)];
    const result = checkLinearizability(h);
    assert.equal(result.verdict, "violation");
    assert.ok(result.verdict === "violation" && result.culprit.op === "get" && result.culprit.output === "a");
    assert.match(result.verdict === "violation" ? result.explanation : "", /not linearizable/);
  });

  test("concurrent write and read may see either value", () => {
    for (const seen of ["a", "b"]) {
      const h = [put(1, "x", "a", 0, 10), put(2, "x", "b", 20, 40), get(3, "x", seen, 25, 35)];
      assert.equal(checkLinearizability(h).verdict, "linearizable", `read ${seen}`);
    }
  });

  test("two reads that disagree on order of concurrent writes are a violation", () => {
    // b and c are concurrent, but reader 3 sees b then c while reader 4 sees c then b.
    const h = [
      put(1, "x", "b", 0, 100), put(2, "x", "c", 0, 100),
      get(3, "x", "b", 10, 20), get(3, "x", "c", 30, 40),
      get(4, "x", "c", 10, 20), get(4, "x", "b", 30, 40),
    ];
    assert.equal(checkLinearizability(h).verdict, "violation");
  });

  test("a read of a value never written is a violation", () => {
    assert.equal(checkLinearizability([get(1, "x", "ghost", 0, 1)]).verdict, "violation");
  });

  test("an indeterminate write may take effect late", () => {
    const h = [put(1, "x", "a", 0, 5, "unknown"), get(2, "x", null, 10, 11), get(2, "x", "a", 100, 101)];
    assert.equal(checkLinearizability(h).verdict, "linearizable");
  });

  test("an indeterminate write may never take effect", () => {
    const h = [put(1, "x", "a", 0, 5, "unknown"), get(2, "x", null, 10, 11), get(2, "x", null, 100, 101)];
    assert.equal(checkLinearizability(h).verdict, "linearizable");
  });

  test("an indeterminate write cannot take effect before its call", () => {
    const h = [get(2, "x", "a", 0, 5), put(1, "x", "a", 10, 15, "unknown")];
    assert.equal(checkLinearizability(h).verdict, "violation");
  });

  test("a failed write is ignored, so reading its value is a violation", () => {
    const h = [put(1, "x", "a", 0, 5, "fail"), get(2, "x", "a", 10, 11)];
    assert.equal(checkLinearizability(h).verdict, "violation");
  });

  test("compare-and-set: success needs the expected value, failure needs another", () => {
    const ok = [put(1, "x", "a", 0, 1), cas(1, "x", "a", "b", true, 2, 3), cas(2, "x", "a", "c", false, 4, 5), get(1, "x", "b", 6, 7)];
    assert.equal(checkLinearizability(ok).verdict, "linearizable");
    const bad = [put(1, "x", "a", 0, 1), cas(1, "x", "z", "b", true, 2, 3)];
    assert.equal(checkLinearizability(bad).verdict, "violation");
    const badFail = [put(1, "x", "a", 0, 1), cas(1, "x", "a", "b", false, 2, 3)];
    assert.equal(checkLinearizability(badFail).verdict, "violation");
  });

  test("an indeterminate cas applies only when the value matches", () => {
    const h = [put(1, "x", "a", 0, 1), cas(2, "x", "zzz", "b", null, 2, 3, "unknown"), get(1, "x", "b", 10, 11)];
    assert.equal(checkLinearizability(h).verdict, "violation");
    const h2 = [put(1, "x", "a", 0, 1), cas(2, "x", "a", "b", null, 2, 3, "unknown"), get(1, "x", "b", 10, 11)];
    assert.equal(checkLinearizability(h2).verdict, "linearizable");
  });

  test("keys are independent", () => {
    const h = [put(1, "x", "a", 0, 10), put(2, "y", "b", 0, 10), get(3, "x", "a", 20, 30), get(3, "y", "b", 20, 30)];
    assert.equal(checkLinearizability(h).verdict, "linearizable");
  });

  test("the reported prefix is the shortest that fails", () => {
    const h = [
      put(1, "x", "a", 0, 10),
      get(2, "x", "a", 20, 30),
      put(1, "x", "b", 40, 50),
      get(2, "x", "a", 60, 70), // stale: the violation completes here
      get(2, "x", "b", 80, 90),
      put(1, "x", "c", 100, 110),
    ];
    const result = checkLinearizability(h);
    assert.equal(result.verdict, "violation");
    if (result.verdict !== "violation") return;
    assert.equal(result.culprit.return, 70);
    assert.equal(result.prefix.length, 4);
    assert.equal(checkLinearizability(truncateAt(h, 50)).verdict, "linearizable");
  });
});

describe("linearizability: histories with many concurrent operations", () => {
  // A cluster that lost its quorum applies its backlog at once when it heals: dozens of
  // writes, each open from its call to that moment, all concurrent. Simulator seed 104564
  // (4,449 operations on one key) made the plain search give up at 20 M steps; these
  // histories are its shape, checked with a budget of 200,000 steps.
  const budget = { stepBudgetPerKey: 200_000 };
  const backlog = (): Operation[] => {
    const ops: Operation[] = [put(1, "x", "a", 0, 1)];
    for (let i = 0; i < 40; i++) {
      const client = 2 + (i % 6);
      const call = 2 + i;
      if (i % 4 === 0) ops.push(del(client, "x", call, 1000));
      else if (i % 4 === 1) ops.push(cas(client, "x", "zz", `v${i}`, false, call, 1000));
      else ops.push(put(client, "x", `v${i}`, call, 1000));
    }
    return ops;
  };

  test("a backlog applied at once, then a read of one of its values: linearizable", () => {
    const result = checkLinearizability([...backlog(), get(9, "x", "v38", 1001, 1002)], budget);
    assert.equal(result.verdict, "linearizable", result.verdict === "linearizable" ? "" : result.explanation);
  });

  test("a backlog applied at once, then a read of the value it overwrote: a violation", () => {
    const result = checkLinearizability([...backlog(), get(9, "x", "a", 1001, 1002)], budget);
    assert.equal(result.verdict, "violation", "verdict" in result && result.verdict === "inconclusive" ? result.explanation : "");
  });

  test("reads interleaved with the backlog still order it", () => {
    // Each reader sees a value of the backlog while it is open; a later read that goes back
    // to an earlier value is a violation, one that moves forward is not.
    const ops = [...backlog(), get(8, "x", "v6", 100, 101), get(8, "x", "v10", 200, 201)];
    assert.equal(checkLinearizability([...ops, get(8, "x", "v14", 300, 301)], budget).verdict, "linearizable");
    assert.equal(checkLinearizability([...ops, get(8, "x", "v6", 300, 301)], budget).verdict, "violation");
  });
});

// ---- property test against a brute-force reference ----

/** Tries every subset of indeterminate writes and every order consistent with real time. */
function bruteForce(history: readonly Operation[]): boolean {
  const ops = history.filter((op) => op.status === "ok" || (op.status === "unknown" && op.op !== "get"));
  const unknowns = ops.filter((op) => op.status === "unknown");
  for (let mask = 0; mask < 1 << unknowns.length; mask++) {
    const chosen = ops.filter((op) => op.status === "ok" || (mask & (1 << unknowns.indexOf(op))) !== 0);
    if (someOrderWorks(chosen)) return true;
  }
  return false;
}

function someOrderWorks(ops: readonly Operation[]): boolean {
  const used = new Array<boolean>(ops.length).fill(false);
  const ret = (op: Operation): number => (op.status === "unknown" ? Infinity : op.return);
  const state = new Map<string, string | null>();
  const recurse = (placed: number): boolean => {
    if (placed === ops.length) return true;
    for (let i = 0; i < ops.length; i++) {
      if (used[i]) continue;
      const op = ops[i] as Operation;
      // op may go next only if no unplaced op returned strictly before op was called
      if (ops.some((other, j) => !used[j] && j !== i && ret(other) < op.call)) continue;
      const before = state.get(op.key) ?? null;
      let after: string | null | undefined;
      if (op.op === "get") after = op.output === before ? before : undefined;
      else if (op.op === "put") after = op.value as string;
      else if (op.op === "delete") after = null;
      else if (op.status === "unknown") after = before === op.expected ? (op.value as string) : before;
      else if (op.output === true) after = before === op.expected ? (op.value as string) : undefined;
      else after = before === op.expected ? undefined : before;
      if (after === undefined) continue;
      used[i] = true;
      state.set(op.key, after);
      if (recurse(placed + 1)) return true;
      state.set(op.key, before);
      used[i] = false;
    }
    return false;
  };
  return recurse(0);
}

const arbitraryHistory = fc
  .array(
    fc.record({
      client: fc.integer({ min: 1, max: 3 }),
      kind: fc.constantFrom("get", "put", "delete", "cas"),
      key: fc.constantFrom("x", "y"),
      value: fc.constantFrom("a", "b", "c"),
      expected: fc.constantFrom("a", "b"),
      readValue: fc.constantFrom("a", "b", "c", null),
      casOutcome: fc.boolean(),
      call: fc.integer({ min: 0, max: 20 }),
      length: fc.integer({ min: 0, max: 8 }),
      status: fc.constantFrom("ok", "ok", "ok", "unknown", "fail"),
    }),
    { minLength: 1, maxLength: 7 },
  )
  .map((raws) =>
    raws.map((r): Operation => {
      const base = { client: r.client, key: r.key, call: r.call, return: r.call + r.length, status: r.status as Operation["status"] };
      switch (r.kind) {
        case "get":
          return { ...base, op: "get", output: r.status === "ok" ? r.readValue : null };
        case "put":
          return { ...base, op: "put", value: r.value, output: null };
        case "delete":
          return { ...base, op: "delete", output: null };
        default:
          return { ...base, op: "cas", value: r.value, expected: r.expected, output: r.status === "ok" ? r.casOutcome : null };
      }
    }),
  );

describe("linearizability: property tests", () => {
  test("agrees with a brute-force search on small random histories", () => {
    fc.assert(
      fc.property(arbitraryHistory, (history) => {
        const expected = bruteForce(history);
        const actual = checkLinearizability(history).verdict === "linearizable";
        assert.equal(actual, expected, JSON.stringify(history));
      }),
      { numRuns: 3000, seed: 20261126 },
    );
  });

  test("a reported prefix really fails, and one operation less passes", () => {
    fc.assert(
      fc.property(arbitraryHistory, (history) => {
        const result = checkLinearizability(history);
        if (result.verdict !== "violation") return;
        assert.equal(bruteForce(result.prefix), false);
        const keyOps = history.filter((op) => op.key === result.key);
        const earlier = keyOps.filter((op) => op.status === "ok" && op.return < result.culprit.return).map((op) => op.return);
        if (earlier.length > 0) assert.equal(bruteForce(truncateAt(keyOps, Math.max(...earlier))), true);
      }),
      { numRuns: 1000, seed: 7 },
    );
  });
});

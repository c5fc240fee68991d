// The checker of a user's sequential model: hand-written histories over a lock, and a
// register model checked against the KV checker (itself checked against brute force) on
// random histories, with and without partitions.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { SequentialModel } from "../app/module.js";
import type { Operation } from "../history.js";
import { checkLinearizability } from "./linearizability.js";
import { checkModelLinearizability, type ModelOperation } from "./model-linearizability.js";

type LockInput = { readonly op: "acquire" | "release" | "holder"; readonly owner: string };
type LockOutput = boolean | string | null;
/** One lock: acquire succeeds when free, release when held by the caller; holder reads it. */
const lock: SequentialModel<string | null, LockInput, LockOutput> = {
  init: () => null,
  step: (holder, input) => {
    switch (input.op) {
      case "acquire":
        return holder === null ? { state: input.owner, output: true } : { state: holder, output: false };
      case "release":
        return holder === input.owner ? { state: null, output: true } : { state: holder, output: false };
      case "holder":
        return { state: holder, output: holder };
    }
  },
  describe: (input, output) => `${input.owner} ${input.op}${output === undefined ? "" : ` -> ${JSON.stringify(output)}`}`,
};

const op = (client: number, input: LockInput, output: LockOutput, call: number, ret: number, status: ModelOperation<LockInput, LockOutput>["status"] = "ok"): ModelOperation<LockInput, LockOutput> => ({
  client,
  kind: input.op === "holder" ? "read" : "write",
  input,
  output: status === "ok" ? output : undefined,
  call,
  return: ret,
  status,
});

describe("model linearizability: hand-written histories", () => {
  test("two acquires that both succeed, one after the other, are a violation naming the second", () => {
    const history = [op(1, { op: "acquire", owner: "a" }, true, 0, 10), op(2, { op: "acquire", owner: "b" }, true, 20, 30)];
    const result = checkModelLinearizability(history, lock);
    assert.equal(result.verdict, "violation");
    assert.ok(result.verdict === "violation" && result.culprit.input.owner === "b");
    assert.match(result.verdict === "violation" ? result.explanation : "", /b acquire -> true/);
  });

  test("overlapping acquires: either may win, but not both", () => {
    assert.equal(checkModelLinearizability([op(1, { op: "acquire", owner: "a" }, false, 0, 30), op(2, { op: "acquire", owner: "b" }, true, 10, 20)], lock).verdict, "linearizable");
    assert.equal(checkModelLinearizability([op(1, { op: "acquire", owner: "a" }, true, 0, 30), op(2, { op: "acquire", owner: "b" }, true, 10, 20)], lock).verdict, "violation");
  });

  test("a timed-out acquire may apply late, or never; a failed one never applied", () => {
    const late = [op(1, { op: "acquire", owner: "a" }, null, 0, 5, "unknown"), op(2, { op: "holder", owner: "x" }, null, 10, 20), op(2, { op: "holder", owner: "x" }, "a", 30, 40)];
    assert.equal(checkModelLinearizability(late, lock).verdict, "linearizable");
    const never = [op(1, { op: "acquire", owner: "a" }, null, 0, 5, "unknown"), op(2, { op: "acquire", owner: "b" }, true, 10, 20)];
    assert.equal(checkModelLinearizability(never, lock).verdict, "linearizable");
    const failed = [op(1, { op: "acquire", owner: "a" }, null, 0, 5, "fail"), op(2, { op: "holder", owner: "x" }, "a", 10, 20)];
    assert.equal(checkModelLinearizability(failed, lock).verdict, "violation");
  });

  test("a search over its budget is inconclusive, never a pass", () => {
    const history = Array.from({ length: 24 }, (_, i) => op(i, { op: "acquire", owner: `o${i}` }, null, i, i + 1, "unknown"));
    history.push(op(99, { op: "holder", owner: "x" }, "nobody", 100, 101));
    const result = checkModelLinearizability(history, lock, { stepBudget: 1000 });
    assert.equal(result.verdict, "inconclusive");
    assert.match(result.verdict === "inconclusive" ? result.explanation : "", /exceeded 1000 steps/);
  });

  test("a partition checks independent parts apart and names the failing one", () => {
    type Named = LockInput & { readonly name: string };
    const locks: SequentialModel<string | null, Named, LockOutput> = { ...(lock as unknown as SequentialModel<string | null, Named, LockOutput>), partition: (input: Named) => input.name };
    const history = [
      { ...op(1, { op: "acquire", owner: "a" }, true, 0, 10), input: { op: "acquire", owner: "a", name: "L1" } },
      { ...op(2, { op: "acquire", owner: "b" }, true, 20, 30), input: { op: "acquire", owner: "b", name: "L2" } },
      { ...op(3, { op: "acquire", owner: "c" }, true, 40, 50), input: { op: "acquire", owner: "c", name: "L2" } },
    ] as ModelOperation<LockInput & { readonly name: string }, LockOutput>[];
    const result = checkModelLinearizability(history, locks);
    assert.equal(result.verdict, "violation");
    assert.ok(result.verdict === "violation" && result.partition === "L2");
  });
});

// ---- against the KV checker ----

type RegisterInput = { readonly op: Operation["op"]; readonly key: string; readonly value?: string; readonly expected?: string };
type RegisterOutput = string | boolean | null;
const registerStep = (value: string | null, input: RegisterInput): { state: string | null; output: RegisterOutput } => {
  switch (input.op) {
    case "get":
      return { state: value, output: value };
    case "put":
      return { state: input.value ?? null, output: null };
    case "delete":
      return { state: null, output: null };
    case "cas":
      return value === input.expected ? { state: input.value ?? null, output: true } : { state: value, output: false };
  }
};
const registers: SequentialModel<string | null, RegisterInput, RegisterOutput> = { init: () => null, step: registerStep, partition: (input) => input.key };
/** The same registers as one state (no partition): a map from key to value, as a plain object. */
const registerMap: SequentialModel<Readonly<Record<string, string | null>>, RegisterInput, RegisterOutput> = {
  init: () => ({}),
  step: (state, input) => {
    const stepped = registerStep(state[input.key] ?? null, input);
    return { state: { ...state, [input.key]: stepped.state }, output: stepped.output };
  },
  hash: (state) => JSON.stringify(Object.entries(state).filter(([, v]) => v !== null).sort()),
};

const toModel = (history: readonly Operation[]): ModelOperation<RegisterInput, RegisterOutput>[] =>
  history.map((o) => ({
    client: o.client,
    kind: o.op === "get" ? "read" : "write",
    input: { op: o.op, key: o.key, ...(o.value === undefined ? {} : { value: o.value }), ...(o.expected === undefined ? {} : { expected: o.expected }) },
    output: o.status === "ok" ? o.output : undefined,
    call: o.call,
    return: o.return,
    status: o.status,
  }));

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
    { minLength: 1, maxLength: 9 },
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

describe("model linearizability: property tests", () => {
  test("a register model gives the KV checker's verdict, partitioned by key or as one map", () => {
    fc.assert(
      fc.property(arbitraryHistory, (history) => {
        const expected = checkLinearizability(history).verdict;
        assert.equal(checkModelLinearizability(toModel(history), registers).verdict, expected, JSON.stringify(history));
        assert.equal(checkModelLinearizability(toModel(history), registerMap).verdict, expected, JSON.stringify(history));
      }),
      { numRuns: 3000, seed: 14 },
    );
  });
});

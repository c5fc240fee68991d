// The transactional checker against a brute-force reference: small random histories,
// executed by a database that reads from stale snapshots at random (so many are not
// serializable), sometimes with a read corrupted or real time not following commit order,
// and a search over every serial order (and every choice of which timed-out transactions
// committed) that says whether the reads can be explained.
//
// Asserted, for both workloads and both modes:
//   soundness     the reference finds a serial order  =>  the checker reports nothing.
// Asserted for list-append histories where every append of a transaction that did not fail
// is seen by some read (for a timed-out one: all of its appends, or none):
//   completeness  the reference finds no serial order  =>  the checker reports something.
// Completeness is not asserted in general because it is not true in general: an append
// nobody read has no place in the inferred order, so a cycle through it cannot be seen,
// and registers leave most of the version order unknown (txn-register.ts). The proof of
// the list-append case is sketched in txn-list-append.ts's header.
//
// Mutants (a checker with one edge type dropped, or with rt edges where they do not
// belong) are each shown to fail these properties: the properties can fail.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { checkListAppend, checkRegisters, judge, parseTxnHistory, type Consistency, type ListAppendOp, type RegisterOp, type Transaction, type TxnCheckResult } from "./txn-check.js";
import { inferListAppend } from "./txn-list-append.js";
import type { EdgeType } from "./txn-graph.js";

type Workload = "list-append" | "register";
type AnyOp = ListAppendOp | RegisterOp;

// ---- random executions ----

interface PlannedOp {
  readonly write: boolean;
  readonly key: number;
  /** How many commits stale the snapshot this op reads from is (0: the serial state). */
  readonly lag: number;
  /** In an interleaved execution, how long after the transaction's previous op this one runs. */
  readonly delay: number;
}

interface PlannedTxn {
  readonly ops: readonly PlannedOp[];
  readonly status: "ok" | "unknown" | "fail";
  /** For a timed-out transaction: whether it committed all the same. */
  readonly committed: boolean;
  readonly rank: number;
  readonly callBefore: number;
  readonly returnAfter: number;
}

interface Plan {
  readonly txns: readonly PlannedTxn[];
  /**
   * "snapshots": each transaction's writes take effect together at its commit, in rank order,
   * and its reads see a possibly stale commit (read skew, write skew, stale reads).
   * "interleaved": no isolation at all; every op acts on the shared state when it runs, a
   * failed transaction's writes included (dirty writes and reads, aborted reads).
   */
  readonly mode: "snapshots" | "interleaved";
  /** Times drawn around each commit in commit order (strict serializable when nothing else goes wrong), or at random. */
  readonly timesFollowCommits: boolean;
  readonly finalRead: boolean;
  readonly corruption: { readonly txn: number; readonly op: number; readonly how: number; readonly pick: number } | null;
}

const KEYS = ["x", "y", "z"];

const arbitraryPlan: fc.Arbitrary<Plan> = fc.record({
  txns: fc.array(
    fc.record({
      ops: fc.array(fc.record({ write: fc.boolean(), key: fc.integer({ min: 0, max: 2 }), lag: fc.constantFrom(0, 0, 0, 0, 1, 2), delay: fc.integer({ min: 1, max: 8 }) }), { minLength: 1, maxLength: 4 }),
      status: fc.constantFrom("ok", "ok", "ok", "ok", "unknown", "fail"),
      committed: fc.boolean(),
      rank: fc.integer({ min: 0, max: 20 }),
      callBefore: fc.integer({ min: 0, max: 12 }),
      returnAfter: fc.integer({ min: 0, max: 12 }),
    }),
    { minLength: 1, maxLength: 4 },
  ),
  mode: fc.constantFrom("snapshots", "snapshots", "interleaved"),
  timesFollowCommits: fc.boolean(),
  finalRead: fc.constantFrom(true, true, false),
  corruption: fc.option(fc.record({ txn: fc.nat(), op: fc.nat(), how: fc.nat(4), pick: fc.nat() }), { freq: 5 }),
});

/** Runs the plan (see Plan.mode), then adds the final read and the corruption, if planned. */
function execute(plan: Plan, workload: Workload): Transaction<AnyOp>[] {
  const { history, finalState } = plan.mode === "snapshots" ? executeSnapshots(plan, workload) : executeInterleaved(plan, workload);
  if (plan.finalRead) {
    const call = Math.max(...history.map((t) => t.return)) + 1;
    const ops = KEYS.map((key): AnyOp => readOp(workload, key, finalState.get(key) ?? [], true));
    history.push({ client: 99, call, return: call + 1, status: "ok", ops });
  }
  const valuesWritten = history.reduce((sum, t) => sum + t.ops.filter((op) => op.f !== "read").length, 0);
  return corrupt(history, plan, valuesWritten);
}

type State = Map<string, number[]>;

const commits = (t: PlannedTxn): boolean => t.status === "ok" || (t.status === "unknown" && t.committed);

function readOp(workload: Workload, key: string, list: readonly number[], observed: boolean): AnyOp {
  if (workload === "list-append") return { f: "read", key, value: observed ? [...list] : null };
  return { f: "read", key, value: observed ? (list[list.length - 1] ?? null) : null };
}

function writeOp(workload: Workload, key: string, value: number): AnyOp {
  return workload === "list-append" ? { f: "append", key, value } : { f: "write", key, value };
}

/**
 * Transactions take effect in rank order (those that commit), each op reading the key as of
 * `lag` commits before the transaction's own place, plus its own writes.
 */
function executeSnapshots(plan: Plan, workload: Workload): { history: Transaction<AnyOp>[]; finalState: State } {
  const order = plan.txns.map((_, i) => i).sort((a, b) => (plan.txns[a] as PlannedTxn).rank - (plan.txns[b] as PlannedTxn).rank || a - b);
  const states: State[] = [new Map()];
  const history: Transaction<AnyOp>[] = new Array<Transaction<AnyOp>>(plan.txns.length);
  let nextValue = 1;
  order.forEach((index, position) => {
    const planned = plan.txns[index] as PlannedTxn;
    const committedBefore = states.length - 1;
    const own: State = new Map();
    const ops = planned.ops.map((p): AnyOp => {
      const key = KEYS[p.key] as string;
      if (p.write) {
        const value = nextValue++;
        own.set(key, [...(own.get(key) ?? []), value]);
        return writeOp(workload, key, value);
      }
      const snapshot = states[Math.max(0, committedBefore - p.lag)] as State;
      return readOp(workload, key, [...(snapshot.get(key) ?? []), ...(own.get(key) ?? [])], planned.status === "ok");
    });
    if (commits(planned)) {
      const next = new Map([...(states[states.length - 1] as State)].map(([k, v]) => [k, [...v]]));
      for (const [key, values] of own) next.set(key, [...(next.get(key) ?? []), ...values]);
      states.push(next);
    }
    const commitTime = 10 * position + 20;
    const call = plan.timesFollowCommits ? commitTime - (planned.callBefore % 6) : planned.callBefore * 5;
    const ret = plan.timesFollowCommits ? commitTime + (planned.returnAfter % 6) : call + planned.returnAfter * 2;
    history[index] = { client: index + 1, call, return: ret, status: planned.status, ops };
  });
  return { history, finalState: states[states.length - 1] as State };
}

/**
 * Every op acts on one shared state at its own time (the transaction's rank plus its ops'
 * delays), with no isolation and no rollback: a write that happened stays, whatever the
 * transaction's status says. Only a timed-out transaction that "did not commit" is left out.
 */
function executeInterleaved(plan: Plan, workload: Workload): { history: Transaction<AnyOp>[]; finalState: State } {
  const steps: { txn: number; op: number; time: number }[] = [];
  plan.txns.forEach((planned, txn) => {
    let time = planned.rank * 3;
    planned.ops.forEach((p, op) => steps.push({ txn, op, time: (time += p.delay) }));
  });
  steps.sort((a, b) => a.time - b.time || a.txn - b.txn || a.op - b.op);
  const state: State = new Map();
  const ops = plan.txns.map((planned) => new Array<AnyOp>(planned.ops.length));
  let nextValue = 1;
  for (const step of steps) {
    const planned = plan.txns[step.txn] as PlannedTxn;
    const p = planned.ops[step.op] as PlannedOp;
    const key = KEYS[p.key] as string;
    if (p.write) {
      const value = nextValue++;
      if (planned.status !== "unknown" || planned.committed) state.set(key, [...(state.get(key) ?? []), value]);
      (ops[step.txn] as AnyOp[])[step.op] = writeOp(workload, key, value);
    } else (ops[step.txn] as AnyOp[])[step.op] = readOp(workload, key, state.get(key) ?? [], planned.status === "ok");
  }
  const history = plan.txns.map((planned, txn): Transaction<AnyOp> => {
    const times = steps.filter((step) => step.txn === txn).map((step) => step.time);
    const call = Math.min(...times) - (plan.timesFollowCommits ? 0 : planned.callBefore);
    return { client: txn + 1, call, return: Math.max(...times) + (plan.timesFollowCommits ? 0 : planned.returnAfter), status: planned.status, ops: ops[txn] as AnyOp[] };
  });
  return { history, finalState: state };
}

/** Damages one ok read, the way a broken database might: a stale, reversed, swapped, repeated or borrowed value. */
function corrupt(history: Transaction<AnyOp>[], plan: Plan, valuesWritten: number): Transaction<AnyOp>[] {
  const damage = plan.corruption;
  if (damage === null) return history;
  const index = damage.txn % history.length;
  const txn = history[index] as Transaction<AnyOp>;
  const opIndex = damage.op % txn.ops.length;
  const op = txn.ops[opIndex] as AnyOp;
  if (txn.status !== "ok" || op.f !== "read") return history;
  const borrowed = valuesWritten === 0 ? 1 : 1 + (damage.pick % valuesWritten);
  let value: number[] | number | null;
  if (Array.isArray(op.value)) {
    const list = op.value as number[];
    const swapped = [...list.slice(1, 2), ...list.slice(0, 1), ...list.slice(2)];
    value = [list.slice(0, -1), [...list].reverse(), swapped, [...list, ...list.slice(0, 1)], [...list.filter((v) => v !== borrowed), borrowed]][damage.how] as number[];
  } else value = damage.how === 0 ? null : borrowed;
  const ops = txn.ops.map((o, i) => (i === opIndex ? ({ ...o, value } as AnyOp) : o));
  return history.map((t, i) => (i === index ? { ...t, ops } : t));
}

// ---- the reference: every serial order ----

/**
 * Whether some serial order of the ok transactions and some of the timed-out ones (never
 * the failed ones) gives every ok read its value; for strict serializability the order must
 * also put a transaction that completed ok before every one invoked after it.
 */
function bruteForce(history: readonly Transaction<AnyOp>[], consistency: Consistency): boolean {
  const ok = history.map((_, i) => i).filter((i) => (history[i] as Transaction<AnyOp>).status === "ok");
  const unknown = history.map((_, i) => i).filter((i) => (history[i] as Transaction<AnyOp>).status === "unknown");
  for (let mask = 0; mask < 1 << unknown.length; mask++) {
    const chosen = [...ok, ...unknown.filter((_, bit) => (mask & (1 << bit)) !== 0)];
    if (someSerialOrder(history, chosen, consistency)) return true;
  }
  return false;
}

function someSerialOrder(history: readonly Transaction<AnyOp>[], chosen: readonly number[], consistency: Consistency): boolean {
  const used = new Set<number>();
  const mayGoNext = (t: Transaction<AnyOp>): boolean =>
    consistency === "serializable" || chosen.every((j) => used.has(j) || (history[j] as Transaction<AnyOp>).status !== "ok" || !((history[j] as Transaction<AnyOp>).return < t.call));
  const search = (state: ReadonlyMap<string, readonly number[]>): boolean => {
    if (used.size === chosen.length) return true;
    for (const index of chosen) {
      const txn = history[index] as Transaction<AnyOp>;
      if (used.has(index) || !mayGoNext(txn)) continue;
      const after = run(txn, state);
      if (after === undefined) continue;
      used.add(index);
      if (search(after)) return true;
      used.delete(index);
    }
    return false;
  };
  return search(new Map());
}

/** The state after `txn` runs on `state`, or undefined when one of its (ok) reads disagrees. */
function run(txn: Transaction<AnyOp>, state: ReadonlyMap<string, readonly number[]>): Map<string, readonly number[]> | undefined {
  const next = new Map(state);
  for (const op of txn.ops) {
    const list = next.get(op.key) ?? [];
    if (op.f === "append" || op.f === "write") next.set(op.key, [...list, op.value]);
    else if (txn.status === "ok") {
      const expected = Array.isArray(op.value) ? JSON.stringify(list) : JSON.stringify(list[list.length - 1] ?? null);
      if (JSON.stringify(op.value) !== expected) return undefined;
    }
  }
  return next;
}

/** Every append of a transaction that did not fail is in some ok read; a timed-out one's all or none. */
function fullyObserved(history: readonly Transaction<AnyOp>[]): boolean {
  const seen = new Set<string>();
  for (const txn of history) if (txn.status === "ok") for (const op of txn.ops) if (op.f === "read" && Array.isArray(op.value)) for (const v of op.value as number[]) seen.add(`${op.key}=${v}`);
  return history.every((txn) => {
    if (txn.status === "fail") return true;
    const appends = txn.ops.filter((op) => op.f === "append").map((op) => seen.has(`${op.key}=${op.value as number}`));
    return appends.every((s) => s) || (txn.status === "unknown" && appends.every((s) => !s));
  });
}

// ---- the properties ----

type Checker = (history: readonly Transaction<AnyOp>[], consistency: Consistency) => TxnCheckResult;

const realChecker = (workload: Workload): Checker => (history, consistency) =>
  workload === "list-append" ? checkListAppend(history as Transaction<ListAppendOp>[], { consistency }) : checkRegisters(history as Transaction<RegisterOp>[], { consistency });

interface Tally {
  runs: number;
  serializable: number;
  notSerializable: number;
  strictOnly: number;
  completenessChecked: number;
  /** Histories (per mode) the reference rejects that the checker caught, and missed. */
  caught: number;
  missed: number;
  kinds: Map<string, number>;
}

/** Checks soundness (and completeness where asserted) of `check` on one plan; throws on a disagreement. */
function agrees(plan: Plan, workload: Workload, check: Checker, tally?: Tally): void {
  const history = execute(plan, workload);
  for (const consistency of ["serializable", "strict-serializable"] as const) {
    const possible = bruteForce(history, consistency);
    const result = check(history, consistency);
    const why = `${consistency}, reference ${possible ? "found" : "found no"} serial order: ${JSON.stringify(history)}\n${result.verdict === "violation" ? result.explanation : "valid"}`;
    if (possible) assert.equal(result.verdict, "valid", `unsound: ${why}`);
    const complete = workload === "list-append" && fullyObserved(history);
    if (!possible && complete) assert.equal(result.verdict, "violation", `incomplete: ${why}`);
    if (tally === undefined) continue;
    if (consistency === "serializable") tally[possible ? "serializable" : "notSerializable"]++;
    else if (!possible && bruteForce(history, "serializable")) tally.strictOnly++;
    if (complete && !possible) tally.completenessChecked++;
    if (!possible) tally[result.verdict === "violation" ? "caught" : "missed"]++;
    if (result.verdict === "violation") for (const a of result.anomalies) tally.kinds.set(a.kind, (tally.kinds.get(a.kind) ?? 0) + 1);
  }
  if (tally !== undefined) tally.runs++;
}

const RUNS = 1000;

for (const workload of ["list-append", "register"] as const) {
  describe(`${workload}: the checker against every serial order`, () => {
    test(`sound${workload === "list-append" ? ", and complete when every append is read" : ""}, on ${RUNS} random histories`, (t) => {
      const tally: Tally = { runs: 0, serializable: 0, notSerializable: 0, strictOnly: 0, completenessChecked: 0, caught: 0, missed: 0, kinds: new Map() };
      fc.assert(
        fc.property(arbitraryPlan, (plan) => agrees(plan, workload, realChecker(workload), tally)),
        { numRuns: RUNS, seed: workload === "list-append" ? 20260418 : 20260419 },
      );
      // The histories must exercise the checker, not only pass it: enough of them fail,
      // some only in strict mode, and (lists) completeness is asserted on many.
      const summary = JSON.stringify({ ...tally, kinds: Object.fromEntries(tally.kinds) });
      t.diagnostic(summary);
      assert.ok(tally.notSerializable >= RUNS / 5, summary);
      assert.ok(tally.strictOnly >= 10, summary);
      if (workload === "list-append") {
        assert.ok(tally.completenessChecked >= RUNS / 5, summary);
        for (const kind of ["G0", "G1a", "G1b", "G1c", "G-single", "G2-item", "internal", "incompatible-order", "G-single-realtime"]) assert.ok((tally.kinds.get(kind) ?? 0) > 0, `no ${kind} in ${summary}`);
      }
    });
  });
}

// ---- mutants: each must make the properties above fail ----

/**
 * The list-append checker with `drop` edges removed after inference, or judging every
 * history in one mode whatever was asked (real-time edges never, or always, added).
 */
function mutant(drop: Exclude<EdgeType, "rt"> | null, judgeAs?: Consistency): Checker {
  return (history, consistency) => {
    const valid = parseTxnHistory(history, "list-append");
    const inference = inferListAppend(valid);
    const graph = drop === null ? inference.graph : inference.graph.filtered((type) => type !== drop);
    return judge(valid, { graph, anomalies: inference.anomalies }, { consistency: judgeAs ?? consistency });
  };
}

describe("list-append mutants: a weaker or stronger checker fails the properties", () => {
  const gSingle = [
    { client: 1, call: 0, return: 10, status: "ok", ops: [{ f: "append", key: "x", value: 1 }, { f: "append", key: "y", value: 1 }] },
    { client: 2, call: 0, return: 10, status: "ok", ops: [{ f: "read", key: "x", value: [] }, { f: "read", key: "y", value: [1] }] },
    { client: 3, call: 20, return: 30, status: "ok", ops: [{ f: "read", key: "x", value: [1] }] },
  ] as Transaction<ListAppendOp>[];

  test("without rw edges the G-single history passes; the real checker finds it", () => {
    assert.equal(realChecker("list-append")(gSingle, "serializable").verdict, "violation");
    assert.equal(mutant("rw")(gSingle, "serializable").verdict, "valid");
  });

  const mutants: [string, Checker][] = [
    ["no rw edges", mutant("rw")],
    ["no ww edges", mutant("ww")],
    ["no wr edges", mutant("wr")],
    ["no rt edges", mutant(null, "serializable")],
    ["rt edges in serializable mode too", mutant(null, "strict-serializable")],
  ];
  for (const [name, check] of mutants) {
    test(`${name}: the brute-force property finds a counterexample`, () => {
      const outcome = fc.check(fc.property(arbitraryPlan, (plan) => agrees(plan, "list-append", check)), { numRuns: RUNS, seed: 20260418 });
      assert.equal(outcome.failed, true, `the property did not catch the mutant "${name}" in ${RUNS} runs`);
    });
  }
});

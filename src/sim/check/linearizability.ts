/**
 * Linearizability of a KV client history: the Wing–Gong search with Lowe's memoization of
 * (set of linearized operations, model state), as in Porcupine and Knossos.
 *
 * The KV model is a map of independent registers, so the history is partitioned per key
 * and each key checked alone (Herlihy–Wing locality): a history is linearizable exactly when
 * every key's sub-history is.
 *
 * Indeterminate operations: a timed-out write gets a return time of +infinity, so it may be
 * linearized anywhere after its call — including after everything else, which is the same
 * as never having happened. A timed-out read constrains nothing and is dropped; so are
 * operations that certainly failed.
 *
 * On a violation the checker finds the shortest failing prefix of the key's history by
 * binary search over truncation times (truncating at t keeps operations called by t and
 * turns those still running at t into indeterminate ones; non-linearizability is monotone
 * in t), and prints it for a person.
 */
import { describeOperation, formatTime, type Operation } from "../history.js";

export interface LinearizabilityOptions {
  /** Bound on search steps per key check; past it the verdict is "inconclusive". */
  readonly stepBudgetPerKey?: number;
}

export type LinearizabilityResult =
  | { readonly verdict: "linearizable"; readonly keys: number; readonly steps: number }
  | {
      readonly verdict: "violation";
      readonly key: string;
      /** The shortest prefix of that key's history that cannot be linearized, by call time. */
      readonly prefix: readonly Operation[];
      /** The operation whose completion made the prefix fail. */
      readonly culprit: Operation;
      readonly explanation: string;
    }
  | { readonly verdict: "inconclusive"; readonly key: string; readonly explanation: string };

const DEFAULT_STEP_BUDGET = 20_000_000;

export function checkLinearizability(history: readonly Operation[], options: LinearizabilityOptions = {}): LinearizabilityResult {
  const budget = options.stepBudgetPerKey ?? DEFAULT_STEP_BUDGET;
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    if (op.status === "fail" || (op.status === "unknown" && op.op === "get")) continue;
    let ops = byKey.get(op.key);
    if (ops === undefined) byKey.set(op.key, (ops = []));
    ops.push(op);
  }
  let steps = 0;
  for (const key of [...byKey.keys()].sort()) {
    const ops = dropUnobservedWrites(byKey.get(key) as Operation[]);
    const outcome = searchKey(ops, budget);
    steps += outcome.steps;
    if (outcome.verdict === "budget") {
      return {
        verdict: "inconclusive",
        key,
        explanation: `key ${JSON.stringify(key)}: the search exceeded ${budget} steps over ${ops.length} operations; no verdict`,
      };
    }
    if (outcome.verdict === "fail") return shortestFailingPrefix(key, ops, budget);
  }
  return { verdict: "linearizable", keys: byKey.size, steps };
}

/**
 * Drops timed-out puts whose value no one observed: no read returned it, no cas expected
 * it, and the key has no failed cas. Such a put can always be taken out of a linearization:
 * while it would be the current value nothing can look at the register (a read would
 * return its value; a successful cas would expect it; a failed cas is excluded), and any
 * timed-out cas that would then apply can move to the end, where it changes nothing
 * observed. Each put so removed halves the search space a violation has to exhaust.
 */
function dropUnobservedWrites(ops: Operation[]): Operation[] {
  if (ops.some((op) => op.op === "cas" && op.status === "ok" && op.output === false)) return ops;
  const observed = new Set<string>();
  for (const op of ops) {
    if (op.op === "get" && typeof op.output === "string") observed.add(op.output);
    if (op.op === "cas" && op.expected !== undefined) observed.add(op.expected);
  }
  return ops.filter((op) => !(op.status === "unknown" && op.op === "put" && !observed.has(op.value as string)));
}

/** Keeps what was called by `time`; what had not returned by then becomes indeterminate. */
export function truncateAt(ops: readonly Operation[], time: number): Operation[] {
  const kept: Operation[] = [];
  for (const op of ops) {
    if (op.call > time) continue;
    if (op.status === "ok" && op.return > time) {
      if (op.op === "get") continue;
      kept.push({ ...op, status: "unknown", output: null });
    } else kept.push(op);
  }
  return kept;
}

function shortestFailingPrefix(key: string, ops: readonly Operation[], budget: number): LinearizabilityResult {
  const returns = [...new Set(ops.filter((op) => op.status === "ok").map((op) => op.return))].sort((a, b) => a - b);
  // Invariant: truncating at returns[high] fails; at returns[low - 1] (if any) it passes.
  let low = 0;
  let high = returns.length - 1;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const outcome = searchKey(truncateAt(ops, returns[middle] as number), budget);
    if (outcome.verdict === "ok") low = middle + 1;
    else high = middle;
  }
  const time = returns[high] as number;
  const prefix = truncateAt(ops, time).sort((a, b) => a.call - b.call || a.client - b.client);
  const culprit = ops.find((op) => op.status === "ok" && op.return === time) as Operation;
  const lines = [
    `key ${JSON.stringify(key)} is not linearizable. The shortest failing prefix ends when this operation returns at ${formatTime(time)}:`,
    `  ${describeOperation(culprit)}`,
    `No order of these ${prefix.length} operations, each placed between its call and its return, explains every output:`,
    ...prefix.map((op) => `  ${op === culprit || sameOperation(op, culprit) ? "*" : " "} ${describeOperation(op)}`),
  ];
  return { verdict: "violation", key, prefix, culprit, explanation: lines.join("\n") };
}

function sameOperation(a: Operation, b: Operation): boolean {
  return a.client === b.client && a.call === b.call && a.op === b.op && a.key === b.key;
}

const GET = 0;
const PUT = 1;
const DELETE = 2;
const CAS = 3;
const KINDS = { get: GET, put: PUT, delete: DELETE, cas: CAS } as const;

/** The model's verdict on applying an operation: the next state, or NOT_ALLOWED. */
const NOT_ALLOWED = undefined;
type State = string | null;

interface SearchOutcome {
  readonly verdict: "ok" | "fail" | "budget";
  readonly steps: number;
}

/**
 * The search over one key. Entries (calls and returns) sit in a doubly linked list in time
 * order; linearizing an operation lifts its call and return out of the list, backtracking
 * puts them back (dancing links). Reaching a return entry means every operation still in
 * the list must come after one that has already returned: a dead end.
 */
function searchKey(ops: readonly Operation[], budget: number): SearchOutcome {
  const count = ops.length;
  if (count === 0) return { verdict: "ok", steps: 0 };
  const kind = new Uint8Array(count);
  const values: (string | null)[] = new Array<string | null>(count);
  const expected: (string | null)[] = new Array<string | null>(count);
  const outputs: (string | boolean | null)[] = new Array<string | boolean | null>(count);
  const unknown = new Uint8Array(count);
  // Entry 0 is the list head; call of op i is entry 2i+1, its return is entry 2i+2.
  const order: { entry: number; time: number; isCall: boolean }[] = [];
  ops.forEach((op, i) => {
    kind[i] = KINDS[op.op];
    values[i] = op.value ?? null;
    expected[i] = op.expected ?? null;
    outputs[i] = op.output;
    unknown[i] = op.status === "unknown" ? 1 : 0;
    order.push({ entry: 2 * i + 1, time: op.call, isCall: true });
    order.push({ entry: 2 * i + 2, time: op.status === "unknown" ? Number.POSITIVE_INFINITY : op.return, isCall: false });
  });
  // Calls sort before returns at equal times: operations touching in time count as concurrent.
  order.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.entry - b.entry : a.isCall ? -1 : 1));
  const size = 2 * count + 1;
  const next = new Int32Array(size).fill(-1);
  const prev = new Int32Array(size).fill(-1);
  let last = 0;
  for (const { entry } of order) {
    next[last] = entry;
    prev[entry] = last;
    last = entry;
  }

  const apply = (i: number, state: State): State | undefined => {
    switch (kind[i]) {
      case GET:
        return outputs[i] === state ? state : NOT_ALLOWED;
      case PUT:
        return values[i] as string;
      case DELETE:
        return null;
      default: {
        const matches = state === expected[i];
        if (unknown[i]) return matches ? (values[i] as string) : state;
        if (outputs[i] === true) return matches ? (values[i] as string) : NOT_ALLOWED;
        return matches ? NOT_ALLOWED : state;
      }
    }
  };
  const lift = (call: number): void => {
    const ret = call + 1;
    next[prev[call] as number] = next[call] as number;
    if ((next[call] as number) >= 0) prev[next[call] as number] = prev[call] as number;
    next[prev[ret] as number] = next[ret] as number;
    if ((next[ret] as number) >= 0) prev[next[ret] as number] = prev[ret] as number;
  };
  const unlift = (call: number): void => {
    const ret = call + 1;
    next[prev[ret] as number] = ret;
    if ((next[ret] as number) >= 0) prev[next[ret] as number] = ret;
    next[prev[call] as number] = call;
    if ((next[call] as number) >= 0) prev[next[call] as number] = call;
  };

  const words = new Uint32Array(Math.ceil(count / 32));
  const seen = new Set<string>();
  const memoKey = (state: State): string => {
    let text = state === null ? "\u0000" : "=" + state;
    for (let w = 0; w < words.length; w++) text += "," + (words[w] as number).toString(36);
    return text;
  };
  const stackEntries: number[] = [];
  const stackStates: State[] = [];
  let state: State = null;
  let entry = next[0] as number;
  let steps = 0;
  while ((next[0] as number) >= 0) {
    if (++steps > budget) return { verdict: "budget", steps };
    if (entry < 0) throw new Error("linearizability search ran off the end of its entry list");
    if (entry % 2 === 1) {
      const i = (entry - 1) >> 1;
      const after = apply(i, state);
      if (after !== NOT_ALLOWED) {
        words[i >> 5] = (words[i >> 5] as number) | (1 << (i & 31));
        const key = memoKey(after);
        if (!seen.has(key)) {
          seen.add(key);
          stackEntries.push(entry);
          stackStates.push(state);
          state = after;
          lift(entry);
          entry = next[0] as number;
          continue;
        }
        words[i >> 5] = (words[i >> 5] as number) & ~(1 << (i & 31));
      }
      entry = next[entry] as number;
    } else {
      const call = stackEntries.pop();
      if (call === undefined) return { verdict: "fail", steps };
      state = stackStates.pop() as State;
      const i = (call - 1) >> 1;
      words[i >> 5] = (words[i >> 5] as number) & ~(1 << (i & 31));
      unlift(call);
      entry = next[call] as number;
    }
  }
  return { verdict: "ok", steps };
}

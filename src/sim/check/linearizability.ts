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
 *
 * Two reductions keep histories with many concurrent operations (a cluster that lost its
 * quorum, then applied a backlog at once) from exploring every subset of them. Neither
 * removes a linearization that the plain search would find, only orders equivalent to one
 * it still tries:
 *
 * - A query (a read, or a compare-and-set that failed) that is callable and fits the current
 *   state is linearized at once, with no alternative tried at that point: it changes
 *   nothing, and any order that places it later can place it here instead (every operation
 *   still open returns no earlier than it was called).
 * - Of the callable blind writes (puts and deletes) that leave the same state, only the one
 *   that returns first is tried: in any order starting with another, swapping the two keeps
 *   every state and every real-time constraint. Values no query ever looks for count as one
 *   value, so writes of them are all alike, and so are the states they leave.
 */
function searchKey(ops: readonly Operation[], budget: number): SearchOutcome {
  const count = ops.length;
  if (count === 0) return { verdict: "ok", steps: 0 };
  const kind = new Uint8Array(count);
  const values: (string | null)[] = new Array<string | null>(count);
  const expected: (string | null)[] = new Array<string | null>(count);
  const outputs: (string | boolean | null)[] = new Array<string | boolean | null>(count);
  const unknown = new Uint8Array(count);
  const returns = new Float64Array(count);
  const unseen = unobservedToken(ops);
  // Entry 0 is the list head; call of op i is entry 2i+1, its return is entry 2i+2.
  const order: { entry: number; time: number; isCall: boolean }[] = [];
  ops.forEach((op, i) => {
    kind[i] = KINDS[op.op];
    values[i] = op.value === undefined ? null : unseen.observed.has(op.value) ? op.value : unseen.token;
    expected[i] = op.expected ?? null;
    outputs[i] = op.output;
    unknown[i] = op.status === "unknown" ? 1 : 0;
    returns[i] = op.status === "unknown" ? Number.POSITIVE_INFINITY : op.return;
    order.push({ entry: 2 * i + 1, time: op.call, isCall: true });
    order.push({ entry: 2 * i + 2, time: returns[i] as number, isCall: false });
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
  const isQuery = (i: number): boolean => kind[i] === GET || (kind[i] === CAS && !unknown[i] && outputs[i] === false);
  const isBlindWrite = (i: number): boolean => kind[i] === PUT || kind[i] === DELETE;
  const callable = (visit: (i: number) => boolean): number => {
    for (let e = next[0] as number; e >= 0 && e % 2 === 1; e = next[e] as number) {
      const i = (e - 1) >> 1;
      if (visit(i)) return i;
    }
    return -1;
  };
  /** A callable query that fits `state`, or -1. */
  const fittingQuery = (state: State): number => callable((i) => isQuery(i) && apply(i, state) !== NOT_ALLOWED);
  /** Whether another callable blind write leaves what `w` leaves and returns first. */
  const hasEarlierTwin = (w: number): boolean =>
    callable((i) => i !== w && isBlindWrite(i) && kind[i] === kind[w] && values[i] === values[w] && ((returns[i] as number) < (returns[w] as number) || (returns[i] === returns[w] && i < w))) >= 0;
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
  const mark = (i: number): void => {
    words[i >> 5] = (words[i >> 5] as number) | (1 << (i & 31));
  };
  const unmark = (i: number): void => {
    words[i >> 5] = (words[i >> 5] as number) & ~(1 << (i & 31));
  };
  const stackEntries: number[] = [];
  const stackStates: State[] = [];
  /** 1 where the frame's operation was forced (a fitting query): nothing else to try there. */
  const stackForced: number[] = [];
  let state: State = null;
  let entry = next[0] as number;
  let fresh = true;
  let steps = 0;
  /** Undoes frames up to the latest one with alternatives left; false when none is left. */
  const backtrack = (): boolean => {
    for (;;) {
      const call = stackEntries.pop();
      if (call === undefined) return false;
      state = stackStates.pop() as State;
      const forced = stackForced.pop() === 1;
      unmark((call - 1) >> 1);
      unlift(call);
      if (!forced) {
        entry = next[call] as number;
        return true;
      }
    }
  };
  const descend = (call: number, before: State, after: State, forced: boolean): void => {
    stackEntries.push(call);
    stackStates.push(before);
    stackForced.push(forced ? 1 : 0);
    state = after;
    lift(call);
    entry = next[0] as number;
    fresh = true;
  };
  while ((next[0] as number) >= 0) {
    if (++steps > budget) return { verdict: "budget", steps };
    if (fresh) {
      fresh = false;
      const query = fittingQuery(state);
      if (query >= 0) {
        mark(query);
        const key = memoKey(state);
        if (seen.has(key)) {
          // Explored from here before and failed; the query was the only choice here.
          unmark(query);
          if (!backtrack()) return { verdict: "fail", steps };
          continue;
        }
        seen.add(key);
        descend(2 * query + 1, state, state, true);
        continue;
      }
    }
    if (entry < 0) throw new Error("linearizability search ran off the end of its entry list");
    if (entry % 2 === 1) {
      const i = (entry - 1) >> 1;
      const after = isBlindWrite(i) && hasEarlierTwin(i) ? NOT_ALLOWED : apply(i, state);
      if (after !== NOT_ALLOWED) {
        mark(i);
        const key = memoKey(after);
        if (!seen.has(key)) {
          seen.add(key);
          descend(entry, state, after, false);
          continue;
        }
        unmark(i);
      }
      entry = next[entry] as number;
    } else if (!backtrack()) return { verdict: "fail", steps };
  }
  return { verdict: "ok", steps };
}

/**
 * The values some query looks for (a read's output, a compare-and-set's expected value),
 * and a stand-in for every other value, distinct from all of them: to every operation of
 * the history, a register holding any value outside the set looks the same.
 */
function unobservedToken(ops: readonly Operation[]): { readonly observed: ReadonlySet<string>; readonly token: string } {
  const observed = new Set<string>();
  for (const op of ops) {
    if (op.op === "get" && typeof op.output === "string") observed.add(op.output);
    if (op.op === "cas" && op.expected !== undefined) observed.add(op.expected);
  }
  let token = "\u0000unobserved";
  while (observed.has(token)) token += "\u0000";
  return { observed, token };
}

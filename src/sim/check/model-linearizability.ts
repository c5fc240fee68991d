/**
 * Linearizability of a history against a user's sequential model (Porcupine's shape:
 * `init`, `step(state, input) -> { state, output }`, an equality of outputs, an optional
 * partition into independent sub-histories). The search is the one of linearizability.ts
 * — Wing–Gong with Lowe's memoization of (linearized set, model state) over a linked list
 * of call and return entries — with the state and the step the model's instead of a
 * register's.
 *
 * Indeterminate operations: a timed-out write may take effect at any point after its call,
 * or never: it gets a return time of +infinity, its output is not compared, and it may be
 * left for last (where, like a write that never happened, nothing after it observes it). A
 * timed-out or failed read, and a failed write, constrain nothing and are dropped.
 *
 * A step budget per sub-history bounds the search; past it the verdict is "inconclusive".
 * On a violation, the shortest failing prefix of the sub-history is found by binary search
 * over return times, as for the KV checker, and printed with the model's descriptions.
 */
import { formatTime, type OpStatus } from "../history.js";
import { canonical, type SequentialModel } from "../app/module.js";

/** One operation of a client history over a user's model; times in one integer unit. */
export interface ModelOperation<I, O> {
  readonly client: number;
  readonly kind: "write" | "read";
  readonly input: I;
  /** The output observed, for an "ok" operation. */
  readonly output: O | undefined;
  readonly call: number;
  readonly return: number;
  readonly status: OpStatus;
}

export interface ModelCheckOptions {
  /** Bound on search steps per sub-history; past it the verdict is "inconclusive". */
  readonly stepBudget?: number;
}

export type ModelCheckResult<I, O> =
  | { readonly verdict: "linearizable"; readonly partitions: number; readonly steps: number }
  | { readonly verdict: "violation"; readonly partition: string; readonly prefix: readonly ModelOperation<I, O>[]; readonly culprit: ModelOperation<I, O>; readonly explanation: string }
  | { readonly verdict: "inconclusive"; readonly partition: string; readonly explanation: string };

const DEFAULT_STEP_BUDGET = 5_000_000;

export function checkModelLinearizability<S, I, O>(history: readonly ModelOperation<I, O>[], model: SequentialModel<S, I, O>, options: ModelCheckOptions = {}): ModelCheckResult<I, O> {
  const budget = options.stepBudget ?? DEFAULT_STEP_BUDGET;
  const parts = new Map<string, ModelOperation<I, O>[]>();
  for (const op of history) {
    if (op.status === "fail" || (op.status === "unknown" && op.kind === "read")) continue;
    const key = model.partition === undefined ? "" : String(model.partition(op.input));
    let ops = parts.get(key);
    if (ops === undefined) parts.set(key, (ops = []));
    ops.push(op);
  }
  let steps = 0;
  for (const key of [...parts.keys()].sort()) {
    const ops = parts.get(key) as ModelOperation<I, O>[];
    const outcome = search(ops, model, budget);
    steps += outcome.steps;
    if (outcome.verdict === "budget") {
      return { verdict: "inconclusive", partition: key, explanation: `${describePartition(key)}: the search exceeded ${budget} steps over ${ops.length} operations; no verdict` };
    }
    if (outcome.verdict === "fail") return shortestFailingPrefix(key, ops, model, budget);
  }
  return { verdict: "linearizable", partitions: parts.size, steps };
}

function describePartition(key: string): string {
  return key === "" ? "the history" : `partition ${JSON.stringify(key)}`;
}

/** Keeps what was called by `time`; what had not returned by then becomes indeterminate (a read, dropped). */
export function truncateModelHistory<I, O>(ops: readonly ModelOperation<I, O>[], time: number): ModelOperation<I, O>[] {
  const kept: ModelOperation<I, O>[] = [];
  for (const op of ops) {
    if (op.call > time) continue;
    if (op.status === "ok" && op.return > time) {
      if (op.kind === "read") continue;
      kept.push({ ...op, status: "unknown", output: undefined });
    } else kept.push(op);
  }
  return kept;
}

function shortestFailingPrefix<S, I, O>(key: string, ops: readonly ModelOperation<I, O>[], model: SequentialModel<S, I, O>, budget: number): ModelCheckResult<I, O> {
  const returns = [...new Set(ops.filter((op) => op.status === "ok").map((op) => op.return))].sort((a, b) => a - b);
  // Invariant: truncating at returns[high] fails; at returns[low - 1] (if any) it passes.
  let low = 0;
  let high = returns.length - 1;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const outcome = search(truncateModelHistory(ops, returns[middle] as number), model, budget);
    if (outcome.verdict === "ok") low = middle + 1;
    else high = middle;
  }
  const time = returns[high] as number;
  const prefix = truncateModelHistory(ops, time).sort((a, b) => a.call - b.call || a.client - b.client);
  const culprit = ops.find((op) => op.status === "ok" && op.return === time) as ModelOperation<I, O>;
  const describe = (op: ModelOperation<I, O>): string => describeModelOperation(op, model);
  const lines = [
    `${describePartition(key)} is not linearizable. The shortest failing prefix ends when this operation returns at ${formatTime(time)}:`,
    `  ${describe(culprit)}`,
    `No order of these ${prefix.length} operations, each placed between its call and its return, explains every output:`,
    ...prefix.map((op) => `  ${op.client === culprit.client && op.call === culprit.call ? "*" : " "} ${describe(op)}`),
  ];
  return { verdict: "violation", partition: key, prefix, culprit, explanation: lines.join("\n") };
}

export function describeModelOperation<I, O>(op: ModelOperation<I, O>, model: Pick<SequentialModel<unknown, I, O>, "describe">): string {
  const output = op.status === "ok" ? op.output : undefined;
  let text: string;
  try {
    text = model.describe?.(op.input, output) ?? `${op.kind} ${JSON.stringify(op.input)}${op.status === "ok" ? ` -> ${JSON.stringify(output) ?? "undefined"}` : ""}`;
  } catch {
    text = `${op.kind} ${canonical(op.input)}`;
  }
  const end = op.status === "unknown" ? "timed out" : formatTime(op.return);
  return `client ${op.client}: ${text}  [${formatTime(op.call)} .. ${end}] ${op.status}`;
}

interface SearchOutcome {
  readonly verdict: "ok" | "fail" | "budget";
  readonly steps: number;
}

/**
 * The search over one sub-history. Entries (calls and returns) sit in a doubly linked list
 * in time order; linearizing an operation lifts its call and return out of the list,
 * backtracking puts them back. Reaching a return entry means every operation still in the
 * list must come after one that has already returned: a dead end.
 */
function search<S, I, O>(ops: readonly ModelOperation<I, O>[], model: SequentialModel<S, I, O>, budget: number): SearchOutcome {
  const count = ops.length;
  if (count === 0) return { verdict: "ok", steps: 0 };
  const equal = model.equal ?? ((a: O, b: O) => canonical(a) === canonical(b));
  const hash = model.hash ?? ((state: S) => canonical(state));
  const order: { entry: number; time: number; isCall: boolean }[] = [];
  ops.forEach((op, i) => {
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
  /** The state after applying op `i` to `state`, or undefined when its observed output rules it out here. */
  const apply = (i: number, state: S): { readonly state: S } | undefined => {
    const op = ops[i] as ModelOperation<I, O>;
    const stepped = model.step(state, op.input);
    if (op.status === "ok" && !equal(stepped.output, op.output as O)) return undefined;
    return { state: stepped.state };
  };

  const words = new Uint32Array(Math.ceil(count / 32));
  const seen = new Set<string>();
  const memoKey = (state: S): string => {
    let text = hash(state);
    for (let w = 0; w < words.length; w++) text += "," + (words[w] as number).toString(36);
    return text;
  };
  const stackEntries: number[] = [];
  const stackStates: S[] = [];
  let state = model.init();
  let entry = next[0] as number;
  let steps = 0;
  while ((next[0] as number) >= 0) {
    if (++steps > budget) return { verdict: "budget", steps };
    if (entry < 0) throw new Error("linearizability search ran off the end of its entry list");
    if (entry % 2 === 1) {
      const i = (entry - 1) >> 1;
      const after = apply(i, state);
      if (after !== undefined) {
        words[i >> 5] = (words[i >> 5] as number) | (1 << (i & 31));
        const key = memoKey(after.state);
        if (!seen.has(key)) {
          seen.add(key);
          stackEntries.push(entry);
          stackStates.push(state);
          state = after.state;
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
      state = stackStates.pop() as S;
      const i = (call - 1) >> 1;
      words[i >> 5] = (words[i >> 5] as number) & ~(1 << (i & 31));
      unlift(call);
      entry = next[call] as number;
    }
  }
  return { verdict: "ok", steps };
}

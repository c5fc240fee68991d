/**
 * Transaction histories for the transactional checker (txn-check.ts), after Jepsen's Elle
 * (Kingsbury and Alvaro, "Elle: Inferring Isolation Anomalies from Experimental
 * Observations", VLDB 2020).
 *
 * A history is an array of transactions, each with the client that ran it, its invoke
 * ("call") and completion ("return") times in the unit of the simulator's histories
 * (virtual microseconds, see ../history.ts), a status, and its micro-operations in order:
 *
 *   {"client":int,"call":int,"return":int,"status":"ok|fail|unknown","ops":[...]}
 *
 * status "ok": committed, and every read's value is what it saw. "fail": certainly not
 * applied (an abort); its reads are ignored. "unknown" (Elle's "info"): it timed out, so it
 * may have committed or not; its reads are ignored, its writes may be visible.
 *
 * Two workloads, one per history:
 *
 * - list-append: `{"f":"append","key":k,"value":v}` appends v to the list at k;
 *   `{"f":"read","key":k,"value":[v...]}` reads the whole list (`[]` when absent; `null`
 *   in a transaction that did not complete ok, where nothing was observed).
 * - register: `{"f":"write","key":k,"value":v}` sets k to v;
 *   `{"f":"read","key":k,"value":v|null}` reads it (`null`: never written). No deletes.
 *
 * Precondition, checked: every value is written (appended) to a key at most once in the
 * whole history, so a value read names the one transaction that wrote it. Values are safe
 * integers, as in Elle's generators.
 *
 * Transactions are named T1, T2, ... by their position in the history, counting from 1.
 */
import { InvalidInputError } from "../../core/common/errors.js";
import { formatTime, type OpStatus } from "../history.js";

export type TxnStatus = OpStatus;

export type ListAppendOp =
  | { readonly f: "append"; readonly key: string; readonly value: number }
  | { readonly f: "read"; readonly key: string; readonly value: readonly number[] | null };

export type RegisterOp =
  | { readonly f: "write"; readonly key: string; readonly value: number }
  | { readonly f: "read"; readonly key: string; readonly value: number | null };

export interface Transaction<Op> {
  readonly client: number;
  readonly call: number;
  readonly return: number;
  readonly status: TxnStatus;
  readonly ops: readonly Op[];
}

export type Workload = "list-append" | "register";

/** Ops per transaction and transactions per history, past which the input is refused. */
export const TXN_HISTORY_LIMITS = { transactionsMax: 1_000_000, opsPerTransactionMax: 10_000 } as const;

/** The name a person reads for the transaction at `index` of the history. */
export function txnName(index: number): string {
  return `T${index + 1}`;
}

/** A key as written in explanations: bare when it is a plain word, else quoted. */
export function showKey(key: string): string {
  return /^[\w./:-]+$/.test(key) ? key : JSON.stringify(key);
}

export function showList(values: readonly number[]): string {
  return `[${values.join(", ")}]`;
}

export function describeOp(op: ListAppendOp | RegisterOp): string {
  switch (op.f) {
    case "append":
    case "write":
      return `${op.f}(${showKey(op.key)}, ${op.value})`;
    case "read": {
      const value = op.value;
      const seen = value === null ? "nil" : typeof value === "number" ? String(value) : showList(value);
      return `read(${showKey(op.key)}) -> ${seen}`;
    }
  }
}

/** One line for a person: who ran it, when, how it ended, and what it did. */
export function describeTransaction(history: readonly Transaction<ListAppendOp | RegisterOp>[], index: number): string {
  const txn = history[index] as Transaction<ListAppendOp | RegisterOp>;
  const end = txn.status === "unknown" ? "timed out" : formatTime(txn.return);
  // Reads of a transaction that did not complete ok saw nothing we can trust.
  const ops = txn.ops.map((op) => (op.f === "read" && txn.status !== "ok" ? `read(${showKey(op.key)})` : describeOp(op)));
  return `${txnName(index)} (client ${txn.client}, ${txn.status}, ${formatTime(txn.call)} .. ${end}): ${ops.join(", ")}`;
}

/**
 * Validates a history (parsed JSON, or typed values that may not honour their types) for
 * one workload, with a message naming the first bad transaction, and checks the
 * unique-values precondition. Throws InvalidInputError; returns the history unchanged.
 */
export function parseTxnHistory(json: unknown, workload: "list-append"): readonly Transaction<ListAppendOp>[];
export function parseTxnHistory(json: unknown, workload: "register"): readonly Transaction<RegisterOp>[];
export function parseTxnHistory(json: unknown, workload: Workload): readonly Transaction<ListAppendOp | RegisterOp>[] {
  if (!Array.isArray(json)) throw new InvalidInputError("a transaction history is a JSON array of transactions");
  if (json.length > TXN_HISTORY_LIMITS.transactionsMax) throw new InvalidInputError(`a transaction history holds at most ${TXN_HISTORY_LIMITS.transactionsMax} transactions, got ${json.length}`);
  const writers = new Map<string, Map<number, number>>();
  json.forEach((raw: unknown, index) => {
    const fail = (why: string): never => {
      throw new InvalidInputError(`transaction ${txnName(index)}: ${why}`);
    };
    if (typeof raw !== "object" || raw === null) return fail("not an object");
    const txn = raw as Record<string, unknown>;
    if (!Number.isSafeInteger(txn.client)) fail("client must be an integer");
    if (!Number.isSafeInteger(txn.call) || !Number.isSafeInteger(txn.return)) fail("call and return must be integers");
    if ((txn.return as number) < (txn.call as number)) fail("return is before call");
    if (txn.status !== "ok" && txn.status !== "fail" && txn.status !== "unknown") fail("status must be ok, fail or unknown");
    if (!Array.isArray(txn.ops)) return fail("ops must be an array");
    if (txn.ops.length > TXN_HISTORY_LIMITS.opsPerTransactionMax) fail(`at most ${TXN_HISTORY_LIMITS.opsPerTransactionMax} ops, got ${txn.ops.length}`);
    txn.ops.forEach((rawOp: unknown, position) => {
      const failOp = (why: string): never => fail(`op ${position + 1}: ${why}`);
      if (typeof rawOp !== "object" || rawOp === null) return failOp("not an object");
      const op = rawOp as Record<string, unknown>;
      if (typeof op.key !== "string") failOp("key must be a string");
      const key = op.key as string;
      const write = workload === "list-append" ? "append" : "write";
      if (op.f === write) {
        if (!Number.isSafeInteger(op.value)) failOp(`an ${write}'s value must be an integer`);
        let byValue = writers.get(key);
        if (byValue === undefined) writers.set(key, (byValue = new Map()));
        const earlier = byValue.get(op.value as number);
        if (earlier !== undefined) failOp(`value ${op.value as number} is written to ${showKey(key)} twice (also by ${txnName(earlier)}); the checker needs every value written once per key`);
        byValue.set(op.value as number, index);
      } else if (op.f === "read") {
        checkReadValue(op.value, workload, txn.status === "ok", failOp);
      } else failOp(`f must be ${write} or read`);
    });
  });
  return json as Transaction<ListAppendOp | RegisterOp>[];
}

function checkReadValue(value: unknown, workload: Workload, completed: boolean, failOp: (why: string) => never): void {
  if (workload === "register") {
    if (value !== null && value !== undefined && !Number.isSafeInteger(value)) failOp("a register read's value is an integer or null");
    if (completed && value === undefined) failOp("a read in an ok transaction needs a value (null when never written)");
    return;
  }
  if (value === null || value === undefined) {
    if (completed) failOp("a list read in an ok transaction needs the list it saw ([] when absent)");
    return;
  }
  if (!Array.isArray(value) || !value.every((v) => Number.isSafeInteger(v))) failOp("a list read's value is an array of integers");
}

/**
 * Who wrote (appended) each value to each key: key -> value -> { transaction index,
 * position among that transaction's writes to the key, how many it made there }.
 */
export interface WriteIndex {
  readonly writer: (key: string, value: number) => WriteSite | undefined;
  /** Every write to `key`, by value. */
  readonly writesTo: (key: string) => ReadonlyMap<number, WriteSite>;
}

export interface WriteSite {
  readonly txn: number;
  /** 0 for the transaction's first write to this key. */
  readonly position: number;
  /** How many writes the transaction made to this key. */
  readonly count: number;
}

export function indexWrites(history: readonly Transaction<ListAppendOp | RegisterOp>[]): WriteIndex {
  const sites = new Map<string, Map<number, WriteSite>>();
  const empty: ReadonlyMap<number, WriteSite> = new Map();
  history.forEach((txn, index) => {
    const perKey = new Map<string, number[]>();
    for (const op of txn.ops) {
      if (op.f === "read") continue;
      let values = perKey.get(op.key);
      if (values === undefined) perKey.set(op.key, (values = []));
      values.push(op.value);
    }
    for (const [key, values] of perKey) {
      let byValue = sites.get(key);
      if (byValue === undefined) sites.set(key, (byValue = new Map()));
      values.forEach((value, position) => byValue.set(value, { txn: index, position, count: values.length }));
    }
  });
  return {
    writer: (key, value) => sites.get(key)?.get(value),
    writesTo: (key) => sites.get(key) ?? empty,
  };
}

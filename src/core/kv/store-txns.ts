/**
 * The transactions part of the KV state machine (store.ts): how a transaction's compares hold
 * (`compareHolds`, for a transaction in one range and for a prepare alike), and the store's
 * side of a transaction across ranges (intents.ts, docs/transactions.md): its phases
 * (`applyTxnPhase`: prepare, decide, resolve) and the locks its keys hold against every other
 * write (`lockedBy`).
 *
 * These are functions of what they need (the backend, the intents, the store's clock and
 * revision, and its way of applying a branch); the store calls them from its apply.
 */
import { compareBytes } from "../common/bytes.js";
import type { KvBackend } from "./backend.js";
import type { KvCommand, TxnCompare, TxnCompareOperator, TxnOperation, TxnOutcome, TxnPrepareCommand } from "./command.js";
import type { KvIntents } from "./intents.js";
import type { KvRecord, KvResult, TxnOperationResult } from "./model.js";

/** The commands of a transaction across ranges, one per phase. */
export type TxnPhaseCommand = Extract<KvCommand, { readonly op: "txn-prepare" | "txn-decide" | "txn-resolve" }>;

/** What a phase of a transaction across ranges needs of the store it applies in. */
export interface TxnPhaseStore {
  readonly backend: KvBackend;
  readonly intents: KvIntents;
  /** The store's clock (see KvStore), which stamps the outcomes this range anchors. */
  readonly clockMs: number;
  /** The store's revision now: `runBranch` moves it when the branch writes. */
  revision(): number;
  /** A transaction's branch: its operations in order, every write at one new revision (KvStore's own). */
  runBranch(branch: readonly TxnOperation[]): TxnOperationResult[];
  /** A deliberately broken prepare (the simulator's mutants; null in production). */
  readonly mutant: TxnStoreMutant | null;
}

/**
 * Deliberately broken prepares, so the simulator can prove its transaction checkers catch
 * them (sim/txn-workload.ts). Production never builds one (see KvStore's `txnMutant`).
 */
export const TXN_STORE_MUTANTS = {
  "txn-skip-validation": "a prepare answers that the range's compares hold without evaluating them, so a transaction whose reads went stale commits (lost updates, write skew)",
  "txn-reads-unlocked": "a prepare locks only the keys the transaction writes, not those it compares or reads, so another transaction can change them between its prepare and its resolve (reads of half a transaction)",
} as const;
export type TxnStoreMutant = keyof typeof TXN_STORE_MUTANTS;

/** Applies one phase of a transaction across ranges here, its keys already checked to be in the store's span. */
export function applyTxnPhase(command: TxnPhaseCommand, store: TxnPhaseStore): KvResult {
  if (command.op === "txn-prepare") return prepare(command, store);
  if (command.op === "txn-decide") return store.intents.decide(command.txn, command.outcome, store.clockMs);
  return resolve(command.txn, command.outcome, store);
}

/** Phase one of a transaction across ranges here (intents.ts); leases are not attached by one. */
function prepare(command: TxnPrepareCommand, store: TxnPhaseStore): KvResult {
  if ([...command.success, ...command.failure].some((operation) => operation.op === "put" && operation.lease !== undefined)) {
    return { op: "rejected", reason: "a transaction across ranges does not attach keys to leases" };
  }
  const holds = store.mutant === "txn-skip-validation" ? () => true : (compare: TxnCompare) => compareHolds(compare, store.backend.getRecord(compare.key));
  const keys = store.mutant === "txn-reads-unlocked" ? writtenKeys(command) : undefined;
  return store.intents.prepare(command, holds, store.clockMs, keys);
}

/** The keys a prepare's branches write (a mutant locks only these). */
function writtenKeys(command: TxnPrepareCommand): string[] {
  return [...new Set([...command.success, ...command.failure].filter((operation) => operation.op !== "get").map((operation) => operation.key))];
}

/** Phase three here: the intent's branch for `outcome`, as one revision, and its keys released. */
function resolve(txn: string, outcome: TxnOutcome, store: TxnPhaseStore): KvResult {
  const intent = store.intents.take(txn, outcome, store.clockMs);
  if (intent === undefined) return { op: "txn-resolve", txn, revision: store.revision(), results: null };
  if (outcome === "abort") return { op: "txn-resolve", txn, revision: store.revision(), results: [] };
  const results = store.runBranch(outcome === "success" ? intent.success : intent.failure);
  return { op: "txn-resolve", txn, revision: store.revision(), results };
}

/** The first key `command` writes that a transaction across ranges holds locked, with its holder. */
export function lockedBy(intents: KvIntents, command: KvCommand): { readonly key: string; readonly txn: string } | undefined {
  switch (command.op) {
    case "put":
    case "delete":
    case "cas-value":
    case "cas-revision":
      return intents.lockedAmong([command.key]);
    case "txn":
      return intents.lockedAmong([...command.compares, ...command.success, ...command.failure].map((item) => item.key));
    case "delete-prefix":
      return intents.lockedWithPrefix(command.prefix);
    default:
      return undefined;
  }
}

/** A missing key has revisions and version 0 and no value; see `TxnCommand`. */
export function compareHolds(compare: TxnCompare, record: KvRecord | undefined): boolean {
  if (compare.target === "value") {
    if (record === undefined) return compare.op === "!=";
    return operatorHolds(compare.op, compareBytes(record.value, compare.value));
  }
  const actual = record === undefined ? 0 : record[compare.target];
  return operatorHolds(compare.op, actual - compare.value);
}

/** Whether `actual OP expected` holds, given the sign of `actual - expected`. */
function operatorHolds(operator: TxnCompareOperator, difference: number): boolean {
  switch (operator) {
    case "=":
      return difference === 0;
    case "!=":
      return difference !== 0;
    case "<":
      return difference < 0;
    case ">":
      return difference > 0;
  }
}

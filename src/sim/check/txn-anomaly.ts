/**
 * What the transactional checker reports: anomalies named as in Adya's thesis ("Weak
 * Consistency", 1999) and Jepsen's Elle, each with the transactions involved and text a
 * person can follow without the graph in hand.
 */
import type { EdgeType } from "./txn-graph.js";
import { describeTransaction, showKey, txnName, type ListAppendOp, type RegisterOp, type Transaction } from "./txn-history.js";

/** Found as cycles in the dependency graph (txn-cycles.ts). */
export type CycleKind = "G0" | "G1c" | "G-single" | "G2-item" | "G0-realtime" | "G1c-realtime" | "G-single-realtime" | "G2-item-realtime";

/** Found by looking at single observations, before any graph is built. */
export type ObservationKind = "G1a" | "G1b" | "internal" | "incompatible-order" | "duplicate-elements" | "garbage-read" | "lost-update";

export type AnomalyKind = CycleKind | ObservationKind;

/** One edge of a reported cycle, with the reason it holds. */
export interface CycleStep {
  readonly from: number;
  readonly to: number;
  readonly type: EdgeType;
  readonly why: string;
}

export type Anomaly =
  | {
      readonly kind: CycleKind;
      /** The cycle's edges in order; the last one leads back to the first one's origin. */
      readonly cycle: readonly CycleStep[];
      /** Indexes into the history of the transactions involved. */
      readonly transactions: readonly number[];
      /** One line: the kind and the cycle's reasons, `T1 ... (ww) -> T2 ... (rw) -> T1`. */
      readonly summary: string;
    }
  | {
      readonly kind: ObservationKind;
      readonly key: string;
      readonly transactions: readonly number[];
      readonly summary: string;
    };

export const ANOMALY_MEANING: Readonly<Record<AnomalyKind, string>> = {
  G0: "write cycle: the transactions' writes interleave (dirty write)",
  G1c: "circular information flow: a cycle of write and read dependencies",
  "G-single": "read skew: a cycle with exactly one anti-dependency (rw)",
  "G2-item": "anti-dependency cycle: two or more rw edges (write skew)",
  "G0-realtime": "a write cycle that needs real-time order: not strict serializable",
  "G1c-realtime": "a dependency cycle that needs real-time order: not strict serializable",
  "G-single-realtime": "a cycle with one anti-dependency that needs real-time order: not strict serializable",
  "G2-item-realtime": "an anti-dependency cycle that needs real-time order: not strict serializable",
  G1a: "aborted read: a committed transaction saw a write of one that failed",
  G1b: "intermediate read: a transaction saw a write its writer later overwrote",
  internal: "internal inconsistency: a transaction's read disagrees with its own earlier reads and writes",
  "incompatible-order": "reads disagree on the order of a key's versions",
  "duplicate-elements": "a list read holds one appended value twice",
  "garbage-read": "a read saw a value no transaction wrote",
  "lost-update": "two transactions read the same version and both overwrote it",
};

/** The one-line summary of a cycle: `G-single: T1 -> T3 -> T1 (ww, rw)`. */
export function cycleSummary(kind: CycleKind, cycle: readonly CycleStep[], name: (txn: number) => string): string {
  const first = cycle[0];
  const path = first === undefined ? [] : [name(first.from), ...cycle.map((step) => name(step.to))];
  return `${kind}: ${path.join(" -> ")} (${cycle.map((step) => step.type).join(", ")})`;
}

/** The anomaly for a person: what it means, the cycle edge by edge, and each transaction. */
export function explainAnomaly(anomaly: Anomaly, history: readonly Transaction<ListAppendOp | RegisterOp>[]): string {
  const lines = [`${anomaly.summary}`, `  ${anomaly.kind} means ${ANOMALY_MEANING[anomaly.kind]}.`];
  if ("cycle" in anomaly) {
    lines.push("  The cycle, edge by edge:");
    for (const step of anomaly.cycle) lines.push(`    ${txnName(step.from)} -> ${txnName(step.to)} (${step.type}): ${step.why}`);
  }
  lines.push("  Transactions:");
  for (const txn of anomaly.transactions) lines.push(`    ${describeTransaction(history, txn)}`);
  return lines.join("\n");
}

/** Anomalies kept per kind; past it they are only counted, so a broken run stays small. */
export const ANOMALIES_KEPT_PER_KIND_MAX = 20;

/** Collects anomalies, keeping the first few of each kind and counting all of them. */
export class AnomalyLog {
  readonly kept: Anomaly[] = [];
  readonly counts = new Map<AnomalyKind, number>();

  constructor(private readonly keptPerKindMax = ANOMALIES_KEPT_PER_KIND_MAX) {}

  add(anomaly: Anomaly): void {
    const count = (this.counts.get(anomaly.kind) ?? 0) + 1;
    this.counts.set(anomaly.kind, count);
    if (count <= this.keptPerKindMax) this.kept.push(anomaly);
  }

  /** An anomaly seen in one observation (no cycle), with its one-line summary built here. */
  observed(kind: ObservationKind, key: string, transactions: readonly number[], text: string): void {
    this.add({ kind, key, transactions: [...new Set(transactions)], summary: `${kind} on ${showKey(key)}: ${text}` });
  }
}

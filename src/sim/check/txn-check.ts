/**
 * A transactional consistency checker after Jepsen's Elle (Kingsbury and Alvaro, VLDB 2020):
 * given a history of transactions over list-append or read-write-register keys, it infers
 * which transaction must precede which (txn-list-append.ts, txn-register.ts, real-time
 * order in txn-graph.ts), finds cycles in that graph and names them (txn-cycles.ts), and
 * reports every anomaly it finds with text a person can follow (txn-anomaly.ts). The
 * history format is in txn-history.ts.
 *
 * The pipeline is: validate -> infer (graph and single-observation anomalies) -> add rt
 * edges (strict serializability only) -> find cycles -> report. `judge` runs the steps after
 * inference, so a test can change the graph in between (the mutants in the tests drop an
 * edge type to show what the real checker finds that a weaker one misses).
 *
 * Sound: an anomaly is reported only when no serial order (respecting real time, for
 * strict serializability) explains the observations. Not complete in general: appends nobody
 * read, and for registers most of the version order, are unknown. See docs/txn-checker.md.
 *
 * A violation's `explanation` is what the simulator would put in an InvariantViolation
 * (violation.ts) under the checker name "transactions".
 */
import { addRealtimeEdges } from "./txn-graph.js";
import { ANOMALIES_KEPT_PER_KIND_MAX, explainAnomaly, type Anomaly, type AnomalyKind, type AnomalyLog } from "./txn-anomaly.js";
import { findCycleAnomalies, type Consistency } from "./txn-cycles.js";
import { parseTxnHistory, type ListAppendOp, type RegisterOp, type Transaction } from "./txn-history.js";
import { inferListAppend, type Inference } from "./txn-list-append.js";
import { inferRegisters } from "./txn-register.js";
import { InvariantViolation } from "./violation.js";

export type { Anomaly, AnomalyKind, CycleKind, CycleStep, ObservationKind } from "./txn-anomaly.js";
export type { Consistency } from "./txn-cycles.js";
export type { EdgeType } from "./txn-graph.js";
export type { ListAppendOp, RegisterOp, Transaction, TxnStatus } from "./txn-history.js";
export { parseTxnHistory } from "./txn-history.js";

export interface TxnCheckOptions {
  /** "serializable" (the default), or "strict-serializable", which adds real-time edges. */
  readonly consistency?: Consistency;
}

export type TxnCheckResult =
  | { readonly verdict: "valid"; readonly consistency: Consistency; readonly transactions: number; readonly edges: number }
  | {
      readonly verdict: "violation";
      readonly consistency: Consistency;
      /** The first ANOMALIES_KEPT_PER_KIND_MAX of each kind: observations first, then cycles. */
      readonly anomalies: readonly Anomaly[];
      /** How many of each kind were found, kept or not. */
      readonly counts: Readonly<Partial<Record<AnomalyKind, number>>>;
      readonly explanation: string;
    };

/** The name the simulator would report a violation under. */
export const TXN_CHECKER = "transactions";

/** Checks a list-append history. Throws InvalidInputError on a malformed one. */
export function checkListAppend(history: readonly Transaction<ListAppendOp>[], options: TxnCheckOptions = {}): TxnCheckResult {
  const valid = parseTxnHistory(history, "list-append");
  return judge(valid, inferListAppend(valid), options);
}

/** Checks a read-write-register history. Throws InvalidInputError on a malformed one. */
export function checkRegisters(history: readonly Transaction<RegisterOp>[], options: TxnCheckOptions = {}): TxnCheckResult {
  const valid = parseTxnHistory(history, "register");
  return judge(valid, inferRegisters(valid), options);
}

/** Everything after inference: real-time edges if asked for, cycles, and the report. Consumes `inference` (adds to its graph and log). */
export function judge(history: readonly Transaction<ListAppendOp | RegisterOp>[], inference: Inference, options: TxnCheckOptions = {}): TxnCheckResult {
  const consistency = options.consistency ?? "serializable";
  const { graph, anomalies } = inference;
  if (consistency === "strict-serializable") addRealtimeEdges(graph, history);
  for (const cycle of findCycleAnomalies(graph, consistency)) anomalies.add(cycle);
  if (anomalies.kept.length === 0) return { verdict: "valid", consistency, transactions: history.length, edges: graph.edgeCount };
  return { verdict: "violation", consistency, anomalies: anomalies.kept, counts: Object.fromEntries(anomalies.counts), explanation: explain(history, anomalies) };
}

/** The violation for the simulator to throw, or undefined when the history is valid. */
export function txnViolation(result: TxnCheckResult): InvariantViolation | undefined {
  return result.verdict === "violation" ? new InvariantViolation(TXN_CHECKER, result.explanation) : undefined;
}

function explain(history: readonly Transaction<ListAppendOp | RegisterOp>[], anomalies: AnomalyLog): string {
  const counts = [...anomalies.counts].map(([kind, count]) => `${kind} x${count}`).join(", ");
  const total = [...anomalies.counts.values()].reduce((sum, count) => sum + count, 0);
  const shown = total > anomalies.kept.length ? ` (showing the first ${ANOMALIES_KEPT_PER_KIND_MAX} of each kind)` : "";
  // A cycle that needs real-time edges leaves the history possibly serializable; anything else rules that out too.
  const onlyRealtime = [...anomalies.counts.keys()].every((kind) => kind.endsWith("-realtime"));
  const verdict = onlyRealtime ? "is not strict serializable (every cycle found needs real-time order)" : "is not serializable";
  const heading = `The history of ${history.length} transactions ${verdict}: ${counts}${shown}.`;
  return [heading, ...anomalies.kept.map((anomaly) => explainAnomaly(anomaly, history))].join("\n\n");
}

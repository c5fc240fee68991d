/**
 * The nemesis's verdict, after the faults are healed and the cluster has settled:
 *
 * 1. Linearizable: the clients' history, with the final read added as one read of every key
 *    (a range read happens at one revision, so each key's read takes effect at the same
 *    point), is judged by the simulator's checker (src/sim/check/linearizability.ts).
 * 2. No acknowledged write lost: every key a client wrote once and was told was written is in
 *    the final read, with its value. (For the shared keys the checker does this: an
 *    acknowledged write the final read does not account for makes the history fail.)
 * 3. Every node caught up: each node's applied index reached the leader's commit index, and
 *    its own (stale) read of the whole store equals the final read.
 * 4. The cluster served again once healed: writes were acknowledged after the heal.
 */
import { checkLinearizability } from "../sim/check/linearizability.js";
import { describeOperation, type Operation } from "../sim/history.js";
import { UNIQUE_PREFIX } from "./clients.js";

export interface NodeView {
  readonly id: number;
  /** null: the node did not answer. */
  readonly appliedIndex: number | null;
  /** The node's stale read of the whole store; null if it did not answer. */
  readonly store: ReadonlyMap<string, string> | null;
}

export interface VerdictInput {
  readonly history: readonly Operation[];
  /** The leader's linearizable read of the whole store after the heal, and when it ran. */
  readonly finalRead: { readonly values: ReadonlyMap<string, string>; readonly call: number; readonly return: number } | null;
  readonly leaderCommitIndex: number | null;
  readonly nodes: readonly NodeView[];
  /** When the last fault was healed (the history's clock). */
  readonly healedAt: number;
}

export interface Verdict {
  readonly pass: boolean;
  /** One sentence each; empty when the run passed. */
  readonly problems: readonly string[];
  readonly summary: string;
}

/** Client id of the final read in the history: after every real client. */
export const FINAL_READER = 1_000_000;

export function judge(input: VerdictInput): Verdict {
  const problems: string[] = [];
  const history = [...input.history];
  if (input.finalRead === null) problems.push("no final read: the healed cluster did not serve a linearizable read of the store");
  else history.push(...finalReads(input.history, input.finalRead));

  const result = checkLinearizability(history);
  if (result.verdict === "violation") problems.push(`the history is not linearizable:\n${result.explanation}`);
  if (result.verdict === "inconclusive") problems.push(`no linearizability verdict: ${result.explanation}`);

  const ackedOnce = input.history.filter((op) => op.status === "ok" && op.op === "put" && op.key.startsWith(UNIQUE_PREFIX));
  if (input.finalRead !== null) {
    const values = input.finalRead.values;
    const lost = ackedOnce.filter((op) => values.get(op.key) !== op.value);
    if (lost.length > 0) {
      const shown = lost.slice(0, 5).map((op) => `  ${describeOperation(op)}; the final read has ${values.has(op.key) ? JSON.stringify(values.get(op.key)) : "no such key"}`);
      problems.push(`${lost.length} acknowledged write(s) lost (not in the final read):\n${shown.join("\n")}`);
    }
  }

  for (const node of input.nodes) {
    const behind = node.appliedIndex === null || input.leaderCommitIndex === null || node.appliedIndex < input.leaderCommitIndex;
    const differs = input.finalRead === null || node.store === null ? null : firstDifference(input.finalRead.values, node.store);
    if (behind || differs !== null) {
      const applied = node.appliedIndex === null ? "no answer" : `applied index ${node.appliedIndex}`;
      problems.push(`node ${node.id} did not catch up: ${applied}, the leader's commit index ${input.leaderCommitIndex ?? "unknown"}${differs === null ? "" : `; its store differs: ${differs}`}`);
    }
  }

  const ackedAfterHeal = input.history.filter((op) => op.status === "ok" && op.op !== "get" && op.call >= input.healedAt).length;
  if (ackedAfterHeal === 0) problems.push("no write was acknowledged after the heal: the cluster did not serve again");

  const count = (status: string): number => input.history.filter((op) => op.status === status).length;
  const summary =
    `${input.history.length} operations (${count("ok")} ok, ${count("fail")} failed, ${count("unknown")} unknown); ` +
    `linearizability: ${result.verdict}${result.verdict === "linearizable" ? ` over ${result.keys} keys` : ""}; ` +
    `${ackedOnce.length} acknowledged write-once keys checked; ${ackedAfterHeal} writes acknowledged after the heal; ` +
    `nodes at applied index ${input.nodes.map((node) => `${node.id}:${node.appliedIndex ?? "?"}`).join(" ")} (leader's commit index ${input.leaderCommitIndex ?? "?"})`;
  return { pass: problems.length === 0, problems, summary };
}

/** The final read as one read of every key the history touched (absent keys read as null). */
function finalReads(history: readonly Operation[], finalRead: NonNullable<VerdictInput["finalRead"]>): Operation[] {
  const keys = new Set([...history.map((op) => op.key), ...finalRead.values.keys()]);
  return [...keys].sort().map((key) => ({ client: FINAL_READER, op: "get" as const, key, output: finalRead.values.get(key) ?? null, call: finalRead.call, return: finalRead.return, status: "ok" as const }));
}

function firstDifference(expected: ReadonlyMap<string, string>, actual: ReadonlyMap<string, string>): string | null {
  for (const [key, value] of expected) if (actual.get(key) !== value) return `${JSON.stringify(key)} is ${actual.has(key) ? JSON.stringify(actual.get(key)) : "absent"}, not ${JSON.stringify(value)}`;
  for (const key of actual.keys()) if (!expected.has(key)) return `${JSON.stringify(key)} is present, absent in the final read`;
  return null;
}

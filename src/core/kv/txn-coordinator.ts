/**
 * The coordinator of a transaction across ranges, and the recovery of one whose coordinator
 * vanished (issue 18; docs/transactions.md). The phases are commands of the ranges' state
 * machines (intents.ts); this module decides which to propose where and what the answers
 * mean. It is the one the node runs (runtime/server/cross-range-txn.ts wraps it in promises
 * and timers) and the one the simulator runs (sim/txn-workload.ts), so it is written with
 * callbacks and no clock of its own: a host proposes each phase through its replica of the
 * range and calls back.
 *
 * Coordinator: prepare in every range the transaction touches, at once; the outcome is
 * "success" when every range's compares hold, "failure" when one does not, "abort" when a
 * range refused (a key held by another transaction) or did not answer; record it in the
 * anchor range (the range of the transaction's smallest key), which answers the outcome that
 * stands; resolve in every range, at once.
 *
 * Recovery: intents a node has seen for `abandonedAfterMs` in a range it leads, whose
 * coordinator is not one of its running ones, have their outcome asked for by proposing
 * "abort" to their anchor (the outcome that stands comes back: "abort", or what the
 * coordinator recorded), then are resolved with it.
 */
import { compareBytes } from "../common/bytes.js";
import { utf8Encode } from "../common/utf8.js";
import type { Waiter } from "../replica/contract.js";
import type { GroupId } from "../multi/group.js";
import type { TxnCommand, TxnCompare, TxnOperation, TxnOutcome } from "./command.js";
import type { Intent } from "./intents.js";
import type { KvOperation } from "./kv-replica.js";
import type { KvResult, TxnOperationResult } from "./model.js";

/** How often a phase a range did not answer is proposed again (each phase is idempotent). */
export const PHASE_ATTEMPTS = 3;

/**
 * Deliberately broken coordinators, so the simulator can prove its transaction checkers
 * catch the mistakes two-phase commit is known for. Production never builds one.
 */
export const TXN_COORDINATOR_MUTANTS = {
  "txn-commit-unprepared": "decides success once the anchor range prepared, without waiting for the other ranges' answers (a range that refused, or whose compares failed, is committed anyway)",
  "txn-resolve-unread": "a recovery resolves an abandoned intent as committed without reading the anchor's record (the coordinator may have decided failure or abort)",
  "txn-no-recovery": "nobody resolves the intents of a coordinator that vanished: their keys stay locked forever",
} as const;
export type TxnCoordinatorMutant = keyof typeof TXN_COORDINATOR_MUTANTS;

/** The phases of a transaction across ranges, as a replica's write. */
export type TxnPhaseOperation = Extract<KvOperation, { readonly op: "txn-prepare" | "txn-decide" | "txn-resolve" }>;

/** What the coordinator needs of the node it runs on. */
export interface TxnCoordinatorHost {
  /** The range that holds `key` now. */
  rangeOf(key: string): GroupId;
  /** Proposes one phase through this node's replica of `range` (its leader's, by forwarding); the waiter hears the result. */
  write(range: GroupId, operation: TxnPhaseOperation, waiter: Waiter<KvResult>): void;
}

export type TxnBody = Pick<TxnCommand, "compares" | "success" | "failure">;

/** A transaction's part in one range. */
export interface TxnPart {
  readonly range: GroupId;
  readonly compares: readonly TxnCompare[];
  readonly success: readonly TxnOperation[];
  readonly failure: readonly TxnOperation[];
}

/** How a coordinated transaction ended. */
export interface CoordinatedTxn {
  readonly txn: string;
  readonly outcome: TxnOutcome;
  /** Why it aborted ("" otherwise). */
  readonly reason: string;
  readonly parts: readonly TxnPart[];
  /** Each range's resolve result (null: its resolve was not answered; the recovery finishes it). */
  readonly resolved: ReadonlyMap<GroupId, KvResult | null>;
}

/** Whether `txn`'s keys lie in several ranges (else it goes to its one range as it is). */
export function spansRanges(txn: TxnBody, rangeOf: (key: string) => GroupId): boolean {
  return new Set(keysOf(txn).map(rangeOf)).size > 1;
}

/**
 * Runs transaction `txn` (its id unique to this coordinator) across ranges; `done` hears how
 * it ended once its outcome is recorded and every range answered its resolve (or gave up).
 * Fails (`failed`) only when the anchor never answered the decision: the outcome is unknown.
 */
export function coordinate(host: TxnCoordinatorHost, txn: string, body: TxnBody, done: Waiter<CoordinatedTxn>, mutant: TxnCoordinatorMutant | null = null): void {
  const parts = txnParts(body, host.rangeOf);
  const anchor = (parts[0] as TxnPart).range;
  const prepared: (KvResult | Error | undefined)[] = parts.map(() => undefined);
  let decided = false;
  const decide = (): void => {
    if (decided) return;
    decided = true;
    const { wanted, reason } = outcomeOf(parts, prepared);
    proposeWithRetries(host, anchor, { op: "txn-decide", txn, outcome: wanted }, {
      resolve: (result) => {
        const outcome = result.op === "txn-decide" ? result.outcome : "abort";
        resolveEverywhere(host, txn, parts, outcome, (resolved) => done.resolve({ txn, outcome, reason: outcome === "abort" ? reason || "its outcome was recorded as abort" : "", parts, resolved }));
      },
      reject: (error) => done.reject(error),
    });
  };
  parts.forEach((part, i) => {
    const prepare: TxnPhaseOperation = { op: "txn-prepare", txn, anchor, compares: part.compares, success: part.success, failure: part.failure };
    const answered = (answer: KvResult | Error): void => {
      prepared[i] = answer;
      if (mutant === "txn-commit-unprepared" && i === 0) return decide();
      if (prepared.every((one) => one !== undefined)) decide();
    };
    proposeWithRetries(host, part.range, prepare, { resolve: answered, reject: answered });
  });
}

/** The outcome the prepares' answers call for (an unanswered one, under a mutant, counts as holding). */
function outcomeOf(parts: readonly TxnPart[], prepared: readonly (KvResult | Error | undefined)[]): { wanted: TxnOutcome; reason: string } {
  let wanted: TxnOutcome = "success";
  let reason = "";
  prepared.forEach((answer, i) => {
    const range = (parts[i] as TxnPart).range;
    if (answer === undefined) return;
    if (answer instanceof Error) {
      wanted = "abort";
      reason = `range ${range} did not answer its prepare (${answer.message})`;
    } else if (answer.op === "txn-locked") {
      wanted = "abort";
      reason = `key ${JSON.stringify(answer.key)} is held by another transaction in flight`;
    } else if (answer.op !== "txn-prepare") {
      wanted = "abort";
      reason = `range ${range} refused its prepare (${answer.op === "rejected" ? answer.reason : answer.op})`;
    } else if (!answer.holds && wanted === "success") wanted = "failure";
  });
  return { wanted, reason };
}

function resolveEverywhere(host: TxnCoordinatorHost, txn: string, parts: readonly TxnPart[], outcome: TxnOutcome, done: (resolved: Map<GroupId, KvResult | null>) => void): void {
  const resolved = new Map<GroupId, KvResult | null>();
  for (const part of parts) {
    const answered = (result: KvResult | null): void => {
      resolved.set(part.range, result);
      if (resolved.size === parts.length) done(resolved);
    };
    proposeWithRetries(host, part.range, { op: "txn-resolve", txn, outcome }, { resolve: answered, reject: () => answered(null) });
  }
}

/** One phase, proposed again (up to PHASE_ATTEMPTS times) while the range does not answer. */
function proposeWithRetries(host: TxnCoordinatorHost, range: GroupId, operation: TxnPhaseOperation, waiter: Waiter<KvResult>, attempt = 1): void {
  host.write(range, operation, {
    resolve: (result) => waiter.resolve(result),
    reject: (error) => (attempt >= PHASE_ATTEMPTS ? waiter.reject(error) : proposeWithRetries(host, range, operation, waiter, attempt + 1)),
  });
}

/** Every key the transaction names, in its compares and both branches. */
function keysOf(txn: TxnBody): string[] {
  return [...txn.compares, ...txn.success, ...txn.failure].map((item) => item.key);
}

/** The transaction's compares and operations by range, the anchor (the smallest key's range) first. */
export function txnParts(txn: TxnBody, rangeOf: (key: string) => GroupId): TxnPart[] {
  const byRange = new Map<GroupId, { compares: TxnCompare[]; success: TxnOperation[]; failure: TxnOperation[] }>();
  const of = (key: string): { compares: TxnCompare[]; success: TxnOperation[]; failure: TxnOperation[] } => {
    const id = rangeOf(key);
    let part = byRange.get(id);
    if (part === undefined) byRange.set(id, (part = { compares: [], success: [], failure: [] }));
    return part;
  };
  for (const compare of txn.compares) of(compare.key).compares.push(compare);
  for (const operation of txn.success) of(operation.key).success.push(operation);
  for (const operation of txn.failure) of(operation.key).failure.push(operation);
  const smallest = keysOf(txn).sort((a, b) => compareBytes(utf8Encode(a), utf8Encode(b)))[0] as string;
  const anchor = rangeOf(smallest);
  return [...byRange.entries()].map(([range, part]) => ({ range, ...part })).sort((a, b) => (a.range === anchor ? -1 : b.range === anchor ? 1 : a.range - b.range));
}

/** The branch's results in the order the client gave its operations, from each range's resolve. */
export function txnResults(txn: Pick<TxnCommand, "success" | "failure">, outcome: TxnOutcome, rangeOf: (key: string) => GroupId, resolved: ReadonlyMap<GroupId, KvResult | null>): TxnOperationResult[] {
  const next = new Map<GroupId, number>();
  return (outcome === "success" ? txn.success : txn.failure).map((operation): TxnOperationResult => {
    const range = rangeOf(operation.key);
    const i = next.get(range) ?? 0;
    next.set(range, i + 1);
    const answer = resolved.get(range);
    const result = answer?.op === "txn-resolve" ? answer.results?.[i] : undefined;
    if (result !== undefined) return result;
    // Its range has not resolved yet: the write will be applied (the outcome is recorded), its result is not known here.
    return operation.op === "get" ? { op: "get-forgotten" } : operation.op === "put" ? { op: "put", revision: 0 } : { op: "delete", deleted: 0 };
  });
}

/** A range's revision after the transaction resolved there (null: not resolved yet). */
export function resolvedRevision(result: KvResult | null | undefined): number | null {
  return result?.op === "txn-resolve" ? result.revision : null;
}

/** An intent a recovery finishes: in `range`, of transaction `txn` anchored in `anchor`. */
export interface AbandonedIntent {
  readonly range: GroupId;
  readonly txn: string;
  readonly anchor: GroupId;
}

/**
 * Finds and finishes transactions whose coordinator vanished, for one node. `look` is given,
 * each time, the intents of the ranges the node leads and the time; an intent it has seen
 * for `abandonedAfterMs` (by this clock) whose coordinator is not one of the node's running
 * ones is due. `finish` asks its anchor for the outcome (proposing "abort") and resolves it.
 */
export class TxnRecovery {
  /** When this node first saw each intent of a range it leads ("range/txn" → ms). */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly abandonedAfterMs: number,
    private readonly mutant: TxnCoordinatorMutant | null = null,
  ) {}

  /** The intents due for recovery among `leading` (the ranges this node leads, with their intents). */
  look(nowMs: number, leading: Iterable<{ readonly range: GroupId; readonly intents: readonly Intent[] }>, running: (txn: string) => boolean): AbandonedIntent[] {
    if (this.mutant === "txn-no-recovery") return [];
    const present = new Set<string>();
    const due: AbandonedIntent[] = [];
    for (const { range, intents } of leading) {
      for (const intent of intents) {
        const key = `${range}/${intent.txn}`;
        present.add(key);
        const first = this.seen.get(key) ?? nowMs;
        this.seen.set(key, first);
        if (nowMs - first >= this.abandonedAfterMs && !running(intent.txn)) due.push({ range, txn: intent.txn, anchor: intent.anchor });
      }
    }
    for (const key of this.seen.keys()) if (!present.has(key)) this.seen.delete(key);
    return due;
  }

  /** Asks `intent`'s anchor for its outcome (proposing abort: the first outcome recorded stands) and resolves it in its range. */
  finish(host: TxnCoordinatorHost, intent: AbandonedIntent, done: Waiter<TxnOutcome>): void {
    const resolve = (outcome: TxnOutcome): void =>
      host.write(intent.range, { op: "txn-resolve", txn: intent.txn, outcome }, { resolve: () => done.resolve(outcome), reject: (error) => done.reject(error) });
    if (this.mutant === "txn-resolve-unread") return resolve("success");
    host.write(intent.anchor, { op: "txn-decide", txn: intent.txn, outcome: "abort" }, {
      resolve: (decided) => resolve(decided.op === "txn-decide" ? decided.outcome : "abort"),
      reject: (error) => done.reject(error),
    });
  }
}

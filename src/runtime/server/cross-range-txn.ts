/**
 * Transactions across ranges on a node (issue 18; docs/transactions.md): the coordinator,
 * and the recovery of transactions whose coordinator vanished. The phases themselves are
 * commands of the ranges' state machines (src/core/kv/intents.ts); every node hosts every
 * range, so a coordinator proposes each phase through its own replica of the range, which
 * passes it to the range's leader.
 *
 * Coordinator: prepare in every range the transaction touches, at once; the outcome is
 * "success" when every range's compares hold, "failure" when one does not, "abort" when a
 * range refused (a key held by another transaction) or did not answer; record it in the
 * anchor range (the range of the transaction's smallest key), which answers the outcome
 * that stands; resolve in every range, at once. The client is answered once the outcome is
 * recorded and every range resolved — or, if a range did not answer its resolve, once the
 * outcome is recorded: its keys stay locked (reads of them wait) until the recovery resolves it.
 *
 * Recovery: each node looks, every RECOVERY_INTERVAL_MS, at the intents of the ranges it
 * leads; one it has seen for ABANDONED_AFTER_MS, whose coordinator is not this node's
 * running one, has its outcome asked for by proposing "abort" to its anchor (the outcome
 * that stands comes back: "abort", or what the coordinator recorded), then is resolved.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { TxnCommand, TxnCompare, TxnOperation, TxnOutcome } from "../../core/kv/command.js";
import type { KvResult, TxnOperationResult } from "../../core/kv/model.js";
import type { GroupId } from "../../core/multi/group.js";
import type { RangeTable } from "../../core/multi/ranges.js";
import type { GroupReplica } from "./group-replica.js";

/** How often a node looks for transactions whose coordinator vanished. */
export const RECOVERY_INTERVAL_MS = 500;
/** An intent seen this long (by the node looking) is taken for abandoned: its outcome is asked for. */
export const ABANDONED_AFTER_MS = 3000;
/** How often a phase a range did not answer is proposed again, within the request timeout. */
const RETRIES = 3;

/** What a transaction across ranges answers: the txn result, with each range's revision after it. */
export interface CrossRangeResult {
  readonly txn: string;
  readonly outcome: TxnOutcome;
  readonly succeeded: boolean;
  readonly results: readonly TxnOperationResult[];
  /** Each range the transaction touched, with its revision after it resolved there (null: not resolved yet). */
  readonly ranges: readonly { readonly id: GroupId; readonly revision: number | null }[];
}

/** The transaction could not go ahead: a key held by another transaction in flight, or a range that did not answer. */
export class TxnAbortedError extends Error {
  constructor(
    readonly txn: string,
    readonly reason: string,
  ) {
    super(`transaction ${txn} aborted: ${reason}; nothing was applied: retry`);
    this.name = "TxnAbortedError";
  }
}

interface Part {
  readonly range: GroupId;
  readonly compares: readonly TxnCompare[];
  readonly success: readonly TxnOperation[];
  readonly failure: readonly TxnOperation[];
}

/** What the coordinator needs of a range's replica on this node. */
export type TxnReplica = Pick<GroupReplica, "kv" | "engine"> & { readonly driver: Pick<GroupReplica["driver"], "write"> };

export interface CrossRangeHost {
  readonly nodeId: number;
  table(): RangeTable;
  replica(range: GroupId): TxnReplica | undefined;
  readonly log: Pick<Logger, "info" | "warn">;
  /** The wall clock (tests move it); Date.now by default. */
  readonly now?: () => number;
}

export class CrossRangeTxns {
  /** Transactions this node coordinates now: the recovery leaves them alone. */
  private readonly running = new Set<string>();
  /** When this node first saw each intent of a range it leads (txn id → ms). */
  private readonly seen = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private recovering = false;
  private sequence = 0;

  constructor(private readonly host: CrossRangeHost) {}

  /** Whether `txn`'s keys span several ranges (else it goes to its one range as it is). */
  spansRanges(txn: Pick<TxnCommand, "compares" | "success" | "failure">): boolean {
    const table = this.host.table();
    const keys = [...txn.compares, ...txn.success, ...txn.failure].map((item) => item.key);
    return new Set(keys.map((key) => table.forKey(key).id)).size > 1;
  }

  /** Runs a transaction across ranges; throws TxnAbortedError when it aborted, and what a range's write throws when its outcome is unknown. */
  async run(txn: Pick<TxnCommand, "compares" | "success" | "failure">): Promise<CrossRangeResult> {
    const id = `${this.host.nodeId}-${Date.now().toString(36)}-${(this.sequence++).toString(36)}-${randomBytes(4).toString("hex")}`;
    const parts = this.partsOf(txn);
    const anchor = (parts[0] as Part).range;
    this.running.add(id);
    try {
      const prepared = await Promise.allSettled(parts.map((part) => this.write(part.range, { op: "txn-prepare", txn: id, anchor, compares: part.compares, success: part.success, failure: part.failure })));
      let wanted: TxnOutcome = "success";
      let reason = "";
      for (const [i, answer] of prepared.entries()) {
        const range = (parts[i] as Part).range;
        if (answer.status === "rejected") {
          wanted = "abort";
          reason = `range ${range} did not answer its prepare (${(answer.reason as Error).message})`;
        } else if (answer.value.op === "txn-locked") {
          wanted = "abort";
          reason = `key ${JSON.stringify(answer.value.key)} is held by another transaction in flight`;
        } else if (answer.value.op !== "txn-prepare") {
          wanted = "abort";
          reason = `range ${range} refused its prepare (${answer.value.op === "rejected" ? answer.value.reason : answer.value.op})`;
        } else if (!answer.value.holds && wanted === "success") wanted = "failure";
      }
      const decided = await this.write(anchor, { op: "txn-decide", txn: id, outcome: wanted });
      const outcome = decided.op === "txn-decide" ? decided.outcome : "abort";
      const resolved = await Promise.allSettled(parts.map((part) => this.write(part.range, { op: "txn-resolve", txn: id, outcome })));
      if (outcome === "abort") throw new TxnAbortedError(id, reason === "" ? "its outcome was recorded as abort" : reason);
      const byRange = new Map<GroupId, KvResult | null>(parts.map((part, i) => {
        const answer = resolved[i];
        return [part.range, answer?.status === "fulfilled" ? answer.value : null] as const;
      }));
      return { txn: id, outcome, succeeded: outcome === "success", results: this.results(txn, outcome, byRange), ranges: parts.map((part) => ({ id: part.range, revision: revisionOf(byRange.get(part.range)) })) };
    } finally {
      this.running.delete(id);
    }
  }

  /** Starts looking for abandoned transactions in the ranges this node leads. */
  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => void this.recoverOnce(), RECOVERY_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One look: intents seen for ABANDONED_AFTER_MS, not this node's running ones, get their outcome asked for and are resolved. */
  async recoverOnce(): Promise<void> {
    if (this.recovering) return;
    this.recovering = true;
    try {
      const now = (this.host.now ?? Date.now)();
      const present = new Set<string>();
      const due: { range: GroupId; txn: string; anchor: GroupId }[] = [];
      for (const id of this.host.table().list().map((range) => range.id)) {
        const replica = this.host.replica(id);
        if (replica === undefined || replica.engine.status().role !== "leader") continue;
        for (const intent of replica.kv.intents.list()) {
          const key = `${id}/${intent.txn}`;
          present.add(key);
          const first = this.seen.get(key) ?? now;
          this.seen.set(key, first);
          if (now - first >= ABANDONED_AFTER_MS && !this.running.has(intent.txn)) due.push({ range: id, txn: intent.txn, anchor: intent.anchor });
        }
      }
      for (const key of this.seen.keys()) if (!present.has(key)) this.seen.delete(key);
      for (const { range, txn, anchor } of due) {
        try {
          const decided = await this.write(anchor, { op: "txn-decide", txn, outcome: "abort" });
          const outcome = decided.op === "txn-decide" ? decided.outcome : "abort";
          await this.write(range, { op: "txn-resolve", txn, outcome });
          this.host.log.warn({ txn, range, anchor, outcome }, "resolved a transaction across ranges whose coordinator vanished");
        } catch (error) {
          this.host.log.info({ err: error, txn, range }, "could not resolve an abandoned transaction yet; the next look tries again");
        }
      }
    } finally {
      this.recovering = false;
    }
  }

  /** The transaction's compares and operations by range, the anchor (the smallest key's range) first. */
  private partsOf(txn: Pick<TxnCommand, "compares" | "success" | "failure">): Part[] {
    const table = this.host.table();
    const byRange = new Map<GroupId, { compares: TxnCompare[]; success: TxnOperation[]; failure: TxnOperation[] }>();
    const of = (key: string): { compares: TxnCompare[]; success: TxnOperation[]; failure: TxnOperation[] } => {
      const id = table.forKey(key).id;
      let part = byRange.get(id);
      if (part === undefined) byRange.set(id, (part = { compares: [], success: [], failure: [] }));
      return part;
    };
    for (const compare of txn.compares) of(compare.key).compares.push(compare);
    for (const operation of txn.success) of(operation.key).success.push(operation);
    for (const operation of txn.failure) of(operation.key).failure.push(operation);
    const smallest = [...txn.compares, ...txn.success, ...txn.failure].map((item) => item.key).sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))))[0] as string;
    const anchor = table.forKey(smallest).id;
    return [...byRange.entries()].map(([range, part]) => ({ range, ...part })).sort((a, b) => (a.range === anchor ? -1 : b.range === anchor ? 1 : a.range - b.range));
  }

  /** The branch's results in the order the client gave its operations, from each range's resolve. */
  private results(txn: Pick<TxnCommand, "success" | "failure">, outcome: TxnOutcome, byRange: ReadonlyMap<GroupId, KvResult | null>): TxnOperationResult[] {
    const table = this.host.table();
    const next = new Map<GroupId, number>();
    return (outcome === "success" ? txn.success : txn.failure).map((operation): TxnOperationResult => {
      const range = table.forKey(operation.key).id;
      const i = next.get(range) ?? 0;
      next.set(range, i + 1);
      const resolved = byRange.get(range);
      const result = resolved?.op === "txn-resolve" ? resolved.results?.[i] : undefined;
      if (result !== undefined) return result;
      // Its range has not resolved yet: the write will be applied (the outcome is recorded), its result is not known here.
      return operation.op === "get" ? { op: "get-forgotten" } : operation.op === "put" ? { op: "put", revision: 0 } : { op: "delete", deleted: 0 };
    });
  }

  /** One phase, through this node's replica of `range`, proposed again if the range did not answer (each phase is idempotent). */
  private async write(range: GroupId, operation: Parameters<TxnReplica["driver"]["write"]>[0]): Promise<KvResult> {
    const replica = this.host.replica(range);
    if (replica === undefined) throw new Error(`this node hosts no replica of range ${range}`);
    let failure: unknown;
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      try {
        return await replica.driver.write(operation, null);
      } catch (error) {
        failure = error;
      }
    }
    throw failure;
  }
}

function revisionOf(result: KvResult | null | undefined): number | null {
  return result?.op === "txn-resolve" ? result.revision : null;
}

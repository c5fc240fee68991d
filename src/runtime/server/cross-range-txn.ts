/**
 * Transactions across ranges on a node (issue 18; docs/transactions.md): the node's side of
 * the coordinator and of the recovery of transactions whose coordinator vanished. What they
 * decide is src/core/kv/txn-coordinator.ts's, the same code the simulator runs; this gives it
 * the node's replicas (a phase goes through the node's own replica of the range, which passes
 * it to the range's leader; one this node does not host goes through a node that does,
 * range-writes.ts), promises, ids and a timer.
 *
 * The client is answered once the outcome is recorded and every range resolved — or, if a
 * range did not answer its resolve, once the outcome is recorded: its keys stay locked (reads
 * of them wait) until the recovery resolves it. Every RECOVERY_INTERVAL_MS each node looks at
 * the intents of the ranges it leads; one it has seen for ABANDONED_AFTER_MS, whose
 * coordinator is not this node's running one, is finished by the recovery.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { TxnOutcome } from "../../core/kv/command.js";
import type { Intent } from "../../core/kv/intents.js";
import type { KvResult, TxnOperationResult } from "../../core/kv/model.js";
import { coordinate, resolvedRevision, spansRanges, TxnRecovery, txnResults, type CoordinatedTxn, type TxnBody, type TxnCoordinatorHost } from "../../core/kv/txn-coordinator.js";
import type { GroupId } from "../../core/multi/group.js";
import type { RangeTable } from "../../core/multi/ranges.js";
import { WriteOutcomeUnknownError } from "../../core/replica/errors.js";
import type { GroupReplica } from "./group-replica.js";

/** How often a node looks for transactions whose coordinator vanished. */
export const RECOVERY_INTERVAL_MS = 500;
/** An intent seen this long (by the node looking) is taken for abandoned: its outcome is asked for. */
export const ABANDONED_AFTER_MS = 3000;

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

/** What the coordinator needs of a range's replica on this node. */
export type TxnReplica = Pick<GroupReplica, "kv" | "engine"> & { readonly driver: Pick<GroupReplica["driver"], "write"> };

export interface CrossRangeHost {
  readonly nodeId: number;
  table(): RangeTable;
  replica(range: GroupId): TxnReplica | undefined;
  /** A phase for a range this node does not host, through a node that does (absent: every node hosts every range). */
  readonly remote?: (range: GroupId, operation: Parameters<TxnReplica["driver"]["write"]>[0]) => Promise<KvResult>;
  readonly log: Pick<Logger, "info" | "warn">;
  /** The wall clock (tests move it); Date.now by default. */
  readonly now?: () => number;
}

export class CrossRangeTxns {
  /** Transactions this node coordinates now: the recovery leaves them alone. */
  private readonly running = new Set<string>();
  private readonly recovery: TxnRecovery;
  private timer: NodeJS.Timeout | null = null;
  private recovering = false;
  private sequence = 0;

  constructor(private readonly host: CrossRangeHost) {
    this.recovery = new TxnRecovery(ABANDONED_AFTER_MS);
  }

  /** Whether `txn`'s keys span several ranges (else it goes to its one range as it is). */
  spansRanges(txn: TxnBody): boolean {
    return spansRanges(txn, this.rangeOf);
  }

  /** Runs a transaction across ranges; throws TxnAbortedError when it aborted, WriteOutcomeUnknownError when its outcome could not be learned. */
  async run(txn: TxnBody): Promise<CrossRangeResult> {
    const id = `${this.host.nodeId}-${Date.now().toString(36)}-${(this.sequence++).toString(36)}-${randomBytes(4).toString("hex")}`;
    this.running.add(id);
    try {
      let ended: CoordinatedTxn;
      try {
        ended = await new Promise<CoordinatedTxn>((resolve, reject) => coordinate(this.phases, id, txn, { resolve, reject }));
      } catch (error) {
        // The anchor never answered the decision. One of its attempts may have recorded it
        // (an attempt that timed out, then one refused as "no leader": the last error alone
        // would say nothing was applied, and a client would send the transaction again while
        // the recovery commits the first): the outcome is unknown, whatever the last error.
        throw new WriteOutcomeUnknownError(`transaction ${id} across ranges: its anchor range did not answer the decision (${(error as Error).message})`);
      }
      if (ended.outcome === "abort") throw new TxnAbortedError(id, ended.reason);
      const results = txnResults(txn, ended.outcome, this.rangeOf, ended.resolved);
      return { txn: id, outcome: ended.outcome, succeeded: ended.outcome === "success", results, ranges: ended.parts.map((part) => ({ id: part.range, revision: resolvedRevision(ended.resolved.get(part.range)) })) };
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
      const leading: { range: GroupId; intents: readonly Intent[] }[] = [];
      for (const { id } of this.host.table().list()) {
        const replica = this.host.replica(id);
        // A range with no intent adds nothing to the look: passed over before asking its role (a node may hold 10,000).
        if (replica !== undefined && replica.kv.intents.inFlight > 0 && replica.engine.status().role === "leader") leading.push({ range: id, intents: replica.kv.intents.list() });
      }
      const due = this.recovery.look((this.host.now ?? Date.now)(), leading, (txn) => this.running.has(txn));
      for (const intent of due) {
        try {
          const outcome = await new Promise<TxnOutcome>((resolve, reject) => this.recovery.finish(this.phases, intent, { resolve, reject }));
          this.host.log.warn({ txn: intent.txn, range: intent.range, anchor: intent.anchor, outcome }, "resolved a transaction across ranges whose coordinator vanished");
        } catch (error) {
          this.host.log.info({ err: error, txn: intent.txn, range: intent.range }, "could not resolve an abandoned transaction yet; the next look tries again");
        }
      }
    } finally {
      this.recovering = false;
    }
  }

  private readonly rangeOf = (key: string): GroupId => this.host.table().forKey(key).id;

  /** The phases, through this node's replica of each range. */
  private readonly phases: TxnCoordinatorHost = {
    rangeOf: this.rangeOf,
    write: (range, operation, waiter) => {
      const replica = this.host.replica(range);
      const remote = this.host.remote;
      if (replica === undefined && remote === undefined) return waiter.reject(new Error(`this node hosts no replica of range ${range}`));
      (replica === undefined ? (remote as NonNullable<typeof remote>)(range, operation) : replica.driver.write(operation, null)).then(
        (result) => waiter.resolve(result),
        (error: unknown) => waiter.reject(error instanceof Error ? error : new Error(String(error))),
      );
    },
  };
}

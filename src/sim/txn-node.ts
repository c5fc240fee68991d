/**
 * What a simulated node does with a transaction client's request (sim/txn-workload.ts): a
 * transaction whose keys lie in one group is that group's `txn` command; one over several
 * groups runs the production coordinator (core/kv/txn-coordinator.ts) through the node's
 * replicas, exactly as a real node does (runtime/server/cross-range-txn.ts), and the node
 * runs the production recovery of transactions whose coordinator vanished. Groups here are
 * the simulator's hash groups: each key's group is its range.
 */
import { groupOfKey, type GroupId } from "../core/multi/group.js";
import type { Clock } from "../core/replica/contract.js";
import { RequestTimeoutError, WriteOutcomeUnknownError } from "../core/replica/errors.js";
import type { KvReplica } from "../core/kv/kv-replica.js";
import type { Intent } from "../core/kv/intents.js";
import type { KvResult, TxnOperationResult } from "../core/kv/model.js";
import { NotLeaderError } from "../core/common/errors.js";
import type { Waiter } from "../core/replica/contract.js";
import { coordinate, spansRanges, TxnRecovery, txnResults, type TxnBody, type TxnCoordinatorHost, type TxnCoordinatorMutant, type TxnPhaseOperation } from "../core/kv/txn-coordinator.js";
import type { NodeId } from "../core/engine/contract.js";

/**
 * How long an intent sits before a node's recovery asks for its outcome, and how often it
 * looks, in ms of the node's clock. The node's are 3 s and 500 ms; shorter here so a run's
 * settling (a few seconds after the heal) sees every abandoned transaction finished.
 */
export const SIM_ABANDONED_AFTER_MS = 1_000;
export const SIM_RECOVERY_INTERVAL_MS = 200;

export type SimTxnRequest = TxnBody & { readonly type: "txn-request"; readonly clientId: number; readonly sequence: number };

/**
 * A node's answer: "ok" (committed: the success or failure branch ran; results null where a
 * group's part was not confirmed), "aborted" (nothing applied: a key was held, a group did
 * not answer its prepare), "refused" (nothing applied: not accepted here). No answer when
 * the outcome is unknown.
 */
export type SimTxnResponse = { readonly type: "txn-response"; readonly sequence: number } & (
  | { readonly outcome: "ok"; readonly succeeded: boolean; readonly results: readonly TxnOperationResult[] }
  | { readonly outcome: "aborted" | "refused"; readonly reason: string }
);

/** What the service needs of its node's incarnation. */
export interface SimTxnNode {
  readonly id: NodeId;
  readonly incarnation: number;
  readonly groupCount: number;
  layer(group: GroupId): Pick<KvReplica<unknown, unknown>, "write" | "kv">;
  leads(group: GroupId): boolean;
  readonly clock: Clock;
  /** A line in the run's trace, from this node. */
  trace(text: string): void;
  readonly requestTimeoutMs: number;
  /** Every node of the run. */
  readonly peers: readonly NodeId[];
  /** Runs `action` in this incarnation after `ms` of its clock. */
  after(ms: number, action: () => void): void;
  /** Passes a phase to node `to`, which proposes it through its replica of `group`; `reply` hears each answer that comes back. */
  forward(to: NodeId, group: GroupId, operation: TxnPhaseOperation, reply: (answer: PhaseAnswer) => void): void;
}

/** A forwarded phase's answer. */
export type PhaseAnswer = { readonly result: KvResult } | { readonly error: Error };

/** One incarnation's coordinator and recovery (they die with it, as a process's would). */
export class SimTxnService {
  private readonly running = new Set<string>();
  private readonly recovery: TxnRecovery;
  private recovering = 0;
  private sequence = 0;
  /** The next peer a phase goes to when this node's replica knows no leader of its group. */
  private nextPeer = 0;
  private readonly phases: TxnCoordinatorHost;

  constructor(
    private readonly node: SimTxnNode,
    private readonly mutant: TxnCoordinatorMutant | null,
  ) {
    this.recovery = new TxnRecovery(SIM_ABANDONED_AFTER_MS, mutant);
    this.phases = { rangeOf: (key) => this.groupOf(key), write: (group, operation, waiter) => this.write(group, operation, waiter) };
  }

  /**
   * A phase through this node's replica of `group`; one it refuses for not leading (or not
   * being a member: the runs change group 0's members only) goes to the leader it names, as
   * a real node passes a write to the leader — or, when it knows none, to the next peer in
   * turn, whose replica passes it on to its leader or refuses.
   */
  private write(group: GroupId, operation: TxnPhaseOperation, waiter: Waiter<KvResult>): void {
    this.node.layer(group).write(operation, null, {
      resolve: (result) => waiter.resolve(result),
      reject: (error) => {
        if (!(error instanceof NotLeaderError)) return waiter.reject(error);
        const others = this.node.peers.filter((peer) => peer !== this.node.id);
        const to = error.leaderHint !== null && error.leaderHint !== this.node.id ? error.leaderHint : others[this.nextPeer++ % Math.max(1, others.length)];
        if (to === undefined) return waiter.reject(error);
        let answered = false;
        const once = (action: () => void): void => {
          if (answered) return;
          answered = true;
          action();
        };
        this.node.forward(to, group, operation, (answer) => once(() => ("result" in answer ? waiter.resolve(answer.result) : waiter.reject(answer.error))));
        this.node.after(this.node.requestTimeoutMs, () => once(() => waiter.reject(new RequestTimeoutError("write", this.node.requestTimeoutMs))));
      },
    });
  }

  start(): void {
    this.node.clock.every(SIM_RECOVERY_INTERVAL_MS, () => this.recoverOnce());
  }

  serve(request: SimTxnRequest, reply: (response: SimTxnResponse) => void): void {
    const body: TxnBody = { compares: request.compares, success: request.success, failure: request.failure };
    const { sequence } = request;
    const committed = (succeeded: boolean, results: readonly TxnOperationResult[]): void => reply({ type: "txn-response", sequence, outcome: "ok", succeeded, results });
    const notApplied = (outcome: "aborted" | "refused", reason: string): void => reply({ type: "txn-response", sequence, outcome, reason });
    const failed = (error: Error): void => {
      // A write that may still apply: its client hears nothing, and records it as unknown.
      if (error instanceof RequestTimeoutError || error instanceof WriteOutcomeUnknownError) return;
      notApplied("refused", error.message);
    };
    if (!spansRanges(body, (key) => this.groupOf(key))) {
      const group = this.groupOf((request.compares[0] ?? request.success[0] ?? request.failure[0])?.key ?? "");
      this.node.layer(group).write({ op: "txn", ...body }, null, {
        resolve: (result) => {
          if (result.op === "txn") committed(result.succeeded, result.results);
          else if (result.op === "txn-locked") notApplied("aborted", `key ${JSON.stringify(result.key)} is held by transaction ${result.txn}`);
          else notApplied("refused", result.op === "rejected" ? result.reason : result.op);
        },
        reject: failed,
      });
      return;
    }
    const txn = `${this.node.id}.${this.node.incarnation}.${++this.sequence}`;
    this.running.add(txn);
    this.node.trace(`txn ${txn} for client ${request.clientId}: prepare in groups ${[...new Set([...body.compares, ...body.success, ...body.failure].map((item) => this.groupOf(item.key)))].join(",")}`);
    coordinate(this.phases, txn, body, {
      resolve: (ended) => {
        this.running.delete(txn);
        this.node.trace(`txn ${txn}: ${ended.outcome}${ended.reason === "" ? "" : ` (${ended.reason})`}, resolved in ${[...ended.resolved].filter(([, result]) => result !== null).map(([group]) => `g${group}`).join(",") || "none"}`);
        if (ended.outcome === "abort") return notApplied("aborted", ended.reason);
        committed(ended.outcome === "success", txnResults(body, ended.outcome, (key) => this.groupOf(key), ended.resolved));
      },
      // The anchor never answered the decision: the outcome is unknown.
      reject: (error) => {
        this.running.delete(txn);
        this.node.trace(`txn ${txn}: outcome unknown (${error.message})`);
      },
    }, this.mutant);
  }

  /** One look for intents whose coordinator vanished, in the groups this node leads (one look at a time). */
  private recoverOnce(): void {
    if (this.recovering > 0) return;
    const leading: { range: GroupId; intents: readonly Intent[] }[] = [];
    for (let group = 0; group < this.node.groupCount; group++) if (this.node.leads(group)) leading.push({ range: group, intents: this.node.layer(group).kv.intents.list() });
    const due = this.recovery.look(this.node.clock.nowMs(), leading, (txn) => this.running.has(txn));
    this.recovering = due.length;
    for (const intent of due) {
      this.node.trace(`txn ${intent.txn}: its intent in g${intent.range} was abandoned; asking g${intent.anchor} for its outcome`);
      this.recovery.finish(this.phases, intent, {
        resolve: (outcome) => {
          this.recovering -= 1;
          this.node.trace(`txn ${intent.txn}: recovered as ${outcome} in g${intent.range}`);
        },
        reject: (error) => {
          this.recovering -= 1;
          this.node.trace(`txn ${intent.txn}: recovery in g${intent.range} failed (${error.message}); the next look tries again`);
        },
      });
    }
  }

  private groupOf(key: string): GroupId {
    return groupOfKey(key, this.node.groupCount);
  }
}

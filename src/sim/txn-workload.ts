/**
 * The transaction workloads (`synod sim --workload txn | bank`, issue 18): clients run
 * transactions over keys spread across the run's groups, so most of them are two-phase
 * commits through the production coordinator (sim/txn-node.ts), under every fault.
 *
 * Every transaction is optimistic, as the SDK's `client.transaction` is: one request reads
 * its keys (a transaction of gets: under the prepares' locks, so the reads are of one moment
 * across groups), a second commits its writes with a compare on every key read (its
 * modRevision as read), and fails if any changed. What the clients record:
 *
 * - "txn": list-append transactions (reads and appends over a few keys, Elle's workload),
 *   checked by the transactional checker (sim/check/txn-check.ts) for strict
 *   serializability: the commit's compares make what was read current at the commit point.
 * - "bank": transfers between accounts that start at START_BALANCE each (an absent key holds
 *   it), and reads of every account in one transaction: every such read sums to the total,
 *   no balance is negative, and at the end each node's stores sum to it too.
 *
 * Both end with a liveness check: once the clients stopped and the run settled, no intent is
 * left in any group on any node — every transaction whose coordinator vanished was finished
 * by a recovery.
 */
import { utf8Decode, utf8Encode } from "../core/common/utf8.js";
import type { Prng } from "../core/common/prng.js";
import type { NodeId } from "../core/engine/contract.js";
import type { TxnCompare, TxnOperation } from "../core/kv/command.js";
import type { KvRecord } from "../core/kv/model.js";
import type { KvStore } from "../core/kv/store.js";
import { checkListAppend, txnViolation, type ListAppendOp, type Transaction, type TxnStatus } from "./check/txn-check.js";
import { InvariantViolation } from "./check/violation.js";
import type { SimParams } from "./params.js";
import type { SimTxnRequest, SimTxnResponse } from "./txn-node.js";

export type TxnWorkloadKind = "txn" | "bank";

const TXN_CLIENT_ID_BASE = 2100;
const TXN_CLIENTS = 4;
/** Keys of the list-append workload, and accounts of the bank: few, so transactions meet. */
const LIST_KEYS = 6;
/** The list-append keys change this often (virtual µs), so lists stay short and the check fast, as Elle's generators rotate keys. */
const LIST_KEYS_EVERY_MICROS = 2_000_000;
const ACCOUNTS = 5;
export const START_BALANCE = 100;
/** The share of the bank clients' transactions that read every account. */
const READ_ALL_SHARE = 0.25;

export interface TxnWorld {
  now(): number;
  after(delayMicros: number, action: () => void): void;
  /** Sends `request` to node `to` over a client link; its answer comes back to `reply` the same way. */
  send(to: NodeId, request: SimTxnRequest, reply: (from: NodeId, response: SimTxnResponse) => void): void;
  note(actor: string, text: () => string): void;
}

export interface TxnStats {
  /** Transactions that committed their writes, failed their compares (a conflict), aborted (a key held, a group silent), or whose outcome is unknown. */
  readonly committed: number;
  readonly conflicts: number;
  readonly aborted: number;
  readonly unknown: number;
  /** Bank: reads of every account, each summing to the total. */
  readonly balancedReads?: number;
}

export function accountKey(i: number): string {
  return `bank/${i}`;
}

function listKey(i: number): string {
  return `list/${i}`;
}

export class TxnWorkload {
  readonly history: Transaction<ListAppendOp>[] = [];
  private readonly clients: TxnClient[] = [];
  readonly counts = { committed: 0, conflicts: 0, aborted: 0, unknown: 0, balancedReads: 0 };

  constructor(
    readonly kind: TxnWorkloadKind,
    world: TxnWorld,
    nodeIds: readonly NodeId[],
    params: SimParams,
    prng: Prng,
  ) {
    for (let i = 0; i < TXN_CLIENTS; i++) this.clients.push(new TxnClient(TXN_CLIENT_ID_BASE + i + 1, i, this, nodeIds, params, prng.fork(), world));
  }

  start(): void {
    for (const client of this.clients) client.start();
  }

  stop(): void {
    for (const client of this.clients) client.stop();
  }

  /**
   * The end of the run: the list-append history is strictly serializable (txn); every live
   * node's stores sum to the bank's total (bank); no intent is left anywhere (both).
   * `stores` are the live nodes' stores, by node and group (undefined: not a member of the group).
   */
  check(stores: ReadonlyMap<NodeId, readonly (KvStore | undefined)[]>): void {
    for (const [node, groups] of stores) {
      for (const [group, kv] of groups.entries()) {
        const intent = kv?.intents.list()[0];
        if (intent !== undefined) throw new InvariantViolation("transactions", `no liveness for transactions: after the heal and the settling, node ${node} still holds ${kv?.intents.inFlight} intent(s) in group ${group}, e.g. transaction ${intent.txn} (anchored in group ${intent.anchor}) over ${[...new Set([...intent.compares, ...intent.success, ...intent.failure].map((item) => item.key))].join(", ")}: nobody finished it`);
      }
      if (this.kind === "bank" && groups.every((kv) => kv !== undefined)) {
        const balances = Array.from({ length: ACCOUNTS }, (_, i) => balanceOf(groups.map((kv) => kv?.get(accountKey(i))).find((record) => record !== undefined)));
        this.checkBalances(balances, `node ${node}'s stores at the end`);
      }
    }
    if (this.kind === "txn") {
      const violation = txnViolation(checkListAppend(this.history, { consistency: "strict-serializable" }));
      if (violation !== undefined) throw violation;
    }
  }

  /** Bank: balances read in one transaction (or held by a node) sum to the total and none is negative. */
  checkBalances(balances: readonly number[], where: string): void {
    const total = balances.reduce((sum, balance) => sum + balance, 0);
    if (total !== ACCOUNTS * START_BALANCE || balances.some((balance) => balance < 0)) {
      throw new InvariantViolation("bank", `${where}: balances ${balances.join(", ")} sum to ${total}, not ${ACCOUNTS * START_BALANCE} (${ACCOUNTS} accounts of ${START_BALANCE}), or one is negative: money was made or lost`);
    }
  }

  stats(): TxnStats {
    const { balancedReads, ...counts } = this.counts;
    return this.kind === "bank" ? { ...counts, balancedReads } : counts;
  }
}

function balanceOf(record: KvRecord | null | undefined): number {
  return record === undefined || record === null ? START_BALANCE : Number(utf8Decode(record.value));
}

function listOf(record: KvRecord | null): number[] {
  return record === null ? [] : (JSON.parse(utf8Decode(record.value)) as number[]);
}

/** A micro-operation of a list-append transaction before it ran. */
type PlannedOp = { readonly f: "append"; readonly key: string; readonly value: number } | { readonly f: "read"; readonly key: string };

/** One client: transaction after transaction, each a read round and a commit round. */
class TxnClient {
  private sequence = 0;
  private stopped = false;
  private appended = 0;
  private pending: { readonly sequence: number; readonly onAnswer: (response: SimTxnResponse | null) => void } | null = null;

  constructor(
    private readonly id: number,
    private readonly index: number,
    private readonly workload: TxnWorkload,
    private readonly nodes: readonly NodeId[],
    private readonly params: SimParams,
    private readonly prng: Prng,
    private readonly world: TxnWorld,
  ) {}

  start(): void {
    this.world.after(this.prng.int(0, 200_000), () => this.next());
  }

  stop(): void {
    this.stopped = true;
  }

  private next(): void {
    if (this.stopped) return;
    const done = (): void => this.world.after(this.prng.int(1_000, 2 * this.params.clientThinkMicrosMean + 1_000), () => this.next());
    if (this.workload.kind === "txn") this.listAppend(done);
    else if (this.prng.float() < READ_ALL_SHARE) this.readAll(done);
    else this.transfer(done);
  }

  /** Bank: one transaction reading every account; its balances must sum to the total. */
  private readAll(done: () => void): void {
    const keys = Array.from({ length: ACCOUNTS }, (_, i) => accountKey(i));
    this.read(keys, (records) => {
      if (records !== null) {
        this.workload.checkBalances(records.map(balanceOf), `client ${this.id}'s read of every account in one transaction`);
        this.workload.counts.balancedReads++;
      }
      done();
    });
  }

  /** Bank: reads two accounts, then moves an amount from one to the other if the reads still hold. */
  private transfer(done: () => void): void {
    const from = this.prng.int(0, ACCOUNTS - 1);
    const to = (from + this.prng.int(1, ACCOUNTS - 1)) % ACCOUNTS;
    const keys = [accountKey(from), accountKey(to)];
    this.read(keys, (records) => {
      if (records === null) return done();
      const [a, b] = records.map(balanceOf) as [number, number];
      const amount = Math.min(a, this.prng.int(1, 20));
      const writes: TxnOperation[] = [
        { op: "put", key: keys[0] as string, value: utf8Encode(String(a - amount)) },
        { op: "put", key: keys[1] as string, value: utf8Encode(String(b + amount)) },
      ];
      this.commit(keys, records, writes, () => done());
    });
  }

  /** Txn: 1-4 reads and appends over 1-3 keys, recorded for the transactional checker. */
  private listAppend(done: () => void): void {
    const base = Math.floor(this.world.now() / LIST_KEYS_EVERY_MICROS) * LIST_KEYS;
    const keys = [...new Set(Array.from({ length: this.prng.int(1, 3) }, () => listKey(base + this.prng.int(0, LIST_KEYS - 1))))];
    const planned: PlannedOp[] = Array.from({ length: this.prng.int(1, 4) }, () => {
      const key = this.prng.pick(keys);
      return this.prng.float() < 0.5 ? { f: "read", key } : { f: "append", key, value: this.index * 1_000_000 + ++this.appended };
    });
    const call = this.world.now();
    this.read(keys, (records) => {
      if (records === null) return done(); // nothing written: left out of the history
      const lists = new Map(keys.map((key, i) => [key, listOf(records[i] ?? null)] as const));
      const ops: ListAppendOp[] = planned.map((op) => {
        const list = lists.get(op.key) as number[];
        if (op.f === "read") return { f: "read", key: op.key, value: [...list] };
        list.push(op.value);
        return op;
      });
      const writes: TxnOperation[] = keys.filter((key) => planned.some((op) => op.f === "append" && op.key === key)).map((key) => ({ op: "put", key, value: utf8Encode(JSON.stringify(lists.get(key))) }));
      this.commit(keys, records, writes, (status) => {
        const recorded = status === "ok" ? ops : ops.map((op) => (op.f === "read" ? { ...op, value: null } : op));
        this.workload.history.push({ client: this.id, call, return: this.world.now(), status, ops: recorded });
        done();
      });
    });
  }

  /** The read round: `keys` in one transaction of gets; null when it did not answer with every record. */
  private read(keys: readonly string[], then: (records: (KvRecord | null)[] | null) => void): void {
    this.request([], keys.map((key) => ({ op: "get", key })), (response) => {
      if (response?.outcome !== "ok" || !response.succeeded) return then(null);
      const records = response.results.map((result) => (result.op === "get" ? result.record : undefined));
      then(records.some((record) => record === undefined) ? null : (records as (KvRecord | null)[]));
    });
  }

  /** The commit round: `writes` if every key still has the modRevision it was read at. */
  private commit(keys: readonly string[], records: readonly (KvRecord | null)[], writes: readonly TxnOperation[], then: (status: TxnStatus) => void): void {
    const compares: TxnCompare[] = keys.map((key, i) => ({ key, target: "modRevision", op: "=", value: records[i]?.modRevision ?? 0 }));
    this.request(compares, writes, (response) => {
      const counts = this.workload.counts;
      if (response === null) {
        counts.unknown++;
        return then("unknown");
      }
      if (response.outcome === "ok" && response.succeeded) {
        counts.committed++;
        return then("ok");
      }
      if (response.outcome === "ok") counts.conflicts++;
      else counts.aborted++;
      then("fail");
    });
  }

  /** Sends one transaction to a node picked at random; `onAnswer(null)` when none comes in time (its outcome unknown). */
  private request(compares: readonly TxnCompare[], success: readonly TxnOperation[], onAnswer: (response: SimTxnResponse | null) => void): void {
    if (this.stopped) return;
    const sequence = ++this.sequence;
    const request: SimTxnRequest = { type: "txn-request", clientId: this.id, sequence, compares, success, failure: [] };
    this.pending = { sequence, onAnswer };
    const to = this.prng.pick(this.nodes);
    this.world.note(`txn client ${this.id}`, () => `-> ${to}: txn ${sequence} (${compares.length} compare(s), ${success.map((op) => `${op.op} ${op.key}`).join(", ")})`);
    this.world.send(to, request, (_from, response) => {
      if (this.pending?.sequence !== response.sequence) return; // late or duplicate
      this.pending = null;
      onAnswer(response);
    });
    this.world.after(this.params.clientTimeoutMicros, () => {
      if (this.pending?.sequence !== sequence) return;
      this.pending = null;
      onAnswer(null);
    });
  }
}

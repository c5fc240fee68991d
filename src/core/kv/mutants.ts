/**
 * Deliberately broken KV layers, so the simulator can prove its lease and watch checkers
 * catch the mistakes etcd's users would pay for. Production never builds one. They apply to every
 * protocol, like the replica's mutants (core/replica/mutants.ts).
 */
import type { KvBackend } from "./backend.js";
import { KvStore } from "./store.js";
import { TXN_STORE_MUTANTS, type TxnStoreMutant } from "./store-txns.js";
import { TXN_COORDINATOR_MUTANTS, type TxnCoordinatorMutant } from "./txn-coordinator.js";
import { parseEventId, type WatchStart } from "./watch-cursor.js";

export const KV_MUTANTS = {
  "lease-follower-clock": "expires leases by each replica's own wall clock when it applies a clock entry, instead of the time the leader put in the entry",
  "lease-no-extend": "a new leader does not extend every lease by its time to live, so a failover expires leases whose holders could reach no leader meanwhile",
  "watch-resume-repeats": "resumes a watch at the revision its Last-Event-ID names instead of the one after, so a client that reconnects gets that revision's changes twice (etcd #17247: a duplicated watch event)",
  "watch-resume-from-now": "resumes a watch from the node's current revision instead of its Last-Event-ID, so the changes made while the client reconnected are lost (etcd's clientv3 before #4564, dotnet-etcd #310)",
} as const;

/** The workload that shows a KV mutant: the lease clients, or the watchers. */
export function kvMutantWorkload(mutant: KvMutant): "leases" | "watch" {
  return mutant.startsWith("watch-") ? "watch" : "leases";
}

export type KvMutant = keyof typeof KV_MUTANTS;

export function isKvMutant(name: string): name is KvMutant {
  return Object.hasOwn(KV_MUTANTS, name);
}

/**
 * Transactions across ranges broken in the state machine's prepare (store-txns.ts) or in the
 * coordinator and its recovery (txn-coordinator.ts); the simulator's bank and txn workloads
 * (sim/txn-workload.ts) show them.
 */
export const TXN_MUTANTS = { ...TXN_STORE_MUTANTS, ...TXN_COORDINATOR_MUTANTS } as const;
export type TxnMutant = TxnStoreMutant | TxnCoordinatorMutant;

export function isTxnMutant(name: string): name is TxnMutant {
  return Object.hasOwn(TXN_MUTANTS, name);
}

export function isTxnStoreMutant(name: string): name is TxnStoreMutant {
  return Object.hasOwn(TXN_STORE_MUTANTS, name);
}

export function isTxnCoordinatorMutant(name: string): name is TxnCoordinatorMutant {
  return Object.hasOwn(TXN_COORDINATOR_MUTANTS, name);
}

/** A store whose prepares are broken as `txnMutant` says. */
class TxnMutantKvStore extends KvStore {
  protected override readonly txnMutant: TxnStoreMutant;

  constructor(mutant: TxnStoreMutant) {
    super();
    this.txnMutant = mutant;
  }
}

/** Leases expired by the node's own clock: replicas disagree on which entry expires a lease. */
class FollowerClockKvStore extends KvStore {
  constructor(
    backend: KvBackend | undefined,
    private readonly localClockMs: () => number,
  ) {
    super(backend);
  }

  protected override leaseExpiryClockMs(): number {
    return this.localClockMs();
  }
}

/**
 * A store (restored from `snapshot` if given), or with `mutant` "lease-follower-clock" the
 * broken variant reading `localClockMs`, or one whose prepares a transaction mutant breaks;
 * "lease-no-extend" breaks the request layer (KvReplica), not the store.
 */
export function createKvStore(mutant: KvMutant | TxnStoreMutant | null, localClockMs: () => number, snapshot?: Uint8Array): KvStore {
  const store = mutant === "lease-follower-clock" ? new FollowerClockKvStore(undefined, localClockMs) : mutant !== null && isTxnStoreMutant(mutant) ? new TxnMutantKvStore(mutant) : new KvStore();
  if (snapshot !== undefined) store.restore(snapshot);
  return store;
}

/**
 * Where a watch that reconnects with `lastEventId` starts (null: not an id the stream sent):
 * the production parse (watch-cursor.ts), or a watch mutant's mistake.
 */
export function watchResumeStart(mutant: KvMutant | null, lastEventId: string, currentRevision: number): WatchStart | null {
  const start = parseEventId(lastEventId);
  if (start === null) return null;
  if (mutant === "watch-resume-repeats" && start.skip === 0) return { revision: start.revision - 1, skip: 0 };
  if (mutant === "watch-resume-from-now") return { revision: Math.max(start.revision, currentRevision + 1), skip: 0 };
  return start;
}

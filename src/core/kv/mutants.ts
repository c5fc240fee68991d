/**
 * Deliberately broken KV layers, so the simulator can prove its lease checkers catch the
 * mistakes etcd's users would pay for. Production never builds one. They apply to every
 * protocol, like the replica's mutants (core/replica/mutants.ts).
 */
import type { KvBackend } from "./backend.js";
import { KvStore } from "./store.js";

export const KV_MUTANTS = {
  "lease-follower-clock": "expires leases by each replica's own wall clock when it applies a clock entry, instead of the time the leader put in the entry",
  "lease-no-extend": "a new leader does not extend every lease by its time to live, so a failover expires leases whose holders could reach no leader meanwhile",
} as const;

export type KvMutant = keyof typeof KV_MUTANTS;

export function isKvMutant(name: string): name is KvMutant {
  return Object.hasOwn(KV_MUTANTS, name);
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
 * broken variant reading `localClockMs`; "lease-no-extend" breaks the request layer
 * (KvReplica), not the store.
 */
export function createKvStore(mutant: KvMutant | null, localClockMs: () => number, snapshot?: Uint8Array): KvStore {
  const store = mutant === "lease-follower-clock" ? new FollowerClockKvStore(undefined, localClockMs) : new KvStore();
  if (snapshot !== undefined) store.restore(snapshot);
  return store;
}

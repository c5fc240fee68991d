/** What `GET /v1/leases/{id}` and `GET /v1/leases` tell of a lease, as a node's state holds it. */
import type { KvLease, KvStore } from "../../core/kv/store.js";

export interface LeaseView {
  readonly id: number;
  readonly ttlMs: number;
  /**
   * How long it lives yet without a keep-alive, by this node's wall clock (or the store's,
   * if later), in ms; 0 when its time is up and a clock entry is about to expire it.
   */
  readonly remainingMs: number;
  /** Its keys, in key order, up to the number asked for. */
  readonly keys: readonly string[];
  /** Whether it has more keys than `keys` lists. */
  readonly moreKeys: boolean;
}

export function leaseView(store: KvStore, lease: KvLease, keysMax: number, nowMs: number): LeaseView {
  const keys = keysMax === 0 ? [] : store.leaseKeys(lease.id, keysMax + 1);
  const remainingMs = Math.max(0, lease.expiresAtMs - Math.max(store.clock, nowMs));
  return { id: lease.id, ttlMs: lease.ttlMs, remainingMs, keys: keys.slice(0, keysMax), moreKeys: keys.length > keysMax };
}

/** The lease `id` (undefined if the store does not hold it). */
export function findLease(store: KvStore, id: number, keysMax: number, nowMs: number): LeaseView | undefined {
  const lease = store.lease(id);
  return lease === undefined ? undefined : leaseView(store, lease, keysMax, nowMs);
}

/** At most `limit` leases with ids above `afterId`, without their keys. */
export function listLeases(store: KvStore, limit: number, afterId: number, nowMs: number): { readonly leases: readonly LeaseView[]; readonly more: boolean } {
  const page = store.leases(limit + 1, afterId);
  return { leases: page.slice(0, limit).map((lease) => leaseView(store, lease, 0, nowMs)), more: page.length > limit };
}

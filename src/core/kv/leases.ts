/**
 * The leases part of the KV state machine (store.ts): the leases a `KvBackend` holds, their
 * caches, and how they are granted, kept alive, attached to keys, extended and found due.
 * KvStore owns the transaction, the clock and the revision, and deletes a lease's keys when
 * it goes (revoked or expired), through `drop`; every lease method is called inside its
 * transaction, and `mark` / `rollback` let it undo the caches when one throws.
 *
 * Leases (etcd's) expire by the store's clock, through the same path as sessions: a lease
 * expires at the first clock entry whose time reaches its `expiresAtMs`, so every replica
 * deletes the same keys at the same entry, each lease's keys in one revision. Only clock
 * entries expire anything. A grant or keep-alive sets the expiry to its time to live past
 * the later of the store's clock and the command's own time (the proposing leader's wall
 * clock when it took the request: the store's clock may lag it by a clock interval, or by a
 * pause, and a lease must live its full time to live from the keep-alive); a command's time
 * only ever makes a lease live longer. A clock entry marked `newLeader` first extends every
 * lease to live its full time to live from that clock (etcd's rule: the holder could reach
 * no leader during the failover), and so does the first clock entry ever (leases granted
 * while the clock was unset).
 */
import { assertIndex } from "../common/assert.js";
import { InvalidInputError } from "../common/errors.js";
import { toWellFormed } from "../common/utf8.js";
import type { KvBackend } from "./backend.js";
import { LEASE_LIMITS, type KvLease, type KvResult } from "./model.js";

/** A lease range deletes its keys this many at a time. */
const DROP_PAGE_KEYS = 1000;

/** The lease caches at the start of a transaction, to put back if it throws. */
export interface LeaseMark {
  readonly count: number;
  readonly expiryLowerBoundMs: number;
}

export class KvLeases {
  /** How many leases the backend holds (derived from it at open). */
  private countValue = 0;
  /** No lease expires before this clock: a lower bound, so most clock entries scan no lease. */
  private expiryLowerBoundMs = Number.POSITIVE_INFINITY;

  constructor(private readonly backend: KvBackend) {
    this.reload();
  }

  /** Derives the caches from the backend: at open, and after a snapshot replaced the state. */
  reload(): void {
    let count = 0;
    for (const _ of this.backend.allLeases()) count++;
    this.countValue = count;
    this.expiryLowerBoundMs = count === 0 ? Number.POSITIVE_INFINITY : 0;
  }

  mark(): LeaseMark {
    return { count: this.countValue, expiryLowerBoundMs: this.expiryLowerBoundMs };
  }

  rollback(mark: LeaseMark): void {
    this.countValue = mark.count;
    this.expiryLowerBoundMs = mark.expiryLowerBoundMs;
  }

  get count(): number {
    return this.countValue;
  }

  // ---- reads ----

  /** The lease `id`, if the store holds it. */
  get(id: number): KvLease | undefined {
    return Number.isSafeInteger(id) && id >= 1 ? this.backend.getLease(id) : undefined;
  }

  /** At most `limit` leases with ids above `afterId`, by increasing id. */
  page(limit: number, afterId: number): KvLease[] {
    assertIndex(limit, "leases limit");
    const page: KvLease[] = [];
    for (const lease of this.backend.allLeases()) {
      if (page.length >= limit) break;
      if (lease.id > afterId) page.push(lease);
    }
    return page;
  }

  /** At most `limit` keys attached to lease `id`, in key order, after `after` if given. */
  keys(id: number, limit: number, after?: string): string[] {
    assertIndex(limit, "lease keys limit");
    return this.backend.leaseKeys(id, limit, after === undefined ? undefined : toWellFormed(after));
  }

  /** The lease the key is attached to, if any. */
  ofKey(key: string): number | undefined {
    return this.backend.leaseOfKey(toWellFormed(key));
  }

  /** The first lease a write names that the store does not hold, if any. */
  missing(leases: readonly (number | undefined)[]): number | undefined {
    return leases.find((lease) => lease !== undefined && this.backend.getLease(lease) === undefined);
  }

  /** Every lease with all its keys: what a snapshot holds of them. */
  forSnapshot(): { readonly lease: KvLease; readonly keys: string[] }[] {
    return [...this.backend.allLeases()].map((lease) => ({ lease, keys: this.backend.leaseKeys(lease.id, Number.MAX_SAFE_INTEGER) }));
  }

  // ---- writes, inside the store's transaction ----

  /** Grants lease `id` (the index of the grant's entry), to live `ttlMs` from `startMs`. */
  grant(id: number, ttlMs: number, startMs: number): KvResult {
    if (this.countValue >= LEASE_LIMITS.leasesMax) return { op: "rejected", reason: `the store holds ${LEASE_LIMITS.leasesMax} leases, its limit: revoke some first` };
    const expiresAtMs = startMs + ttlMs;
    this.backend.putLease({ id, ttlMs, expiresAtMs });
    this.countValue++;
    this.expiryLowerBoundMs = Math.min(this.expiryLowerBoundMs, expiresAtMs);
    return { op: "lease-grant", id, ttlMs };
  }

  /** Makes lease `id` live at least its time to live from `startMs`. */
  keepAlive(id: number, startMs: number): KvResult {
    const lease = this.backend.getLease(id);
    if (lease === undefined) return { op: "lease-not-found", id };
    const expiresAtMs = startMs + lease.ttlMs;
    if (expiresAtMs > lease.expiresAtMs) this.backend.putLease({ ...lease, expiresAtMs });
    return { op: "lease-keepalive", id, ttlMs: lease.ttlMs };
  }

  holds(id: number): boolean {
    return this.backend.getLease(id) !== undefined;
  }

  /** Attaches `key` (a key being written) to `lease`, a lease the store holds, or to none. */
  attach(key: string, lease: number | undefined): void {
    const attached = this.backend.leaseOfKey(key);
    if (attached !== lease) {
      this.backend.detachKey(key);
      if (lease !== undefined) this.backend.attachKey(key, lease);
    }
  }

  /** Every lease now lives at least its time to live past `clockMs`. */
  extendAll(clockMs: number): void {
    for (const lease of [...this.backend.allLeases()]) {
      const expiresAtMs = clockMs + lease.ttlMs;
      if (expiresAtMs > lease.expiresAtMs) this.backend.putLease({ ...lease, expiresAtMs });
    }
    this.expiryLowerBoundMs = Math.min(this.expiryLowerBoundMs, clockMs);
  }

  /** The leases whose time came by `nowMs`, by increasing id, for the store to `drop`. */
  due(nowMs: number): number[] {
    if (nowMs < this.expiryLowerBoundMs) return [];
    const expiring: number[] = [];
    let nextExpiryMs = Number.POSITIVE_INFINITY;
    for (const lease of this.backend.allLeases()) {
      if (lease.expiresAtMs <= nowMs) expiring.push(lease.id);
      else nextExpiryMs = Math.min(nextExpiryMs, lease.expiresAtMs);
    }
    this.expiryLowerBoundMs = nextExpiryMs;
    return expiring;
  }

  /** Deletes lease `id`, first each of its keys through `remove` (which detaches it); returns how many keys went. */
  drop(id: number, remove: (key: string) => void): number {
    let deleted = 0;
    for (;;) {
      // Each remove detaches its key, so each page is the next keys left.
      const page = this.backend.leaseKeys(id, DROP_PAGE_KEYS);
      for (const key of page) remove(key);
      deleted += page.length;
      if (page.length < DROP_PAGE_KEYS) break;
    }
    this.backend.deleteLease(id);
    this.countValue--;
    return deleted;
  }
}

/**
 * One lease of a snapshot into `backend`, checking what only the state can tell: each of
 * its keys has a record and no other lease.
 */
export function restoreLease(backend: KvBackend, lease: KvLease, keys: readonly string[]): void {
  backend.putLease(lease);
  for (const key of keys) {
    if (backend.getRecord(key) === undefined) throw new InvalidInputError(`KV snapshot attaches ${JSON.stringify(key)}, which it does not hold, to lease ${lease.id}`);
    if (backend.leaseOfKey(key) !== undefined) throw new InvalidInputError(`KV snapshot attaches ${JSON.stringify(key)} to two leases`);
    backend.attachKey(key, lease.id);
  }
}

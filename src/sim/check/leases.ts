/**
 * Leases (etcd's semantics, docs/http-api.md "Leases"): a lease never expires while its
 * holder keeps it alive within its time to live, across leader changes; every replica
 * expires the same leases at the same entry, each lease's keys in one revision.
 *
 * Judged on what every node applied and what the clients were told, in virtual time:
 *
 * - Agreement: every node that applies a clock entry expires the same leases with it, with
 *   the same deletes at the same revisions (a replica deciding by its own clock would not).
 * - Kept alive: a lease expires only at a clock entry whose time is at least its time to
 *   live past the sending of its last acknowledged grant or keep-alive.
 * - Failover: a lease expires only at a clock entry whose time is at least its time to live
 *   past the moment the leader of that entry's term took over (a new leader must extend every
 *   lease first, or a holder that could reach no leader during the election loses it).
 * - One revision: a lease whose key was attached (acknowledged) deletes it when it expires.
 *
 * Times: a node's clock entry carries its wall clock, the simulation's epoch plus virtual
 * milliseconds (floored), so "virtual ms" below are wall ms less the epoch.
 */
import type { LeaseExpiry } from "../../core/kv/model.js";
import { InvariantViolation } from "./violation.js";

const CHECKER = "leases";

export class LeaseChecker {
  /** What the first node to apply each clock entry expired with it, by index. */
  private readonly expiriesAt = new Map<number, { readonly node: number; readonly expired: readonly LeaseExpiry[] }>();
  /** Per lease: its time to live, and the latest send (virtual µs) of an acknowledged grant or keep-alive. */
  private readonly renewals = new Map<number, { ttlMs: number; lastInvokeMicros: number }>();
  private readonly attachedKeys = new Map<number, string[]>();
  /** When (virtual µs) the leader of each term took over. */
  private readonly leaderSince = new Map<number, number>();
  expiries = 0;

  constructor(private readonly epochMs: number) {}

  leaderElected(term: number, atMicros: number): void {
    if (!this.leaderSince.has(term)) this.leaderSince.set(term, atMicros);
  }

  renewed(id: number, ttlMs: number, invokeMicros: number): void {
    const known = this.renewals.get(id);
    if (known === undefined) this.renewals.set(id, { ttlMs, lastInvokeMicros: invokeMicros });
    else known.lastInvokeMicros = Math.max(known.lastInvokeMicros, invokeMicros);
  }

  attached(id: number, key: string): void {
    const keys = this.attachedKeys.get(id) ?? [];
    keys.push(key);
    this.attachedKeys.set(id, keys);
  }

  /** Node `node` applied the clock entry at `index` (term `term`, time `timeMs`), expiring `expired`. */
  applied(node: number, index: number, term: number, timeMs: number, expired: readonly LeaseExpiry[]): void {
    const first = this.expiriesAt.get(index);
    if (first !== undefined) {
      if (JSON.stringify(first.expired) !== JSON.stringify(expired)) {
        throw new InvariantViolation(CHECKER, `node ${node} expired ${describe(expired)} at index ${index}, where node ${first.node} expired ${describe(first.expired)}: replicas must expire the same leases at the same entry`);
      }
      return;
    }
    this.expiriesAt.set(index, { node, expired });
    const entryMs = timeMs - this.epochMs;
    for (const expiry of expired) {
      this.expiries++;
      this.judge(expiry, index, term, entryMs);
    }
  }

  private judge(expiry: LeaseExpiry, index: number, term: number, entryMs: number): void {
    const renewal = this.renewals.get(expiry.id);
    if (renewal !== undefined) {
      const keptUntilMs = Math.floor(renewal.lastInvokeMicros / 1000) + renewal.ttlMs;
      if (entryMs < keptUntilMs) {
        throw new InvariantViolation(CHECKER, `lease ${expiry.id} expired at index ${index} by a clock of ${entryMs} ms, though a keep-alive sent at ${Math.floor(renewal.lastInvokeMicros / 1000)} ms was acknowledged: it lives its time to live of ${renewal.ttlMs} ms, until ${keptUntilMs} ms`);
      }
      const since = this.leaderSince.get(term);
      if (since !== undefined && entryMs < Math.floor(since / 1000) + renewal.ttlMs) {
        throw new InvariantViolation(CHECKER, `lease ${expiry.id} expired at index ${index} by a clock of ${entryMs} ms, less than its time to live of ${renewal.ttlMs} ms after the leader of term ${term} took over at ${Math.floor(since / 1000)} ms: a new leader must extend every lease by its time to live before expiring any`);
      }
    }
    const keys = this.attachedKeys.get(expiry.id) ?? [];
    if (expiry.deleted < keys.length) {
      throw new InvariantViolation(CHECKER, `lease ${expiry.id} expired at index ${index} deleting ${expiry.deleted} key(s), but ${keys.length} were attached to it (${keys.join(", ")})`);
    }
  }
}

function describe(expired: readonly LeaseExpiry[]): string {
  return expired.length === 0 ? "nothing" : expired.map((expiry) => `lease ${expiry.id} (${expiry.deleted} key(s) at revision ${expiry.revision})`).join(", ");
}

/**
 * The client sessions part of the KV state machine (store.ts): the sessions a `KvBackend`
 * holds, how many, and how they are opened, recorded, stamped, swept and evicted. KvStore
 * owns the transaction and the clock, and decides per command whether it is a duplicate
 * (see `KvStore.apply`); every session method is called inside its transaction, and
 * `mark` / `rollback` let it undo the count when one throws.
 *
 * Sessions (Raft dissertation 6.3) expire by the store's **clock**, the latest time of the
 * `clock` entries applied, which the leader proposes every few seconds with its wall clock
 * (only the leader's: one node with a clock hours fast must not expire every session by
 * taking one write): every replica has the same clock at the same index, so every replica
 * expires the same sessions at the same entry. When the clock is first set, the sessions
 * opened before are stamped with it, so they get a full lifetime. Whenever the clock crosses
 * a multiple of `SESSION_LIMITS.sweepIntervalMs`, sessions unused for `ttlMs` are dropped;
 * opening one beyond `sessionsMax` drops the least recently used 1%. (A leader's clock that
 * is off moves the expiry by as much; leaders change rarely.)
 */
import { assert } from "../common/assert.js";
import type { KvBackend } from "./backend.js";
import { SELF_ASSIGNED_SESSIONS_FROM, type KvResult, type KvSession, type SessionLimits } from "./model.js";

export class KvSessions {
  /** How many sessions the backend holds (derived from it at open). */
  private countValue = 0;

  constructor(
    private readonly backend: KvBackend,
    private readonly limits: SessionLimits,
  ) {
    this.reload();
  }

  /** Derives the count from the backend: at open, and after a snapshot replaced the state. */
  reload(): void {
    let count = 0;
    for (const _ of this.backend.allSessions()) count++;
    this.countValue = count;
  }

  /** The count at the start of a transaction, to put back with `rollback` if it throws. */
  mark(): number {
    return this.countValue;
  }

  rollback(count: number): void {
    this.countValue = count;
  }

  get count(): number {
    return this.countValue;
  }

  /** Opens a session whose id is the index of its registration (unique: indexes are never reused). */
  register(index: number, clockMs: number): KvResult {
    assert(index < SELF_ASSIGNED_SESSIONS_FROM, "log indexes stay below the self-assigned session ids");
    this.open({ clientId: index, sequence: 0, result: { op: "noop" }, lastActiveMs: clockMs });
    return { op: "session", clientId: index };
  }

  /**
   * Records a command its session applied: `next` holds its sequence, its result (of which
   * the session keeps what `forSession` says) and the clock; `previous` is the session it
   * had (undefined: a self-assigned id seen the first time).
   */
  record(previous: KvSession | undefined, next: KvSession): void {
    const kept = { ...next, result: forSession(next.result) };
    if (previous === undefined) this.open(kept);
    else this.backend.putSession(kept);
  }

  /** The store's clock moved from `beforeMs` to `nowMs`: sessions are stamped (the first time) or swept. */
  clockMoved(beforeMs: number, nowMs: number): void {
    if (beforeMs === 0) {
      // The first time: sessions opened while the clock was unset start their lifetime now.
      for (const session of [...this.backend.allSessions()]) this.backend.putSession({ ...session, lastActiveMs: nowMs });
      return;
    }
    const interval = this.limits.sweepIntervalMs;
    if (Math.floor(nowMs / interval) > Math.floor(beforeMs / interval)) this.sweep(nowMs);
  }

  /** Adds a session the store does not hold, making room first. */
  private open(session: KvSession): void {
    this.makeRoom();
    this.backend.putSession(session);
    this.countValue++;
  }

  private sweep(clockMs: number): void {
    const expired: number[] = [];
    for (const session of this.backend.allSessions()) {
      if ((session.lastActiveMs ?? 0) + this.limits.ttlMs <= clockMs) expired.push(session.clientId);
    }
    for (const clientId of expired) this.backend.deleteSession(clientId);
    this.countValue -= expired.length;
  }

  /**
   * At `sessionsMax`, drops the least recently used sessions (the lowest ids among equals):
   * 1% of them at once, so a stream of registrations at capacity costs one scan of the
   * sessions per hundred registrations rather than one each.
   */
  private makeRoom(): void {
    if (this.countValue < this.limits.sessionsMax) return;
    const evicted = Math.max(1, Math.floor(this.limits.sessionsMax / 100));
    const byAge = [...this.backend.allSessions()].map((session) => ({ clientId: session.clientId, lastActiveMs: session.lastActiveMs ?? 0 }));
    // allSessions is in client-id order and the sort is stable: equal ages keep it.
    byAge.sort((a, b) => a.lastActiveMs - b.lastActiveMs);
    for (const { clientId } of byAge.slice(0, evicted)) this.backend.deleteSession(clientId);
    this.countValue -= Math.min(evicted, byAge.length);
  }
}

/** What a session keeps of a result: a transaction's get results lose their records. */
function forSession(result: KvResult): KvResult {
  if (result.op !== "txn" || !result.results.some((operation) => operation.op === "get")) return result;
  return { ...result, results: result.results.map((operation) => (operation.op === "get" ? { op: "get-forgotten" } : operation)) };
}

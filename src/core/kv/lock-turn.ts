/**
 * The decision at the heart of the lock recipe (etcd's concurrency.Mutex): contenders for a
 * lock named NAME each write a key `NAME/LEASE_ID` under their lease; the key's creation
 * revision orders them, and the one with the lowest holds the lock. Given one read of every
 * contender (all at one revision), a contender either holds the lock, waits for the
 * contender created just before it to go, or has lost its place (its key is gone: its lease
 * expired while it waited).
 *
 * Pure, so the SDK (src/client/lock.ts) and the simulator's lock clients
 * (src/sim/lock-workload.ts) decide with the same code, and the simulator's lock checker
 * (src/sim/check/locks.ts) judges what production decides. The two mutants are the mistakes
 * lock recipes have shipped.
 */

/** A contender's key as one read saw it. */
export interface Contender {
  readonly key: string;
  readonly createRevision: number;
}

export type LockTurn =
  /** No contender was created before this one, and its key is there: it holds the lock as of the read. */
  | { readonly kind: "held" }
  /** Wait for this contender (the one created just before) to go, then read again. */
  | { readonly kind: "wait"; readonly predecessor: Contender }
  /** The contender's key is not there: its lease expired; it holds nothing and waits for nothing. */
  | { readonly kind: "gone" };

export const LOCK_MUTANTS = {
  "lock-skips-own-key": "a contender with no one before it takes the lock without checking that its own key is still there, so one whose lease expired while it waited holds a lock no one granted (etcd #9921, #11429: a lock answered after its lease had expired)",
  "lock-trusts-predecessor": "a waiter whose predecessor is gone takes the lock without reading the others again, so when that predecessor only gave up its place (its lease expired while it waited), the waiter holds the lock beside the real holder",
} as const;

export type LockMutant = keyof typeof LOCK_MUTANTS;

export function isLockMutant(name: string): name is LockMutant {
  return Object.hasOwn(LOCK_MUTANTS, name);
}

/** The contender key of a lock for a lease: `NAME/LEASE_ID`. */
export function contenderKey(name: string, leaseId: number): string {
  return `${name}/${leaseId}`;
}

/**
 * The turn of the contender `own` (key and creation revision, its fencing token) given every
 * contender one read saw under the lock's prefix. `waitedFor` is the predecessor the
 * contender waited on before this read, if any (only the mutant "lock-trusts-predecessor"
 * looks at it).
 */
export function lockTurn(contenders: Iterable<Contender>, own: Contender, options: { readonly waitedFor?: string | null; readonly mutant?: LockMutant | null } = {}): LockTurn {
  let predecessor: Contender | null = null;
  let present = false;
  let waitedForPresent = false;
  for (const contender of contenders) {
    if (contender.key === own.key) present = contender.createRevision === own.createRevision;
    if (contender.key === options.waitedFor) waitedForPresent = true;
    if (contender.createRevision >= own.createRevision) continue;
    if (predecessor === null || contender.createRevision > predecessor.createRevision) predecessor = contender;
  }
  if (options.mutant === "lock-trusts-predecessor" && options.waitedFor !== undefined && options.waitedFor !== null && !waitedForPresent) return { kind: "held" };
  if (!present && options.mutant !== "lock-skips-own-key") return { kind: "gone" };
  return predecessor === null ? { kind: "held" } : { kind: "wait", predecessor };
}

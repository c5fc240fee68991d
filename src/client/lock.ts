/**
 * A distributed lock on leases (etcd's recipe): each contender writes a key of its own under
 * the lock's name, attached to its lease; the key's creation revision orders the contenders,
 * and the one with the lowest holds the lock (the decision is core/kv/lock-turn.ts, which the
 * simulator's lock clients run too). A waiter watches only the contender just before
 * it (no thundering herd: a release wakes one waiter), and checks again when that key goes.
 * The holder's creation revision is its **fencing token**: it only grows from one holder to
 * the next, so a resource that remembers the highest token it saw can refuse a stale holder
 * (one whose lease lapsed while it was paused) — see docs/recipes.md.
 */
import type { Client } from "./client.js";
import type { KeyValue } from "./api.js";
import { LeaseNotFoundError, TimeoutError, type LeaseLostError } from "./errors.js";
import type { Lease } from "./lease.js";
import { contenderKey, lockTurn, type Contender } from "../core/kv/lock-turn.js";

export interface LockOptions {
  /** The time to live of the lease the lock is held under (when `lease` is not given); default 10 s. */
  readonly ttlSeconds?: number;
  /** Hold it under this lease (kept alive by its owner) instead of a new one. */
  readonly lease?: Lease;
  /** Stops waiting: the call rejects, and the contender's key is deleted. */
  readonly signal?: AbortSignal;
  /** The contender key's value (an election's candidate value); default empty. */
  readonly value?: string;
}

export const LOCK_TTL_SECONDS_DEFAULT = 10;
const PAGE_KEYS = 1000;
/**
 * How often a lock's own write (granting its lease, creating its key, releasing it) is sent
 * again after an attempt whose outcome is unknown (the leader died with it in flight,
 * outside a session). Each is safe to repeat; a few tries cover a failover or two, and a
 * cluster that loses more than that in a row is reported down.
 */
const UNKNOWN_OUTCOME_TRIES_MAX = 4;

/** A lock held: release it when done; `lost` says when its lease is gone (stop using the resource then). */
export class Lock {
  constructor(
    readonly name: string,
    /** The contender's key, `NAME/LEASE_ID`. */
    readonly key: string,
    /** The fencing token: the key's creation revision, above every earlier holder's. */
    readonly token: number,
    readonly lease: Lease,
    private readonly client: Client,
    private readonly ownsLease: boolean,
  ) {}

  /** Resolves (never rejects) once the lease the lock is held under is lost. */
  get lost(): Promise<LeaseLostError> {
    return this.lease.lost;
  }

  /** Releases the lock: deletes the key (the next waiter takes it), and revokes the lease the lock made for itself. */
  async release(): Promise<void> {
    await untilKnown(async (retried) => {
      // Only this acquisition's key: a retried delete whose first try did delete it must not
      // remove a later acquisition under the same lease, which reuses the key (etcd #22082).
      if (!this.ownsLease) return void (await deleteIfOwned(this.client, this.key, this.token));
      try {
        await this.lease.revoke();
      } catch (error) {
        // Gone on a second try: the first one, whose answer was lost, revoked it.
        if (!(retried && error instanceof LeaseNotFoundError)) throw error;
      }
    });
  }
}

/** See `Client.lock`. */
export async function acquireLock(client: Client, name: string, options: LockOptions = {}): Promise<Lock> {
  if (name.length === 0 || name.endsWith("/")) throw new Error("a lock's name is a non-empty key prefix without a trailing slash, like locks/db");
  // A grant whose outcome is unknown is granted again: a lease granted twice leaves one
  // without keys or keep-alives, which expires by itself.
  const lease = options.lease ?? (await untilKnown(() => client.lease(options.ttlSeconds ?? LOCK_TTL_SECONDS_DEFAULT)));
  const ownsLease = options.lease === undefined;
  const key = contenderKey(name, lease.id);
  let token: number | null = null;
  try {
    token = await createKey(client, key, lease.id, options.value ?? "");
    await waitForTurn(client, name, { key, createRevision: token }, options.signal);
    return new Lock(name, key, token, lease, client, ownsLease);
  } catch (error) {
    // Not holding it: leave the queue, so no one waits behind a contender that gave up.
    if (ownsLease) await lease.revoke().catch(() => undefined);
    else await (token === null ? client.delete(key) : deleteIfOwned(client, key, token)).catch(() => undefined);
    throw error;
  }
}

/**
 * Writes the contender's key if it is not there (a retried write finds it there), and
 * returns its creation revision.
 */
async function createKey(client: Client, key: string, leaseId: number, value: string): Promise<number> {
  const answer = await untilKnown(() => client.txn({
    compare: [{ key, target: "createRevision", op: "=", value: 0 }],
    success: [{ op: "put", key, value, lease: leaseId }],
    failure: [{ op: "get", key }],
  }));
  if (answer.succeeded) return answer.revision;
  const existing = answer.results[0];
  if (existing?.op === "get" && existing.kv !== null) return existing.kv.createRevision;
  // The key went between the compare and the get's answer (its lease expired): nothing to hold.
  throw new Error(`lock key ${key} vanished while it was being created: its lease expired`);
}

/** Until no contender was created before this one: each round reads them all and watches the one just before. */
async function waitForTurn(client: Client, name: string, own: Contender, signal: AbortSignal | undefined): Promise<void> {
  for (;;) {
    signal?.throwIfAborted();
    const { contenders, revision } = await readContenders(client, `${name}/`);
    const turn = lockTurn(contenders, own);
    if (turn.kind === "held") return;
    if (turn.kind === "gone") throw new Error(`lock key ${own.key} is gone: its lease expired while waiting`);
    await waitForDelete(client, turn.predecessor.key, revision + 1, signal);
  }
}

/** Every contender under `prefix`, as of one revision (the first page's), and that revision. */
/** Every key under `prefix`, read at one revision (page after page), and that revision. */
export async function readContenders(client: Client, prefix: string): Promise<{ contenders: KeyValue[]; revision: number }> {
  const contenders: KeyValue[] = [];
  let revision: number | undefined;
  let after: string | undefined;
  for (;;) {
    const page = await client.range(prefix, { limit: PAGE_KEYS, ...(after === undefined ? {} : { after }), ...(revision === undefined ? {} : { revision }) });
    revision ??= page.revision;
    contenders.push(...page.kvs);
    const last = page.kvs.at(-1);
    if (!page.more || last === undefined) return { contenders, revision };
    after = last.key;
  }
}

/** Deletes `key` only while it is the one created at `createRevision`. */
async function deleteIfOwned(client: Client, key: string, createRevision: number): Promise<void> {
  await client.txn({ compare: [{ key, target: "createRevision", op: "=", value: createRevision }], success: [{ op: "delete", key }], failure: [] });
}

async function waitForDelete(client: Client, key: string, fromRevision: number, signal: AbortSignal | undefined): Promise<void> {
  const watch = client.watch(key, { fromRevision, ...(signal === undefined ? {} : { signal }) });
  try {
    for await (const event of watch) if (event.type === "delete") return;
  } finally {
    watch.close();
  }
  signal?.throwIfAborted();
}

/**
 * Runs `write` again (at most UNKNOWN_OUTCOME_TRIES_MAX times in all) while it fails with an
 * unknown outcome: for writes that are the same done once or twice. A client without
 * sessions (the CLI's) cannot send a write again itself when it may have been applied.
 */
async function untilKnown<T>(write: (retried: boolean) => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await write(tries > 1);
    } catch (error) {
      if (!(error instanceof TimeoutError && error.outcomeUnknown) || tries >= UNKNOWN_OUTCOME_TRIES_MAX) throw error;
    }
  }
}

/** The current holder of `name` (its lowest contender), or null when no one holds it. */
export async function currentHolder(client: Client, name: string): Promise<KeyValue | null> {
  const { contenders } = await readContenders(client, `${name}/`);
  let holder: KeyValue | null = null;
  for (const kv of contenders) if (holder === null || kv.createRevision < holder.createRevision) holder = kv;
  return holder;
}

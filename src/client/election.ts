/**
 * Leader election on the lock (etcd's concurrency.Election): `campaign` waits until this
 * candidate holds the election's lock, with its value in its key; `observe` follows who
 * leads (the lowest contender's value); `resign` gives it up, and the next candidate in line
 * leads. A leader's `token` (its key's creation revision) only grows from leader to leader.
 */
import type { Client } from "./client.js";
import type { LeaseLostError } from "./errors.js";
import { acquireLock, currentHolder, readContenders, type Lock, type LockOptions } from "./lock.js";

/** Who leads an election: the leader's key, value (UTF-8) and token. */
export interface ElectionLeader {
  readonly key: string;
  readonly value: string;
  readonly token: number;
}

/** This candidate, leading: `proclaim` a new value, `resign`, and `lost` when its lease is gone. */
export class Leadership {
  constructor(
    readonly name: string,
    private readonly lock: Lock,
    private readonly client: Client,
  ) {}

  get key(): string {
    return this.lock.key;
  }

  /** Above every earlier leader's. */
  get token(): number {
    return this.lock.token;
  }

  get lost(): Promise<LeaseLostError> {
    return this.lock.lost;
  }

  /** Changes the value observers see, while still leading (a put under the leader's lease). */
  async proclaim(value: string): Promise<void> {
    await this.client.put(this.lock.key, value, { lease: this.lock.lease });
  }

  /** Steps down: the next candidate in line leads. */
  async resign(): Promise<void> {
    await this.lock.release();
  }
}

/** See `Client.campaign`. */
export async function campaign(client: Client, name: string, value: string, options: Omit<LockOptions, "value"> = {}): Promise<Leadership> {
  return new Leadership(name, await acquireLock(client, name, { ...options, value }), client);
}

/** The election's leader now, or null when no candidate leads. */
export async function electionLeader(client: Client, name: string): Promise<ElectionLeader | null> {
  const holder = await currentHolder(client, name);
  return holder === null ? null : { key: holder.key, value: new TextDecoder().decode(holder.value), token: holder.createRevision };
}

/**
 * Each change of leader (and of its value), from the current one on: null while no one
 * leads. Ends when `signal` fires or the client closes. The candidates are read once, at a
 * revision, and then followed change by change from the revision after it, so a leader that
 * led for less than a round trip is seen too, in order.
 */
export async function* observe(client: Client, name: string, signal?: AbortSignal): AsyncGenerator<ElectionLeader | null> {
  let last: string | undefined;
  const emit = (leader: ElectionLeader | null): boolean => {
    const text = leader === null ? "" : `${leader.key}\u0000${leader.value}`;
    if (text === last) return false;
    last = text;
    return true;
  };
  const { contenders, revision } = await readContenders(client, `${name}/`);
  const candidates = new Map<string, ElectionLeader>(contenders.map((kv) => [kv.key, { key: kv.key, value: new TextDecoder().decode(kv.value), token: kv.createRevision }]));
  const leader = (): ElectionLeader | null => {
    let first: ElectionLeader | null = null;
    for (const candidate of candidates.values()) if (first === null || candidate.token < first.token) first = candidate;
    return first;
  };
  const now = leader();
  if (emit(now)) yield now;
  const watch = client.watch(`${name}/`, { prefix: true, fromRevision: revision + 1, ...(signal === undefined ? {} : { signal }) });
  try {
    for await (const event of watch) {
      if (event.type === "delete") candidates.delete(event.key);
      else candidates.set(event.key, { key: event.key, value: new TextDecoder().decode(event.value), token: event.createRevision });
      const next = leader();
      if (emit(next)) yield next;
    }
  } finally {
    watch.close();
  }
}

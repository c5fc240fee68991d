/**
 * The lock checker: every acquisition a lock client made was one the store granted. The
 * recipe (core/kv/lock-turn.ts) makes the holder at a revision the contender with the lowest
 * creation revision among the keys under the lock's prefix; so a client that decided, from a
 * read at revision R, that it held the lock with token T (its key's creation revision) is
 * right only if, in what the cluster committed through R, its key was there with creation
 * revision T and no contender's was lower. Then at most one client holds at each revision,
 * and the tokens of acquisitions, in revision order, only grow: a resource that keeps the
 * highest token it saw refuses every holder but the latest (the fencing the recipe promises).
 *
 * The truth is what the nodes applied, each revision as the first node to commit it saw it
 * (the state-machine-safety checker holds every node to the same), as for the watch checker.
 */
import type { KvChange } from "../../core/kv/store.js";
import { InvariantViolation } from "./violation.js";

/** A client's conclusion that it holds the lock: from a read at `revision`, with `token`. */
export interface LockAcquisition {
  readonly client: number;
  readonly key: string;
  readonly token: number;
  readonly revision: number;
  readonly atMicros: number;
}

export class LockChecker {
  private readonly truth = new Map<number, readonly KvChange[]>();
  private readonly acquisitions: LockAcquisition[] = [];

  constructor(private readonly prefix: string) {}

  /** A node committed `changes` (one transaction's): the first to commit a revision says what it holds. */
  committed(changes: readonly KvChange[]): void {
    const byRevision = new Map<number, KvChange[]>();
    for (const change of changes) {
      if (this.truth.has(change.revision)) continue;
      const list = byRevision.get(change.revision);
      if (list === undefined) byRevision.set(change.revision, [change]);
      else list.push(change);
    }
    for (const [revision, list] of byRevision) this.truth.set(revision, list);
  }

  acquired(acquisition: LockAcquisition): void {
    this.acquisitions.push(acquisition);
  }

  get acquisitionCount(): number {
    return this.acquisitions.length;
  }

  /** Replays the committed contenders revision by revision and holds every acquisition to them; throws InvariantViolation("lock"). */
  check(): void {
    const byRevision = [...this.acquisitions].sort((a, b) => a.revision - b.revision || a.token - b.token);
    const contenders = new Map<string, number>();
    let replayed = 0;
    let previous: LockAcquisition | null = null;
    for (const acquisition of byRevision) {
      for (; replayed < acquisition.revision; replayed++) {
        const changes = this.truth.get(replayed + 1);
        if (changes === undefined) throw new InvariantViolation("lock", `no node reported committing revision ${replayed + 1}, which client ${acquisition.client} read at ${acquisition.revision}`);
        for (const change of changes) {
          if (!change.key.startsWith(this.prefix)) continue;
          if (change.record === null) contenders.delete(change.key);
          else contenders.set(change.key, change.record.createRevision);
        }
      }
      const who = `lock client ${acquisition.client} took the lock with token ${acquisition.token} (key ${acquisition.key}) from a read at revision ${acquisition.revision}`;
      const own = contenders.get(acquisition.key);
      if (own !== acquisition.token) {
        throw new InvariantViolation("lock", `${who}, but at that revision ${own === undefined ? "its key was gone (its lease had expired)" : `its key had been made again at revision ${own}`}; contenders then: ${describe(contenders)}`);
      }
      for (const [key, createRevision] of contenders) {
        if (createRevision < acquisition.token) throw new InvariantViolation("lock", `${who}, but ${key}, created at ${createRevision}, was before it and still there: two holders at once; contenders then: ${describe(contenders)}`);
      }
      if (previous !== null && previous.token >= acquisition.token && previous.key !== acquisition.key) {
        throw new InvariantViolation("lock", `${who}, after client ${previous.client} took it with token ${previous.token} at revision ${previous.revision}: a fenced resource would refuse the later holder`);
      }
      previous = acquisition;
    }
  }
}

function describe(contenders: ReadonlyMap<string, number>): string {
  const list = [...contenders].sort((a, b) => a[1] - b[1]).map(([key, revision]) => `${key}@${revision}`);
  return list.length === 0 ? "(none)" : list.join(", ");
}

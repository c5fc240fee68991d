/**
 * The store's history (MVCC): which changes it keeps and how it reads the past, over the
 * `KvBackend` primitives, so both backends keep exactly the same changes.
 *
 * Every write adds one change per key it touches (`KvChange`), at the write's revision. A
 * key's state at revision R is its latest change at or below R: the change's record, or
 * nothing after a delete (or before its first change). Revisions only need to grow; they
 * need not be consecutive (under sharding they will come from a timestamp oracle).
 *
 * Compaction at C (etcd's contract: revisions below C become unreadable, C itself stays
 * readable and watchable) keeps
 *
 *   - every change at or above C: a watch from C (or later) sees every change since, the
 *     deletes at C too (etcd shipped the bug of dropping those: etcd-io/etcd#18089);
 *   - below C, each key's latest change at or below C if that is a put: the key's state at
 *     C, so reads at C and later stay exact.
 *
 * Everything else below C is unreachable: a change that a later change at or below C
 * superseded, and a delete below C. A compaction only moves the store's compaction point
 * (a meta field, so it costs nothing when it applies); the unreachable changes are removed
 * afterwards a batch at a time (`purgeStep`), in each node's own time. Until they are, reads
 * and snapshots never see them: a read at R >= C finds a key's latest change at or below R,
 * which is never one a change at or below C superseded; a snapshot keeps only `isRetained`
 * changes. So what a replica answers and snapshots does not depend on how far it purged.
 *
 * Purging walks the history in (revision, key) order from where it last stopped up to C.
 * Each change's predecessor (the key's change just before it) is unreachable, since this
 * change, at or below C, supersedes it; a delete below C is unreachable itself. Once it is
 * done, the history holds exactly the changes compaction keeps. Processing a change twice
 * does nothing more (its predecessor is gone), so a purge interrupted anywhere resumes; and
 * when the compaction point moves up from C, the purge goes back to C's changes (`purgeFrom`),
 * whose deletes have become unreachable too.
 */
import { assertIndex } from "../common/assert.js";
import type { KvBackend, KvRangeQuery } from "./backend.js";
import type { HistoryPosition, KvChange, KvRecord } from "./model.js";

/** Keys read from the history's key list at a time by `rangeAt`. */
const RANGE_KEYS_PAGE = 256;

/** The key's record as of `revision`: its latest change at or below it, if that is a put. */
export function recordAt(backend: KvBackend, key: string, revision: number): KvRecord | undefined {
  return backend.changeAtOrBefore(key, revision)?.record ?? undefined;
}

/**
 * The records as of `revision` whose keys match `query`, in key order, at most
 * `query.limit`. Its cost grows with the keys under the prefix that have history, deleted
 * ones included, up to the first `limit` present at `revision`.
 */
export function rangeAt(backend: KvBackend, query: KvRangeQuery, revision: number): KvRecord[] {
  assertIndex(query.limit, "range limit");
  const records: KvRecord[] = [];
  let after = query.after;
  while (records.length < query.limit) {
    const keys = backend.historyKeys(after === undefined ? { prefix: query.prefix, limit: RANGE_KEYS_PAGE } : { prefix: query.prefix, limit: RANGE_KEYS_PAGE, after });
    for (const key of keys) {
      const record = recordAt(backend, key, revision);
      if (record !== undefined) records.push(record);
      if (records.length === query.limit) break;
    }
    if (keys.length < RANGE_KEYS_PAGE) break;
    after = keys[keys.length - 1];
  }
  return records;
}

/** Whether compaction at `compactRevision` keeps `change` (see the module comment). */
export function isRetained(backend: Pick<KvBackend, "changeAfter">, change: KvChange, compactRevision: number): boolean {
  if (change.revision >= compactRevision) return true;
  if (change.record === null) return false;
  const next = backend.changeAfter(change.key, change.revision);
  return next === undefined || next.revision > compactRevision;
}

/** Every change compaction at `compactRevision` keeps, in (revision, key) order, read a page at a time. */
export function* retainedChanges(backend: KvBackend, compactRevision: number, pageChanges = 1024): Generator<KvChange> {
  let position: HistoryPosition = { revision: 0, afterKey: "" };
  for (;;) {
    const page = backend.changesAfter(position, pageChanges);
    for (const change of page) if (isRetained(backend, change, compactRevision)) yield change;
    const last = page[page.length - 1];
    if (last === undefined || page.length < pageChanges) return;
    position = { revision: last.revision, afterKey: last.key };
  }
}

/**
 * Removes up to `changesMax` changes' worth of what compaction at `compactRevision` made
 * unreachable, starting after `from`; call inside a backend transaction. Returns where it
 * stopped, and whether everything below `compactRevision` is done.
 */
export function purgeStep(backend: KvBackend, from: HistoryPosition, compactRevision: number, changesMax: number): { readonly purged: HistoryPosition; readonly done: boolean } {
  const changes = backend.changesAfter(from, changesMax);
  let purged = from;
  for (const change of changes) {
    if (change.revision > compactRevision) return { purged, done: true };
    const previous = backend.changeAtOrBefore(change.key, change.revision - 1);
    if (previous !== undefined) backend.deleteChange(previous.key, previous.revision);
    if (change.record === null && change.revision < compactRevision) backend.deleteChange(change.key, change.revision);
    purged = { revision: change.revision, afterKey: change.key };
  }
  return { purged, done: changes.length < changesMax };
}

/**
 * Where purging resumes when the compaction point moves up from `previousCompactRevision`:
 * no later than the start of that revision, whose deletes it kept and may now remove.
 */
export function purgeFrom(purged: HistoryPosition, previousCompactRevision: number): HistoryPosition {
  return purged.revision >= previousCompactRevision ? { revision: previousCompactRevision, afterKey: "" } : purged;
}

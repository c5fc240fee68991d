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
 *
 * Born of a split. A range born of a split at revision B (`KvMeta.bornAt`) starts with its
 * keys' records and an empty history, its compaction point at B: writing each record's
 * change into it would copy every value the range takes. Its history is read as if each
 * record last written at or before B had its change there (`bornHistory`): a key with no
 * change at or below R (R >= B) reads, at R, as its record when that was last written at
 * or before B. The first write of such a key after the split puts that change in first
 * (`inheritedChange`, store-writes.ts), so the rule never meets a key rewritten since; and a
 * watch from B, the one place such a change is newer than the compaction point, is sent the
 * records last written at B too (`bornChangesAfter`). Purging needs nothing of this: a
 * change not in the history has nothing to purge.
 */
import { assertIndex } from "../common/assert.js";
import { compareUtf8 } from "../common/utf8.js";
import { spanHolds } from "../multi/ranges.js";
import type { KeySpan } from "./split.js";
import type { KvBackend, KvHistoryKeysQuery, KvRangeQuery } from "./backend.js";
import type { HistoryPosition, KvChange, KvRecord } from "./model.js";

/** Keys read from the history's key list at a time by `rangeAt`. */
const RANGE_KEYS_PAGE = 256;

/** What reading the past needs of a backend (or of `bornHistory`'s view of one). */
export type HistoryReader = Pick<KvBackend, "changeAtOrBefore" | "historyKeys">;

/** The key's record as of `revision`: its latest change at or below it, if that is a put. */
export function recordAt(backend: HistoryReader, key: string, revision: number): KvRecord | undefined {
  return backend.changeAtOrBefore(key, revision)?.record ?? undefined;
}

/**
 * The records as of `revision` whose keys match `query`, in key order, at most
 * `query.limit`. Its cost grows with the keys under the prefix that have history, deleted
 * ones included, up to the first `limit` present at `revision`.
 */
export function rangeAt(backend: HistoryReader, query: KvRangeQuery, revision: number): KvRecord[] {
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
 * stopped, and whether everything below `compactRevision` is done. With `span` (a range's),
 * a change at or below the compaction point of a key outside it goes too: a split gave the
 * key away, and no read or watch of this range asks for it (KvStore.split starts a walk
 * from the beginning for them).
 */
export function purgeStep(backend: KvBackend, from: HistoryPosition, compactRevision: number, changesMax: number, span?: KeySpan): { readonly purged: HistoryPosition; readonly done: boolean } {
  const changes = backend.changesAfter(from, changesMax);
  let purged = from;
  for (const change of changes) {
    if (change.revision > compactRevision) return { purged, done: true };
    if (span !== undefined && !spanHolds(span, change.key)) {
      backend.deleteChange(change.key, change.revision);
      purged = { revision: change.revision, afterKey: change.key };
      continue;
    }
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

/**
 * The history of a range born of a split (see "Born of a split" above), as reads see it:
 * the backend's, and for a key with no change at or below the revision asked, its record
 * when that was last written at or before it. Reads are never below the birth revision
 * (the compaction point is at least that).
 */
export function bornHistory(backend: KvBackend): HistoryReader {
  return {
    changeAtOrBefore(key: string, revision: number): KvChange | undefined {
      const change = backend.changeAtOrBefore(key, revision);
      if (change !== undefined) return change;
      const record = backend.getRecord(key);
      // Only a record last written at or before `bornAt` lacks its change: a later one put it.
      return record !== undefined && record.modRevision <= revision ? { key, revision: record.modRevision, record } : undefined;
    },
    historyKeys(query: KvHistoryKeysQuery): string[] {
      // Every record's key has a change, in the backend's history or read from the record.
      const changed = backend.historyKeys(query);
      const recorded = backend.rangeRecords(query).map((record) => record.key);
      const keys: string[] = [];
      let i = 0;
      let j = 0;
      while (keys.length < query.limit && (i < changed.length || j < recorded.length)) {
        const a = changed[i];
        const b = recorded[j];
        const order = a === undefined ? 1 : b === undefined ? -1 : compareUtf8(a, b);
        keys.push((order <= 0 ? a : b) as string);
        if (order <= 0) i++;
        if (order >= 0) j++;
      }
      return keys;
    },
  };
}

/**
 * The change to put in a born range's history before the first write of `key` since the
 * split, if it needs one: the key's record `current` when it was last written at or before
 * `bornAt` and its change is not there yet. Call before writing the key.
 */
export function inheritedChange(backend: KvBackend, bornAt: number, key: string, current: KvRecord | undefined): KvChange | undefined {
  if (current === undefined || current.modRevision > bornAt) return undefined;
  return backend.changeAtOrBefore(key, current.modRevision) === undefined ? { key, revision: current.modRevision, record: current } : undefined;
}

/** Records read per page while looking for those a watch from a born range's birth revision is sent. */
const BORN_PAGE_RECORDS = 1024;

/**
 * `changesAfter` in a range born at `bornAt`: from a position at `bornAt` (the compaction
 * point, the only one at or below it a read may ask for), the records last written at
 * `bornAt` whose change is not in the history come with the history's, in (revision, key)
 * order. Finding them reads every record: only a watch from the split's own revision does.
 */
export function bornChangesAfter(backend: KvBackend, bornAt: number, position: HistoryPosition, limit: number): KvChange[] {
  const changes = backend.changesAfter(position, limit);
  if (position.revision !== bornAt || limit === 0) return changes;
  const inherited: KvChange[] = [];
  let after = position.afterKey === "" ? undefined : position.afterKey;
  while (inherited.length < limit) {
    const page = backend.rangeRecords(after === undefined ? { prefix: "", limit: BORN_PAGE_RECORDS } : { prefix: "", limit: BORN_PAGE_RECORDS, after });
    for (const record of page) {
      if (record.modRevision === bornAt && backend.changeAtOrBefore(record.key, bornAt) === undefined) inherited.push({ key: record.key, revision: bornAt, record });
      if (inherited.length === limit) break;
    }
    if (page.length < BORN_PAGE_RECORDS) break;
    after = (page[page.length - 1] as KvRecord).key;
  }
  if (inherited.length === 0) return changes;
  const merged = [...inherited, ...changes];
  merged.sort((a, b) => a.revision - b.revision || compareUtf8(a.key, b.key));
  return merged.slice(0, limit);
}

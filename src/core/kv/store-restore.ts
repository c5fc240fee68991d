/**
 * The restore part of the KV state machine (store.ts): putting a snapshot's state into a
 * backend (`restoreSnapshot`, which checks each change of its history with `restoreChange`
 * and starts the history of a snapshot that has none with `startHistory`), and reading the
 * auth state a backend holds (`readAuthState`). The store calls these, then reloads its
 * caches from the backend.
 */
import { ByteReader } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { decodeAuthState, EMPTY_AUTH, type AuthState } from "./auth.js";
import type { KvBackend } from "./backend.js";
import { splitTxnState } from "./intents.js";
import { restoreLease } from "./leases.js";
import type { KvMeta, KvRecord } from "./model.js";
import { decodeSnapshot, type SnapshotChange } from "./snapshot.js";
import { rangeMeta, sameSpan, snapshotSpanOf, WHOLE_SPAN } from "./store-ranges.js";
import { DELETE_PAGE_RECORDS } from "./store-writes.js";
import { spanHolds } from "../multi/ranges.js";

/**
 * Replaces the backend's whole state with the snapshot's, in one backend transaction, and
 * returns the meta it wrote. Throws InvalidInputError if the snapshot is malformed, and then
 * nothing changed.
 */
export function restoreSnapshot(backend: KvBackend, bytes: Uint8Array): KvMeta {
  // A range's snapshot may hold another span than the store (a split this replica missed):
  // the span is set first, so the records land in it, and what the store held in either is cleared.
  const ranged = backend.setSpan !== undefined && backend.span !== undefined && !sameSpan(WHOLE_SPAN, backend.span);
  const span = ranged ? snapshotSpanOf(bytes) : undefined;
  return backend.transaction(() => {
    backend.clear();
    if (span !== undefined && backend.setSpan !== undefined && !sameSpan(span, backend.span)) {
      backend.setSpan(span);
      backend.clear();
    }
    const restored = decodeSnapshot(bytes, {
      record: (record) => backend.putRecord(record),
      session: (session) => backend.putSession(session),
      change: (change, compactRevision) => restoreChange(backend, change, compactRevision),
      lease: (lease, keys) => restoreLease(backend, lease, keys),
      auth: (state) => backend.writeAuth(state),
      txnState: (state) => {
        // The intents as one value, each outcome as an entry of its own (intents.ts).
        const split = splitTxnState(state);
        backend.writeTxnState(split.state);
        for (const [txn, record] of split.records) backend.writeTxnRecord(txn, record);
      },
    });
    // A snapshot from before there was history: the history starts at its revision.
    const compactRevision = restored.compactRevision ?? startHistory(backend, restored.revision);
    const range = restored.range;
    if (range !== undefined && !sameSpan(range, backend.span)) {
      if (backend.setSpan === undefined) throw new InvalidInputError("the KV snapshot is of a range, and this store cannot change its span");
      backend.setSpan({ start: range.start, end: range.end });
    }
    const full: KvMeta = {
      appliedIndex: restored.appliedIndex,
      revision: restored.revision,
      clockMs: restored.clockMs ?? 0,
      compactRevision,
      purged: { revision: compactRevision, afterKey: "" },
      ...rangeMeta(range?.epoch ?? 1, range?.nextRangeId ?? 0, range?.bornAt ?? 0, range?.spanSince ?? 0),
    };
    backend.writeMeta(full);
    return full;
  });
}

/**
 * One change of a snapshot's history into `backend`, checking what only the state can tell:
 * a "current" change has its key's record at its revision (and only those are "current"),
 * and a change at or below the compaction point is its key's first (compaction keeps one).
 */
function restoreChange(backend: KvBackend, change: SnapshotChange, compactRevision: number): void {
  // A range's history keeps the changes of keys a split gave away: they have no record here.
  const span = backend.span;
  const current = span === undefined || spanHolds(span, change.key) ? backend.getRecord(change.key) : undefined;
  const isCurrent = current !== undefined && current.modRevision === change.revision;
  if (change.kind === "current" && !isCurrent) throw new InvalidInputError(`KV snapshot's history names a current record of ${JSON.stringify(change.key)} at revision ${change.revision} that it does not hold`);
  if (change.kind === "put" && isCurrent) throw new InvalidInputError(`KV snapshot's history repeats the current record of ${JSON.stringify(change.key)}`);
  if (change.revision <= compactRevision && backend.changeAtOrBefore(change.key, change.revision - 1) !== undefined) {
    throw new InvalidInputError(`KV snapshot's history keeps a change of ${JSON.stringify(change.key)} that compaction at ${compactRevision} drops`);
  }
  backend.putChange({ key: change.key, revision: change.revision, record: change.kind === "current" ? (current as KvRecord) : change.record });
}

/**
 * Starts the history of a state that has none (restored from a snapshot written before
 * there was history) at `revision`: each record becomes the change that made it, and the
 * compaction point is `revision`, below which nothing is known. Returns it.
 */
export function startHistory(backend: KvBackend, revision: number): number {
  let after: string | undefined;
  for (;;) {
    const page = backend.rangeRecords(after === undefined ? { prefix: "", limit: DELETE_PAGE_RECORDS } : { prefix: "", limit: DELETE_PAGE_RECORDS, after });
    for (const record of page) backend.putChange({ key: record.key, revision: record.modRevision, record });
    if (page.length < DELETE_PAGE_RECORDS) return revision;
    after = page[page.length - 1]?.key;
  }
}

/** The users, roles and permissions the backend holds (none, auth off, if it holds none). */
export function readAuthState(backend: KvBackend): AuthState {
  const bytes = backend.readAuth();
  if (bytes === undefined) return EMPTY_AUTH;
  const reader = new ByteReader(bytes, "the stored auth state");
  const state = decodeAuthState(reader);
  reader.expectEnd();
  return state;
}

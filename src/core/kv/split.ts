/**
 * Splitting a range (docs/sharding.md, "Splits"): the `split` command cuts the store's span
 * at a key. The store keeps the keys before it; a new range, the child, is born with the
 * keys from it on. Its first state is handed to the node (`KvSplitHost.prepare`), which
 * makes it durable as the child's first snapshot before the split commits, so a crash at
 * any point leaves either no split or a child that recovers. That first state is one of two:
 *
 * - Where the node's ranges share one store of records (LMDB's environment: a backend with
 *   `splitOff`), the records stay where they are: the split hands them to the child's group
 *   in the same transaction, with the child's meta, and the first state only names them
 *   (`heldFirstState`: no records, the parent and the split's index). Nothing is copied, so
 *   a split costs a commit whatever the range holds. Such a snapshot cannot be sent to a
 *   peer or restored elsewhere (`Snapshot.held`): the child's replica takes a full snapshot
 *   as soon as an entry past its birth applied, and until then its parent keeps the split
 *   in its log (a store rebuilt from the log makes the child's records again by applying
 *   it), which the node sees to (runtime/server/range-births.ts).
 * - Otherwise (a store of its own, as the simulator's): a snapshot of the records the child
 *   takes (`childSnapshot`), made in the apply.
 *
 * Every replica applies the split at the same entry and makes the same first state, byte
 * for byte: the child starts the same on every node, at applied index RANGE_BIRTH_INDEX of
 * its own log (a replica that missed the split has an empty log there, and is sent a full
 * snapshot). The child's revision continues the parent's (so a key's revisions never go
 * back), and its history starts at the split: its compaction point is the split's revision,
 * and it is born there (`KvMeta.bornAt`): its history starts empty and reads each record as
 * its own change (history.ts, "Born of a split"), so the values are not copied twice;
 * older revisions of its keys are answered "compacted".
 * It holds no sessions (a client's session was the parent's) and no leases (a range whose
 * moving keys are attached to leases does not split: leases live in range 0).
 */
import { SynodError } from "../common/errors.js";
import { compareUtf8 } from "../common/utf8.js";
import type { KvBackend } from "./backend.js";
import type { KvRecord } from "./model.js";
import { encodeSnapshot, readSnapshotRange, type SnapshotRange } from "./snapshot.js";

/** The applied index a range is born at: its log's first snapshot. Above 0, so a replica with an empty log needs the snapshot. */
export const RANGE_BIRTH_INDEX = 10;

/** A span of the key space, `[start, end)` in UTF-8 byte order; `end` null: no end. */
export interface KeySpan {
  readonly start: string;
  readonly end: string | null;
}

/** What a store needs of its node to split: where the child's first state goes. */
export interface KvSplitHost {
  /** The id of the range that splits (a held first state names it). */
  readonly parent: number;
  /**
   * Inside the split's apply, before it commits: makes range `child`'s first snapshot
   * durable (its log starts with it): a snapshot of its records, or one that only names
   * them (`heldFirstStateOf` says which). Throws if it cannot; the apply then fails and changes
   * nothing. A child that already has a log (the split is applied again after a restart)
   * keeps it.
   */
  prepare(child: number, snapshot: Uint8Array): void;
  /** After the split committed: the child may start. */
  born(child: number): void;
}

/** Why `at` cannot split `span`, or null when it can: it must be strictly inside. */
export function splitRefusal(span: KeySpan, at: string): string | null {
  if (compareUtf8(at, span.start) > 0 && (span.end === null || compareUtf8(at, span.end) < 0)) return null;
  const end = span.end === null ? "the end of the key space" : JSON.stringify(span.end);
  return `the split key ${JSON.stringify(at)} is not inside the range [${JSON.stringify(span.start)}, ${end}): a range splits at a key after its start and before its end`;
}

/** Records read per page while gathering the child's. */
const PAGE_RECORDS = 1024;

/** The backend's records from `at` on (to the span's end), in key order. */
export function recordsFrom(backend: KvBackend, at: string): KvRecord[] {
  const records: KvRecord[] = [];
  const first = backend.getRecord(at);
  if (first !== undefined) records.push(first);
  let after = at;
  for (;;) {
    const page = backend.rangeRecords({ prefix: "", limit: PAGE_RECORDS, after });
    records.push(...page);
    if (page.length < PAGE_RECORDS) return records;
    after = (page[page.length - 1] as KvRecord).key;
  }
}

/**
 * The child's first state: `records` (its keys, in key order), at the parent's `revision`
 * and clock, its history starting there (born there: empty), its span and epoch in the
 * range section.
 */
export function childSnapshot(records: readonly KvRecord[], revision: number, clockMs: number, span: KeySpan, epoch: number): Uint8Array {
  return encodeSnapshot({ appliedIndex: RANGE_BIRTH_INDEX, revision, clockMs }, records, [], { compactRevision: revision, changes: [] }, [], undefined, {
    start: span.start,
    end: span.end,
    epoch,
    nextRangeId: 0,
    ...(revision === 0 ? {} : { bornAt: revision }),
  });
}

/** The most bytes a held first state takes (its span's bounds are keys, at most 1 KiB each, in UTF-8): a longer snapshot is not one. */
const HELD_FIRST_STATE_BYTES_MAX = 8 * 1024;

/**
 * A child's first state where its records stay in the node's shared store (see the module
 * comment): no records, its history born at the parent's `revision`, its span and epoch,
 * and the split it came of (range `parent`'s entry `index`).
 */
export function heldFirstState(revision: number, clockMs: number, span: KeySpan, epoch: number, parent: number, index: number): Uint8Array {
  return encodeSnapshot({ appliedIndex: RANGE_BIRTH_INDEX, revision, clockMs }, [], [], { compactRevision: revision, changes: [] }, [], undefined, {
    start: span.start,
    end: span.end,
    epoch,
    nextRangeId: 0,
    ...(revision === 0 ? {} : { bornAt: revision }),
    held: { parent, index },
  });
}

/** The split a held first state came of (null: `data` is a full snapshot, or no snapshot of a range). Cheap: a held one is a few hundred bytes. */
export function heldFirstStateOf(data: Uint8Array): NonNullable<SnapshotRange["held"]> | null {
  if (data.length > HELD_FIRST_STATE_BYTES_MAX) return null;
  try {
    return readSnapshotRange(data)?.held ?? null;
  } catch {
    return null;
  }
}

/**
 * A range's state machine was asked to take a held first state (`heldFirstState`) it does
 * not hold: its records are made by its parent's split, so it waits for the parent to
 * apply the split (again, from the parent's log), or gets a full snapshot from its leader.
 */
export class RangeStateHeldError extends SynodError {
  constructor(message: string) {
    super("range_state_held", message);
    this.name = "RangeStateHeldError";
  }
}

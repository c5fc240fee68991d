/**
 * The ranges part of the KV state machine (store.ts): a store that is one range of a sharded
 * node (docs/sharding.md) holds only the keys of its span, so it refuses commands outside it
 * (`outsideSpan`), hands out range ids (`rangeId`, group 0's store), splits (`splitRange`,
 * split.ts, at `middleKeyOf` when no key is given, and restores of a held first state: `holdsHeldState`), and keeps its epoch and next range id in the meta (`rangeMeta`) and its span in
 * its snapshot (`snapshotSpanOf`). A store that is not a range holds `WHOLE_SPAN`.
 *
 * These are functions of what they need (the backend, the split host, the store's counters);
 * the store keeps the fields and calls them.
 */
import { InvalidInputError } from "../common/errors.js";
import type { KvBackend } from "./backend.js";
import type { KvCommand } from "./command.js";
import type { KvMeta, KvRecord, KvResult } from "./model.js";
import { readSnapshotRange } from "./snapshot.js";
import { childSnapshot, heldFirstState, heldFirstStateOf, RANGE_BIRTH_INDEX, RangeStateHeldError, recordsFrom, splitRefusal, type KeySpan, type KvSplitHost } from "./split.js";
import { GROUP_ID_MAX } from "../multi/group.js";
import { spanHolds, spanHoldsPrefix } from "../multi/ranges.js";

/** Every key: the span of a store that is not a range of a sharded node. */
export const WHOLE_SPAN: KeySpan = Object.freeze({ start: "", end: null });

export function sameSpan(a: KeySpan, b: KeySpan | undefined): boolean {
  const other = b ?? WHOLE_SPAN;
  return a.start === other.start && a.end === other.end;
}

/** The meta's range fields, left out at their defaults (so a store that is not a range writes what it did before ranges). */
export function rangeMeta(epoch: number, nextRangeId: number, bornAt = 0, spanSince = 0): Pick<KvMeta, "rangeEpoch" | "nextRangeId" | "bornAt" | "spanSince"> {
  return { ...(epoch === 1 ? {} : { rangeEpoch: epoch }), ...(nextRangeId === 0 ? {} : { nextRangeId }), ...(bornAt === 0 ? {} : { bornAt }), ...(spanSince === 0 ? {} : { spanSince }) };
}

/** The span a range's snapshot holds (undefined: it is not a range's, or it does not decode, which the restore then reports). */
export function snapshotSpanOf(bytes: Uint8Array): KeySpan | undefined {
  try {
    const range = readSnapshotRange(bytes);
    return range === null ? undefined : { start: range.start, end: range.end };
  } catch (error) {
    if (error instanceof InvalidInputError) return undefined;
    throw error;
  }
}

/**
 * The first key (or prefix) of `command` outside the store's range (`span`, the backend's),
 * or null. A prefix delete must lie wholly inside: every key with the prefix sorts in the span.
 */
export function outsideSpan(span: KeySpan | undefined, command: KvCommand): string | null {
  if (span === undefined || (span.start === "" && span.end === null)) return null;
  switch (command.op) {
    case "put":
    case "delete":
    case "cas-value":
    case "cas-revision":
      return spanHolds(span, command.key) ? null : command.key;
    case "delete-prefix": {
      return spanHoldsPrefix(span, command.prefix) ? null : command.prefix;
    }
    case "txn":
    case "txn-prepare":
      return [...command.compares, ...command.success, ...command.failure].map((item) => item.key).find((key) => !spanHolds(span, key)) ?? null;
    default:
      return null;
  }
}

/** See the `range-id` command: the id it hands out, given the least the next may be (`nextRangeId`); the store's next is then one more. */
export function rangeId(atLeast: number, nextRangeId: number): KvResult {
  const id = Math.max(atLeast, nextRangeId);
  if (id >= GROUP_ID_MAX) return { op: "rejected", reason: "no range id is left to hand out" };
  return { op: "range-id", id };
}

/** The store as a split finds it: its revision and clock (the child's start), its range's epoch, and the split's index in its log. */
export interface SplitFrom {
  readonly revision: number;
  readonly clockMs: number;
  readonly epoch: number;
  readonly index: number;
}

/**
 * See the `split` command and split.ts: cuts the backend's span at `at` and hands the child
 * its keys, without copying them where the backend can (`splitOff`), and its first state to
 * the host (`host.prepare`). On "split", the store's epoch becomes the result's, its key
 * count the backend's, and it tells the host of the child once the apply commits.
 */
export function splitRange(backend: KvBackend, host: KvSplitHost | null, at: string, child: number, from: SplitFrom): KvResult {
  if (host === null || backend.setSpan === undefined) return { op: "rejected", reason: "this store does not split: only the ranges of a sharded node do" };
  const span = backend.span ?? WHOLE_SPAN;
  const refusal = splitRefusal(span, at);
  if (refusal !== null) return { op: "rejected", reason: refusal };
  const childSpan = { start: at, end: span.end };
  const leased = leasedKeyIn(backend, childSpan);
  if (leased !== undefined) return { op: "rejected", reason: `the key ${JSON.stringify(leased)} is attached to a lease: keys with leases do not move to another range` };
  const epoch = from.epoch + 1;
  if (backend.splitOff !== undefined) {
    backend.setSpan({ start: span.start, end: at });
    backend.splitOff(child, childSpan, {
      appliedIndex: RANGE_BIRTH_INDEX,
      revision: from.revision,
      clockMs: from.clockMs,
      compactRevision: from.revision,
      purged: { revision: from.revision, afterKey: "" },
      ...rangeMeta(epoch, 0, from.revision),
    });
    host.prepare(child, heldFirstState(from.revision, from.clockMs, childSpan, epoch, host.parent, from.index));
  } else {
    host.prepare(child, childSnapshot(recordsFrom(backend, at), from.revision, from.clockMs, childSpan, epoch));
    backend.setSpan({ start: span.start, end: at });
  }
  return { op: "split", child, at, epoch, revision: from.revision };
}

/** Keys read per page of a lease's keys while looking for one a split would move. */
const LEASE_KEYS_PAGE = 256;

/** The first key in `span` attached to a lease (by lease id, then key), if any: its cost is the keys attached to leases, not the range's. */
function leasedKeyIn(backend: KvBackend, span: KeySpan): string | undefined {
  for (const lease of backend.allLeases()) {
    let after: string | undefined;
    for (;;) {
      const keys = backend.leaseKeys(lease.id, LEASE_KEYS_PAGE, after);
      const inside = keys.find((key) => spanHolds(span, key));
      if (inside !== undefined) return inside;
      if (keys.length < LEASE_KEYS_PAGE) break;
      after = keys[keys.length - 1];
    }
  }
  return undefined;
}

/**
 * Whether `bytes` is a held first state (split.ts) that a store at `applied` over `span`
 * holds already (its parent's split made it there): restoring it is then nothing to do.
 * False for any other snapshot. Throws RangeStateHeldError for one it does not hold: only
 * the parent's split, or a full snapshot, can make it.
 */
export function holdsHeldState(bytes: Uint8Array, applied: number, span: KeySpan | undefined): boolean {
  const held = heldFirstStateOf(bytes);
  if (held === null) return false;
  const range = readSnapshotRange(bytes);
  if (applied >= RANGE_BIRTH_INDEX && range !== null && sameSpan(range, span)) return true;
  throw new RangeStateHeldError(
    `this range's first state is the records range ${held.parent}'s split (its entry ${held.index}) left in this node's store, which does not hold them (applied ${applied}), ` +
      `and range ${held.parent} here no longer has the split in its log to make them again (it caught up from a snapshot taken after it): ` +
      "empty this node's data directory and let it rejoin its cluster (the other replicas hold the range)",
  );
}

/** The key at the middle of `keys` keys (the first of the upper half), read over the keys alone where the backend can (`keyAt`); null with fewer than two. */
export function middleKeyOf(backend: KvBackend, keys: number): string | null {
  if (keys < 2) return null;
  const middle = Math.floor(keys / 2);
  if (backend.keyAt !== undefined) return backend.keyAt(middle) ?? null;
  let skip = middle;
  let after: string | undefined;
  for (;;) {
    const page = backend.rangeRecords({ prefix: "", limit: Math.min(skip + 1, 4096), ...(after === undefined ? {} : { after }) });
    if (page.length === 0) return null;
    if (skip < page.length) return (page[skip] as KvRecord).key;
    skip -= page.length;
    after = (page[page.length - 1] as KvRecord).key;
  }
}

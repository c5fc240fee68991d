/**
 * The ranges part of the KV state machine (store.ts): a store that is one range of a sharded
 * node (docs/sharding.md) holds only the keys of its span, so it refuses commands outside it
 * (`outsideSpan`), hands out range ids (`rangeId`, group 0's store), splits (`splitRange`,
 * split.ts), and keeps its epoch and next range id in the meta (`rangeMeta`) and its span in
 * its snapshot (`snapshotSpanOf`). A store that is not a range holds `WHOLE_SPAN`.
 *
 * These are functions of what they need (the backend, the split host, the store's counters);
 * the store keeps the fields and calls them.
 */
import { InvalidInputError } from "../common/errors.js";
import type { KvBackend } from "./backend.js";
import type { KvCommand } from "./command.js";
import type { KvMeta, KvResult } from "./model.js";
import { readSnapshotRange } from "./snapshot.js";
import { childSnapshot, recordsFrom, splitRefusal, type KeySpan, type KvSplitHost } from "./split.js";
import { GROUP_ID_MAX } from "../multi/group.js";
import { spanHolds, spanHoldsPrefix } from "../multi/ranges.js";

/** Every key: the span of a store that is not a range of a sharded node. */
export const WHOLE_SPAN: KeySpan = Object.freeze({ start: "", end: null });

export function sameSpan(a: KeySpan, b: KeySpan | undefined): boolean {
  const other = b ?? WHOLE_SPAN;
  return a.start === other.start && a.end === other.end;
}

/** The meta's range fields, left out at their defaults (so a store that is not a range writes what it did before ranges). */
export function rangeMeta(epoch: number, nextRangeId: number, bornAt = 0): Pick<KvMeta, "rangeEpoch" | "nextRangeId" | "bornAt"> {
  return { ...(epoch === 1 ? {} : { rangeEpoch: epoch }), ...(nextRangeId === 0 ? {} : { nextRangeId }), ...(bornAt === 0 ? {} : { bornAt }) };
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

/** The store as a split finds it: its revision and clock (the child's start) and its range's epoch. */
export interface SplitFrom {
  readonly revision: number;
  readonly clockMs: number;
  readonly epoch: number;
}

/**
 * See the `split` command and split.ts: hands the child its keys (`host.prepare`) and cuts the
 * backend's span at `at`. On "split", the store's epoch becomes the result's, its key count the
 * backend's, and it tells the host of the child once the apply commits.
 */
export function splitRange(backend: KvBackend, host: KvSplitHost | null, at: string, child: number, from: SplitFrom): KvResult {
  if (host === null || backend.setSpan === undefined) return { op: "rejected", reason: "this store does not split: only the ranges of a sharded node do" };
  const span = backend.span ?? WHOLE_SPAN;
  const refusal = splitRefusal(span, at);
  if (refusal !== null) return { op: "rejected", reason: refusal };
  const records = recordsFrom(backend, at);
  const leased = records.find((record) => backend.leaseOfKey(record.key) !== undefined);
  if (leased !== undefined) return { op: "rejected", reason: `the key ${JSON.stringify(leased.key)} is attached to a lease: keys with leases do not move to another range` };
  const epoch = from.epoch + 1;
  host.prepare(child, childSnapshot(records, from.revision, from.clockMs, { start: at, end: span.end }, epoch));
  backend.setSpan({ start: span.start, end: at });
  return { op: "split", child, at, epoch, revision: from.revision };
}

/**
 * Which of a node's ranges serves a request (docs/sharding.md). Each range is a consensus
 * group with its own state machine; a key's request goes to the range whose span holds the
 * key, a listing reads every range its prefix spans and merges them in key order, and what
 * would need one atomic step across ranges (a transaction, a prefix delete or a watch over
 * several) is refused with `cross_range` until cross-range transactions exist (issue 18).
 *
 * A node that is not sharded has one range, group 0, and every request goes to it.
 */
import { SynodError } from "../../core/common/errors.js";
import type { TxnCommand } from "../../core/kv/command.js";
import type { KvRecord, KvResult } from "../../core/kv/model.js";
import type { GroupId } from "../../core/multi/group.js";
import { RangeTable, type RangeDescriptor } from "../../core/multi/ranges.js";
import type { ClientRequest, KvOperation, ReadConsistency } from "./driver.js";
import type { LeaseView } from "./lease-view.js";
import type { WatchHub } from "./watch.js";

/** One range's data on this node: what the key routes need of its replica. */
export interface RangeService {
  /** A write in the node's session, or in the client's (`client`). */
  write(operation: KvOperation, client?: ClientRequest | null): Promise<KvResult>;
  /** Opens a client session in this range; resolves with its id. */
  register(): Promise<number>;
  /**
   * Resolves when the local state machine may serve a read at `consistency`; rejects with
   * NotMemberError on a node outside its configuration, whatever the consistency.
   */
  read(consistency: ReadConsistency): Promise<void>;
  get(key: string): KvRecord | undefined;
  range(prefix: string, limit: number, after: string | null): { readonly records: readonly KvRecord[]; readonly more: boolean };
  /** The key as it was at `revision`; throws CompactedError below the compaction point, FutureRevisionError past the store's revision. */
  getAt(key: string, revision: number): KvRecord | undefined;
  /** `range` as the store was at `revision`; throws as `getAt` does. */
  rangeAt(prefix: string, limit: number, after: string | null, revision: number): { readonly records: readonly KvRecord[]; readonly more: boolean };
  revision(): number;
  /** The keys this replica's range holds now (a split narrows it while a read waits). */
  span(): { readonly start: string; readonly end: string | null };
  /**
   * Resolves once none of `keys` is held by a transaction across ranges in flight (a read
   * of a held key waits for its outcome, so it never sees half of one); rejects with
   * TxnLockedError if one still is after the request timeout.
   */
  unlocked(keys: readonly string[]): Promise<void>;
  /** The lease `id` with up to `keysMax` of its keys, as this node's state holds it; undefined if it holds none. */
  lease(id: number, keysMax: number): LeaseView | undefined;
  /** At most `limit` leases with ids above `afterId`, by increasing id, without their keys. */
  leases(limit: number, afterId: number): { readonly leases: readonly LeaseView[]; readonly more: boolean };
  /** The watch streams on this range's keys (`GET /v1/watch`). */
  readonly watches: WatchHub;
}

/** A node's ranges: the table it routes by, and its replica of each. */
export interface RangeRouter {
  table(): RangeTable;
  /** This node's replica of range `id`; undefined when it hosts none. */
  replica(id: GroupId): RangeService | undefined;
  /** Whether this node's replica of range `id` holds the range's state (one added to the range waits for its leader's snapshot). */
  ready?(id: GroupId): boolean;
}

/** Whether this node has a replica of range `id` that holds its state: else a request for it goes to a node that does (range-forward.ts). */
export function servesHere(service: RangedService, id: GroupId): boolean {
  return service.ranges === undefined || (service.ranges.replica(id) !== undefined && service.ranges.ready?.(id) !== false);
}

/** What a listing reads of one range: this node's replica, or a page asked of a node that hosts it. */
export type ListingSource = Pick<RangeService, "read" | "span" | "range" | "revision">;

/** What a listing asks of a range on another node. */
export interface RemoteListing {
  readonly prefix: string;
  /** The most keys the listing may take from the range. */
  readonly limit: number;
  readonly after: string | null;
  /** The client's `authorization` header, passed on. */
  readonly credentials: string | undefined;
}

/** What routes by key: the node's first range (group 0), and its ranges when it has more than that one. */
export interface RangedService extends RangeService {
  /** Absent: the service itself is the only range, over every key. */
  readonly ranges?: RangeRouter;
  /**
   * A range this node does not host, read through a node that does (range-forward.ts);
   * absent where every node hosts every range.
   */
  remoteListing?(range: RangeDescriptor, listing: RemoteListing): ListingSource;
}

/** A request that needs one atomic step over keys of several ranges (a 400 until issue 18). */
export class CrossRangeError extends SynodError {
  constructor(what: string, readonly ranges: readonly RangeDescriptor[]) {
    super("cross_range", `${what} spans ranges ${ranges.map((r) => r.id).join(", ")}: on a sharded cluster it must stay within one range (cross-range transactions are not built yet; GET /v1/shards lists the ranges)`);
    this.name = "CrossRangeError";
  }
}

/**
 * A request routed to a range that does not own its key (the client's view of the ranges is
 * stale, or named the wrong range): a 409 that names the range that does, to retry there.
 */
export class RangeMismatchError extends SynodError {
  constructor(readonly key: string, readonly named: GroupId, readonly current: RangeDescriptor) {
    super("range_mismatch", `key ${JSON.stringify(key)} is in range ${current.id}, not range ${named}: refresh the ranges (GET /v1/shards) and send it there`);
    this.name = "RangeMismatchError";
  }
}

/** This node hosts no replica of the range (a 503 naming it: ask a node that does). */
export class RangeNotHostedError extends SynodError {
  constructor(readonly range: RangeDescriptor) {
    super("range_not_hosted", `this node hosts no replica of range ${range.id}; ask another node (GET /v1/shards lists the ranges)`);
    this.name = "RangeNotHostedError";
  }
}

/** A key held by a transaction across ranges for longer than a request may wait (a 503: retry). */
export class TxnLockedError extends SynodError {
  constructor(readonly key: string, readonly txn: string) {
    super("txn_locked", `key ${JSON.stringify(key)} is held by a transaction across ranges in flight (${txn}); retry shortly`);
    this.name = "TxnLockedError";
  }
}

/** This node hosts the range but has not received its state yet (it missed the split that made it): a 503. */
export class RangeNotReadyError extends SynodError {
  constructor(readonly range: GroupId) {
    super("range_not_ready", `this node has not received range ${range}'s state yet (it missed the split that made it); ask another node, or retry shortly`);
    this.name = "RangeNotReadyError";
  }
}

/**
 * A request named a range this node does not know. Ranges only split, and a split's new id
 * is above every id before it, so an id above the highest this node knows may be a range
 * born of a split it has not applied yet (`unheard`: a 503 to retry, elsewhere or shortly);
 * at or below it, there is no such range (a 404).
 */
export class RangeNotFoundError extends SynodError {
  constructor(
    readonly range: GroupId,
    readonly unheard: boolean,
  ) {
    super(
      unheard ? "range_not_ready" : "range_not_found",
      unheard
        ? `this node has not heard of range ${range} yet (it may not have applied the split that made it); ask another node, or retry shortly`
        : `there is no range ${range} (GET /v1/shards lists the ranges)`,
    );
    this.name = "RangeNotFoundError";
  }
}

/** The error for range `id`, which `table` lacks. */
export function rangeNotFound(table: RangeTable, id: GroupId): RangeNotFoundError {
  return new RangeNotFoundError(id, id > table.highestId);
}

/** The table `service` routes by (one range over every key when it is not sharded). */
export function rangeTableOf(service: RangedService): RangeTable {
  return service.ranges?.table() ?? SINGLE;
}

const SINGLE = RangeTable.single();

/** The replica of range `range` (throws RangeNotHostedError when this node has none). */
export function replicaOf(service: RangedService, range: RangeDescriptor): RangeService {
  if (service.ranges === undefined) return service;
  const replica = service.ranges.replica(range.id);
  if (replica === undefined) throw new RangeNotHostedError(range);
  return replica;
}

/**
 * The replica that serves `key`. `named` is the range the client says the key is in (the
 * `x-synod-range` header, with its session): a mismatch is refused, never served elsewhere.
 */
export function rangeOf(service: RangedService, key: string, named: GroupId | null = null): RangeService {
  const table = rangeTableOf(service);
  const range = table.forKey(key);
  if (named !== null && named !== range.id) throw mismatchOrUnheard(table, key, named, range);
  return replicaOf(service, range);
}

/**
 * A client named range `named` for `key`, which this node's table puts in `range`: a client
 * that knows a range this node has not heard of (born of a split it has not applied yet) is
 * told to retry (503), not sent back to a range its newer view has left behind.
 */
function mismatchOrUnheard(table: RangeTable, key: string, named: GroupId, range: RangeDescriptor): Error {
  return table.get(named) === undefined && named > table.highestId ? new RangeNotFoundError(named, true) : new RangeMismatchError(key, named, range);
}

/** The one replica every key of `keys` is in; CrossRangeError when they span several. */
export function oneRangeOf(service: RangedService, keys: readonly string[], what: string, named: GroupId | null = null): RangeService {
  const table = rangeTableOf(service);
  if (keys.length === 0) return named === null ? replicaOf(service, table.forKey("")) : replicaOf(service, table.get(named) ?? table.forKey(""));
  const ranges = [...new Set(keys.map((key) => table.forKey(key)))];
  if (ranges.length > 1) throw new CrossRangeError(what, ranges);
  return rangeOf(service, keys[0] as string, named);
}

/** The replica for a prefix that must stay in one range (a prefix delete, a watch). */
export function prefixRangeOf(service: RangedService, prefix: string, what: string, named: GroupId | null = null): RangeService {
  const table = rangeTableOf(service);
  const ranges = table.forPrefix(prefix);
  if (ranges.length > 1) throw new CrossRangeError(what, ranges);
  const range = ranges[0] ?? table.forKey(prefix);
  if (named !== null && named !== range.id) throw mismatchOrUnheard(table, prefix, named, range);
  return replicaOf(service, range);
}

/** Every key a transaction reads, compares or writes. */
export function txnKeys(txn: Pick<TxnCommand, "compares" | "success" | "failure">): string[] {
  return [...txn.compares.map((c) => c.key), ...txn.success.map((o) => o.key), ...txn.failure.map((o) => o.key)];
}

/** A listing's page: the keys, whether more follow, and the revision of each range read. */
export interface ListedPage {
  readonly records: readonly KvRecord[];
  readonly more: boolean;
  /** The ranges read, in key order, with each one's revision when it was read. */
  readonly ranges: readonly { readonly id: GroupId; readonly revision: number }[];
}

/**
 * Up to `limit` keys with `prefix` after `after`, in key order, from every range the prefix
 * spans: each range is read at `consistency` (linearizable per range, all waited for
 * before any is read), so the page is not one snapshot of the whole key space.
 */
export async function listAcross(service: RangedService, prefix: string, limit: number, after: string | null, consistency: ReadConsistency, credentials?: string): Promise<ListedPage> {
  // A range that split while the reads waited holds fewer keys than the table said: read
  // again by the new table (a listing must not leave out the keys that moved).
  let replicas: { readonly id: GroupId; readonly replica: ListingSource }[] = [];
  const sourceOf = (range: RangeDescriptor): ListingSource => {
    const hosted = service.ranges?.replica(range.id);
    if (service.remoteListing === undefined || (hosted !== undefined && servesHere(service, range.id))) return hosted ?? replicaOf(service, range);
    return service.remoteListing(range, { prefix, limit, after, credentials });
  };
  for (let attempt = 0; ; attempt++) {
    const table = rangeTableOf(service);
    const spanned = table.forPrefix(prefix, after);
    const ranges = spanned.length === 0 ? [table.forKey(prefix)] : spanned;
    replicas = ranges.map((range) => ({ id: range.id, replica: sourceOf(range) }));
    await Promise.all(replicas.map(({ replica }) => replica.read(consistency)));
    const moved = ranges.find((range, i) => {
      const now = (replicas[i] as { replica: ListingSource }).replica.span();
      return service.ranges !== undefined && (now.start !== range.start || now.end !== range.end);
    });
    if (moved === undefined) break;
    if (attempt >= 3) throw new RangeMismatchError(prefix, moved.id, moved);
  }
  const records: KvRecord[] = [];
  const ranges: { id: GroupId; revision: number }[] = [];
  let more = false;
  for (const { id, replica } of replicas) {
    const wanted = limit - records.length;
    // A full page asks the next range for one key only, to say whether more follow.
    const page = replica.range(prefix, Math.max(wanted, 1), after);
    if (wanted === 0) {
      if (page.records.length > 0) more = true;
      if (more) break;
      continue;
    }
    ranges.push({ id, revision: replica.revision() });
    records.push(...page.records);
    if (page.more) {
      more = true;
      break;
    }
  }
  return { records, more, ranges };
}

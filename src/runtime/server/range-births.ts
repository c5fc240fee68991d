/**
 * Ranges born of splits, on a node (docs/sharding.md, "Splits"). When a range's split
 * applies, its store hands over the child's first state (src/core/kv/split.ts); this module
 * makes it durable and has the node host the child:
 *
 * 1. `prepare`, inside the parent's apply, before it commits: the child's first snapshot is
 *    written to `<data>/births/range-<id>/`, atomically and durably (its own fsync: the
 *    write-ahead log may be in the middle of a sync of its own, which cannot be waited
 *    for inside an apply).
 * 2. `born`, once the split committed: the child's log starts with that snapshot (an
 *    installed snapshot in the shared log) and the node hosts it; the birth file goes once
 *    the log's copy is durable.
 *
 * A crash anywhere leaves something recovery finishes (`recoverRanges`): before the
 * parent's commit, the split applies again from the parent's log; after it, the child's
 * log or its birth file holds its first state. A range recovered from its log whose span
 * is still its parent's (the parent had not applied the split when the node stopped) waits
 * — `deferred` — until the parent applies it again, then starts from what its log holds.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import type { DurableState, Membership } from "../../core/engine/contract.js";
import { readSnapshotRange } from "../../core/kv/snapshot.js";
import { RANGE_BIRTH_INDEX, type KvSplitHost } from "../../core/kv/split.js";
import { isGroupId, type GroupId } from "../../core/multi/group.js";
import { unmadeChildState } from "../../core/multi/held-births.js";
export { HeldBirths, splitsWitnessed, unmadeChildState, withWitnessedCommit, type HeldSplit } from "../../core/multi/held-births.js";
import { removeLeftoverTempFiles, syncDirectory } from "../storage/atomic-file.js";
import { LogStore } from "../storage/log-store.js";
import type { SharedLog } from "../storage/shared-log.js";
import { readSnapshotFile, snapshotFileName, writeSnapshotFile } from "../storage/snapshot-file.js";

/** The term of a born range's first snapshot: its first leader's term is above it. */
export const RANGE_BIRTH_TERM = 1;

const BIRTH_REF = { index: RANGE_BIRTH_INDEX, term: RANGE_BIRTH_TERM, kind: "installed" } as const;
const BIRTH_DIR_PREFIX = "range-";

/**
 * The birth files in `dir` (`<data>/births`): each child's first state, by range. A range's
 * directory without its file (a crash while it was written, which is atomic, or removed) is
 * removed: its split had not committed, or its log holds the state already.
 */
export function readBirths(dir: string, log: (message: string) => void = () => undefined): Map<GroupId, DurableState<unknown>> {
  const births = new Map<GroupId, DurableState<unknown>>();
  if (!existsSync(dir)) return births;
  for (const name of readdirSync(dir)) {
    const id = Number(name.slice(BIRTH_DIR_PREFIX.length));
    if (!name.startsWith(BIRTH_DIR_PREFIX) || !isGroupId(id) || String(id) !== name.slice(BIRTH_DIR_PREFIX.length)) continue;
    const rangeDir = join(dir, name);
    removeLeftoverTempFiles(rangeDir);
    if (!existsSync(join(rangeDir, snapshotFileName(BIRTH_REF.index, BIRTH_REF.term)))) {
      log(`removing ${rangeDir}: it holds no birth file (a crash while one was written or removed)`);
      removeBirthFile(dir, id);
      continue;
    }
    births.set(id, { hardState: null, snapshot: readSnapshotFile(rangeDir, BIRTH_REF), entries: [] });
  }
  return births;
}

/** What `RangeBirths` needs of the node. */
export interface BirthHost {
  readonly sharedLog: SharedLog<unknown>;
  /** `<data>/births`. */
  readonly dir: string;
  /** Whether the node hosts range `id` now. */
  hosts(id: GroupId): boolean;
  /** Hosts range `id`, from its durable state, and starts it. Throws if it cannot (the node stops). */
  host(id: GroupId, logStore: LogStore<unknown>, durable: DurableState<unknown>): void;
  /** Hosts range `id` over `span` with no state (its hard state kept), to be sent its leader's snapshot, and starts it. */
  hostWithoutState(id: GroupId, span: { readonly start: string; readonly end: string | null }, durable: DurableState<unknown>): void;
}

export class RangeBirths {
  /** Children prepared in the apply under way: their first state, until they are born. */
  private readonly prepared = new Map<GroupId, DurableState<unknown>>();
  /** Ranges `hostFreed` could not host (RangeStateHeldError): they stay waiting, refused, until the node restarts. */
  private readonly refused = new Set<GroupId>();

  /**
   * `deferred`: ranges recovered from the log whose parent has not applied their split yet,
   * with what their log (or birth file) holds; `fromFiles`: those whose first state is only
   * in a birth file so far (their log gets it when they are born).
   */
  constructor(
    private readonly node: BirthHost,
    private readonly deferred: Map<GroupId, DurableState<unknown>>,
    private readonly fromFiles: ReadonlySet<GroupId>,
  ) {}

  /** The split host of a range whose replicas are `range.membership()`: children get the same. */
  hostFor(range: { readonly group: GroupId; membership(): Membership }): KvSplitHost {
    return new RangeSplitHost(this, range);
  }

  /** A child of a range whose replicas are `membership` is about to be born here, its first state `data` (see KvSplitHost.prepare). */
  prepare(child: GroupId, data: Uint8Array, membership: Membership): void {
    const waiting = this.deferred.get(child);
    // Its log holds its first state already (the split applies again after a restart).
    if (waiting !== undefined && waiting.snapshot !== null) return;
    if (this.node.hosts(child) || this.prepared.has(child)) throw new Error(`range ${child} is born twice: range ids are handed out once each`);
    const snapshot = { index: RANGE_BIRTH_INDEX, term: RANGE_BIRTH_TERM, data, membership };
    mkdirSync(this.dirOf(child), { recursive: true });
    syncDirectory(this.node.dir);
    syncDirectory(dirname(this.node.dir));
    writeSnapshotFile(this.dirOf(child), snapshot, "installed");
    // A range this node heard of before (it voted) keeps its hard state.
    this.prepared.set(child, { hardState: waiting?.hardState ?? null, snapshot, entries: [] });
    this.deferred.delete(child);
  }

  /** The child prepared (or recovered) is born: it opens and starts (see KvSplitHost.born). */
  born(child: GroupId): void {
    const recovered = this.deferred.get(child);
    const durable = recovered ?? this.prepared.get(child);
    if (durable === undefined) throw new Error(`range ${child} was born without being prepared`);
    this.deferred.delete(child);
    this.prepared.delete(child);
    const logStore = new LogStore(this.node.sharedLog, child);
    const needsLog = recovered === undefined || this.fromFiles.has(child);
    if (needsLog) logStore.save({ snapshot: durable.snapshot, entries: [], hardState: durable.hardState });
    this.node.host(child, logStore, durable);
    if (needsLog) {
      // The birth file goes once the log's copy of it is durable.
      logStore.syncAsync().then(
        () => this.forget(child),
        () => undefined,
      );
    }
  }

  /**
   * A range recovered from its log with no state yet (this node had heard of it from its
   * leader, not from its parent's split): taken from those waiting, to be hosted before its
   * state arrives. Undefined for any other range.
   */
  takeStateless(id: GroupId): DurableState<unknown> | undefined {
    const waiting = this.deferred.get(id);
    if (waiting === undefined || waiting.snapshot !== null) return undefined;
    this.deferred.delete(id);
    return waiting;
  }

  /** Range `id`'s replica was dropped here: its tombstone (SharedLog.drop) waits, as after a restart, for a replica made again (`takeStateless`). */
  entomb(id: GroupId, hardState: unknown): void {
    this.deferred.set(id, { hardState, snapshot: null, entries: [] });
  }

  /**
   * Hosts the ranges waiting for their parent's split whose span no range here holds any
   * more (`isFree`): their parent caught up from a snapshot taken after the split, so it
   * will not apply it again here; their own log holds their state.
   */
  hostFreed(isFree: (id: GroupId, span: { readonly start: string; readonly end: string | null }) => boolean): void {
    let failure: unknown = null;
    for (const [id, durable] of [...this.deferred]) {
      if (durable.snapshot === null) continue;
      const range = readSnapshotRange(durable.snapshot.data);
      if (range === null || !isFree(id, { start: range.start, end: range.end })) continue;
      // A held first state names records only the parent's split makes, and it will not
      // apply the split here again: with nothing past it in its log, the range waits for its
      // leader's snapshot with no state (held-births.ts); with entries past it (it may have
      // acknowledged them), it is hosted from its log, and where this node's store lost
      // those records it waits for that snapshot too, the engine keeping its log, taking no
      // other entry and standing for no election until then (group-replica.ts).
      const span = { start: range.start, end: range.end };
      const unmade = range.held === undefined ? null : unmadeChildState(durable);
      if (unmade === null && range.held !== undefined) {
        this.deferred.delete(id);
        this.node.hostWithoutState(id, span, durable);
        continue;
      }
      if (unmade === null) {
        if (this.refused.has(id)) continue;
        try {
          this.born(id);
        } catch (error) {
          // It stays waiting, and is not tried again.
          this.deferred.set(id, durable);
          this.refused.add(id);
          failure ??= error;
        }
        continue;
      }
      this.deferred.delete(id);
      this.node.hostWithoutState(id, span, unmade);
    }
    if (failure !== null) throw failure;
  }

  /** Whether range `id` waits for its parent to apply its split (its log holds its first state). */
  waitsForParent(id: GroupId): boolean {
    const waiting = this.deferred.get(id);
    return waiting !== undefined && waiting.snapshot !== null;
  }

  private forget(id: GroupId): void {
    removeBirthFile(this.node.dir, id);
  }

  private dirOf(id: GroupId): string {
    return birthDir(this.node.dir, id);
  }
}

function birthDir(dir: string, id: GroupId): string {
  return join(dir, `${BIRTH_DIR_PREFIX}${id}`);
}

/** Removes range `id`'s birth file from `dir` (`<data>/births`): its log holds its first state, durably. */
export function removeBirthFile(dir: string, id: GroupId): void {
  rmSync(birthDir(dir, id), { recursive: true, force: true });
  if (existsSync(dir)) syncDirectory(dir);
}

/**
 * A range's split host: its births go to the node's RangeBirths, with the range's
 * membership. A class, not closures made for every range the node holds (most never split).
 */
class RangeSplitHost implements KvSplitHost {
  constructor(
    private readonly births: RangeBirths,
    private readonly range: { readonly group: GroupId; membership(): Membership },
  ) {}

  get parent(): GroupId {
    return this.range.group;
  }

  prepare(child: GroupId, data: Uint8Array): void {
    this.births.prepare(child, data, this.range.membership());
  }

  born(child: GroupId): void {
    this.births.born(child);
  }
}

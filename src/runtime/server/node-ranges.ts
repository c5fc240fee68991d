/**
 * A node's ranges (docs/sharding.md): the table of the cluster's ranges and this node's
 * replica of each, recovered together from the node's shared write-ahead log, started and
 * stopped together, served to the HTTP API one `RangeService` per range, and described in
 * `/v1/status` and `GET /v1/shards`.
 *
 * Every member hosts every range unless the cluster keeps fewer replicas of each than it has
 * members (`--replicas`, range-placement.ts): then a node hosts some ranges, routes by the
 * descriptors its peers send of the others, and ranges are added here and dropped as they move.
 */
import { join } from "node:path";
import type { Logger } from "pino";
import { NotMemberError } from "../../core/common/errors.js";
import type { DurableState, NodeId } from "../../core/engine/contract.js";
import type { RangeDescriptor } from "../../core/multi/ranges.js";
import { members } from "../../core/engine/membership.js";
import { DEFAULT_GROUP, type GroupId } from "../../core/multi/group.js";
import { initialReplicas } from "../../core/multi/placement.js";
import { RangeTable, spanHolds } from "../../core/multi/ranges.js";
import { LmdbKvEnvironment } from "../storage/kv-lmdb-env.js";
import { spanBounds, type KvSpan } from "../storage/kv-lmdb-groups.js";
import { LogStore } from "../storage/log-store.js";
import type { RecoveredGroup as ReplayedGroup, SharedLog } from "../storage/shared-log.js";
import type { NodeConfig } from "./config.js";
import type { Consensus } from "./consensus.js";
import { DATA_LAYOUT, StartupError, type DataDirIdentity } from "./data-dir.js";
import type { DiskGuard } from "./disk-guard.js";
import { GroupReplica, recoverGroup, type RecoveredGroup } from "./group-replica.js";
import { findLease, listLeases } from "./lease-view.js";
import { HeldBirths, readBirths, removeBirthFile, splitsWitnessed, unmadeChildState, withWitnessedCommit } from "./range-births.js";
import { readSnapshotRange } from "../../core/kv/snapshot.js";
import { RangeMismatchError, RangeNotReadyError, TxnLockedError, type RangeService } from "./range-routing.js";
import { heldFirstStateOf, RANGE_BIRTH_INDEX } from "../../core/kv/split.js";
import { LIVENESS_GROUP } from "./node-liveness.js";
import { startInBatches } from "./start-order.js";

/** The ranges a node does not host, as its peers describe them (range-placement.ts). */
export interface OtherRanges {
  descriptors(): readonly RangeDescriptor[];
  /** What `GET /v1/shards` says of range `id` here: its leader, term and replicas. */
  view(id: GroupId): { readonly leader: NodeId | null; readonly [field: string]: unknown } | undefined;
}

/** Whether two ranges' spans share a key. */
function spansOverlap(a: Pick<RangeDescriptor, "start" | "end">, b: Pick<RangeDescriptor, "start" | "end">): boolean {
  return (a.end === null || b.start < a.end) && (b.end === null || a.start < b.end);
}

/** What `recoverRanges` found: the ranges to host now, and those that wait for their parent's split. */
export interface RecoveredRanges {
  readonly recovered: readonly RecoveredGroup[];
  readonly environment: LmdbKvEnvironment | null;
  /** Ranges born of splits that wait for their parent to apply the split again (range-births.ts). */
  readonly deferred: Map<GroupId, DurableState<unknown>>;
  /** Ranges whose first state is only in a birth file so far. */
  readonly fromFiles: ReadonlySet<GroupId>;
}

/**
 * Recovers every range of the node from the shared log's replay (group 0 first): the
 * ranges the cluster started with (`--shards`), and those splits made since, which the log
 * (or a birth file, range-births.ts) holds. A range born of a split whose span is still
 * its parent's is deferred. On failure, closes what it opened (not the shared log) and throws.
 */
export function recoverRanges(
  config: NodeConfig,
  consensus: Consensus,
  identity: DataDirIdentity,
  sharedLog: SharedLog<unknown>,
  replayed: ReadonlyMap<GroupId, ReplayedGroup<unknown>>,
  log: Logger,
): RecoveredRanges {
  const presplit = RangeTable.presplit(identity.shards ?? 1);
  const recovered: RecoveredGroup[] = [];
  const kvPath = join(config.dataDir, DATA_LAYOUT.kv);
  // One range: its own environment, as every node had before ranges (its directory opens as
  // before). Several: one environment for all, each range's records in its span.
  const storageLog = (message: string): void => log.warn({ component: "storage" }, message);
  const environment = presplit.size === 1 ? null : LmdbKvEnvironment.open({ path: kvPath, log: storageLog });
  const birthsDir = join(config.dataDir, DATA_LAYOUT.births);
  const births = environment === null ? new Map<GroupId, DurableState<unknown>>() : readBirths(birthsDir, storageLog);
  // A birth file whose range's log exists is a copy the log holds durably (it was replayed).
  for (const id of births.keys()) if ((replayed.get(id)?.durable.snapshot ?? null) !== null) removeBirthFile(birthsDir, id);
  const deferred = new Map<GroupId, DurableState<unknown>>();
  const fromFiles = new Set<GroupId>();
  const durableOf = (id: GroupId): DurableState<unknown> | undefined => replayed.get(id)?.durable;
  // A node that ran before (group 0's log holds something) and holds nothing of a range it
  // started with, in its log or its state machine, gave that range away (it moved: range-placement.ts).
  const ranBefore = replayed.has(DEFAULT_GROUP) && environment !== null;
  // A child whose first state is held proves its parent committed the split (held-births.ts).
  const firstStates = [...[...replayed.values()].map((group) => group.durable.snapshot), ...[...births.values()].map((birth) => birth.snapshot)];
  const witnessed = splitsWitnessed(firstStates.flatMap((snapshot) => (snapshot === null ? [] : (heldFirstStateOf(snapshot.data) ?? []))));
  try {
    const born = [...new Set([...replayed.keys(), ...births.keys()])].filter((id) => presplit.get(id) === undefined && id !== LIVENESS_GROUP);
    const ids = [...presplit.list().map((range) => range.id), ...born].sort((a, b) => a - b);
    for (const id of ids) {
      let durable = durableOf(id);
      const witness = witnessed.get(id);
      if (durable !== undefined && witness !== undefined) durable = withWitnessedCommit(durable, witness);
      const birth = births.get(id);
      if (birth !== undefined && (durable?.snapshot ?? null) === null) {
        // Its first state is in its birth file only; a hard state its log holds (a vote cast before) is kept.
        durable = { ...birth, hardState: durable?.hardState ?? null };
        fromFiles.add(id);
      }
      if (durable === undefined && ranBefore && presplit.get(id) !== undefined && environment?.spanOf(id) === undefined) continue;
      // Its replica here was dropped (the range moved) and left a tombstone, a hard state
      // alone (SharedLog.drop): hosted again only when its leader reaches this node (adoptRange).
      if (durable !== undefined && ranBefore && presplit.get(id) !== undefined && environment?.spanOf(id) === undefined && durable.snapshot === null && durable.entries.length === 0) {
        deferred.set(id, durable);
        continue;
      }
      // A cluster starting with ranges on some members only: this node hosts those first placed here.
      const firstReplicas = initialReplicas(id, config.members.map((member) => member.id), config.replicas ?? 0);
      if (durable === undefined && !ranBefore && !identity.joined && presplit.get(id) !== undefined && !firstReplicas.includes(config.id)) continue;
      // A node joining such a cluster hosts range 0 only, and each other range once it is added to it (the directory says where).
      if (durable === undefined && identity.joined && (config.replicas ?? 0) > 0 && id !== DEFAULT_GROUP && presplit.get(id) !== undefined && environment?.spanOf(id) === undefined) continue;
      durable ??= { hardState: null, snapshot: null, entries: [] };
      let span: KvSpan | undefined = environment?.spanOf(id) ?? presplit.get(id);
      // A held first state with entries past it, no range here to make its records again:
      // where the store lost them, it waits for its leader's snapshot, its log kept.
      let heldWithLog = false;
      if (span === undefined) {
        // Born of a split and not in the environment: its span is in its first snapshot.
        if (durable.snapshot === null) {
          // Heard of from its leader (this node voted), never given its state: hosted again
          // when its leader next reaches this node (node-range-admin.ts, adoptRange), or born of its split.
          deferred.set(id, durable);
          continue;
        }
        const range = readSnapshotRange(durable.snapshot.data);
        if (range === null) throw new StartupError(`range ${id}'s first snapshot does not say which keys it has; the data directory is damaged: empty it and let the node rejoin its cluster`);
        span = { start: range.start, end: range.end };
        // Its parent waits for a split of its own parent (ids grow, so it was looked at first): it may apply this one again too.
        if (environment?.registry.overlapping(id, spanBounds(span)) !== undefined || (range.held !== undefined && deferred.has(range.held.parent))) {
          deferred.set(id, durable);
          continue;
        }
        // A held first state names records the store does not hold (it was rebuilt), and no
        // range here will apply that split again (its parent is past it, or gone): with nothing
        // past it in its log, the range waits with no state for its leader's snapshot, as one
        // heard of from its leader does (held-births.ts); otherwise it waits for one with its
        // log kept (group-replica.ts, recoverStateMachine).
        const unmade = range.held === undefined ? null : unmadeChildState(durable);
        if (unmade !== null) {
          deferred.set(id, unmade);
          continue;
        }
        heldWithLog = range.held !== undefined;
      }
      const groupSpan = span;
      // A range hosted here with no state over the keys it holds now (range-placement.ts moved
      // it here after a split), that has not had its leader's snapshot yet: it still waits for one.
      const first = presplit.get(id);
      const awaitsSnapshot = durable.snapshot === null && durable.entries.length === 0 && first !== undefined && (first.start !== span.start || first.end !== span.end);
      recovered.push(
        recoverGroup(
          config,
          consensus,
          {
            group: id,
            logStore: new LogStore(sharedLog, id),
            durable,
            kvPath,
            ...(environment === null ? {} : { openStateMachine: () => ({ backend: environment.group(id, groupSpan), trusted: environment.trusted, reason: environment.reason }) }),
            // A node that joined never bootstraps: its configuration comes from the cluster.
            // Nor does a range born of a split (its first snapshot holds its configuration), or
            // one this node was not first placed on (it was added since: its log holds that).
            bootstrapPeers: identity.joined || first === undefined || !firstReplicas.includes(config.id) ? [] : firstReplicas,
            ...(awaitsSnapshot ? { awaitSnapshot: 1 } : heldWithLog ? { awaitSnapshot: RANGE_BIRTH_INDEX } : {}),
          },
          log,
        ),
      );
      if (fromFiles.has(id)) {
        // Its log starts with its first state now; the birth file goes once that is durable.
        recovered.at(-1)?.logStore.save({ snapshot: durable.snapshot, entries: [], hardState: durable.hardState });
        sharedLog.sync();
        removeBirthFile(birthsDir, id);
        fromFiles.delete(id);
      }
    }
  } catch (error) {
    for (const group of recovered) void group.backend.close();
    void environment?.close();
    throw error;
  }
  return { recovered, environment, deferred, fromFiles };
}

export class NodeRanges {
  private readonly replicas = new Map<GroupId, GroupReplica>();
  /** Leaderships that changed on any range here, and ranges that came or went: what the leader balancer's look depends on (range-duties.ts). */
  private changeCount = 0;
  /** Told of each range dropped (range-duties.ts forgets what it knew of it). */
  onRemoved: ((group: GroupId) => void) | null = null;
  /** The ranges here started from a held first state, and the splits their parents keep for them (range-births.ts). */
  readonly heldBirths = new HeldBirths();
  /** Each range's replica tells it of its leadership changes (one object for every range: GroupReplica's `watcher`). */
  readonly leadershipWatcher = { leadershipChanged: (): void => this.leadershipChanged() };
  /** The table as last built, and whether a split or a new range may have changed it since. */
  private tableBuilt: RangeTable;
  private tableStale = false;
  private readonly serviceCache = new Map<GroupId, RangeService>();
  private running = false;
  /** Ranges hosted with no state, waiting for their leader's snapshot (node-range-admin.ts, adoptRange). */
  private readonly adopted = new Set<GroupId>();
  /** The ranges this node does not host, as its peers describe them (range-placement.ts). */
  private others: OtherRanges | null = null;
  private stopStarting: () => void = () => undefined;

  /**
   * `shards`: the ranges the cluster started with; `environment`: the LMDB environment the
   * ranges share (null: one range, which owns its own).
   */
  constructor(
    private readonly shards: number,
    readonly environment: LmdbKvEnvironment | null = null,
    private readonly log: Logger | null = null,
  ) {
    this.tableBuilt = RangeTable.presplit(shards);
  }

  /** A range's leadership changed here: the balancer looks again. */
  leadershipChanged(): void {
    this.changeCount++;
  }

  /** Leaderships that changed and ranges that came or went, counted: unchanged, nothing to look at again. */
  get changes(): number {
    return this.changeCount;
  }

  /** How many ranges this node hosts. */
  get count(): number {
    return this.replicas.size;
  }

  /** Hosts `replica`; one added once the ranges started (born of a split) starts at once. */
  add(replica: GroupReplica): void {
    this.replicas.set(replica.group, replica);
    this.tableStale = true;
    this.changeCount++;
    if (this.running) replica.driver.start();
  }

  /** Hosts `replica`, added with no state: it serves nothing until its leader's snapshot arrives. */
  adopt(replica: GroupReplica): void {
    this.adopted.add(replica.group);
    this.add(replica);
  }

  /** Stops hosting range `group` (it moved away): routing no longer counts on it. Its storage is the caller's to drop. */
  remove(group: GroupId): GroupReplica | undefined {
    const replica = this.replicas.get(group);
    this.replicas.delete(group);
    this.changeCount++;
    this.serviceCache.delete(group);
    this.adopted.delete(group);
    this.heldBirths.release(group);
    this.onRemoved?.(group);
    this.tableStale = true;
    return replica;
  }

  /** Where the descriptors of the ranges this node does not host come from. */
  describeOthers(others: OtherRanges): void {
    this.others = others;
    this.tableStale = true;
  }

  get(group: GroupId): GroupReplica | undefined {
    return this.replicas.get(group);
  }

  /** How many ranges the cluster started with (`--shards`): ids 0 to this less one. */
  get startedWith(): number {
    return this.shards;
  }

  /** Whether the cluster is sharded: started with more than one range (it splits only then). */
  get sharded(): boolean {
    return this.shards > 1;
  }

  /** A range split or was added: the table is built again when next asked for, and the balancer looks again. */
  changed(): void {
    this.tableStale = true;
    this.changeCount++;
  }

  /**
   * Whether this node's replica of range `id` holds the range's state: a range born of a
   * split is hosted before its state arrives when this node missed the split (node-range-admin.ts,
   * adoptRange), and serves no read until it does.
   */
  holdsState(replica: GroupReplica): boolean {
    if (this.adopted.has(replica.group)) {
      if (replica.kv.applied === 0) return false;
      this.adopted.delete(replica.group);
      return true;
    }
    return replica.group < this.shards || replica.kv.applied >= RANGE_BIRTH_INDEX;
  }

  /**
   * The ranges as this node's replicas hold them (each one's span and epoch), and those it
   * does not host as its peers describe them. They cover the key space once; should they not
   * (a replica that missed a split and has not caught up, or a peer's view a moment old), the
   * last whole table stays, and says so in the log.
   */
  get table(): RangeTable {
    if (!this.tableStale) return this.tableBuilt;
    this.tableStale = false;
    if (!this.sharded) return this.tableBuilt;
    const descriptors: RangeDescriptor[] = this.all().map((replica) => {
      const span = replica.kv.backend.span ?? { start: "", end: null };
      return { id: replica.group, start: span.start, end: span.end, epoch: replica.kv.rangeEpoch };
    });
    // Another node's view of a range overlapping one hosted here is older or newer than this
    // node's (a split on the way): the hosted one routes, and refuses what it no longer holds.
    for (const other of this.others?.descriptors() ?? []) {
      if (this.replicas.has(other.id) || descriptors.some((mine) => spansOverlap(mine, other))) continue;
      descriptors.push(other);
    }
    try {
      this.tableBuilt = new RangeTable(descriptors);
    } catch (error) {
      // Where ranges are on some members only, a node knows only its own until its peers describe theirs (a second).
      if (this.others === null) this.log?.error({ err: error, ranges: descriptors }, "this node's ranges do not cover the key space once; routing by the last table that did");
      else this.log?.debug({ err: error, ranges: descriptors }, "the ranges known here do not cover the key space once yet; routing by the last table that did");
    }
    return this.tableBuilt;
  }

  all(): readonly GroupReplica[] {
    return [...this.replicas.values()];
  }

  start(): void {
    this.running = true;
    // A copy: a range born while the others start (a split applied from the log) starts as it is added.
    // Thousands start a batch at a time, in range id order (start-order.ts).
    this.stopStarting = startInBatches([...this.replicas.values()]);
  }

  /** Stops every replica's driver and watches (answering what waits); storage stays open. */
  async stop(): Promise<void> {
    this.running = false;
    this.stopStarting();
    await Promise.all(this.all().map((replica) => replica.stop()));
  }

  async closeStorage(): Promise<void> {
    for (const replica of this.replicas.values()) await replica.closeStorage();
    await this.environment?.close();
  }

  /** The most committed entries any range has not applied yet. */
  applyLag(): number {
    return Math.max(0, ...this.all().map((replica) => replica.engine.status().commitIndex - replica.kv.applied));
  }

  /** The ranges other than group 0 with no leader known here. */
  leaderless(): GroupId[] {
    return this.all()
      .filter((replica) => replica.group !== DEFAULT_GROUP && replica.engine.status().leader === null)
      .map((replica) => replica.group);
  }

  /** Each range's descriptor and this node's view of its group: role, term, leader, indexes, revision, keys. */
  views(leaderHttp: (leader: number) => string | null): object[] {
    return this.table.list().map((range) => {
      const replica = this.replicas.get(range.id);
      if (replica === undefined) {
        const other = this.others?.view(range.id);
        return { ...range, hosted: false, ...other, leaderHttp: other?.leader === null || other === undefined ? null : leaderHttp(other.leader) };
      }
      const status = replica.engine.status();
      return {
        ...range,
        role: status.role,
        // Idle and quiet: no ticks, no heartbeats, until a request or a suspected leader wakes it.
        quiet: replica.engine.quiescent?.() ?? false,
        term: status.term,
        leader: status.leader,
        replicas: members(replica.membership()).sort((a, b) => a - b),
        voters: [...replica.membership().voters].sort((a, b) => a - b),
        learners: [...replica.membership().learners].sort((a, b) => a - b),
        leaderHttp: status.leader === null ? null : leaderHttp(status.leader),
        commitIndex: status.commitIndex,
        appliedIndex: replica.kv.applied,
        // The index its span was set at (its last split's; 0: never split): a replica added to it waits for a snapshot from there on.
        spanSince: replica.kv.spanSince,
        revision: replica.kv.currentRevision,
        keys: replica.kv.keys,
        // Transactions across ranges prepared here and not resolved yet.
        intents: replica.kv.intents.inFlight,
      };
    });
  }

  /** What the HTTP API serves of range `id`; writes that add data are refused while the disk is short (`diskGuard`). */
  service(id: GroupId, diskGuard: () => DiskGuard | null): RangeService | undefined {
    const cached = this.serviceCache.get(id);
    if (cached !== undefined) return cached;
    const replica = this.replicas.get(id);
    if (replica === undefined) return undefined;
    const service = rangeService(replica, diskGuard, () => this.holdsState(replica));
    this.serviceCache.set(id, service);
    return service;
  }
}

function rangeService(replica: GroupReplica, diskGuard: () => DiskGuard | null, holdsState: () => boolean): RangeService {
  return {
    write: (operation, client) => {
      const refused = diskGuard()?.refuse(operation) ?? null;
      return refused === null ? replica.driver.write(operation, client ?? null) : Promise.reject(refused);
    },
    register: () => replica.driver.register(),
    read: (consistency) => {
      if (!replica.isMember()) return Promise.reject(new NotMemberError(replica.engine.status().leader));
      if (!holdsState()) return Promise.reject(new RangeNotReadyError(replica.group));
      return replica.driver.read(consistency);
    },
    get: (key) => {
      // A split that applied while the read waited moved the key away: send it again.
      const span = replica.kv.backend.span;
      if (span !== undefined && !spanHolds(span, key)) throw new RangeMismatchError(key, replica.group, { id: replica.group, start: span.start, end: span.end, epoch: replica.kv.rangeEpoch });
      return replica.kv.get(key);
    },
    span: () => replica.kv.backend.span ?? { start: "", end: null },
    range: (prefix, limit, after) => {
      const records = replica.kv.range(prefix, limit + 1, after === null ? {} : { after });
      return { records: records.slice(0, limit), more: records.length > limit };
    },
    getAt: (key, revision) => {
      const span = replica.kv.backend.span;
      if (span !== undefined && !spanHolds(span, key)) throw new RangeMismatchError(key, replica.group, { id: replica.group, start: span.start, end: span.end, epoch: replica.kv.rangeEpoch });
      return replica.kv.getAt(key, revision);
    },
    rangeAt: (prefix, limit, after, revision) => {
      const records = replica.kv.rangeAt(prefix, limit + 1, after === null ? { revision } : { after, revision });
      return { records: records.slice(0, limit), more: records.length > limit };
    },
    revision: () => replica.kv.currentRevision,
    unlocked: async (keys) => {
      const deadline = Date.now() + replica.config.requestTimeoutMs;
      for (;;) {
        const held = replica.kv.intents.lockedAmong(keys);
        if (held === undefined) return;
        if (Date.now() > deadline) throw new TxnLockedError(held.key, held.txn);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    lease: (id, keysMax) => findLease(replica.kv, id, keysMax, Date.now()),
    leases: (limit, afterId) => listLeases(replica.kv, limit, afterId, Date.now()),
    watches: replica.watches,
  };
}

/**
 * One consensus group's replica in a node: its log (one group of the node's shared
 * write-ahead log), its state machine (an LMDB database), its engine, the driver that runs
 * them, and the watch streams on its keys. The node opens one per group it hosts, behind
 * one peer transport and one HTTP server; today that is group 0 (docs/sharding.md).
 *
 * Recovery at open: the state machine opens at the index it last applied, which it records
 * in the same transaction as the data, so only the entries after that are applied again.
 * A state machine that cannot be trusted (the machine crashed while it was open) or is
 * behind the latest snapshot is rebuilt from the snapshot, and the engine delivers the
 * rest of the log.
 */
import { LoadSplitter } from "../../core/multi/load-split.js";
import { randomInt } from "node:crypto";
import type { Logger } from "pino";
import { NotMemberError } from "../../core/common/errors.js";
import type { DurableState, Engine, EngineFactory, Membership, NodeId } from "../../core/engine/contract.js";
import { isMember } from "../../core/engine/membership.js";
import type { KvChange } from "../../core/kv/model.js";
import { heldFirstStateOf, RANGE_BIRTH_INDEX, type KeySpan } from "../../core/kv/split.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM, type KvStoreObserver } from "../../core/kv/store.js";
import type { GroupId } from "../../core/multi/group.js";
import type { Network } from "../../core/replica/contract.js";
import { LmdbKvBackend, type LmdbKvOpened } from "../storage/kv-lmdb.js";
import type { LogStore } from "../storage/log-store.js";
import type { NodeConfig } from "./config.js";
import type { Consensus } from "./consensus.js";
import { StartupError } from "./data-dir.js";
import { Driver, type DriverLogger, type DriverOptions } from "./driver.js";
import type { NodeMetrics } from "./metrics.js";
import type { HeldBirths, HeldSplit } from "./range-births.js";
import { WatchHub } from "./watch.js";

/** Where a group's storage is and how it starts. */
export interface GroupStorage {
  readonly group: GroupId;
  /** The group's view of the node's shared log, and what was recovered from it. */
  readonly logStore: LogStore<unknown>;
  readonly durable: DurableState<unknown>;
  /** The LMDB directory of the group's state machine (shared by the ranges of a sharded node). */
  readonly kvPath: string;
  /**
   * Opens the group's state machine: its own LMDB environment at `kvPath` (absent), or the
   * group's part of the node's shared one (a sharded node: kv-lmdb-env.ts).
   */
  readonly openStateMachine?: (log: (message: string) => void) => LmdbKvOpened;
  /** The members a group with no configuration in its log starts with ([] for a node that joined). */
  readonly bootstrapPeers: readonly NodeId[];
  /**
   * A range hosted with no state over the keys it holds now: its log's first entries may
   * predate a split, so it takes no entry until it installs its leader's snapshot at this
   * index or later (EngineOptions.awaitSnapshot). Absent: its log builds its state.
   */
  readonly awaitSnapshot?: number;
}

/** A group recovered from disk, with its engine made: what a replica starts from. */
export interface RecoveredGroup {
  readonly group: GroupId;
  readonly logStore: LogStore<unknown>;
  readonly backend: LmdbKvBackend;
  readonly kv: KvStore;
  readonly engine: Engine<unknown, unknown>;
  readonly factory: EngineFactory<unknown, unknown>;
  /** The split its log's first state names (a held first state: src/core/kv/split.ts); null when that is a full snapshot, or there is none. */
  readonly held: HeldSplit | null;
}

/** What the node gives each of its replicas. */
export interface GroupHooks {
  /** Sends the group's messages to a peer (the node's router tags them with the group). */
  readonly network: Network<unknown>;
  readonly metrics: NodeMetrics;
  readonly onMembership?: DriverOptions["onMembership"];
  readonly onFatal: DriverOptions["onFatal"];
  readonly watcher?: DriverOptions["watcher"];
  /** The state machine's span may have changed (a split, a snapshot restored): the node's table is built again. */
  readonly spanChanged?: () => void;
  /** On a node whose ranges split: the ranges started from a held first state, and the splits their parents keep in their logs for them (range-births.ts). */
  readonly heldBirths?: HeldBirths;
}

/**
 * Opens a group's state machine, brings it to a state its log can continue from, and makes
 * its engine. Throws StartupError when the state machine is ahead of the log (the log was
 * lost or replaced). The caller closes the log store on failure; the backend is closed here.
 */
export function recoverGroup(config: NodeConfig, consensus: Consensus, storage: GroupStorage, log: Logger): RecoveredGroup {
  const storageLog = (message: string): void => log.warn({ component: "storage", group: storage.group }, message);
  const opened = storage.openStateMachine?.(storageLog) ?? LmdbKvBackend.open({ path: storage.kvPath, log: storageLog });
  try {
    const kv = recoverStateMachine(storage, log, opened);
    // A held first state names this node's records: the engine must not send it to a peer.
    const { snapshot } = storage.durable;
    const held = snapshot === null ? null : heldFirstStateOf(snapshot.data);
    const engine = consensus.factory.create({
      id: config.id,
      peers: [...storage.bootstrapPeers],
      durable: held === null || snapshot === null ? storage.durable : { ...storage.durable, snapshot: { ...snapshot, held: true } },
      appliedIndex: kv.applied,
      seed: randomInt(1, 2 ** 48),
      ...(storage.awaitSnapshot === undefined ? {} : { awaitSnapshot: storage.awaitSnapshot }),
    });
    return { group: storage.group, logStore: storage.logStore, backend: opened.backend, kv, engine, factory: consensus.factory, held };
  } catch (error) {
    void opened.backend.close();
    throw error;
  }
}

/**
 * A range's driver's logger: the node's, with the range's bindings. The child logger is made
 * on the first line logged at a level that is on, not with the range: a pino child with its
 * bindings is about 0.5 KiB, and an idle range logs nothing.
 */
class DriverLog implements DriverLogger {
  private child: Logger | null = null;

  constructor(
    private readonly parent: Logger,
    private readonly group: GroupId,
  ) {}

  info(obj: object, msg: string): void {
    if (this.parent.isLevelEnabled("info")) this.logger().info(obj, msg);
  }

  warn(obj: object, msg: string): void {
    if (this.parent.isLevelEnabled("warn")) this.logger().warn(obj, msg);
  }

  error(obj: object, msg: string): void {
    if (this.parent.isLevelEnabled("error")) this.logger().error(obj, msg);
  }

  private logger(): Logger {
    this.child ??= this.parent.child({ component: "driver", ...(this.group === 0 ? {} : { group: this.group }) });
    return this.child;
  }
}

/** How long a range takes more writes a second than `--split-load` before it is split. */
export const LOAD_SPLIT_HOT_MS = 3000;

export class GroupReplica {
  readonly group: GroupId;
  readonly backend: LmdbKvBackend;
  readonly kv: KvStore;
  readonly engine: Engine<unknown, unknown>;
  readonly driver: Driver;
  readonly watches: WatchHub;
  /** On a range of a cluster that splits by load (`--split-load`): the writes it applies, by key (load-split.ts). */
  readonly load: LoadSplitter | null;

  constructor(
    readonly config: NodeConfig,
    recovered: RecoveredGroup,
    hooks: GroupHooks,
    log: Logger,
  ) {
    const { group, logStore, backend, kv, engine, factory, held } = recovered;
    const births = hooks.heldBirths;
    if (held !== null) births?.add(group, held);
    this.group = group;
    this.backend = backend;
    this.kv = kv;
    this.engine = engine;
    const clientId = nodeClientId(config.id);
    this.driver = new Driver({
      engine,
      factory,
      logStore,
      kv,
      beginSnapshot: () => backend.beginSnapshot(),
      send: (to, message) => hooks.network.send(to, message),
      clientId,
      firstSequence: firstSequence(kv, clientId),
      tickMs: config.tickMs,
      peerCount: config.members.length - 1,
      requestTimeoutMs: config.requestTimeoutMs,
      // Members snapshot at slightly different points (up to 45% apart), so they do not all
      // pause at once: while one follower compacts, the other still makes a quorum.
      snapshotEntries: config.snapshotEntries + Math.floor((config.snapshotEntries * ((config.id - 1) % 10)) / 20),
      pendingRequestsMax: config.pendingRequestsMax,
      metrics: hooks.metrics,
      log: new DriverLog(log, group),
      historyRevisions: config.historyRevisions,
      ...(hooks.onMembership === undefined ? {} : { onMembership: hooks.onMembership }),
      ...(hooks.onFatal === undefined ? {} : { onFatal: hooks.onFatal }),
      ...(hooks.watcher === undefined ? {} : { watcher: hooks.watcher }),
      ...(held === null || births === undefined ? {} : { heldSnapshot: { replaced: () => births.release(group) } }),
      ...(births === undefined ? {} : { holdsCompaction: (index: number) => births.holds(group, index) }),
    });
    this.load = hooks.spanChanged !== undefined && (config.splitLoad ?? 0) > 0 ? new LoadSplitter({ writesPerSecond: config.splitLoad ?? 0, hotForMs: LOAD_SPLIT_HOT_MS }) : null;
    this.watches = new WatchHub(
      kv,
      undefined,
      () => (this.isMember() ? null : new NotMemberError(this.engine.status().leader)),
      (error, what) => log.error({ err: error, group }, what),
      () => kv.backend.span,
    );
    kv.setObserver(hooks.spanChanged === undefined ? this.watches : new RangeObserver(this, hooks.spanChanged));
  }

  /** The configuration in force; engines without membership have only the one started with. */
  membership(): Membership {
    return this.engine.membership?.() ?? { voters: this.config.members.map((m) => m.id), outgoing: [], learners: [], autoPromote: [], autoLeave: true, context: new Uint8Array(0) };
  }

  /**
   * Whether this node is in the group's configuration (a voter or a learner). A node outside
   * it — removed, or joined and not yet added — gets no more of the log, so its state is
   * frozen: it serves no read of any consistency, as it takes no write.
   */
  isMember(): boolean {
    return isMember(this.membership(), this.config.id);
  }

  /** Stops the driver (answering what waits) and the watch streams; the storage stays open. */
  async stop(): Promise<void> {
    this.watches.close();
    await this.driver.stop();
  }

  /** Closes the state machine (after `stop`; the node closes the shared log). */
  async closeStorage(): Promise<void> {
    await this.backend.close();
  }
}

/**
 * What a range's commits tell: its watch streams, its load (for splits by load), and the
 * node (a span changed). A class, not three closures made for every range.
 */
class RangeObserver implements KvStoreObserver {
  constructor(
    private readonly range: Pick<GroupReplica, "watches" | "load">,
    private readonly nodeSpanChanged: () => void,
  ) {}

  committed(changes: readonly KvChange[]): void {
    this.range.watches.committed(changes);
    this.range.load?.observe(
      changes.map((change) => change.key),
      Date.now(),
    );
  }

  restored(): void {
    this.range.watches.restored();
    this.nodeSpanChanged();
  }

  spanChanged(span: KeySpan, revision: number): void {
    this.range.watches.spanChanged(span, revision);
    this.range.load?.reset(Date.now());
    this.nodeSpanChanged();
  }
}

/**
 * The client id of this node's own writes in the state machine's sessions: one per node
 * (not per process start, so sessions do not pile up), in a range clients do not use.
 */
export function nodeClientId(nodeId: number): number {
  return SELF_ASSIGNED_SESSIONS_FROM + nodeId;
}

/**
 * The first sequence number of this process's writes: above everything an earlier process
 * of this node proposed, applied or not (some may still commit later and must be seen as
 * superseded, not as new): the wall clock in microseconds, which an earlier process cannot
 * have overtaken at fewer than a million writes a second, and at least one past the last
 * applied.
 */
function firstSequence(kv: KvStore, clientId: number): number {
  const applied = kv.backend.getSession(clientId)?.sequence ?? 0;
  return Math.max(Date.now() * 1000, applied + 1);
}

/** Brings the state machine to a state the log can continue from, or refuses. */
function recoverStateMachine(storage: GroupStorage, log: Logger, opened: LmdbKvOpened): KvStore {
  const kv = KvStore.open(opened.backend);
  const { durable, group } = storage;
  const snapshot = durable.snapshot;
  if (!opened.trusted) {
    log.warn({ reason: opened.reason, group }, "the state machine cannot be trusted; rebuilding it from the snapshot and the log");
    if (snapshot !== null) kv.restore(snapshot.data);
  } else if (snapshot !== null && kv.applied < snapshot.index) {
    if (storage.awaitSnapshot !== undefined && kv.applied < RANGE_BIRTH_INDEX && heldFirstStateOf(snapshot.data) !== null) {
      // A held first state whose records this node's store lost, its parent here past the
      // split (range-births.ts): the store starts with nothing, and the engine keeps the log
      // after it while it waits for its leader's full snapshot.
      log.warn({ group, snapshot: snapshot.index, entries: durable.entries.length }, "this range's first state named records this node's store no longer holds; it waits for its leader's snapshot, its log kept");
    } else {
      log.info({ applied: kv.applied, snapshot: snapshot.index, group }, "the state machine is behind the latest snapshot; restoring it from the snapshot");
      kv.restore(snapshot.data);
    }
  }
  const lastIndex = (snapshot?.index ?? 0) + durable.entries.length;
  if (kv.applied > lastIndex) {
    throw new StartupError(
      `the state machine in ${storage.kvPath} has applied entry ${kv.applied}, but the log ends at ${lastIndex}: ` +
        "the log was lost or replaced. Restore the data directory from a backup, or empty it and let the node rejoin its cluster.",
    );
  }
  log.info({ applied: kv.applied, lastIndex, snapshotIndex: snapshot?.index ?? 0, ...(group === 0 ? {} : { group }) }, "recovered");
  return kv;
}

/**
 * The runtime's host for the replica: the same `KvReplica` (and under it the same
 * `Replica`) the simulator runs, given the node's write-ahead log, its LMDB state machine,
 * the TCP transport and real time, with metrics and logs as its observer, and promises for
 * the HTTP layer. Everything about the Ready loop itself is in core/replica/replica.ts.
 */
import { randomInt } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { CampaignTiming, Engine, EngineFactory, Membership, MembershipChange, NodeId, Snapshot } from "../../core/engine/contract.js";
import { KvReplica, type ClientRequest, type KvOperation, type ReadConsistency } from "../../core/kv/kv-replica.js";
import type { Applied, KvResult, KvStore } from "../../core/kv/store.js";
import type { Clock, ReplicaObserver, SnapshotBuilder, Waiter } from "../../core/replica/contract.js";
import type { ReplicaOptions } from "../../core/replica/replica.js";
import type { LogStore } from "../storage/log-store.js";
import { WalLogStorage } from "../storage/wal-log-storage.js";
import type { NodeMetrics } from "./metrics.js";

export type { ClientRequest, KvOperation, ReadConsistency } from "../../core/kv/kv-replica.js";
export {
  LeaderChangedError,
  RequestTimeoutError,
  StoppedError,
  TooManyRequestsError,
  TransferOvertakenError,
  TransferTimeoutError,
  WriteOutcomeUnknownError,
} from "../../core/replica/errors.js";

export interface DriverLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface DriverOptions {
  readonly engine: Engine<unknown, unknown>;
  readonly factory: EngineFactory<unknown, unknown>;
  readonly logStore: LogStore<unknown>;
  readonly kv: KvStore;
  /** Begins an incremental snapshot of `kv`; without it, snapshots are taken in one go. */
  readonly beginSnapshot?: () => SnapshotBuilder;
  readonly send: (to: NodeId, message: unknown) => boolean;
  /** Names this node's writes in the state machine's client sessions. */
  readonly clientId: number;
  /** The sequence number of this process's first write: above any an earlier process used. */
  readonly firstSequence: number;
  readonly tickMs: number;
  /** How many other members there are (0: this node is alone), for engines without a configuration of their own. */
  readonly peerCount: number;
  readonly requestTimeoutMs: number;
  readonly snapshotEntries: number;
  readonly pendingRequestsMax: number;
  readonly metrics: NodeMetrics;
  readonly log: DriverLogger;
  /**
   * A failure the node cannot continue after (the log could not be made durable). Default:
   * thrown on the next turn, an uncaught exception that ends the process.
   */
  readonly onFatal?: (error: unknown) => void;
  /** Called when the configuration the engine acts on changes (appended, or undone). */
  readonly onMembership?: (membership: Membership) => void;
  /** Revisions of history kept (the leader proposes compactions); 0 keeps everything. */
  readonly historyRevisions?: number;
  /** Told of these replica events too, after metrics and logs (the dashboard's feed). */
  readonly watcher?: Pick<ReplicaObserver<Applied>, "persisted" | "leadershipChanged" | "snapshotTaken" | "snapshotInstalled">;
  /** See ReplicaOptions.heldSnapshot: the log starts with a held first state (a range born of a split). */
  readonly heldSnapshot?: ReplicaOptions<unknown, unknown, Applied>["heldSnapshot"];
  /** See ReplicaOptions.holdsCompaction. */
  readonly holdsCompaction?: (index: number) => boolean;
}

/** Dropped malformed peer messages are logged at most this often per peer. */
const MALFORMED_LOG_INTERVAL_MS = 10_000;
/** A sync slower than this is logged: nothing leaves the node while it runs. */
const SLOW_PERSIST_MS = 250;
/** Slow syncs are logged at most this often by a process (SlowPersistLog). */
const SLOW_PERSIST_LOG_INTERVAL_MS = 1_000;

/**
 * Interval timers that share one timer per period: every replica of a process ticks on one
 * `setInterval` (issue 16's "one ticker"), not one or two each. Actions run in the order
 * they were added; one added while the others run may run in the same round (a replica
 * counts its ticks from the clock, so an early call only finds no tick due yet). The timer
 * goes once no action is left.
 */
export class SharedTicker {
  private readonly byInterval = new Map<number, { readonly timer: NodeJS.Timeout; readonly actions: Set<() => void> }>();

  every(intervalMs: number, action: () => void): () => void {
    let shared = this.byInterval.get(intervalMs);
    if (shared === undefined) {
      const actions = new Set<() => void>();
      shared = { timer: setInterval(() => this.run(actions), intervalMs), actions };
      this.byInterval.set(intervalMs, shared);
    }
    const own = shared;
    // Its own function, so one action added twice is two entries, as with two timers.
    const entry = (): void => action();
    own.actions.add(entry);
    return () => {
      if (!own.actions.delete(entry) || own.actions.size > 0) return;
      clearInterval(own.timer);
      if (this.byInterval.get(intervalMs) === own) this.byInterval.delete(intervalMs);
    };
  }

  /** Actions registered, over every period (for tests). */
  get actions(): number {
    let count = 0;
    for (const shared of this.byInterval.values()) count += shared.actions.size;
    return count;
  }

  private run(actions: ReadonlySet<() => void>): void {
    for (const action of actions) action();
  }
}

/** The process's shared ticker (see SharedTicker). */
export const REAL_TICKER = new SharedTicker();

/**
 * The event loop's next turn for every replica of the process: the actions queued before it
 * comes run in order on one `setImmediate`, not one each (each replica asks for one on
 * every tick). One queued while they run waits for the next turn, as with `setImmediate`.
 */
class NextTurn {
  private queue: (() => void)[] = [];
  private scheduled = false;

  add(action: () => void): void {
    this.queue.push(action);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.run());
  }

  private run(): void {
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    for (const action of batch) action();
  }
}

const NEXT_TURN = new NextTurn();

/**
 * Slow syncs, logged at most once a second by the process: one sync of the shared log
 * serves every range that wrote, and each would say so (10,000 lines for one slow sync).
 */
class SlowPersistLog {
  private lastLoggedMs = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  note(log: DriverLogger, ms: number, entries: number): void {
    const nowMs = performance.now();
    if (nowMs - this.lastLoggedMs < SLOW_PERSIST_LOG_INTERVAL_MS) {
      this.suppressed++;
      return;
    }
    this.lastLoggedMs = nowMs;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    log.warn({ ms: Math.round(ms), entries, ...(suppressed > 0 ? { alsoSlowSinceLastLine: suppressed } : {}) }, "a write-ahead log fdatasync was slow");
  }
}

const SLOW_PERSIST_LOG = new SlowPersistLog();

/** Real time: the monotonic clock, the event loop's next turn, interval timers (both shared by the process's replicas). */
export const REAL_CLOCK: Clock = {
  nowMs: () => performance.now(),
  soon: (action) => NEXT_TURN.add(action),
  every: (intervalMs, action) => REAL_TICKER.every(intervalMs, action),
};

/** The wall clock, one function for every driver (not a closure per range). */
const WALL_CLOCK_MS = (): number => Date.now();

export class Driver {
  private readonly options: DriverOptions;
  private readonly storage: WalLogStorage<unknown>;
  private readonly node: KvReplica<unknown, unknown>;
  private state: "new" | "started" | "stopped" = "new";

  constructor(options: DriverOptions) {
    this.options = options;
    this.storage = new WalLogStorage(options.logStore);
    const validate = options.factory.validateMessage;
    this.node = new KvReplica<unknown, unknown>({
      engine: options.engine,
      ...(validate === undefined ? {} : { validateMessage: (value: unknown) => validate.call(options.factory, value) }),
      storage: this.storage,
      kv: options.kv,
      ...(options.beginSnapshot === undefined ? {} : { beginSnapshot: options.beginSnapshot }),
      network: { send: options.send },
      clock: REAL_CLOCK,
      wallClockMs: WALL_CLOCK_MS,
      tickMs: options.tickMs,
      requestTimeoutMs: options.requestTimeoutMs,
      snapshotEntries: options.snapshotEntries,
      pendingRequestsMax: options.pendingRequestsMax,
      peerCount: options.peerCount,
      nodeClientId: options.clientId,
      firstSequence: options.firstSequence,
      firstReadId: randomInt(1, 2 ** 47),
      observer: new DriverObserver(options),
      ...(options.onMembership === undefined ? {} : { onMembership: options.onMembership }),
      ...(options.historyRevisions === undefined ? {} : { historyRevisions: options.historyRevisions }),
      ...(options.heldSnapshot === undefined ? {} : { heldSnapshot: options.heldSnapshot }),
      ...(options.holdsCompaction === undefined ? {} : { holdsCompaction: options.holdsCompaction }),
      // A quiet range (a sharded Raft node's idle ranges) has no timer and proposes no clock
      // entry until something wakes it; an engine that never goes quiet ticks as before.
      restWhenQuiet: true,
      onFatal: (error) => {
        options.log.error({ err: error }, "the write-ahead log could not be made durable; stopping");
        const fatal = options.onFatal ?? ((failure: unknown) => setImmediate(() => { throw failure; }));
        fatal(error);
      },
    });
  }

  /** Starts ticking; once only, and never after `stop` (the node starts its ranges in batches: start-order.ts). */
  start(): void {
    if (this.state !== "new") return;
    this.state = "started";
    this.node.start();
  }

  /**
   * Stops ticking and fails every waiting request; resolves once no write to the log is in
   * flight. The log store and KV are the caller's to close after that.
   */
  async stop(): Promise<void> {
    this.state = "stopped";
    this.node.stop();
    await this.storage.settled();
  }

  get pendingRequests(): number {
    return this.node.replica.pendingRequests;
  }

  status(): ReturnType<Engine<unknown, unknown>["status"]> {
    return this.node.status();
  }

  /** A message from a peer, as decoded off the wire: validated, then stepped. */
  receive(from: NodeId, value: unknown): void {
    this.node.replica.receive(from, value);
  }

  /** See KvReplica.write. */
  write(operation: KvOperation, client: ClientRequest | null = null): Promise<KvResult> {
    return promised((waiter) => this.node.write(operation, client, waiter));
  }

  /** Opens a client session: resolves with its id once the registration applied here. */
  register(): Promise<number> {
    return promised((waiter) => this.node.register(waiter));
  }

  /** Resolves when this node's state machine may serve a read at `consistency`. */
  read(consistency: ReadConsistency): Promise<void> {
    this.options.metrics.reads.inc({ consistency });
    return promised((waiter) => this.node.read(consistency, waiter));
  }

  /** Wakes a quiet engine whose leader's node is suspected or restarted (node-liveness.ts), campaigning when `campaign` says; see Replica.wake. */
  wake(campaign: CampaignTiming = "remaining"): void {
    this.node.replica.wake(true, campaign);
  }

  /** Wakes a quiet engine as any message would: a leader heartbeats at once (a peer came back: node-liveness.ts); see Replica.wake. */
  heartbeat(): void {
    this.node.replica.wake(false);
  }

  /** See Replica.transferLeadership. */
  transferLeadership(to: NodeId | null): Promise<{ readonly leader: NodeId; readonly term: number }> {
    return promised((waiter) => this.node.replica.transferLeadership(to, waiter));
  }

  /** See Replica.changeMembership. */
  changeMembership(change: MembershipChange): Promise<{ readonly index: number }> {
    return promised((waiter) => this.node.replica.changeMembership(change, waiter));
  }
}

/**
 * Metrics and logs for what a range's replica does. A class, not an object of closures made
 * per driver: a node has a driver per range, and eight closures with their object and
 * context were about 0.6 KiB a range.
 */
class DriverObserver implements ReplicaObserver<Applied> {
  /** Per peer that sent malformed messages: when they were last logged, and how many were dropped since. Made on the first (nearly no range ever sees one). */
  private malformedFrom: Map<NodeId, { loggedMs: number; dropped: number }> | null = null;

  constructor(private readonly options: Pick<DriverOptions, "metrics" | "log" | "watcher">) {}

  proposal(outcome: "accepted" | "refused" | "timeout"): void {
    this.options.metrics.proposals.inc({ result: outcome });
  }

  persisted(ms: number, entries: number): void {
    const { metrics, log, watcher } = this.options;
    metrics.fsyncSeconds.observe(ms / 1000);
    if (entries > 0) metrics.readyBatchEntries.observe(entries);
    if (ms > SLOW_PERSIST_MS) SLOW_PERSIST_LOG.note(log, ms, entries);
    watcher?.persisted?.(ms, entries);
  }

  snapshotInstalled(snapshot: Snapshot): void {
    const { metrics, log, watcher } = this.options;
    metrics.snapshotsInstalled.inc();
    log.info({ index: snapshot.index, term: snapshot.term, bytes: snapshot.data.length }, "installed the leader's snapshot");
    watcher?.snapshotInstalled?.(snapshot);
  }

  snapshotTaken(snapshot: Snapshot, ms: { readonly total: number; readonly saving: number }): void {
    const { metrics, log, watcher } = this.options;
    metrics.snapshots.inc();
    log.info({ index: snapshot.index, term: snapshot.term, bytes: snapshot.data.length, ms: Math.round(ms.total), savingMs: Math.round(ms.saving) }, "snapshot taken, log compacted");
    watcher?.snapshotTaken?.(snapshot, ms);
  }

  snapshotFailed(error: unknown): void {
    this.options.log.error({ err: error }, "could not write a snapshot; the log is not compacted, the next attempt follows");
  }

  leadershipChanged(status: { readonly term: number; readonly leader: NodeId | null; readonly role: string }): void {
    const { metrics, log, watcher } = this.options;
    if (status.leader !== null) metrics.leaderChanges.inc();
    log.info(status, "leadership changed");
    watcher?.leadershipChanged?.(status);
  }

  /** Logs a dropped malformed message, at most once per peer every 10 s (a broken peer must not flood the log). */
  malformed(from: NodeId, error: unknown): void {
    const nowMs = performance.now();
    this.malformedFrom ??= new Map();
    let peer = this.malformedFrom.get(from);
    if (peer === undefined) {
      peer = { loggedMs: Number.NEGATIVE_INFINITY, dropped: 0 };
      this.malformedFrom.set(from, peer);
    }
    const dropped = ++peer.dropped;
    if (nowMs - peer.loggedMs < MALFORMED_LOG_INTERVAL_MS) return;
    peer.loggedMs = nowMs;
    peer.dropped = 0;
    this.options.log.warn({ from, dropped, err: error }, "dropped malformed messages from a peer");
  }

  ticksSkipped(count: number): void {
    this.options.log.warn({ skippedTicks: count }, "the event loop stalled; skipping ticks beyond the catch-up limit");
  }
}

/** A promise settled by a replica's waiter. */
function promised<T>(start: (waiter: Waiter<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => start({ resolve, reject }));
}

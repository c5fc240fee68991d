/**
 * The range administration of a node (docs/sharding.md, "Splits" and "Members"): hosting
 * its replica of each range (those recovered at start, those a split makes, and those it
 * missed the split of), splitting a range on request or by size, a change of the cluster's
 * members that every range follows, and the background work that looks after the ranges
 * (liveness pings, spreading leaderships, transactions across ranges). The map of replicas
 * itself is NodeRanges (node-ranges.ts); this module decides what goes into it, and when.
 * `SynodNode` (node.ts) owns one and hands it what it needs through `RangeAdminHost`.
 */
import { join } from "node:path";
import type { Logger } from "pino";
import type { DurableState, Membership, MembershipChange, NodeId } from "../../core/engine/contract.js";
import { isMember, members } from "../../core/engine/membership.js";
import type { SharedLog } from "../storage/shared-log.js";
import type { LmdbKvEnvironment } from "../storage/kv-lmdb-env.js";
import { spanBounds, type KvSpan } from "../storage/kv-lmdb-groups.js";
import { LogStore } from "../storage/log-store.js";
import type { GroupId } from "../../core/multi/group.js";
import { snapshotFloor } from "../../core/multi/placement-directory.js";
import type { GroupRouter } from "../../core/multi/router.js";
import { RANGE_BIRTH_INDEX, splitRefusal } from "../../core/kv/split.js";
import type { RaftHardState } from "../../core/raft/index.js";
import { DEFAULT_NODE_CONFIG, RANGES_MAX, type NodeConfig } from "./config.js";
import type { Consensus } from "./consensus.js";
import { DATA_LAYOUT } from "./data-dir.js";
import { GroupReplica, recoverGroup, type RecoveredGroup } from "./group-replica.js";
import type { NodeRanges, RecoveredRanges } from "./node-ranges.js";
import { RangeBirths } from "./range-births.js";
import { RangeDuties } from "./range-duties.js";
import { readSnapshotRange } from "../../core/kv/snapshot.js";
import { CrossRangeTxns } from "./cross-range-txn.js";
import { LIVENESS_GROUP, PeerLiveness, PING_EVERY_TICKS } from "./node-liveness.js";
import { DIRECTORY_GROUP, MoveRefusedError, RangePlacement, type MoveAnswer } from "./range-placement.js";
import { RANGE_WRITES_GROUP, RangeWrites } from "./range-writes.js";
import { HttpError, type KvService } from "./http-api.js";
import { RangeNotFoundError } from "./range-routing.js";
import type { SplitAnswer } from "./shard-routes.js";
import { storageFailure } from "./disk-guard.js";
import type { NodeMetrics } from "./metrics.js";
import type { DashboardFeed } from "./dashboard-feed.js";

/** What `RangeAdmin` needs of its node. */
export interface RangeAdminHost {
  readonly config: NodeConfig;
  readonly consensus: Consensus;
  /** The write-ahead log every range's log is part of. */
  readonly sharedLog: SharedLog<unknown>;
  /** The cluster's ranges and this node's replica of each. */
  readonly ranges: NodeRanges;
  /** The node's replicas by group, behind its one transport: each range hosted gets its network here. */
  readonly groups: GroupRouter<unknown>;
  readonly metrics: NodeMetrics;
  readonly log: Logger;
  readonly feed: DashboardFeed;
  /** Group 0's replica: the cluster's configuration and the range ids it hands out. */
  readonly primary: GroupReplica;
  /** A member's HTTP address, from the configuration or the peer's handshake. */
  memberHttp(id: NodeId): string | undefined;
  /** The cluster's configuration: group 0's. */
  membership(): Membership;
  /** The voters this node reaches now, itself among them. */
  reachable(): readonly NodeId[];
  /** Whether the node is stopping. */
  stopping(): boolean;
}

export class RangeAdmin {
  /** A look for waiting ranges to host is scheduled (spanChanged). */
  private deferredCheck = false;
  /** A range this node missed the split of is being looked up (adoptRange). */
  private adopting = false;
  /** Spreading leaderships, following group 0's members, splitting by size and load: the ranges' timers. */
  private readonly duties: RangeDuties;
  /** On a sharded Raft node: the ranges splits make (null: this node's ranges do not split). */
  private readonly births: RangeBirths | null;
  /** On a sharded Raft node: transactions across ranges, coordinated and recovered (null: one range, or Paxos). */
  private readonly crossRange: CrossRangeTxns | null;
  /** On a sharded node: the pings that wake quiet ranges whose leader's node stopped answering. */
  private liveness: PeerLiveness | null = null;
  /** With `--replicas`: the ranges' directory and their moves between members (null: every member hosts every range). */
  private placement: RangePlacement | null = null;
  /** With `--replicas`: transactions' phases for ranges this node does not host, through nodes that do. */
  private writes: RangeWrites | null = null;
  /** Every range's failure to make its log durable ends the process (one function for all, not a closure per range). */
  private readonly rangeFatal = (error: unknown): void => void setImmediate(() => { throw storageFailure(error, this.host.config.dataDir); });
  /** Every range's span change rebuilds the node's table (one function for all). */
  private readonly rangeSpanChanged = (): void => this.spanChanged();

  /** `unborn`: the ranges recovered at start that wait to be born of their parent's split (node-ranges.ts). */
  constructor(
    private readonly host: RangeAdminHost,
    unborn: Pick<RecoveredRanges, "deferred" | "fromFiles" | "environment">,
  ) {
    const { config, ranges, sharedLog, log } = host;
    this.duties = new RangeDuties(ranges);
    // Ranges split on a sharded Raft cluster (range-births.ts); Paxos ranges do not yet.
    this.births =
      ranges.sharded && config.consensus === "raft"
        ? new RangeBirths(
            {
              sharedLog,
              dir: join(config.dataDir, DATA_LAYOUT.births),
              hosts: (id) => ranges.get(id) !== undefined,
              host: (id, logStore, durable) => this.hostBorn(id, logStore, durable, unborn.environment),
              hostWithoutState: (id, span, durable) => {
                if (unborn.environment === null) throw new Error(`range ${id} was born without a state machine to hold it`);
                const replica = this.hostWithoutState(id, span, durable, unborn.environment, RANGE_BIRTH_INDEX);
                // Its log past a held first state whose records the store still holds: born as usual.
                if (replica.kv.applied >= RANGE_BIRTH_INDEX) log.info({ range: id, start: span.start, end: span.end }, "a range was born of a split (its parent here caught up past the split; its records are where the split left them)");
                else log.warn({ range: id, start: span.start, end: span.end }, "hosting a range born of a split with no state until its leader sends it: the records its parent's split left here were lost with the store (a machine crash) and its parent caught up past the split");
              },
            },
            unborn.deferred,
            unborn.fromFiles,
          )
        : null;
    this.crossRange =
      this.births === null
        ? null
        : new CrossRangeTxns({
            nodeId: config.id,
            table: () => ranges.table,
            replica: (id) => ranges.get(id),
            remote: (range, operation) => (this.writes === null ? Promise.reject(new Error(`this node hosts no replica of range ${range}`)) : this.writes.write(range, operation)),
            log: log.child({ component: "txn" }),
          });
  }

  /**
   * Hosts group 0's replica, then the other ranges recovered at start: the same members,
   * their own logs and state; the configuration, the directory of members and the
   * dashboard's events are group 0's. A sharded Raft node gets its liveness pings too.
   */
  hostRecovered(others: readonly RecoveredGroup[]): void {
    const { config, ranges, primary, log } = this.host;
    ranges.add(primary);
    primary.kv.setSplitHost(this.births?.hostFor(primary) ?? null);
    for (const other of others) this.hostRange(other);
    if (ranges.sharded && config.consensus === "raft") {
      const liveness: PeerLiveness = new PeerLiveness({
        self: config.id,
        peers: members(primary.membership()),
        tickMs: config.tickMs,
        // An election timeout and one ping more: a peer is suspected once it missed two or three pings in a row (a wrong suspicion only wakes ranges).
        suspectAfterTicks: config.electionTicks + PING_EVERY_TICKS,
        network: this.host.groups.host(LIVENESS_GROUP, (from, message) => liveness.receive(from, message)),
        replicas: () => ranges.all(),
        log: (message, fields) => log.warn({ component: "liveness", ...fields }, message),
      });
      this.liveness = liveness;
      const replicas = config.replicas ?? DEFAULT_NODE_CONFIG.replicas;
      if (replicas > 0) {
        this.placement = new RangePlacement({
          self: config.id,
          replicationFactor: replicas,
          replaceAfterMs: config.replaceAfterMs ?? DEFAULT_NODE_CONFIG.replaceAfterMs,
          zone: config.zone ?? null,
          ranges,
          groups: this.host.groups,
          membership: () => this.host.membership(),
          reachable: () => this.host.reachable(),
          drop: (id, applied) => this.dropRange(id, applied),
          stopping: () => this.host.stopping(),
          log: log.child({ component: "placement" }),
          record: (step) =>
            this.host.feed.record(
              step.kind === "add" ? "replica-added" : "replica-removed",
              `range ${step.range}: ${step.kind === "add" ? `a learner added on node ${step.node}` : `node ${step.node}'s replica removed`} (${step.why})`,
              { range: step.range, node: step.node },
            ),
        });
        const placement = this.placement;
        this.writes = new RangeWrites({
          groups: this.host.groups,
          replica: (id) => ranges.get(id),
          hostsOf: (id) => placement.hostsOf(id),
          timeoutMs: config.requestTimeoutMs,
        });
      }
    }
  }

  /** Each member's zone as this node knows it (`--zone`; members without one left out): its own, and with placement its peers'. */
  zones(): Map<NodeId, string> {
    const zones = this.placement?.zones() ?? new Map<NodeId, string>();
    const { id, zone } = this.host.config;
    if (zone !== undefined) zones.set(id, zone);
    return zones;
  }

  /** The nodes hosting range `id`, its leader first, where this node hosts it not (empty: none known, or every member hosts every range). */
  hostsOf(id: GroupId): NodeId[] {
    return this.placement?.hostsOf(id) ?? [];
  }

  /**
   * Starts every range's driver, then what looks after the ranges: the liveness pings,
   * spreading leaderships, the recovery of transactions across ranges, ranges following
   * group 0's members (Raft), and splits by size (where ranges split).
   */
  start(): void {
    const { config, ranges, log, feed } = this.host;
    ranges.start();
    this.liveness?.start();
    this.placement?.start();
    this.duties.balanceLeaders({
      self: config.id,
      live: () => this.host.reachable(),
      placed: () => (this.placement?.active() === true ? this.placement.leadership() : null),
      log: log.child({ component: "ranges" }),
      moved: (range, to) => feed.record("leadership-moved", `node ${config.id} handed range ${range}'s leadership to node ${to} (spreading leaderships)`, { range, to }),
    });
    this.crossRange?.start();
    if (config.consensus === "raft") this.duties.followMembers({ cluster: () => this.host.membership(), placing: () => this.placement?.active() ?? false, log: log.child({ component: "ranges" }) });
    if (this.births !== null) {
      this.duties.splitBySize({
        splitKeys: config.splitKeys ?? DEFAULT_NODE_CONFIG.splitKeys,
        splitLoad: (config.splitLoad ?? DEFAULT_NODE_CONFIG.splitLoad) > 0,
        rangesMax: RANGES_MAX,
        split: (id, key) => this.splitRange(id, key),
        log: log.child({ component: "ranges" }),
      });
    }
  }

  /** Stops the liveness pings and the transactions' recovery; the ranges themselves are the node's to stop. */
  stop(): void {
    this.duties.stop();
    this.liveness?.stop();
    this.placement?.stop();
    this.writes?.stop();
    this.crossRange?.stop();
  }

  /** A move of one of range `replica`'s replicas (range-placement.ts, `move`); refused where every member hosts every range. */
  moveReplica(replica: GroupReplica, from: NodeId, to: NodeId): Promise<MoveAnswer> {
    if (this.placement === null) return Promise.reject(new MoveRefusedError("every member hosts every range (the cluster was started without --replicas): there is no replica to move"));
    return this.placement.move(replica, from, to);
  }

  /** The HTTP API's splits and transactions across ranges, where this node has them. */
  service(): Pick<KvService, "split" | "crossRangeTxn"> {
    const crossRange = this.crossRange;
    return {
      ...(this.births === null ? {} : { split: (range: GroupId, key: string | null) => this.splitRange(range, key) }),
      ...(crossRange === null ? {} : { crossRangeTxn: { spans: (txn) => crossRange.spansRanges(txn), run: (txn) => crossRange.run(txn) } }),
    };
  }

  /**
   * A change of the cluster's members, in group 0; on a sharded cluster, answered once every
   * range this node hosts has followed it (their leaders change them: NodeRanges.followMembers),
   * or the request timeout passed (they follow later: GET /v1/shards shows each one's replicas).
   */
  async changeClusterMembers(change: MembershipChange): Promise<{ readonly index: number }> {
    const changed = await this.host.primary.driver.changeMembership(change);
    // Ranges placed on some members only move by themselves, a step at a time (range-placement.ts).
    if (!this.host.ranges.sharded || this.placement?.active() === true) return changed;
    const deadline = Date.now() + this.host.config.requestTimeoutMs;
    while (!this.duties.followingMembers(this.host.membership()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    return changed;
  }

  /**
   * `POST /v1/shards/{id}/split`: a range id from group 0's store, then the split in range
   * `id`'s log at `key` (null: the range's middle key, as this node holds it); answers once
   * this node hosts both halves. A split the range refuses (the key is not inside it, or is
   * attached to a lease) is a 409 that says why.
   */
  private async splitRange(id: GroupId, key: string | null): Promise<SplitAnswer> {
    const { ranges, primary, config } = this.host;
    const parent = ranges.get(id);
    if (parent === undefined) throw new RangeNotFoundError(id, false);
    if (ranges.all().length >= RANGES_MAX) throw new HttpError(409, "split_refused", `the cluster runs ${RANGES_MAX} ranges, the most it runs today: range ${id} does not split`);
    await parent.driver.read("linearizable");
    const at = key ?? parent.kv.middleKey();
    if (at === null) throw new HttpError(409, "split_refused", `range ${id} holds ${parent.kv.keys} key(s): name the key to split at, {"key": "KEY"}`);
    // Checked here first too, so a split refused for its key does not use up a range id.
    const refusal = splitRefusal(parent.kv.backend.span ?? { start: "", end: null }, at);
    if (refusal !== null) throw new HttpError(409, "split_refused", `range ${id} did not split: ${refusal}`);
    // Past every id the cluster started with, as well as those known here: group 0 hands out
    // ids from there, each once (a node hosting some ranges only may host none of the highest).
    const atLeast = Math.max(ranges.startedWith, ...ranges.table.list().map((range) => range.id + 1), ...ranges.all().map((replica) => replica.group + 1));
    const allocated = await primary.driver.write({ op: "range-id", atLeast });
    if (allocated.op !== "range-id") throw new HttpError(503, "unavailable", `group 0 handed out no range id: ${allocated.op === "rejected" ? allocated.reason : allocated.op}`);
    const result = await parent.driver.write({ op: "split", at, child: allocated.id });
    if (result.op === "rejected") throw new HttpError(409, "split_refused", `range ${id} did not split: ${result.reason}`);
    if (result.op !== "split") throw new HttpError(503, "unavailable", `range ${id} answered the split with ${result.op}`);
    // The leader answered; this node hosts the child once it applied the split too. The split
    // happened either way: past the request timeout it is answered without the child's
    // descriptor (a retry would split again), and GET /v1/shards shows it once applied here.
    const deadline = Date.now() + config.requestTimeoutMs;
    while (ranges.get(result.child) === undefined && Date.now() <= deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    const descriptors = [id, result.child].map((range) => ranges.table.get(range) ?? { id: range });
    return { range: id, at, child: result.child, epoch: result.epoch, revision: result.revision, ranges: descriptors };
  }

  /**
   * Stops hosting range `id` (this node's replica was removed from it: the range moved) and
   * removes what this node keeps of it: its records, sessions and history, then its log.
   */
  private async dropRange(id: GroupId, applied: number): Promise<void> {
    const { ranges, groups, sharedLog, feed, config, consensus } = this.host;
    const replica = ranges.remove(id);
    if (replica === undefined) return;
    groups.unhost(id);
    await replica.stop();
    await replica.closeStorage();
    // Records first, then the log: a crash between leaves a log whose replica finds itself removed again.
    ranges.environment?.dropGroup(id);
    // Its hard state stays, as a tombstone (EngineFactory.tombstone): the term and vote it
    // promised, and what it applied, which a replica made here again must hold before it votes.
    const { factory } = consensus;
    const tombstone = sharedLog.drop(id, (last) => (factory.tombstone === undefined ? last : factory.tombstone(last, applied)));
    if (tombstone !== null) this.births?.entomb(id, tombstone);
    feed.record("range-left", `node ${config.id} no longer hosts range ${id} (its replica moved to another node)`, { range: id });
  }

  /** Hosts a range other than group 0: the same members, its own log and state; the configuration, the directory of members and the dashboard's events are group 0's. */
  private hostRange(recovered: RecoveredGroup, adopted = false): GroupReplica {
    const { config, ranges, metrics, log } = this.host;
    const id = recovered.group;
    const network = this.host.groups.host(id, (from, message) => ranges.get(id)?.driver.receive(from, message));
    const hooks = { network, metrics, onFatal: this.rangeFatal, spanChanged: this.rangeSpanChanged, watcher: ranges.leadershipWatcher };
    const replica = new GroupReplica(config, recovered, this.births === null ? hooks : { ...hooks, heldBirths: ranges.heldBirths }, log);
    replica.kv.setSplitHost(this.births?.hostFor(replica) ?? null);
    if (adopted) ranges.adopt(replica);
    else ranges.add(replica);
    return replica;
  }

  /**
   * A message from a member for a range this node does not host: if no range here holds any
   * of its keys, this node missed the split that made it (its parent's snapshot came after
   * the split). Its span is asked of the member that sent the message (`GET /v1/shards`);
   * when no range here overlaps it, the range is hosted over it with no state, to be sent its
   * leader's snapshot, and serves nothing until then. A range whose span a range here still
   * holds is left to that range's split. One at a time.
   */
  adoptRange(from: NodeId, id: GroupId): void {
    const { config, ranges, log } = this.host;
    const environment = ranges.environment;
    if (this.births === null || environment === null || id === LIVENESS_GROUP || id === DIRECTORY_GROUP || id === RANGE_WRITES_GROUP || ranges.get(id) !== undefined || this.adopting) return;
    if (this.births.waitsForParent(id) || !isMember(this.host.membership(), from)) return;
    const senderHttp = this.host.memberHttp(from);
    if (senderHttp === undefined) return;
    this.adopting = true;
    // Where ranges are placed, the directory says the range's span and whether it counts this
    // node in (a message from a leader that just removed this node must not bring it back).
    const described = this.placement?.adoptable(id);
    const learned = described === undefined ? this.learnSpan(senderHttp, id, config.id) : Promise.resolve(described);
    void learned
      .then((span) => {
        if (span === null || ranges.get(id) !== undefined || this.births === null) return;
        if (environment.registry.overlapping(id, spanBounds(span)) !== undefined) return;
        // A range this node held before starts from its tombstone (SharedLog.drop): the term
        // and vote it promised, and what it must hold again before it votes.
        const stateless = this.births.takeStateless(id) ?? { hardState: null, snapshot: null, entries: [] };
        // It starts in the term its peers are in, at least: a stale candidate's request in an
        // earlier term must not find it there with no vote cast.
        const durable = { ...stateless, hardState: atTermAtLeast(stateless.hardState as RaftHardState | null, span.term ?? 0) };
        // Its state is its leader's snapshot, taken once the range holds no more than `span`
        // (snapshotFloor): the log's first entries may predate a split, and would build a
        // different state here.
        this.hostWithoutState(id, span, durable, environment, span.awaitFrom);
        log.warn({ range: id, peer: from, start: span.start, end: span.end }, "hosting a range this node missed the split of, or was added to, until its leader sends its state");
      })
      .catch((error: unknown) => log.warn({ err: error, range: id, peer: from }, "could not host a range this node missed the split of; its leader's next message tries again"))
      .finally(() => {
        this.adopting = false;
      });
  }

  /**
   * A range's span changed (a split, or a snapshot restored): the routing table is built
   * again, and ranges waiting for a split their parent will no longer apply here (it caught
   * up from a snapshot taken after it) are hosted.
   */
  spanChanged(): void {
    this.host.ranges.changed();
    if (this.deferredCheck || this.births === null) return;
    this.deferredCheck = true;
    setImmediate(() => {
      this.deferredCheck = false;
      const environment = this.host.ranges.environment;
      if (environment === null || this.host.stopping()) return;
      try {
        this.births?.hostFreed((id, span) => environment.registry.overlapping(id, spanBounds(span)) === undefined);
      } catch (error) {
        this.host.log.error({ err: error }, "could not host a range whose parent caught up past its split");
      }
    });
  }

  /**
   * Range `id`'s span as the member at `http` sees it, and the least index of the snapshot a
   * replica hosted over it waits for (null: it lists no such range, or lists it without node
   * `self`): `snapshotFloor` of what it says; where it says neither index (it does not host
   * the range), a range born of a split (where ranges are not placed, only those are adopted)
   * takes its first snapshot, or any later one.
   */
  private async learnSpan(http: string, id: GroupId, self: NodeId): Promise<{ readonly start: string; readonly end: string | null; readonly term?: number; readonly awaitFrom: number } | null> {
    const response = await fetch(`${http}/v1/shards`, { signal: AbortSignal.timeout(2000) });
    if (!response.ok) throw new Error(`${http}/v1/shards answered ${response.status}`);
    const shards = ((await response.json()) as { shards?: { id: number; start: string; end: string | null; replicas?: number[]; appliedIndex?: unknown; spanSince?: unknown }[] }).shards ?? [];
    const range = shards.find((shard) => shard.id === id);
    if (range === undefined || (range.replicas !== undefined && !range.replicas.includes(self))) return null;
    const index = (value: unknown): number | undefined => (typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined);
    const applied = index(range.appliedIndex);
    const spanSince = index(range.spanSince);
    return { start: range.start, end: range.end, awaitFrom: applied === undefined ? RANGE_BIRTH_INDEX : snapshotFloor({ applied, ...(spanSince === undefined ? {} : { spanSince }) }) };
  }

  /**
   * Range `id` hosted over `span` with no state but `durable`'s hard state (and its log past a
   * held first state, when it has one), serving nothing until its leader sends its snapshot,
   * at `awaitFrom` or later (GroupStorage.awaitSnapshot); a held first state whose records
   * the store still holds starts from them as a born range does.
   */
  private hostWithoutState(id: GroupId, span: KvSpan, durable: DurableState<unknown>, environment: LmdbKvEnvironment, awaitFrom: number): GroupReplica {
    const { config, consensus, sharedLog, log } = this.host;
    const recovered = recoverGroup(
      config,
      consensus,
      { group: id, logStore: new LogStore(sharedLog, id), durable, kvPath: environment.path, openStateMachine: () => ({ backend: environment.group(id, span), trusted: true, reason: null }), bootstrapPeers: [], awaitSnapshot: awaitFrom },
      log,
    );
    return this.hostRange(recovered, true);
  }

  /** A range a split made (range-births.ts): recovered from its durable state, hosted, and started with the others. */
  private hostBorn(id: GroupId, logStore: LogStore<unknown>, durable: DurableState<unknown>, environment: LmdbKvEnvironment | null): void {
    const { config, consensus, log, feed } = this.host;
    const range = durable.snapshot === null ? null : readSnapshotRange(durable.snapshot.data);
    if (environment === null || range === null) throw new Error(`range ${id} was born without a state machine to hold it`);
    const span = { start: range.start, end: range.end };
    const recovered = recoverGroup(
      config,
      consensus,
      { group: id, logStore, durable, kvPath: environment.path, openStateMachine: () => ({ backend: environment.group(id, span), trusted: true, reason: null }), bootstrapPeers: [] },
      log,
    );
    this.hostRange(recovered);
    log.info({ range: id, start: range.start, end: range.end, epoch: range.epoch }, "a range was born of a split");
    feed.record("range-born", `range ${id} was born of a split: keys [${JSON.stringify(range.start)}, ${range.end === null ? "the end" : JSON.stringify(range.end)})`, { range: id });
  }
}

/** A Raft hard state in `term` at least (0: as it is): a later term has no vote cast in it yet. */
function atTermAtLeast(hardState: RaftHardState | null, term: number): RaftHardState | null {
  if (term === 0) return hardState;
  if (hardState === null) return { term, vote: null, commit: 0 };
  return hardState.term >= term ? hardState : { ...hardState, term, vote: null };
}

/**
 * One synod node: storage, its replicas (group-replica.ts: engine, driver, state machine),
 * the peer transport and the HTTP API, started in that order and stopped in the reverse
 * one. The node hosts one replica per range of its cluster (`--shards`, one by default),
 * each a consensus group of every member; group 0, the first range, also holds the
 * cluster's configuration and directory of members (docs/sharding.md). Hosting the ranges,
 * their splits and the work that looks after them are node-range-admin.ts's.
 *
 * Recovery at start: the shared log replays the write-ahead log (repairing a torn tail,
 * refusing damage before it); then each group's replica recovers its state machine.
 */
import { performance } from "node:perf_hooks";
import { join } from "node:path";
import type { Logger } from "pino";
import type { Membership, NodeId } from "../../core/engine/contract.js";
import { SharedLog } from "../storage/shared-log.js";
import { PeerTransport } from "../transport/peer-transport.js";
import type { ApiListener } from "../tls/https-listener.js";
import { TlsConfigError, TlsSource } from "../tls/material.js";
import { trustForFetch } from "../tls/trust.js";
import { DEFAULT_GROUP, type GroupId } from "../../core/multi/group.js";
import { GroupRouter } from "../../core/multi/router.js";
import { formatHostPort, type MemberAddress, type NodeConfig } from "./config.js";
import { consensusFor, nodeIdProblem, statusDetails, type Consensus } from "./consensus.js";
import { checkIdentity, clusterIdFor, DATA_LAYOUT, lockDataDir, readIdentity, StartupError, type DataDirIdentity } from "./data-dir.js";
import { checkIdFree, fetchClusterView, JOIN_TIMEOUT_MS, REACH_TIMEOUT_MS, requestJoin, type ClusterView } from "./join.js";
import { BackupSource, type RangeBackupSource } from "./backup.js";
import { GroupReplica, type RecoveredGroup } from "./group-replica.js";
import { NodeRanges, recoverRanges, type RecoveredRanges } from "./node-ranges.js";
import { RangeAdmin } from "./node-range-admin.js";
import { HttpError, type KvService, type QuorumView, type Readiness } from "./http-api.js";
import { quorumViewOf, readinessOf } from "./node-health.js";
import { RangeNotFoundError, type RangeService, type RemoteListing } from "./range-routing.js";
import { MOVE_CATCH_UP_MS } from "./range-placement.js";
import type { RangeDescriptor } from "../../core/multi/ranges.js";
import { remoteListing } from "./range-forward.js";
import type { ReadConsistency } from "./driver.js";
import { assert } from "../../core/common/assert.js";
import { createApiListener } from "./api-listener.js";
import { DiskGuard, storageFailure } from "./disk-guard.js";
import { isMember, members } from "../../core/engine/membership.js";
import { decodeDirectory, memberRole } from "./members.js";
import { NodeMetrics } from "./metrics.js";
import { MemberAdmin } from "./member-admin.js";
import { DashboardFeed, publicLinkCounters } from "./dashboard-feed.js";
import { FaultInjector } from "./fault-injection.js";
import { clusterControlFromEnvironment } from "./cluster-control.js";

export const SYNOD_VERSION = "0.1.0";
/** How long a node stays connected to a member a configuration removed. */
const RETIRING_PEER_MS = 10_000;

export class SynodNode {
  readonly clusterId: string;
  private stopping: Promise<void> | null = null;
  /** HTTP addresses of the members, from the configuration and the peers' handshakes. */
  private readonly memberHttp = new Map<NodeId, string>();
  private httpServer: ApiListener | null = null;
  /** HTTPS and peer TLS material (null: plain), re-read by `reloadTls`. */
  private tls: TlsSource | null = null;
  /** The members of the configuration in force, and removed ones still connected for a while. */
  private currentPeers: MemberAddress[] = [];
  private readonly retiringPeers = new Map<NodeId, { readonly member: MemberAddress; readonly timer: NodeJS.Timeout }>();
  private transport: PeerTransport | null = null;
  /** A joining node's first peers, from the member it joins through, until its configuration arrives. */
  private joinView: ClusterView | null = null;
  /**
   * Where the members of the bootstrap configuration (whose entry names no addresses) are:
   * `--peers` for a node that bootstrapped, the list recorded at its join for one that joined.
   */
  private readonly bootstrapMembers: readonly MemberAddress[];
  /** Group 0's replica: the cluster's configuration, and the first range's keys. */
  private readonly primary: GroupReplica;
  /** The cluster's ranges (fixed at its start, `--shards`) and this node's replica of each; group 0's among them. */
  private readonly ranges: NodeRanges;
  /** What hosts, splits and looks after the ranges (node-range-admin.ts). */
  private readonly rangeAdmin: RangeAdmin;
  /**
   * The node's replicas by group, behind one transport: peer messages reach the replica of
   * their group, and a message for a group not hosted here is counted and dropped.
   */
  private readonly groups: GroupRouter<unknown>;
  private readonly metrics: NodeMetrics;
  private readonly backups: BackupSource;
  private readonly admin: MemberAdmin;
  /** Refuses writes while the data directory's disk is below its reserve (from `listen` on). */
  private diskGuard: DiskGuard | null = null;
  /** What the dashboard's stream shows of this node (sampled whether or not anyone watches). */
  private readonly feed: DashboardFeed;

  private constructor(
    readonly config: NodeConfig,
    identity: DataDirIdentity,
    private readonly log: Logger,
    /** The write-ahead log every group's log is part of. */
    private readonly sharedLog: SharedLog<unknown>,
    ranges: NodeRanges,
    recoveredGroups: readonly RecoveredGroup[],
    private readonly releaseLock: () => void,
    consensus: Consensus,
    unborn: Pick<RecoveredRanges, "deferred" | "fromFiles" | "environment">,
  ) {
    const recovered = recoveredGroups[0] as RecoveredGroup;
    assert(recovered.group === DEFAULT_GROUP, "the first group recovered is group 0");
    const { engine, kv, backend } = recovered;
    this.ranges = ranges;
    this.clusterId = identity.clusterId;
    this.bootstrapMembers = identity.joined ? (identity.directory ?? []) : config.members;
    for (const member of this.bootstrapMembers) if (member.http !== null) this.memberHttp.set(member.id, member.http);
    this.metrics = new NodeMetrics({
      status: () => engine.status(),
      appliedIndex: () => kv.applied,
      keyCount: () => this.ranges.all().reduce((sum, replica) => sum + replica.kv.keys, 0),
      databaseBytes: () => backend.sizeBytes(),
      pendingRequests: () => this.primary.driver.pendingRequests,
      peerStats: () => this.transport?.stats() ?? new Map(),
      ...(ranges.sharded ? { ranges: () => this.ranges.all().map((replica) => ({ id: replica.group, status: replica.engine.status(), appliedIndex: replica.kv.applied, keys: replica.kv.keys })), heldRanges: () => this.ranges.heldBirths.size } : {}),
    });
    this.groups = new GroupRouter<unknown>({
      send: (to, envelope) => this.transport?.send(to, envelope.message, envelope.group) ?? false,
      unknownGroup: (from, group) => {
        log.debug({ peer: from, group }, "a message for a group this node does not host; dropped");
        this.rangeAdmin.adoptRange(from, group);
      },
    });
    const faults = new FaultInjector(
      config.allowFaultInjection,
      (injected) => this.transport?.setFaults(injected),
      (message, view) => {
        log.warn({ faults: view }, `fault injection: ${message}`);
        this.feed.record("fault", `node ${config.id}: ${message}`, { faults: view });
      },
    );
    this.feed = new DashboardFeed(
      {
        nodeId: config.id,
        status: () => this.status(),
        links: () => this.transport?.stats() ?? new Map(),
        members: () => this.directory().map((m) => ({ id: m.id, http: m.id === config.id ? this.advertisedHttp() : (this.memberHttp.get(m.id) ?? m.http) })),
      },
      { faults, control: clusterControlFromEnvironment() },
    );
    const network = this.groups.host(DEFAULT_GROUP, (from, message) => this.primary.driver.receive(from, message));
    this.primary = new GroupReplica(
      config,
      recovered,
      {
        network,
        metrics: this.metrics,
        onMembership: (membership) => this.applyMembership(membership),
        spanChanged: () => this.rangeAdmin.spanChanged(),
        // Ranges split on a sharded Raft node (range-births.ts): group 0 keeps a split in its log while its child is held.
        ...(ranges.sharded && config.consensus === "raft" ? { heldBirths: ranges.heldBirths } : {}),
        // The log could not be written: stop (the thrown error ends the process) with what to do.
        onFatal: (error) => setImmediate(() => { throw storageFailure(error, config.dataDir); }),
        watcher: {
          persisted: (ms) => this.feed.observeFsync(ms),
          leadershipChanged: ({ term, leader, role }) => {
            ranges.leadershipChanged();
            if (leader === null) this.feed.record("election", `term ${term}: no leader known to node ${config.id} (a ${role})`, { term, role });
            else this.feed.record("leader", `node ${leader} leads in term ${term}`, { term, leader, role });
          },
          snapshotTaken: (snapshot, ms) => this.feed.record("snapshot", `node ${config.id} took a snapshot at index ${snapshot.index} (${snapshot.data.length} bytes, ${Math.round(ms.total)} ms)`, { index: snapshot.index, bytes: snapshot.data.length }),
          snapshotInstalled: (snapshot) => this.feed.record("snapshot-installed", `node ${config.id} installed the leader's snapshot at index ${snapshot.index}`, { index: snapshot.index, bytes: snapshot.data.length }),
        },
      },
      log,
    );
    this.rangeAdmin = new RangeAdmin(
      {
        config,
        consensus,
        sharedLog,
        ranges,
        groups: this.groups,
        metrics: this.metrics,
        log,
        feed: this.feed,
        primary: this.primary,
        memberHttp: (id) => this.memberHttp.get(id),
        membership: () => this.membership(),
        reachable: () => this.quorumView().reachable,
        stopping: () => this.stopping !== null,
      },
      unborn,
    );
    this.rangeAdmin.hostRecovered(recoveredGroups.slice(1));
    this.admin = new MemberAdmin({
      config,
      status: () => engine.status(),
      membership: () => this.membership(),
      directory: (membership) => this.directory(membership),
      membersList: () => this.membersList(),
      memberHttp: (id) => this.memberHttp.get(id),
      changeMembership: (change) => this.rangeAdmin.changeClusterMembers(change),
      transferLeadership: (to) => this.primary.driver.transferLeadership(to),
    });
    this.backups = new BackupSource({
      ranges: () => this.backupRanges(),
      shards: identity.shards ?? 1,
      clusterId: this.clusterId,
      nodeId: config.id,
      version: SYNOD_VERSION,
    });
  }

  /**
   * What a backup reads: group 0 alone on a cluster of one range; on a sharded cluster,
   * every range in the table, each read through its range service (which refuses a range
   * whose state has not arrived here yet).
   */
  private backupRanges(): RangeBackupSource[] {
    const replicas = this.ranges.sharded ? this.ranges.table.list().map((range) => this.ranges.get(range.id)) : [this.primary];
    const missing = this.ranges.table.list().filter((_, i) => replicas[i] === undefined);
    if (missing.length > 0)
      throw new HttpError(501, "not_supported", `this node hosts no replica of range ${missing.map((range) => range.id).join(", ")}: a backup of a cluster whose ranges are on some members only (--replicas) is not built yet; ask a node that hosts every range, or take it before the cluster grows past --replicas members`);
    return replicas.map((replica) => {
      assert(replica !== undefined, "every range in the table is hosted");
      const service = this.ranges.service(replica.group, () => this.diskGuard) as RangeService;
      return {
        id: replica.group,
        read: (consistency: ReadConsistency) => (this.ranges.sharded ? service.read(consistency) : replica.driver.read(consistency)),
        applied: () => replica.kv.applied,
        beginSnapshot: () => replica.backend.beginSnapshot(),
        entryTerm: (index: number) => replica.engine.entryTerm(index),
        membershipAt: (index: number) => replica.engine.membershipAt?.(index),
      };
    });
  }

  /**
   * Opens the data directory, recovers, and starts serving: HTTP first (so a taken port fails
   * the start before this node talks to its peers), then the peer transport, then the
   * driver. A failure at any step closes what was opened, in reverse, and releases the lock.
   * Throws StartupError with what to do.
   */
  static async start(config: NodeConfig, log: Logger): Promise<SynodNode> {
    const idProblem = nodeIdProblem(config.consensus, [config.id, ...config.members.map((member) => member.id)]);
    if (idProblem !== null) throw new StartupError(idProblem);
    const tls = SynodNode.loadTls(config);
    const recorded = readIdentity(config.dataDir);
    if (recorded !== null && !recorded.joined && config.join !== null) {
      throw new StartupError(
        `${config.dataDir} belongs to a node that bootstrapped its cluster with --peers: start it with its --peers list (it follows the cluster's configuration from its log), ` +
          "or empty the directory to join afresh with --join",
      );
    }
    const deadlineMs = Date.now() + JOIN_TIMEOUT_MS;
    let view = config.join !== null && recorded === null ? await fetchClusterView(config.join, Date.now() + REACH_TIMEOUT_MS) : null;
    if (view !== null) checkIdFree(config, view);
    const identity = checkIdentity(config.dataDir, {
      clusterId: view?.clusterId ?? clusterIdFor(config.clusterToken, config.members, config.shards),
      nodeId: config.id,
      consensus: config.consensus,
      joined: config.join !== null,
      ...(view === null ? {} : { directory: view.members.map(({ id, peer, http }) => ({ id, peer, http })) }),
      ...(config.shards > 1 ? { shards: config.shards } : {}),
    });
    const releaseLock = lockDataDir(config.dataDir);
    let node: SynodNode;
    try {
      node = SynodNode.open(config, identity, log, releaseLock);
      node.tls = tls;
    } catch (error) {
      releaseLock();
      throw error;
    }
    try {
      const removed = config.join === null ? node.removal(identity) : null;
      if (removed !== null) throw new StartupError(removed);
      const needsJoin = config.join !== null && !isMember(node.membership(), config.id);
      if (identity.joined && config.join === null && !isMember(node.membership(), config.id)) {
        throw new StartupError(
          `node ${config.id} is not a member of its cluster's configuration (its join did not complete, or it was removed): ` +
            "start it with --join URL to ask to be added, or empty its data directory",
        );
      }
      if (needsJoin && config.join !== null) {
        view ??= await fetchClusterView(config.join, Date.now() + REACH_TIMEOUT_MS);
        if (view.clusterId !== identity.clusterId) throw new StartupError(`${config.join} serves cluster ${view.clusterId}, but ${config.dataDir} belongs to cluster ${identity.clusterId}: join the cluster it belongs to, or empty the directory`);
        checkIdFree(config, view);
        node.joinView = view;
      }
      await node.listen();
      await node.connect();
      node.rangeAdmin.start();
      node.feed.start();
      node.feed.record("started", `node ${config.id} started`, { http: node.advertisedHttp() });
      if (needsJoin && config.join !== null) await node.join(config.join, deadlineMs);
    } catch (error) {
      await node.stop();
      throw error;
    }
    return node;
  }

  /** Asks the cluster to add this node (a learner, promoted once caught up); resolves once it is a member. */
  private async join(url: string, deadlineMs: number): Promise<void> {
    const port = this.transport?.port ?? this.config.peer.port;
    const peer = formatHostPort({ host: this.config.peer.host, port });
    this.log.info({ join: url, peer }, "asking the cluster to add this node");
    const startedMs = performance.now();
    const { outcome, members: listed } = await requestJoin({ url, id: this.config.id, peer, http: this.advertisedHttp(), deadlineMs, log: this.log });
    if (outcome === "already") {
      // Another process may have joined with this id: the cluster must list this address.
      checkIdFree({ ...this.config, peer: { host: this.config.peer.host, port } }, await fetchClusterView(url, Date.now() + REACH_TIMEOUT_MS));
    }
    // The members the leader lists after adding this node may include some the earlier view
    // lacked (another node that joined meanwhile, and may lead by now): this node accepts
    // connections only from peers it knows, until its first configuration arrives.
    if (listed !== null && !isMember(this.membership(), this.config.id)) {
      const known = new Set(this.currentPeers.map((m) => m.id));
      this.currentPeers = [...this.currentPeers, ...listed.filter((m) => !known.has(m.id) && m.id !== this.config.id)];
      this.updatePeers();
    }
    this.log.info({ outcome, ms: Math.round(performance.now() - startedMs) }, outcome === "added" ? "added to the cluster as a learner; promoted once caught up" : "already a member of the cluster");
  }

  /**
   * Why this node must not start, when its own log says it was removed from its cluster: a
   * configuration it has applied (so committed) left it out, and no later one in its log
   * brings it back. Such a node would never serve, and running it would hide that. A removal
   * not yet applied is no reason: it may be undone. Null for a member.
   */
  private removal(identity: DataDirIdentity): string | null {
    const latest = this.membership();
    if (members(latest).length === 0 || isMember(latest, this.config.id)) return null;
    if (isMember(this.primary.engine.membershipAt?.(this.primary.kv.applied) ?? latest, this.config.id)) return null;
    const listed = this.directory(latest);
    const via = listed.find((member) => member.http !== null)?.http ?? "URL";
    const dir = this.config.dataDir;
    const back = identity.joined ? `start it with --join ${via} to be added again` : `empty ${dir} and start it with --join ${via} to be added again`;
    return (
      `node ${this.config.id} was removed from the cluster whose data is in ${dir}: its configuration's members are ${members(latest).sort((a, b) => a - b).join(", ")}. ` +
      `To serve that cluster, ${back}; or give it another --data-dir to start a new cluster`
    );
  }

  /** Storage and recovery: everything up to a node that is ready to start, on success. */
  private static open(config: NodeConfig, identity: DataDirIdentity, log: Logger, releaseLock: () => void): SynodNode {
    // A sharded node's idle ranges go quiet, woken by its liveness (node-liveness.ts); Paxos does not quiesce.
    const quiesce = (identity.shards ?? 1) > 1 && config.consensus === "raft";
    const consensus = consensusFor(config.consensus, { electionTicks: config.electionTicks, heartbeatTicks: config.heartbeatTicks, quiesce });
    const { log: sharedLog, groups } = SharedLog.open<unknown>({
      dir: join(config.dataDir, DATA_LAYOUT.wal),
      snapshotDir: join(config.dataDir, DATA_LAYOUT.snapshots),
      encodeHardState: consensus.encodeHardState,
      decodeHardState: consensus.decodeHardState,
      segmentBytes: config.walSegmentBytes,
      log: (message) => log.warn({ component: "storage" }, message),
    });
    try {
      const ranges = recoverRanges(config, consensus, identity, sharedLog, groups, log);
      return new SynodNode(config, identity, log, sharedLog, new NodeRanges(identity.shards ?? 1, ranges.environment, log.child({ component: "ranges" })), ranges.recovered, releaseLock, consensus, ranges);
    } catch (error) {
      void sharedLog.close();
      throw error;
    }
  }

  /**
   * Reads and checks the TLS files before anything else (a wrong file is a refusal to start
   * naming it), and makes this process's own HTTPS requests (to members, to join) trust the
   * cluster's CA and present this node's certificate.
   */
  private static loadTls(config: NodeConfig): TlsSource | null {
    if (config.tls === null) return null;
    let source: TlsSource;
    try {
      source = new TlsSource(config.tls, { nodeId: config.id });
    } catch (error) {
      if (error instanceof TlsConfigError) throw new StartupError(error.message, { cause: error });
      throw error;
    }
    trustForFetch(source.current);
    source.onReload((material) => trustForFetch(material));
    return source;
  }

  /**
   * Re-reads the TLS files (on SIGHUP): new client and peer connections use the new material;
   * open ones keep theirs. Returns null, or why the files were refused (the old material
   * stays in use).
   */
  reloadTls(): TlsConfigError | null {
    const tls = this.tls;
    if (tls === null) return null;
    const refused = tls.reload();
    if (refused !== null) return refused;
    this.log.info({ serial: tls.current.serial, validTo: new Date(tls.current.validToMs).toISOString() }, "TLS material reloaded");
    return null;
  }

  private async listen(): Promise<void> {
    this.diskGuard = await DiskGuard.start({ dir: this.config.dataDir, reserveBytes: this.config.diskReserveBytes, log: this.log.child({ component: "disk" }) });
    this.diskGuard.registerMetrics(this.metrics.registry);
    const { requestBodyBytesMax, clientLimits } = this.config;
    const auth = { tokenTtlMs: this.config.authTokenTtlMs, metrics: this.config.metricsAccess };
    const server = createApiListener(this.service(), { requestBodyBytesMax, clientLimits, auth, tls: this.tls, registry: this.metrics.registry });
    this.httpServer = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error: NodeJS.ErrnoException) =>
        reject(new StartupError(`cannot serve HTTP on ${formatHostPort(this.config.http)}: ${error.code === "EADDRINUSE" ? "the port is in use" : error.message}`, { cause: error })),
      );
      server.listen(this.config.http.port, this.config.http.host, () => resolve());
    });
    server.on("error", (error) => this.log.error({ err: error }, "HTTP server error"));
    this.memberHttp.set(this.config.id, this.advertisedHttp());
  }

  /** What peers are told this node's HTTP address is: `--advertise-http`, else the bound address. */
  private advertisedHttp(): string {
    if (this.config.advertiseHttp !== null) return this.config.advertiseHttp;
    const address = this.httpServer?.address();
    const port = typeof address === "object" && address !== null ? address.port : this.config.http.port;
    return `${this.tls === null ? "http" : "https"}://${formatHostPort({ host: this.config.http.host, port })}`;
  }

  private async connect(): Promise<void> {
    // The configuration in the log wins over the list this node was started with. A joining
    // node has none yet: it knows the members the cluster listed (the leader is about to
    // dial in, and only known peers are accepted).
    this.currentPeers = this.directory();
    if (this.currentPeers.length === 0) this.currentPeers = (this.joinView?.members ?? this.bootstrapMembers).filter((m) => m.id !== this.config.id);
    const peers = this.currentPeers.filter((member) => member.id !== this.config.id).map((member) => ({ id: member.id, host: member.peer.host, port: member.peer.port }));
    try {
      this.transport = await PeerTransport.start({
        clusterId: this.clusterId,
        nodeId: this.config.id,
        listen: this.config.peer,
        peers,
        onMessage: (from, message, group) => this.groups.deliver(from, { group, message }),
        onPeerHello: (from, info) => {
          if (info.http !== null) this.memberHttp.set(from, info.http);
        },
        advertiseHttp: this.advertisedHttp(),
        log: this.log.child({ component: "transport" }),
        ...(this.tls === null ? {} : { tls: this.tls }),
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new StartupError(`cannot listen for peers on ${formatHostPort(this.config.peer)}: ${code === "EADDRINUSE" ? "the port is in use" : (error as Error).message}`, { cause: error });
    }
    this.log.info({ http: this.advertisedHttp(), peer: formatHostPort(this.config.peer), clusterId: this.clusterId }, "serving");
  }

  get httpUrl(): string {
    return this.advertisedHttp();
  }

  status(): object {
    const status = this.primary.engine.status();
    const replication = this.primary.engine.replication?.() ?? null;
    return {
      id: this.config.id,
      role: status.role,
      term: status.term,
      leader: status.leader,
      leaderHttp: status.leader === null ? null : (this.memberHttp.get(status.leader) ?? null),
      commitIndex: status.commitIndex,
      appliedIndex: this.primary.kv.applied,
      revision: this.primary.kv.currentRevision,
      compactRevision: this.primary.kv.compactRevision,
      watchers: this.primary.watches.count,
      lastIndex: status.lastIndex,
      snapshotIndex: status.snapshotIndex,
      consensus: this.config.consensus,
      ...(this.config.zone === undefined ? {} : { zone: this.config.zone }),
      ...statusDetails(this.config.consensus, status),
      clusterId: this.clusterId,
      version: SYNOD_VERSION,
      members: this.membersList(),
      // Each peer link's cumulative message counters: the dashboard of another node turns them into rates.
      links: publicLinkCounters(this.transport?.stats() ?? new Map()),
      // On the leader: each follower's replication (match index, in flight, probing or replicating).
      ...(replication === null ? {} : { replication }),
      // A sharded cluster: each range's group as this node sees it (the fields above are group 0's).
      ...(this.ranges.sharded ? { ranges: this.rangeViews() } : {}),
    };
  }

  /** `GET /v1/shards`: every range's descriptor, with its group as this node sees it. */
  private shards(): object {
    const zones = this.rangeAdmin.zones();
    return { shards: this.rangeViews(), ...(zones.size === 0 ? {} : { zones: Object.fromEntries([...zones].sort(([a], [b]) => a - b)) }) };
  }

  private rangeViews(): object[] {
    return this.ranges.views((leader: number) => this.memberHttp.get(leader) ?? null);
  }

  /** The cluster's configuration: group 0's (engines without membership have only the one started with). */
  private membership(): Membership {
    return this.primary.membership();
  }

  /**
   * Where the members of the current configuration are: the directory replicated with it,
   * or, for the bootstrap configuration, the addresses this node was started with.
   */
  private directory(membership: Membership = this.membership()): MemberAddress[] {
    let listed: MemberAddress[] | null = null;
    try {
      listed = decodeDirectory(membership.context);
    } catch (error) {
      this.log.error({ err: error }, "the configuration's member directory does not decode; using the addresses this node was started with");
    }
    const ids = members(membership);
    const known = listed ?? this.bootstrapMembers;
    return known.filter((m) => ids.includes(m.id)).map((m) => ({ ...m, http: m.http ?? this.memberHttp.get(m.id) ?? null }));
  }

  /**
   * A new configuration (appended, or undone): connect to its members. A member it removes
   * stays connected for `RETIRING_PEER_MS` more: the change commits only after this node
   * appended it, and a removed leader needs its links to commit its own removal and hand
   * over; a removed follower, to learn that it was removed.
   */
  private applyMembership(membership: Membership): void {
    // An empty configuration is a joining node's start: it has no one to connect to yet but
    // the members it was told of, and keeps them.
    if (members(membership).length === 0) return;
    const listed = this.directory(membership);
    for (const member of listed) if (member.http !== null && member.id !== this.config.id) this.memberHttp.set(member.id, member.http);
    for (const previous of this.currentPeers) {
      if (listed.some((m) => m.id === previous.id) || this.retiringPeers.has(previous.id)) continue;
      const timer = setTimeout(() => {
        this.retiringPeers.delete(previous.id);
        this.updatePeers();
      }, RETIRING_PEER_MS);
      timer.unref();
      this.retiringPeers.set(previous.id, { member: previous, timer });
    }
    for (const member of listed) {
      const retiring = this.retiringPeers.get(member.id);
      if (retiring === undefined) continue;
      clearTimeout(retiring.timer);
      this.retiringPeers.delete(member.id);
    }
    this.currentPeers = listed;
    this.updatePeers();
    this.log.info({ voters: membership.voters, outgoing: membership.outgoing, learners: membership.learners }, "configuration");
    const learners = membership.learners.length === 0 ? "" : `, learners ${membership.learners.join(", ")}`;
    const joint = membership.outgoing.length === 0 ? "" : ` (joint with ${membership.outgoing.join(", ")})`;
    this.feed.record("membership", `configuration: voters ${membership.voters.join(", ")}${joint}${learners}`, { voters: membership.voters, outgoing: membership.outgoing, learners: membership.learners });
  }

  private updatePeers(): void {
    const current = new Set(this.currentPeers.map((m) => m.id));
    // Not this node itself: its own --peer may be port 0 (an ephemeral port), no address to dial.
    const peers = [...this.currentPeers, ...[...this.retiringPeers.values()].map((r) => r.member).filter((m) => !current.has(m.id))].filter((m) => m.id !== this.config.id);
    if (this.stopping === null) this.transport?.setPeers(peers.map((m) => ({ id: m.id, host: m.peer.host, port: m.peer.port })));
  }

  private membersList(): object[] {
    const membership = this.membership();
    return this.directory(membership).map((member) => ({ id: member.id, peer: formatHostPort(member.peer), http: this.memberHttp.get(member.id) ?? member.http, role: memberRole(membership, member.id) }));
  }

  /** Whether this node is in the cluster's configuration (see GroupReplica.isMember). */
  private isMember(): boolean {
    return this.primary.isMember();
  }

  /** Which voters this node reaches: itself, and the peers it holds a connection with (either way). */
  private quorumView(): QuorumView {
    return quorumViewOf(this.config.id, this.membership(), this.transport?.stats());
  }

  /** `GET /readyz` (node-health.ts). */
  private readiness(): Readiness {
    const status = this.primary.engine.status();
    return readinessOf({
      self: this.config.id,
      membership: this.membership(),
      member: this.isMember(),
      status,
      applied: this.primary.kv.applied,
      lag: this.ranges.applyLag(),
      leaderless: this.ranges.leaderless(),
      sharded: this.ranges.sharded,
      quorum: () => this.quorumView(),
    });
  }

  /** The HTTP addresses of the members hosting every one of `ranges`, the first one's leader first. */
  private rangeHosts(ranges: readonly GroupId[]): string[] {
    const [first, ...rest] = ranges.map((id) => this.rangeAdmin.hostsOf(id));
    const common = (first ?? []).filter((node) => rest.every((hosts) => hosts.includes(node)));
    return common.flatMap((node) => this.memberHttp.get(node) ?? []);
  }

  private service(): KvService {
    const diskGuard = (): DiskGuard | null => this.diskGuard;
    const sharded = this.ranges.sharded;
    const notBuilt = (what: string): Promise<never> =>
      Promise.reject(new HttpError(501, "not_supported", `${what} of a sharded cluster is not built yet (issue 16): this cluster has ${this.ranges.table.size} ranges`));
    return {
      ...(this.ranges.service(DEFAULT_GROUP, diskGuard) as RangeService),
      ranges: {
        table: () => this.ranges.table,
        replica: (id) => this.ranges.service(id, diskGuard),
        ready: (id) => {
          const replica = this.ranges.get(id);
          return replica !== undefined && this.ranges.holdsState(replica);
        },
      },
      ...this.rangeAdmin.service(),
      ...(sharded && (this.config.replicas ?? 0) > 0
        ? {
            rangeHosts: (ranges: readonly GroupId[]) => this.rangeHosts(ranges),
            forwarded: () => this.metrics.rangeForwards.inc(),
            remoteListing: (range: RangeDescriptor, listing: RemoteListing) => remoteListing(() => this.rangeHosts([range.id]), range, listing, this.config.requestTimeoutMs),
          }
        : {}),
      status: () => this.status(),
      shards: () => this.shards(),
      members: () => {
        const membership = this.membership();
        return { members: this.membersList(), joint: membership.outgoing.length > 0 };
      },
      changeMembers: (request, forwarded, credentials) =>
        sharded && this.config.consensus !== "raft" ? notBuilt("Adding, removing or promoting a member of a Paxos cluster") : this.admin.changeMembers(request, forwarded, credentials),
      transferLeadership: (to, forwarded, credentials, range) => {
        if (range === undefined || range === null || range === DEFAULT_GROUP) return this.admin.transferLeadership(to, forwarded, credentials);
        const replica = this.ranges.get(range);
        if (replica === undefined) return Promise.reject(new RangeNotFoundError(range, false));
        const target = { id: range, status: () => replica.engine.status(), transferLeadership: (to: number | null) => replica.driver.transferLeadership(to) };
        return this.admin.transferLeadership(to, forwarded, credentials, target);
      },
      ...(sharded && this.config.consensus === "raft"
        ? {
            moveReplica: (range: GroupId, request: { readonly from: number; readonly to: number }, forwarded: boolean, credentials?: string) => {
              const replica = this.ranges.get(range);
              if (replica === undefined) return Promise.reject(new RangeNotFoundError(range, false));
              const target = { id: range, status: () => replica.engine.status() };
              return this.admin.moveReplica(target, () => this.rangeAdmin.moveReplica(replica, request.from, request.to), request, MOVE_CATCH_UP_MS, forwarded, credentials);
            },
          }
        : {}),
      auth: () => this.primary.kv.auth,
      backup: (consistency) => this.backups.take(consistency),
      metrics: async () => ({ contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() }),
      quorum: () => this.quorumView(),
      readiness: () => this.readiness(),
      observeRequest: (route, status, seconds) => {
        this.metrics.requestSeconds.observe({ route, status: String(status) }, seconds);
        this.feed.observeRequest(route, status, seconds);
      },
      dashboard: this.feed,
      logError: (error, what) => this.log.error({ err: error }, what),
    };
  }

  /** Stops serving, then closes the network and storage; idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.close();
    return this.stopping;
  }

  /**
   * The reverse of start: waiting requests are answered (503, the node is stopping) before
   * connections close; no write to the log or a snapshot file is in flight when the stores
   * close; the lock goes last.
   */
  private async close(): Promise<void> {
    for (const retiring of this.retiringPeers.values()) clearTimeout(retiring.timer);
    this.retiringPeers.clear();
    const server = this.httpServer;
    const serverClosed =
      server === null || !server.listening
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeIdleConnections();
          });
    this.diskGuard?.stop();
    this.backups.stop();
    this.feed.close();
    this.feed.actions.faults.close();
    this.rangeAdmin.stop();
    await this.ranges.stop();
    if (server !== null) {
      // The 503s just written get a moment to leave; then whatever is left is cut.
      await new Promise((resolve) => setTimeout(resolve, 50));
      server.closeAllConnections();
    }
    await serverClosed;
    await this.transport?.close();
    await this.sharedLog.close();
    await this.ranges.closeStorage();
    this.releaseLock();
    this.log.info({}, "stopped");
  }
}


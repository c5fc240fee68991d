/**
 * One synod node: storage, the consensus engine and its driver, the peer transport and the
 * HTTP API, started in that order and stopped in the reverse one.
 *
 * Recovery at start: the log store replays the write-ahead log (repairing a torn tail,
 * refusing damage before it); the state machine opens at the index it last applied, which
 * it records in the same transaction as the data, so only the entries after that are
 * applied again. A state machine that cannot be trusted (the machine crashed while it was
 * open) or is behind the latest snapshot is rebuilt from the snapshot, and the engine
 * delivers the rest of the log.
 */
import { randomInt } from "node:crypto";
import type { Server } from "node:http";
import { join } from "node:path";
import type { Logger } from "pino";
import type { Engine, NodeId } from "../../core/engine/contract.js";
import { KvStore } from "../../core/kv/store.js";
import { LmdbKvBackend } from "../storage/kv-lmdb.js";
import { LogStore } from "../storage/log-store.js";
import { PeerTransport } from "../transport/peer-transport.js";
import { formatHostPort, type MemberAddress, type NodeConfig } from "./config.js";
import { consensusFor } from "./consensus.js";
import { checkIdentity, clusterIdFor, DATA_LAYOUT, lockDataDir, StartupError } from "./data-dir.js";
import { Driver } from "./driver.js";
import { createHttpApi, type KvService } from "./http-api.js";
import { NodeMetrics } from "./metrics.js";

export const SYNOD_VERSION = "0.1.0";

export class SynodNode {
  private httpServer: Server | null = null;
  private stopping: Promise<void> | null = null;
  private constructor(
    readonly config: NodeConfig,
    readonly clusterId: string,
    private readonly log: Logger,
    private readonly logStore: LogStore<unknown>,
    private readonly backend: LmdbKvBackend,
    private readonly kv: KvStore,
    private readonly engine: Engine<unknown, unknown>,
    private readonly driver: Driver,
    private readonly transport: PeerTransport,
    private readonly metrics: NodeMetrics,
    private readonly releaseLock: () => void,
    /** HTTP addresses of the members, from the configuration and the peers' handshakes. */
    private readonly memberHttp: Map<NodeId, string>,
  ) {}

  /** Opens the data directory, recovers, and starts serving. Throws StartupError with what to do. */
  static async start(config: NodeConfig, log: Logger): Promise<SynodNode> {
    const identity = checkIdentity(config.dataDir, { clusterId: clusterIdFor(config.clusterToken, config.members), nodeId: config.id });
    const releaseLock = lockDataDir(config.dataDir);
    try {
      return await SynodNode.open(config, identity.clusterId, log, releaseLock);
    } catch (error) {
      releaseLock();
      throw error;
    }
  }

  private static async open(config: NodeConfig, clusterId: string, log: Logger, releaseLock: () => void): Promise<SynodNode> {
    const consensus = consensusFor(config.consensus, { electionTicks: config.electionTicks, heartbeatTicks: config.heartbeatTicks });
    const storageLog = (message: string): void => log.warn({ component: "storage" }, message);
    const { store: logStore, durable } = LogStore.open<unknown>({
      dir: join(config.dataDir, DATA_LAYOUT.wal),
      snapshotDir: join(config.dataDir, DATA_LAYOUT.snapshots),
      encodeHardState: consensus.encodeHardState,
      decodeHardState: consensus.decodeHardState,
      segmentBytes: config.walSegmentBytes,
      log: storageLog,
    });
    const opened = LmdbKvBackend.open({ path: join(config.dataDir, DATA_LAYOUT.kv), log: storageLog });
    const kv = KvStore.open(opened.backend);
    const snapshot = durable.snapshot;
    if (!opened.trusted) {
      log.warn({ reason: opened.reason }, "the state machine cannot be trusted; rebuilding it from the snapshot and the log");
      if (snapshot !== null) kv.restore(snapshot.data);
    } else if (snapshot !== null && kv.applied < snapshot.index) {
      log.info({ applied: kv.applied, snapshot: snapshot.index }, "the state machine is behind the latest snapshot; restoring it from the snapshot");
      kv.restore(snapshot.data);
    }
    const lastIndex = (snapshot?.index ?? 0) + durable.entries.length;
    if (kv.applied > lastIndex) {
      throw new StartupError(
        `the state machine in ${join(config.dataDir, DATA_LAYOUT.kv)} has applied entry ${kv.applied}, but the log ends at ${lastIndex}: ` +
          "the log was lost or replaced. Restore the data directory from a backup, or empty it and let the node rejoin its cluster.",
      );
    }
    log.info({ applied: kv.applied, lastIndex, snapshotIndex: snapshot?.index ?? 0 }, "recovered");
    const engine = consensus.factory.create({
      id: config.id,
      peers: config.members.map((member) => member.id),
      durable,
      appliedIndex: kv.applied,
      seed: randomInt(1, 2 ** 48),
    });
    let driver: Driver | null = null;
    const memberHttp = new Map<NodeId, string>();
    for (const member of config.members) if (member.http !== null) memberHttp.set(member.id, member.http);
    const selfHttp = memberHttp.get(config.id);
    const peers = config.members.filter((member) => member.id !== config.id).map((member) => ({ id: member.id, host: member.peer.host, port: member.peer.port }));
    const transport = await PeerTransport.start({
      clusterId,
      nodeId: config.id,
      listen: config.peer,
      peers,
      onMessage: (from, message) => driver?.receive(from, message),
      onPeerHello: (from, info) => {
        if (info.http !== null) memberHttp.set(from, info.http);
      },
      ...(selfHttp === undefined ? {} : { advertiseHttp: selfHttp }),
      log: log.child({ component: "transport" }),
    });
    let metricsSource: { driver: Driver | null } = { driver: null };
    const metrics = new NodeMetrics({
      status: () => engine.status(),
      appliedIndex: () => kv.applied,
      pendingRequests: () => metricsSource.driver?.pendingRequests ?? 0,
      peerStats: () => transport.stats(),
    });
    driver = new Driver({
      engine,
      factory: consensus.factory,
      logStore,
      kv,
      beginSnapshot: () => opened.backend.beginSnapshot(),
      send: (to, message) => transport.send(to, message),
      // Names this process's writes in the state machine's client sessions: a fresh one per
      // start, since sequence numbers start again at 1.
      clientId: randomInt(1, 2 ** 48),
      tickMs: config.tickMs,
      requestTimeoutMs: config.requestTimeoutMs,
      // Members snapshot at slightly different points (up to 45% apart), so they do not all
      // pause at once: while one follower compacts, the other still makes a quorum.
      snapshotEntries: config.snapshotEntries + Math.floor((config.snapshotEntries * ((config.id - 1) % 10)) / 20),
      pendingRequestsMax: config.pendingRequestsMax,
      metrics,
      log: log.child({ component: "driver" }),
    });
    metricsSource = { driver };
    const node = new SynodNode(config, clusterId, log, logStore, opened.backend, kv, engine, driver, transport, metrics, releaseLock, memberHttp);
    driver.start();
    await node.listen();
    return node;
  }

  private async listen(): Promise<void> {
    const server = createHttpApi(this.service(), { requestBodyBytesMax: this.config.requestBodyBytesMax });
    this.httpServer = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error: NodeJS.ErrnoException) =>
        reject(new StartupError(`cannot serve HTTP on ${formatHostPort(this.config.http)}: ${error.code === "EADDRINUSE" ? "the port is in use" : error.message}`, { cause: error })),
      );
      server.listen(this.config.http.port, this.config.http.host, () => resolve());
    });
    server.on("error", (error) => this.log.error({ err: error }, "HTTP server error"));
    this.memberHttp.set(this.config.id, this.httpUrl);
    this.log.info({ http: this.httpUrl, peer: formatHostPort(this.config.peer), clusterId: this.clusterId }, "serving");
  }

  get httpUrl(): string {
    const address = this.httpServer?.address();
    const port = typeof address === "object" && address !== null ? address.port : this.config.http.port;
    return `http://${formatHostPort({ host: this.config.http.host, port })}`;
  }

  status(): object {
    const status = this.engine.status();
    return {
      id: this.config.id,
      role: status.role,
      term: status.term,
      leader: status.leader,
      leaderHttp: status.leader === null ? null : (this.memberHttp.get(status.leader) ?? null),
      commitIndex: status.commitIndex,
      appliedIndex: this.kv.applied,
      lastIndex: status.lastIndex,
      snapshotIndex: status.snapshotIndex,
      consensus: this.config.consensus,
      clusterId: this.clusterId,
      version: SYNOD_VERSION,
      members: this.membersList(),
    };
  }

  private membersList(): object[] {
    return this.config.members.map((member: MemberAddress) => ({ id: member.id, peer: formatHostPort(member.peer), http: this.memberHttp.get(member.id) ?? null }));
  }

  private service(): KvService {
    return {
      write: (operation) => this.driver.write(operation),
      read: (consistency) => this.driver.read(consistency),
      get: (key) => this.kv.get(key),
      range: (prefix, limit, after) => {
        const records = this.kv.range(prefix, limit + 1, after === null ? {} : { after });
        return { records: records.slice(0, limit), more: records.length > limit };
      },
      revision: () => this.kv.currentRevision,
      status: () => this.status(),
      members: () => ({ members: this.membersList() }),
      metrics: async () => ({ contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() }),
      observeRequest: (route, status, seconds) => this.metrics.requestSeconds.observe({ route, status: String(status) }, seconds),
      logError: (error, what) => this.log.error({ err: error }, what),
    };
  }

  /** Stops serving, then closes the network and storage; idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.close();
    return this.stopping;
  }

  private async close(): Promise<void> {
    const server = this.httpServer;
    if (server !== null) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    await this.driver.stop();
    await this.transport.close();
    await this.logStore.close();
    await this.backend.close();
    this.releaseLock();
    this.log.info({}, "stopped");
  }
}

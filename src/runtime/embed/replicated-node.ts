/**
 * The embedding API's runtime host: a user's `ReplicatedStateMachine` in their own Node
 * program, replicated over real storage (the write-ahead log and snapshot files), TCP
 * between the members, and real time. It hosts the same `Replica` (and `EmbeddedReplica`
 * above it) the simulator runs, so what `synod sim --state-machine` checks is this loop.
 *
 * Durability. The log is durable (fdatasync before a write is acknowledged); the user's
 * state lives in memory. At start the state is rebuilt: restored from the latest snapshot,
 * then the engine hands over the committed entries after it, which apply as usual. So a
 * state machine never needs to persist anything itself.
 *
 * Failure. A failure the node cannot continue after — the log cannot be made durable, or
 * the state machine threw in `apply`, `restore` or a snapshot — stops the node (every
 * waiting call rejects) and is handed to `onFatal`; without one, it is thrown on the next
 * turn of the event loop, as an uncaught exception, like a panic in a Go FSM.
 */
import { randomInt } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { AbortedError } from "../../client/errors.js";
import { InvalidInputError, NotLeaderError, NotMemberError } from "../../core/common/errors.js";
import type { Engine, EngineFactory, Membership, MembershipChange, NodeId, Role } from "../../core/engine/contract.js";
import { isMember, members as membersOf } from "../../core/engine/membership.js";
import type { Clock, LogStorage, ReplicaObserver, Waiter } from "../../core/replica/contract.js";
import { EmbeddedReplica, EmbeddedStateMachine, highestSequenceIn, type EmbeddedApplied, type ReplicatedStateMachine } from "../../core/replica/embedded.js";
import { LeaderChangedError, StoppedError } from "../../core/replica/errors.js";
import { REAL_CLOCK } from "../server/driver.js";
import { formatHostPort, parseHostPort, type HostPort, type MemberAddress } from "../server/config.js";
import { CONSENSUS_PROTOCOLS, consensusFor, nodeIdProblem, type ConsensusProtocol } from "../server/consensus.js";
import { checkIdentity, clusterIdFor, dataDirFailure, DATA_LAYOUT, lockDataDir, StartupError } from "../server/data-dir.js";
import { decodeDirectory, encodeDirectory, memberRole } from "../server/members.js";
import { LogStore } from "../storage/log-store.js";
import { WalLogStorage } from "../storage/wal-log-storage.js";
import { DEFAULT_GROUP } from "../../core/multi/group.js";
import { PeerTransport, type TransportLogger } from "../transport/peer-transport.js";

/** The logger a node writes to: pino's shape (`logger.warn({ ...fields }, "message")`); `console` fits too. */
export type NodeLogger = TransportLogger;

export interface ReplicatedNodeOptions<R> {
  /** This node's id: a positive integer, unique in the cluster. */
  readonly id: number;
  /** Where this node keeps its log and snapshots; created if missing, locked while the node runs. */
  readonly dataDir: string;
  /**
   * Every member of the cluster, this node included, by id: where each listens for its
   * peers, "HOST:PORT". The same on every member (the cluster's identity is derived from it).
   * With `join`: the members of the running cluster to join (this node not among them).
   */
  readonly peers: Readonly<Record<number, string>>;
  /**
   * Join a running cluster instead of starting one: this node starts outside the
   * configuration and waits for the leader to add it (`addMember` on the leader). The
   * cluster's id is any member's `status().clusterId`. Needs `listen`.
   */
  readonly join?: { readonly clusterId: string };
  /** Where to listen for peers, "HOST:PORT" (e.g. "0.0.0.0:7101"); default: this node's entry in `peers`. */
  readonly listen?: string;
  /** Your state machine, as it is before any command: the node restores and replays into it. */
  readonly stateMachine: ReplicatedStateMachine<R>;
  /** The consensus protocol: "raft" (the default). */
  readonly consensus?: string;
  /** Names the cluster together with its members: a peer of another cluster is refused. Default "synod". */
  readonly clusterToken?: string;
  /** One tick of the engine's clock, in ms (default 50). */
  readonly tickMs?: number;
  /** Ticks without a leader before an election (default 10: 0.5 to 1 s at 50 ms). */
  readonly electionTicks?: number;
  /** Ticks between a leader's heartbeats (default 1). */
  readonly heartbeatTicks?: number;
  /** How long `propose`, `read` and `transferLeadership` may wait (default 5000 ms). */
  readonly requestTimeoutMs?: number;
  /** Snapshot the state machine and compact the log every this many applied entries (default 10,000; 0: never). */
  readonly snapshotEntries?: number;
  /** Most proposals and reads waiting at once; beyond, they are refused (TooManyRequestsError). Default 100,000. */
  readonly pendingRequestsMax?: number;
  /** Where the node logs (default: nowhere). */
  readonly logger?: NodeLogger;
  /** A failure the node cannot continue after (see the file comment). Default: thrown on the next turn. */
  readonly onFatal?: (error: unknown) => void;
}

export interface ProposeOptions {
  /**
   * Stops waiting for the result. Before the command was handed to the engine, nothing is
   * proposed; after, the command may still apply (`AbortedError.outcomeUnknown`).
   */
  readonly signal?: AbortSignal;
}

export interface ReadBarrierOptions {
  /**
   * Confirm leadership from the leader's lease instead of a round of heartbeats: faster,
   * and safe as long as clocks do not drift more than the lease allows (the engine's
   * CheckQuorum lease). Default false.
   */
  readonly lease?: boolean;
}

export interface ReplicatedNodeStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly leader: NodeId | null;
  readonly commitIndex: number;
  /** The last log index applied to the state machine. */
  readonly appliedIndex: number;
  readonly lastIndex: number;
  /** The last index compacted into a snapshot. */
  readonly snapshotIndex: number;
  readonly consensus: string;
  readonly clusterId: string;
  readonly members: readonly { readonly id: NodeId; readonly address: string; readonly role: "voter" | "learner" | "leaving" }[];
}

const DEFAULTS = Object.freeze({
  clusterToken: "synod",
  consensus: "raft",
  tickMs: 50,
  electionTicks: 10,
  heartbeatTicks: 1,
  requestTimeoutMs: 5000,
  snapshotEntries: 10_000,
  pendingRequestsMax: 100_000,
});

const SILENT: NodeLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };
/** How long a node stays connected to a member a configuration removed: it must learn of its removal (and a removed leader must commit it). */
const RETIRING_PEER_MS = 10_000;

/**
 * One member of a cluster that replicates your state machine. Start every member with the
 * same `peers`; then `propose` commands on any of them and read your state machine after
 * `read()`.
 */
export class ReplicatedNode<R> {
  readonly id: NodeId;
  readonly clusterId: string;
  private readonly embedded: EmbeddedReplica<unknown, unknown, R>;
  private readonly storage: WalLogStorage<unknown>;
  private transport: PeerTransport | null = null;
  private stopping: Promise<void> | null = null;
  private failed = false;
  /** The members of the configuration in force, and where they listen. */
  private currentPeers: readonly MemberAddress[] = [];
  /** Members a configuration removed, still connected for a while. */
  private readonly retiringPeers = new Map<NodeId, { readonly member: MemberAddress; readonly timer: NodeJS.Timeout }>();

  private constructor(
    private readonly options: ReplicatedNodeOptions<R>,
    private readonly settings: Settings,
    private readonly logStore: LogStore<unknown>,
    engine: Engine<unknown, unknown>,
    factory: EngineFactory<unknown, unknown>,
    machine: EmbeddedStateMachine<R>,
    firstSequence: number,
    private readonly releaseLock: () => void,
  ) {
    this.id = options.id;
    this.clusterId = settings.clusterId;
    this.currentPeers = settings.members;
    this.storage = new WalLogStorage(logStore);
    const validate = factory.validateMessage;
    this.embedded = new EmbeddedReplica<unknown, unknown, R>({
      engine,
      ...(validate === undefined ? {} : { validateMessage: (value: unknown) => validate.call(factory, value) }),
      storage: guardedStorage(this.storage, (action) => this.guard(action)),
      stateMachine: machine,
      network: { send: (to, message) => this.transport?.send(to, message) ?? false },
      clock: guardedClock(REAL_CLOCK, (action) => this.guard(action)),
      tickMs: settings.tickMs,
      requestTimeoutMs: settings.requestTimeoutMs,
      snapshotEntries: settings.snapshotEntries,
      pendingRequestsMax: settings.pendingRequestsMax,
      peerCount: settings.members.length - 1,
      firstSequence,
      // Apart from any earlier process's: a late answer to a read it forwarded is not taken for one of this process's.
      firstReadId: randomInt(1, 2 ** 47),
      observer: this.observer(),
      onMembership: (membership) => this.applyMembership(membership),
      onFatal: (error) => this.fatal(error, "the write-ahead log could not be made durable"),
    });
  }

  /**
   * Opens (or creates) the data directory, rebuilds the state machine from the latest
   * snapshot and the log, starts listening for peers and joins the cluster's consensus.
   * Throws InvalidInputError for bad options and StartupError (with what to do) when the
   * directory or the port cannot be used.
   */
  static async start<R>(options: ReplicatedNodeOptions<R>): Promise<ReplicatedNode<R>> {
    const wanted = settle(options);
    const log = options.logger ?? SILENT;
    const { dataDir } = options;
    let releaseLock: () => void;
    let settings: Settings;
    let joined: boolean;
    try {
      if (existsSync(join(dataDir, DATA_LAYOUT.kv))) {
        throw new StartupError(`${dataDir} holds a synod KV node's data (it has ${DATA_LAYOUT.kv}/): give this node its own dataDir`);
      }
      // A cluster keeps the id it was created with, whatever the members since.
      const identity = checkIdentity(dataDir, { clusterId: wanted.clusterId, nodeId: options.id, consensus: wanted.consensus, joined: options.join !== undefined });
      settings = { ...wanted, clusterId: identity.clusterId };
      joined = identity.joined;
      releaseLock = lockDataDir(dataDir);
    } catch (error) {
      throw dataDirFailure(error, dataDir, "dataDir") ?? error;
    }
    let node: ReplicatedNode<R>;
    try {
      node = ReplicatedNode.open(options, settings, joined, log, releaseLock);
    } catch (error) {
      releaseLock();
      throw dataDirFailure(error, dataDir, "dataDir") ?? error;
    }
    try {
      await node.connect(log);
      node.embedded.replica.start();
      await node.replayed();
    } catch (error) {
      await node.stop();
      throw error;
    }
    log.info({ id: options.id, listen: formatHostPort(settings.listen), clusterId: settings.clusterId, applied: node.embedded.stateMachine.appliedIndex }, "replicated node started");
    return node;
  }

  /** Storage and recovery: the log read back, the state machine restored from the latest snapshot, the engine built. */
  private static open<R>(options: ReplicatedNodeOptions<R>, settings: Settings, joined: boolean, log: NodeLogger, releaseLock: () => void): ReplicatedNode<R> {
    const consensus = consensusFor(settings.consensus, { electionTicks: settings.electionTicks, heartbeatTicks: settings.heartbeatTicks });
    const { store, durable } = LogStore.open<unknown>({
      dir: join(options.dataDir, DATA_LAYOUT.wal),
      snapshotDir: join(options.dataDir, DATA_LAYOUT.snapshots),
      encodeHardState: consensus.encodeHardState,
      decodeHardState: consensus.decodeHardState,
      log: (message) => log.warn({ component: "storage" }, message),
    });
    try {
      const machine = new EmbeddedStateMachine(options.stateMachine, options.id);
      if (durable.snapshot !== null) {
        try {
          machine.restore(durable.snapshot);
        } catch (error) {
          throw new StartupError(`the state machine could not restore the snapshot at index ${durable.snapshot.index} in ${options.dataDir}: ${(error as Error).message}`, { cause: error });
        }
      }
      const engine = consensus.factory.create({
        id: options.id,
        // A node that joined never bootstraps: its configuration comes from the cluster.
        peers: joined ? [] : settings.members.map((member) => member.id),
        durable,
        appliedIndex: machine.appliedIndex,
        seed: randomInt(1, 2 ** 48),
      });
      // Above every sequence an earlier process of this node used: the wall clock in
      // microseconds (no process proposes a million commands a second), and above what its
      // log holds, in case the clock went back.
      const firstSequence = Math.max(Date.now() * 1000, highestSequenceIn(durable.entries, options.id) + 1);
      return new ReplicatedNode(options, settings, store, engine, consensus.factory, machine, firstSequence, releaseLock);
    } catch (error) {
      void store.close();
      throw error;
    }
  }

  private async connect(log: NodeLogger): Promise<void> {
    // The configuration in the log wins over the list this node was started with.
    const listed = this.directory();
    if (listed.length > 0) this.currentPeers = listed;
    const peers = this.currentPeers.filter((member) => member.id !== this.id).map((member) => ({ id: member.id, host: member.peer.host, port: member.peer.port }));
    try {
      this.transport = await PeerTransport.start({
        clusterId: this.clusterId,
        nodeId: this.id,
        listen: this.settings.listen,
        peers,
        // An embedded node runs one group: a message for any other is not its replica's.
        onMessage: (from, message, group) => {
          if (group === DEFAULT_GROUP) this.guard(() => this.embedded.replica.receive(from, message));
        },
        log,
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new StartupError(`cannot listen for peers on ${formatHostPort(this.settings.listen)}: ${code === "EADDRINUSE" ? "the port is in use" : (error as Error).message}`, { cause: error });
    }
  }

  /**
   * Resolves once the state machine has applied what the log held committed at start (the
   * engine hands it over in its first Readies), so a node that resolved `start` shows the
   * state it had before it stopped, or newer. Rejects if the node failed meanwhile.
   */
  private replayed(): Promise<void> {
    const target = this.embedded.replica.engine.status().commitIndex;
    // An engine that knows its commit index only from its peers cannot replay alone: past
    // the request timeout, start resolves and the state catches up as the log arrives.
    const deadlineMs = performance.now() + this.settings.requestTimeoutMs;
    return new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (this.failed || this.stopping !== null) return reject(new StoppedError());
        if (this.embedded.stateMachine.appliedIndex >= target) return resolve();
        if (performance.now() > deadlineMs) {
          (this.options.logger ?? SILENT).warn({ applied: this.embedded.stateMachine.appliedIndex, committed: target }, "started before the state machine caught up with the log");
          return resolve();
        }
        setImmediate(check);
      };
      check();
    });
  }

  /** The port this node listens on for peers (useful with port 0). */
  get port(): number {
    return this.transport?.port ?? this.settings.listen.port;
  }

  /**
   * Replicates `command` and resolves with your state machine's result for it, once it is
   * committed and applied on this node. Any member may propose (a follower hands the
   * command to the leader). While no leader is known (an election), it waits for one, up
   * to `requestTimeoutMs`. Rejects with:
   *   - NotLeaderError: still no leader after that; nothing was proposed, retry later;
   *   - TooManyRequestsError, OverloadedError: back off; nothing was proposed;
   *   - InvalidInputError: the command is not a Uint8Array or is over the size limit;
   *   - RequestTimeoutError, WriteOutcomeUnknownError, AbortedError with outcomeUnknown:
   *     the command may or may not apply (check your state before retrying a command that
   *     is not idempotent);
   *   - StoppedError: the node is stopping.
   */
  propose(command: Uint8Array, options: ProposeOptions = {}): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const { signal } = options;
      if (signal?.aborted === true) return reject(new AbortedError({ message: "aborted before the command was proposed", outcomeUnknown: false, cause: signal.reason }));
      if (!this.running()) return reject(new StoppedError());
      let settled = false;
      let proposed = false;
      const onAbort = (): void =>
        settle(() =>
          reject(
            proposed
              ? new AbortedError({ message: "aborted while waiting for the command's result; it may still apply", outcomeUnknown: true, cause: signal?.reason })
              : new AbortedError({ message: "aborted while waiting for a leader; nothing was proposed", outcomeUnknown: false, cause: signal?.reason }),
          ),
        );
      const settle = (action: () => void): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        action();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.whenLed<R>(
        (waiter) => {
          if (this.embedded.propose(command, waiter) !== null) proposed = true;
        },
        { resolve: (result) => settle(() => resolve(result)), reject: (error) => settle(() => reject(error)) },
        () => settled,
      );
    });
  }

  /**
   * Runs `attempt` now, and again every tick while it is refused for want of a leader (an
   * election is under way: nothing was proposed or read), until the request timeout; then
   * the refusal is the caller's. `gaveUp`: the caller stopped waiting.
   */
  private whenLed<T>(attempt: (waiter: Waiter<T>) => void, waiter: Waiter<T>, gaveUp: () => boolean = () => false, retryable: (error: Error) => boolean = () => false): void {
    const deadlineMs = performance.now() + this.settings.requestTimeoutMs;
    const once = (): void => {
      if (gaveUp()) return;
      if (!this.running()) return waiter.reject(new StoppedError());
      this.guard(() =>
        attempt({
          resolve: (value) => waiter.resolve(value),
          reject: (error) => {
            const noLeader = (error instanceof NotLeaderError && !(error instanceof NotMemberError)) || retryable(error);
            if (noLeader && this.running() && performance.now() + this.settings.tickMs < deadlineMs) setTimeout(once, this.settings.tickMs);
            else waiter.reject(error);
          },
        }),
      );
    };
    once();
  }

  /**
   * A linearizable barrier: resolves once this node's state machine has applied every
   * command committed before the call (confirmed with the leader), so what you then read
   * from your state machine is at least as new as any completed `propose`, on any member.
   * Read right away (in the same turn of the event loop): later commands keep applying.
   * While no leader is known it waits for one, up to `requestTimeoutMs`. Rejects with
   * NotLeaderError (still no leader), NotMemberError, RequestTimeoutError,
   * TooManyRequestsError, StoppedError.
   */
  read(options: ReadBarrierOptions = {}): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (!this.running()) return reject(new StoppedError());
      const engine = this.embedded.replica.engine;
      const membership = engine.membership?.();
      if (membership !== undefined && !isMember(membership, this.id)) return reject(new NotMemberError(engine.status().leader));
      // A read that lost its leader was never served: asking again is safe.
      this.whenLed<void>((waiter) => this.embedded.read({ lease: options.lease === true }, waiter), { resolve, reject }, () => false, (error) => error instanceof LeaderChangedError);
    });
  }

  /**
   * Hands leadership to member `to` (default: the most up-to-date member) and resolves
   * with the new leader once this node sees it lead. Only the leader can: elsewhere it
   * rejects with NotLeaderError naming the leader. TransferTimeoutError when it does not
   * happen in time (this node still leads), TransferOvertakenError when an election won.
   */
  transferLeadership(to?: NodeId): Promise<{ readonly leader: NodeId; readonly term: number }> {
    return new Promise((resolve, reject) => {
      if (!this.running()) return reject(new StoppedError());
      const current = this.membership();
      if (to !== undefined && !isMember(current, to)) return reject(new InvalidInputError(`node ${to} is not a member; members are ${membersOf(current).join(", ")}`));
      const status = this.embedded.replica.engine.status();
      if (status.role !== "leader") return reject(new NotLeaderError(status.leader));
      this.guard(() => this.embedded.replica.transferLeadership(to ?? null, { resolve, reject }));
    });
  }

  /**
   * On the leader: adds member `id`, listening for peers at `address` ("HOST:PORT"), to
   * the cluster. It comes in as a learner (it gets the log but does not vote) and is
   * promoted to a voter once it has caught up, unless `learner` keeps it one. Start it with
   * `join` before or after. Resolves once the change is in force; rejects with
   * NotLeaderError (naming the leader) elsewhere, MembershipChangeInProgressError while
   * another change is under way, InvalidInputError for a member that exists.
   */
  addMember(id: NodeId, address: string, options: { readonly learner?: boolean } = {}): Promise<{ readonly index: number }> {
    return this.changeMembers((current, directory) => {
      if (!Number.isSafeInteger(id) || id <= 0) throw new InvalidInputError(`a member id must be a positive integer, got ${id}`);
      if (isMember(current, id)) throw new InvalidInputError(`node ${id} is already a member (${memberRole(current, id)})`);
      const added: MemberAddress = { id, peer: parseHostPort(address, `node ${id}'s address`), http: null };
      return {
        voters: current.voters,
        learners: [...current.learners, id],
        autoPromote: options.learner === true ? current.autoPromote : [...current.autoPromote, id],
        context: encodeDirectory([...directory, added]),
      };
    });
  }

  /**
   * On the leader: removes member `id` (the leader itself too: it hands over once the
   * change commits). Resolves once the change is in force; rejects as `addMember` does, and
   * with InvalidInputError for a node that is not a member.
   */
  removeMember(id: NodeId): Promise<{ readonly index: number }> {
    return this.changeMembers((current, directory) => {
      if (!isMember(current, id)) throw new InvalidInputError(`node ${id} is not a member; members are ${membersOf(current).join(", ")}`);
      const without = (list: readonly NodeId[]): NodeId[] => list.filter((member) => member !== id);
      return { voters: without(current.voters), learners: without(current.learners), autoPromote: without(current.autoPromote), context: encodeDirectory(directory.filter((member) => member.id !== id)) };
    });
  }

  private changeMembers(build: (current: Membership, directory: readonly MemberAddress[]) => MembershipChange): Promise<{ readonly index: number }> {
    return new Promise((resolve, reject) => {
      if (!this.running()) return reject(new StoppedError());
      const engine = this.embedded.replica.engine;
      if (engine.changeMembership === undefined) return reject(new InvalidInputError(`${this.settings.consensus} has no membership changes`));
      const status = engine.status();
      if (status.role !== "leader") return reject(new NotLeaderError(status.leader));
      let change: MembershipChange;
      try {
        const current = this.membership();
        change = build(current, this.directory(current));
      } catch (error) {
        return reject(error);
      }
      this.guard(() => this.embedded.replica.changeMembership(change, { resolve, reject }));
    });
  }

  status(): ReplicatedNodeStatus {
    const status = this.embedded.replica.engine.status();
    const membership = this.membership();
    const role = (id: NodeId): "voter" | "learner" | "leaving" => (membership.voters.includes(id) ? "voter" : membership.outgoing.includes(id) ? "leaving" : "learner");
    return {
      id: this.id,
      role: status.role,
      term: status.term,
      leader: status.leader,
      commitIndex: status.commitIndex,
      appliedIndex: this.embedded.stateMachine.appliedIndex,
      lastIndex: status.lastIndex,
      snapshotIndex: status.snapshotIndex,
      consensus: this.settings.consensus,
      clusterId: this.clusterId,
      members: this.directory(membership).map((member) => ({ id: member.id, address: formatHostPort(member.peer), role: role(member.id) })),
    };
  }

  /**
   * Stops: no more ticks or messages; waiting calls reject (a proposal with "outcome
   * unknown"); resolves once nothing is being written, the connections are closed and the
   * data directory is unlocked. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= this.close();
    return this.stopping;
  }

  private async close(): Promise<void> {
    for (const retiring of this.retiringPeers.values()) clearTimeout(retiring.timer);
    this.retiringPeers.clear();
    this.embedded.replica.stop();
    await this.storage.settled();
    await this.transport?.close();
    await this.logStore.close();
    this.releaseLock();
    (this.options.logger ?? SILENT).info({ id: this.id }, "replicated node stopped");
  }

  private running(): boolean {
    return this.stopping === null && !this.failed;
  }

  private membership(): Membership {
    return this.embedded.replica.engine.membership?.() ?? { voters: this.settings.members.map((m) => m.id), outgoing: [], learners: [], autoPromote: [], autoLeave: true, context: new Uint8Array(0) };
  }

  /**
   * Where the members of a configuration listen: the directory replicated with it (every
   * change this API makes carries one), or, for the bootstrap configuration, `peers`.
   */
  private directory(membership: Membership = this.membership()): MemberAddress[] {
    let listed: MemberAddress[] | null = null;
    try {
      listed = decodeDirectory(membership.context);
    } catch (error) {
      (this.options.logger ?? SILENT).error({ err: error }, "the configuration's member directory does not decode; using the peers this node was started with");
    }
    const ids = membersOf(membership);
    return (listed ?? this.settings.members).filter((member) => ids.includes(member.id));
  }

  /**
   * A new configuration (appended, or undone): connect to its members. A member it removes
   * stays connected for RETIRING_PEER_MS more, to learn that it was removed (and, removed
   * as leader, to commit that and hand over).
   */
  private applyMembership(membership: Membership): void {
    // An empty configuration is a joining node's start: it keeps the members it was told of.
    if (membersOf(membership).length === 0) return;
    const listed = this.directory(membership);
    for (const previous of this.currentPeers) {
      if (listed.some((member) => member.id === previous.id) || this.retiringPeers.has(previous.id)) continue;
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
    (this.options.logger ?? SILENT).info({ voters: membership.voters, outgoing: membership.outgoing, learners: membership.learners }, "configuration");
  }

  private updatePeers(): void {
    if (this.stopping !== null) return;
    const current = new Set(this.currentPeers.map((member) => member.id));
    const peers = [...this.currentPeers, ...[...this.retiringPeers.values()].map((retiring) => retiring.member).filter((member) => !current.has(member.id))];
    this.transport?.setPeers(peers.filter((member) => member.id !== this.id).map((member) => ({ id: member.id, host: member.peer.host, port: member.peer.port })));
  }

  /** Runs replica work; a throw out of it (the state machine's, or the loop's) is fatal. */
  private guard(action: () => void): void {
    if (this.failed) return;
    try {
      action();
    } catch (error) {
      this.fatal(error, "the state machine or the replica failed");
    }
  }

  private fatal(error: unknown, what: string): void {
    if (this.failed) return;
    this.failed = true;
    (this.options.logger ?? SILENT).error({ err: error }, `${what}; stopping the node`);
    this.embedded.replica.stop();
    const report = this.options.onFatal ?? ((failure: unknown) => setImmediate(() => { throw failure; }));
    void this.stop().finally(() => report(error));
  }

  private observer(): ReplicaObserver<EmbeddedApplied<R>> {
    const log = this.options.logger ?? SILENT;
    return {
      snapshotInstalled: (snapshot) => log.info({ index: snapshot.index, term: snapshot.term, bytes: snapshot.data.length }, "installed the leader's snapshot"),
      snapshotTaken: (snapshot, ms) => log.info({ index: snapshot.index, bytes: snapshot.data.length, ms: Math.round(ms.total) }, "snapshot taken, log compacted"),
      snapshotFailed: (error) => log.error({ err: error }, "could not write a snapshot; the log is not compacted, the next attempt follows"),
      leadershipChanged: (status) => log.info(status, "leadership changed"),
      malformed: (from, error) => log.warn({ from, err: error }, "dropped a malformed message from a peer"),
      ticksSkipped: (count) => log.warn({ skippedTicks: count }, "the event loop stalled; skipping ticks beyond the catch-up limit"),
      persisted: (ms, entries) => {
        if (ms > 250) log.warn({ ms: Math.round(ms), entries }, "a write-ahead log fdatasync was slow");
      },
    };
  }
}

interface Settings {
  readonly members: readonly MemberAddress[];
  readonly listen: HostPort;
  readonly clusterId: string;
  readonly consensus: ConsensusProtocol;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly requestTimeoutMs: number;
  readonly snapshotEntries: number;
  readonly pendingRequestsMax: number;
}

/** Checks the options and fills in the defaults; InvalidInputError naming the option at fault. */
function settle<R>(options: ReplicatedNodeOptions<R>): Settings {
  if (typeof options !== "object" || options === null) throw new InvalidInputError("ReplicatedNode.start takes an options object");
  const positive = (value: unknown, name: string): number => {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) throw new InvalidInputError(`${name} must be a positive integer, got ${String(value)}`);
    return value;
  };
  const id = positive(options.id, "id");
  if (typeof options.dataDir !== "string" || options.dataDir.length === 0) throw new InvalidInputError("dataDir must be a directory path");
  const sm = options.stateMachine as Partial<ReplicatedStateMachine<R>> | undefined;
  if (typeof sm?.apply !== "function" || typeof sm.snapshot !== "function" || typeof sm.restore !== "function") {
    throw new InvalidInputError("stateMachine must have apply(commands), snapshot() and restore(bytes) methods");
  }
  if (typeof options.peers !== "object" || options.peers === null) throw new InvalidInputError('peers must map every member\'s id to its "HOST:PORT", e.g. { 1: "127.0.0.1:7101", 2: "127.0.0.1:7102", 3: "127.0.0.1:7103" }');
  const members: MemberAddress[] = Object.entries(options.peers).map(([key, address]) => {
    const memberId = Number(key);
    if (!Number.isSafeInteger(memberId) || memberId <= 0) throw new InvalidInputError(`peers: ${JSON.stringify(key)} is not a node id (a positive integer)`);
    if (typeof address !== "string") throw new InvalidInputError(`peers: node ${memberId}'s address must be "HOST:PORT"`);
    return { id: memberId, peer: parseHostPort(address, `peers: node ${memberId}'s address`), http: null };
  });
  const self = members.find((member) => member.id === id);
  const join = options.join;
  if (join !== undefined) {
    if (typeof join.clusterId !== "string" || join.clusterId.length === 0 || join.clusterId.length > 256) throw new InvalidInputError("join.clusterId must be the cluster's id: a member's status().clusterId");
    if (self !== undefined) throw new InvalidInputError(`with join, peers lists the members of the running cluster, not this node (${id}): it is not a member yet`);
    if (options.listen === undefined) throw new InvalidInputError("a joining node needs listen: the HOST:PORT it listens for peers on, the address addMember is given");
  } else if (self === undefined) throw new InvalidInputError(`peers must list this node (${id}) too: the same map on every member`);
  const listen = options.listen === undefined ? (self as MemberAddress).peer : parseHostPort(options.listen, "listen");
  const consensus = options.consensus ?? DEFAULTS.consensus;
  if (!(CONSENSUS_PROTOCOLS as readonly string[]).includes(consensus)) throw new InvalidInputError(`consensus must be one of ${CONSENSUS_PROTOCOLS.join(", ")}, got ${JSON.stringify(consensus)}`);
  const idProblem = nodeIdProblem(consensus as ConsensusProtocol, [id, ...members.map((member) => member.id)]);
  if (idProblem !== null) throw new InvalidInputError(idProblem.replace("--consensus", "consensus"));
  const clusterToken = options.clusterToken ?? DEFAULTS.clusterToken;
  if (typeof clusterToken !== "string" || clusterToken.length === 0) throw new InvalidInputError("clusterToken must be a non-empty string");
  const snapshotEntries = options.snapshotEntries ?? DEFAULTS.snapshotEntries;
  if (!Number.isSafeInteger(snapshotEntries) || snapshotEntries < 0) throw new InvalidInputError(`snapshotEntries must be a non-negative integer, got ${snapshotEntries}`);
  const settings: Settings = {
    members: members.sort((a, b) => a.id - b.id),
    listen,
    clusterId: join?.clusterId ?? clusterIdFor(clusterToken, members),
    consensus: consensus as ConsensusProtocol,
    tickMs: positive(options.tickMs ?? DEFAULTS.tickMs, "tickMs"),
    electionTicks: positive(options.electionTicks ?? DEFAULTS.electionTicks, "electionTicks"),
    heartbeatTicks: positive(options.heartbeatTicks ?? DEFAULTS.heartbeatTicks, "heartbeatTicks"),
    requestTimeoutMs: positive(options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs, "requestTimeoutMs"),
    snapshotEntries,
    pendingRequestsMax: positive(options.pendingRequestsMax ?? DEFAULTS.pendingRequestsMax, "pendingRequestsMax"),
  };
  if (settings.heartbeatTicks >= settings.electionTicks) throw new InvalidInputError(`heartbeatTicks (${settings.heartbeatTicks}) must be below electionTicks (${settings.electionTicks})`);
  return settings;
}

/** Real time whose callbacks run under `guard`, so a throw in the loop is the node's fatal error, not the process's. */
function guardedClock(clock: Clock, guard: (action: () => void) => void): Clock {
  return {
    nowMs: () => clock.nowMs(),
    soon: (action) => clock.soon(() => guard(action)),
    every: (intervalMs, action) => clock.every(intervalMs, () => guard(action)),
  };
}

/** The log storage, with its completions run under `guard` (they apply entries). */
function guardedStorage<H>(storage: LogStorage<H>, guard: (action: () => void) => void): LogStorage<H> {
  return {
    save: (write) => storage.save(write),
    sync: (done) => storage.sync((error) => guard(() => done(error))),
    prepareSnapshot: (snapshot, done) => storage.prepareSnapshot(snapshot, (error) => guard(() => done(error))),
    compact: (snapshot) => storage.compact(snapshot),
  };
}

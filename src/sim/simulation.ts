import { AssertionError } from "../core/common/assert.js";
import { Prng } from "../core/common/prng.js";
import type { EngineFactory, EngineInvariant, EngineStatus, LogEntry, Membership, NodeId } from "../core/engine/contract.js";
import { describeMembership, isMember } from "../core/engine/membership.js";
import { isReplicaMutant } from "../core/replica/mutants.js";
import { isKvMutant, kvMutantWorkload } from "../core/kv/mutants.js";
import type { KvStore } from "../core/kv/store.js";
import type { LeaseExpiry } from "../core/kv/model.js";
import { LeaseChecker } from "./check/leases.js";
import { LeaseClient, type LeaseRequest, type LeaseResponse } from "./lease-workload.js";
import { WatchWorkload, type WatchStats, type WatchWorld } from "./watch-workload.js";
import { LockWorkload, type LockRequest, type LockResponse, type LockStats } from "./lock-workload.js";
import { isLockMutant } from "../core/kv/lock-turn.js";
import { hasMutant, mutantNames } from "./mutants.js";
import { checkMajorityCommit, type NodeLog } from "./check/majority-commit.js";
import { checkLeaderCompleteness } from "./check/leader-completeness.js";
import { checkLinearizability } from "./check/linearizability.js";
import { checkLogMatching } from "./check/log-matching.js";
import { checkNoLostWrites, type AckedWrite } from "./check/lost-writes.js";
import { InvariantViolation } from "./check/violation.js";
import { SimDisk } from "./disk.js";
import { describeOperation, formatTime, type Operation } from "./history.js";
import type { ClientRequest, ClientResponse } from "./messages.js";
import { packetDelays, Partition, RELIABLE_LINK, type LinkModel } from "./network.js";
import { requestKey, SIM_EPOCH_MS, SimNode, type NodeHost } from "./node.js";
import { GroupWatch } from "./group-watch.js";
import { deriveParams, type FaultClass, type SimParams } from "./params.js";
import { findScenario, pickScenario, scenarioApplies, SCENARIO_NAMES, type Scenario, type ScenarioContext } from "./scenarios.js";
import { Scheduler } from "./scheduler.js";
import { Trace } from "./trace.js";
import { messageKind, ReplayRecorder, type ReplayEvent } from "./replay-trace.js";
import { SimClient, type KeySpace } from "./workload.js";
import { DEFAULT_GROUP, groupOfKey, type GroupEnvelope, type GroupId } from "../core/multi/group.js";
import { isRouterMutant } from "../core/multi/mutants.js";
import { appScenarioConflict, AppHarness, type AppRequest } from "./app/harness.js";
import type { SimApplication } from "./app/module.js";
import type { ModelOperation } from "./check/model-linearizability.js";

export interface SimOptions {
  readonly protocol: EngineFactory<unknown, unknown>;
  readonly seed: number;
  readonly faults?: readonly FaultClass[];
  /** A deliberately broken variant of the protocol (one of its `mutants`). */
  readonly mutant?: string;
  /**
   * Client-level checkers to skip ("lost-write", "linearizability", "liveness"), to show
   * that the others catch a fault on their own.
   */
  readonly disabledCheckers?: readonly ("lost-write" | "linearizability" | "liveness" | "determinism")[];
  /**
   * A scenario by name (see scenarios.ts), or "random" (the default): the seed picks one
   * from the whole catalogue — or "mixed" when `faults` narrows the fault classes or the
   * protocol runs on a fixed cluster size.
   */
  readonly scenario?: string;
  /** Keep every trace line and return them all in `trace` (slower; for reading one run). */
  readonly fullTrace?: boolean;
  /**
   * Record the run's events for a replay (replay-trace.ts; `--trace-out FILE.jsonl`), at most
   * this many. Watching only: the run is the same with or without it.
   */
  readonly replayEventsMax?: number;
  /**
   * A user's state machine module to run instead of the KV store, with its workload and
   * sequential model (`synod sim --state-machine`; see sim/app/).
   */
  readonly application?: SimApplication;
  /**
   * "leases": besides the KV clients, clients that grant leases, attach keys, keep them alive
   * and let them lapse, judged by the lease checker (sim/check/leases.ts). The default with a
   * lease mutant (core/kv/mutants.ts), which only leases can show. "watch": besides the KV
   * clients, watchers that follow the keys through reconnects to node after node, judged by
   * the watch checker (sim/check/watches.ts); the default with a watch mutant. "lock":
   * besides the KV clients, clients contending for a lock with the SDK's recipe, judged by
   * the lock checker (sim/check/locks.ts); the default with a lock mutant.
   */
  readonly workload?: SimWorkload;
  /**
   * How many consensus groups every node hosts a replica of (default 1): the keys spread
   * over them by a fixed hash, faults hit a node and so all its groups, and every checker
   * runs per group. KV store only.
   */
  readonly groups?: number;
}

/** The most groups a simulated node hosts: enough to show batching, few enough to stay fast. */
export const SIM_GROUPS_MAX = 64;

/** Why `groups` cannot run as asked, or null when it can. */
export function groupsConflict(groups: number, stateMachine: boolean): string | null {
  if (!Number.isSafeInteger(groups) || groups < 1 || groups > SIM_GROUPS_MAX) return `--groups must be an integer from 1 to ${SIM_GROUPS_MAX}, got ${groups}`;
  if (groups > 1 && stateMachine) return "--groups runs the KV store only; a --state-machine runs in one group";
  return null;
}

export const SIM_WORKLOADS = ["kv", "leases", "watch", "lock"] as const;
export type SimWorkload = (typeof SIM_WORKLOADS)[number];

export interface SimFailure {
  /** Which property failed: a checker's name, or "liveness". */
  readonly checker: string;
  readonly message: string;
  readonly atMicros: number;
}

export interface SimStats {
  readonly virtualMicros: number;
  readonly events: number;
  readonly messagesSent: number;
  readonly messagesDropped: number;
  readonly operations: { readonly ok: number; readonly fail: number; readonly unknown: number };
  readonly leaderTerms: number;
  readonly crashes: number;
  /** Crashes that caught writes not yet fsynced, and lost some of them. */
  readonly crashesLosingWrites: number;
  readonly faultsInjected: number;
  /**
   * With several groups: how many syncs the groups asked for, over every node, and how many
   * disk syncs served them (group commit). Absent with one group.
   */
  readonly groupCommit?: { readonly requests: number; readonly deviceSyncs: number };
  /** With the watch workload: changes the watchers received, connections they opened, resumes a compaction cut. */
  readonly watch?: WatchStats;
  /** With the lock workload: acquisitions the lock clients made, and leases they let lapse. */
  readonly lock?: LockStats;
}

export interface SimResult {
  readonly seed: number;
  readonly protocol: string;
  readonly mutant: string | null;
  /** What the run was asked for (null faults: the scenario's own), for reproducing it. */
  readonly request: { readonly faults: readonly FaultClass[] | null; readonly scenario: string; readonly stateMachine?: string; readonly workload?: SimWorkload; readonly groups?: number };
  readonly params: SimParams;
  readonly failure: SimFailure | null;
  readonly history: readonly Operation[];
  readonly stats: SimStats;
  /** The last lines of the trace, for a person reading a failure. */
  readonly traceTail: readonly string[];
  /** The last faults, crashes and leadership changes before the failure. */
  readonly notableTail: readonly string[];
  /** With `fullTrace`: every event of the run, one line each. Otherwise empty. */
  readonly trace: readonly string[];
  /** A run of a user's state machine: its clients' history (`history` is then empty). */
  readonly appHistory?: readonly ModelOperation<unknown, unknown>[];
  /** With `replayEventsMax`: the recorded events, and how many the run had (replay-file.ts writes them). */
  readonly replay?: { readonly events: readonly ReplayEvent[]; readonly eventsInRun: number; readonly cappedAtMicros: number | null; readonly failureAtEvent: number | null };
}

/** Client endpoints are numbered from here, apart from node ids. */
const CLIENT_ID_BASE = 1000;
/** Lease clients are numbered from here, apart from the KV clients. */
const LEASE_CLIENT_ID_BASE = CLIENT_ID_BASE + 500;
const LEASE_CLIENTS = 2;
/** A run that needs more events than this is broken, not slow. */
const EVENTS_MAX = 20_000_000;
const CHECKPOINT_MICROS = 1_000_000;
const TRACE_CAPACITY = 4000;
const FULL_TRACE_CAPACITY = 20_000_000;
const TRACE_TAIL_LINES = 25;
const NOTABLE_CAPACITY = 200;
const NOTABLE_TAIL_LINES = 40;

/**
 * One deterministic run: N processes driving real engines on a virtual clock, clients
 * issuing operations, a fault phase, then a heal phase in which the cluster must serve
 * again, then every checker. The seed fixes everything.
 */
export function runSimulation(options: SimOptions): SimResult {
  return new Simulation(options).run();
}

class Simulation implements NodeHost<unknown> {
  private readonly params: SimParams;
  private readonly scheduler = new Scheduler();
  private readonly prngNet: Prng;
  private readonly prngFault: Prng;
  private readonly prngEngine: Prng;
  private readonly nodes = new Map<NodeId, SimNode<unknown>>();
  private readonly clients = new Map<number, SimClient>();
  private readonly partition: Partition;
  /** Every event: messages, client operations, faults. */
  private readonly traceLog: Trace;
  /** Faults, crashes, restarts and leadership changes only: the story of the run. */
  private readonly notable = new Trace(NOTABLE_CAPACITY);
  private readonly history: Operation[] = [];
  /** The request key of each history entry, by position. */
  private readonly historyKeys: string[] = [];
  private readonly acked: AckedWrite[] = [];
  /** By group: every checker's state (one group unless `--groups`). */
  private readonly groups: GroupWatch[] = [];
  private readonly claims: ReadonlySet<EngineInvariant>;
  private readonly factory: EngineFactory<unknown, unknown>;
  private readonly scenario: Scenario;
  private readonly messageKinds = new Map<string, number>();
  private readonly messageSenders = new Map<string, Set<NodeId>>();
  private readonly statusWatchers: ((id: NodeId, status: EngineStatus) => void)[] = [];
  /** Links the nemesis holds: the packets kept on the wire until it releases them. */
  private readonly heldLinks = new Map<number, { readonly from: NodeId; readonly to: NodeId; readonly messages: GroupEnvelope<unknown>[] }>();
  /** For FIFO links: when the last packet on each (from, to) link arrives. */
  private readonly lastArrival = new Map<number, number>();
  private nodeLink: LinkModel;
  private clientLink: LinkModel;
  private failure: SimFailure | null = null;
  private healStartMicros: number;
  private healed = false;
  private messagesSent = 0;
  private messagesDropped = 0;
  private crashes = 0;
  /** Nodes the nemesis will crash inside their next fsync. */
  private readonly crashArmed = new Set<NodeId>();
  private crashesLosingWrites = 0;
  private faultsInjected = 0;
  private leaderTerms = 0;
  /** A run of a user's state machine: its nodes' and clients' part (null: the KV store). */
  private readonly app: AppHarness<unknown> | null = null;
  private readonly leaseClients = new Map<number, LeaseClient>();
  private readonly leaseChecker = new LeaseChecker(SIM_EPOCH_MS);
  private readonly workload: SimWorkload;
  private watchWorkload: WatchWorkload | null = null;
  private lockWorkload: LockWorkload | null = null;
  /** Each node's KV store (group 0, this incarnation): what its watches read. */
  private readonly kvStores = new Map<NodeId, KvStore>();
  /** The events of a replay, when asked for (null: not recorded, nothing spent on it). */
  private readonly replay: ReplayRecorder | null;
  private failureAtEvent: number | null = null;

  constructor(private readonly options: SimOptions) {
    let factory = options.protocol;
    if (options.mutant !== undefined && !hasMutant(factory, options.mutant)) {
      throw new Error(`protocol ${factory.name} has no mutant "${options.mutant}"; it has: ${mutantNames(factory).join(", ")}`);
    }
    this.workload = options.workload ?? (options.mutant === undefined ? "kv" : isKvMutant(options.mutant) ? kvMutantWorkload(options.mutant) : isLockMutant(options.mutant) ? "lock" : "kv");
    if (this.workload !== "kv" && options.application !== undefined) throw new Error(`the ${this.workload} workload runs on the KV store, not a user's state machine`);
    const groupsProblem = groupsConflict(options.groups ?? 1, options.application !== undefined);
    if (groupsProblem !== null) throw new Error(groupsProblem);
    if (this.workload !== "kv" && (options.groups ?? 1) > 1) throw new Error(`the ${this.workload} workload runs in one group: leave out --groups`);
    this.claims = new Set(factory.invariants);
    this.traceLog = new Trace(options.fullTrace === true ? FULL_TRACE_CAPACITY : TRACE_CAPACITY);
    this.replay = options.replayEventsMax === undefined ? null : new ReplayRecorder(options.replayEventsMax);
    const params = deriveParams(options.seed, {
      ...(options.faults === undefined ? {} : { faults: options.faults }),
      ...(factory.fixedClusterSize === undefined ? {} : { nodes: factory.fixedClusterSize }),
    });
    // A stream of its own (the params draw from `new Prng(seed)` directly).
    const root = new Prng(options.seed).fork();
    this.prngNet = root.fork();
    this.prngFault = root.fork();
    this.prngEngine = root.fork();
    const prngClients = root.fork();
    const scenario = chooseAppScenario(options, factory, root.fork());
    this.scenario = scenario;
    const scenarioParams = scenario.params === undefined || factory.fixedClusterSize !== undefined ? params : scenario.params(params, root.fork());
    let engineTuning = "defaults";
    if (factory.tuned !== undefined) {
      const tuned = factory.tuned(root.fork(), scenario.tuning ?? {});
      factory = tuned.factory;
      engineTuning = tuned.description;
    }
    this.factory = factory;
    this.params = { ...scenarioParams, engineTuning, scenario: scenario.name, groups: options.groups ?? 1 };
    const nodeIds = Array.from({ length: this.params.nodes }, (_, i) => i + 1);
    this.partition = new Partition(nodeIds);
    for (let group = 0; group < this.params.groups; group++) this.groups.push(new GroupWatch(group, this.claims, factory, nodeIds));
    this.nodeLink = this.params.nodeLink;
    this.clientLink = this.params.clientLink;
    this.healStartMicros = this.params.faultPhaseMicros;
    if (options.application !== undefined) this.app = new AppHarness(options.application, this.appWorld(), !(options.disabledCheckers ?? []).includes("determinism"));
    for (const id of nodeIds) {
      const disk = new SimDisk<unknown>(this.params.tornWriteProbability);
      const peers = id <= this.params.bootstrapVoters ? nodeIds.slice(0, this.params.bootstrapVoters) : [];
      const nodeOptions = {
        id,
        peers,
        factory,
        engineSeed: () => this.prngEngine.nextUint32(),
        tickMicros: this.params.tickMicros,
        clockRate: this.params.clockRates[id - 1] ?? 1,
        requestTimeoutMicros: this.params.clientTimeoutMicros * 2,
        // A mutant is the engine's or, for any protocol, the replica's (core/replica/mutants.ts).
        mutant: options.mutant !== undefined && options.mutant in factory.mutants ? options.mutant : null,
        replicaMutant: options.mutant !== undefined && isReplicaMutant(options.mutant) ? options.mutant : null,
        kvMutant: options.mutant !== undefined && isKvMutant(options.mutant) ? options.mutant : null,
        snapshotEveryEntries: this.params.snapshotEveryEntries,
        historyRevisions: this.params.historyRevisions,
        ...(this.app === null ? {} : { application: this.app }),
        groups: this.params.groups,
        routerMutant: options.mutant !== undefined && isRouterMutant(options.mutant) ? options.mutant : null,
      };
      this.nodes.set(id, new SimNode(nodeOptions, disk, this));
    }
    if (this.app !== null) {
      this.app.createClients(this.params, nodeIds, prngClients, CLIENT_ID_BASE + 1);
      return;
    }
    const keySpace = this.keySpace();
    for (let i = 0; i < this.params.clients; i++) {
      const id = CLIENT_ID_BASE + i + 1;
      this.clients.set(id, new SimClient(id, nodeIds, this.params, prngClients.fork(), this.clientHost(), i < this.params.roamingClients, keySpace));
    }
    // Streams of their own, forked last, so the KV clients' runs stay as they were.
    if (this.workload === "leases") {
      const prngLeases = root.fork();
      for (let i = 0; i < LEASE_CLIENTS; i++) {
        const id = LEASE_CLIENT_ID_BASE + i + 1;
        this.leaseClients.set(id, new LeaseClient(id, nodeIds, this.params, prngLeases.fork(), this.leaseClientHost(), this.leaseChecker));
      }
    }
    if (this.workload === "watch") {
      const kvMutant = options.mutant !== undefined && isKvMutant(options.mutant) ? options.mutant : null;
      this.watchWorkload = new WatchWorkload(this.watchWorld(root.fork()), nodeIds, root.fork(), kvMutant);
      for (const [id, kv] of this.kvStores) this.watchWorkload.attach(id, kv);
    }
    if (this.workload === "lock") {
      const lockMutant = options.mutant !== undefined && isLockMutant(options.mutant) ? options.mutant : null;
      const prngLocks = root.fork();
      const world = {
        now: () => this.now(),
        after: (delay: number, action: () => void) => this.scheduler.after(delay, action),
        send: this.lockSend.bind(this),
        note: (actor: string, text: () => string) => this.note(actor, text),
      };
      this.lockWorkload = new LockWorkload(world, nodeIds, this.params, prngLocks, lockMutant);
      for (const kv of this.kvStores.values()) this.attachLockChecker(kv);
    }
  }

  /** A lock client's request over the client link to node `to`, and its answers back the same way. */
  private lockSend(to: NodeId, request: LockRequest, reply: (from: NodeId, response: LockResponse) => void): void {
    this.note(`lock client ${request.sessionId}`, () => `-> ${to}: ${request.op}${"lease" in request ? ` lease ${request.lease}` : ""}${"key" in request ? ` ${request.key}` : ""}`);
    const answer = (response: LockResponse): void => {
      for (const delay of packetDelays(this.clientLink, this.prngNet)) this.scheduler.after(delay, () => reply(to, response));
    };
    for (const delay of packetDelays(this.clientLink, this.prngNet)) this.scheduler.after(delay, () => this.nodes.get(to)?.requestLock(request, answer));
  }

  private attachLockChecker(kv: KvStore): void {
    const checker = this.lockWorkload?.checker;
    if (checker !== undefined) kv.setObserver({ committed: (changes) => checker.committed(changes), restored: () => undefined });
  }

  /** What the watchers use of the world: virtual time, client links that keep their order, the nodes' processes. */
  private watchWorld(prng: Prng): WatchWorld {
    return {
      now: () => this.now(),
      after: (delay, action) => this.scheduler.after(delay, action),
      linkDelayMicros: () => this.clientLink.delayMinMicros + Math.round(prng.exponential(this.clientLink.delayMeanMicros)),
      onNode: (id, action) => this.nodes.get(id)?.runInProcess(action) ?? false,
      leader: () => this.currentLeader(DEFAULT_GROUP),
      note: (actor, text) => this.note(actor, text),
    };
  }

  kvStoreCreated(node: NodeId, kv: KvStore, group: GroupId): void {
    if (group !== DEFAULT_GROUP) return;
    this.kvStores.set(node, kv);
    this.watchWorkload?.attach(node, kv);
    this.attachLockChecker(kv);
  }

  /** What a lease client uses of the world: the client link, virtual time, the trace. */
  private leaseClientHost() {
    return {
      now: () => this.now(),
      after: (delay: number, action: () => void) => this.scheduler.after(delay, action),
      send: (clientId: number, to: NodeId, request: LeaseRequest) => {
        this.note(`lease client ${clientId}`, () => `-> ${to}: ${request.op}${"lease" in request ? ` lease ${request.lease}` : ""}${"key" in request ? ` ${request.key}` : ""}`);
        for (const delay of packetDelays(this.clientLink, this.prngNet)) this.scheduler.after(delay, () => this.nodes.get(to)?.requestLease(request));
      },
      note: (actor: string, text: () => string) => this.note(actor, text),
    };
  }

  sendLeaseResponse(from: NodeId, clientId: number, response: LeaseResponse): void {
    for (const delay of packetDelays(this.clientLink, this.prngNet)) this.scheduler.after(delay, () => this.leaseClients.get(clientId)?.onResponse(from, response));
  }

  onClockApplied(node: NodeId, entry: LogEntry, timeMs: number, expired: readonly LeaseExpiry[]): void {
    if (expired.length > 0) this.note(`node ${node}`, () => `clock entry ${entry.index} expired ${expired.map((expiry) => `lease ${expiry.id}`).join(", ")}`);
    this.leaseChecker.applied(node, entry.index, entry.term, timeMs, expired);
  }

  /** What a user's state machine's clients and nodes use of the world: the client link, virtual time, the trace. */
  private appWorld() {
    return {
      now: () => this.now(),
      after: (delay: number, action: () => void) => this.scheduler.after(delay, action),
      sendToNode: (_clientId: number, to: NodeId, request: AppRequest) => {
        for (const delay of packetDelays(this.clientLink, this.prngNet)) this.scheduler.after(delay, () => this.nodes.get(to)?.requestApp(request));
      },
      sendToClient: (from: NodeId, clientId: number, response: Parameters<AppHarness<unknown>["deliverToClient"]>[2]) => {
        for (const delay of packetDelays(this.clientLink, this.prngNet)) this.scheduler.after(delay, () => this.app?.deliverToClient(clientId, from, response));
      },
      note: (actor: string, text: () => string) => this.note(actor, text),
    };
  }

  // ---- NodeHost ----

  now(): number {
    return this.scheduler.now;
  }

  after(delayMicros: number, action: () => void): void {
    this.scheduler.after(delayMicros, action);
  }

  sendToPeer(from: NodeId, to: NodeId, message: GroupEnvelope<unknown>): void {
    this.messagesSent++;
    // The scenarios count group 0's messages, the group they steer.
    if (this.scenario.countsMessages === true && message.group === DEFAULT_GROUP) {
      const text = this.factory.describeMessage(message.message);
      // The kind is the description up to the term (Raft) or ballot (Paxos).
      const match = / (term|ballot)=/.exec(text);
      const end = match === null ? -1 : match.index;
      const kind = end < 0 ? text : text.slice(0, end);
      this.messageKinds.set(kind, (this.messageKinds.get(kind) ?? 0) + 1);
      let senders = this.messageSenders.get(kind);
      if (senders === undefined) this.messageSenders.set(kind, (senders = new Set()));
      senders.add(from);
    }
    if (this.partition.isBlocked(from, to)) {
      this.messagesDropped++;
      this.recordLost(from, to, message, "partition");
      return;
    }
    const delays = packetDelays(this.nodeLink, this.prngNet);
    if (delays.length === 0) {
      this.messagesDropped++;
      this.recordLost(from, to, message, "network");
    }
    const held = this.heldLinks.get(from * 65536 + to);
    if (held !== undefined) {
      if (delays.length > 0) held.messages.push(message);
      return;
    }
    if (this.nodeLink.fifo === true && delays.length > 0) {
      // One connection per direction: a packet never overtakes the one sent before it.
      const link = from * 65536 + to;
      const arrival = Math.max(this.now() + (delays[0] ?? 0), (this.lastArrival.get(link) ?? 0) + 1);
      this.lastArrival.set(link, arrival);
      delays.length = 0;
      delays.push(arrival - this.now());
    }
    for (const delay of delays) this.deliverAfter(delay, from, to, message);
  }

  private deliverAfter(delay: number, from: NodeId, to: NodeId, message: GroupEnvelope<unknown>): void {
    const id = this.recordSend(delay, from, to, message);
    this.scheduler.after(delay, () => {
      const node = this.nodes.get(to);
      if (node === undefined || !node.up) {
        if (id !== null) this.replay?.add({ t: this.now(), e: "drop", id, why: "receiver down" });
        return;
      }
      // A partition also loses what was on the wire when it began.
      if (this.partition.isBlocked(from, to)) {
        if (id !== null) this.replay?.add({ t: this.now(), e: "drop", id, why: "partition" });
        return;
      }
      if (id !== null) this.replay?.add({ t: this.now(), e: "recv", id });
      this.traceLog.add(this.now(), `node ${to}`, () => `<- ${from}: ${this.groupText(message.group, this.factory.describeMessage(message.message))}`);
      node.deliver(from, message);
    });
  }

  sendToClient(from: NodeId, clientId: number, response: ClientResponse): void {
    for (const delay of packetDelays(this.clientLink, this.prngNet)) {
      this.scheduler.after(delay, () => this.clients.get(clientId)?.onResponse(from, response));
    }
  }

  afterFsync(node: SimNode<unknown>, action: () => void): void {
    const latency = Math.max(1, Math.round(this.params.fsyncMicrosMin + this.prngNet.exponential(this.params.fsyncMicrosMean)));
    if (this.crashArmed.delete(node.id)) {
      // The armed crash strikes inside this fsync: after the Ready's `messages` left, before
      // the write is durable — the window persist-before-send exists for.
      const incarnation = node.incarnation;
      this.scheduler.after(this.prngFault.int(0, latency - 1), () => {
        // The heal may have come first: after it, nothing crashes (nothing would restart it).
        if (!this.healed && node.up && node.incarnation === incarnation) this.crashAndRestartLater(node, "during fsync");
      });
    }
    this.scheduler.after(latency, action);
  }

  onApply(node: NodeId, entry: LogEntry, key: string | null, output: string | null | boolean, group: GroupId): void {
    const g = this.watch(group);
    // An applied configuration entry is a committed one; the first node to apply it tells when.
    if (entry.kind === "config" && !g.configsCommitted.some((c) => c.index === entry.index)) g.configsCommitted.push({ index: entry.index, atMicros: this.now() });
    // Always recorded (leader completeness checks against it); judged only when claimed.
    g.stateMachineSafety.onApply(node, entry, this.claims.has("state-machine-safety"));
    if (key !== null) {
      // Exactly once: a request takes effect at one log index, however many copies a
      // retrying client got into the log (the others apply as duplicates, with key null).
      const index = g.appliedIndexOf.get(key);
      if (index !== undefined && index !== entry.index) {
        throw new InvariantViolation("exactly-once", `request ${key} took effect twice: at index ${index} and again at ${entry.index} (on node ${node}${this.groupSuffix(group)})`);
      }
      g.appliedIndexOf.set(key, entry.index);
    }
    if (key !== null && !g.firstApplied.has(key)) g.firstApplied.set(key, { atMicros: this.now(), output });
    if (g.appliedKeyAt[entry.index] === undefined) g.appliedKeyAt[entry.index] = key;
  }

  requestsThrough(index: number, group: GroupId): Set<string> {
    const keys = new Set<string>();
    const appliedKeyAt = this.watch(group).appliedKeyAt;
    for (let i = 1; i <= index && i < appliedKeyAt.length; i++) {
      const key = appliedKeyAt[i];
      if (key !== undefined && key !== null) keys.add(key);
    }
    return keys;
  }

  onStatus(node: SimNode<unknown>, group: GroupId): void {
    const g = this.watch(group);
    const engine = node.engineOf(group);
    const status = engine.status();
    if (group === DEFAULT_GROUP) this.replay?.state({ t: this.now(), e: "state", node: node.id, role: status.role, term: status.term, leader: status.leader, commit: status.commitIndex, last: status.lastIndex });
    const membership = engine.membership?.();
    let worldChanged = false;
    if (membership !== undefined && g.membershipSeen.get(node.id) !== membership) {
      g.membershipSeen.set(node.id, membership);
      this.note(`node ${node.id}`, () => this.groupText(group, `configuration: ${describeMembership(membership)}`));
      worldChanged = true;
    }
    const seen = g.roleSeen.get(node.id);
    if (seen === undefined || seen.role !== status.role || seen.term !== status.term) {
      g.roleSeen.set(node.id, { role: status.role, term: status.term });
      worldChanged = true;
    }
    if (worldChanged) this.observeWorld();
    if (this.claims.has("election-safety")) g.electionSafety.observe(status);
    if (this.claims.has("one-value-per-slot") && engine.entry !== undefined) g.oneValuePerSlot.observe(node.id, status.commitIndex, (index) => engine.entry?.(index) ?? null);
    if (status.role === "leader" && g.leaderTermSeen.get(node.id) !== status.term) {
      g.leaderTermSeen.set(node.id, status.term);
      if (g.group === DEFAULT_GROUP) this.leaseChecker.leaderElected(status.term, this.now());
      this.leaderTerms++;
      g.leaderTerms++;
      this.notableEvent(`node ${node.id}`, this.groupText(group, `became leader of term ${status.term}`));
      if (this.claims.has("leader-completeness")) checkLeaderCompleteness(engine, g.stateMachineSafety.committed());
    }
    if (status.role === "leader" && g.settledTerm.get(node.id) !== status.term && engine.entryTerm(status.commitIndex) === status.term) {
      g.settledTerm.set(node.id, status.term);
      g.opportunities.settle(node.id, status.term, this.now());
    }
    if (status.role === "leader" && this.claims.has("majority-commit")) this.checkCommitMajority(node.id, status.commitIndex, group);
    // The scenarios steer and watch group 0.
    if (group === DEFAULT_GROUP) for (const watcher of this.statusWatchers) watcher(node.id, status);
  }

  /** Majority commit, each time a leader's commit index moves. */
  private checkCommitMajority(leader: NodeId, commitIndex: number, group: GroupId): void {
    const g = this.watch(group);
    const leaderEngine = this.nodes.get(leader)?.engineOf(group);
    const leaderTerm = leaderEngine?.status().term ?? 0;
    const seen = g.leaderCommitSeen.get(leader);
    if (seen !== undefined && seen.term === leaderTerm && seen.commit >= commitIndex) return;
    g.leaderCommitSeen.set(leader, { term: leaderTerm, commit: commitIndex });
    // A new leader's commit index was decided before it led, under the configuration of
    // that time (checked then): only what this leader commits is checked against its own.
    const membership = leaderEngine?.membership?.();
    if (membership !== undefined && (seen === undefined || seen.term !== leaderTerm)) return;
    const term = leaderEngine?.entryTerm(commitIndex) ?? null;
    if (term === null) return; // compacted at once: nothing to compare
    const logs = new Map<NodeId, NodeLog>();
    for (const node of this.nodes.values()) {
      if (node.up) {
        const engine = node.engineOf(group);
        logs.set(node.id, { up: true, snapshotIndex: engine.status().snapshotIndex, entryTerm: (index) => engine.entryTerm(index) });
      } else {
        let durable = g.downDurable.get(node.id);
        if (durable === undefined) {
          durable = node.disk.replay(group);
          g.downDurable.set(node.id, durable);
        }
        logs.set(node.id, { up: false, durable });
      }
    }
    if (membership === undefined) {
      checkMajorityCommit(leader, commitIndex, term, logs);
      return;
    }
    // A majority of every group (both halves of a joint configuration) of the configuration
    // the leader committed under: its latest — or, when it appended a newer one in the same
    // step as it committed, the one before it, which is in force at the committed index.
    const atCommit = leaderEngine?.membershipAt?.(commitIndex) ?? membership;
    const check = (m: Membership): void => {
      for (const group of m.outgoing.length > 0 ? [m.voters, m.outgoing] : [m.voters]) {
        checkMajorityCommit(leader, commitIndex, term, new Map(group.map((id) => [id, logs.get(id) as NodeLog] as const)));
      }
    };
    try {
      check(membership);
    } catch (error) {
      if (!(error instanceof InvariantViolation) || atCommit === membership) throw error;
      check(atCommit);
    }
  }

  private note(actor: string, text: string | (() => string)): void {
    this.traceLog.add(this.now(), actor, text);
    this.replay?.add({ t: this.now(), e: "note", actor, text: typeof text === "string" ? text : text() });
  }

  /** An event worth telling in a failure's story: it goes to both traces. */
  private notableEvent(actor: string, text: string): void {
    this.traceLog.add(this.now(), actor, text);
    this.notable.add(this.now(), actor, text);
    this.replay?.add({ t: this.now(), e: "note", actor, text });
  }

  trace(node: NodeId, text: string): void {
    this.traceLog.add(this.now(), `node ${node}`, text);
    this.replay?.add({ t: this.now(), e: "note", actor: `node ${node}`, text });
  }

  // ---- the replay (replay-trace.ts): watching only, no random draw, nothing the run reads ----

  /** A peer message put on the wire for `delay`: its id, for its arrival (null: no replay recorded). */
  private recordSend(delay: number, from: NodeId, to: NodeId, message: GroupEnvelope<unknown>): number | null {
    if (this.replay === null) return null;
    const id = this.replay.messageId();
    const text = this.factory.describeMessage(message.message);
    const { kind, term } = messageKind(text);
    this.replay.add({ t: this.now(), e: "send", id, from, to, kind, term, text, due: this.now() + delay, ...(this.params.groups === 1 ? {} : { g: message.group }) });
    return id;
  }

  private recordLost(from: NodeId, to: NodeId, message: GroupEnvelope<unknown>, why: "partition" | "network"): void {
    if (this.replay === null) return;
    const { kind } = messageKind(this.factory.describeMessage(message.message));
    this.replay.add({ t: this.now(), e: "lost", from, to, kind, why, ...(this.params.groups === 1 ? {} : { g: message.group }) });
  }

  private recordPartition(): void {
    this.replay?.add({ t: this.now(), e: "partition", cut: this.partition.cutLinks(), text: this.partition.description });
  }

  // ---- groups ----

  private watch(group: GroupId): GroupWatch {
    const g = this.groups[group];
    if (g === undefined) throw new Error(`no group ${group} in a run of ${this.groups.length}`);
    return g;
  }

  /** A trace line about one group: as before groups existed when the run has one. */
  private groupText(group: GroupId, text: string): string {
    return this.params.groups === 1 ? text : `[g${group}] ${text}`;
  }

  private groupSuffix(group: GroupId): string {
    return this.params.groups === 1 ? "" : `, group ${group}`;
  }

  /**
   * The keys the clients use, with their groups: `params.keys` of them per group, the first
   * names `k1, k2, ...` the fixed hash gives each group, so every group has work. Null for
   * one group: the clients draw `k1 .. k{keys}` as before groups existed.
   */
  private keySpace(): KeySpace | null {
    const groups = this.params.groups;
    if (groups === 1) return null;
    const names: string[] = [];
    const perGroup = new Array<number>(groups).fill(0);
    for (let i = 1; names.length < groups * this.params.keys; i++) {
      const group = groupOfKey(`k${i}`, groups);
      if ((perGroup[group] ?? 0) >= this.params.keys) continue;
      perGroup[group] = (perGroup[group] ?? 0) + 1;
      names.push(`k${i}`);
    }
    return { names, groupOf: (key) => groupOfKey(key, groups) };
  }

  private groupCommitCounts(): { readonly requests: number; readonly deviceSyncs: number } {
    let requests = 0;
    let deviceSyncs = 0;
    for (const node of this.nodes.values()) {
      requests += node.groupCommitCounts.requests;
      deviceSyncs += node.groupCommitCounts.deviceSyncs;
    }
    return { requests, deviceSyncs };
  }

  private groupOfKey(key: string): GroupId {
    return groupOfKey(key, this.params.groups);
  }

  // ---- clients ----

  private clientHost() {
    return {
      now: () => this.now(),
      after: (delay: number, action: () => void) => this.scheduler.after(delay, action),
      send: (clientId: number, to: NodeId, request: ClientRequest) => {
        const text = (): string => `-> ${to}: ${request.op} ${request.key}${request.value === undefined ? "" : ` ${request.value}`}${request.expected === undefined ? "" : ` if ${request.expected}`}`;
        this.traceLog.add(this.now(), `client ${clientId}`, text);
        this.replay?.add({ t: this.now(), e: "op", client: clientId, to, text: text() });
        for (const delay of packetDelays(this.clientLink, this.prngNet)) {
          this.scheduler.after(delay, () => this.nodes.get(to)?.request(request));
        }
      },
      record: (operation: Operation, sequence: number, answeredBy: NodeId | null) => {
        const key = requestKey(operation.client, sequence);
        this.history.push(operation);
        this.historyKeys.push(key);
        this.traceLog.add(this.now(), `client ${operation.client}`, () => describeOperation(operation));
        this.replay?.add({ t: this.now(), e: "result", client: operation.client, status: operation.status, text: describeOperation(operation) });
        const acknowledged = operation.status === "ok" && (operation.op === "put" || operation.op === "delete" || (operation.op === "cas" && operation.output === true));
        if (acknowledged) this.acked.push({ requestKey: key, operation, answeredBy });
      },
    };
  }

  // ---- faults ----

  /** Records what the world allows now (see opportunity.ts): after every fault and every change of leadership. */
  private observeWorld(): void {
    for (const g of this.groups) this.observeGroup(g);
  }

  private observeGroup(g: GroupWatch): void {
    const leaderId = this.currentLeader(g.group);
    const leaderNode = leaderId === null ? undefined : this.nodes.get(leaderId);
    let leader = null;
    if (leaderNode !== undefined) {
      const engine = leaderNode.engineOf(g.group);
      const m = engine.membership?.();
      const groups = m === undefined ? [[...this.nodes.keys()]] : m.outgoing.length > 0 ? [m.voters, m.outgoing] : [m.voters];
      leader = { id: leaderNode.id, term: engine.status().term, groups };
    }
    const held = (a: NodeId, b: NodeId): boolean => this.heldLinks.has(a * 65536 + b);
    g.opportunities.observe(this.now(), {
      running: (id) => this.nodes.get(id)?.up === true && this.nodes.get(id)?.paused === false,
      linked: (a, b) => !this.partition.isBlocked(a, b) && !this.partition.isBlocked(b, a) && !held(a, b) && !held(b, a),
      leader,
    });
  }

  /** The leader of `group` (group 0's, the one the nemesis aims at, by default) with the highest term among the live nodes. */
  private currentLeader(group: GroupId = DEFAULT_GROUP): NodeId | null {
    let best: { id: NodeId; term: number } | null = null;
    for (const node of this.nodes.values()) {
      if (!node.up) continue;
      const status = node.engineOf(group).status();
      if (status.role === "leader" && (best === null || status.term > best.term)) best = { id: node.id, term: status.term };
    }
    return best === null ? null : best.id;
  }

  /** What the scenario's nemesis and checks may do and see. */
  private context(): ScenarioContext {
    const node = (id: NodeId): SimNode<unknown> => {
      const found = this.nodes.get(id);
      if (found === undefined) throw new Error(`scenario ${this.scenario.name}: no node ${id}`);
      return found;
    };
    return {
      params: this.params,
      prng: this.prngFault,
      nodeIds: [...this.nodes.keys()],
      now: () => this.now(),
      during: (delay, action) => {
        if (this.now() + delay >= this.healStartMicros) return;
        this.scheduler.after(delay, () => {
          if (!this.healed) action();
        });
      },
      repeat: (mean, action) => {
        const next = (): void => {
          const delay = this.prngFault.exponential(mean);
          if (this.now() + delay >= this.healStartMicros) return;
          this.scheduler.after(delay, () => {
            if (this.healed) return;
            this.faultsInjected++;
            action();
            next();
          });
        };
        next();
      },
      leader: () => this.currentLeader(),
      isUp: (id) => node(id).up,
      status: (id) => (node(id).up ? node(id).engine.status() : null),
      crash: (id, restart = "later") => {
        const victim = node(id);
        if (!victim.up) return;
        if (restart === "later") this.crashAndRestartLater(victim, "now");
        else this.crash(victim, "now");
      },
      armCrash: (id) => {
        if (!node(id).up) return;
        this.crashArmed.add(id);
        this.note(`node ${id}`, "will crash during its next fsync");
      },
      restart: (id) => {
        if (!node(id).up) this.restart(node(id));
      },
      changeMembership: (from, change) => {
        const admission = node(from).changeMembership(change);
        if (admission === null) return false;
        const wanted = `voters ${change.voters.join(",")}${change.learners.length > 0 ? ` learners ${change.learners.join(",")}` : ""}${change.joint === true ? " (joint)" : ""}`;
        this.notableEvent(`node ${from}`, `asked for ${wanted}: ${admission.accepted ? "accepted" : `refused (${admission.error.message})`}`);
        return admission.accepted;
      },
      membership: (id) => (node(id).up ? (node(id).engine.membership?.() ?? null) : null),
      transferLeadership: (from, to) => {
        if (!node(from).up) return false;
        const accepted = node(from).transferLeadership(to);
        if (accepted) this.notableEvent(`node ${from}`, `asked to hand leadership to ${to === null ? "the most up-to-date member" : `node ${to}`}`);
        return accepted;
      },
      pause: (id, micros) => {
        const victim = node(id);
        if (!victim.up || victim.paused) return;
        victim.pause();
        this.replay?.add({ t: this.now(), e: "node", node: id, what: "paused" });
        this.observeWorld();
        const pause = victim.pauses;
        this.notableEvent(`node ${id}`, "paused");
        this.scheduler.after(micros, () => {
          if (!this.healed && victim.pauses === pause) this.resume(victim);
        });
      },
      partition: (shape) => {
        this.partition.apply(shape, this.prngFault, this.currentLeader());
        this.recordPartition();
        this.observeWorld();
        this.notableEvent("nemesis", `partition: ${this.partition.description}`);
      },
      partitionGroups: (groups) => {
        this.partition.applyGroups(groups);
        this.recordPartition();
        this.observeWorld();
        this.notableEvent("nemesis", `partition: ${this.partition.description}`);
      },
      holdLink: (from, to) => {
        if (this.heldLinks.has(from * 65536 + to)) return;
        this.heldLinks.set(from * 65536 + to, { from, to, messages: [] });
        this.observeWorld();
        this.notableEvent("nemesis", `holding packets ${from} -> ${to} on the wire`);
      },
      releaseLink: (from, to) => this.releaseLink(from * 65536 + to),
      healPartition: () => {
        if (!this.partition.active) return;
        this.partition.heal();
        this.recordPartition();
        this.observeWorld();
        this.notableEvent("nemesis", "partition healed");
      },
      isPartitioned: () => this.partition.active,
      messagesByKind: () => {
        if (this.scenario.countsMessages !== true) throw new Error(`scenario ${this.scenario.name} reads message counts without countsMessages: true`);
        return this.messageKinds;
      },
      messageSenders: (pattern) => {
        if (this.scenario.countsMessages !== true) throw new Error(`scenario ${this.scenario.name} reads message senders without countsMessages: true`);
        const senders = new Set<NodeId>();
        for (const [kind, from] of this.messageSenders) if (pattern.test(kind)) for (const id of from) senders.add(id);
        return senders.size;
      },
      snapshotInstalls: (id) => node(id).snapshotsInstalled,
      servingWindows: () => this.watch(DEFAULT_GROUP).opportunities.servingWindows(this.now() + 1),
      connectedGroup: (from, to, among, minimum, including) => this.watch(DEFAULT_GROUP).opportunities.connectedGroup(from, to, among, minimum, including),
      configsCommitted: () => this.watch(DEFAULT_GROUP).configsCommitted,
      leaderTerms: () => this.watch(DEFAULT_GROUP).leaderTerms,
      entryTerm: (id, index) => (node(id).up ? node(id).engine.entryTerm(index) : null),
      onStatus: (watcher) => {
        this.statusWatchers.push((id, status) => {
          if (!this.healed) watcher(id, status);
        });
      },
      fail: (message) => {
        throw new InvariantViolation(`scenario ${this.scenario.name}`, message);
      },
      note: (text) => this.notableEvent(`scenario`, text),
    };
  }

  private crashAndRestartLater(node: SimNode<unknown>, when: string): void {
    this.crash(node, when);
    this.scheduler.after(this.prngFault.int(100_000, 3_000_000), () => {
      if (!this.healed && !node.up) this.restart(node);
    });
  }

  private crash(node: SimNode<unknown>, when: string): void {
    this.crashArmed.delete(node.id);
    node.crash();
    this.replay?.add({ t: this.now(), e: "node", node: node.id, what: "crashed" });
    this.watchWorkload?.drop(node.id);
    this.observeWorld();
    const outcome = node.disk.crash(this.prngFault);
    for (const g of this.groups) g.downDurable.delete(node.id);
    this.crashes++;
    if (outcome.lost > 0) this.crashesLosingWrites++;
    this.notableEvent(`node ${node.id}`, `CRASHED ${when} (${outcome.lost} unsynced write(s) lost${outcome.torn ? ", last surviving write torn" : ""})`);
  }

  private restart(node: SimNode<unknown>): void {
    for (const g of this.groups) {
      g.downDurable.delete(node.id);
      g.oneValuePerSlot.restarted(node.id);
    }
    this.replay?.forget(node.id);
    this.replay?.add({ t: this.now(), e: "node", node: node.id, what: "restarted" });
    node.restart();
    this.observeWorld();
    this.notableEvent(`node ${node.id}`, `restarted (term ${node.engine.status().term}, last index ${node.engine.status().lastIndex})`);
  }

  private resume(node: SimNode<unknown>): void {
    if (!node.paused) return;
    this.notableEvent(`node ${node.id}`, "resumed");
    this.replay?.add({ t: this.now(), e: "node", node: node.id, what: "resumed" });
    node.resume();
    this.observeWorld();
  }

  /** Delivers a held link's packets, in the order sent, and stops holding it. */
  private releaseLink(link: number): void {
    const held = this.heldLinks.get(link);
    if (held === undefined) return;
    this.heldLinks.delete(link);
    this.observeWorld();
    this.notableEvent("nemesis", `releasing ${held.messages.length} held packet(s) ${held.from} -> ${held.to}`);
    held.messages.forEach((message, i) => this.deliverAfter(1 + i, held.from, held.to, message));
  }

  private heal(): void {
    this.healed = true;
    for (const link of [...this.heldLinks.keys()]) this.releaseLink(link);
    this.crashArmed.clear();
    this.partition.heal();
    this.recordPartition();
    this.observeWorld();
    this.nodeLink = { ...RELIABLE_LINK, delayMinMicros: this.params.nodeLink.delayMinMicros };
    this.clientLink = this.nodeLink;
    for (const node of this.nodes.values()) {
      if (!node.up) this.restart(node);
      else if (node.paused) this.resume(node);
    }
    this.notableEvent("nemesis", "HEAL: partitions removed, crashed nodes restarted, paused nodes resumed, network reliable");
  }

  // ---- the run ----

  /** Boots every process at a random point of its first tick, so their ticks are out of phase. */
  private bootNodes(): void {
    for (const node of this.nodes.values()) {
      const interval = Math.round(this.params.tickMicros * (this.params.clockRates[node.id - 1] ?? 1));
      this.scheduler.after(this.prngFault.int(0, interval), () => node.start());
    }
  }

  private startCheckpoints(): void {
    const checkpoint = (): void => {
      this.checkLogs();
      this.scheduler.after(CHECKPOINT_MICROS, checkpoint);
    };
    this.scheduler.after(CHECKPOINT_MICROS, checkpoint);
  }

  private checkLogs(): void {
    if (!this.claims.has("log-matching")) return;
    for (const g of this.groups) {
      const live = new Map([...this.nodes.values()].filter((n) => n.up).map((n) => [n.id, n.engineOf(g.group)] as const));
      checkLogMatching(live);
    }
  }

  run(): SimResult {
    const params = this.params;
    const healEnd = params.faultPhaseMicros + params.healPhaseMicros;
    const settleEnd = healEnd + params.clientTimeoutMicros * (1 + params.clientRetries) + 2_000_000;
    try {
      this.observeWorld();
      this.bootNodes();
      this.startCheckpoints();
      for (const client of this.clients.values()) client.start();
      for (const client of this.leaseClients.values()) client.start();
      this.watchWorkload?.start();
      this.lockWorkload?.start();
      this.app?.startClients();
      this.scenario.start(this.context());
      this.scheduler.at(params.faultPhaseMicros, () => this.heal());
      this.scheduler.at(healEnd, () => {
        for (const client of this.clients.values()) client.stop();
        for (const client of this.leaseClients.values()) client.stop();
        this.watchWorkload?.settle();
        this.lockWorkload?.stop();
        this.app?.stopClients();
      });
      this.runUntil(settleEnd);
      this.finalChecks();
    } catch (error) {
      this.failureAtEvent = this.replay?.eventsInRun ?? null;
      if (error instanceof InvariantViolation) this.failure = { checker: error.checker, message: error.message, atMicros: this.now() };
      else if (error instanceof AssertionError) {
        // An engine (or the driver) caught its own broken invariant: a bug found, reported
        // like any other failure, with the seed that reproduces it.
        this.failure = { checker: "assertion", message: `${error.message}\n${(error.stack ?? "").split("\n").slice(1, 4).join("\n")}`, atMicros: this.now() };
      } else throw error;
    }
    const operations = { ok: 0, fail: 0, unknown: 0 };
    for (const op of this.app?.history ?? this.history) operations[op.status]++;
    if (this.failure !== null) this.notableEvent("checker", `FAILED ${this.failure.checker}: ${this.failure.message}`);
    return {
      seed: this.options.seed,
      protocol: this.options.protocol.name,
      mutant: this.options.mutant ?? null,
      request: {
        faults: this.options.faults ?? null,
        scenario: this.options.scenario ?? "random",
        ...(this.options.application === undefined ? {} : { stateMachine: this.options.application.path }),
        ...(this.options.workload === undefined ? {} : { workload: this.options.workload }),
        ...(params.groups === 1 ? {} : { groups: params.groups }),
      },
      params,
      failure: this.failure,
      history: this.history,
      stats: {
        virtualMicros: this.now(),
        events: this.scheduler.eventsRun,
        messagesSent: this.messagesSent,
        messagesDropped: this.messagesDropped,
        operations,
        leaderTerms: this.leaderTerms,
        crashes: this.crashes,
        crashesLosingWrites: this.crashesLosingWrites,
        faultsInjected: this.faultsInjected,
        ...(this.params.groups === 1 ? {} : { groupCommit: this.groupCommitCounts() }),
        ...(this.watchWorkload === null ? {} : { watch: this.watchWorkload.stats() }),
        ...(this.lockWorkload === null ? {} : { lock: this.lockWorkload.stats() }),
      },
      traceTail: this.failure === null ? [] : this.traceLog.tail(TRACE_TAIL_LINES),
      notableTail: this.failure === null ? [] : this.notable.tail(NOTABLE_TAIL_LINES),
      trace: this.options.fullTrace === true ? this.traceLog.tail(FULL_TRACE_CAPACITY) : [],
      ...(this.app === null ? {} : { appHistory: this.app.history }),
      ...(this.replay === null ? {} : { replay: { events: this.replay.events, eventsInRun: this.replay.eventsInRun, cappedAtMicros: this.replay.cappedAtMicros, failureAtEvent: this.failure === null ? null : this.failureAtEvent } }),
    };
  }

  private runUntil(time: number): void {
    const startEvents = this.scheduler.eventsRun;
    this.scheduler.runUntil(time, () => this.scheduler.eventsRun - startEvents > EVENTS_MAX);
    if (this.scheduler.eventsRun - startEvents > EVENTS_MAX) {
      throw new InvariantViolation("event-budget", `more than ${EVENTS_MAX} events before ${formatTime(time)}: a livelock or a message storm`);
    }
  }

  private finalChecks(): void {
    const disabled = new Set(this.options.disabledCheckers ?? []);
    this.checkLogs();
    this.watchWorkload?.check();
    this.lockWorkload?.checker.check();
    if (!disabled.has("liveness")) {
      if (this.app === null) for (const g of this.groups) this.checkLiveness(g.group);
      else this.app.checkLiveness(this.healStartMicros);
    }
    if (!disabled.has("lost-write")) {
      for (const g of this.groups) {
        // Every member of the final configuration must hold every acknowledged write; a node
        // that was removed stopped receiving them.
        const leader = this.currentLeader(g.group);
        const membership = leader === null ? undefined : this.nodes.get(leader)?.engineOf(g.group).membership?.();
        const applied = new Map([...this.nodes.values()].filter((n) => n.up && (membership === undefined || isMember(membership, n.id))).map((n) => [n.id, n.appliedRequestsOf(g.group)] as const));
        if (this.app === null) checkNoLostWrites(this.groups.length === 1 ? this.acked : this.acked.filter((write) => this.groupOfKey(write.operation.key) === g.group), applied);
        else this.app.checkNoLostWrites(applied);
      }
    }
    if (disabled.has("linearizability")) return;
    if (this.app !== null) return this.app.checkLinearizability();
    for (const g of this.groups) {
      const history = this.resolvedHistory(g.group);
      const result = checkLinearizability(history);
      if (result.verdict === "violation") throw new InvariantViolation("linearizability", `${result.explanation}${this.groupSuffix(g.group) === "" ? "" : ` (in group ${g.group})`}`);
      if (result.verdict === "inconclusive") throw new InvariantViolation("linearizability", `inconclusive: ${result.explanation}`);
    }
  }

  /**
   * The history with every timed-out write resolved. The simulator sees every state
   * machine, so it knows what no client could: a write no node ever applied did not happen
   * (answers come only from applied state), and a write some node applied took effect no
   * later than that first application, with the outcome it computed there. A linearizable
   * system must already have ordered the write by then, so this only removes orders the
   * checker would otherwise allow: the check gets stronger and its search small.
   */
  private resolvedHistory(group: GroupId): Operation[] {
    const firstApplied = this.watch(group).firstApplied;
    const resolved = this.history.map((op, position) => {
      if (op.status !== "unknown" || op.op === "get") return op;
      const applied = firstApplied.get(this.historyKeys[position] as string);
      if (applied === undefined) return { ...op, status: "fail" as const };
      return { ...op, status: "ok" as const, output: applied.output, return: Math.max(op.call, applied.atMicros) };
    });
    return this.groups.length === 1 ? resolved : resolved.filter((op) => this.groupOfKey(op.key) === group);
  }

  private checkLiveness(group: GroupId): void {
    const grace = 2_000_000;
    const after = this.healStartMicros + grace;
    const served = this.history.filter((op) => op.status === "ok" && op.return >= after && (this.groups.length === 1 || this.groupOfKey(op.key) === group));
    const reads = served.filter((op) => op.op === "get").length;
    const writes = served.length - reads;
    if ((reads === 0 && this.params.opMix.get > 0) || writes === 0) {
      // The heal offers every chance by construction (everyone restarted, resumed, linked,
      // and nothing fails after it); measured all the same, as every progress check is.
      const healEnd = this.params.faultPhaseMicros + this.params.healPhaseMicros;
      const ids = [...this.nodes.keys()];
      const linked = this.watch(group).opportunities.connectedGroup(after, healEnd, ids, Math.floor(ids.length / 2) + 1);
      if (linked.length === 0) return;
      throw new InvariantViolation(
        "liveness",
        `no liveness${this.groupSuffix(group) === "" ? "" : ` in group ${group}`}: after healing at ${formatTime(this.healStartMicros)} (plus ${formatTime(grace)} grace) the cluster completed ${reads} read(s) and ${writes} write(s), though nodes ${linked.join(",")} were running and linked with each other from ${formatTime(after)} to ${formatTime(healEnd)}`,
      );
    }
  }
}

/** Why `scenario` cannot run as asked, or null when it can. */
export function scenarioConflict(name: string, faults: readonly FaultClass[] | undefined, factory: EngineFactory<unknown, unknown>): string | null {
  if (name === "random" || name === "mixed") return null;
  const scenario = findScenario(name);
  if (scenario === undefined) return `no scenario "${name}"; choose one of: ${SCENARIO_NAMES.join(", ")}`;
  if (faults !== undefined) return `scenario ${name} chooses its own faults; --faults goes with the mixed nemesis (--scenario mixed or random)`;
  if (factory.fixedClusterSize !== undefined) return `protocol ${factory.name} runs on ${factory.fixedClusterSize} node(s) only; it plays the mixed nemesis`;
  if (scenario.needsCompaction === true && factory.compacts !== true) return `scenario ${name} is about snapshots, and protocol ${factory.name} does not compact its log`;
  if (scenario.needsMembership === true && factory.reconfigures !== true) return `scenario ${name} changes the membership, and protocol ${factory.name} cannot`;
  if (!scenarioApplies(scenario, factory.name)) return `scenario ${name} is about ${(scenario.protocols ?? []).join(", ")} only; protocol ${factory.name} skips it`;
  return null;
}

/**
 * The scenario, for a user's state machine: as for the KV store, except that one that
 * checks the KV store only is refused by name and drawn again at random, so it never
 * passes without having tested anything.
 */
function chooseAppScenario(options: SimOptions, factory: EngineFactory<unknown, unknown>, prng: Prng): Scenario {
  if (options.application === undefined) return chooseScenario(options, factory, prng);
  const conflict = appScenarioConflict(options.scenario ?? "random");
  if (conflict !== null) throw new Error(conflict);
  for (let attempt = 0; ; attempt++) {
    const scenario = chooseScenario(options, factory, prng);
    if (appScenarioConflict(scenario.name) === null) return scenario;
    if (attempt >= 100) return findScenario("mixed") as Scenario;
  }
}

function chooseScenario(options: SimOptions, factory: EngineFactory<unknown, unknown>, prng: Prng): Scenario {
  const name = options.scenario ?? "random";
  const conflict = scenarioConflict(name, options.faults, factory);
  if (conflict !== null) throw new Error(conflict);
  const mixed = findScenario("mixed") as Scenario;
  if (name === "mixed") return mixed;
  if (name !== "random") return findScenario(name) as Scenario;
  // A narrowed fault list or a one-node control asks for exactly that: the mixed nemesis.
  if (options.faults !== undefined || factory.fixedClusterSize !== undefined) return mixed;
  return pickScenario(prng, factory.compacts === true, factory.reconfigures === true, factory.name);
}

/**
 * One deterministic run, orchestrated: builds the world a seed describes (nodes driving real
 * engines on their simulated disks, clients, the wire between them), hosts the nodes
 * (NodeHost), runs the fault phase, the heal and the settling, and ends with every checker.
 * Its parts live beside it: run-options.ts (what a run is asked for and answers), wire.ts
 * (the network), nemesis.ts (the faults a scenario makes), side-workloads.ts (leases,
 * watches, locks), run-log.ts (the trace, the story, the replay), group-watch.ts (each
 * group's checker state), quiet-groups.ts (--quiesce: liveness, quiescence's checks and
 * counts), hot-groups.ts (the clients' keys over the groups, and --hot-groups), node-cost.ts
 * and throughput.ts (--node-cost-us, --throughput).
 */
import { AssertionError } from "../core/common/assert.js";
import { Prng } from "../core/common/prng.js";
import type { EngineFactory, EngineInvariant, LogEntry, NodeId } from "../core/engine/contract.js";
import { describeMembership, isMember } from "../core/engine/membership.js";
import { isReplicaMutant } from "../core/replica/mutants.js";
import { isKvMutant, isTxnMutant, kvMutantWorkload } from "../core/kv/mutants.js";
import type { KvStore } from "../core/kv/store.js";
import type { LeaseExpiry } from "../core/kv/model.js";
import type { LeaseResponse } from "./lease-workload.js";
import { isLockMutant } from "../core/kv/lock-turn.js";
import { hasMutant, mutantNames } from "./mutants.js";
import { checkLeaderCompleteness } from "./check/leader-completeness.js";
import { checkLinearizability } from "./check/linearizability.js";
import { checkLogMatching } from "./check/log-matching.js";
import { checkLiveness } from "./check/liveness.js";
import { checkNoLostWrites, type AckedWrite } from "./check/lost-writes.js";
import { InvariantViolation } from "./check/violation.js";
import { SimDisk } from "./disk.js";
import { describeOperation, formatTime, type Operation } from "./history.js";
import type { ClientRequest, ClientResponse } from "./messages.js";
import { requestKey, SimNode, type NodeHost } from "./node.js";
import { GroupWatch } from "./group-watch.js";
import { deriveParams, type SimParams } from "./params.js";
import type { Scenario } from "./scenarios.js";
import { Scheduler } from "./scheduler.js";
import { SimClient } from "./workload.js";
import { DEFAULT_GROUP, groupOfKey, type GroupEnvelope, type GroupId } from "../core/multi/group.js";
import { isRouterMutant } from "../core/multi/mutants.js";
import { HotGroups } from "./hot-groups.js";
import { livenessOptions, QuietGroups } from "./quiet-groups.js";
import { AppHarness, type AppRequest } from "./app/harness.js";
import { PlacementRun, isPlacementMutant } from "./placement-run.js";
import { checkReplicaStates } from "./check/replica-state.js";
import { balancingConflict, chooseAppScenario, groupsConflict, placementConflict, quiescenceConflict, splitsConflict, SIM_NODES_MAX, TXN_GROUPS_DEFAULT, withCostOptions, costRequest, nodeCostsOf, throughputParams, throughputStats, type SimFailure, type SimOptions, type SimResult, type SimWorkload } from "./run-options.js";
import { SplitRun, splitSlots } from "./split-run.js";
import { isSplitMutant } from "../core/kv/split-mutants.js";
import { RangeStateHeldError } from "../core/kv/split.js";
import { RunLog } from "./run-log.js";
import { Wire } from "./wire.js";
import { Nemesis } from "./nemesis.js";
import { SideWorkloads } from "./side-workloads.js";

export { balancingConflict, groupsConflict, placementConflict, quiescenceConflict, splitsConflict, SIM_NODES_MAX, QUIESCENCE_MUTANTS, scenarioConflict, SIM_GROUPS_MAX, SIM_WORKLOADS, TXN_GROUPS_DEFAULT, type SimFailure, type SimOptions, type SimResult, type SimStats, type SimWorkload } from "./run-options.js";

/** Client endpoints are numbered from here, apart from node ids. */
const CLIENT_ID_BASE = 1000;
/** Lease clients are numbered from here, apart from the KV clients. */
const LEASE_CLIENT_ID_BASE = CLIENT_ID_BASE + 500;
/** A run that needs more events than this is broken, not slow. */
const EVENTS_MAX = 20_000_000;
const CHECKPOINT_MICROS = 1_000_000;
/**
 * One deterministic run: N processes driving real engines on a virtual clock, clients
 * issuing operations, a fault phase, then a heal phase in which the cluster must serve
 * again, then every checker. The seed fixes everything.
 */
export function runSimulation(options: SimOptions): SimResult {
  return new Simulation(withCostOptions(options)).run();
}

class Simulation implements NodeHost<unknown> {
  private readonly params: SimParams;
  private readonly scheduler = new Scheduler();
  private readonly prngNet: Prng;
  private readonly prngFault: Prng;
  private readonly prngEngine: Prng;
  private readonly nodes = new Map<NodeId, SimNode<unknown>>();
  private readonly clients = new Map<number, SimClient>();
  /** The trace, the story of the run, and the replay when asked for. */
  private readonly log: RunLog;
  private readonly wire: Wire;
  private readonly nemesis: Nemesis;
  private readonly history: Operation[] = [];
  /** The request key of each history entry, by position. */
  private readonly historyKeys: string[] = [];
  private readonly acked: AckedWrite[] = [];
  /** By group: every checker's state (one group unless `--groups`). */
  private readonly groups: GroupWatch[] = [];
  private readonly claims: ReadonlySet<EngineInvariant>;
  private readonly factory: EngineFactory<unknown, unknown>;
  private readonly scenario: Scenario;
  private failure: SimFailure | null = null;
  /** When the fault phase ends and the heal comes. */
  private readonly healStartMicros: number;
  private leaderTerms = 0;
  /** A run of a user's state machine: its nodes' and clients' part (null: the KV store). */
  private readonly app: AppHarness<unknown> | null = null;
  private readonly workload: SimWorkload;
  /** The leases, watch or lock clients beside the KV clients (none for "kv"). */
  private readonly sides: SideWorkloads;
  private failureAtEvent: number | null = null;
  private readonly quiesce: boolean;
  /** With --quiesce: quiescence's checks and counts (null without). */
  private readonly quiet: QuietGroups | null;
  /** Which groups get requests, and the keys the clients use. */
  private readonly hotGroups: HotGroups;
  /** With --replicas: groups on some nodes only (null: every group on every node). */
  private readonly placement: PlacementRun | null = null;
  /** With --splits: ranges of a table that split during the run (null: groups own keys by hash). */
  private readonly splitRun: SplitRun | null = null;

  constructor(private readonly options: SimOptions) {
    let factory = options.protocol;
    if (options.mutant !== undefined && !hasMutant(factory, options.mutant)) {
      throw new Error(`protocol ${factory.name} has no mutant "${options.mutant}"; it has: ${mutantNames(factory).join(", ")}`);
    }
    this.workload = options.workload ?? (options.mutant === undefined ? "kv" : isKvMutant(options.mutant) ? kvMutantWorkload(options.mutant) : isLockMutant(options.mutant) ? "lock" : isTxnMutant(options.mutant) ? "bank" : "kv");
    const txnWorkload = this.workload === "txn" || this.workload === "bank";
    if (options.mutant !== undefined && isTxnMutant(options.mutant) && !txnWorkload) throw new Error(`mutant ${options.mutant} breaks transactions across groups: run it with the bank or txn workload`);
    // Transactions across groups need groups: three unless asked otherwise.
    const groups = options.groups ?? (txnWorkload ? TXN_GROUPS_DEFAULT : 1);
    if (this.workload !== "kv" && options.application !== undefined) throw new Error(`the ${this.workload} workload runs on the KV store, not a user's state machine`);
    const groupsProblem = groupsConflict(groups, options.application !== undefined);
    if (groupsProblem !== null) throw new Error(groupsProblem);
    if (this.workload !== "kv" && !txnWorkload && groups > 1) throw new Error(`the ${this.workload} workload runs in one group: leave out --groups`);
    this.quiesce = options.quiesce === true;
    const quiescenceProblem = quiescenceConflict({ quiesce: this.quiesce, hotGroups: options.hotGroups, groups: options.groups ?? 1, mutant: options.mutant, stateMachine: options.application !== undefined }, factory);
    if (quiescenceProblem !== null) throw new Error(quiescenceProblem);
    const balancingProblem = balancingConflict(options.balanceLeaders === true, options.groups ?? 1, options.application !== undefined);
    if (balancingProblem !== null) throw new Error(balancingProblem);
    const placementProblem = placementConflict({ nodes: options.nodes, replicas: options.replicas, groups, scenario: options.scenario ?? "random", workload: this.workload === "kv" ? undefined : this.workload, quiesce: this.quiesce, balanceLeaders: options.balanceLeaders === true, stateMachine: options.application !== undefined }, factory);
    if (placementProblem !== null) throw new Error(placementProblem);
    if (options.zones !== undefined && (options.replicas === undefined || !Number.isSafeInteger(options.zones) || options.zones < 1 || options.zones > SIM_NODES_MAX)) throw new Error(`--zones takes a number of zones from 1 to ${SIM_NODES_MAX}, with --replicas (the nodes are given them in turn)`);
    if (options.mutant !== undefined && isPlacementMutant(options.mutant) && options.replicas === undefined) throw new Error(`mutant ${options.mutant} breaks placement: run it with --replicas (and --nodes above it)`);
    const splitsProblem = splitsConflict({ splits: options.splits, groups, replicas: options.replicas, workload: this.workload === "kv" ? undefined : this.workload, hotGroups: options.hotGroups, stateMachine: options.application !== undefined }, factory);
    if (splitsProblem !== null || (options.mutant !== undefined && isSplitMutant(options.mutant) && options.splits === undefined)) throw new Error(splitsProblem ?? `mutant ${options.mutant} breaks splits: run it with --splits`);
    this.claims = new Set(factory.invariants);
    const params = deriveParams(options.seed, {
      ...(options.faults === undefined ? {} : { faults: options.faults }),
      ...(factory.fixedClusterSize === undefined ? (options.nodes === undefined ? {} : { nodes: options.nodes }) : { nodes: factory.fixedClusterSize }),
    });
    // A stream of its own (the params draw from `new Prng(seed)` directly).
    const root = new Prng(options.seed).fork();
    this.prngNet = root.fork();
    this.prngFault = root.fork();
    this.prngEngine = root.fork();
    const prngClients = root.fork();
    const scenario = chooseAppScenario(options, factory, root.fork());
    this.scenario = scenario;
    const scenarioParams = scenario.params === undefined || factory.fixedClusterSize !== undefined || options.nodes !== undefined ? params : scenario.params(params, root.fork());
    let engineTuning = "defaults";
    if (factory.tuned !== undefined && options.throughput === undefined) {
      const tuned = factory.tuned(root.fork(), this.quiesce ? { ...scenario.tuning, quiesce: true } : (scenario.tuning ?? {}));
      factory = tuned.factory;
      engineTuning = tuned.description;
    }
    this.factory = factory;
    this.params = throughputParams({ ...scenarioParams, engineTuning, scenario: scenario.name, groups: options.splits === undefined ? groups : splitSlots(groups, options.splits) }, options.throughput);
    const describeMessage = (message: unknown): string => this.factory.describeMessage(message);
    this.log = new RunLog({ now: () => this.now(), describeMessage, groups: this.params.groups, fullTrace: options.fullTrace === true, replayEventsMax: options.replayEventsMax });
    const nodeIds = Array.from({ length: this.params.nodes }, (_, i) => i + 1);
    this.wire = new Wire({
      scheduler: this.scheduler,
      prng: this.prngNet,
      nodeIds,
      nodes: this.nodes,
      nodeLink: this.params.nodeLink,
      clientLink: this.params.clientLink,
      log: this.log,
      describeMessage,
      countsMessages: scenario.countsMessages === true,
      ...(options.hotGroups === undefined ? {} : { idleGroup: (group: GroupId) => !this.hotGroups.isHot(group) }),
      ...nodeCostsOf(options, this.scheduler),
      groupText: (group, text) => this.groupText(group, text),
    });
    for (let group = 0; group < this.params.groups; group++) this.groups.push(new GroupWatch(group, this.claims, factory, nodeIds));
    this.healStartMicros = this.params.faultPhaseMicros;
    this.hotGroups = new HotGroups({ groups: this.params.groups, keysPerGroup: this.params.keys, hotGroups: options.hotGroups, healStartMicros: this.healStartMicros, now: () => this.now() });
    this.quiet = this.quiesce ? new QuietGroups({ params: this.params, scheduler: this.scheduler, nodes: this.nodes, wire: this.wire, groups: this.groups, groupSuffix: (group) => this.groupSuffix(group) }) : null;
    this.nemesis = new Nemesis({
      params: this.params,
      scenario,
      scheduler: this.scheduler,
      prng: this.prngFault,
      nodes: this.nodes,
      wire: this.wire,
      log: this.log,
      groups: this.groups,
      currentLeader: () => this.currentLeader(),
      observeWorld: () => this.observeWorld(),
      nodeCrashed: (id) => this.sides.nodeCrashed(id),
    });
    this.sides = new SideWorkloads({
      now: () => this.now(),
      after: (delay, action) => this.scheduler.after(delay, action),
      overClientLink: (action) => this.wire.overClientLink(action),
      clientLinkDelayMicros: (prng) => this.wire.clientLinkDelayMicros(prng),
      node: (id) => this.nodes.get(id),
      leader: () => this.currentLeader(DEFAULT_GROUP),
      isMember: (group, node) => this.isMemberOf(group, node),
      note: (actor, text) => this.log.note(actor, text),
    });
    if (options.replicas !== undefined) {
      this.placement = new PlacementRun({
        params: this.params,
        nodeIds,
        replicas: options.replicas,
        ...(options.zones === undefined ? {} : { zones: options.zones }),
        spreadOverAll: options.throughput !== undefined,
        mutant: options.mutant !== undefined && isPlacementMutant(options.mutant) ? options.mutant : null,
        nodes: this.nodes,
        now: () => this.now(),
        stepsUntilMicros: this.params.faultPhaseMicros + this.params.healPhaseMicros,
        context: () => this.nemesis.context(),
        lose: (id) => this.nemesis.lose(id),
        leaderOf: (group) => this.currentLeader(group),
        groupExists: (group) => this.splitRun === null || this.splitRun.currentTable().get(group) !== undefined,
        note: (text) => this.log.notableEvent("nemesis", text),
      });
    }
    if (options.splits !== undefined) this.splitRun = new SplitRun({ params: this.params, ranges: groups, splits: options.splits, mutant: options.mutant !== undefined && isSplitMutant(options.mutant) ? options.mutant : null, nodes: this.nodes, prng: root.fork(), now: () => this.now(), after: (delay, action) => this.scheduler.after(delay, action), leaderOf: (group) => this.currentLeader(group), overNodeLink: (from, to, action) => this.wire.overNodeLink(from, to, action), pause: (id, micros) => this.nemesis.context().pause(id, micros), ownRequestsThrough: (index, group) => this.watch(group).requestsThrough(index), splitApplied: (split) => this.nemesis.splitApplied(split), note: (text) => this.log.notableEvent("splits", text) });
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
        txn: this.workload === "txn" || this.workload === "bank" ? { mutant: options.mutant !== undefined && isTxnMutant(options.mutant) ? options.mutant : null } : null,
        snapshotEveryEntries: this.params.snapshotEveryEntries,
        historyRevisions: this.params.historyRevisions,
        ...(this.app === null ? {} : { application: this.app }),
        groups: this.params.groups,
        routerMutant: options.mutant !== undefined && isRouterMutant(options.mutant) ? options.mutant : null,
        peerIds: nodeIds,
        quiesce: this.quiesce ? livenessOptions(options.mutant) : null,
        ...(options.balanceLeaders === true ? { balanceLeaders: true } : {}),
        ...(this.placement === null ? {} : { placement: this.placement.nodeOptions() }),
        ...(this.splitRun === null ? {} : { splits: this.splitRun.nodeOptions() }),
      };
      this.nodes.set(id, new SimNode(nodeOptions, disk, this));
    }
    if (this.app !== null) {
      this.app.createClients(this.params, nodeIds, prngClients, CLIENT_ID_BASE + 1);
      return;
    }
    const keySpace = this.splitRun?.keySpace() ?? this.hotGroups.keySpace();
    for (let i = 0; i < this.params.clients; i++) {
      const id = CLIENT_ID_BASE + i + 1;
      this.clients.set(id, new SimClient(id, nodeIds, this.params, prngClients.fork(), this.clientHost(), i < this.params.roamingClients, keySpace, this.splitRun?.clientView() ?? null));
    }
    // Streams of their own, forked last, so the KV clients' runs stay as they were.
    this.sides.create({ workload: this.workload, nodeIds, params: this.params, root, mutant: options.mutant, leaseClientIdBase: LEASE_CLIENT_ID_BASE });
  }

  kvStoreCreated(node: NodeId, kv: KvStore, group: GroupId): void {
    this.sides.kvStoreCreated(node, kv, group);
  }

  sendLeaseResponse(from: NodeId, clientId: number, response: LeaseResponse): void {
    this.sides.sendLeaseResponse(from, clientId, response);
  }

  onClockApplied(node: NodeId, entry: LogEntry, timeMs: number, expired: readonly LeaseExpiry[]): void {
    this.sides.clockApplied(node, entry, timeMs, expired);
  }

  /** What a user's state machine's clients and nodes use of the world: the client link, virtual time, the trace. */
  private appWorld() {
    return {
      now: () => this.now(),
      after: (delay: number, action: () => void) => this.scheduler.after(delay, action),
      sendToNode: (_clientId: number, to: NodeId, request: AppRequest) => this.wire.overClientLink(() => this.nodes.get(to)?.requestApp(request)),
      sendToClient: (from: NodeId, clientId: number, response: Parameters<AppHarness<unknown>["deliverToClient"]>[2]) => this.wire.overClientLink(() => this.app?.deliverToClient(clientId, from, response)),
      note: (actor: string, text: () => string) => this.log.note(actor, text),
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
    this.wire.sendToPeer(from, to, message);
  }

  sendPing(from: NodeId, to: NodeId, answer: boolean): void {
    this.wire.sendPing(from, to, answer);
  }

  overNodeLink(from: NodeId, to: NodeId, action: (node: SimNode<unknown>) => void, oneCopy = false): void {
    this.wire.overNodeLink(from, to, action, oneCopy);
  }

  sendToClient(from: NodeId, clientId: number, response: ClientResponse): void {
    this.wire.overClientLink(() => this.clients.get(clientId)?.onResponse(from, response));
  }

  afterFsync(node: SimNode<unknown>, action: () => void): void {
    const latency = Math.max(1, Math.round(this.params.fsyncMicrosMin + this.prngNet.exponential(this.params.fsyncMicrosMean)));
    this.nemesis.fsyncStarted(node, latency);
    this.scheduler.after(latency, () => this.wire.atNode(node, 0, action));
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

  groupDropped(node: SimNode<unknown>, group: GroupId): void {
    this.watch(group).oneValuePerSlot.restarted(node.id);
    this.log.notableEvent(`node ${node.id}`, this.groupText(group, "dropped its replica: it left the group"));
  }

  requestsThrough(index: number, group: GroupId): Set<string> {
    return this.splitRun?.requestsThrough(index, group) ?? this.watch(group).requestsThrough(index);
  }

  onStatus(node: SimNode<unknown>, group: GroupId): void {
    const g = this.watch(group);
    const engine = node.engineOf(group);
    const status = engine.status();
    if (group === DEFAULT_GROUP) this.log.replay?.state({ t: this.now(), e: "state", node: node.id, role: status.role, term: status.term, leader: status.leader, commit: status.commitIndex, last: status.lastIndex });
    const membership = engine.membership?.();
    let worldChanged = false;
    if (membership !== undefined && g.membershipSeen.get(node.id) !== membership) {
      g.membershipSeen.set(node.id, membership);
      this.log.note(`node ${node.id}`, () => this.groupText(group, `configuration: ${describeMembership(membership)}`));
      this.placement?.membershipSeen(group, membership);
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
      if (g.group === DEFAULT_GROUP) this.sides.leaderElected(status.term, this.now());
      this.leaderTerms++;
      g.leaderTerms++;
      g.leaderships.push({ node: node.id, term: status.term, atMicros: this.now() });
      this.log.notableEvent(`node ${node.id}`, this.groupText(group, `became leader of term ${status.term}`));
      if (this.claims.has("leader-completeness")) checkLeaderCompleteness(engine, g.stateMachineSafety.committed());
    }
    if (status.role === "leader" && g.settledTerm.get(node.id) !== status.term && engine.entryTerm(status.commitIndex) === status.term) {
      g.settledTerm.set(node.id, status.term);
      g.opportunities.settle(node.id, status.term, this.now());
    }
    if (status.role === "leader" && this.claims.has("majority-commit")) g.checkCommitMajority(node.id, status.commitIndex, this.nodes);
    // The scenarios steer and watch group 0.
    if (group === DEFAULT_GROUP) this.nemesis.statusChanged(node.id, status);
  }

  trace(node: NodeId, text: string): void {
    this.log.note(`node ${node}`, text);
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

  /** How many groups each node leads at the end of the run (0 for a node that is down). */
  private leadershipsAtEnd(): number[] {
    return [...this.nodes.values()].map((node) => (node.up ? node.hostedGroups().filter((group) => node.engineOf(group).status().role === "leader").length : 0));
  }

  private groupSuffix(group: GroupId): string {
    return this.params.groups === 1 ? "" : `, group ${group}`;
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
        const text = (): string => `-> ${to}: ${request.op} ${request.key}${request.value === undefined ? "" : ` ${request.value}`}${request.expected === undefined ? "" : ` if ${request.expected}`}${request.range === undefined ? "" : ` (range ${request.range})`}`;
        this.log.line(`client ${clientId}`, text);
        this.log.replay?.add({ t: this.now(), e: "op", client: clientId, to, text: text() });
        this.wire.overClientLink(() => this.wire.atNode(this.nodes.get(to), 0, (node) => node.request(request)));
      },
      record: (operation: Operation, sequence: number, answeredBy: NodeId | null) => {
        const key = requestKey(operation.client, sequence);
        this.history.push(operation);
        this.historyKeys.push(key);
        this.log.line(`client ${operation.client}`, () => describeOperation(operation));
        this.log.replay?.add({ t: this.now(), e: "result", client: operation.client, status: operation.status, text: describeOperation(operation) });
        const acknowledged = operation.status === "ok" && (operation.op === "put" || operation.op === "delete" || (operation.op === "cas" && operation.output === true));
        if (acknowledged) this.acked.push({ requestKey: key, operation, answeredBy });
      },
    };
  }

  // ---- what the world allows ----

  /** Records what the world allows now (see opportunity.ts): after every fault and every change of leadership. */
  private observeWorld(): void {
    for (const g of this.groups) this.observeGroup(g);
  }

  private observeGroup(g: GroupWatch): void {
    this.quiet?.noteQuietLeadersLost(g);
    const leaderId = this.currentLeader(g.group);
    const leaderNode = leaderId === null ? undefined : this.nodes.get(leaderId);
    let leader = null;
    if (leaderNode !== undefined) {
      const engine = leaderNode.engineOf(g.group);
      const m = engine.membership?.();
      const groups = m === undefined ? [[...this.nodes.keys()]] : m.outgoing.length > 0 ? [m.voters, m.outgoing] : [m.voters];
      leader = { id: leaderNode.id, term: engine.status().term, groups };
    }
    g.opportunities.observe(this.now(), {
      running: (id) => this.nodes.get(id)?.up === true && this.nodes.get(id)?.paused === false,
      linked: (a, b) => this.wire.linked(a, b),
      leader,
    });
  }

  /** The leader of `group` (group 0's, the one the nemesis aims at, by default) with the highest term among the live nodes. */
  private currentLeader(group: GroupId = DEFAULT_GROUP): NodeId | null {
    let best: { id: NodeId; term: number } | null = null;
    for (const node of this.nodes.values()) {
      if (!node.up || !node.hosts(group)) continue;
      const status = node.engineOf(group).status();
      if (status.role === "leader" && (best === null || status.term > best.term)) best = { id: node.id, term: status.term };
    }
    return best === null ? null : best.id;
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
    this.quiet?.startChecks();
  }

  private checkLogs(): void {
    if (!this.claims.has("log-matching")) return;
    for (const g of this.groups) {
      const live = new Map([...this.nodes.values()].filter((n) => n.up && n.hosts(g.group)).map((n) => [n.id, n.engineOf(g.group)] as const));
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
      this.sides.start();
      this.app?.startClients();
      this.scenario.start(this.nemesis.context());
      this.splitRun?.start();
      this.scheduler.at(params.faultPhaseMicros, () => {
        this.nemesis.heal();
        this.splitRun?.stop();
        // A node lost for good stays down: the heal takes it out of the clients' lists, as an operator would.
        for (const lost of this.nemesis.stats.nodesLost ?? []) for (const client of this.clients.values()) client.forgetNode(lost);
      });
      this.scheduler.at(healEnd, () => {
        for (const client of this.clients.values()) client.stop();
        this.sides.stop();
        this.app?.stopClients();
      });
      this.runUntil(settleEnd);
      this.finalChecks();
    } catch (error) {
      this.failureAtEvent = this.log.replay?.eventsInRun ?? null;
      if (error instanceof InvariantViolation) this.failure = { checker: error.checker, message: error.message, atMicros: this.now() };
      else if (error instanceof AssertionError) {
        // An engine (or the driver) caught its own broken invariant: a bug found, reported
        // like any other failure, with the seed that reproduces it.
        this.failure = { checker: "assertion", message: `${error.message}\n${(error.stack ?? "").split("\n").slice(1, 4).join("\n")}`, atMicros: this.now() };
      } else if (error instanceof RangeStateHeldError) {
        // A node could not make a range born of a split again: its records are gone from it
        // (a real node would refuse to start with this message).
        this.failure = { checker: "durability", message: `a node lost a range born of a split: ${error.message}`, atMicros: this.now() };
      } else throw error;
    }
    const operations = { ok: 0, fail: 0, unknown: 0 };
    for (const op of this.app?.history ?? this.history) operations[op.status]++;
    if (this.failure !== null) this.log.notableEvent("checker", `FAILED ${this.failure.checker}: ${this.failure.message}`);
    return {
      seed: this.options.seed,
      protocol: this.options.protocol.name,
      mutant: this.options.mutant ?? null,
      request: {
        faults: this.options.faults ?? null,
        scenario: this.options.scenario ?? "random",
        ...(this.options.application === undefined ? {} : { stateMachine: this.options.application.path }),
        ...(this.options.workload === undefined ? {} : { workload: this.options.workload }),
        ...(params.groups === 1 ? {} : { groups: this.splitRun?.table.size ?? params.groups }),
        ...(this.quiesce ? { quiesce: true } : {}),
        ...(this.options.hotGroups === undefined ? {} : { hotGroups: this.options.hotGroups }),
        ...(this.options.balanceLeaders === true ? { balanceLeaders: true } : {}),
        ...(this.options.nodes === undefined ? {} : { nodes: this.options.nodes }),
        ...(this.options.replicas === undefined ? {} : { replicas: this.options.replicas }),
        ...(this.options.zones === undefined ? {} : { zones: this.options.zones }),
        ...costRequest(this.options),
        ...(this.options.splits === undefined ? {} : { splits: this.options.splits }),
      },
      params,
      failure: this.failure,
      history: this.history,
      stats: {
        virtualMicros: this.now(),
        events: this.scheduler.eventsRun,
        messagesSent: this.wire.messagesSent,
        messagesDropped: this.wire.messagesDropped,
        operations,
        leaderTerms: this.leaderTerms,
        ...this.nemesis.stats,
        ...(this.params.groups === 1 ? {} : { groupCommit: this.groupCommitCounts() }),
        ...this.sides.stats(),
        ...(this.quiet === null ? {} : { quiescence: this.quiet.counts() }),
        ...(this.options.balanceLeaders === true ? { leadershipMoves: [...this.nodes.values()].reduce((sum, node) => sum + node.leadershipMoves, 0), leadershipsAtEnd: this.leadershipsAtEnd() } : {}),
        ...this.idleGroupsStats(),
        ...(this.placement === null ? {} : { placement: this.placement.stats() }),
        ...throughputStats(this.options.throughput, this.history, this.wire.costs, params),
        ...(this.splitRun === null ? {} : { splits: this.splitRun.stats() }),
      },
      traceTail: this.failure === null ? [] : this.log.traceTail(),
      notableTail: this.failure === null ? [] : this.log.notableTail(),
      trace: this.log.fullTrace(),
      ...(this.app === null ? {} : { appHistory: this.app.history }),
      ...(this.log.replay === null ? {} : { replay: { events: this.log.replay.events, eventsInRun: this.log.replay.eventsInRun, cappedAtMicros: this.log.replay.cappedAtMicros, failureAtEvent: this.failure === null ? null : this.failureAtEvent } }),
    };
  }

  /** With --hot-groups fewer than the groups: the idle groups' cost (HotGroups.idleGroupsStats). */
  private idleGroupsStats(): { readonly idleGroups?: { readonly messages: number; readonly groupSeconds: number } } {
    const idleGroups = this.hotGroups.idleGroupsStats(this.wire.idleGroupMessagesSent, this.params.faultPhaseMicros);
    return idleGroups === null ? {} : { idleGroups };
  }

  private runUntil(time: number): void {
    const startEvents = this.scheduler.eventsRun;
    this.scheduler.runUntil(time, () => this.scheduler.eventsRun - startEvents > EVENTS_MAX);
    if (this.scheduler.eventsRun - startEvents > EVENTS_MAX) {
      throw new InvariantViolation("event-budget", `more than ${EVENTS_MAX} events before ${formatTime(time)}: a livelock or a message storm`);
    }
  }

  /** Whether `node` is in `group`'s configuration as its current leader sees it (true when no node leads, or the engine has no membership). */
  private isMemberOf(group: GroupId, node: NodeId): boolean {
    const leader = this.currentLeader(group);
    const membership = leader === null ? undefined : this.nodes.get(leader)?.engineOf(group).membership?.();
    return membership === undefined || isMember(membership, node);
  }

  private finalChecks(): void {
    const disabled = new Set(this.options.disabledCheckers ?? []);
    this.checkLogs();
    this.sides.check();
    if (this.quiet !== null) {
      this.quiet.checkQuietGroups();
      if (!disabled.has("liveness")) this.quiet.checkQuietFailovers();
    }
    // With zones, placement spreads each group over as many as it can by the end (moves go on through the heal).
    const crowded = this.placement?.zonesShort() ?? [];
    if (crowded.length > 0) throw new InvariantViolation("zones", `placement left ${crowded.length} group(s) in fewer zones than the live nodes offer: ${crowded.join("; ")}`);
    if (this.splitRun !== null) return this.splitRun.finalChecks({ history: this.history, historyKeys: this.historyKeys, acked: this.acked, nodes: this.nodes, watches: this.groups, disabled, isMemberOf: (group, node) => this.isMemberOf(group, node), checkLiveness: (group, owns, anyOperation) => this.checkLiveness(group, owns, anyOperation) });
    if (!disabled.has("liveness")) {
      if (this.app === null) for (const g of this.groups) this.checkLiveness(g.group);
      else this.app.checkLiveness(this.healStartMicros);
    }
    if (!disabled.has("lost-write")) {
      for (const g of this.groups) {
        // Every member of the final configuration must hold every acknowledged write; a node
        // that was removed stopped receiving them.
        // With placement, the voters of the final configuration (a learner may still be catching up).
        const finalVoters = this.placement?.finalVoters(g.group);
        const holds = (n: SimNode<unknown>): boolean => (finalVoters === undefined ? this.isMemberOf(g.group, n.id) : finalVoters !== null && finalVoters.includes(n.id));
        const applied = new Map([...this.nodes.values()].filter((n) => n.up && holds(n)).map((n) => [n.id, n.appliedRequestsOf(g.group)] as const));
        if (this.app === null) checkNoLostWrites(this.groups.length === 1 ? this.acked : this.acked.filter((write) => this.groupOfKey(write.operation.key) === g.group), applied);
        else this.app.checkNoLostWrites(applied);
      }
    }
    if (this.app !== null) {
      if (!disabled.has("linearizability")) this.app.checkLinearizability();
      return;
    }
    if (!disabled.has("linearizability")) {
      for (const g of this.groups) {
        const history = this.resolvedHistory(g.group);
        const result = checkLinearizability(history);
        if (result.verdict === "violation") throw new InvariantViolation("linearizability", `${result.explanation}${this.groupSuffix(g.group) === "" ? "" : ` (in group ${g.group})`}`);
        if (result.verdict === "inconclusive") throw new InvariantViolation("linearizability", `inconclusive: ${result.explanation}`);
      }
    }
    // Last, so a mutant that the checks above catch is still named by them.
    for (const g of this.groups) {
      const states = [...this.nodes.values()].flatMap((node) => {
        const state = node.up ? node.kvStateOf(g.group) : null;
        return state === null ? [] : [{ node: node.id, ...state }];
      });
      checkReplicaStates(g.group, states);
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

  private checkLiveness(group: GroupId, owns = (op: Operation): boolean => this.groups.length === 1 || this.groupOfKey(op.key) === group, anyOperation = false): void {
    const { healStartMicros, params } = this;
    const where = this.groupSuffix(group) === "" ? "" : ` in group ${group}`;
    checkLiveness({ served: this.history.filter(owns), healStartMicros, healEndMicros: params.faultPhaseMicros + params.healPhaseMicros, reads: params.opMix.get > 0, anyOperation, opportunities: this.watch(group).opportunities, nodeIds: [...this.nodes.keys()], where });
  }
}

/**
 * What a simulation run is asked for and what it answers: the options (`SimOptions`), their
 * validation (`groupsConflict`, `scenarioConflict`), the scenario they choose, and the result
 * (`SimResult`). The run itself is simulation.ts's; the CLI and the tests import these from
 * there.
 */
import type { Prng } from "../core/common/prng.js";
import type { EngineFactory } from "../core/engine/contract.js";
import { appScenarioConflict } from "./app/harness.js";
import type { SimApplication } from "./app/module.js";
import type { ModelOperation } from "./check/model-linearizability.js";
import type { Operation } from "./history.js";
import type { LockStats } from "./lock-workload.js";
import type { TxnStats } from "./txn-workload.js";
import type { FaultClass, SimParams } from "./params.js";
import type { ReplayEvent } from "./replay-trace.js";
import { findScenario, pickScenario, scenarioApplies, SCENARIO_NAMES, type Scenario } from "./scenarios.js";
import type { WatchStats } from "./watch-workload.js";
import { NodeCosts, nodeCostConflict, type NodeCostOptions } from "./node-cost.js";
import type { Scheduler } from "./scheduler.js";
import { THROUGHPUT_WARMUP_MICROS, throughputConflict, type ThroughputOptions, type ThroughputStats } from "./throughput.js";

export { throughputParams, throughputStats } from "./throughput.js";

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
  /**
   * Raft's quiescence (`synod sim --quiesce`): idle groups go quiet, and every node runs
   * the node-level liveness that wakes quiet groups of a suspected leader's node (pings
   * between nodes, counted apart). Adds quiescence's checks (sim/check/quiescence.ts).
   */
  readonly quiesce?: boolean;
  /**
   * During the fault phase, the clients use the keys of only this many groups at a time,
   * a different few every second, so the other groups sit idle (`--hot-groups`); from the
   * heal on, every group serves again. Absent: every group all the time.
   */
  readonly hotGroups?: number;
  /**
   * Leaderships spread over the nodes by the rule a sharded node runs (`--balance-leaders`,
   * sim/leader-balancing.ts): leadership transfers between groups' leaders, under every
   * fault. Several groups, the KV store only.
   */
  readonly balanceLeaders?: boolean;
  /**
   * How many nodes the run has (`--nodes`; default: the seed draws 3 or 5). A cluster of a
   * chosen size plays the mixed nemesis, as one of a fixed size does.
   */
  readonly nodes?: number;
  /**
   * Groups on some nodes only (`--replicas`, sim/placement.ts): each group but group 0
   * keeps this many replicas, placed first round all nodes but the last (which joins
   * empty) and then moved by the production placement rule, under every fault. With 3 or
   * more, one node is lost for good in the middle of a move. Needs --nodes above it.
   */
  readonly replicas?: number;
  /** With `replicas`: zones given to the nodes in turn (node i in zone z((i - 1) mod zones)); placement spreads each group over them. */
  readonly zones?: number;
  /**
   * The per-node service-time model (`--node-cost-us`, node-cost.ts): each node handles its
   * inputs one at a time, each costing virtual time. Absent: inputs cost nothing (every run
   * before it, unchanged).
   */
  readonly nodeCost?: NodeCostOptions;
  /**
   * A throughput run (`--throughput`, throughput.ts): fault-free, a closed-loop write load,
   * measured over a window (`stats.throughput`). Groups with `replicas` start spread over
   * every node, the last one included.
   */
  readonly throughput?: ThroughputOptions;
  /**
   * Ranges that split (`--splits`, sim/split-run.ts): the key space is a range table
   * presplit into `groups` ranges, and this many splits happen in the fault phase, each the
   * production `split` command through the parent's leader, with its child's id from group 0.
   */
  readonly splits?: number;
}

/** The most splits a run asks for. */
export const SIM_SPLITS_MAX = 16;

/** Why `--splits` cannot run as asked, or null when it can (or is not asked for). */
export function splitsConflict(options: { readonly splits: number | undefined; readonly groups: number; readonly replicas: number | undefined; readonly workload: string | undefined; readonly hotGroups: number | undefined; readonly stateMachine: boolean }, factory: EngineFactory<unknown, unknown>): string | null {
  const { splits } = options;
  if (splits === undefined) return null;
  if (!Number.isSafeInteger(splits) || splits < 1 || splits > SIM_SPLITS_MAX) return `--splits must be an integer from 1 to ${SIM_SPLITS_MAX}, got ${splits}`;
  if (factory.name !== "raft") return `--splits runs on Raft only (ranges split on a sharded Raft node; protocol ${factory.name} does not split them)`;
  if (options.stateMachine || (options.workload !== undefined && options.workload !== "kv")) return "--splits runs the KV workload only";
  if (options.hotGroups !== undefined) return "--splits does not run with --hot-groups";
  if (options.groups + 2 * splits > SIM_GROUPS_MAX) return `--groups ${options.groups} with --splits ${splits} is more ranges than a run holds (--groups plus twice --splits at most ${SIM_GROUPS_MAX})`;
  return null;
}

/**
 * The options as a run takes them: with `throughput`, no faults and the mixed nemesis (which
 * then does nothing). Throws when the cost model or the throughput run cannot run as asked.
 */
export function withCostOptions(options: SimOptions): SimOptions {
  const costProblem = options.nodeCost === undefined ? null : nodeCostConflict(options.nodeCost);
  if (costProblem !== null) throw new Error(costProblem);
  if (options.throughput === undefined) return options;
  const problem = throughputConflict(options.throughput, { faults: options.faults, scenario: options.scenario ?? "random", workload: options.workload, stateMachine: options.application !== undefined, hotGroups: options.hotGroups, quiesce: options.quiesce === true });
  if (problem !== null) throw new Error(problem);
  return { ...options, faults: [], scenario: "mixed" };
}

/** The service-time model a run asked for, for its wire (none: `{}`); with throughput, counting busy time over the window. */
export function nodeCostsOf(options: SimOptions, scheduler: Scheduler): { readonly costs?: NodeCosts } {
  if (options.nodeCost === undefined) return {};
  const costs = new NodeCosts(options.nodeCost, scheduler);
  if (options.throughput !== undefined) costs.measureBusyIn(THROUGHPUT_WARMUP_MICROS, THROUGHPUT_WARMUP_MICROS + options.throughput.windowMicros);
  return { costs };
}

/** The cost model and throughput run a run was asked for, for its `request` (reproduceCommand). */
export function costRequest(options: SimOptions): { readonly nodeCost?: NodeCostOptions; readonly throughput?: ThroughputOptions } {
  return { ...(options.nodeCost === undefined ? {} : { nodeCost: options.nodeCost }), ...(options.throughput === undefined ? {} : { throughput: options.throughput }) };
}

/** The most nodes a run may have: the opportunity log (opportunity.ts) tries every subset of them. */
export const SIM_NODES_MAX = 9;

/** Why `--nodes` and `--replicas` cannot run as asked, or null when they can. */
export function placementConflict(options: { readonly nodes: number | undefined; readonly replicas: number | undefined; readonly groups: number; readonly scenario: string; readonly workload: string | undefined; readonly quiesce: boolean; readonly balanceLeaders: boolean; readonly stateMachine: boolean }, factory: EngineFactory<unknown, unknown>): string | null {
  const { nodes, replicas } = options;
  if (nodes !== undefined) {
    if (!Number.isSafeInteger(nodes) || nodes < 1 || nodes > SIM_NODES_MAX) return `--nodes must be an integer from 1 to ${SIM_NODES_MAX}, got ${nodes}`;
    if (factory.fixedClusterSize !== undefined && factory.fixedClusterSize !== nodes) return `protocol ${factory.name} runs on ${factory.fixedClusterSize} node(s) only`;
    if (options.scenario !== "random" && options.scenario !== "mixed") return `a cluster of a chosen size (--nodes) plays the mixed nemesis; scenario ${options.scenario} chooses its own cluster`;
  }
  if (replicas === undefined) return null;
  if (!Number.isSafeInteger(replicas) || replicas < 1) return `--replicas must be a positive integer, got ${replicas}`;
  if (nodes === undefined || replicas >= nodes) return `--replicas ${replicas} places each group on some nodes only: give --nodes above it`;
  if (options.groups < 2) return "--replicas places groups on some nodes (group 0 stays on every node): run it with --groups 2 or more";
  if (factory.reconfigures !== true) return `--replicas moves replicas by configuration changes, and protocol ${factory.name} cannot change its configuration`;
  if (options.stateMachine || (options.workload !== undefined && options.workload !== "kv")) return "--replicas runs the KV workload only";
  if (options.quiesce) return "--replicas does not run with --quiesce";
  if (options.balanceLeaders) return "--replicas does not run with --balance-leaders (a leader about to be removed hands its leadership over by itself)";
  return null;
}

/** Why `--balance-leaders` cannot run as asked, or null when it can. */
export function balancingConflict(balanceLeaders: boolean, groups: number, stateMachine: boolean): string | null {
  if (!balanceLeaders) return null;
  if (groups < 2) return "--balance-leaders spreads the leaderships of several groups: run it with --groups 2 or more";
  if (stateMachine) return "--balance-leaders runs the KV store only";
  return null;
}

/** The most groups a simulated node hosts: enough to show batching, few enough to stay fast. */
export const SIM_GROUPS_MAX = 64;

/** Why `groups` cannot run as asked, or null when it can. */
export function groupsConflict(groups: number, stateMachine: boolean): string | null {
  if (!Number.isSafeInteger(groups) || groups < 1 || groups > SIM_GROUPS_MAX) return `--groups must be an integer from 1 to ${SIM_GROUPS_MAX}, got ${groups}`;
  if (groups > 1 && stateMachine) return "--groups runs the KV store only; a --state-machine runs in one group";
  return null;
}

/** Why `--quiesce` and `--hot-groups` cannot run as asked, or null when they can. */
export function quiescenceConflict(options: { readonly quiesce: boolean; readonly hotGroups: number | undefined; readonly groups: number; readonly mutant: string | undefined; readonly stateMachine: boolean }, factory: EngineFactory<unknown, unknown>): string | null {
  if (options.quiesce && factory.quiesces !== true) return `protocol ${factory.name} does not quiesce; --quiesce runs with raft`;
  if (options.quiesce && options.stateMachine) return "--quiesce runs the KV store only";
  if (options.mutant !== undefined && QUIESCENCE_MUTANTS.includes(options.mutant) && !options.quiesce) return `mutant ${options.mutant} breaks quiescence: run it with --quiesce`;
  const hot = options.hotGroups;
  if (hot !== undefined && (!Number.isSafeInteger(hot) || hot < 1 || hot > options.groups)) return `--hot-groups must be an integer from 1 to the number of groups (${options.groups}), got ${hot}`;
  return null;
}

/** The mutants that break quiescence, which only a run with --quiesce can show. */
export const QUIESCENCE_MUTANTS: readonly string[] = ["quiesce-with-lagging-follower", "no-wake-on-leader-failure", "woken-followers-campaign-together"];

export const SIM_WORKLOADS = ["kv", "leases", "watch", "lock", "txn", "bank"] as const;
/** Groups of a run of the txn or bank workload when --groups is not given: transactions across groups need some. */
export const TXN_GROUPS_DEFAULT = 3;
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
  readonly txn?: TxnStats;
  /**
   * With --quiesce: liveness pings sent between nodes (apart from `messagesSent`, the
   * groups' messages), group-ticks over every node and how many of them were quiet, and
   * quiet groups woken because their leader's node was suspected.
   */
  readonly quiescence?: { readonly pings: number; readonly groupTicks: number; readonly quietGroupTicks: number; readonly wakes: number };
  /** With --balance-leaders: leadership transfers the nodes started to spread leaderships. */
  readonly leadershipMoves?: number;
  /** With --balance-leaders: how many groups each node leads at the end of the run, by node. */
  readonly leadershipsAtEnd?: readonly number[];
  /**
   * With --hot-groups: messages sent by groups while they got no requests (in the fault
   * phase), and how many group-seconds that was: an idle group's cost, quiet or awake.
   */
  readonly idleGroups?: { readonly messages: number; readonly groupSeconds: number };
  /** Nodes lost for good (`--replicas` 3 or more). */
  readonly nodesLost?: readonly number[];
  /**
   * With --replicas: configuration changes placement made (learners added, replicas
   * removed), leaderships handed over before a removal, replicas dropped by the nodes that
   * left their group, and each node's replica count at the end (group 0 included).
   */
  readonly placement?: { readonly moves: number; readonly transfers: number; readonly drops: number; readonly replicasAtEnd: readonly number[]; readonly zonesShortAtEnd?: number };
  /** A throughput run's measurement (`--throughput`). */
  readonly throughput?: ThroughputStats;
  /** With --splits: splits asked for and done, tries that failed, and the ranges at the end. */
  readonly splits?: { readonly asked: number; readonly done: number; readonly failedTries: number; readonly rangesAtEnd: number; readonly adoptions: number; readonly readMismatchesOnArrival: number; readonly readMismatchesAfterReadIndex: number; readonly writeMismatches: number };
}

export interface SimResult {
  readonly seed: number;
  readonly protocol: string;
  readonly mutant: string | null;
  /** What the run was asked for (null faults: the scenario's own), for reproducing it. */
  readonly request: { readonly faults: readonly FaultClass[] | null; readonly scenario: string; readonly stateMachine?: string; readonly workload?: SimWorkload; readonly groups?: number; readonly quiesce?: boolean; readonly hotGroups?: number; readonly balanceLeaders?: boolean; readonly nodes?: number; readonly replicas?: number; readonly zones?: number; readonly nodeCost?: NodeCostOptions; readonly throughput?: ThroughputOptions; readonly splits?: number };
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

/** Why `scenario` cannot run as asked, or null when it can. */
export function scenarioConflict(name: string, faults: readonly FaultClass[] | undefined, factory: EngineFactory<unknown, unknown>, splits?: number): string | null {
  if (name === "random" || name === "mixed") return null;
  const scenario = findScenario(name);
  if (scenario === undefined) return `no scenario "${name}"; choose one of: ${SCENARIO_NAMES.join(", ")}`;
  if (faults !== undefined) return `scenario ${name} chooses its own faults; --faults goes with the mixed nemesis (--scenario mixed or random)`;
  if (factory.fixedClusterSize !== undefined) return `protocol ${factory.name} runs on ${factory.fixedClusterSize} node(s) only; it plays the mixed nemesis`;
  if (scenario.needsCompaction === true && factory.compacts !== true) return `scenario ${name} is about snapshots, and protocol ${factory.name} does not compact its log`;
  if (scenario.needsMembership === true && factory.reconfigures !== true) return `scenario ${name} changes the membership, and protocol ${factory.name} cannot`;
  if (scenario.needsSplits === true && splits === undefined) return `scenario ${name} crashes nodes as they apply splits: it runs with --splits`;
  if (!scenarioApplies(scenario, factory.name)) return `scenario ${name} is about ${(scenario.protocols ?? []).join(", ")} only; protocol ${factory.name} skips it`;
  return null;
}

/**
 * The scenario, for a user's state machine: as for the KV store, except that one that
 * checks the KV store only is refused by name and drawn again at random, so it never
 * passes without having tested anything.
 */
export function chooseAppScenario(options: SimOptions, factory: EngineFactory<unknown, unknown>, prng: Prng): Scenario {
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
  const conflict = scenarioConflict(name, options.faults, factory, options.splits);
  if (conflict !== null) throw new Error(conflict);
  const mixed = findScenario("mixed") as Scenario;
  if (name === "mixed") return mixed;
  if (name !== "random") return findScenario(name) as Scenario;
  // A narrowed fault list, a one-node control or a chosen cluster size asks for exactly that: the mixed nemesis.
  if (options.faults !== undefined || factory.fixedClusterSize !== undefined || options.nodes !== undefined) return mixed;
  return pickScenario(prng, factory.compacts === true, factory.reconfigures === true, factory.name);
}

// A worker thread that runs simulations for `synod sim`: seeds in, results out. Runs are
// pure functions of their seed, so which worker runs a seed changes nothing.
import { parentPort, workerData } from "node:worker_threads";
import { PROTOCOLS } from "../sim/protocols.js";
import { runSimulation, type SimWorkload } from "../sim/simulation.js";
import type { FaultClass } from "../sim/params.js";
import { loadSimApplication } from "./sim-module.js";
import type { NodeCostOptions } from "../sim/node-cost.js";
import type { ThroughputOptions } from "../sim/throughput.js";

export interface WorkerSetup {
  readonly protocol: string;
  readonly mutant: string | null;
  /** Null: each scenario's own fault classes. */
  readonly faults: readonly FaultClass[] | null;
  readonly scenario: string;
  readonly keepHistory: boolean;
  /** The --state-machine module's path (the main thread checked it loads), or null for the KV store. */
  readonly stateMachine: string | null;
  /** The workload asked for (null: the default). */
  readonly workload: SimWorkload | null;
  /** Consensus groups per node (1: the one group of every cluster). */
  readonly groups: number;
  /** Raft's quiescence on. */
  readonly quiesce: boolean;
  /** Groups with requests at a time in the fault phase (null: all). */
  readonly hotGroups: number | null;
  /** Leaderships spread over the nodes (--balance-leaders). */
  readonly balanceLeaders: boolean;
  /** Simulated nodes (null: drawn by the seed). */
  readonly nodes: number | null;
  /** Replicas of each group but group 0 (null: every group on every node). */
  readonly replicas: number | null;
  readonly zones: number | null;
  /** The per-node service-time model (null: off). */
  readonly nodeCost: NodeCostOptions | null;
  /** A throughput run (null: an ordinary run). */
  readonly throughput: ThroughputOptions | null;
  /** Splits during the run (null: groups own keys by hash). */
  readonly splits: number | null;
}

const setup = workerData as WorkerSetup;
const protocol = PROTOCOLS.get(setup.protocol);
if (protocol === undefined) throw new Error(`unknown protocol ${setup.protocol}`);
const application = setup.stateMachine === null ? undefined : await loadSimApplication(setup.stateMachine);

parentPort?.on("message", (seed: number) => {
  const result = runSimulation({
    protocol,
    seed,
    scenario: setup.scenario,
    ...(setup.faults === null ? {} : { faults: setup.faults }),
    ...(setup.mutant === null ? {} : { mutant: setup.mutant }),
    ...(application === undefined ? {} : { application }),
    ...(setup.workload === null ? {} : { workload: setup.workload }),
    ...(setup.groups === 1 ? {} : { groups: setup.groups }),
    ...(setup.quiesce ? { quiesce: true } : {}),
    ...(setup.hotGroups === null ? {} : { hotGroups: setup.hotGroups }),
    ...(setup.balanceLeaders ? { balanceLeaders: true } : {}),
    ...(setup.nodes === null ? {} : { nodes: setup.nodes }),
    ...(setup.replicas === null ? {} : { replicas: setup.replicas }),
    ...(setup.zones === null ? {} : { zones: setup.zones }),
    ...(setup.nodeCost === null ? {} : { nodeCost: setup.nodeCost }),
    ...(setup.throughput === null ? {} : { throughput: setup.throughput }),
    ...(setup.splits === null ? {} : { splits: setup.splits }),
  });
  parentPort?.postMessage(setup.keepHistory ? result : { ...result, history: [], appHistory: [] });
});

import { randomInt } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import cliProgress from "cli-progress";
import { isKvMutant, isTxnMutant } from "../core/kv/mutants.js";
import { isLockMutant } from "../core/kv/lock-turn.js";
import { hasMutant, mutantNames, SHARED_MUTANTS } from "../sim/mutants.js";
import { describeParams, FAULT_CLASSES, type FaultClass } from "../sim/params.js";
import { PROTOCOLS, protocolNames } from "../sim/protocols.js";
import { describeFailure, reproduceCommand } from "../sim/run-report.js";
import { replayHeader } from "../sim/replay-file.js";
import { formatReplayTrace, REPLAY_EVENTS_MAX } from "../sim/replay-trace.js";
import { balancingConflict, groupsConflict, placementConflict, quiescenceConflict, runSimulation, splitsConflict, scenarioConflict, TXN_GROUPS_DEFAULT, type SimResult, type SimWorkload } from "../sim/simulation.js";
import { isRouterMutant } from "../core/multi/mutants.js";
import { isPlacementMutant } from "../sim/placement-run.js";
import { isSplitMutant } from "../core/kv/split-mutants.js";
import { appScenarioConflict } from "../sim/app/harness.js";
import type { SimApplication } from "../sim/app/module.js";
import { loadSimApplication } from "./sim-module.js";
import type { WorkerSetup } from "./sim-worker.js";
import { serveReplay } from "./replay-server.js";
import { UsageError } from "./usage-error.js";
import { nodeCostConflict, type NodeCostOptions } from "../sim/node-cost.js";
import { describeThroughput, throughputConflict, type ThroughputOptions } from "../sim/throughput.js";

export interface SimCommandOptions {
  readonly protocol: string;
  readonly mutant?: string;
  readonly seeds?: number;
  readonly seed?: number;
  /** Null: each scenario's own fault classes. */
  readonly faults: readonly FaultClass[] | null;
  readonly scenario: string;
  readonly json: boolean;
  readonly historyOut?: string;
  /** The trace of the first failing seed (else the last): text lines, or with a name ending in .jsonl a replay (docs/dashboard.md). */
  readonly traceOut?: string;
  /** Write the replay (to `traceOut`, else a temporary file) and serve it with the dashboard's page until interrupted. */
  readonly open?: boolean;
  readonly workers: number;
  readonly verbose: boolean;
  /** How many failures get a full report (the rest one line each); default 3. */
  readonly detailedFailures?: number;
  /** A user's state machine module to run instead of the KV store (docs/embedding.md). */
  readonly stateMachine?: string;
  /** "leases" adds lease clients and their checker (default with a KV mutant). */
  readonly workload?: SimWorkload;
  /** Consensus groups every simulated node hosts (default 1); see docs/simulator.md. */
  readonly groups?: number;
  /** Raft's quiescence and the node liveness beside it (docs/simulator.md). */
  readonly quiesce?: boolean;
  /** Groups that get requests at a time during the fault phase (default: all). */
  readonly hotGroups?: number;
  /** Leaderships spread over the nodes by the production rule (sim/leader-balancing.ts). */
  readonly balanceLeaders?: boolean;
  /** Simulated nodes (default: drawn by each seed). */
  readonly nodes?: number;
  /** Each group but group 0 on this many nodes only, moved by the placement rule (sim/placement.ts). */
  readonly replicas?: number;
  readonly zones?: number;
  /** The per-node service-time model (sim/node-cost.ts); absent: off. */
  readonly nodeCost?: NodeCostOptions;
  /** A throughput run (sim/throughput.ts): fault-free, closed-loop writes, measured over a window. */
  readonly throughput?: ThroughputOptions;
  /** Splits during the run, over a presplit range table (sim/split-run.ts). */
  readonly splits?: number;
}

export { UsageError };

export function parseFaults(text: string): FaultClass[] {
  if (text === "all") return [...FAULT_CLASSES];
  if (text === "none") return [];
  const faults = text.split(",").map((f) => f.trim());
  for (const fault of faults) {
    if (!(FAULT_CLASSES as readonly string[]).includes(fault)) {
      throw new UsageError(`unknown fault class "${fault}"; use all, none, or a list of: ${FAULT_CLASSES.join(", ")}`);
    }
  }
  return faults as FaultClass[];
}

const DETAILED_FAILURES_DEFAULT = 3;

/** A trace file named `*.jsonl` gets the replay's JSON lines; any other name, the text trace. */
export function isReplayPath(path: string): boolean {
  return path.toLowerCase().endsWith(".jsonl");
}

function replayTempPath(): string {
  return join(mkdtempSync(join(tmpdir(), "synod-replay-")), "replay.jsonl");
}

/** What a run of seeds came to. */
export interface SimSummary {
  readonly passed: number;
  readonly failed: number;
  /** Virtual time simulated, over every seed. */
  readonly clusterSeconds: number;
  /** Client operations issued, over every seed (ok, failed and timed out). */
  readonly operations: number;
  /** Where the trace or replay went, when one was written. */
  readonly traceOut?: string;
}

/** `synod sim`: runs seeds, prints failures with their reproduction, ends with "N passed, M failed". */
export async function simCommand(options: SimCommandOptions): Promise<number> {
  const summary = await runSim(options);
  const code = summary.failed === 0 ? 0 : 1;
  if (options.open === true && summary.traceOut !== undefined) {
    const server = await serveReplay(summary.traceOut);
    const say = options.json ? (text: string) => process.stderr.write(`${text}\n`) : (text: string) => process.stdout.write(`${text}\n`);
    say(`Replay: ${server.url}`);
    say("open it in a browser (Ctrl-C stops serving it); or open any node's /dashboard#replay and choose the file");
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        resolve();
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    await server.close();
  }
  return code;
}

/** Runs the seeds `options` asks for and prints the report; the figures for a caller that sums them (the soak). */
export async function runSim(options: SimCommandOptions): Promise<SimSummary> {
  if (!PROTOCOLS.has(options.protocol)) {
    throw new UsageError(`unknown protocol "${options.protocol}"; choose one of: ${protocolNames().join(", ")}`);
  }
  const factory = PROTOCOLS.get(options.protocol);
  if (options.mutant !== undefined && factory !== undefined && !hasMutant(factory, options.mutant)) {
    const known = mutantNames(factory);
    throw new UsageError(`protocol ${options.protocol} has no mutant "${options.mutant}"; ${known.length === 0 ? "it has none" : `choose one of: ${known.join(", ")}`} (see --list-mutants)`);
  }
  if (factory !== undefined) {
    const conflict = scenarioConflict(options.scenario, options.faults ?? undefined, factory, options.splits ?? undefined);
    if (conflict !== null) throw new UsageError(conflict);
  }
  const groups = options.groups ?? (options.workload === "txn" || options.workload === "bank" || (options.mutant !== undefined && isTxnMutant(options.mutant)) ? TXN_GROUPS_DEFAULT : 1);
  const groupsProblem = groupsConflict(groups, options.stateMachine !== undefined);
  if (groupsProblem !== null) throw new UsageError(groupsProblem);
  if (options.mutant !== undefined && isRouterMutant(options.mutant) && groups < 2) throw new UsageError(`mutant ${options.mutant} misroutes between groups: run it with --groups 2 or more`);
  if (options.mutant !== undefined && isTxnMutant(options.mutant) && options.workload !== undefined && options.workload !== "bank" && options.workload !== "txn") throw new UsageError(`mutant ${options.mutant} breaks transactions across groups: run it with --workload bank or txn (the default for it), not ${options.workload}`);
  const balancing = balancingConflict(options.balanceLeaders === true, groups, options.stateMachine !== undefined);
  if (balancing !== null) throw new UsageError(balancing);
  if (factory !== undefined) {
    const conflict = quiescenceConflict({ quiesce: options.quiesce === true, hotGroups: options.hotGroups, groups, mutant: options.mutant, stateMachine: options.stateMachine !== undefined }, factory);
    if (conflict !== null) throw new UsageError(conflict);
  }
  if (factory !== undefined) {
    const conflict = placementConflict({ nodes: options.nodes, replicas: options.replicas, groups, scenario: options.scenario, workload: options.workload === "kv" ? undefined : options.workload, quiesce: options.quiesce === true, balanceLeaders: options.balanceLeaders === true, stateMachine: options.stateMachine !== undefined }, factory);
    if (conflict !== null) throw new UsageError(conflict);
  }
  const costProblem = options.nodeCost === undefined ? null : nodeCostConflict(options.nodeCost);
  if (costProblem !== null) throw new UsageError(costProblem);
  const throughputProblem = options.throughput === undefined ? null : throughputConflict(options.throughput, { faults: options.faults ?? undefined, scenario: options.scenario, workload: options.workload, stateMachine: options.stateMachine !== undefined, hotGroups: options.hotGroups, quiesce: options.quiesce === true });
  if (throughputProblem !== null) throw new UsageError(throughputProblem);
  if (options.throughput !== undefined && options.splits !== undefined) throw new UsageError("--throughput runs with no faults and fixed ranges: it does not take --splits");
  if (factory !== undefined) {
    const conflict = splitsConflict({ splits: options.splits, groups, replicas: options.replicas, workload: options.workload === "kv" ? undefined : options.workload, hotGroups: options.hotGroups, stateMachine: options.stateMachine !== undefined }, factory);
    if (conflict !== null) throw new UsageError(conflict);
  }
  if (options.mutant !== undefined && isSplitMutant(options.mutant) && options.splits === undefined) throw new UsageError(`mutant ${options.mutant} breaks splits: run it with --protocol raft --splits 3 (or more)`);
  if (options.mutant !== undefined && isPlacementMutant(options.mutant) && options.replicas === undefined) throw new UsageError(`mutant ${options.mutant} breaks placement: run it with --replicas 3 and --nodes 4 or more (one node is lost for good in the middle of a move)`);
  // Loaded here first, so a module that does not load or has the wrong shape is one line.
  const application = options.stateMachine === undefined ? undefined : await loadSimApplication(options.stateMachine);
  if (application !== undefined) {
    const conflict = appScenarioConflict(options.scenario);
    if (conflict !== null) throw new UsageError(conflict);
    if ((options.workload !== undefined && options.workload !== "kv") || (options.mutant !== undefined && (isKvMutant(options.mutant) || isLockMutant(options.mutant) || isTxnMutant(options.mutant)))) throw new UsageError("the lease, watch, lock, bank and txn workloads and the KV, lock and transaction mutants run on the KV store, not with --state-machine");
  }
  if (options.open === true && options.traceOut !== undefined && !isReplayPath(options.traceOut)) throw new UsageError(`--open writes a replay: name the --trace-out file *.jsonl (not ${options.traceOut}), or leave it out for a temporary file`);
  const count = options.seeds ?? (options.seed === undefined ? 100 : 1);
  if (!Number.isSafeInteger(count) || count < 1) throw new UsageError("--seeds must be a positive integer");
  const start = options.seed ?? randomInt(1, 2 ** 47);
  const seeds = Array.from({ length: count }, (_, i) => start + i);
  const log = options.json ? (text: string) => process.stderr.write(`${text}\n`) : (text: string) => process.stdout.write(`${text}\n`);
  log(`synod sim: protocol ${options.protocol}${groups === 1 ? "" : `, ${groups} groups per node`}${options.quiesce === true ? ", quiescence" : ""}${options.hotGroups === undefined ? "" : `, ${options.hotGroups} hot group(s) at a time`}${options.balanceLeaders === true ? ", leaderships spread" : ""}${options.nodes === undefined ? "" : `, ${options.nodes} nodes`}${options.replicas === undefined ? "" : `, ${options.replicas} replicas per group`}${options.splits === undefined ? "" : `, ${options.splits} splits`}${options.nodeCost === undefined ? "" : `, node cost ${options.nodeCost.inputMicros} us per input + ${options.nodeCost.entryMicros} us per entry`}${options.throughput === undefined ? "" : `, throughput: ${options.throughput.clients} clients over ${options.throughput.windowMicros / 1000} ms`}${application === undefined ? "" : `, state machine ${application.name} (${application.path})`}${options.mutant === undefined ? "" : `, mutant ${options.mutant}`}, seeds ${start}..${start + count - 1}, scenario ${options.scenario}, faults ${options.faults === null ? "per scenario" : options.faults.join(",") || "none"}`);

  const results = await runSeeds(seeds, options, application);
  const failures = results.filter((r) => r.failure !== null).sort((a, b) => a.seed - b.seed);

  if (options.historyOut !== undefined) {
    const chosen = failures[0] ?? results[results.length - 1];
    if (chosen !== undefined) {
      const history: readonly unknown[] = chosen.appHistory ?? chosen.history;
      writeFileSync(options.historyOut, JSON.stringify(history, null, 0).replace(/\},\{/g, "},\n{") + "\n");
      log(`history of seed ${chosen.seed} (${history.length} operations) written to ${options.historyOut}`);
    }
  }
  const traceOut = options.traceOut ?? (options.open === true ? replayTempPath() : undefined);
  let written: string | undefined;
  if (traceOut !== undefined) {
    const chosen = failures[0] ?? results[results.length - 1];
    if (chosen !== undefined) {
      const replay = options.open === true || isReplayPath(traceOut);
      // Runs are deterministic: run the chosen seed again, keeping every event this time.
      const factory = PROTOCOLS.get(options.protocol);
      if (factory === undefined) throw new UsageError(`unknown protocol "${options.protocol}"`);
      const rerun = runSimulation({
        protocol: factory,
        seed: chosen.seed,
        scenario: options.scenario,
        ...(options.faults === null ? {} : { faults: options.faults }),
        ...(options.mutant === undefined ? {} : { mutant: options.mutant }),
        ...(application === undefined ? {} : { application }),
        ...(options.workload === undefined ? {} : { workload: options.workload }),
        ...(groups === 1 ? {} : { groups }),
        ...(options.quiesce === true ? { quiesce: true } : {}),
        ...(options.hotGroups === undefined ? {} : { hotGroups: options.hotGroups }),
        ...(options.balanceLeaders === true ? { balanceLeaders: true } : {}),
        ...(options.nodes === undefined ? {} : { nodes: options.nodes }),
        ...(options.replicas === undefined ? {} : { replicas: options.replicas }),
        ...(options.zones === undefined ? {} : { zones: options.zones }),
        ...(options.nodeCost === undefined ? {} : { nodeCost: options.nodeCost }),
        ...(options.throughput === undefined ? {} : { throughput: options.throughput }),
        ...(options.splits === undefined ? {} : { splits: options.splits }),
        ...(replay ? { replayEventsMax: REPLAY_EVENTS_MAX } : { fullTrace: true }),
      });
      if (replay) {
        const header = replayHeader(rerun);
        writeFileSync(traceOut, formatReplayTrace(header, rerun.replay?.events ?? []));
        written = traceOut;
        log(`replay of seed ${chosen.seed} (${header.events} events${header.capped ? ` of ${header.eventsInRun}: capped at ${REPLAY_EVENTS_MAX}` : ""}) written to ${traceOut}`);
      } else {
        writeFileSync(traceOut, [...describeParams(rerun.params), ...rerun.trace].join("\n") + "\n");
        written = traceOut;
        log(`full trace of seed ${chosen.seed} (${rerun.trace.length} lines) written to ${traceOut}`);
      }
    }
  }
  if (options.json) {
    const report = {
      protocol: options.protocol,
      mutant: options.mutant ?? null,
      faults: options.faults,
      scenario: options.scenario,
      seeds: { first: start, count },
      passed: results.length - failures.length,
      failed: failures.length,
      results: [...results]
        .sort((a, b) => a.seed - b.seed)
        .map((r) => ({
          seed: r.seed,
          scenario: r.params.scenario,
          passed: r.failure === null,
          ...(r.failure === null ? {} : { checker: r.failure.checker, message: r.failure.message, reproduce: reproduceCommand(r) }),
          stats: r.stats,
        })),
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const detailed = options.detailedFailures ?? DETAILED_FAILURES_DEFAULT;
    failures.forEach((failure, i) => {
      // The first few get the full report; the rest the end of their story, so every
      // failure still shows how it ended and how to replay it.
      const full = options.verbose || i < detailed;
      log(`\n${describeFailure(failure, full ? { traceLines: 40 } : { traceLines: 8, brief: true })}`);
    });
    if (failures.length > detailed && !options.verbose) log(`\n(full reports for the first ${detailed} failure(s); --verbose gives every failure one)`);
    const byChecker = new Map<string, number>();
    for (const f of failures) byChecker.set(f.failure?.checker ?? "", (byChecker.get(f.failure?.checker ?? "") ?? 0) + 1);
    if (byChecker.size > 0) log(`failures by checker: ${[...byChecker].map(([c, n]) => `${c} ${n}`).join(", ")}`);
  }
  const operations = results.reduce((sum, r) => sum + r.stats.operations.ok + r.stats.operations.fail + r.stats.operations.unknown, 0);
  const clusterSeconds = results.reduce((sum, r) => sum + r.stats.virtualMicros, 0) / 1e6;
  if (!options.json) log(`simulated ${clusterSeconds.toFixed(0)} s of cluster time and ${operations} client operations`);
  const txns = results.map((r) => r.stats.txn).filter((stats) => stats !== undefined);
  if (!options.json && txns.length > 0) {
    const sum = (field: "committed" | "conflicts" | "aborted" | "unknown" | "balancedReads"): number => txns.reduce((total, stats) => total + (stats[field] ?? 0), 0);
    log(`transactions: ${sum("committed")} committed, ${sum("conflicts")} failed their compares, ${sum("aborted")} aborted, ${sum("unknown")} unknown${options.workload === "txn" ? "" : `; ${sum("balancedReads")} reads of every account`}`);
  }
  const placements = results.map((r) => r.stats.placement).filter((stats) => stats !== undefined);
  if (!options.json && placements.length > 0) {
    const lost = results.reduce((sum, r) => sum + (r.stats.nodesLost?.length ?? 0), 0);
    log(`placement: ${placements.reduce((sum, p) => sum + p.moves, 0)} moves (learners added, replicas removed), ${placements.reduce((sum, p) => sum + p.transfers, 0)} leaderships handed over before a removal, ${placements.reduce((sum, p) => sum + p.drops, 0)} replicas dropped; ${lost} node(s) lost for good`);
  }
  for (const r of [...results].sort((a, b) => a.seed - b.seed)) if (!options.json && r.stats.throughput !== undefined) log(`throughput, seed ${r.seed}: ${describeThroughput(r.stats.throughput)}`);
  const splits = results.map((r) => r.stats.splits).filter((stats) => stats !== undefined);
  if (!options.json && splits.length > 0) log(`splits: ${splits.reduce((sum, s) => sum + s.done, 0)} of ${splits.reduce((sum, s) => sum + s.asked, 0)} asked for applied (${splits.reduce((sum, s) => sum + s.failedTries, 0)} tries failed: no leader, a timeout); ${splits.reduce((sum, s) => sum + s.rangesAtEnd, 0)} ranges at the end; ${splits.reduce((sum, s) => sum + s.adoptions, 0)} replicas adopted a range whose split they missed; range mismatches: ${splits.reduce((sum, s) => sum + s.readMismatchesOnArrival, 0)} reads on arrival, ${splits.reduce((sum, s) => sum + s.readMismatchesAfterReadIndex, 0)} after their read index, ${splits.reduce((sum, s) => sum + s.writeMismatches, 0)} writes`);
  log(`${results.length - failures.length} passed, ${failures.length} failed`);
  return { passed: results.length - failures.length, failed: failures.length, clusterSeconds, operations, ...(written === undefined ? {} : { traceOut: written }) };
}

function runSeeds(seeds: readonly number[], options: SimCommandOptions, application: SimApplication | undefined): Promise<SimResult[]> {
  const workerCount = Math.max(1, Math.min(options.workers, seeds.length));
  const setup: WorkerSetup = {
    protocol: options.protocol,
    mutant: options.mutant ?? null,
    faults: options.faults,
    scenario: options.scenario,
    keepHistory: options.historyOut !== undefined,
    stateMachine: application === undefined ? null : application.path,
    workload: options.workload ?? null,
    groups: options.groups ?? 1,
    quiesce: options.quiesce === true,
    hotGroups: options.hotGroups ?? null,
    balanceLeaders: options.balanceLeaders === true,
    nodes: options.nodes ?? null,
    replicas: options.replicas ?? null,
    zones: options.zones ?? null,
    nodeCost: options.nodeCost ?? null,
    throughput: options.throughput ?? null,
    splits: options.splits ?? null,
  };
  const bar = new cliProgress.SingleBar(
    { format: "  {bar} {value}/{total} seeds | {failed} failed | {duration_formatted}", hideCursor: true, clearOnComplete: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  const showBar = process.stderr.isTTY === true;
  if (showBar) bar.start(seeds.length, 0, { failed: 0 });
  const results: SimResult[] = [];
  let next = 0;
  let failed = 0;
  return new Promise<SimResult[]>((resolve, reject) => {
    const workers: Worker[] = [];
    const finish = (error?: Error): void => {
      for (const worker of workers) void worker.terminate();
      if (showBar) bar.stop();
      if (error !== undefined) reject(error);
      else resolve(results);
    };
    for (let i = 0; i < workerCount; i++) {
      const worker = new Worker(new URL("./sim-worker.js", import.meta.url), { workerData: setup });
      workers.push(worker);
      const feed = (): void => {
        if (next < seeds.length) worker.postMessage(seeds[next++]);
      };
      worker.on("message", (result: SimResult) => {
        results.push(result);
        if (result.failure !== null) failed++;
        if (showBar) bar.update(results.length, { failed });
        if (results.length === seeds.length) finish();
        else feed();
      });
      worker.on("error", (error) => finish(error));
      feed();
    }
  });
}

/**
 * `synod sim --list-mutants`: every protocol's deliberately broken variants, as a table.
 * With `--protocol NAME`, that protocol's own mutants alone, one name a line, for a script
 * to loop over (the replica's, which break any protocol, are in the table).
 */
export function listMutants(protocol?: string): string {
  if (protocol !== undefined) {
    const factory = PROTOCOLS.get(protocol);
    if (factory === undefined) throw new UsageError(`no protocol "${protocol}"; choose one of: ${[...PROTOCOLS.keys()].join(", ")}`);
    const names = Object.keys(factory.mutants);
    return names.length === 0 ? "" : `${names.join("\n")}\n`;
  }
  const lines: string[] = [];
  for (const factory of PROTOCOLS.values()) {
    for (const [name, description] of Object.entries(factory.mutants)) lines.push(`${factory.name.padEnd(14)} ${name.padEnd(28)} ${description}`);
  }
  for (const { name, description } of SHARED_MUTANTS) lines.push(`${"(any)".padEnd(14)} ${name.padEnd(28)} ${description}`);
  return lines.length === 0 ? "no mutants\n" : `${"protocol".padEnd(14)} ${"mutant".padEnd(28)} what it breaks\n${lines.join("\n")}\n`;
}

export function defaultWorkers(): number {
  return Math.max(1, availableParallelism());
}

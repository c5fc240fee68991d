// The simulator's commands (`synod sim`, `protocols`, `scenarios`, `check`, `demo`), apart
// from main.ts: their options name every protocol, scenario and fault class, which takes
// loading the simulator, and a command that talks to a cluster or runs a node need not load
// it to start.
import { Option, type Command } from "commander";
import { integerAtLeast } from "./client-options.js";
import { FAULT_CLASSES } from "../sim/params.js";
import { PROTOCOLS } from "../sim/protocols.js";
import { SCENARIO_NAMES, SCENARIOS } from "../sim/scenarios.js";
import { SIM_WORKLOADS, type SimWorkload } from "../sim/simulation.js";
import { checkCommand } from "./check-command.js";
import { demoCommand } from "./demo-command.js";
import { defaultWorkers, listMutants, parseFaults, simCommand, type SimCommandOptions } from "./sim-command.js";
import { UsageError } from "./usage-error.js";

/** A throughput run's clients and window when not given: enough writes in flight to saturate the clusters docs/benchmarks.md compares. */
const THROUGHPUT_CLIENTS_DEFAULT = 64;
const THROUGHPUT_WINDOW_MS_DEFAULT = 3000;

/** `synod sim`, `synod protocols`, `synod scenarios` and `synod check`. */
export function registerSimCommands(program: Command, setExitCode: (code: number) => void): void {
  program
    .command("sim")
    .description("run the deterministic simulator: faults, a client workload, then every checker")
    .addOption(new Option("--protocol <name>", "protocol to run").choices([...PROTOCOLS.keys()]))
    .option("--mutant <name>", "run a deliberately broken variant of the protocol (see --list-mutants)")
    .option("--list-mutants", "list every protocol's mutants and exit; with --protocol, its mutants' names alone, one a line", false)
    .option("--seeds <n>", "number of seeds to run (default 100, or 1 with --seed)", integerAtLeast("--seeds", 1))
    .option("--seed <s>", "first seed (default: random, printed)", integerAtLeast("--seed", 0))
    .addOption(new Option("--scenario <name>", "what the nemesis does (see synod scenarios); random: each seed picks one").choices([...SCENARIO_NAMES]).default("random"))
    .option("--faults <list>", `fault classes: all, none, or a list of ${FAULT_CLASSES.join(",")} (default: each scenario's own)`)
    .option("--json", "print a JSON report on stdout (progress and summary go to stderr)", false)
    .option("--history-out <file>", "write the client history of the first failing seed (else the last) as JSON")
    .option("--trace-out <file>", "write every event of the first failing seed (else the last) to a file: text lines, or with a name ending in .jsonl a replay for the dashboard")
    .option("--open", "write the replay of the first failing seed (else the last; to --trace-out, else a temporary file) and serve it with the dashboard's page on a loopback port until Ctrl-C", false)
    .option("--workers <n>", "worker threads", integerAtLeast("--workers", 1), defaultWorkers())
    .option("--verbose", "print the trace of every failure, not only the first few", false)
    .option("--state-machine <module>", "run your own state machine module (its workload and model) instead of the KV store; see docs/embedding.md")
    .addOption(new Option("--workload <name>", "kv: clients reading and writing keys (checked for linearizability); leases: those, and clients granting, renewing and letting lapse leases (checked by the lease checker; the default with a lease mutant); watch: those, and watchers following the keys across reconnects (checked by the watch checker; the default with a watch mutant); lock: those, and clients contending for a lock with client.lock's recipe (checked by the lock checker; the default with a lock mutant); bank: those, and transfers across three groups (--groups) by two-phase commit, every read of all accounts summing to the total (the default with a transaction mutant); txn: those, and list-append transactions across groups, checked strictly serializable by the Elle-style checker").choices([...SIM_WORKLOADS]))
    .option("--groups <n>", "consensus groups every node hosts, the keys spread over them; every checker runs per group (KV store only)", integerAtLeast("--groups", 1), 1)
    .option("--quiesce", "Raft's quiescence: idle groups go quiet, nodes wake the quiet groups of a peer they suspect failed; adds quiescence's checks", false)
    .option("--balance-leaders", "with --groups: nodes spread the groups' leaderships by the rule a sharded node runs (leadership transfers under every fault)", false)
    .option("--hot-groups <n>", "during the fault phase only this many groups get requests at a time (a different few each second); the rest idle", integerAtLeast("--hot-groups", 1))
    .option("--nodes <n>", "simulated nodes (default: each seed draws 3 or 5); a chosen size plays the mixed nemesis", integerAtLeast("--nodes", 1))
    .option("--node-cost-us <n>", "per-node service time: each node handles its inputs (a peer message, a client request, a completed disk sync) one at a time, each costing this many virtual microseconds (default 0: off)", integerAtLeast("--node-cost-us", 0))
    .option("--entry-cost-us <n>", "with --node-cost-us: added for each log entry a peer message carries", integerAtLeast("--entry-cost-us", 0))
    .option("--throughput", "measure throughput: no faults, closed-loop clients writing without pause, committed writes per virtual second and latency over a window after a 1 s warm-up (every checker still runs)", false)
    .option("--clients <n>", "with --throughput: closed-loop clients, one write in flight each (default 64)", integerAtLeast("--clients", 1))
    .option("--window-ms <n>", "with --throughput: the measured window of virtual time (default 3000)", integerAtLeast("--window-ms", 1))
    .option("--zones <n>", "with --replicas: the nodes are given n zones in turn (node i in zone z((i - 1) mod n)), and placement spreads each group over as many as it can", integerAtLeast("--zones", 1))
    .option("--replicas <n>", "with --groups and --nodes above it: each group but group 0 on this many nodes only, moved by the production placement rule (learner first, promoted once caught up, then the replaced replica removed); one node lost for good mid-move when 3 or more", integerAtLeast("--replicas", 1))
    .option("--splits <n>", "Raft, KV workload: the key space is a range table presplit into --groups ranges, and this many ranges split during the fault phase (the production split command through the range's leader, the new range's id from group 0); clients route by views of the ranges they refresh on a range mismatch; linearizability per key across splits", integerAtLeast("--splits", 1))
    .action(async (opts: { protocol?: string; mutant?: string; listMutants: boolean; seeds?: number; seed?: number; faults?: string; scenario: string; json: boolean; historyOut?: string; traceOut?: string; open: boolean; workers: number; verbose: boolean; stateMachine?: string; workload?: SimWorkload; groups: number; quiesce: boolean; hotGroups?: number; balanceLeaders: boolean; nodes?: number; replicas?: number; zones?: number; nodeCostUs?: number; entryCostUs?: number; throughput: boolean; clients?: number; windowMs?: number; splits?: number }) => {
      if (opts.listMutants) {
        process.stdout.write(listMutants(opts.protocol));
        return;
      }
      // A user's state machine runs on Raft unless told otherwise.
      const protocol = opts.protocol ?? (opts.stateMachine === undefined ? undefined : "raft");
      if (protocol === undefined) throw new UsageError("--protocol is required (see synod protocols)");
      setExitCode(
        await simCommand({
          protocol,
          ...(opts.stateMachine === undefined ? {} : { stateMachine: opts.stateMachine }),
          ...(opts.mutant === undefined ? {} : { mutant: opts.mutant }),
          ...(opts.workload === undefined ? {} : { workload: opts.workload }),
          ...(opts.seeds === undefined ? {} : { seeds: opts.seeds }),
          ...(opts.seed === undefined ? {} : { seed: opts.seed }),
          faults: opts.faults === undefined ? null : parseFaults(opts.faults),
          scenario: opts.scenario,
          json: opts.json,
          ...(opts.historyOut === undefined ? {} : { historyOut: opts.historyOut }),
          ...(opts.traceOut === undefined ? {} : { traceOut: opts.traceOut }),
          ...(opts.open ? { open: true } : {}),
          workers: opts.workers,
          verbose: opts.verbose,
          ...(opts.groups === 1 ? {} : { groups: opts.groups }),
          ...(opts.quiesce ? { quiesce: true } : {}),
          ...(opts.hotGroups === undefined ? {} : { hotGroups: opts.hotGroups }),
          ...(opts.balanceLeaders ? { balanceLeaders: true } : {}),
          ...(opts.nodes === undefined ? {} : { nodes: opts.nodes }),
          ...(opts.replicas === undefined ? {} : { replicas: opts.replicas }),
          ...(opts.zones === undefined ? {} : { zones: opts.zones }),
          ...costOptions(opts),
          ...(opts.splits === undefined ? {} : { splits: opts.splits }),
        }),
      );
    });

  program
    .command("protocols")
    .description("list the protocols the simulator can run")
    .action(() => {
      for (const factory of PROTOCOLS.values()) process.stdout.write(`${factory.name.padEnd(15)} ${factory.description}\n`);
    });

  program
    .command("scenarios")
    .description("list the simulator's scenarios (sim --scenario NAME)")
    .action(() => {
      process.stdout.write(`${"random".padEnd(28)} each seed picks one of the scenarios below (the default)\n`);
      for (const scenario of SCENARIOS) process.stdout.write(`${scenario.name.padEnd(28)} ${scenario.description}\n`);
    });

  program
    .command("check")
    .description("check a history file (the format of sim --history-out) for linearizability")
    .argument("<file>", "a JSON array of operations")
    .action((file: string) => setExitCode(checkCommand(file)));
}

/** What `--node-cost-us`, `--entry-cost-us`, `--throughput`, `--clients` and `--window-ms` ask for; refuses the options that go only with another. */
function costOptions(opts: { nodeCostUs?: number; entryCostUs?: number; throughput: boolean; clients?: number; windowMs?: number }): Pick<SimCommandOptions, "nodeCost" | "throughput"> {
  if (opts.entryCostUs !== undefined && opts.nodeCostUs === undefined) throw new UsageError("--entry-cost-us goes with --node-cost-us (the cost of every input)");
  if (!opts.throughput && (opts.clients !== undefined || opts.windowMs !== undefined)) throw new UsageError(`${opts.clients === undefined ? "--window-ms" : "--clients"} goes with --throughput`);
  return {
    ...(opts.nodeCostUs === undefined || opts.nodeCostUs === 0 ? {} : { nodeCost: { inputMicros: opts.nodeCostUs, entryMicros: opts.entryCostUs ?? 0 } }),
    ...(opts.throughput ? { throughput: { clients: opts.clients ?? THROUGHPUT_CLIENTS_DEFAULT, windowMicros: (opts.windowMs ?? THROUGHPUT_WINDOW_MS_DEFAULT) * 1000 } } : {}),
  };
}

/** `synod demo`. */
export function registerDemoCommand(program: Command, setExitCode: (code: number) => void): void {
  program
    .command("demo")
    .description("the simulator at work: Raft passes 20 seeds, a broken Raft is caught")
    .option("--workers <n>", "worker threads", integerAtLeast("--workers", 1), defaultWorkers())
    .action(async (opts: { workers: number }) => setExitCode(await demoCommand(opts.workers)));
}

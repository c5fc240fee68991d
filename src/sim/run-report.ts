import { describeParams } from "./params.js";
import type { SimResult } from "./simulation.js";
import { FAULT_CLASSES } from "./params.js";

/** The one command that reproduces a run: the seed and what was asked for. */
export function reproduceCommand(result: Pick<SimResult, "protocol" | "seed" | "mutant" | "request">): string {
  const faults = result.request.faults;
  const allFaults = faults !== null && faults.length === FAULT_CLASSES.length && FAULT_CLASSES.every((f) => faults.includes(f));
  const faultFlag = faults === null ? "" : ` --faults ${allFaults ? "all" : faults.length === 0 ? "none" : faults.join(",")}`;
  const scenarioFlag = result.request.scenario === "random" ? "" : ` --scenario ${result.request.scenario}`;
  const path = result.request.stateMachine;
  const moduleFlag = path === undefined ? "" : ` --state-machine ${/^[\w./@+-]+$/.test(path) ? path : JSON.stringify(path)}`;
  const workloadFlag = result.request.workload === undefined ? "" : ` --workload ${result.request.workload}`;
  const groupsFlag = result.request.groups === undefined || result.request.groups === 1 ? "" : ` --groups ${result.request.groups}`;
  const quiesceFlag = `${result.request.quiesce === true ? " --quiesce" : ""}${result.request.hotGroups === undefined ? "" : ` --hot-groups ${result.request.hotGroups}`}${result.request.balanceLeaders === true ? " --balance-leaders" : ""}${result.request.nodes === undefined ? "" : ` --nodes ${result.request.nodes}`}${result.request.replicas === undefined ? "" : ` --replicas ${result.request.replicas}`}${result.request.zones === undefined ? "" : ` --zones ${result.request.zones}`}${result.request.splits === undefined ? "" : ` --splits ${result.request.splits}`}${costFlags(result.request)}`;
  return `npx synod sim --protocol ${result.protocol}${moduleFlag}${groupsFlag}${quiesceFlag}${result.mutant === null ? "" : ` --mutant ${result.mutant}`}${workloadFlag}${scenarioFlag} --seed ${result.seed}${faultFlag}`;
}

/** The flags of the service-time model and a throughput run (none when the run had neither). */
function costFlags(request: SimResult["request"]): string {
  const cost = request.nodeCost === undefined ? "" : ` --node-cost-us ${request.nodeCost.inputMicros}${request.nodeCost.entryMicros === 0 ? "" : ` --entry-cost-us ${request.nodeCost.entryMicros}`}`;
  return `${cost}${request.throughput === undefined ? "" : ` --throughput --clients ${request.throughput.clients} --window-ms ${request.throughput.windowMicros / 1000}`}`;
}

/** A failed run, for a person: what failed, the parameters, how it ended, how to rerun it. */
export function describeFailure(result: SimResult, options: { traceLines: number; brief?: boolean }): string {
  const failure = result.failure;
  if (failure === null) return `seed ${result.seed}: passed`;
  const message = failure.message.split("\n");
  const lines = [
    `FAIL seed ${result.seed}: ${failure.checker} at ${(failure.atMicros / 1000).toFixed(3)}ms`,
    ...(options.brief === true ? message.slice(0, 2) : message).map((line) => `  ${line}`),
  ];
  if (options.brief === true) {
    if (result.notableTail.length > 0) lines.push("  how it ended:", ...result.notableTail.slice(-options.traceLines).map((line) => `    ${line}`));
    lines.push(`  reproduce: ${reproduceCommand(result)}`);
    return lines.join("\n");
  }
  lines.push("  parameters:", ...describeParams(result.params).map((line) => `    ${line}`));
  if (options.traceLines > 0 && result.notableTail.length > 0) {
    lines.push("  the story of the run (faults, crashes, restarts, new leaders):");
    for (const line of result.notableTail.slice(-options.traceLines)) lines.push(`    ${line}`);
  }
  if (options.traceLines > 0 && result.traceTail.length > 0) {
    lines.push("  the last events, every message included:");
    for (const line of result.traceTail.slice(-Math.ceil(options.traceLines / 2))) lines.push(`    ${line}`);
  }
  lines.push(`  reproduce: ${reproduceCommand(result)}`);
  return lines.join("\n");
}

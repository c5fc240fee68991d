import type { EngineFactory } from "../core/engine/contract.js";
import { paxosFactory } from "../core/paxos/index.js";
import { raftFactory } from "../core/raft/index.js";
import { asyncPrimaryFactory } from "./controls/async-primary.js";
import { singleFactory } from "./controls/single.js";

/** The protocols the simulator can run, by name. */
export const PROTOCOLS: ReadonlyMap<string, EngineFactory<unknown, unknown>> = new Map<string, EngineFactory<unknown, unknown>>([
  ["raft", raftFactory() as EngineFactory<unknown, unknown>],
  ["paxos", paxosFactory() as EngineFactory<unknown, unknown>],
  [singleFactory.name, singleFactory as EngineFactory<unknown, unknown>],
  [asyncPrimaryFactory.name, asyncPrimaryFactory as EngineFactory<unknown, unknown>],
]);

/**
 * The simulator's controls (src/sim/controls): engines that test the simulator, not
 * consensus engines — one correct by construction, one broken on purpose.
 */
export const CONTROLS: ReadonlySet<string> = new Set([singleFactory.name, asyncPrimaryFactory.name]);

export function protocolNames(): string[] {
  return [...PROTOCOLS.keys()];
}

/**
 * The consensus engines that claim to be correct: every registered protocol except the
 * controls, claiming at least one invariant. `npm run sim:soak` runs each of them, so an
 * engine registered above (Paxos, say) joins the soak by being registered.
 */
export function correctEngines(protocols: ReadonlyMap<string, EngineFactory<unknown, unknown>> = PROTOCOLS): string[] {
  return [...protocols].filter(([name, factory]) => !CONTROLS.has(name) && factory.invariants.length > 0).map(([name]) => name);
}

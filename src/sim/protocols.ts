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

export function protocolNames(): string[] {
  return [...PROTOCOLS.keys()];
}

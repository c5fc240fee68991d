/**
 * The mutants every protocol can run, beside each engine's own: the replica's (the loop every
 * engine runs in), the KV layer's (leases and watches), the lock recipe's, the router's
 * (delivery between groups), node liveness's (waking quiet groups) and placement's (moving ranges). One list, for the simulator and the CLI.
 */
import type { EngineFactory } from "../core/engine/contract.js";
import { KV_MUTANTS, TXN_MUTANTS } from "../core/kv/mutants.js";
import { LOCK_MUTANTS } from "../core/kv/lock-turn.js";
import { ROUTER_MUTANTS } from "../core/multi/mutants.js";
import { LIVENESS_MUTANTS } from "../core/multi/liveness.js";
import { PLACEMENT_MUTANTS } from "../core/multi/placement.js";
import { SPLIT_MUTANTS } from "../core/kv/split-mutants.js";
import { REPLICA_MUTANTS } from "../core/replica/mutants.js";

/** Name, what it breaks, and what it needs to run, for every mutant no engine owns. */
export const SHARED_MUTANTS: readonly { readonly name: string; readonly description: string }[] = [
  ...Object.entries(REPLICA_MUTANTS).map(([name, description]) => ({ name, description })),
  // The KV layer's break leases or watches; they run the lease or the watch workload.
  ...Object.entries(KV_MUTANTS).map(([name, description]) => ({ name, description })),
  // The lock recipe's run the lock workload.
  ...Object.entries(LOCK_MUTANTS).map(([name, description]) => ({ name, description })),
  // Transactions across groups' run the bank workload (or txn) over three groups.
  ...Object.entries(TXN_MUTANTS).map(([name, description]) => ({ name, description })),
  ...Object.entries(ROUTER_MUTANTS).map(([name, description]) => ({ name, description: `${description} (--groups 2 or more)` })),
  // Node liveness runs beside quiet groups only (--quiesce).
  ...Object.entries(LIVENESS_MUTANTS).map(([name, description]) => ({ name, description })),
  // Placement's run with groups on some nodes only, where one node is lost for good in the middle of a move.
  ...Object.entries(PLACEMENT_MUTANTS).map(([name, description]) => ({ name, description: `${description} (--replicas 3 --nodes 4 or more)` })),
  // Splits' run with ranges that split during the run (Raft).
  ...Object.entries(SPLIT_MUTANTS).map(([name, description]) => ({ name, description: `${description} (--protocol raft --splits 3 or more)` })),
];

/** Whether `factory`'s engine, or the code every engine runs, has the mutant `name`. */
export function hasMutant(factory: EngineFactory<unknown>, name: string): boolean {
  return name in factory.mutants || SHARED_MUTANTS.some((mutant) => mutant.name === name);
}

/** The mutants `factory` can run, its own first. */
export function mutantNames(factory: EngineFactory<unknown>): string[] {
  return [...Object.keys(factory.mutants), ...SHARED_MUTANTS.map((mutant) => mutant.name)];
}

/**
 * The end-of-run checks of a run whose ranges split (`synod sim --splits`; split-run.ts says
 * what each one means): linearizability per key over the whole history, no acknowledged
 * write lost per key against the range that owns the key at the end, and liveness per range
 * at the end. They replace the per-group checks of a run whose groups own keys by hash.
 */
import type { NodeId } from "../core/engine/contract.js";
import type { GroupId } from "../core/multi/group.js";
import type { RangeTable } from "../core/multi/ranges.js";
import { checkLinearizability } from "./check/linearizability.js";
import { checkNoLostWrites, type AckedWrite } from "./check/lost-writes.js";
import { InvariantViolation } from "./check/violation.js";
import { checkReplicaStates } from "./check/replica-state.js";
import type { GroupWatch } from "./group-watch.js";
import type { Operation } from "./history.js";
import type { SimNode } from "./node.js";

export interface SplitCheckWorld {
  readonly history: readonly Operation[];
  /** The request key of each history entry, by position. */
  readonly historyKeys: readonly string[];
  readonly acked: readonly AckedWrite[];
  /** The ranges as the run ends. */
  readonly table: RangeTable;
  readonly nodes: ReadonlyMap<NodeId, SimNode<unknown>>;
  /** Every group's watch (ranges and the room for those not born). */
  readonly watches: readonly GroupWatch[];
  readonly disabled: ReadonlySet<string>;
  isMemberOf(group: GroupId, node: NodeId): boolean;
  /** The run's liveness check of `group`, over the operations `owns` says are its: reads and writes served after the heal, or with `anyOperation` one or the other. */
  checkLiveness(group: GroupId, owns: (op: Operation) => boolean, anyOperation: boolean): void;
}

export function checkSplitRun(world: SplitCheckWorld): void {
  const { table, disabled } = world;
  const ownerOf = (key: string): GroupId => table.forKey(key).id;
  if (!disabled.has("liveness")) {
    // Reads and writes over the whole key space, and some served in each range: a range may
    // hold one key only, which the seconds after the heal may bring no write by chance.
    world.checkLiveness(0, () => true, false);
    for (const range of table.list()) world.checkLiveness(range.id, (op) => ownerOf(op.key) === range.id, true);
  }
  checkReplicasAgree(world);
  if (!disabled.has("lost-write")) checkLostWrites(world, ownerOf);
  if (disabled.has("linearizability")) return;
  const result = checkLinearizability(resolvedHistory(world));
  if (result.verdict === "violation") throw new InvariantViolation("linearizability", `${result.explanation} (key ${JSON.stringify(result.key)}, in range ${ownerOf(result.key)} at the end)`);
  if (result.verdict === "inconclusive") throw new InvariantViolation("linearizability", `inconclusive: ${result.explanation}`);
}

/** Every range's replicas that hold its state and applied one index hold one state (check/replica-state.ts). */
function checkReplicasAgree(world: SplitCheckWorld): void {
  for (const range of world.table.list()) {
    const states = [...world.nodes.values()].flatMap((node) => {
      const state = node.up ? (node.splitting?.stateOf(range.id) ?? null) : null;
      return state === null ? [] : [{ node: node.id, ...state }];
    });
    checkReplicaStates(range.id, states, "range");
  }
}

/**
 * Every acknowledged write, against each replica of the range that owns its key at the end
 * that holds the range's state and is in its configuration: what it applied, with what its
 * first snapshot carried over from its ancestors through their splits (SplitRun.requestsThrough).
 */
function checkLostWrites(world: SplitCheckWorld, ownerOf: (key: string) => GroupId): void {
  for (const range of world.table.list()) {
    const holders = [...world.nodes.values()].filter((node) => node.up && (node.splitting?.describe(range.id) ?? null) !== null && world.isMemberOf(range.id, node.id));
    const applied = new Map(holders.map((node) => [node.id, node.appliedRequestsOf(range.id)] as const));
    checkNoLostWrites(
      world.acked.filter((write) => ownerOf(write.operation.key) === range.id),
      applied,
    );
  }
}

/**
 * The history with every timed-out write resolved, as the run without splits does
 * (Simulation.resolvedHistory), by the first time any range applied it: a write retried
 * after a range mismatch may have been applied by the range the key moved to.
 */
function resolvedHistory(world: SplitCheckWorld): Operation[] {
  return world.history.map((op, position) => {
    if (op.status !== "unknown" || op.op === "get") return op;
    const key = world.historyKeys[position] as string;
    let first: { readonly atMicros: number; readonly output: string | null | boolean } | undefined;
    for (const watch of world.watches) {
      const applied = watch.firstApplied.get(key);
      if (applied !== undefined && (first === undefined || applied.atMicros < first.atMicros)) first = applied;
    }
    if (first === undefined) return { ...op, status: "fail" as const };
    return { ...op, status: "ok" as const, output: first.output, return: Math.max(op.call, first.atMicros) };
  });
}

import assert from "node:assert/strict";
import { test } from "node:test";
import type { EngineFactory } from "../core/engine/contract.js";
import { NodeCosts, nodeCostConflict } from "./node-cost.js";
import { PROTOCOLS } from "./protocols.js";
import { Scheduler } from "./scheduler.js";
import { runSimulation, type SimOptions } from "./simulation.js";

const found = PROTOCOLS.get("raft");
if (found === undefined) throw new Error("no raft protocol");
const raft: EngineFactory<unknown, unknown> = found;

test("a node serves its inputs one at a time, each costing its time, and loses its queue when it crashes", () => {
  const scheduler = new Scheduler();
  const costs = new NodeCosts({ inputMicros: 100, entryMicros: 10 }, scheduler);
  costs.measureBusyIn(0, 1000);
  const node = { id: 1, incarnation: 0, up: true };
  const other = { id: 2, incarnation: 0, up: true };
  const ran: string[] = [];
  const at = (name: string) => () => ran.push(`${name}@${scheduler.now}`);
  costs.serve(node, 0, at("a"));
  costs.serve(node, 5, at("b"));
  costs.serve(other, 0, at("c"));
  scheduler.runUntil(120);
  costs.serve(node, 0, at("d"));
  // Lost with the incarnation that queued it, and the next one starts idle.
  const crashed = { ...node };
  costs.serve(crashed, 0, at("lost"));
  crashed.incarnation = 1;
  costs.serve(crashed, 0, at("e"));
  scheduler.runUntil(10_000);
  assert.deepEqual(ran, ["a@100", "c@100", "e@220", "b@250", "d@350"]);
  assert.deepEqual(costs.busyShares(2), [0.55, 0.1]);
  assert.equal(costs.waitMicrosMax, 230);
});

test("cost options out of range are refused with a message naming the flag", () => {
  assert.match(nodeCostConflict({ inputMicros: -1, entryMicros: 0 }) ?? "", /--node-cost-us/);
  assert.match(nodeCostConflict({ inputMicros: 0, entryMicros: 5 }) ?? "", /--node-cost-us must be at least 1.*--entry-cost-us goes with it/);
  assert.equal(nodeCostConflict({ inputMicros: 50, entryMicros: 0 }), null);
  assert.throws(() => runSimulation({ protocol: raft, seed: 1, nodes: 3, throughput: { clients: 8, windowMicros: 2_500_000 }, faults: ["crash"] }), /fault-free/);
  assert.throws(() => runSimulation({ protocol: raft, seed: 1, nodes: 3, throughput: { clients: 0, windowMicros: 2_500_000 } }), /--clients/);
});

/** One throughput run of `seed` (every checker on): its writes per virtual second, and each node's busy share. */
function throughputOf(extra: Partial<SimOptions>, nodeCostMicros: number | null): { perSecond: number; busy: readonly number[] } {
  const result = runSimulation({
    protocol: raft,
    seed: 7,
    throughput: { clients: 96, windowMicros: 2_500_000 },
    ...(nodeCostMicros === null ? {} : { nodeCost: { inputMicros: nodeCostMicros, entryMicros: 0 } }),
    ...extra,
  });
  assert.equal(result.failure, null, result.failure?.message);
  const stats = result.stats.throughput;
  assert.ok(stats !== undefined);
  return { perSecond: stats.writesPerSecond, busy: stats.busyShares ?? [] };
}

test("with a cost per input, 6 nodes with 12 ranges of 3 replicas commit clearly more per virtual second than 3 nodes with 1, under the same load", () => {
  const single = throughputOf({ nodes: 3 }, 100);
  const spread = throughputOf({ nodes: 6, groups: 12, replicas: 3 }, 100);
  // One range: its leader is the bottleneck, serving inputs all the time, its followers idle a third of it or more.
  assert.ok(Math.max(...single.busy) > 0.95, `the single range's leader was busy ${JSON.stringify(single.busy)}`);
  assert.ok(Math.min(...single.busy) < 0.8, `the single range's followers were busy ${JSON.stringify(single.busy)}`);
  // Twelve ranges: the leaderships, and so the work, spread over six nodes (measured: 6,790/s against 3,173/s).
  assert.ok(spread.perSecond > 1.6 * single.perSecond, `6 x 12 committed ${spread.perSecond}/s, 3 x 1 ${single.perSecond}/s`);
  assert.ok(spread.busy.length === 6 && spread.busy.every((share) => share > 0.6), `the six nodes were busy ${JSON.stringify(spread.busy)}`);
});

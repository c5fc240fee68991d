// The graph underneath the transactional checker: Tarjan's components, and the transitive
// reduction of real-time order checked against the plain n² definition.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { addRealtimeEdges, cyclicComponents, DependencyGraph } from "./txn-graph.js";
import type { Transaction } from "./txn-history.js";

const every = (graph: DependencyGraph) => (node: number) => graph.successors(node, new Set(["ww", "wr", "rw", "rt"] as const));
const none = (): string => "";

describe("dependency graph", () => {
  test("components: two cycles, a bridge between them, and a node on no cycle", () => {
    const graph = new DependencyGraph(6);
    for (const [from, to] of [[0, 1], [1, 0], [1, 2], [2, 3], [3, 4], [4, 2], [4, 5]] as const) graph.add(from, to, "ww", none);
    const components = cyclicComponents([0, 1, 2, 3, 4, 5], every(graph)).sort((a, b) => (a[0] as number) - (b[0] as number));
    assert.deepEqual(components, [[0, 1], [2, 3, 4]]);
  });

  test("components only over the nodes given", () => {
    const graph = new DependencyGraph(3);
    for (const [from, to] of [[0, 1], [1, 2], [2, 0]] as const) graph.add(from, to, "rw", none);
    assert.deepEqual(cyclicComponents([0, 1], every(graph)), []);
    assert.deepEqual(cyclicComponents([0, 1, 2], every(graph)), [[0, 1, 2]]);
  });

  test("a cycle through 100,000 transactions does not overflow the stack", () => {
    const size = 100_000;
    const graph = new DependencyGraph(size);
    for (let i = 0; i < size; i++) graph.add(i, (i + 1) % size, "ww", none);
    const components = cyclicComponents(Array.from({ length: size }, (_, i) => i), every(graph));
    assert.equal(components.length, 1);
    assert.equal(components[0]?.length, size);
  });

  test("self edges are dropped; an edge type is kept once per pair", () => {
    const graph = new DependencyGraph(2);
    graph.add(0, 0, "ww", none);
    graph.add(0, 1, "ww", () => "first");
    graph.add(0, 1, "ww", () => "second");
    graph.add(0, 1, "rw", none);
    assert.equal(graph.edgeCount, 2);
    assert.equal(graph.between(0, 1).get("ww")?.(), "first");
  });

  test("real-time edges: their reduction reaches exactly what the n² definition orders", () => {
    const interval = fc.record({ call: fc.integer({ min: 0, max: 30 }), length: fc.integer({ min: 0, max: 10 }), status: fc.constantFrom("ok", "ok", "ok", "unknown", "fail") });
    fc.assert(
      fc.property(fc.array(interval, { minLength: 1, maxLength: 12 }), (intervals) => {
        const history: Transaction<never>[] = intervals.map((i, client) => ({ client, call: i.call, return: i.call + i.length, status: i.status as Transaction<never>["status"], ops: [] }));
        const graph = new DependencyGraph(history.length);
        addRealtimeEdges(graph, history);
        history.forEach((from, a) => {
          const reached = reach(graph, a);
          history.forEach((to, b) => {
            const ordered = a !== b && from.status === "ok" && to.status !== "fail" && from.return < to.call;
            assert.equal(reached.has(b), ordered, `T${a + 1} -> T${b + 1} in ${JSON.stringify(history)}`);
          });
        });
      }),
      { numRuns: 500, seed: 11 },
    );
  });
});

function reach(graph: DependencyGraph, from: number): Set<number> {
  const seen = new Set<number>();
  const stack = [from];
  while (stack.length > 0) {
    for (const to of every(graph)(stack.pop() as number)) {
      if (seen.has(to)) continue;
      seen.add(to);
      stack.push(to);
    }
  }
  return seen;
}

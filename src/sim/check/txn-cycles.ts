/**
 * Cycles in the dependency graph, found and named as Elle does (section 4.4 of its paper).
 *
 * Any cycle means no serial order exists; the kind of cycle says how weak the isolation
 * was. The search first splits the graph into strongly connected components (Tarjan): every
 * cycle lies inside one. In each component it then looks for the most telling cycle, trying
 * one edge set after another, each time for a shortest cycle (breadth-first search):
 *
 *   G0        ww edges only                                  (dirty write)
 *   G1c       ww and wr edges                                (circular information flow)
 *   G-single  exactly one rw edge, the rest ww and wr        (read skew)
 *   G2-item   any edges: two or more rw edges                (write skew)
 *
 * For strict serializability the same four follow again with rt edges allowed as well, and
 * their names end in "-realtime": such a cycle exists only because of real-time order, so
 * the history is serializable but not strict serializable. (A cycle without rt edges is
 * reported under its plain name in either mode.)
 *
 * Because each search runs only after the weaker ones found nothing in the component, the
 * cycle found has exactly the edges its name says; the name is computed from the edges and
 * asserted to match. One cycle is reported per component: a component is one knot of
 * transactions, and its most telling cycle is the one to read first.
 */
import { assert } from "../../core/common/assert.js";
import { breadthFirst, cyclicComponents, pathTo, type DependencyGraph, type EdgeType } from "./txn-graph.js";
import { cycleSummary, type Anomaly, type CycleKind, type CycleStep } from "./txn-anomaly.js";
import { txnName } from "./txn-history.js";

export type Consistency = "serializable" | "strict-serializable";

interface CycleSearch {
  readonly kind: CycleKind;
  /** Edge types the cycle may use; with `oneAntiDependency`, the types of all but its one rw edge. */
  readonly types: ReadonlySet<EdgeType>;
  readonly oneAntiDependency: boolean;
}

const search = (kind: CycleKind, types: EdgeType[], oneAntiDependency = false): CycleSearch => ({ kind, types: new Set(types), oneAntiDependency });

const SERIALIZABLE_SEARCHES: readonly CycleSearch[] = [
  search("G0", ["ww"]),
  search("G1c", ["ww", "wr"]),
  search("G-single", ["ww", "wr"], true),
  search("G2-item", ["ww", "wr", "rw"]),
];

const REALTIME_SEARCHES: readonly CycleSearch[] = [
  search("G0-realtime", ["ww", "rt"]),
  search("G1c-realtime", ["ww", "wr", "rt"]),
  search("G-single-realtime", ["ww", "wr", "rt"], true),
  search("G2-item-realtime", ["ww", "wr", "rw", "rt"]),
];

/** When an edge has several types, the one named: dependencies before real time before anti-dependencies. */
const LABEL_PREFERENCE: readonly EdgeType[] = ["ww", "wr", "rt", "rw"];

/** Start nodes tried per component when looking for its shortest cycle; past it, a short one will do. */
const SHORTEST_CYCLE_STARTS_MAX = 64;

/** The cycles of `graph`, one per strongly connected component, named and explained. */
export function findCycleAnomalies(graph: DependencyGraph, consistency: Consistency): Anomaly[] {
  const searches = consistency === "strict-serializable" ? [...SERIALIZABLE_SEARCHES, ...REALTIME_SEARCHES] : SERIALIZABLE_SEARCHES;
  const allTypes: ReadonlySet<EdgeType> = new Set(consistency === "strict-serializable" ? ["ww", "wr", "rw", "rt"] : ["ww", "wr", "rw"]);
  const nodes = Array.from({ length: graph.size }, (_, i) => i);
  const anomalies: Anomaly[] = [];
  for (const component of cyclicComponents(nodes, (node) => graph.successors(node, allTypes))) {
    let found: Anomaly | undefined;
    for (const s of searches) {
      const cycle = s.oneAntiDependency ? cycleWithOneAntiDependency(graph, component, s.types) : shortestCycle(graph, component, s.types);
      if (cycle === undefined) continue;
      found = describeCycle(graph, cycle, s);
      break;
    }
    assert(found !== undefined, `a strongly connected component of ${component.length} transactions has no cycle over its own edges`);
    anomalies.push(found);
  }
  return anomalies;
}

/** A shortest cycle (as its nodes, first not repeated) over `types` within `component`, if any. */
function shortestCycle(graph: DependencyGraph, component: readonly number[], types: ReadonlySet<EdgeType>): number[] | undefined {
  const next = (node: number): Iterable<number> => graph.successors(node, types);
  let best: number[] | undefined;
  for (const knot of cyclicComponents(component, next)) {
    const inside = new Set(knot);
    for (const start of knot.slice(0, SHORTEST_CYCLE_STARTS_MAX)) {
      const parent = breadthFirst(start, inside, next);
      for (const node of knot) {
        if (node === start || !parent.has(node)) continue;
        if (![...graph.between(node, start).keys()].some((type) => types.has(type))) continue;
        const cycle = pathTo(parent, node);
        if (best === undefined || cycle.length < best.length) best = cycle;
      }
      if (best?.length === 2) return best;
    }
  }
  return best;
}

/**
 * A shortest cycle made of one rw edge a -> b and a path from b back to a over `types` (no
 * rw among them), within `component`. One breadth-first search per distinct b answers every
 * rw edge into b.
 */
function cycleWithOneAntiDependency(graph: DependencyGraph, component: readonly number[], types: ReadonlySet<EdgeType>): number[] | undefined {
  const inside = new Set(component);
  const antiDependencies = new Map<number, number[]>();
  const onlyRw: ReadonlySet<EdgeType> = new Set(["rw"]);
  for (const from of component) {
    for (const to of graph.successors(from, onlyRw)) {
      if (!inside.has(to)) continue;
      let sources = antiDependencies.get(to);
      if (sources === undefined) antiDependencies.set(to, (sources = []));
      sources.push(from);
    }
  }
  let best: number[] | undefined;
  for (const [to, sources] of antiDependencies) {
    const parent = breadthFirst(to, inside, (node) => graph.successors(node, types));
    for (const from of sources) {
      if (!parent.has(from)) continue;
      const back = pathTo(parent, from); // to, ..., from
      if (best === undefined || back.length < best.length) best = [from, ...back.slice(0, -1)];
    }
    if (best?.length === 2) break;
  }
  return best;
}

/** Names each edge of the cycle, names the cycle from its edges, and checks that against the search. */
function describeCycle(graph: DependencyGraph, nodes: readonly number[], s: CycleSearch): Anomaly {
  const steps: CycleStep[] = nodes.map((from, i) => {
    const to = nodes[(i + 1) % nodes.length] as number;
    const types = graph.between(from, to);
    const type = s.oneAntiDependency && i === 0 ? "rw" : LABEL_PREFERENCE.find((t) => s.types.has(t) && types.has(t));
    assert(type !== undefined && types.has(type), `cycle step ${txnName(from)} -> ${txnName(to)} has no edge of the searched types`);
    return { from, to, type, why: (types.get(type) as () => string)() };
  });
  const kind = kindOf(steps);
  assert(kind === s.kind, `a ${s.kind} search found a cycle whose edges make it ${kind}`);
  return { kind, cycle: steps, transactions: [...nodes], summary: cycleSummary(kind, steps, txnName) };
}

/** Adya's and Elle's names, from the edges alone. */
export function kindOf(steps: readonly CycleStep[]): CycleKind {
  const antiDependencies = steps.filter((step) => step.type === "rw").length;
  const base = antiDependencies === 0 ? (steps.some((step) => step.type === "wr") ? "G1c" : "G0") : antiDependencies === 1 ? "G-single" : "G2-item";
  return steps.some((step) => step.type === "rt") ? `${base}-realtime` : base;
}

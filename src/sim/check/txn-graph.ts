/**
 * The dependency graph of a transaction history (Adya's Direct Serialization Graph, as
 * Elle infers it): one node per transaction, an edge Ti -> Tj when Tj must follow Ti in any
 * serial order that explains what was observed.
 *
 *   ww  Tj overwrote (appended after) a version Ti wrote        write-write dependency
 *   wr  Tj read a version Ti wrote                              write-read dependency
 *   rw  Tj overwrote the version Ti read                        read-write anti-dependency
 *   rt  Ti completed before Tj was invoked                      real-time order
 *
 * A history is serializable exactly when the graph of its ww, wr and rw edges (over the
 * history's true version order) has no cycle; strict serializability adds rt edges. The
 * inference (txn-list-append.ts, txn-register.ts) adds only edges that hold in every
 * serial order explaining the observations, so any cycle it finds is real.
 *
 * Each edge keeps a sentence, built on demand, saying why it exists, so a cycle can be
 * printed for a person.
 */
import { assert } from "../../core/common/assert.js";
import type { Transaction } from "./txn-history.js";
import { txnName } from "./txn-history.js";
import { formatTime } from "../history.js";

export type EdgeType = "ww" | "wr" | "rw" | "rt";

/** The reason for an edge, as a sentence; built only when the edge is printed. */
export type Because = () => string;

export class DependencyGraph {
  /** from -> to -> edge type -> why (the first reason found for that type). */
  private readonly out: Map<number, Map<EdgeType, Because>>[];
  private edges = 0;

  constructor(readonly size: number) {
    assert(Number.isSafeInteger(size) && size >= 0, `graph size must be a natural number, got ${size}`);
    this.out = Array.from({ length: size }, () => new Map());
  }

  /** Adds `from -type-> to`; self edges mean nothing for ordering and are dropped. */
  add(from: number, to: number, type: EdgeType, because: Because): void {
    assert(from >= 0 && from < this.size && to >= 0 && to < this.size, `edge ${from} -> ${to} outside a graph of ${this.size}`);
    if (from === to) return;
    const targets = this.out[from] as Map<number, Map<EdgeType, Because>>;
    let types = targets.get(to);
    if (types === undefined) targets.set(to, (types = new Map()));
    if (types.has(type)) return;
    types.set(type, because);
    this.edges++;
  }

  get edgeCount(): number {
    return this.edges;
  }

  /** The edge types from `from` to `to`, with their reasons (empty when none). */
  between(from: number, to: number): ReadonlyMap<EdgeType, Because> {
    return this.out[from]?.get(to) ?? NO_EDGES;
  }

  /** Successors of `node` over an edge of one of the `allowed` types. */
  *successors(node: number, allowed: ReadonlySet<EdgeType>): Iterable<number> {
    for (const [to, types] of this.out[node] as Map<number, Map<EdgeType, Because>>) {
      for (const type of types.keys()) {
        if (allowed.has(type)) {
          yield to;
          break;
        }
      }
    }
  }

  /** A copy holding only the edges whose type `keep` accepts (used to build checker mutants). */
  filtered(keep: (type: EdgeType) => boolean): DependencyGraph {
    const copy = new DependencyGraph(this.size);
    this.out.forEach((targets, from) => {
      for (const [to, types] of targets) for (const [type, because] of types) if (keep(type)) copy.add(from, to, type, because);
    });
    return copy;
  }
}

const NO_EDGES: ReadonlyMap<EdgeType, Because> = new Map();

/**
 * Strongly connected components with more than one node, by Tarjan's algorithm, written
 * with an explicit stack so a long chain of transactions cannot overflow the call stack.
 * `nodes` bounds the search: edges leaving it are ignored.
 */
export function cyclicComponents(nodes: readonly number[], next: (node: number) => Iterable<number>): number[][] {
  const inside = new Set(nodes);
  const order = new Map<number, number>();
  const low = new Map<number, number>();
  const onStack = new Set<number>();
  const stack: number[] = [];
  const components: number[][] = [];
  let counter = 0;
  for (const root of nodes) {
    if (order.has(root)) continue;
    const frames: { node: number; successors: Iterator<number> }[] = [];
    const enter = (node: number): void => {
      order.set(node, counter);
      low.set(node, counter);
      counter++;
      stack.push(node);
      onStack.add(node);
      frames.push({ node, successors: next(node)[Symbol.iterator]() });
    };
    enter(root);
    while (frames.length > 0) {
      const frame = frames[frames.length - 1] as { node: number; successors: Iterator<number> };
      const step = frame.successors.next();
      if (!step.done) {
        const to = step.value;
        if (!inside.has(to)) continue;
        if (!order.has(to)) enter(to);
        else if (onStack.has(to)) low.set(frame.node, Math.min(low.get(frame.node) as number, order.get(to) as number));
        continue;
      }
      frames.pop();
      const parent = frames[frames.length - 1];
      if (parent !== undefined) low.set(parent.node, Math.min(low.get(parent.node) as number, low.get(frame.node) as number));
      if (low.get(frame.node) !== order.get(frame.node)) continue;
      const component: number[] = [];
      for (;;) {
        const member = stack.pop() as number;
        onStack.delete(member);
        component.push(member);
        if (member === frame.node) break;
      }
      if (component.length > 1) components.push(component.sort((a, b) => a - b));
    }
  }
  return components;
}

/**
 * Breadth-first search from `from` within `inside`: for every node reached, the node it was
 * reached from (`from` maps to itself). Paths read back from it are shortest.
 */
export function breadthFirst(from: number, inside: ReadonlySet<number>, next: (node: number) => Iterable<number>): Map<number, number> {
  const parent = new Map<number, number>([[from, from]]);
  const queue = [from];
  for (let head = 0; head < queue.length; head++) {
    const node = queue[head] as number;
    for (const to of next(node)) {
      if (!inside.has(to) || parent.has(to)) continue;
      parent.set(to, node);
      queue.push(to);
    }
  }
  return parent;
}

/** The path from the search's origin to `to` (both included), read from `breadthFirst`'s parents. */
export function pathTo(parent: ReadonlyMap<number, number>, to: number): number[] {
  const path = [to];
  for (let node = to; parent.get(node) !== node; ) {
    node = parent.get(node) as number;
    path.push(node);
    assert(path.length <= parent.size, "a breadth-first parent chain loops");
  }
  return path.reverse();
}

/**
 * Real-time edges: Ti -> Tj when Ti completed ok before Tj was invoked (strictly: touching
 * intervals are concurrent, as in the linearizability checker). A transaction that timed out
 * never completed, so it precedes nothing; a failed one is not in the graph at all.
 *
 * Only a transitive reduction is added, as Elle does, so a long history gets about
 * n × concurrency edges rather than n²: time is swept in order keeping a frontier of
 * completed transactions no later completion dominates. Each transaction invoked gets an
 * edge from every frontier member; when one completes, it replaces the frontier members it
 * had an edge from (each now reaches the rest of time through it).
 */
export function addRealtimeEdges(graph: DependencyGraph, history: readonly Transaction<unknown>[]): void {
  const events: { time: number; index: number; isCall: boolean }[] = [];
  history.forEach((txn, index) => {
    if (txn.status === "fail") return;
    events.push({ time: txn.call, index, isCall: true });
    if (txn.status === "ok") events.push({ time: txn.return, index, isCall: false });
  });
  // Calls before returns at equal times: a transaction invoked as another completes is concurrent with it.
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.index - b.index : a.isCall ? -1 : 1));
  const frontier = new Set<number>();
  const predecessors = new Map<number, number[]>();
  for (const { index, isCall } of events) {
    if (isCall) {
      const before = [...frontier];
      predecessors.set(index, before);
      for (const from of before) {
        const earlier = history[from] as Transaction<unknown>;
        const later = history[index] as Transaction<unknown>;
        graph.add(from, index, "rt", () => `${txnName(from)} completed at ${formatTime(earlier.return)}, before ${txnName(index)} was invoked at ${formatTime(later.call)}`);
      }
      continue;
    }
    for (const from of predecessors.get(index) ?? []) frontier.delete(from);
    frontier.add(index);
  }
}

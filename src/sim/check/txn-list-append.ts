/**
 * Inference for the list-append workload, after Elle (section 4): every key is a list that
 * transactions append unique values to and read whole. A read shows not only a version but
 * every version before it, so the order of a key's versions is read straight off the
 * longest read of it (every other read must be a prefix of that one), and dependencies
 * follow from positions in that order:
 *
 *   ww  Ti appended the element right before one Tj appended
 *   wr  Tj read a list whose last element Ti appended
 *   rw  Ti read a list, and Tj appended the element that comes next in the order
 *
 * Each holds in every serial order that explains the reads: lists only grow, so every
 * state of a key is a prefix of its longest read, and a transaction sees a state between
 * the append of its last element and the append of the next one.
 *
 * Anomalies seen in single observations, reported before any cycle is sought: a read holding
 * a value twice (duplicate-elements) or a value nobody appended (garbage-read), reads of a
 * key that are not prefixes of one order (incompatible-order, which leaves that key out of
 * the graph), a transaction's own appends seen out of the order it made them (also
 * incompatible-order), reads of a failed transaction's append (G1a) or of one that is not
 * its writer's last append to that key (G1b), and reads that disagree with the
 * transaction's own earlier reads and appends (internal).
 *
 * Completeness: when every append of every transaction that did not fail is seen by some
 * read (or, for one that timed out, none of its appends is), a history with none of these
 * anomalies and an acyclic graph is serializable: a topological order of the graph,
 * executed serially, reproduces every read. txn-check.property.test.ts checks this, and
 * soundness, against a brute-force search. Appends nobody read leave no trace in the
 * order, so anomalies that hide behind them go unseen, as in Elle.
 */
import { DependencyGraph } from "./txn-graph.js";
import { AnomalyLog } from "./txn-anomaly.js";
import { indexWrites, showKey, showList, txnName, type ListAppendOp, type Transaction, type WriteIndex } from "./txn-history.js";

/** What inference learned: the graph (without real-time edges) and the anomalies already seen. */
export interface Inference {
  readonly graph: DependencyGraph;
  readonly anomalies: AnomalyLog;
}

interface ListRead {
  readonly txn: number;
  readonly value: readonly number[];
}

/** History must be validated (parseTxnHistory). */
export function inferListAppend(history: readonly Transaction<ListAppendOp>[]): Inference {
  const writes = indexWrites(history);
  const graph = new DependencyGraph(history.length);
  const anomalies = new AnomalyLog();
  const readsByKey = new Map<string, ListRead[]>();
  history.forEach((txn, index) => {
    if (txn.status !== "ok") return;
    for (const op of txn.ops) {
      if (op.f !== "read" || op.value === null) continue;
      let reads = readsByKey.get(op.key);
      if (reads === undefined) readsByKey.set(op.key, (reads = []));
      reads.push({ txn: index, value: op.value });
    }
    checkInternal(history, index, anomalies);
  });
  for (const key of [...readsByKey.keys()].sort()) {
    const reads = readsByKey.get(key) as ListRead[];
    let trusted = true;
    for (const read of reads) trusted = checkRead(history, writes, key, read, anomalies) && trusted;
    if (!trusted) continue;
    const order = versionOrder(key, reads, anomalies);
    if (order === undefined || !checkOwnAppendOrder(writes, key, order, anomalies)) continue;
    addEdges(history, writes, graph, key, order, reads);
  }
  return { graph, anomalies };
}

/**
 * Duplicates, garbage, aborted and intermediate reads in one read. Returns false when the
 * read cannot be placed in a version order (a duplicate), so the key is left out.
 */
function checkRead(history: readonly Transaction<ListAppendOp>[], writes: WriteIndex, key: string, read: ListRead, anomalies: AnomalyLog): boolean {
  const reader = txnName(read.txn);
  const seen = new Set<number>();
  let duplicate = false;
  for (const value of read.value) {
    if (seen.has(value) && !duplicate) {
      duplicate = true;
      anomalies.observed("duplicate-elements", key, [read.txn], `${reader} read ${showKey(key)} = ${showList(read.value)}, which holds ${value} more than once`);
    }
    seen.add(value);
    const site = writes.writer(key, value);
    if (site === undefined) {
      anomalies.observed("garbage-read", key, [read.txn], `${reader} read ${showKey(key)} = ${showList(read.value)}, but no transaction appended ${value} to it`);
    } else if ((history[site.txn] as Transaction<ListAppendOp>).status === "fail") {
      anomalies.observed("G1a", key, [read.txn, site.txn], `${reader} read ${showKey(key)} = ${showList(read.value)}, including ${value}, appended by ${txnName(site.txn)}, which failed`);
    }
  }
  const last = read.value[read.value.length - 1];
  const site = last === undefined ? undefined : writes.writer(key, last);
  if (site !== undefined && site.txn !== read.txn && site.position < site.count - 1 && (history[site.txn] as Transaction<ListAppendOp>).status !== "fail") {
    anomalies.observed("G1b", key, [read.txn, site.txn], `${reader} read ${showKey(key)} = ${showList(read.value)}, ending in ${last as number}, which ${txnName(site.txn)} appended before appending more to ${showKey(key)}`);
  }
  return !duplicate;
}

/**
 * Holds one ok transaction to itself: each read of a key must be what its earlier read
 * of the key plus its appends since make (or, with no earlier read, end with its appends
 * so far), and must not yet hold a value it appends later.
 */
function checkInternal(history: readonly Transaction<ListAppendOp>[], index: number, anomalies: AnomalyLog): void {
  const txn = history[index] as Transaction<ListAppendOp>;
  const expected = new Map<string, { readonly known: boolean; readonly values: number[] }>();
  const appendsLater = new Map<string, Set<number>>();
  for (const op of txn.ops) {
    if (op.f !== "append") continue;
    let values = appendsLater.get(op.key);
    if (values === undefined) appendsLater.set(op.key, (values = new Set()));
    values.add(op.value);
  }
  txn.ops.forEach((op, position) => {
    const where = `${txnName(index)}'s read ${position + 1}`;
    if (op.f === "append") {
      appendsLater.get(op.key)?.delete(op.value);
      let state = expected.get(op.key);
      if (state === undefined) expected.set(op.key, (state = { known: false, values: [] }));
      state.values.push(op.value);
      return;
    }
    const seen = op.value as readonly number[];
    const early = seen.find((value) => appendsLater.get(op.key)?.has(value) === true);
    if (early !== undefined) {
      anomalies.observed("internal", op.key, [index], `${where} saw ${showKey(op.key)} = ${showList(seen)}, holding ${early}, which the transaction appends only later`);
    }
    const state = expected.get(op.key);
    if (state !== undefined) {
      const fits = state.known ? sameList(seen, state.values) : endsWith(seen, state.values);
      if (!fits) {
        const wanted = state.known ? showList(state.values) : `a list ending in its own appends ${showList(state.values)}`;
        anomalies.observed("internal", op.key, [index], `${where} saw ${showKey(op.key)} = ${showList(seen)}, where its earlier reads and appends make ${wanted}`);
      }
    }
    expected.set(op.key, { known: true, values: [...seen] });
  });
}

/** The longest read, when every read of the key is a prefix of it. */
function versionOrder(key: string, reads: readonly ListRead[], anomalies: AnomalyLog): readonly number[] | undefined {
  let longest = reads[0] as ListRead;
  for (const read of reads) if (read.value.length > longest.value.length) longest = read;
  for (const read of reads) {
    if (isPrefix(read.value, longest.value)) continue;
    anomalies.observed(
      "incompatible-order",
      key,
      [read.txn, longest.txn],
      `${txnName(read.txn)} read ${showKey(key)} = ${showList(read.value)} and ${txnName(longest.txn)} read ${showList(longest.value)}: the first is not a prefix of the second, so no one order of ${showKey(key)}'s appends explains both`,
    );
    return undefined;
  }
  return longest.value;
}

/** A transaction appending several values to a key must see them land in the order it appended them. */
function checkOwnAppendOrder(writes: WriteIndex, key: string, order: readonly number[], anomalies: AnomalyLog): boolean {
  const lastSeen = new Map<number, { readonly position: number; readonly value: number }>();
  for (const value of order) {
    const site = writes.writer(key, value);
    if (site === undefined) continue;
    const before = lastSeen.get(site.txn);
    if (before !== undefined && before.position > site.position) {
      anomalies.observed("incompatible-order", key, [site.txn], `${txnName(site.txn)} appended ${value} to ${showKey(key)} before ${before.value}, but reads show ${showList(order)}, with ${before.value} first`);
      return false;
    }
    lastSeen.set(site.txn, { position: site.position, value });
  }
  return true;
}

function addEdges(history: readonly Transaction<ListAppendOp>[], writes: WriteIndex, graph: DependencyGraph, key: string, order: readonly number[], reads: readonly ListRead[]): void {
  const k = showKey(key);
  /** The transaction that appended `value`, unless it failed (its appends are G1a, not edges). */
  const writerOf = (value: number | undefined): number | undefined => {
    const site = value === undefined ? undefined : writes.writer(key, value);
    return site === undefined || (history[site.txn] as Transaction<ListAppendOp>).status === "fail" ? undefined : site.txn;
  };
  for (let i = 0; i + 1 < order.length; i++) {
    const [earlier, later] = [order[i] as number, order[i + 1] as number];
    const [from, to] = [writerOf(earlier), writerOf(later)];
    if (from === undefined || to === undefined) continue;
    graph.add(from, to, "ww", () => `${txnName(to)} appended ${later} to ${k} right after ${txnName(from)} appended ${earlier}`);
  }
  for (const read of reads) {
    const seen = showList(read.value);
    const last = read.value[read.value.length - 1];
    const writer = writerOf(last);
    if (writer !== undefined) graph.add(writer, read.txn, "wr", () => `${txnName(read.txn)} read ${k} = ${seen}, ending in ${txnName(writer)}'s append of ${last as number}`);
    const next = order[read.value.length];
    const overwriter = writerOf(next);
    if (overwriter !== undefined) graph.add(read.txn, overwriter, "rw", () => `${txnName(read.txn)} read ${k} = ${seen}, missing ${txnName(overwriter)}'s append of ${next as number}, the next in ${k}'s order`);
  }
}

function isPrefix(short: readonly number[], long: readonly number[]): boolean {
  return short.length <= long.length && short.every((value, i) => long[i] === value);
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && isPrefix(a, b);
}

function endsWith(list: readonly number[], suffix: readonly number[]): boolean {
  return suffix.length <= list.length && suffix.every((value, i) => list[list.length - suffix.length + i] === value);
}

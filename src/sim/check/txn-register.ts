/**
 * Inference for the read-write register workload: every key holds one value, written
 * blind and read whole, each value written once per key.
 *
 * Registers tell much less than lists, as Elle's paper says (section 4.3): a read shows one
 * version and nothing of the versions before it, so the order of a key's versions is mostly
 * unknown, and with it most ww and rw edges. This checker uses only what is certain:
 *
 *   wr  Tj read a value Ti wrote (values are unique, so the writer is known)
 *   ww  Tj read the version Ti wrote and then wrote the key itself: in a serial order, Tj's
 *       final write is the next version after Ti's (writes follow reads)
 *   rw  Tk read a version whose next version is known that way, and Tj wrote that next one
 *
 * and the initial state: a key never written reads as nil (null), and no workload operation
 * removes a key, so a transaction that read nil precedes every committed writer of the key
 * (rw), and one that read nil then wrote wrote the key's first version (ww to every other
 * writer). Two transactions that read the same version and both wrote the key cannot both
 * write its next version: that is reported as a lost update (and shows as a cycle too).
 *
 * Without a read before a write, blind writes have no known order, so a cycle of blind
 * writes (G0) or a write skew among them goes unseen; lists find those. Anomalies of single
 * observations are as for lists: G1a (read of a failed transaction's write), G1b (read of a
 * write its writer overwrote), garbage-read and internal (a read disagreeing with the
 * transaction's own earlier reads and writes of the key).
 */
import { DependencyGraph } from "./txn-graph.js";
import { AnomalyLog } from "./txn-anomaly.js";
import type { Inference } from "./txn-list-append.js";
import { indexWrites, showKey, txnName, type RegisterOp, type Transaction, type WriteIndex } from "./txn-history.js";

/** An ok transaction's view of one key: its read before it wrote the key, and its last write. */
interface KeyUse {
  readonly txn: number;
  /** The value read before the transaction's first write of the key (null: nil); undefined: no such read. */
  readonly externalRead: number | null | undefined;
  readonly finalWrite: number | undefined;
}

/** History must be validated (parseTxnHistory). */
export function inferRegisters(history: readonly Transaction<RegisterOp>[]): Inference {
  const writes = indexWrites(history);
  const graph = new DependencyGraph(history.length);
  const anomalies = new AnomalyLog();
  const usesByKey = new Map<string, KeyUse[]>();
  history.forEach((txn, index) => {
    if (txn.status !== "ok") return;
    for (const use of keyUses(history, index, anomalies)) {
      let uses = usesByKey.get(use.key);
      if (uses === undefined) usesByKey.set(use.key, (uses = []));
      uses.push(use);
    }
  });
  for (const key of [...usesByKey.keys()].sort()) addKeyEdges(history, writes, graph, key, usesByKey.get(key) as KeyUse[], anomalies);
  return { graph, anomalies };
}

/** One transaction's uses of each key, checking its reads against its own earlier reads and writes. */
function keyUses(history: readonly Transaction<RegisterOp>[], index: number, anomalies: AnomalyLog): (KeyUse & { readonly key: string })[] {
  const txn = history[index] as Transaction<RegisterOp>;
  const known = new Map<string, number | null>();
  const uses = new Map<string, { externalRead: number | null | undefined; finalWrite: number | undefined }>();
  txn.ops.forEach((op, position) => {
    let use = uses.get(op.key);
    if (use === undefined) uses.set(op.key, (use = { externalRead: undefined, finalWrite: undefined }));
    if (op.f === "write") {
      use.finalWrite = op.value;
      known.set(op.key, op.value);
      return;
    }
    const before = known.get(op.key);
    if (before !== undefined && before !== op.value) {
      anomalies.observed("internal", op.key, [index], `${txnName(index)}'s read ${position + 1} saw ${showKey(op.key)} = ${show(op.value)}, where its earlier reads and writes make ${show(before)}`);
    }
    if (use.finalWrite === undefined && use.externalRead === undefined) use.externalRead = op.value;
    known.set(op.key, op.value);
  });
  return [...uses].map(([key, use]) => ({ key, txn: index, ...use }));
}

function addKeyEdges(history: readonly Transaction<RegisterOp>[], writes: WriteIndex, graph: DependencyGraph, key: string, uses: readonly KeyUse[], anomalies: AnomalyLog): void {
  const k = showKey(key);
  const failed = (txn: number): boolean => (history[txn] as Transaction<RegisterOp>).status === "fail";
  /** Transactions whose final write follows each version directly (null: nil), by writes-follow-reads. */
  const successors = new Map<number | null, KeyUse[]>();
  for (const use of uses) {
    if (use.externalRead !== undefined && use.externalRead !== null) checkRead(history, writes, key, use.txn, use.externalRead, graph, anomalies);
    if (use.externalRead === undefined || use.finalWrite === undefined) continue;
    let next = successors.get(use.externalRead);
    if (next === undefined) successors.set(use.externalRead, (next = []));
    next.push(use);
  }
  /** Every transaction that wrote the key and did not fail (a timed-out one may have committed). */
  const writers = [...new Set([...writes.writesTo(key).values()].map((site) => site.txn))].filter((txn) => !failed(txn));
  for (const [version, next] of successors) {
    if (next.length > 1) {
      const names = next.map((use) => `${txnName(use.txn)} wrote ${use.finalWrite as number}`).join(", ");
      anomalies.observed("lost-update", key, next.map((use) => use.txn), `${next.map((use) => txnName(use.txn)).join(" and ")} all read ${k} = ${show(version)} and then wrote it (${names}); only one can be the next version`);
    }
    for (const use of next) {
      const written = use.finalWrite as number;
      if (version === null) {
        for (const other of writers) graph.add(use.txn, other, "ww", () => `${txnName(use.txn)} read ${k} = nil and then wrote ${written}, ${k}'s first version, so ${txnName(other)}'s write of ${k} came later`);
        continue;
      }
      const site = writes.writer(key, version);
      if (site !== undefined && !failed(site.txn)) graph.add(site.txn, use.txn, "ww", () => `${txnName(use.txn)} read ${k} = ${version}, which ${txnName(site.txn)} wrote, and then wrote ${written} over it`);
    }
  }
  for (const use of uses) {
    const version = use.externalRead;
    if (version === undefined) continue;
    if (version === null) {
      for (const other of writers) graph.add(use.txn, other, "rw", () => `${txnName(use.txn)} read ${k} = nil, so it came before every write of ${k}, ${txnName(other)}'s too`);
      continue;
    }
    for (const next of successors.get(version) ?? []) {
      graph.add(use.txn, next.txn, "rw", () => `${txnName(use.txn)} read ${k} = ${version}, which ${txnName(next.txn)} overwrote (it read ${version} and then wrote ${next.finalWrite as number})`);
    }
  }
}

/** A read of another transaction's value: garbage, aborted (G1a), intermediate (G1b), or a wr edge. */
function checkRead(history: readonly Transaction<RegisterOp>[], writes: WriteIndex, key: string, reader: number, value: number, graph: DependencyGraph, anomalies: AnomalyLog): void {
  const k = showKey(key);
  const site = writes.writer(key, value);
  if (site === undefined) {
    anomalies.observed("garbage-read", key, [reader], `${txnName(reader)} read ${k} = ${value}, which no transaction wrote`);
    return;
  }
  if (site.txn === reader) {
    // Read before the transaction's first write of the key, so it saw a write of its own future.
    anomalies.observed("internal", key, [reader], `${txnName(reader)} read ${k} = ${value} before it wrote ${value} there itself`);
    return;
  }
  if ((history[site.txn] as Transaction<RegisterOp>).status === "fail") {
    anomalies.observed("G1a", key, [reader, site.txn], `${txnName(reader)} read ${k} = ${value}, written by ${txnName(site.txn)}, which failed`);
    return;
  }
  if (site.position < site.count - 1) {
    anomalies.observed("G1b", key, [reader, site.txn], `${txnName(reader)} read ${k} = ${value}, which ${txnName(site.txn)} wrote and then overwrote with a later write of its own`);
  }
  graph.add(site.txn, reader, "wr", () => `${txnName(reader)} read ${k} = ${value}, which ${txnName(site.txn)} wrote`);
}

function show(value: number | null): string {
  return value === null ? "nil" : String(value);
}

// `node dist/bench/intents.bench.js`: what one range's transaction state (src/core/kv/intents.ts)
// costs a node per transaction across ranges, as the outcomes it keeps (10 minutes of them)
// pile up. Each step is a prepare and its resolve, each in a backend transaction, as a
// replica applies them; the in-memory backend, so no disk is involved. docs/benchmarks.md
// ("Transactions") cites it: when every phase wrote the whole state, outcomes included,
// a step grew with the outcomes kept; with each outcome an entry of its own, it does not.
//
// A benchmark prints numbers; it asserts nothing.
import { performance } from "node:perf_hooks";
import { MemoryKvBackend } from "../core/kv/backend.js";
import { KvIntents } from "../core/kv/intents.js";

/** Outcomes kept at which a step is timed. */
const KEPT = [1_000, 2_500, 5_000, 10_000];
/** Steps timed at each. */
const TIMED_STEPS = 200;

const backend = new MemoryKvBackend();
const intents = new KvIntents(backend);
let made = 0;

/** `count` transactions prepared and resolved (one outcome kept each); the mean time of one, in ms. */
function steps(count: number): number {
  const startedMs = performance.now();
  for (let i = 0; i < count; i++, made++) {
    // An id shaped like a node's (cross-range-txn.ts): node, time, sequence, random.
    const txn = `2-${(1_760_000_000_000 + made).toString(36)}-${made.toString(36)}-${(made * 2_654_435_761 >>> 0).toString(16)}`;
    const success = [{ op: "put" as const, key: `0-account-${made}`, value: new TextEncoder().encode("1000") }];
    backend.transaction(() => intents.prepare({ op: "txn-prepare", request: { clientId: 0, sequence: 0 }, txn, anchor: 0, compares: [], success, failure: [] }, () => true, 0));
    backend.transaction(() => intents.take(txn, "success", 0));
  }
  return (performance.now() - startedMs) / count;
}

steps(TIMED_STEPS); // the JIT
for (const kept of KEPT) {
  steps(Math.max(0, kept - made - TIMED_STEPS));
  const meanMs = steps(TIMED_STEPS);
  process.stdout.write(`${made.toLocaleString("en")} outcomes kept: ${(meanMs * 1000).toFixed(0)} µs per prepare and resolve\n`);
}

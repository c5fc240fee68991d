// `npm run bench:raft`: Raft engine throughput. Three RaftEngine instances in one process,
// wired by an in-memory zero-delay network (one FIFO queue; every Ready.messages and
// Ready.messagesAfterPersist is delivered, in order) with "instantly durable" persistence
// (nothing is written; the entries handed out for writing are only counted). Node 1 is
// ticked until it leads; then the driver keeps a fixed number of proposals (100-byte
// payloads) outstanding on the leader, refilling as they commit, until 1,000,000 proposals
// commit or 10 s of wall time pass; three runs per case, the median reported. A benchmark
// prints numbers; it asserts nothing.
//
// What each number means:
// - committed entries/s: proposals seen in the leader's Ready.committedEntries, per second of
//   the measured phase (after the election);
// - messages/entry: messages delivered (all nodes, all types) per committed proposal;
// - entries written/entry: entries in Ready.entries (all three nodes) per committed proposal;
// - bytes allocated/entry: JS-heap bytes allocated during the measured phase (engine and
//   this driver together) per committed proposal. Node 20 has no allocation counter, so it
//   is reconstructed exactly from V8's GC statistics: heap used at the end, minus heap used
//   at the start, plus what every GC in between freed (v8.GCProfiler's before/after
//   usedHeapSize). Off-heap memory (ArrayBuffer backing stores) is not counted; the
//   payloads are preallocated, so the driver itself allocates almost nothing.
import { performance } from "node:perf_hooks";
import v8 from "node:v8";
import type { NodeId, Outbound } from "../core/engine/contract.js";
import { DEFAULT_RAFT_CONFIG, RaftEngine, type RaftConfig, type RaftMessage } from "../core/raft/index.js";

const NODES = 3;
const PAYLOAD_BYTES = 100;
const ENTRIES_MAX = 1_000_000;
const WALL_MS_MAX = 10_000;
/** Logical time passes in the measured phase too, as in a real driver (heartbeats, CheckQuorum). */
const TICK_EVERY_MS = 50;
/** Driver rounds (refill, one Ready per node, deliver) — a hard bound besides count and time. */
const ROUNDS_MAX = 20_000_000;
/** Rounds without a new commit before the run is declared stalled. */
const STALL_ROUNDS = 100_000;
const ELECTION_TICKS_MAX = 1_000;
/** Runs per case, each on a fresh cluster; the median by throughput is reported in full. */
const RUNS = 3;

interface Case {
  readonly name: string;
  readonly config: RaftConfig;
  /** Proposals kept outstanding (proposed, not yet committed) on the leader. */
  readonly inFlight: number;
}

interface Counters {
  committed: number;
  proposed: number;
  refused: number;
  messages: number;
  messagesByType: Map<string, number>;
  appendEntries: number;
  entriesWritten: number;
  readies: number;
  rounds: number;
  ticks: number;
}

// A pool of distinct payloads, allocated once so the measured phase allocates none.
const payloads: Uint8Array[] = Array.from({ length: 1024 }, (_, i) => new Uint8Array(PAYLOAD_BYTES).fill(i & 0xff));

class Cluster {
  readonly engines: RaftEngine[] = [];
  /** The in-flight messages: sender and outbound, as parallel arrays (no envelope objects). */
  private fromQueue: NodeId[] = [];
  private outQueue: Outbound<RaftMessage>[] = [];
  private fromSpare: NodeId[] = [];
  private outSpare: Outbound<RaftMessage>[] = [];
  leader: RaftEngine | null = null;
  counters: Counters = newCounters();

  constructor(config: RaftConfig) {
    const peers = Array.from({ length: NODES }, (_, i) => i + 1);
    for (const id of peers) {
      this.engines.push(new RaftEngine({ id, peers, durable: { hardState: null, snapshot: null, entries: [] }, appliedIndex: 0, seed: id }, config));
    }
  }

  private engine(id: NodeId): RaftEngine {
    return this.engines[id - 1] as RaftEngine;
  }

  /** Takes at most one Ready from every node: "persists" it, queues its messages, applies, advances. */
  processReadies(): boolean {
    let any = false;
    for (const engine of this.engines) {
      if (!engine.hasReady()) continue;
      any = true;
      const ready = engine.ready();
      const c = this.counters;
      c.readies++;
      c.entriesWritten += ready.entries.length; // instantly durable: nothing to write
      for (const out of ready.messages) this.enqueue(engine.id, out);
      for (const out of ready.messagesAfterPersist) this.enqueue(engine.id, out);
      if (engine === this.leader) {
        for (const entry of ready.committedEntries) if (entry.data.length > 0) c.committed++;
      }
      engine.advance(ready);
    }
    return any;
  }

  private enqueue(from: NodeId, out: Outbound<RaftMessage>): void {
    this.fromQueue.push(from);
    this.outQueue.push(out);
  }

  /** Delivers every message queued so far (not the ones their delivery produces); returns how many. */
  deliver(): number {
    const froms = this.fromQueue;
    const outs = this.outQueue;
    this.fromQueue = this.fromSpare;
    this.outQueue = this.outSpare;
    const c = this.counters;
    for (let i = 0; i < outs.length; i++) {
      const out = outs[i] as Outbound<RaftMessage>;
      const message = out.message;
      c.messages++;
      c.messagesByType.set(message.type, (c.messagesByType.get(message.type) ?? 0) + 1);
      if (message.type === "append") c.appendEntries += message.entries.length;
      this.engine(out.to).step(froms[i] as NodeId, message);
    }
    const delivered = outs.length;
    froms.length = 0;
    outs.length = 0;
    this.fromSpare = froms;
    this.outSpare = outs;
    return delivered;
  }

  get queued(): number {
    return this.outQueue.length;
  }

  /** Ticks node 1 until it leads, settling the network after every tick. */
  elect(): void {
    const candidate = this.engine(1);
    for (let tick = 0; tick < ELECTION_TICKS_MAX; tick++) {
      candidate.tick();
      for (let round = 0; round < 100; round++) {
        const any = this.processReadies();
        if (!any && this.queued === 0) break;
        this.deliver();
      }
      if (candidate.status().role === "leader") {
        this.leader = candidate;
        return;
      }
    }
    throw new Error(`node 1 did not become leader within ${ELECTION_TICKS_MAX} ticks`);
  }

  tickAll(): void {
    for (const engine of this.engines) engine.tick();
    this.counters.ticks++;
  }
}

function newCounters(): Counters {
  return { committed: 0, proposed: 0, refused: 0, messages: 0, messagesByType: new Map(), appendEntries: 0, entriesWritten: 0, readies: 0, rounds: 0, ticks: 0 };
}

interface Result {
  readonly counters: Counters;
  readonly wallMs: number;
  readonly stopReason: string;
  readonly allocatedBytes: number;
  readonly gcCount: number;
  readonly gcMs: number;
  readonly heapGrowthBytes: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

function run(c: Case, entriesMax: number, wallMsMax: number): Result {
  const cluster = new Cluster(c.config);
  cluster.elect();
  const leader = cluster.leader as RaftEngine;
  // Settle the election's tail (the leader's empty entry) before measuring.
  for (let round = 0; round < 100 && (cluster.processReadies() || cluster.queued > 0); round++) cluster.deliver();
  cluster.counters = newCounters();
  const counters = cluster.counters;

  gc?.();
  const profiler = new v8.GCProfiler();
  const heapStart = v8.getHeapStatistics().used_heap_size;
  profiler.start();
  const start = performance.now();
  let nextTick = start + TICK_EVERY_MS;
  let lastProgressRound = 0;
  let lastCommitted = 0;
  let stopReason = "";
  let payload = 0;
  for (;;) {
    // Keep `inFlight` proposals outstanding.
    const target = Math.min(entriesMax, counters.committed + c.inFlight);
    while (counters.proposed < target) {
      const admission = leader.propose(payloads[payload++ & 1023] as Uint8Array);
      if (!admission.accepted) {
        counters.refused++;
        break;
      }
      counters.proposed++;
    }
    cluster.processReadies();
    cluster.deliver();
    counters.rounds++;

    if (counters.committed !== lastCommitted) {
      lastCommitted = counters.committed;
      lastProgressRound = counters.rounds;
    }
    const now = performance.now();
    if (counters.committed >= entriesMax) {
      stopReason = `${entriesMax.toLocaleString("en-US")} entries committed`;
      break;
    }
    if (now - start >= wallMsMax) {
      stopReason = `${wallMsMax / 1000} s wall-time limit`;
      break;
    }
    if (counters.rounds >= ROUNDS_MAX) {
      stopReason = `${ROUNDS_MAX.toLocaleString("en-US")}-round limit`;
      break;
    }
    if (counters.rounds - lastProgressRound >= STALL_ROUNDS) {
      stopReason = `STALLED: no commit in ${STALL_ROUNDS.toLocaleString("en-US")} rounds (leader ${leader.status().role})`;
      break;
    }
    if (now >= nextTick) {
      nextTick += TICK_EVERY_MS;
      cluster.tickAll();
    }
  }
  const wallMs = performance.now() - start;
  const profile = profiler.stop();
  const heapEnd = v8.getHeapStatistics().used_heap_size;
  let freed = 0;
  let gcMs = 0;
  for (const s of profile.statistics) {
    freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
    gcMs += s.cost / 1000; // microseconds
  }
  return {
    counters,
    wallMs,
    stopReason,
    allocatedBytes: heapEnd - heapStart + freed,
    gcCount: profile.statistics.length,
    gcMs,
    heapGrowthBytes: heapEnd - heapStart,
  };
}

const fmt = (value: number, digits = 0): string => value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

function report(c: Case, results: readonly Result[]): void {
  const rate = (r: Result): number => r.counters.committed / (r.wallMs / 1000);
  const sorted = [...results].sort((a, b) => rate(a) - rate(b));
  const r = sorted[Math.floor(sorted.length / 2)] as Result;
  const k = r.counters;
  const per = (value: number): number => (k.committed > 0 ? value / k.committed : Number.NaN);
  const types = [...k.messagesByType].sort((a, b) => b[1] - a[1]).map(([type, count]) => `${type} ${fmt(count)}`).join(", ");
  console.log(`\n${c.name} (${fmt(c.inFlight)} proposals in flight, entriesPerMessageMax ${c.config.entriesPerMessageMax}, inflightMessagesMax ${c.config.inflightMessagesMax})`);
  console.log(`  stopped after: ${r.stopReason}`);
  const range = `${fmt(rate(sorted[0] as Result))}..${fmt(rate(sorted[sorted.length - 1] as Result))}`;
  console.log(`  committed:            ${fmt(k.committed)} entries in ${fmt(r.wallMs / 1000, 2)} s wall = ${fmt(rate(r))} entries/s (median of ${results.length} runs; range ${range})`);
  console.log(`  messages/entry:       ${fmt(per(k.messages), 3)} (${types})`);
  console.log(`  entries/append:       ${fmt(k.appendEntries / (k.messagesByType.get("append") ?? 1), 1)} on average`);
  console.log(`  entries written/entry: ${fmt(per(k.entriesWritten), 3)} (3 nodes; persistence is a no-op)`);
  console.log(`  readies/entry:        ${fmt(per(k.readies), 4)}; driver rounds ${fmt(k.rounds)}, ticks ${fmt(k.ticks)}, proposals refused ${fmt(k.refused)}`);
  console.log(
    `  bytes allocated/entry: ${fmt(per(r.allocatedBytes))} (JS heap, engine + driver, from GC statistics; ${fmt(r.gcCount)} GCs taking ${fmt(r.gcMs)} ms; ` +
      `heap retained growth ${fmt(per(r.heapGrowthBytes))} B/entry: the log is never compacted)`,
  );
}

const cases: Case[] = [
  { name: "default config", config: DEFAULT_RAFT_CONFIG, inFlight: 10_000 },
  { name: "default config", config: DEFAULT_RAFT_CONFIG, inFlight: 1_000 },
  { name: "small batches", config: { ...DEFAULT_RAFT_CONFIG, entriesPerMessageMax: 64 }, inFlight: 10_000 },
];

console.log(`Raft throughput: ${NODES} in-process engines, zero-delay in-order network, instant durability, ${PAYLOAD_BYTES}-byte payloads;`);
console.log(`each case stops at ${fmt(ENTRIES_MAX)} committed entries or ${WALL_MS_MAX / 1000} s of wall time. Node ${process.version}.`);
if (gc === undefined) console.log("(run with --expose-gc for a clean heap before each case; allocation numbers may include earlier garbage)");
// Warm the JIT on a short run so the first case does not pay for compilation alone.
const benchStart = performance.now();
run({ name: "warm-up", config: DEFAULT_RAFT_CONFIG, inFlight: 1_000 }, 50_000, 2_000);
for (const c of cases) report(c, Array.from({ length: RUNS }, () => run(c, ENTRIES_MAX, WALL_MS_MAX)));
console.log(`\ntotal wall time ${fmt((performance.now() - benchStart) / 1000, 1)} s (warm-up, elections and ${RUNS} runs per case included)`);

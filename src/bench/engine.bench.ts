// `npm run bench:raft` and `npm run bench:paxos` (`node dist/bench/engine.bench.js raft|paxos`): consensus throughput in one
// process. Three replicas — the production `Replica` loop (core/replica) driving the
// protocol's engine — wired by an in-memory zero-delay network (one FIFO queue; every
// message is delivered, in order), with "instantly durable" log storage (a save is only
// counted; a sync completes at once) and a state machine that counts. All are ticked
// until one leads; then the bench keeps a fixed number of proposals (100-byte payloads)
// outstanding on the leader, refilling as they commit, until 1,000,000 proposals commit or
// 10 s of wall time pass; three runs per case, the median reported. A benchmark prints
// numbers; it asserts nothing.
//
// What each number means:
// - committed entries/s: proposals the leader's state machine applied, per second of the
//   measured phase (after the election);
// - messages/entry: messages delivered (all nodes, all types) per committed proposal;
// - entries written/entry: entries saved to the log storage (all three nodes) per committed proposal;
// - bytes allocated/entry: JS-heap bytes allocated during the measured phase (engines,
//   replicas and this bench together) per committed proposal. Node 20 has no allocation
//   counter, so it is reconstructed exactly from V8's GC statistics: heap used at the end,
//   minus heap used at the start, plus what every GC in between freed (v8.GCProfiler's
//   before/after usedHeapSize). Off-heap memory (ArrayBuffer backing stores) is not
//   counted; the payloads are preallocated.
import { performance } from "node:perf_hooks";
import v8 from "node:v8";
import type { EngineFactory, LogEntry, NodeId, Snapshot } from "../core/engine/contract.js";
import { DEFAULT_PAXOS_CONFIG, paxosFactory } from "../core/paxos/index.js";
import { DEFAULT_RAFT_CONFIG, raftFactory } from "../core/raft/index.js";
import type { Clock, LogStorage, LogWrite, SnapshotBuilder, StateMachine } from "../core/replica/contract.js";
import { Replica } from "../core/replica/replica.js";

const NODES = 3;
const PAYLOAD_BYTES = 100;
const ENTRIES_MAX = 1_000_000;
const WALL_MS_MAX = 10_000;
/** Logical time passes in the measured phase too, as in a real node (heartbeats, CheckQuorum). */
const TICK_MS = 50;
/** Bench rounds (refill, run what the replicas scheduled, deliver) — a hard bound besides count and time. */
const ROUNDS_MAX = 20_000_000;
/** Rounds without a new commit before the run is declared stalled. */
const STALL_ROUNDS = 100_000;
const ELECTION_TICKS_MAX = 1_000;
/** Runs per case, each on a fresh cluster; the median by throughput is reported in full. */
const RUNS = 3;

interface Case {
  readonly name: string;
  readonly factory: EngineFactory<unknown, unknown>;
  /** Proposals kept outstanding (proposed, not yet committed) on the leader. */
  readonly inFlight: number;
}

interface Counters {
  committed: number;
  proposed: number;
  refused: number;
  messages: number;
  messagesByType: Map<string, number>;
  entriesWritten: number;
  syncs: number;
  rounds: number;
  ticks: number;
}

// A pool of distinct payloads, allocated once so the measured phase allocates none.
const payloads: Uint8Array[] = Array.from({ length: 1024 }, (_, i) => new Uint8Array(PAYLOAD_BYTES).fill(i & 0xff));

/** Time the bench controls: `soon` queues, and the bench runs the queue between deliveries. */
class BenchClock implements Clock {
  queue: (() => void)[] = [];
  timers: (() => void)[] = [];
  virtualMs = 0;
  nowMs(): number {
    return this.virtualMs;
  }
  soon(action: () => void): void {
    this.queue.push(action);
  }
  every(_intervalMs: number, action: () => void): () => void {
    this.timers.push(action);
    return () => (this.timers = this.timers.filter((timer) => timer !== action));
  }
  /** Runs what is queued now (not what that schedules): one pump per replica at most. */
  runQueued(): void {
    const queued = this.queue;
    this.queue = [];
    for (const action of queued) action();
  }
  tick(): void {
    this.virtualMs += TICK_MS;
    for (const timer of this.timers) timer();
  }
}

/** Durable at once: saves are counted, syncs complete before they return. */
class CountingStorage implements LogStorage<unknown> {
  constructor(private readonly counters: () => Counters) {}
  save(write: LogWrite<unknown>): void {
    this.counters().entriesWritten += write.entries.length;
  }
  sync(done: (error: unknown) => void): void {
    this.counters().syncs++;
    done(null);
  }
  prepareSnapshot(_snapshot: Snapshot, done: (error: unknown) => void): void {
    done(null);
  }
  compact(): void {}
}

/** Counts applied proposals (non-empty entries). */
class CountingStateMachine implements StateMachine<null> {
  appliedIndex = 0;
  applied = 0;
  apply(entries: readonly LogEntry[]): readonly null[] {
    for (const entry of entries) if (entry.data.length > 0 && entry.kind !== "config") this.applied++;
    this.appliedIndex = (entries[entries.length - 1] as LogEntry).index;
    return entries.map(() => null);
  }
  restore(snapshot: Snapshot): void {
    this.appliedIndex = snapshot.index;
  }
  beginSnapshot(): SnapshotBuilder {
    throw new Error("the bench never snapshots");
  }
  proposalKey(): null {
    return null;
  }
}

class Cluster {
  readonly replicas: Replica<unknown, unknown, null>[] = [];
  readonly machines: CountingStateMachine[] = [];
  readonly clock = new BenchClock();
  /** The in-flight messages: sender, receiver and message, as parallel arrays (no envelope objects). */
  private fromQueue: NodeId[] = [];
  private toQueue: NodeId[] = [];
  private messageQueue: unknown[] = [];
  leader: Replica<unknown, unknown, null> | null = null;
  counters: Counters = newCounters();

  constructor(factory: EngineFactory<unknown, unknown>) {
    const peers = Array.from({ length: NODES }, (_, i) => i + 1);
    for (const id of peers) {
      const engine = factory.create({ id, peers, durable: { hardState: null, snapshot: null, entries: [] }, appliedIndex: 0, seed: id });
      const machine = new CountingStateMachine();
      this.machines.push(machine);
      const replica = new Replica<unknown, unknown, null>({
        engine,
        storage: new CountingStorage(() => this.counters),
        stateMachine: machine,
        network: {
          send: (to, message) => {
            this.fromQueue.push(id);
            this.toQueue.push(to);
            this.messageQueue.push(message);
            return true;
          },
        },
        clock: this.clock,
        tickMs: TICK_MS,
        requestTimeoutMs: 60_000,
        snapshotEntries: 0,
        pendingRequestsMax: 1_000_000,
        peerCount: NODES - 1,
        onFatal: (error) => {
          throw error;
        },
      });
      this.replicas.push(replica);
      replica.start();
    }
  }

  /** Delivers every message queued so far (not the ones their delivery produces); returns how many. */
  deliver(): number {
    const froms = this.fromQueue;
    const tos = this.toQueue;
    const messages = this.messageQueue;
    this.fromQueue = [];
    this.toQueue = [];
    this.messageQueue = [];
    const c = this.counters;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i];
      c.messages++;
      const type = (message as { type?: unknown }).type;
      const name = typeof type === "string" ? type : "message";
      c.messagesByType.set(name, (c.messagesByType.get(name) ?? 0) + 1);
      (this.replicas[(tos[i] as NodeId) - 1] as Replica<unknown, unknown, null>).receive(froms[i] as NodeId, message);
    }
    return messages.length;
  }

  get busy(): boolean {
    return this.messageQueue.length > 0 || this.clock.queue.length > 0;
  }

  /** Ticks every node until one leads, settling the network after every tick. */
  elect(): void {
    for (let tick = 0; tick < ELECTION_TICKS_MAX; tick++) {
      this.clock.tick();
      for (let round = 0; round < 100 && this.busy; round++) {
        this.clock.runQueued();
        this.deliver();
      }
      const leader = this.replicas.find((replica) => replica.engine.status().role === "leader");
      if (leader !== undefined) {
        this.leader = leader;
        return;
      }
    }
    throw new Error(`no leader within ${ELECTION_TICKS_MAX} ticks`);
  }

  /** Proposals the leader's state machine applied. */
  committed(): number {
    return (this.machines[this.replicas.indexOf(this.leader as Replica<unknown, unknown, null>)] as CountingStateMachine).applied;
  }
}

function newCounters(): Counters {
  return { committed: 0, proposed: 0, refused: 0, messages: 0, messagesByType: new Map(), entriesWritten: 0, syncs: 0, rounds: 0, ticks: 0 };
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
  const cluster = new Cluster(c.factory);
  cluster.elect();
  const leader = cluster.leader as Replica<unknown, unknown, null>;
  // Settle the election's tail (the leader's empty entry) before measuring.
  for (let round = 0; round < 100 && cluster.busy; round++) {
    cluster.clock.runQueued();
    cluster.deliver();
  }
  cluster.counters = newCounters();
  const counters = cluster.counters;
  const committedBefore = cluster.committed();

  gc?.();
  const profiler = new v8.GCProfiler();
  const heapStart = v8.getHeapStatistics().used_heap_size;
  profiler.start();
  const start = performance.now();
  let nextTick = start + TICK_MS;
  let lastProgressRound = 0;
  let lastCommitted = 0;
  let stopReason = "";
  let payload = 0;
  for (;;) {
    counters.committed = cluster.committed() - committedBefore;
    // Keep `inFlight` proposals outstanding.
    const target = Math.min(entriesMax, counters.committed + c.inFlight);
    while (counters.proposed < target) {
      if (!leader.proposeUnanswered(payloads[payload++ & 1023] as Uint8Array)) {
        counters.refused++;
        break;
      }
      counters.proposed++;
    }
    cluster.clock.runQueued();
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
      stopReason = `STALLED: no commit in ${STALL_ROUNDS.toLocaleString("en-US")} rounds (leader ${leader.engine.status().role})`;
      break;
    }
    if (now >= nextTick) {
      nextTick += TICK_MS;
      cluster.clock.tick();
      counters.ticks++;
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
  console.log(`\n${c.name} (${fmt(c.inFlight)} proposals in flight)`);
  console.log(`  stopped after: ${r.stopReason}`);
  const range = `${fmt(rate(sorted[0] as Result))}..${fmt(rate(sorted[sorted.length - 1] as Result))}`;
  console.log(`  committed:            ${fmt(k.committed)} entries in ${fmt(r.wallMs / 1000, 2)} s wall = ${fmt(rate(r))} entries/s (median of ${results.length} runs; range ${range})`);
  console.log(`  messages/entry:       ${fmt(per(k.messages), 3)} (${types})`);
  console.log(`  entries written/entry: ${fmt(per(k.entriesWritten), 3)} (3 nodes; persistence is a count)`);
  console.log(`  syncs/entry:          ${fmt(per(k.syncs), 4)} (3 nodes); bench rounds ${fmt(k.rounds)}, ticks ${fmt(k.ticks)}, proposals refused ${fmt(k.refused)}`);
  console.log(
    `  bytes allocated/entry: ${fmt(per(r.allocatedBytes))} (JS heap, engines + replicas + bench, from GC statistics; ${fmt(r.gcCount)} GCs taking ${fmt(r.gcMs)} ms; ` +
      `heap retained growth ${fmt(per(r.heapGrowthBytes))} B/entry: the log is never compacted)`,
  );
}

const PROTOCOL_CASES: Readonly<Record<string, readonly Case[]>> = {
  raft: [
    { name: "raft, default config", factory: raftFactory(DEFAULT_RAFT_CONFIG) as EngineFactory<unknown, unknown>, inFlight: 10_000 },
    { name: "raft, default config", factory: raftFactory(DEFAULT_RAFT_CONFIG) as EngineFactory<unknown, unknown>, inFlight: 1_000 },
    { name: "raft, entriesPerMessageMax 64", factory: raftFactory({ ...DEFAULT_RAFT_CONFIG, entriesPerMessageMax: 64 }) as EngineFactory<unknown, unknown>, inFlight: 10_000 },
  ],
  // The same cases for Multi-Paxos; at most α (windowSlots) proposals hold slots at once,
  // the rest wait in the leader's queue, still outstanding for the bench.
  paxos: [
    { name: "paxos, default config", factory: paxosFactory(DEFAULT_PAXOS_CONFIG) as EngineFactory<unknown, unknown>, inFlight: 10_000 },
    { name: "paxos, default config", factory: paxosFactory(DEFAULT_PAXOS_CONFIG) as EngineFactory<unknown, unknown>, inFlight: 1_000 },
    { name: "paxos, entriesPerMessageMax 64", factory: paxosFactory({ ...DEFAULT_PAXOS_CONFIG, entriesPerMessageMax: 64 }) as EngineFactory<unknown, unknown>, inFlight: 10_000 },
  ],
};

const protocol = process.argv[2] ?? "raft";
const cases = PROTOCOL_CASES[protocol];
if (cases === undefined) {
  console.error(`engine.bench: no protocol "${protocol}"; choose one of: ${Object.keys(PROTOCOL_CASES).join(", ")}`);
  process.exit(2);
}
console.log(`Consensus throughput (${protocol}): ${NODES} in-process replicas (the production loop), zero-delay in-order network, instant durability, ${PAYLOAD_BYTES}-byte payloads;`);
console.log(`each case stops at ${fmt(ENTRIES_MAX)} committed entries or ${WALL_MS_MAX / 1000} s of wall time. Node ${process.version}.`);
if (gc === undefined) console.log("(run with --expose-gc for a clean heap before each case; allocation numbers may include earlier garbage)");
// Warm the JIT on a short run so the first case does not pay for compilation alone.
const benchStart = performance.now();
run({ ...(cases[0] as Case), name: "warm-up", inFlight: 1_000 }, 50_000, 2_000);
for (const c of cases) report(c, Array.from({ length: RUNS }, () => run(c, ENTRIES_MAX, WALL_MS_MAX)));
console.log(`\ntotal wall time ${fmt((performance.now() - benchStart) / 1000, 1)} s (warm-up, elections and ${RUNS} runs per case included)`);

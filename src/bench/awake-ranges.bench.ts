// `npm run bench:awake-ranges`: what many AWAKE ranges cost in peer frames and CPU, the case
// heartbeat batches (src/runtime/transport/heartbeat-batch.ts) are for. Idle ranges go quiet
// and send nothing (idle-ranges.bench.ts); a range with a member down never does (its leader
// waits for that member's match), so this starts a 3-node cluster of real processes
// (`synod node --shards R`, loopback), waits until node 1 sees every range led, kills node 3
// with SIGKILL, waits until nodes 1 and 2 each see every range led by one of them, writes
// one key into every range (a range that went quiet before the kill stays quiet until
// something wakes it; after the write it cannot go quiet again), and waits until no range is
// quiet on either. Then, over the window, it reads each survivor's CPU (utime + stime from
// /proc/PID/stat) and, from its /metrics, the frames it sent to and received from the other
// survivor, and the heartbeat batches among them: every range heartbeats every tick (50 ms),
// so each survivor sends about R/2 heartbeats and R/2 responses a tick to the other.
// The load average (os.loadavg) is printed with the figures: the machine is shared.
//
// Bounded: leaders are waited for at most `--settle-timeout` (default 5 min) each time; a
// phase that misses it is reported and the cluster stopped. Linux only (/proc). A benchmark
// prints numbers; it asserts nothing.
//
//   npm run bench:awake-ranges                               # 1,000 ranges, 20 s window
//   npm run bench:awake-ranges -- --ranges 3000 --window 30s
import { cpus, loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { ProcessCluster, request, sleep } from "../runtime/server/process-cluster.test-util.js";
import { parseDurationMs } from "./kv-load.js";
import { cpuSeconds } from "./proc-stats.js";
import { runBench } from "./run-bench.js";

const POLL_MS = 500;
/** After the ranges are led by the survivors, before the window: elections and catch-up settle. */
const SETTLE_MS = 5_000;
const SURVIVORS = [1, 2] as const;

interface RangeView {
  readonly id: number;
  readonly start: string;
  readonly leader: number | null;
  readonly quiet?: boolean;
}

/** Writes one key into each range (through node 1, 16 at a time), so each is awake. */
async function wakeEvery(cluster: ProcessCluster, ranges: readonly RangeView[]): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < ranges.length; i = next++) {
      const range = ranges[i] as RangeView;
      // A range holds its start key; range 0 starts at "", and "!" sorts before every boundary.
      const key = range.start === "" ? "!" : range.start;
      let answer = await request("PUT", `${cluster.node(1).http}/v1/kv/${encodeURIComponent(key)}`, "awake");
      // 503 while a range elects (a woken quiet follower, a leadership moving): try again, a bounded number of times.
      for (let retry = 0; answer.status === 503 && retry < 100; retry++) {
        await sleep(100);
        answer = await request("PUT", `${cluster.node(1).http}/v1/kv/${encodeURIComponent(key)}`, "awake");
      }
      if (answer.status !== 200) throw new Error(`the write to range ${range.id} answered ${answer.status}: ${answer.text.slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

/** The counters of a node's link with `peer`, from its /metrics (0 for a counter it does not have). */
async function linkCounters(cluster: ProcessCluster, id: number, peer: number): Promise<Record<string, number>> {
  const text = (await request("GET", `${cluster.node(id).http}/metrics`)).text;
  const pick = (name: string): number => Number(new RegExp(`^synod_peer_${name}_total\\{peer="${peer}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
  return {
    framesSent: pick("frames_sent"),
    framesReceived: pick("frames_received"),
    batchesSent: pick("heartbeat_batches_sent"),
    heartbeatsBatchedSent: pick("heartbeats_batched_sent"),
    batchesReceived: pick("heartbeat_batches_received"),
  };
}

async function rangesOf(cluster: ProcessCluster, id: number): Promise<RangeView[] | null> {
  const answer = await request("GET", `${cluster.node(id).http}/v1/shards`);
  return answer.status === 200 ? (answer.body["shards"] as RangeView[]) : null;
}

async function waitFor(cluster: ProcessCluster, ids: readonly number[], count: number, done: (ranges: readonly RangeView[]) => boolean, deadlineMs: number): Promise<boolean> {
  while (performance.now() < deadlineMs) {
    const views = await Promise.all(ids.map((id) => rangesOf(cluster, id)));
    if (views.every((ranges) => ranges !== null && ranges.length === count && done(ranges))) return true;
    await sleep(POLL_MS);
  }
  return false;
}

const load = (): string => loadavg().map((value) => value.toFixed(2)).join(" ");

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { ranges: { type: "string", default: "1000" }, window: { type: "string", default: "20s" }, "settle-timeout": { type: "string", default: "5m" } } });
  const count = Number(values.ranges);
  if (!Number.isSafeInteger(count) || count < 2) throw new Error(`--ranges takes an integer of 2 or more; got ${values.ranges}`);
  const windowMs = parseDurationMs(values.window);
  const settleMs = parseDurationMs(values["settle-timeout"]);
  console.log(`awake ranges: 3 nodes, ${count} ranges, node 3 killed so none goes quiet; ${windowMs / 1000} s window; ${cpus().length} cores, node ${process.version}`);
  const cluster = await ProcessCluster.start({ size: 3, flags: ["--shards", String(count)] });
  try {
    if (!(await waitFor(cluster, [1], count, (ranges) => ranges.every((range) => range.leader !== null), performance.now() + settleMs))) throw new Error("not every range had a leader in time");
    await cluster.kill(3);
    const survivorsLead = (ranges: readonly RangeView[]): boolean => ranges.every((range) => range.leader === 1 || range.leader === 2);
    if (!(await waitFor(cluster, SURVIVORS, count, survivorsLead, performance.now() + settleMs))) throw new Error("the survivors did not lead every range in time");
    await wakeEvery(cluster, (await rangesOf(cluster, 1)) ?? []);
    if (!(await waitFor(cluster, SURVIVORS, count, (ranges) => ranges.every((range) => range.quiet !== true), performance.now() + settleMs))) throw new Error("not every range was awake in time");
    await sleep(SETTLE_MS);
    const pids = SURVIVORS.map((id) => cluster.node(id).process?.pid ?? Number.NaN);
    const loadBefore = load();
    const cpuBefore = pids.map(cpuSeconds);
    const before = await Promise.all(SURVIVORS.map((id) => linkCounters(cluster, id, id === 1 ? 2 : 1)));
    const startMs = performance.now();
    await sleep(windowMs);
    const cpuAfter = pids.map(cpuSeconds);
    const after = await Promise.all(SURVIVORS.map((id) => linkCounters(cluster, id, id === 1 ? 2 : 1)));
    const seconds = (performance.now() - startMs) / 1000;
    const awake = (await rangesOf(cluster, 1))?.filter((range) => range.quiet !== true).length ?? 0;
    console.log(`load average (1, 5, 15 min): ${loadBefore} before the window, ${load()} after; ${awake} of ${count} ranges awake on node 1 at its end`);
    console.log("node  CPU (% core)  frames sent/s  frames received/s  batches sent/s  heartbeats per batch");
    SURVIVORS.forEach((id, i) => {
      const rate = (name: string): number => (((after[i] as Record<string, number>)[name] ?? 0) - ((before[i] as Record<string, number>)[name] ?? 0)) / seconds;
      const cpu = (((cpuAfter[i] as number) - (cpuBefore[i] as number)) * 100) / seconds;
      const perBatch = rate("batchesSent") > 0 ? (rate("heartbeatsBatchedSent") / rate("batchesSent")).toFixed(1) : "-";
      console.log(`${String(id).padStart(4)}  ${cpu.toFixed(1).padStart(12)}  ${rate("framesSent").toFixed(0).padStart(13)}  ${rate("framesReceived").toFixed(0).padStart(17)}  ${rate("batchesSent").toFixed(0).padStart(14)}  ${perBatch.padStart(20)}`);
    });
  } finally {
    await cluster.close();
  }
}

await runBench("awake-ranges.bench", main);

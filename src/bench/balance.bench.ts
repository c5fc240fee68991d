// `npm run bench:balance`: picks per second of each load-balancing picker over 3 and 100
// endpoints (weights 1..5 cycling, so the weighted pickers have real weights). Each case runs
// 5,000,000 picks or 2 s of wall time, whichever comes first, after a 200,000-pick warm-up;
// the hash picker is given keys from a preallocated pool of 4,096 strings, and the load-aware
// pickers (least-outstanding, p2c) see onStart/onFinish around every pick with about 16
// requests kept in flight, so their number includes that bookkeeping. The `Balancer` rows run
// `Balancer.pick` (health, ejection, panic and slow-start bookkeeping over the same picker,
// every endpoint healthy, the clock advancing 1 ms per batch) with the same onStart/onFinish
// load, so the difference to the bare picker's row is the balancer's overhead. Prints a
// table; asserts nothing.
import { performance } from "node:perf_hooks";
import { Prng } from "../core/common/prng.js";
import { Balancer, createPicker, STRATEGIES, type Endpoint, type Picker, type Strategy } from "../core/balance/index.js";

const PICKS_MAX = 5_000_000;
const WALL_MS_MAX = 2_000;
const WARMUP_PICKS = 200_000;
/** Picks between clock reads, so reading the clock costs nothing measurable. */
const BATCH = 10_000;
const KEYS = Array.from({ length: 4096 }, (_, index) => `key-${index * 2_654_435_761}`);
const IN_FLIGHT = 16;

function endpoints(count: number): Endpoint[] {
  return Array.from({ length: count }, (_, index) => ({ id: `node-${index}`, weight: 1 + (index % 5) }));
}

function batch(picker: Picker, loadAware: boolean, window: string[], offset: number): number {
  let sink = 0;
  for (let i = 0; i < BATCH; i++) {
    const chosen = picker.pick(KEYS[(offset + i) & 4095]) as Endpoint;
    sink += chosen.weight;
    if (loadAware) {
      const slot = (offset + i) & (IN_FLIGHT - 1);
      picker.onFinish(window[slot] as string);
      picker.onStart(chosen.id);
      window[slot] = chosen.id;
    }
  }
  return sink;
}

function balancerBatch(balancer: Balancer, loadAware: boolean, window: string[], offset: number): number {
  let sink = 0;
  const nowMs = offset / BATCH;
  for (let i = 0; i < BATCH; i++) {
    const chosen = balancer.pick(nowMs, KEYS[(offset + i) & 4095]) as Endpoint;
    sink += chosen.weight;
    if (loadAware) {
      const slot = (offset + i) & (IN_FLIGHT - 1);
      balancer.onFinish(window[slot] as string);
      balancer.onStart(chosen.id);
      window[slot] = chosen.id;
    }
  }
  return sink;
}

/** Picks per second of `run` (one batch of picks from `offset`), after the warm-up. */
function timeBatches(run: (offset: number) => number): number {
  let sink = 0;
  for (let done = 0; done < WARMUP_PICKS; done += BATCH) sink += run(done);
  const startMs = performance.now();
  let picks = 0;
  while (picks < PICKS_MAX && performance.now() - startMs < WALL_MS_MAX) {
    sink += run(WARMUP_PICKS + picks);
    picks += BATCH;
  }
  const seconds = (performance.now() - startMs) / 1000;
  if (sink === -1) console.log("unreachable"); // keeps the work observable
  return picks / seconds;
}

function isLoadAware(strategy: Strategy): boolean {
  return strategy === "least-outstanding" || strategy === "p2c";
}

function measure(strategy: Strategy, count: number): number {
  const picker = createPicker(strategy, endpoints(count), new Prng(1));
  const window = new Array<string>(IN_FLIGHT).fill("none");
  return timeBatches((offset) => batch(picker, isLoadAware(strategy), window, offset));
}

function measureBalancer(strategy: Strategy, count: number): number {
  const balancer = new Balancer(strategy, endpoints(count), new Prng(1));
  const window = new Array<string>(IN_FLIGHT).fill("none");
  return timeBatches((offset) => balancerBatch(balancer, isLoadAware(strategy), window, offset));
}

const rows: string[][] = [];
for (const strategy of STRATEGIES) {
  const cells: string[] = [strategy];
  for (const count of [3, 100]) cells.push(`${(measure(strategy, count) / 1e6).toFixed(1)} M/s`);
  rows.push(cells);
}
for (const strategy of ["round-robin", "p2c"] as const) {
  const cells: string[] = [`Balancer (${strategy})`];
  for (const count of [3, 100]) cells.push(`${(measureBalancer(strategy, count) / 1e6).toFixed(1)} M/s`);
  rows.push(cells);
}
const header = ["picker", "3 endpoints", "100 endpoints"];
const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] as string).length)));
const line = (cells: readonly string[]): string => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] as number) : cell.padStart(widths[column] as number))).join("  ");
console.log(`picks per second (${PICKS_MAX.toLocaleString("en-US")} picks or ${WALL_MS_MAX / 1000} s per case; node ${process.version})`);
console.log(line(header));
for (const row of rows) console.log(line(row));

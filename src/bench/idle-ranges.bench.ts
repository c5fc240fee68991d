// `npm run bench:idle-ranges`: what idle ranges cost (issue 16: 10,000 ranges on 3 nodes,
// idle CPU under 5% of a core per node, under 16 KiB a range, a restart back in service
// within 10 s). For each range count, a fresh 3-node cluster of real processes (`synod node
// --shards R`, loopback, its own data directories) is started and timed until node 1 sees
// every range with a leader, then until every node sees every range quiet (a single range
// never quiesces, so for 1 only the leader is waited for). Then, with nothing asking the
// nodes anything, each node's CPU (utime + stime from /proc/PID/stat) is read over the
// window, and its resident memory (VmRSS) at its end and again after `--memory-wait` more
// idle (default 60 s): V8 gives back the garbage of the start (a heap grown to several times
// what stays live) only once its memory reducer sees the process idle, which takes tens of
// seconds, so the first figure is mostly that garbage and the second what the ranges hold.
// Memory per range is the difference to the 1-range cluster of the same run (read at the
// same moments), divided by the ranges beyond it. Last, node 3 is
// killed with SIGKILL and started again on the same data, and timed from the start until
// its `GET /readyz` answers 200 (a leader known for every range, every range caught up).
//
// Bounded: each phase has a deadline (`--settle-timeout`, default 10 min, for starting and
// going quiet; 2 min for the restart); a phase that misses it is reported and the count's
// cluster is stopped. Linux only (/proc). A benchmark prints numbers; it asserts nothing.
//
//   npm run bench:idle-ranges                                  # 1, 100 and 1,000 ranges, 20 s windows
//   npm run bench:idle-ranges -- --ranges 1,1000,10000 --window 30s
//   npm run bench:idle-ranges -- --ranges 1000 --no-restart --window 10s --memory-wait 0
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { ProcessCluster, request, sleep } from "../runtime/server/process-cluster.test-util.js";
import { parseDurationMs } from "./kv-load.js";
import { cpuSeconds } from "./proc-stats.js";
import { BenchUsageError, runBench } from "./run-bench.js";

const NODES = 3;
/** How often the ranges are looked at while waiting: a look at 10,000 ranges costs the node. */
const POLL_MS = 500;
const RESTART_TIMEOUT_MS = 120_000;
/** After the ranges went quiet, before the window: the last wakes (a clock entry's round) settle. */
const SETTLE_MS = 3_000;

interface Settings {
  readonly ranges: readonly number[];
  readonly windowMs: number;
  readonly settleTimeoutMs: number;
  readonly consensus: string;
  readonly restart: boolean;
  /** After the window, how much longer the nodes stay idle before their memory is read again (0: not read again). */
  readonly memoryWaitMs: number;
}

interface Measured {
  readonly ranges: number;
  /** From the first process's start until node 1 sees every range with a leader. */
  readonly ledMs: number | null;
  /** ... until every node sees every range quiet. */
  readonly quietMs: number | null;
  readonly cpuPercent: readonly number[];
  readonly rssBytes: readonly number[];
  /** Each node's resident memory after `memoryWaitMs` more idle (empty when not read). */
  readonly settledRssBytes: readonly number[];
  /** Ranges quiet on node 1 at the end of the window. */
  readonly quietAtEnd: number | null;
  readonly restartMs: number | null;
  readonly failure: string | null;
}

interface RangeView {
  readonly leader: number | null;
  readonly quiet?: boolean;
}

function settings(): Settings {
  const { values } = parseArgs({
    options: {
      ranges: { type: "string", default: "1,100,1000" },
      window: { type: "string", default: "20s" },
      "settle-timeout": { type: "string", default: "10m" },
      consensus: { type: "string", default: "raft" },
      "no-restart": { type: "boolean", default: false },
      "memory-wait": { type: "string", default: "60s" },
    },
  });
  const ranges = values.ranges.split(",").map((text) => Number(text.trim()));
  for (const count of ranges) if (!Number.isSafeInteger(count) || count < 1) throw new BenchUsageError(`--ranges takes positive integers, comma-separated; got ${values.ranges}`);
  // The 1-range cluster is the baseline memory per range is counted from.
  const counts = [...new Set([1, ...ranges])].sort((a, b) => a - b);
  return { ranges: counts, windowMs: parseDurationMs(values.window), settleTimeoutMs: parseDurationMs(values["settle-timeout"]), consensus: values.consensus, restart: !values["no-restart"], memoryWaitMs: parseDurationMs(values["memory-wait"]) };
}

/** A process's resident memory, in bytes, from /proc/PID/status. */
function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match === null ? Number.NaN : Number(match[1]) * 1024;
}

function pidOf(cluster: ProcessCluster, id: number): number {
  const pid = cluster.node(id).process?.pid;
  if (pid === undefined) throw new Error(`node ${id} is not running:\n${cluster.node(id).output.slice(-2000)}`);
  return pid;
}

async function rangesOf(cluster: ProcessCluster, id: number): Promise<RangeView[] | null> {
  const answer = await request("GET", `${cluster.node(id).http}/v1/shards`);
  return answer.status === 200 ? (answer.body["shards"] as RangeView[]) : null;
}

/** Polls until `done` holds for what node(s) `ids` see, or the deadline; false when it passed. */
async function waitFor(cluster: ProcessCluster, ids: readonly number[], count: number, done: (ranges: readonly RangeView[]) => boolean, deadlineMs: number): Promise<boolean> {
  while (performance.now() < deadlineMs) {
    const views = await Promise.all(ids.map((id) => rangesOf(cluster, id)));
    if (views.every((ranges) => ranges !== null && ranges.length === count && done(ranges))) return true;
    await sleep(POLL_MS);
  }
  return false;
}

async function untilReady(url: string, deadlineMs: number): Promise<boolean> {
  while (performance.now() < deadlineMs) {
    if ((await request("GET", `${url}/readyz`)).status === 200) return true;
    await sleep(100);
  }
  return false;
}

async function measure(count: number, options: Settings): Promise<Measured> {
  const startMs = performance.now();
  const cluster = await ProcessCluster.start({ size: NODES, consensus: options.consensus, flags: count > 1 ? ["--shards", String(count)] : [] });
  const partial = { ranges: count, ledMs: null, quietMs: null, cpuPercent: [], rssBytes: [], settledRssBytes: [], quietAtEnd: null, restartMs: null };
  try {
    const ids = cluster.nodes.map((node) => node.id);
    const deadlineMs = startMs + options.settleTimeoutMs;
    if (!(await waitFor(cluster, [1], count, (ranges) => ranges.every((range) => range.leader !== null), deadlineMs))) return { ...partial, failure: "not every range had a leader in time" };
    const ledMs = performance.now() - startMs;
    let quietMs: number | null = null;
    if (count > 1) {
      if (!(await waitFor(cluster, ids, count, (ranges) => ranges.every((range) => range.quiet === true), deadlineMs))) return { ...partial, ledMs, failure: "not every range went quiet in time" };
      quietMs = performance.now() - startMs;
    }
    await sleep(SETTLE_MS);
    const pids = ids.map((id) => pidOf(cluster, id));
    const before = pids.map(cpuSeconds);
    const windowStartMs = performance.now();
    await sleep(options.windowMs);
    const after = pids.map(cpuSeconds);
    const wallSeconds = (performance.now() - windowStartMs) / 1000;
    const cpuPercent = after.map((seconds, i) => ((seconds - (before[i] as number)) * 100) / wallSeconds);
    const rss = pids.map(rssBytes);
    const endView = count > 1 ? await rangesOf(cluster, 1) : null;
    const quietAtEnd = endView === null ? null : endView.filter((range) => range.quiet === true).length;
    let settledRss: number[] = [];
    if (options.memoryWaitMs > 0) {
      await sleep(options.memoryWaitMs);
      settledRss = pids.map(rssBytes);
    }
    let restartMs: number | null = null;
    if (options.restart) {
      await cluster.kill(NODES);
      const restartedMs = performance.now();
      cluster.startNode(NODES);
      if (await untilReady(cluster.node(NODES).http, restartedMs + RESTART_TIMEOUT_MS)) restartMs = performance.now() - restartedMs;
    }
    return { ranges: count, ledMs, quietMs, cpuPercent, rssBytes: rss, settledRssBytes: settledRss, quietAtEnd, restartMs, failure: options.restart && restartMs === null ? "the restarted node was not ready in time" : null };
  } catch (error) {
    return { ...partial, failure: String(error) };
  } finally {
    await cluster.close();
  }
}

function spread(values: readonly number[], digits: number): string {
  if (values.length === 0) return "-";
  const low = Math.min(...values);
  const high = Math.max(...values);
  return low.toFixed(digits) === high.toFixed(digits) ? low.toFixed(digits) : `${low.toFixed(digits)}-${high.toFixed(digits)}`;
}

const seconds = (ms: number | null): string => (ms === null ? "-" : (ms / 1000).toFixed(1));

function table(rows: readonly Measured[]): string[] {
  const baseline = rows.find((row) => row.ranges === 1);
  const header = ["ranges", "leaders (s)", "quiet (s)", "idle CPU/node (% core)", "RSS/node (MB)", "RSS/range (KiB)", "settled RSS/node (MB)", "settled RSS/range (KiB)", "quiet at end", "restart to ready (s)"];
  const perRange = (row: Measured, pick: (row: Measured) => readonly number[]): string =>
    baseline === undefined || row.ranges === 1 || pick(row).length === 0
      ? "-"
      : spread(
          pick(row).map((bytes, i) => (bytes - (pick(baseline)[i] ?? Number.NaN)) / (row.ranges - 1) / 1024),
          1,
        );
  const cells = rows.map((row) => {
    return [
      row.ranges.toLocaleString("en-US"),
      seconds(row.ledMs),
      seconds(row.quietMs),
      spread(row.cpuPercent, 2),
      spread(row.rssBytes.map((bytes) => bytes / 1e6), 0),
      perRange(row, (measured) => measured.rssBytes),
      spread(row.settledRssBytes.map((bytes) => bytes / 1e6), 0),
      perRange(row, (measured) => measured.settledRssBytes),
      row.quietAtEnd === null ? "-" : row.quietAtEnd.toLocaleString("en-US"),
      seconds(row.restartMs),
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((row) => (row[column] as string).length)));
  const line = (row: readonly string[]): string => row.map((cell, column) => cell.padStart(widths[column] as number)).join("  ");
  return [line(header), ...cells.map(line)];
}

async function main(): Promise<void> {
  const options = settings();
  console.log(`idle ranges: ${NODES} nodes (${options.consensus}), ranges ${options.ranges.join(", ")}, ${options.windowMs / 1000} s windows, memory read again ${options.memoryWaitMs / 1000} s after; ${cpus().length} cores, node ${process.version}`);
  const rows: Measured[] = [];
  for (const count of options.ranges) {
    const row = await measure(count, options);
    rows.push(row);
    console.log(`${count} ranges: ${row.failure ?? "measured"}`);
  }
  for (const text of table(rows)) console.log(text);
}

await runBench("idle-ranges.bench", main);

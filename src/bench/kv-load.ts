// The load generator behind `synod bench` and `npm run bench`: a closed loop of
// `concurrency` requests kept outstanding against a cluster's HTTP API, through undici Pools
// directly, bounded by a duration and an operation count, latencies in a fixed-size
// histogram. Requests are routed by a ClusterRouter, as the SDK routes them: to the leader it
// learns from the nodes' status (and again after a request fails), so a failover costs the
// election and not the rest of the run. A failed request is counted, not retried: a
// benchmark reports what the cluster did, including the longest time without a success.
import { tlsConnectOptions, type ClientTls } from "../client/transport.js";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";
import { assert } from "../core/common/assert.js";
import { InvalidInputError, SynodError } from "../core/common/errors.js";
import { limits } from "../core/common/limits.js";
import { ConnectionError, NoLeaderError } from "../client/errors.js";
import type { Consistency, NodeStatus } from "../client/api.js";
import { Client } from "../client/client.js";
import { ClusterRouter, type RouterEndpoint } from "../client/router.js";
import { RangeTable } from "../core/multi/ranges.js";
import { LatencyHistogram } from "./histogram.js";

export type BenchOp = "put" | "get" | "mixed";
export const BENCH_OPS: readonly BenchOp[] = ["put", "get", "mixed"];
export type BenchTarget = "leader" | "all" | "ranges";
export const BENCH_TARGETS: readonly BenchTarget[] = ["leader", "all", "ranges"];
/** How often `--target ranges` reads who leads each range (`GET /v1/shards`). */
const RANGES_REFRESH_MS = 250;

export interface BenchOptions {
  /** Origins of the cluster's nodes, e.g. `http://127.0.0.1:7001`. */
  readonly endpoints: readonly string[];
  /** For https:// nodes: the CA to trust and a client certificate (as the SDK's `tls`). */
  readonly tls?: ClientTls;
  /** An Authorization header for every request, for a cluster with auth enabled. */
  readonly authorization?: string;
  /** How long requests are started, 1 ms .. 24 h; the ones outstanding then still finish. */
  readonly durationMs: number;
  /** Requests kept outstanding (and connections), 1..4096. */
  readonly concurrency: number;
  /** Bytes per value written, 0 .. 1 MiB. */
  readonly valueBytes: number;
  readonly op: BenchOp;
  /**
   * Key space: puts cycle over `bench/00000000` .. this many keys, gets read them (written
   * first). Unset: puts write distinct keys, gets and mixed use 1000.
   */
  readonly keys?: number;
  /**
   * Keys start with a character that cycles over '0' to 'z' (`0/bench/...`, `1/bench/...`),
   * so they spread over every range of a presplit cluster (`--shards`) instead of one.
   */
  readonly spreadKeys?: boolean;
  /** For `mixed`: the share of gets, 0..1. */
  readonly mixedGetRatio: number;
  readonly consistency: Consistency;
  /** `leader`: every request to the leader (followed when it changes); `all`: round-robin over every healthy endpoint. */
  readonly target: BenchTarget;
  /** A bound besides the duration: requests started at most, 1 .. 10^9. */
  readonly maxOps: number;
  /** How long one request may wait for its answer; default 10,000 ms. */
  readonly requestTimeoutMs?: number;
  /** Called about every 250 ms while requests run. */
  readonly onProgress?: (progress: BenchProgress) => void;
  /** Lines about setup steps (finding the leader, writing the keys to read). */
  readonly log?: (line: string) => void;
}

export interface BenchProgress {
  readonly elapsedMs: number;
  readonly ops: number;
  readonly errors: number;
}

export interface LatencySummaryMs {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export interface OpSummary {
  /** Requests answered with success. */
  readonly ops: number;
  readonly latencyMs: LatencySummaryMs;
  /** Failed requests by error code (the API's `error`, or a client-side code such as `connection_refused`). */
  readonly errors: Readonly<Record<string, number>>;
}

/** The longest time within the run without a successful request (for puts: an acknowledged write), and when it was. */
export interface BenchGap {
  readonly longestMs: number;
  /** Seconds from the run's start. */
  readonly fromS: number;
  readonly toS: number;
}

export interface BenchResult extends OpSummary {
  readonly op: BenchOp;
  /** From the first request to the last answer. */
  readonly seconds: number;
  readonly opsPerSecond: number;
  /** The endpoints requests were sent to, in the order first used. */
  readonly targets: readonly string[];
  /** The leaders the run followed, in order (more than one: it failed over). */
  readonly leaders: readonly string[];
  readonly gap: BenchGap;
  readonly concurrency: number;
  readonly valueBytes: number;
  readonly consistency: Consistency;
  /** For `mixed`: gets and puts apart. */
  readonly byOp?: { readonly get: OpSummary; readonly put: OpSummary };
}

/** A benchmark that could not start: the keys to read could not be written. */
export class BenchSetupError extends SynodError {
  constructor(message: string) {
    super("bench_setup_failed", message);
    this.name = "BenchSetupError";
  }
}

const CONCURRENCY_MAX = 4096;
const DURATION_MS_MAX = 24 * 3600 * 1000;
const MAX_OPS_LIMIT = 1_000_000_000;
const KEYS_MAX = 100_000_000;
const READ_KEYS_DEFAULT = 1000;
const REQUEST_TIMEOUT_MS_DEFAULT = 10_000;
const PROGRESS_INTERVAL_MS = 250;
const LEADER_WAIT_MS = 5_000;
const LEADER_POLL_MS = 250;
/** How often the router asks every node's status during a run (and at once after a failure). */
const HEALTH_CHECK_INTERVAL_MS = 250;
const PRELOAD_ATTEMPTS = 3;
/**
 * A refused connection (or a no_leader answer) comes in microseconds; without a pause,
 * `concurrency` workers would spin on it and starve the event loop (and the cluster sharing
 * the machine) while the router learns the new leader.
 */
const FAILURE_PAUSE_MS = 10;
const PUT_HEADERS = { "content-type": "application/octet-stream" } as const;

/** Runs one benchmark. @throws NoLeaderError or ConnectionError when the leader cannot be found; BenchSetupError. */
export async function runKvBench(options: BenchOptions): Promise<BenchResult> {
  validate(options);
  const log = options.log ?? (() => undefined);
  const leader = options.target === "all" ? null : await findLeader(options.endpoints, LEADER_WAIT_MS, options.tls);
  log(`target: ${leader ?? options.endpoints.join(", ")}`);
  const endpoints = leader === null || options.endpoints.includes(leader) ? options.endpoints : [...options.endpoints, leader];
  const router = new ClusterRouter({
    endpoints: endpoints.map((url) => ({ url })),
    strategy: "round-robin",
    healthCheckIntervalMs: HEALTH_CHECK_INTERVAL_MS,
    balancer: { slowStartWindowMs: 0 },
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    ...(options.authorization === undefined ? {} : { authorization: options.authorization }),
  });
  router.noteLeader(leader);
  router.start();
  const connectionsPerTarget = options.target === "all" ? Math.ceil(options.concurrency / options.endpoints.length) : options.concurrency;
  const load = new Load(options, router, connectionsPerTarget);
  try {
    if (options.target === "ranges") await load.followRanges();
    if (options.op !== "put") {
      const keys = options.keys ?? READ_KEYS_DEFAULT;
      log(`writing ${keys} keys to read`);
      await load.preload(keys);
    }
    return await load.run();
  } finally {
    await router.close();
    await load.close();
  }
}

function validate(options: BenchOptions): void {
  const integerIn = (value: number | undefined, min: number, max: number, name: string): void => {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < min || value > max)) throw new InvalidInputError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  };
  if (options.endpoints.length === 0) throw new InvalidInputError("at least one endpoint is needed");
  integerIn(options.durationMs, 1, DURATION_MS_MAX, "the duration (ms)");
  integerIn(options.concurrency, 1, CONCURRENCY_MAX, "concurrency");
  integerIn(options.valueBytes, 0, limits.valueBytesMax, "the value size");
  integerIn(options.keys, 1, KEYS_MAX, "keys");
  integerIn(options.maxOps, 1, MAX_OPS_LIMIT, "max-ops");
  integerIn(options.requestTimeoutMs, 1, DURATION_MS_MAX, "the request timeout (ms)");
  if (!(options.mixedGetRatio >= 0 && options.mixedGetRatio <= 1)) throw new InvalidInputError(`the mixed get ratio must be from 0 to 1, got ${options.mixedGetRatio}`);
}

/**
 * The leader's HTTP endpoint, as the nodes' `/v1/status` name it: asked of every endpoint,
 * again every 250 ms for up to `waitMs` (default 5 s) while an election runs.
 * @throws ConnectionError when no endpoint could be reached; NoLeaderError when none knew a leader.
 */
export async function findLeader(endpoints: readonly string[], waitMs: number = LEADER_WAIT_MS, tls?: ClientTls): Promise<string> {
  const client = new Client({ endpoints, sessions: false, healthCheckIntervalMs: 0, membersIntervalMs: 0, retry: { attemptsMax: 1 }, timeoutMs: 2_000, connectionsPerEndpoint: 1, ...(tls === undefined ? {} : { tls }) });
  try {
    const deadlineMs = performance.now() + waitMs;
    let failures: unknown[] = [];
    for (;;) {
      const answers = await Promise.allSettled(client.endpoints.map((endpoint) => client.status(endpoint)));
      const statuses = answers.flatMap((answer) => (answer.status === "fulfilled" ? [answer.value] : []));
      const leader = leaderOf(statuses, client.endpoints);
      if (leader !== null) return leader;
      failures = answers.flatMap((answer) => (answer.status === "rejected" ? [answer.reason as unknown] : []));
      if (performance.now() + LEADER_POLL_MS > deadlineMs) break;
      await sleep(LEADER_POLL_MS);
    }
    if (failures.length === client.endpoints.length && failures[0] instanceof ConnectionError) throw failures[0];
    throw new NoLeaderError({ message: `no_leader: no endpoint knows a leader after ${waitMs / 1000} s (an election may be running; retry, or use --target all)`, endpoint: client.endpoints.join(","), retryAfterMs: null });
  } finally {
    await client.close();
  }
}

function leaderOf(statuses: readonly NodeStatus[], endpoints: readonly string[]): string | null {
  const index = statuses.findIndex((status) => status.role === "leader");
  const self = statuses[index];
  if (self !== undefined) return self.leaderHttp ?? endpoints[index] ?? null;
  return statuses.find((status) => status.leaderHttp !== null)?.leaderHttp ?? null;
}

type OpKind = "get" | "put";

/** One run's state: counters and histograms, never a list of samples. */
class Load {
  private readonly value: Buffer;
  private readonly histograms = { get: new LatencyHistogram(), put: new LatencyHistogram() };
  private readonly errors = { get: new Map<string, number>(), put: new Map<string, number>() };
  private readonly successes = { get: 0, put: 0 };
  private readonly requestTimeoutMs: number;
  /** Connections to each endpoint, made on first use (the router may route to a node the endpoints did not name). */
  private readonly pools = new Map<string, Pool>();
  private readonly leaders: string[] = [];
  private started = 0;
  private nextPutKey = 0;
  private nextGetKey = 0;
  /** During `run`: its start, the latest success, and the longest gap between successes so far (performance.now() ms). */
  private runStartMs = 0;
  private lastSuccessMs = 0;
  private gap = { longestMs: 0, fromMs: 0, toMs: 0 };
  /** Since when no leader has been known (performance.now() ms); null while one is. */
  private leaderLostMs: number | null = null;
  /** `--target ranges`: the ranges and the HTTP address of each one's leader, as last read. */
  private ranges: { readonly table: RangeTable; readonly leaders: ReadonlyMap<number, string> } | null = null;
  private rangesTimer: NodeJS.Timeout | null = null;
  private readonly putHeaders: Record<string, string>;
  private readonly getHeaders: Record<string, string>;

  constructor(
    private readonly options: BenchOptions,
    private readonly router: ClusterRouter,
    private readonly connectionsPerTarget: number,
  ) {
    assert(connectionsPerTarget > 0, "a benchmark needs connections");
    this.value = Buffer.alloc(options.valueBytes);
    for (let i = 0; i < this.value.length; i++) this.value[i] = 97 + (i % 26);
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT;
    this.getHeaders = options.authorization === undefined ? {} : { authorization: options.authorization };
    this.putHeaders = { ...PUT_HEADERS, ...this.getHeaders };
  }

  /** Writes keys 0..count-1 with the run's concurrency, unmeasured. @throws BenchSetupError when a key cannot be written. */
  async preload(count: number): Promise<void> {
    let next = 0;
    // The first failure stops every worker; none throws, so none is left running unobserved.
    let failure: BenchSetupError | null = null;
    const worker = async (): Promise<void> => {
      while (next < count && failure === null) {
        const key = next++;
        let code: string | null = "not_sent";
        for (let attempt = 0; attempt < PRELOAD_ATTEMPTS && code !== null; attempt++) code = await this.send("put", key);
        if (code !== null) failure ??= new BenchSetupError(`writing the keys to read failed: ${code} (key ${benchKey(key, this.options.spreadKeys)})`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency, count) }, worker));
    if (failure !== null) throw failure;
  }

  /** `--target ranges`: reads the ranges and their leaders now, then every RANGES_REFRESH_MS. */
  async followRanges(): Promise<void> {
    await this.readRanges();
    this.rangesTimer = setInterval(() => void this.readRanges(), RANGES_REFRESH_MS);
    this.rangesTimer.unref();
  }

  private async readRanges(): Promise<void> {
    for (const url of this.options.endpoints) {
      try {
        const response = await this.pool(url).request({ method: "GET", path: "/v1/shards", headers: this.getHeaders, headersTimeout: this.requestTimeoutMs, bodyTimeout: this.requestTimeoutMs });
        const body = (await response.body.json()) as { shards?: { id: number; start: string; end: string | null; epoch: number; leaderHttp?: string | null }[] };
        if (response.statusCode !== 200 || !Array.isArray(body.shards)) continue;
        const leaders = new Map<number, string>();
        for (const shard of body.shards) if (typeof shard.leaderHttp === "string") leaders.set(shard.id, shard.leaderHttp);
        this.ranges = { table: new RangeTable(body.shards.map(({ id, start, end, epoch }) => ({ id, start, end, epoch }))), leaders };
        return;
      } catch {
        // The next endpoint, or the next refresh.
      }
    }
  }

  async close(): Promise<void> {
    if (this.rangesTimer !== null) clearInterval(this.rangesTimer);
    await Promise.all([...this.pools.values()].map((pool) => pool.destroy()));
  }

  async run(): Promise<BenchResult> {
    const startMs = performance.now();
    this.runStartMs = startMs;
    this.lastSuccessMs = startMs;
    const deadlineMs = startMs + this.options.durationMs;
    const progress = this.options.onProgress;
    const timer = progress === undefined ? null : setInterval(() => progress({ elapsedMs: performance.now() - startMs, ops: this.successes.get + this.successes.put, errors: this.errorCount() }), PROGRESS_INTERVAL_MS);
    try {
      const worker = async (): Promise<void> => {
        while (this.started < this.options.maxOps && performance.now() < deadlineMs) {
          if (!(await this.leaderKnown(deadlineMs))) continue;
          // Other workers may have started requests while this one waited.
          if (this.started >= this.options.maxOps) break;
          this.started++;
          const kind = this.pickOp();
          const key = kind === "get" ? this.getKey() : this.putKey();
          const sentMs = performance.now();
          const code = await this.send(kind, key);
          const doneMs = performance.now();
          if (code === null) {
            this.successes[kind]++;
            this.histograms[kind].record((doneMs - sentMs) * 1000);
            this.noteSuccess(doneMs);
          } else {
            this.errors[kind].set(code, (this.errors[kind].get(code) ?? 0) + 1);
            await sleep(FAILURE_PAUSE_MS);
          }
        }
      };
      await Promise.all(Array.from({ length: this.options.concurrency }, worker));
    } finally {
      if (timer !== null) clearInterval(timer);
    }
    const endMs = performance.now();
    this.noteSuccess(endMs); // the time from the last success to the end is a gap too
    return this.result((endMs - startMs) / 1000);
  }

  /**
   * For `--target leader`: waits (polling the router, which checks every node within a
   * quarter second once a request failed) while no available leader is known, up to `LEADER_WAIT_MS`
   * since the last one was known. Sending meanwhile would go to a follower, which holds a
   * write until its own timeout while the dead leader cannot take it. Resolves false when
   * the run's deadline passed while waiting.
   */
  private async leaderKnown(deadlineMs: number): Promise<boolean> {
    if (this.options.target !== "leader") return true;
    while (!this.leaderAvailable()) {
      const nowMs = performance.now();
      if (nowMs >= deadlineMs) return false;
      this.leaderLostMs ??= nowMs;
      if (nowMs - this.leaderLostMs > LEADER_WAIT_MS) return true;
      this.router.checkSoon();
      await sleep(FAILURE_PAUSE_MS);
    }
    this.leaderLostMs = null;
    return true;
  }

  /** A leader is known and the router would send to it (not a leader that stopped answering, which followers may still name). */
  private leaderAvailable(): boolean {
    const leader = this.router.leader();
    return leader !== null && this.router.pickForWrite()?.id === leader.id;
  }

  private noteSuccess(atMs: number): void {
    const gapMs = atMs - this.lastSuccessMs;
    if (gapMs > this.gap.longestMs) this.gap = { longestMs: gapMs, fromMs: this.lastSuccessMs, toMs: atMs };
    this.lastSuccessMs = atMs;
  }

  private pickOp(): OpKind {
    if (this.options.op === "mixed") return Math.random() < this.options.mixedGetRatio ? "get" : "put";
    return this.options.op;
  }

  /** Puts write distinct keys, or cycle over the key space when one is set (always for mixed, so gets find what puts wrote). */
  private putKey(): number {
    const space = this.options.keys ?? (this.options.op === "mixed" ? READ_KEYS_DEFAULT : KEYS_MAX);
    const key = this.nextPutKey;
    this.nextPutKey = (this.nextPutKey + 1) % space;
    return key;
  }

  private getKey(): number {
    const key = this.nextGetKey;
    this.nextGetKey = (this.nextGetKey + 1) % (this.options.keys ?? READ_KEYS_DEFAULT);
    return key;
  }

  /** The endpoint for the next request: the leader the router knows (its pick while it knows none), or for `all` the next healthy one. */
  private pick(key: number): RouterEndpoint | null {
    if (this.options.target === "all") return this.router.pickForRead("stale");
    if (this.options.target === "ranges" && this.ranges !== null) {
      // The leader of the key's range, as last read; the router's pick while none is known.
      const url = this.ranges.leaders.get(this.ranges.table.forKey(benchKey(key, this.options.spreadKeys)).id);
      if (url !== undefined) return { id: url, url, weight: 1 };
    }
    const leader = this.router.leader();
    if (leader !== null && this.leaders.at(-1) !== leader.url) this.leaders.push(leader.url);
    return this.router.pickForWrite();
  }

  private pool(url: string): Pool {
    let pool = this.pools.get(url);
    if (pool === undefined) {
      pool = new Pool(url, { connections: this.connectionsPerTarget, pipelining: 1, connect: tlsConnectOptions(this.options.tls) });
      this.pools.set(url, pool);
    }
    return pool;
  }

  /** One request; null on success, else the error's code. Failures are reported to the router, which then looks for the leader again. */
  private async send(kind: OpKind, key: number): Promise<string | null> {
    const endpoint = this.pick(key);
    if (endpoint === null) return "no_endpoint";
    const { code, answered } = await this.sendTo(this.pool(endpoint.url), kind, key);
    if (answered && code === "no_leader") {
      // The node is there and a majority with it: an election (or a leadership moving) is
      // under way. Not the node's failure (that would eject it, maybe the next leader): ask
      // every node who leads now.
      this.router.reportSuccess(endpoint.id);
      this.router.noteLeader(null);
      this.router.checkSoon();
    } else if (answered && (code === null || !ROUTE_AROUND_CODES.has(code))) {
      // An answer, even an error (overloaded, a node's timeout): the node is there, and still
      // the one to send to; the benchmark counts what it said.
      this.router.reportSuccess(endpoint.id);
    } else {
      // No answer, or a node that cannot serve (no leader, removed): find the leader again.
      this.router.reportFailure(endpoint.id);
      if (code === "no_leader" || code === "no_quorum") this.router.noteLeader(null);
      this.router.checkSoon();
    }
    return code;
  }

  /** One exchange: `code` null on success, else the error's; `answered` when the node sent an answer (not a socket failure). */
  private async sendTo(pool: Pool, kind: OpKind, key: number): Promise<{ code: string | null; answered: boolean }> {
    const name = encodeURIComponent(benchKey(key, this.options.spreadKeys));
    const path = kind === "put" ? `/v1/kv/${name}` : `/v1/kv/${name}?consistency=${this.options.consistency}`;
    try {
      const response = await pool.request({
        method: kind === "put" ? "PUT" : "GET",
        path,
        ...(kind === "put" ? { body: this.value } : {}),
        headers: kind === "put" ? this.putHeaders : this.getHeaders,
        headersTimeout: this.requestTimeoutMs,
        bodyTimeout: this.requestTimeoutMs,
      });
      if (response.statusCode < 300) {
        // Reading (not keeping) the body frees the connection for the next request.
        await response.body.dump({ limit: 4 * limits.valueBytesMax });
        return { code: null, answered: true };
      }
      return { code: errorCodeOf(await response.body.text(), response.statusCode), answered: true };
    } catch (error) {
      return { code: clientErrorCode(error), answered: false };
    }
  }

  private errorCount(): number {
    let count = 0;
    for (const map of [this.errors.get, this.errors.put]) for (const n of map.values()) count += n;
    return count;
  }

  private result(seconds: number): BenchResult {
    const histogram = new LatencyHistogram();
    histogram.add(this.histograms.get);
    histogram.add(this.histograms.put);
    const errors = mergeCounts(this.errors.get, this.errors.put);
    const ops = this.successes.get + this.successes.put;
    const summary = (kind: OpKind): OpSummary => ({ ops: this.successes[kind], latencyMs: latencySummary(this.histograms[kind]), errors: mergeCounts(this.errors[kind]) });
    const fromStart = (ms: number): number => Math.round(ms - this.runStartMs) / 1000;
    return {
      op: this.options.op,
      ops,
      seconds,
      opsPerSecond: seconds > 0 ? ops / seconds : 0,
      latencyMs: latencySummary(histogram),
      errors,
      targets: [...this.pools.keys()],
      leaders: this.leaders,
      gap: { longestMs: Math.round(this.gap.longestMs), fromS: fromStart(this.gap.fromMs), toS: fromStart(this.gap.toMs) },
      concurrency: this.options.concurrency,
      valueBytes: this.options.valueBytes,
      consistency: this.options.consistency,
      ...(this.options.op === "mixed" ? { byOp: { get: summary("get"), put: summary("put") } } : {}),
    };
  }
}

/** Answers that say the node cannot serve at all: the requests must go elsewhere (to the leader, once it is known). */
const ROUTE_AROUND_CODES = new Set(["no_leader", "no_quorum", "not_member"]);

/** `bench/` and the key's number in 8 digits: short, fixed-width, sorted by number. */
export function benchKey(index: number, spread = false): string {
  const key = `bench/${String(index).padStart(8, "0")}`;
  return spread ? `${String.fromCharCode(0x30 + (index % 75))}/${key}` : key;
}

function errorCodeOf(body: string, status: number): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === "string") return parsed.error;
  } catch {
    // Not the API's JSON: the status is all there is.
  }
  return `http_${status}`;
}

function clientErrorCode(error: unknown): string {
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
  switch (code) {
    case "ECONNREFUSED":
      return "connection_refused";
    case "ECONNRESET":
    case "EPIPE":
    case "UND_ERR_SOCKET":
      return "connection_reset";
    case "UND_ERR_CONNECT_TIMEOUT":
      return "connect_timeout";
    case "UND_ERR_HEADERS_TIMEOUT":
    case "UND_ERR_BODY_TIMEOUT":
      return "client_timeout";
    default:
      return typeof code === "string" ? code.toLowerCase() : "connection_failed";
  }
}

function mergeCounts(...maps: ReadonlyMap<string, number>[]): Record<string, number> {
  const merged: Record<string, number> = {};
  for (const map of maps) for (const [code, count] of map) merged[code] = (merged[code] ?? 0) + count;
  return merged;
}

function latencySummary(histogram: LatencyHistogram): LatencySummaryMs {
  const ms = (micros: number): number => micros / 1000;
  return { p50: ms(histogram.percentile(50)), p90: ms(histogram.percentile(90)), p99: ms(histogram.percentile(99)), max: ms(histogram.max), mean: ms(histogram.mean) };
}

/** `put: 123456 ops in 10.0 s = 12345.6 ops/s | latency ms p50 4.12 p90 6.01 p99 9.87 max 31.2 | errors 0`, and a breakdown of errors by code if any. */
export function formatBenchResult(result: BenchResult): string {
  const lines = [formatLine(result.op, result)];
  if (result.byOp !== undefined) {
    for (const kind of ["get", "put"] as const) {
      const summary = result.byOp[kind];
      lines.push(`  ${formatLine(kind, { ...summary, seconds: result.seconds })}`);
    }
  }
  const codes = Object.entries(result.errors).sort((a, b) => b[1] - a[1]);
  if (codes.length > 0) lines.push(`errors by code: ${codes.map(([code, count]) => `${code} ${count}`).join(", ")}`);
  if (result.leaders.length > 1) lines.push(`failed over: leader ${result.leaders.join(" -> ")}`);
  if (codes.length > 0 || result.leaders.length > 1) {
    const what = result.op === "put" ? "an acknowledged write" : "a successful request";
    lines.push(`longest time without ${what}: ${result.gap.longestMs} ms (from ${result.gap.fromS.toFixed(1)} s to ${result.gap.toS.toFixed(1)} s)`);
  }
  return lines.join("\n");
}

function formatLine(name: string, summary: OpSummary & { readonly seconds: number }): string {
  const errors = Object.values(summary.errors).reduce((sum, n) => sum + n, 0);
  const rate = summary.seconds > 0 ? summary.ops / summary.seconds : 0;
  const latency = summary.latencyMs;
  return `${name}: ${summary.ops} ops in ${summary.seconds.toFixed(1)} s = ${rate.toFixed(1)} ops/s | latency ms p50 ${significant(latency.p50)} p90 ${significant(latency.p90)} p99 ${significant(latency.p99)} max ${significant(latency.max)} | errors ${errors}`;
}

/** Three significant digits, as a latency deserves. */
export function significant(value: number): string {
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/**
 * A duration as `500ms`, `10s`, `2m` or a bare number of seconds, in milliseconds.
 * @throws InvalidInputError for anything else, zero or negative.
 */
export function parseDurationMs(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(text);
  if (match === null) throw new InvalidInputError(`a duration is like 500ms, 10s, 2m or a number of seconds; got "${text}"`);
  const unitMs = match[2] === "ms" ? 1 : match[2] === "m" ? 60_000 : 1000;
  const ms = Math.round(Number(match[1]) * unitMs);
  if (ms < 1) throw new InvalidInputError(`a duration must be at least 1 ms; got "${text}"`);
  return ms;
}

// The load generator behind `synod bench` and `npm run bench`: a closed loop of
// `concurrency` requests kept outstanding against a cluster's HTTP API, through undici Pools
// directly (no failover, no retries: a benchmark reports what the cluster did), bounded by
// a duration and an operation count, latencies in a fixed-size histogram.
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";
import { assert } from "../core/common/assert.js";
import { InvalidInputError, SynodError } from "../core/common/errors.js";
import { limits } from "../core/common/limits.js";
import { ConnectionError, NoLeaderError } from "../client/errors.js";
import type { Consistency, NodeStatus } from "../client/api.js";
import { Client } from "../client/client.js";
import { LatencyHistogram } from "./histogram.js";

export type BenchOp = "put" | "get" | "mixed";
export const BENCH_OPS: readonly BenchOp[] = ["put", "get", "mixed"];
export type BenchTarget = "leader" | "all";
export const BENCH_TARGETS: readonly BenchTarget[] = ["leader", "all"];

export interface BenchOptions {
  /** Origins of the cluster's nodes, e.g. `http://127.0.0.1:7001`. */
  readonly endpoints: readonly string[];
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
  /** For `mixed`: the share of gets, 0..1. */
  readonly mixedGetRatio: number;
  readonly consistency: Consistency;
  /** `leader`: every request to the leader's endpoint; `all`: round-robin over every endpoint. */
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

export interface BenchResult extends OpSummary {
  readonly op: BenchOp;
  /** From the first request to the last answer. */
  readonly seconds: number;
  readonly opsPerSecond: number;
  readonly targets: readonly string[];
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
const PRELOAD_ATTEMPTS = 3;
/**
 * A refused connection fails in microseconds; without a pause, `concurrency` workers would
 * spin on it and starve the event loop (and the cluster sharing the machine).
 */
const CONNECTION_ERROR_PAUSE_MS = 10;
const PUT_HEADERS = { "content-type": "application/octet-stream" } as const;

/** Runs one benchmark. @throws NoLeaderError or ConnectionError when the leader cannot be found; BenchSetupError. */
export async function runKvBench(options: BenchOptions): Promise<BenchResult> {
  validate(options);
  const log = options.log ?? (() => undefined);
  const targets = options.target === "all" ? [...options.endpoints] : [await findLeader(options.endpoints)];
  log(`target: ${targets.join(", ")}`);
  const connectionsPerTarget = Math.ceil(options.concurrency / targets.length);
  const pools = targets.map((target) => new Pool(target, { connections: connectionsPerTarget, pipelining: 1 }));
  try {
    const load = new Load(options, targets, pools);
    if (options.op !== "put") {
      const keys = options.keys ?? READ_KEYS_DEFAULT;
      log(`writing ${keys} keys to read`);
      await load.preload(keys);
    }
    return await load.run();
  } finally {
    await Promise.all(pools.map((pool) => pool.destroy()));
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
export async function findLeader(endpoints: readonly string[], waitMs: number = LEADER_WAIT_MS): Promise<string> {
  const client = new Client({ endpoints, sessions: false, healthCheckIntervalMs: 0, retry: { attemptsMax: 1 }, timeoutMs: 2_000, connectionsPerEndpoint: 1 });
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
  private started = 0;
  private nextPool = 0;
  private nextPutKey = 0;
  private nextGetKey = 0;

  constructor(
    private readonly options: BenchOptions,
    private readonly targets: readonly string[],
    private readonly pools: readonly Pool[],
  ) {
    assert(pools.length > 0, "a benchmark needs a target");
    this.value = Buffer.alloc(options.valueBytes);
    for (let i = 0; i < this.value.length; i++) this.value[i] = 97 + (i % 26);
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT;
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
        if (code !== null) failure ??= new BenchSetupError(`writing the keys to read failed: ${code} (key ${benchKey(key)})`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency, count) }, worker));
    if (failure !== null) throw failure;
  }

  async run(): Promise<BenchResult> {
    const startMs = performance.now();
    const deadlineMs = startMs + this.options.durationMs;
    const progress = this.options.onProgress;
    const timer = progress === undefined ? null : setInterval(() => progress({ elapsedMs: performance.now() - startMs, ops: this.successes.get + this.successes.put, errors: this.errorCount() }), PROGRESS_INTERVAL_MS);
    try {
      const worker = async (): Promise<void> => {
        while (this.started < this.options.maxOps && performance.now() < deadlineMs) {
          this.started++;
          const kind = this.pickOp();
          const key = kind === "get" ? this.getKey() : this.putKey();
          const sentMs = performance.now();
          const code = await this.send(kind, key);
          if (code === null) {
            this.successes[kind]++;
            this.histograms[kind].record((performance.now() - sentMs) * 1000);
          } else {
            this.errors[kind].set(code, (this.errors[kind].get(code) ?? 0) + 1);
            if (CONNECTION_CODES.has(code)) await sleep(CONNECTION_ERROR_PAUSE_MS);
          }
        }
      };
      await Promise.all(Array.from({ length: this.options.concurrency }, worker));
    } finally {
      if (timer !== null) clearInterval(timer);
    }
    return this.result((performance.now() - startMs) / 1000);
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

  /** One request; null on success, else the error's code. */
  private async send(kind: OpKind, key: number): Promise<string | null> {
    const pool = this.pools[this.nextPool] as Pool;
    this.nextPool = (this.nextPool + 1) % this.pools.length;
    const path = kind === "put" ? `/v1/kv/${benchKey(key)}` : `/v1/kv/${benchKey(key)}?consistency=${this.options.consistency}`;
    try {
      const response = await pool.request({
        method: kind === "put" ? "PUT" : "GET",
        path,
        ...(kind === "put" ? { body: this.value, headers: PUT_HEADERS } : {}),
        headersTimeout: this.requestTimeoutMs,
        bodyTimeout: this.requestTimeoutMs,
      });
      if (response.statusCode < 300) {
        // Reading (not keeping) the body frees the connection for the next request.
        await response.body.dump({ limit: 4 * limits.valueBytesMax });
        return null;
      }
      return errorCodeOf(await response.body.text(), response.statusCode);
    } catch (error) {
      return clientErrorCode(error);
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
    return {
      op: this.options.op,
      ops,
      seconds,
      opsPerSecond: seconds > 0 ? ops / seconds : 0,
      latencyMs: latencySummary(histogram),
      errors,
      targets: this.targets,
      concurrency: this.options.concurrency,
      valueBytes: this.options.valueBytes,
      consistency: this.options.consistency,
      ...(this.options.op === "mixed" ? { byOp: { get: summary("get"), put: summary("put") } } : {}),
    };
  }
}

const CONNECTION_CODES = new Set(["connection_refused", "connection_reset", "connect_timeout", "connection_failed"]);

/** `bench/` and the key's number in 8 digits: short, fixed-width, sorted by number. */
export function benchKey(index: number): string {
  return `bench/${String(index).padStart(8, "0")}`;
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

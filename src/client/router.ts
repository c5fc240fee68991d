// The I/O side of load balancing: the pure Balancer (src/core/balance) decides, this drives
// it with a clock, active health checks over HTTP, and what it learns about the leader.
// The client SDK and the proxy both route through one of these.
import { randomInt } from "node:crypto";
import { Agent } from "undici";
import { Prng } from "../core/common/prng.js";
import { InvalidInputError } from "../core/common/errors.js";
import { Balancer, type BalancerOptions, type BalancerStats } from "../core/balance/balancer.js";
import type { Endpoint, Strategy } from "../core/balance/endpoint.js";
import { decodeStatusAnswer, normalizeEndpoint, type Consistency, type NodeStatus } from "./api.js";

export type { Consistency, NodeStatus } from "./api.js";

/** One node as the router routes to it: `id` is its normalized URL (an origin such as `http://127.0.0.1:7001`). */
export interface RouterEndpoint extends Endpoint {
  readonly id: string;
  readonly url: string;
  readonly weight: number;
}

/** An endpoint as configured: an http(s) origin, and a weight (a positive integer, default 1). */
export interface RouterEndpointConfig {
  readonly url: string;
  readonly weight?: number;
}

/** The result of one `GET /v1/status`: `ok` when the node answered 200 with a status (which is then given). */
export interface StatusCheckResult {
  readonly ok: boolean;
  readonly status?: NodeStatus;
}

/**
 * Asks `url`'s `/v1/status`. Must settle (resolve, or reject, which counts as a failed check)
 * soon after `signal` aborts; the router aborts it after `healthCheckTimeoutMs` and on `close`.
 */
export type StatusFetcher = (url: string, signal: AbortSignal) => Promise<StatusCheckResult>;

export interface ClusterRouterOptions {
  /** At least one; URLs must be distinct http(s) origins. */
  readonly endpoints: readonly RouterEndpointConfig[];
  /** The picker for requests that do not go to the leader; default `p2c`. */
  readonly strategy?: Strategy;
  /** Health, ejection, panic and slow-start tuning (docs/balance.md). */
  readonly balancer?: BalancerOptions;
  /** How often each endpoint's status is asked, in ms; default 1,000; 0 turns active checks off (`checkNow` still works). */
  readonly healthCheckIntervalMs?: number;
  /** How long one check may take before it counts as failed; default 500 ms. */
  readonly healthCheckTimeoutMs?: number;
  /** Seeds the balancer's randomness (p2c draws, slow start); default a random seed. */
  readonly seed?: number;
  /** A monotonic clock in ms; default `performance.now`. Tests pass a fake one. */
  readonly now?: () => number;
  /** How a check is made; default an HTTP GET of `/v1/status` over the router's own connections. */
  readonly fetchStatus?: StatusFetcher;
}

export interface RouterStats extends BalancerStats {
  /** The URL of the leader the router believes in, or null when it knows none among its endpoints. */
  readonly leader: string | null;
  /** The highest term a status answer reported (null before the first); orders what checks say about the leader. */
  readonly leaderTerm: number | null;
  /** Active checks completed, and how many of them failed. */
  readonly checks: number;
  readonly checksFailed: number;
}

const HEALTH_CHECK_INTERVAL_MS_DEFAULT = 1_000;
const HEALTH_CHECK_TIMEOUT_MS_DEFAULT = 500;
/** A status answer is small; anything larger is not one. */
const STATUS_BYTES_MAX = 1024 * 1024;
const INTERVAL_MS_MAX = 3_600_000;
/** `checkSoon` starts at most one round per this many ms (or per interval, if shorter). */
const RECHECK_MS_MIN = 100;

/**
 * Routes requests over a cluster's nodes. It owns a `Balancer<RouterEndpoint>` and feeds it:
 *
 * - **Active health checks**: every `healthCheckIntervalMs` (an unref'd timer, so it never
 *   keeps a process alive) it asks each endpoint's `GET /v1/status`, at most one check in
 *   flight per endpoint, and reports the result with `balancer.reportCheck`. `start()`
 *   begins (with a round at once), `close()` stops and aborts the checks in flight.
 * - **Request outcomes**, from the caller: `onStart`/`onFinish` around each request, then
 *   `reportSuccess` or `reportFailure`. A **failure** is what says the endpoint is in trouble:
 *   a refused or reset connection, a timeout (the client's, or the node's 503 `timeout`), a
 *   5xx, including 503 `no_leader` and `not_member`. An answer about the request — 404, 409
 *   `compare_failed`, 400, 410 `session_expired` — is a **success** for health.
 *
 * **Leader awareness.** Writes and linearizable reads are cheapest on the leader (any node
 * forwards them there, at the cost of a hop). The router learns the leader from status
 * answers (`role` leader, or `leaderHttp` matched against its endpoint URLs; an answer from
 * an older term than one already seen is ignored) and from the caller (`noteLeader`, after
 * a not-leader or no-leader answer, or one that names the leader). A failure reported on the
 * leader's endpoint forgets it: the node may have crashed or lost leadership, and the next
 * check or answer names the new one. `pickForWrite` returns the leader while it is available
 * (healthy and not ejected) and not in `avoid`, else the balancer's pick.
 *
 * Not thread-safe (one event loop). Time is `now()`, a monotonic clock.
 */
export class ClusterRouter {
  readonly strategy: Strategy;
  readonly healthCheckIntervalMs: number;
  readonly healthCheckTimeoutMs: number;
  private readonly balancer: Balancer<RouterEndpoint>;
  private readonly now: () => number;
  private readonly fetchStatus: StatusFetcher;
  /** The connections of the default fetcher; null when the caller supplied one. */
  private readonly agent: Agent | null;
  private byUrl = new Map<string, RouterEndpoint>();
  private leaderId: string | null = null;
  private leaderTerm: number | null = null;
  /** Endpoints (ids) with a check in flight. */
  private readonly checking = new Set<string>();
  private readonly closing = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private checks = 0;
  /** When the latest round of checks started (`now()`). */
  private lastRoundMs = Number.NEGATIVE_INFINITY;
  private checksFailed = 0;

  /** @throws InvalidInputError for no endpoints, a URL that is not an http(s) origin, a URL twice, a bad weight or interval. */
  constructor(options: ClusterRouterOptions) {
    this.strategy = options.strategy ?? "p2c";
    this.healthCheckIntervalMs = integerOption(options.healthCheckIntervalMs, HEALTH_CHECK_INTERVAL_MS_DEFAULT, "healthCheckIntervalMs", 0);
    this.healthCheckTimeoutMs = integerOption(options.healthCheckTimeoutMs, HEALTH_CHECK_TIMEOUT_MS_DEFAULT, "healthCheckTimeoutMs", 1);
    this.now = options.now ?? (() => performance.now());
    if (options.fetchStatus === undefined) {
      this.agent = new Agent({ connections: 1, maxResponseSize: STATUS_BYTES_MAX });
      this.fetchStatus = httpStatusFetcher(this.agent, this.healthCheckTimeoutMs);
    } else {
      this.agent = null;
      this.fetchStatus = options.fetchStatus;
    }
    const endpoints = this.adopt(options.endpoints);
    const seed = options.seed ?? randomInt(0, 2 ** 47);
    this.balancer = new Balancer<RouterEndpoint>(this.strategy, endpoints, new Prng(seed), options.balancer ?? {});
  }

  /** Starts the periodic checks (a first round at once). Idempotent; a no-op when the interval is 0 or after `close`. */
  start(): void {
    if (this.closed || this.timer !== null || this.healthCheckIntervalMs === 0) return;
    this.timer = setInterval(() => void this.checkNow(), this.healthCheckIntervalMs);
    this.timer.unref();
    void this.checkNow();
  }

  /**
   * One round of checks now, on every endpoint that has none in flight; resolves when they
   * have all been reported. Never rejects (a failed check is a result).
   */
  async checkNow(): Promise<void> {
    if (this.closed) return;
    this.lastRoundMs = this.now();
    const round = this.balancer.endpoints().filter((endpoint) => !this.checking.has(endpoint.id));
    await Promise.all(round.map((endpoint) => this.checkOne(endpoint)));
  }

  /**
   * A round of checks soon, for a caller that has reason to think the cluster changed (a
   * write failed over, no leader is known): now, unless a round started less than
   * `RECHECK_MS_MIN` ago. A no-op when active checks are off or after `close`.
   */
  checkSoon(): void {
    if (this.closed || this.healthCheckIntervalMs === 0) return;
    const nowMs = this.now();
    if (nowMs - this.lastRoundMs < Math.min(RECHECK_MS_MIN, this.healthCheckIntervalMs)) return;
    void this.checkNow();
  }

  /** Stops the checks and aborts those in flight, closing the default fetcher's connections. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.closing.abort();
    if (this.agent !== null) await this.agent.destroy();
  }

  /**
   * The endpoint for a write: the known leader while it is available and not in `avoid`,
   * else the balancer's pick (any node forwards a write to the leader). Null only when the
   * balancer has nothing to offer (every endpoint out with `panicThresholdPercent` 0).
   */
  pickForWrite(avoid?: ReadonlySet<string>): RouterEndpoint | null {
    const nowMs = this.now();
    const leader = this.leaderId;
    if (leader !== null && (avoid === undefined || !avoid.has(leader)) && this.balancer.isAvailable(leader, nowMs)) {
      const endpoint = this.byUrl.get(leader);
      if (endpoint !== undefined) return endpoint;
    }
    return this.balancer.pick(nowMs, undefined, avoid);
  }

  /**
   * The endpoint for a read: a linearizable one goes where writes go (the leader serves it
   * without asking itself for a read index); `lease` and `stale` reads take the balancer's
   * pick, so they spread over healthy nodes (`key` reaches the hash strategy).
   */
  pickForRead(consistency: Consistency, key?: string, avoid?: ReadonlySet<string>): RouterEndpoint | null {
    if (consistency === "linearizable") return this.pickForWrite(avoid);
    return this.balancer.pick(this.now(), key, avoid);
  }

  /**
   * What an answer said about the leader: its URL (an endpoint URL; one the router does not
   * know means "not one of mine", as null does), or null for not-leader / no-leader answers.
   */
  noteLeader(url: string | null): void {
    this.leaderId = url === null ? null : (this.endpointFor(url)?.id ?? null);
  }

  /** The leader's endpoint, or null when none is known among the endpoints. */
  leader(): RouterEndpoint | null {
    return this.leaderId === null ? null : (this.byUrl.get(this.leaderId) ?? null);
  }

  /** The endpoint whose URL is `url` (normalized first), or undefined. */
  endpointFor(url: string): RouterEndpoint | undefined {
    const direct = this.byUrl.get(url);
    if (direct !== undefined) return direct;
    try {
      return this.byUrl.get(normalizeEndpoint(url));
    } catch {
      return undefined;
    }
  }

  /** The current endpoints, in the order given. */
  endpoints(): readonly RouterEndpoint[] {
    return this.balancer.endpoints();
  }

  /** A request began on endpoint `id` (a current endpoint). */
  onStart(id: string): void {
    this.balancer.onStart(id);
  }

  /** A request on `id` ended, whatever its outcome. */
  onFinish(id: string): void {
    this.balancer.onFinish(id);
  }

  /** An answer came from `id` (including 404, 409, 410: answers about the request). */
  reportSuccess(id: string): void {
    this.balancer.reportSuccess(id, this.now());
  }

  /** `id` failed: a refused/reset connection, a timeout, a 5xx (503 `no_leader`/`not_member` included). Forgets `id` as the leader. */
  reportFailure(id: string): void {
    this.balancer.reportFailure(id, this.now());
    if (this.leaderId === id) this.leaderId = null;
  }

  /** The balancer's statistics, the known leader and check counts (allocates; not for the request path). */
  stats(): RouterStats {
    return { ...this.balancer.stats(this.now()), leader: this.leaderId, leaderTerm: this.leaderTerm, checks: this.checks, checksFailed: this.checksFailed };
  }

  /**
   * Replaces the endpoint list (validated as in the constructor). Endpoints that stay keep
   * their health and counters; new ones slow-start; a removed leader is forgotten.
   */
  update(endpoints: readonly RouterEndpointConfig[]): void {
    const adopted = this.adopt(endpoints);
    this.balancer.update(adopted, this.now());
    if (this.leaderId !== null && !this.byUrl.has(this.leaderId)) this.leaderId = null;
  }

  /** Validates and normalizes a configured list and makes it the URL index. */
  private adopt(configs: readonly RouterEndpointConfig[]): RouterEndpoint[] {
    if (configs.length === 0) throw new InvalidInputError("at least one endpoint is needed");
    const byUrl = new Map<string, RouterEndpoint>();
    for (const config of configs) {
      const url = normalizeEndpoint(config.url);
      if (byUrl.has(url)) throw new InvalidInputError(`endpoint ${url} is given twice`);
      const weight = config.weight ?? 1;
      if (!Number.isSafeInteger(weight) || weight < 1 || weight > 1_000_000) throw new InvalidInputError(`endpoint ${url}: weight must be an integer from 1 to 1000000, got ${weight}`);
      byUrl.set(url, { id: url, url, weight });
    }
    this.byUrl = byUrl;
    return [...byUrl.values()];
  }

  private async checkOne(endpoint: RouterEndpoint): Promise<void> {
    this.checking.add(endpoint.id);
    let result: StatusCheckResult;
    try {
      const signal = AbortSignal.any([this.closing.signal, AbortSignal.timeout(this.healthCheckTimeoutMs)]);
      result = await this.fetchStatus(endpoint.url, signal);
    } catch {
      result = { ok: false };
    } finally {
      this.checking.delete(endpoint.id);
    }
    if (this.closed) return;
    this.checks += 1;
    if (!result.ok) this.checksFailed += 1;
    this.balancer.reportCheck(endpoint.id, result.ok, this.now());
    if (result.ok && result.status !== undefined) this.learnFromStatus(endpoint, result.status);
  }

  /** A node's view of the leader, unless it is from an older term than one already seen. */
  private learnFromStatus(endpoint: RouterEndpoint, status: NodeStatus): void {
    if (!Number.isSafeInteger(status.term)) return;
    if (this.leaderTerm !== null && status.term < this.leaderTerm) return;
    this.leaderTerm = status.term;
    if (status.role === "leader") this.leaderId = this.byUrl.has(endpoint.id) ? endpoint.id : null;
    else if (status.leaderHttp !== null) this.noteLeader(status.leaderHttp);
    else this.leaderId = null;
  }
}

/** The default check: `GET {url}/v1/status` over `agent`, 200 with a readable status passing. */
function httpStatusFetcher(agent: Agent, timeoutMs: number): StatusFetcher {
  return async (url, signal) => {
    const response = await agent.request({ origin: url, path: "/v1/status", method: "GET", signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    const body = new Uint8Array(await response.body.arrayBuffer());
    if (response.statusCode !== 200) return { ok: false };
    const answer = { endpoint: url, status: response.statusCode, headers: response.headers, body };
    try {
      return { ok: true, status: decodeStatusAnswer(answer) };
    } catch {
      return { ok: false };
    }
  };
}

function integerOption(value: number | undefined, fallback: number, name: string, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > INTERVAL_MS_MAX) throw new InvalidInputError(`${name} must be an integer from ${min} to ${INTERVAL_MS_MAX}, got ${value}`);
  return value;
}

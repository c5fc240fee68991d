// The I/O side of load balancing: the pure Balancer (src/core/balance) decides, this drives
// it with a clock, active health checks over HTTP, and what it learns about the leader.
// The client SDK and the proxy both route through one of these.
import { tlsConnectOptions, type ClientTls } from "./transport.js";
import { randomInt } from "node:crypto";
import { Agent } from "undici";
import { Prng } from "../core/common/prng.js";
import { InvalidInputError } from "../core/common/errors.js";
import { Balancer, type BalancerOptions, type BalancerStats } from "../core/balance/balancer.js";
import type { Endpoint, Strategy } from "../core/balance/endpoint.js";
import { decodeMembersAnswer, decodeStatusAnswer, normalizeEndpoint, type Consistency, type MemberInfo, type MembersView, type NodeStatus } from "./api.js";

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

/**
 * Asks `url`'s `GET /v1/members` (linearizable: the configuration the leader has). Resolves
 * with the view, or null when the node gave none (an error answer: no leader, not a member);
 * may reject (a failed exchange). Must settle soon after `signal` aborts.
 */
export type MembersFetcher = (url: string, signal: AbortSignal) => Promise<MembersView | null>;

export interface ClusterRouterOptions {
  /** At least one; URLs must be distinct http(s) origins. */
  readonly endpoints: readonly RouterEndpointConfig[];
  /** For https:// endpoints, the default fetchers' CA and client certificate (as `ClientOptions.tls`). */
  readonly tls?: ClientTls;
  /** The default fetchers' Authorization header (ClientOptions.auth). */
  readonly authorization?: string;
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
  /**
   * Following the membership: once started, every this many ms, and soon after a request
   * fails on an endpoint or the leader's status lists other members than the router routes
   * to, ask `GET /v1/members` and route to the members' HTTP addresses. Default 10,000; 0
   * turns it off (the endpoints stay as given, or as `update` sets them).
   */
  readonly membersIntervalMs?: number;
  /** How the member list is asked; default an HTTP GET of `/v1/members` over the router's own connections. */
  readonly fetchMembers?: MembersFetcher;
}

export interface RouterStats extends BalancerStats {
  /** The URL of the leader the router believes in, or null when it knows none among its endpoints. */
  readonly leader: string | null;
  /** The highest term a status answer reported (null before the first); orders what checks say about the leader. */
  readonly leaderTerm: number | null;
  /** Active checks completed, and how many of them failed. */
  readonly checks: number;
  readonly checksFailed: number;
  /** Member lists asked (`GET /v1/members` rounds), those that got no answer from any node, and the times the endpoint list changed after one. */
  readonly membersRefreshes: number;
  readonly membersRefreshesFailed: number;
  readonly membersChanges: number;
}

const HEALTH_CHECK_INTERVAL_MS_DEFAULT = 1_000;
const HEALTH_CHECK_TIMEOUT_MS_DEFAULT = 500;
/** A status answer is small; anything larger is not one. */
const STATUS_BYTES_MAX = 1024 * 1024;
const INTERVAL_MS_MAX = 3_600_000;
/** `checkSoon` starts at most one round per this many ms (or per interval, if shorter). */
const RECHECK_MS_MIN = 100;
const MEMBERS_INTERVAL_MS_DEFAULT = 10_000;
/** A member list is a linearizable read (a round trip to the leader and a heartbeat): more time than a status check. */
const MEMBERS_TIMEOUT_MS = 2_000;
/** Member lists asked because something changed: at most one per this many ms. */
const MEMBERS_RECHECK_MS_MIN = 1_000;
/** Roles of the members routed to; learners (possibly far behind, or not running yet) are not. */
const ROUTED_ROLES = new Set(["voter", "leaving"]);

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
 * **Following the membership** (`membersIntervalMs`). The endpoints given are seeds: once
 * started, the router asks `GET /v1/members` (of the leader first, then the other
 * endpoints, then the seeds) and routes to the voters it lists. An endpoint whose status
 * named a member's id keeps its URL as given; a new member is reached at the HTTP address
 * it advertises; an endpoint that is no member's (a removed node) is retired. A list with
 * no reachable address changes nothing, so the router never routes to nothing; and when
 * no current endpoint answers, the seeds are asked too.
 *
 * Not thread-safe (one event loop). Time is `now()`, a monotonic clock.
 */
export class ClusterRouter {
  readonly strategy: Strategy;
  readonly healthCheckIntervalMs: number;
  readonly healthCheckTimeoutMs: number;
  readonly membersIntervalMs: number;
  private readonly balancer: Balancer<RouterEndpoint>;
  private readonly now: () => number;
  private readonly fetchStatus: StatusFetcher;
  private readonly fetchMembers: MembersFetcher;
  /** The connections of the default fetchers; null when the caller supplied both. */
  private readonly agent: Agent | null;
  /** The endpoints as configured (normalized): asked for the member list when no current endpoint answers. */
  private seeds: readonly RouterEndpoint[];
  /** The node id each endpoint's status named. */
  private readonly idByUrl = new Map<string, number>();
  private started = false;
  private membersTimer: NodeJS.Timeout | null = null;
  private refreshing: Promise<boolean> | null = null;
  private lastRefreshMs = Number.NEGATIVE_INFINITY;
  private readonly membersCounters = { membersRefreshes: 0, membersRefreshesFailed: 0, membersChanges: 0 };
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
    this.membersIntervalMs = integerOption(options.membersIntervalMs, MEMBERS_INTERVAL_MS_DEFAULT, "membersIntervalMs", 0);
    this.now = options.now ?? (() => performance.now());
    const needsAgent = options.fetchStatus === undefined || (options.fetchMembers === undefined && this.membersIntervalMs > 0);
    this.agent = needsAgent ? new Agent({ connections: 1, maxResponseSize: STATUS_BYTES_MAX, connect: tlsConnectOptions(options.tls) }) : null;
    this.fetchStatus = options.fetchStatus ?? httpStatusFetcher(this.agent as Agent, this.healthCheckTimeoutMs, options.authorization);
    this.fetchMembers = options.fetchMembers ?? (this.agent === null ? async () => null : httpMembersFetcher(this.agent, options.authorization));
    const endpoints = this.adopt(options.endpoints);
    this.seeds = endpoints;
    const seed = options.seed ?? randomInt(0, 2 ** 47);
    this.balancer = new Balancer<RouterEndpoint>(this.strategy, endpoints, new Prng(seed), options.balancer ?? {});
  }

  /**
   * Starts the periodic work: health checks (a first round at once) unless their interval
   * is 0, and following the membership (a first member list after that round) unless
   * `membersIntervalMs` is 0. Idempotent; a no-op after `close`.
   */
  start(): void {
    if (this.closed || this.started) return;
    this.started = true;
    const firstRound = this.healthCheckIntervalMs === 0 ? Promise.resolve() : this.checkNow();
    if (this.healthCheckIntervalMs > 0) {
      this.timer = setInterval(() => void this.checkNow(), this.healthCheckIntervalMs);
      this.timer.unref();
    }
    if (this.membersIntervalMs > 0) {
      this.membersTimer = setInterval(() => void this.refreshMembers(), this.membersIntervalMs);
      this.membersTimer.unref();
      void firstRound.then(() => this.refreshMembers());
    }
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
    if (this.membersTimer !== null) clearInterval(this.membersTimer);
    this.timer = null;
    this.membersTimer = null;
    this.closing.abort();
    if (this.agent !== null) await this.agent.destroy();
  }

  /**
   * The endpoint for a write: the known leader while it is available and not in `avoid`,
   * else the balancer's pick (any node forwards a write to the leader). Null only when the
   * balancer has nothing to offer (every endpoint out with `panicThresholdPercent` 0).
   */
  pickForWrite(avoid?: ReadonlySet<string>, preferred: string | null = null): RouterEndpoint | null {
    const nowMs = this.now();
    // On a sharded cluster, the leader of the key's range (what the client last read of the ranges), when it is one of the endpoints.
    const ranged = preferred === null ? undefined : this.endpointFor(preferred);
    if (ranged !== undefined && (avoid === undefined || !avoid.has(ranged.id)) && this.balancer.isAvailable(ranged.id, nowMs)) return ranged;
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
  pickForRead(consistency: Consistency, key?: string, avoid?: ReadonlySet<string>, preferred: string | null = null): RouterEndpoint | null {
    if (consistency === "linearizable") return this.pickForWrite(avoid, preferred);
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

  /** `id` failed: a refused/reset connection, a timeout, a 5xx (503 `not_member` included; `no_leader` is not the node's failure). Forgets `id` as the leader. */
  reportFailure(id: string): void {
    this.balancer.reportFailure(id, this.now());
    if (this.leaderId === id) this.leaderId = null;
    // The node may have been removed (503 not_member) or replaced: the member list says.
    this.membersSoon();
  }

  /** The balancer's statistics, the known leader and check counts (allocates; not for the request path). */
  stats(): RouterStats {
    return { ...this.balancer.stats(this.now()), leader: this.leaderId, leaderTerm: this.leaderTerm, checks: this.checks, checksFailed: this.checksFailed, ...this.membersCounters };
  }

  /**
   * Replaces the endpoint list (validated as in the constructor). Endpoints that stay keep
   * their health and counters; new ones slow-start; a removed leader is forgotten.
   */
  update(endpoints: readonly RouterEndpointConfig[]): void {
    this.seeds = this.replace(endpoints);
  }

  /**
   * Asks for the member list now (unless a request for it is under way: then its result)
   * and routes to the members it lists (see the class comment). Resolves true when a node
   * answered with a list, false when none did (the endpoints are then unchanged). Never
   * rejects.
   */
  refreshMembers(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    this.refreshing ??= this.askMembers().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  /** A member list soon, when following the membership: now, unless one was asked less than `MEMBERS_RECHECK_MS_MIN` ago. */
  private membersSoon(): void {
    if (!this.started || this.closed || this.membersIntervalMs === 0 || this.refreshing !== null) return;
    if (this.now() - this.lastRefreshMs < MEMBERS_RECHECK_MS_MIN) return;
    void this.refreshMembers();
  }

  /** The leader first, then the other endpoints, then the seeds that are not endpoints: the first list answered is adopted. */
  private async askMembers(): Promise<boolean> {
    this.lastRefreshMs = this.now();
    this.membersCounters.membersRefreshes += 1;
    const current = this.balancer.endpoints().map((endpoint) => endpoint.url);
    const leader = this.leaderId === null ? [] : [this.leaderId];
    const candidates = [...new Set([...leader, ...current, ...this.seeds.map((seed) => seed.url)])];
    for (const url of candidates) {
      if (this.closed) return false;
      let view: MembersView | null = null;
      const limit = deadline(this.closing.signal, MEMBERS_TIMEOUT_MS);
      try {
        view = await this.fetchMembers(url, limit.signal);
      } catch {
        // No answer from this one: ask the next.
      } finally {
        limit.release();
      }
      if (view === null || this.closed) continue;
      this.adoptMembers(view.members);
      return true;
    }
    this.membersCounters.membersRefreshesFailed += 1;
    return false;
  }

  /** Routes to the voters of `members` (see the class comment); a list that names no reachable voter changes nothing. */
  private adoptMembers(members: readonly MemberInfo[]): void {
    const next = this.endpointsFor(members);
    const current = this.balancer.endpoints();
    if (next.length === 0 || (next.length === current.length && next.every((endpoint) => this.byUrl.has(endpoint.url)))) return;
    this.replace(next);
    this.membersCounters.membersChanges += 1;
  }

  /** The endpoints for the routed members: an endpoint known to be the member (by its status's id, or by its URL), else the member's advertised address. */
  private endpointsFor(members: readonly MemberInfo[]): RouterEndpointConfig[] {
    const current = this.balancer.endpoints();
    const weights = new Map([...this.seeds, ...current].map((endpoint) => [endpoint.url, endpoint.weight]));
    const next = new Map<string, RouterEndpointConfig>();
    for (const member of members) {
      if (!ROUTED_ROLES.has(member.role)) continue;
      const advertised = member.http === null ? null : normalizeOrNull(member.http);
      const known = current.find((endpoint) => this.idByUrl.get(endpoint.url) === member.id) ?? current.find((endpoint) => endpoint.url === advertised);
      const url = known?.url ?? advertised;
      if (url === null || next.has(url)) continue;
      next.set(url, { url, weight: weights.get(url) ?? 1 });
    }
    return [...next.values()];
  }

  /** Makes `endpoints` the list (validated); those that stay keep their health, a removed leader is forgotten. */
  private replace(endpoints: readonly RouterEndpointConfig[]): RouterEndpoint[] {
    const adopted = this.adopt(endpoints);
    this.balancer.update(adopted, this.now());
    if (this.leaderId !== null && !this.byUrl.has(this.leaderId)) this.leaderId = null;
    return adopted;
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
    const limit = deadline(this.closing.signal, this.healthCheckTimeoutMs);
    try {
      result = await this.fetchStatus(endpoint.url, limit.signal);
    } catch {
      result = { ok: false };
    } finally {
      limit.release();
      this.checking.delete(endpoint.id);
    }
    if (this.closed) return;
    this.checks += 1;
    if (!result.ok) this.checksFailed += 1;
    // The endpoint may have been replaced while its check ran.
    if (!this.byUrl.has(endpoint.id)) return;
    this.balancer.reportCheck(endpoint.id, result.ok, this.now());
    if (result.ok && result.status !== undefined) this.learnFromStatus(endpoint, result.status);
  }

  /** A node's view of the leader, unless it is from an older term than one already seen. */
  private learnFromStatus(endpoint: RouterEndpoint, status: NodeStatus): void {
    if (!Number.isSafeInteger(status.term)) return;
    if (Number.isSafeInteger(status.id)) this.idByUrl.set(endpoint.id, status.id);
    if (this.leaderTerm !== null && status.term < this.leaderTerm) return;
    this.leaderTerm = status.term;
    if (status.role === "leader") this.leaderId = this.byUrl.has(endpoint.id) ? endpoint.id : null;
    else if (status.leaderHttp !== null) this.noteLeader(status.leaderHttp);
    else this.leaderId = null;
    // The leader lists other members than the router routes to: the member list says which.
    if (status.role === "leader" && status.members.length > 0 && this.differs(status.members)) this.membersSoon();
  }

  /** Whether `members` would route to other endpoints than the current ones. */
  private differs(members: readonly MemberInfo[]): boolean {
    const next = this.endpointsFor(members);
    return next.length > 0 && (next.length !== this.byUrl.size || next.some((endpoint) => !this.byUrl.has(endpoint.url)));
  }
}

/** The default check: `GET {url}/v1/status` over `agent`, 200 with a readable status passing. */
function httpStatusFetcher(agent: Agent, timeoutMs: number, authorization: string | undefined): StatusFetcher {
  return async (url, signal) => {
    const response = await agent.request({ origin: url, path: "/v1/status", method: "GET", signal, headers: authorization === undefined ? {} : { authorization }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
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

/** The default member list: `GET {url}/v1/members` over `agent`; null for an error answer or one that is not a list. */
function httpMembersFetcher(agent: Agent, authorization: string | undefined): MembersFetcher {
  return async (url, signal) => {
    const response = await agent.request({ origin: url, path: "/v1/members", method: "GET", signal, headers: authorization === undefined ? {} : { authorization }, headersTimeout: MEMBERS_TIMEOUT_MS, bodyTimeout: MEMBERS_TIMEOUT_MS });
    const body = new Uint8Array(await response.body.arrayBuffer());
    if (response.statusCode !== 200) return null;
    try {
      return decodeMembersAnswer({ endpoint: url, status: response.statusCode, headers: response.headers, body });
    } catch {
      return null;
    }
  };
}

function normalizeOrNull(url: string): string | null {
  try {
    return normalizeEndpoint(url);
  } catch {
    return null;
  }
}

function integerOption(value: number | undefined, fallback: number, name: string, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > INTERVAL_MS_MAX) throw new InvalidInputError(`${name} must be an integer from ${min} to ${INTERVAL_MS_MAX}, got ${value}`);
  return value;
}

/**
 * A signal that aborts when `parent` does or after `timeoutMs`, and a `release` that stops
 * its timer once the call is over. Not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`:
 * Node 20 holds the timeout signal only weakly there and may collect it before it fires
 * (nodejs/node#57736), so a call that hangs would never time out — and since each endpoint
 * has at most one check in flight, it would never be checked again. (A CI run hung on the
 * router test "a check that hangs fails at healthCheckTimeoutMs" this way.)
 */
function deadline(parent: AbortSignal, timeoutMs: number): { readonly signal: AbortSignal; readonly release: () => void } {
  const controller = new AbortController();
  const follow = (): void => controller.abort(parent.reason);
  if (parent.aborted) follow();
  else parent.addEventListener("abort", follow, { once: true });
  const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError")), timeoutMs);
  return {
    signal: controller.signal,
    release: () => {
      clearTimeout(timer);
      parent.removeEventListener("abort", follow);
    },
  };
}

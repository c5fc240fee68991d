/**
 * `synod proxy`: an HTTP proxy in front of a cluster that serves the same v1 API, so any
 * HTTP client gets load balancing and failover. Each request is routed (route.ts) to the
 * leader or to the balancer's pick, through a `ClusterRouter` (health checks, ejection,
 * slow start, leader awareness), and sent again elsewhere when that cannot apply it twice:
 *
 * - a connection that was refused (nothing was sent), or a 503 `no_leader`, `no_quorum`, `not_member`
 *   or `overloaded` (the node applied nothing): any request, to another endpoint;
 * - a connection that broke or timed out after sending: only a repeatable request (a read,
 *   or a write in a client session); any other write is answered 502 `upstream_unknown`,
 *   as its outcome is not known.
 *
 * When no node can take a request (none is available, or retries are spent on nodes that did
 * not answer), the answer is 503 `upstream_unavailable`.
 *
 * Retries wait a jittered exponential backoff and draw on a retry budget (a share of the
 * requests), so a failing cluster is not hit with a storm of retries. Bodies are read whole
 * before the first attempt (bounded by `bodyBytesMax`), so an attempt can be repeated;
 * answers are streamed through. `GET /v1/proxy/stats` reports each endpoint's requests,
 * failures, in-flight count, weight and health, and the proxy's own counters.
 */
import { tlsConnectOptions, type ClientTls } from "../../client/transport.js";
import { pipeline } from "node:stream/promises";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { Pool } from "undici";
import { Prng } from "../../core/common/prng.js";
import { backoffMs, RetryBudget, type BackoffOptions, type RetryBudgetOptions, type Strategy } from "../../core/balance/index.js";
import { ClusterRouter } from "../../client/router.js";
import { errorCode, neverConnected } from "../../client/transport.js";
import { errorCodeOf, type Consistency } from "../../client/api.js";
import { formatHostPort, type HostPort } from "../server/config.js";
import { bodyLimitOf, routeOf, type Route } from "./route.js";

/** One endpoint as the proxy's router knows it. */
export interface ProxyEndpoint {
  readonly id: string;
  readonly url: string;
  readonly weight: number;
}

/** What the proxy needs of a router (src/client/router.ts's ClusterRouter provides it). */
export interface ProxyRouter {
  pickForWrite(avoid?: ReadonlySet<string>): ProxyEndpoint | null;
  pickForRead(consistency: Consistency, key?: string, avoid?: ReadonlySet<string>): ProxyEndpoint | null;
  onStart(id: string): void;
  onFinish(id: string): void;
  reportSuccess(id: string): void;
  reportFailure(id: string): void;
  /** Forgets (null) or names the leader, from an answer. */
  noteLeader?(url: string | null): void;
  stats(): object;
  close(): void | Promise<void>;
}

export interface ProxyRouterOptions {
  readonly endpoints: readonly { readonly url: string; readonly weight: number }[];
  readonly strategy: Strategy;
  readonly healthCheckIntervalMs: number;
  readonly ejectionMsBase: number;
  readonly slowStartWindowMs: number;
  /** For https:// nodes: the CA to trust and a client certificate (as the SDK's `tls`). */
  readonly tls?: ClientTls;
}

/** The proxy's router: a `ClusterRouter` with the proxy's tuning, its health checks started. */
export function createProxyRouter(options: ProxyRouterOptions): ClusterRouter {
  const router = new ClusterRouter({
    endpoints: options.endpoints,
    strategy: options.strategy,
    healthCheckIntervalMs: options.healthCheckIntervalMs,
    balancer: { ejectionMsBase: options.ejectionMsBase, ejectionMsMax: Math.max(options.ejectionMsBase, 300_000), slowStartWindowMs: options.slowStartWindowMs },
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  });
  router.start();
  return router;
}

export interface ProxyOptions {
  readonly listen: HostPort;
  readonly endpoints: readonly string[];
  readonly router: ProxyRouter;
  /** One attempt's limit, connecting and the answer's headers included; default 10,000 ms. */
  readonly attemptTimeoutMs?: number;
  /** Attempts per request, the first included; default 4. */
  readonly attemptsMax?: number;
  /** The largest request body; default 4 MiB + 64 KiB (a value of 1 MiB, a transaction). */
  readonly bodyBytesMax?: number;
  readonly backoff?: BackoffOptions;
  readonly budget?: Partial<RetryBudgetOptions>;
  readonly connectionsPerEndpoint?: number;
  readonly seed?: number;
  readonly log: Logger;
  /** For https:// nodes: the CA to trust and a client certificate (as the SDK's `tls`). */
  readonly tls?: ClientTls;
}

/** The proxy's own counters, in `GET /v1/proxy/stats`. */
interface ProxyCounters {
  requests: number;
  retries: number;
  /** Requests answered with an error the proxy made (no endpoint, outcome unknown, retries spent). */
  failed: number;
}

/**
 * Headers not passed on. `expect` among them: the proxy's own server already answered the
 * client's `Expect: 100-continue` (curl sends it with bodies over 1 MiB), and undici refuses
 * to send it, which would fail the request before it left.
 */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host", "expect"]);
/**
 * The proxy's 503 when no node could take a request: none was available to try, or each one
 * tried failed to answer and retrying is spent. One code for both, since a client does the
 * same either way (wait, retry); named, like `upstream_unknown` and `x-synod-upstream`, for
 * the proxy's upstream nodes (`no_endpoint` is the SDK's own error for its endpoint list,
 * which behind a proxy is the proxy itself).
 */
const UPSTREAM_UNAVAILABLE = "upstream_unavailable";
/** Node answers that mean "nothing was applied here, ask another". */
const NOT_APPLIED = new Set(["no_leader", "no_quorum", "not_member", "overloaded"]);
const ERROR_BODY_BYTES_MAX = 64 * 1024;
/** The most of a refused request's body read (and dropped) so the client gets the answer; past it the connection is cut. */
const DISCARD_BYTES_MAX = 64 * 1024 * 1024;

export class ProxyServer {
  private readonly pools = new Map<string, Pool>();
  private readonly counters: ProxyCounters = { requests: 0, retries: 0, failed: 0 };
  private readonly budget: RetryBudget;
  private readonly prng: Prng;
  private readonly attemptTimeoutMs: number;
  private readonly attemptsMax: number;
  private readonly bodyBytesMax: number;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly options: ProxyOptions,
    private readonly server: Server,
  ) {
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 10_000;
    this.attemptsMax = options.attemptsMax ?? 4;
    this.bodyBytesMax = options.bodyBytesMax ?? 4 * 1024 * 1024 + 64 * 1024;
    this.budget = new RetryBudget(performance.now(), options.budget);
    this.prng = new Prng(options.seed ?? Math.floor(Math.random() * 2 ** 32));
    for (const url of options.endpoints) this.pool(url);
  }

  /** The connections to `url`, made on first use: the router follows the membership, so it may pick a node that was not among the endpoints given. */
  private pool(url: string): Pool {
    let pool = this.pools.get(url);
    if (pool === undefined) {
      pool = new Pool(url, { connections: this.options.connectionsPerEndpoint ?? 128, connect: { timeout: Math.min(this.attemptTimeoutMs, 3000), ...tlsConnectOptions(this.options.tls) } });
      this.pools.set(url, pool);
    }
    return pool;
  }

  /** Listens on `options.listen` (port 0: an ephemeral port, see `url`). */
  static async start(options: ProxyOptions): Promise<ProxyServer> {
    const server = createServer();
    const proxy = new ProxyServer(options, server);
    server.on("request", (request: IncomingMessage, response: ServerResponse) => {
      proxy.handle(request, response).catch((error: unknown) => {
        options.log.error({ err: error }, "proxying a request failed unexpectedly");
        if (!response.headersSent) sendError(response, 500, "internal", "internal error in the proxy; see its log");
        else response.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.listen.port, options.listen.host, () => resolve());
    });
    server.on("error", (error) => options.log.error({ err: error }, "proxy server error"));
    return proxy;
  }

  get url(): string {
    const address = this.server.address();
    const port = typeof address === "object" && address !== null ? address.port : this.options.listen.port;
    return `http://${formatHostPort({ host: this.options.listen.host, port })}`;
  }

  stats(): object {
    return { proxy: { ...this.counters, retryTokens: this.budget.available(performance.now()) }, ...this.options.router.stats() };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
      await Promise.all([...this.pools.values()].map((pool) => pool.close()));
      await this.options.router.close();
    })();
    return this.closing;
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = request.url ?? "/";
    const method = request.method ?? "GET";
    if (url === "/v1/proxy/stats" || url.startsWith("/v1/proxy/stats?")) {
      if (method !== "GET") return sendError(response, 405, "method_not_allowed", "this route takes GET");
      return sendJson(response, 200, this.stats());
    }
    this.counters.requests++;
    let body: Buffer | null = null;
    if (method !== "GET" && method !== "HEAD") {
      // A body over the node's limit is the client's to fix: answered here as the node
      // would, never sent, so no node's health or the leader the router knows is touched.
      const limit = bodyLimitOf(method, url) ?? { bytesMax: this.bodyBytesMax, what: "the request body" };
      const declared = Number(request.headers["content-length"] ?? "0");
      if (declared > limit.bytesMax) {
        discardBody(request);
        this.counters.failed++;
        return sendError(response, 413, "too_large", `${limit.what} of ${declared} bytes is over the limit of ${limit.bytesMax}`);
      }
      let read: Buffer | "too large";
      try {
        read = await readBody(request, limit.bytesMax);
      } catch {
        return; // the client went away while sending: no one to answer
      }
      if (read === "too large") {
        this.counters.failed++;
        return sendError(response, 413, "too_large", `${limit.what} is over the limit of ${limit.bytesMax} bytes`);
      }
      body = read;
    }
    const route = routeOf(method, url, request.headers["x-synod-session"] !== undefined);
    await this.forward(request, response, method, url, body, route);
  }

  /** Attempts the request on endpoints the router picks, until one answers or retrying must stop. */
  private async forward(request: IncomingMessage, response: ServerResponse, method: string, url: string, body: Buffer | null, route: Route): Promise<void> {
    const router = this.options.router;
    const headers = endToEnd(request.headers);
    // undici sets the length of the body it sends.
    delete headers["content-length"];
    const avoid = new Set<string>(); // small, and filled only after a failure
    this.budget.recordRequest(performance.now());
    // A client that leaves cancels the attempt in flight (its headers may be slow to come).
    const gone = new AbortController();
    response.once("close", () => {
      if (!response.writableFinished) gone.abort();
    });
    let brokenBefore = false;
    for (let attempt = 0; ; attempt++) {
      if (gone.signal.aborted) return;
      const endpoint = route.target === "leader" ? router.pickForWrite(avoid) : router.pickForRead(route.consistency ?? "stale", route.key ?? undefined, avoid);
      if (endpoint === null) {
        this.counters.failed++;
        return sendError(response, 503, UPSTREAM_UNAVAILABLE, "no node of the cluster is available (every one failed its health checks or was ejected); retry shortly", { "retry-after": "1" });
      }
      const pool = this.pool(endpoint.url);
      router.onStart(endpoint.id);
      let outcome: Outcome;
      try {
        outcome = await this.attempt(pool, endpoint, method, url, headers, body, response, gone.signal, brokenBefore);
      } finally {
        router.onFinish(endpoint.id);
      }
      if (outcome.kind === "answered") {
        router.reportSuccess(endpoint.id);
        return;
      }
      if (outcome.kind === "expired-after-broken") {
        router.reportSuccess(endpoint.id);
        this.counters.failed++;
        return sendError(response, 502, "upstream_unknown", `an earlier attempt's connection broke (its write may have been applied), and now the session has expired; the write's outcome is unknown`);
      }
      if (gone.signal.aborted) return;
      // `no_leader`: the node answered, and a majority is there; an election is under way.
      // Not the node's failure: counting it could eject the next leader as it takes over.
      if (outcome.kind === "not-applied" && outcome.why === "no_leader") {
        router.reportSuccess(endpoint.id);
        router.noteLeader?.(null);
      } else router.reportFailure(endpoint.id);
      avoid.add(endpoint.id);
      brokenBefore ||= outcome.kind === "broken";
      const retryable = outcome.kind === "not-applied" || outcome.kind === "not-sent" || route.repeatable;
      const mayRetry = retryable && attempt + 1 < this.attemptsMax && this.budget.tryRetry(performance.now());
      if (!mayRetry) {
        this.counters.failed++;
        if (outcome.kind === "not-applied") return sendBuffered(response, outcome.status, outcome.headers, outcome.body, endpoint.url);
        if (!retryable) return sendError(response, 502, "upstream_unknown", `${endpoint.url} did not answer (${outcome.why}); the request may or may not have been applied`);
        return sendError(response, 503, UPSTREAM_UNAVAILABLE, `no node answered (last: ${endpoint.url}, ${outcome.why}); retry shortly`, { "retry-after": "1" });
      }
      this.counters.retries++;
      // The first retry goes at once (to another node); later ones back off.
      if (attempt > 0) await sleep(backoffMs(attempt - 1, this.prng, this.options.backoff));
    }
  }

  /** One attempt: streams the answer to `response` unless it says nothing was applied. */
  private async attempt(
    pool: Pool,
    endpoint: ProxyEndpoint,
    method: string,
    url: string,
    headers: Record<string, string | string[]>,
    body: Buffer | null,
    response: ServerResponse,
    signal: AbortSignal,
    brokenBefore: boolean,
  ): Promise<Outcome> {
    let answer: Awaited<ReturnType<Pool["request"]>>;
    try {
      answer = await pool.request({
        method: method as "GET",
        path: url,
        headers,
        body,
        signal,
        // These bound the wait for the answer's headers and each gap in its body.
        headersTimeout: this.attemptTimeoutMs,
        bodyTimeout: this.attemptTimeoutMs,
      });
    } catch (error) {
      const code = errorCode(error);
      return { kind: neverConnected(error) ? "not-sent" : "broken", why: code ?? (error as Error).message };
    }
    if (answer.statusCode === 503) {
      const bytes = await readLimited(answer.body, ERROR_BODY_BYTES_MAX).then(
        (read) => read.bytes,
        () => Buffer.alloc(0),
      );
      const code = errorCodeOf(bytes);
      if (code !== null && NOT_APPLIED.has(code)) return { kind: "not-applied", status: 503, headers: answer.headers, body: bytes, why: code };
      sendBuffered(response, 503, answer.headers, bytes, endpoint.url);
      return { kind: "answered" };
    }
    if (answer.statusCode === 410 && brokenBefore) {
      answer.body.resume();
      return { kind: "expired-after-broken" };
    }
    if (response.destroyed) {
      answer.body.destroy();
      return { kind: "answered" };
    }
    response.writeHead(answer.statusCode, { ...endToEnd(answer.headers), "x-synod-upstream": endpoint.url });
    try {
      await pipeline(answer.body, response);
    } catch (error) {
      // The answer began; it cannot be taken back or retried. The client sees a cut body
      // (or had left).
      if (!signal.aborted) this.options.log.warn({ upstream: endpoint.url, err: error }, "an answer broke while it was being passed on");
    }
    return { kind: "answered" };
  }
}

type Outcome =
  | { readonly kind: "answered" }
  /** 410 after an attempt whose write may have applied: the write's outcome is unknown, whatever the 410 says. */
  | { readonly kind: "expired-after-broken" }
  | { readonly kind: "not-applied"; readonly status: number; readonly headers: IncomingHttpHeaders; readonly body: Buffer; readonly why: string }
  | { readonly kind: "not-sent" | "broken"; readonly why: string };

/** The headers passed on, either way: all but the hop-by-hop ones (and the length, which the proxy sets). */
function endToEnd(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

function sendBuffered(response: ServerResponse, status: number, headers: IncomingHttpHeaders, body: Buffer, upstream: string): void {
  response.writeHead(status, { ...endToEnd(headers), "content-length": body.length, "x-synod-upstream": upstream });
  response.end(body);
}

function sendJson(response: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  response.end(text);
}

function sendError(response: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(response, status, { error: code, message }, headers);
}

/** The whole body, or "too large" past `bytesMax` (the rest is drained, not kept). */
async function readBody(request: IncomingMessage, bytesMax: number): Promise<Buffer | "too large"> {
  const { bytes, over } = await readLimited(request as AsyncIterable<Buffer>, bytesMax);
  return over ? "too large" : bytes;
}

/** Reads and drops the body of a request answered early, so the client, still sending, gets the answer rather than a reset. */
function discardBody(request: IncomingMessage): void {
  let discarded = 0;
  request.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DISCARD_BYTES_MAX) request.socket.destroy();
  });
  request.on("error", () => undefined);
  request.resume();
}

/** Reads `body` to its end, keeping at most `bytesMax` bytes; `over` says whether more came. */
async function readLimited(body: AsyncIterable<Buffer>, bytesMax: number): Promise<{ readonly bytes: Buffer; readonly over: boolean }> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += chunk.length;
    if (length <= bytesMax) chunks.push(chunk);
  }
  return { bytes: Buffer.concat(chunks), over: length > bytesMax };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

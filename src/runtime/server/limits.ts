/**
 * What one node gives its HTTP clients at most: time to send a request, connections, and
 * requests in progress. Each bound is there so that a client, slow or many, cannot make the
 * node hold memory or sockets without end; each is a `synod node` flag (docs/security.md,
 * "Resource limits").
 *
 * - Time. A request's headers must arrive within `headersTimeoutMs` of its first byte (a
 *   fresh connection's first byte counts from the connect), and the whole request, body
 *   included, within `receiveTimeoutMs`: a client trickling headers or a body (slowloris)
 *   is answered 408 and closed. Node's own parser deadlines do it (`headersTimeout`,
 *   `requestTimeout`), checked every `CONNECTIONS_CHECK_INTERVAL_MS`. Only receiving is
 *   bounded: once a request has arrived, its answer may take as long as it takes, so a
 *   watch (`GET /v1/watch`, a response that streams for hours) is not cut.
 * - Connections. Past `connectionsMax` open client connections a new one is closed as soon
 *   as it is accepted (Node's `maxConnections`; counted in
 *   `synod_http_connections_refused_total`): the open ones go on being served. An idle
 *   keep-alive connection holds its place for `KEEP_ALIVE_TIMEOUT_MS`.
 * - Requests in progress. Past `inflightRequestsMax` requests, or `inflightBodyBytesMax`
 *   bytes of request bodies being received, a new request is answered 503 `overloaded` with
 *   `Retry-After` before its body is read (Node reads and drops it), so a flood costs the
 *   node a small answer per request instead of a buffered body and a pending proposal. A
 *   body of unknown length (chunked) is counted at `requestBodyBytesMax`, the most it may be.
 *   Exempt: the health and metrics routes (small, fixed answers an operator needs most under
 *   load) and watches, which live long and are bounded by their own count (watch.ts).
 */
import type { IncomingMessage, RequestListener, Server, ServerResponse } from "node:http";
import type { Server as HttpsServer } from "node:https";
import { Counter, Gauge, type Registry } from "prom-client";
import { InvalidInputError } from "../../core/common/errors.js";

/** The bounds on what clients may hold; durations in milliseconds, sizes in bytes. */
export interface ClientLimits {
  readonly headersTimeoutMs: number;
  readonly receiveTimeoutMs: number;
  readonly connectionsMax: number;
  readonly inflightRequestsMax: number;
  readonly inflightBodyBytesMax: number;
}

/**
 * Defaults. Headers take one round trip from any real client, so 10 s is generous; 60 s for
 * a whole request is a 4 MiB transaction at 70 KB/s. 4096 connections and 2048 requests in
 * progress are far past what two cores serve (a benchmark's 64 to 1024 connections
 * saturate a node), and cost about 100 MB at most (measured in overload.test.ts); 256 MiB
 * of bodies is 64 of the largest transactions at once.
 */
export const DEFAULT_CLIENT_LIMITS: ClientLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  receiveTimeoutMs: 60_000,
  connectionsMax: 4096,
  inflightRequestsMax: 2048,
  inflightBodyBytesMax: 256 * 1024 * 1024,
});

/** Kept above common load balancers' idle timeouts (60 s), so the node never closes a connection they are about to reuse. */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** How often Node checks its parsers' deadlines: a slow client is cut at most this late. */
export const CONNECTIONS_CHECK_INTERVAL_MS = 1000;
/** Routes answered whatever the load: `GET` of these paths. */
const EXEMPT_PATHS: ReadonlySet<string> = new Set(["/healthz", "/readyz", "/metrics", "/v1/watch"]);

export function validateClientLimits(limits: ClientLimits): void {
  for (const [flag, value] of [
    ["--headers-timeout-ms", limits.headersTimeoutMs],
    ["--receive-timeout-ms", limits.receiveTimeoutMs],
    ["--max-connections", limits.connectionsMax],
    ["--max-inflight-requests", limits.inflightRequestsMax],
    ["--max-inflight-body-bytes", limits.inflightBodyBytesMax],
  ] as const) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidInputError(`${flag} must be a positive integer, got ${value}`);
  }
  // Node refuses a headers deadline past the whole request's; say so in our flags' terms.
  if (limits.headersTimeoutMs > limits.receiveTimeoutMs) throw new InvalidInputError(`--headers-timeout-ms (${limits.headersTimeoutMs}) must be at most --receive-timeout-ms (${limits.receiveTimeoutMs}): the headers are part of the request`);
}

/** The options Node takes only when the server is created: how often deadlines are checked. */
export const API_SERVER_OPTIONS = Object.freeze({ connectionsCheckingInterval: CONNECTIONS_CHECK_INTERVAL_MS });

/** Sets the deadlines on an API server (HTTP or HTTPS): see the module comment. */
export function applyReceiveDeadlines(server: Server | HttpsServer, limits: Pick<ClientLimits, "headersTimeoutMs" | "receiveTimeoutMs">): void {
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.receiveTimeoutMs;
}

/** What the node counts of its limits (registered on its metrics registry). */
export class LimitMetrics {
  readonly connectionsRefused: Counter;
  readonly requestsShed: Counter<"reason">;

  constructor(registry: Registry, inflight: () => { readonly requests: number; readonly bodyBytes: number }) {
    this.connectionsRefused = new Counter({ name: "synod_http_connections_refused_total", help: "Client connections closed at once because --max-connections were open", registers: [registry] });
    this.requestsShed = new Counter({ name: "synod_http_requests_shed_total", help: "Requests answered 503 overloaded before being read, by the bound reached", labelNames: ["reason"], registers: [registry] });
    // Both series from the start, so a dashboard's rate() has a zero to begin from.
    for (const reason of ["requests", "body_bytes"]) this.requestsShed.inc({ reason }, 0);
    new Gauge({ name: "synod_http_inflight_requests", help: "Client requests being received or served (watches not counted)", registers: [registry], collect() { this.set(inflight().requests); } });
    new Gauge({ name: "synod_http_inflight_body_bytes", help: "Bytes of request bodies counted against --max-inflight-body-bytes", registers: [registry], collect() { this.set(inflight().bodyBytes); } });
  }
}

/** Closes connections past `connectionsMax` at accept, counting each (`server` is the listening TCP or HTTP server). */
export function limitConnections(server: { maxConnections: number; on(event: "drop", listener: () => void): unknown }, connectionsMax: number, metrics: LimitMetrics): void {
  server.maxConnections = connectionsMax;
  server.on("drop", () => metrics.connectionsRefused.inc());
}

/** Counts the requests in progress and the body bytes they may buffer; refuses past either bound. */
export class Admission {
  private requests = 0;
  private bodyBytes = 0;

  constructor(
    private readonly limits: Pick<ClientLimits, "inflightRequestsMax" | "inflightBodyBytesMax">,
    /** The most one request's body may be (its share when its length is not given). */
    private readonly requestBodyBytesMax: number,
  ) {}

  get inflight(): { readonly requests: number; readonly bodyBytes: number } {
    return { requests: this.requests, bodyBytes: this.bodyBytes };
  }

  /**
   * Takes a place for `request`, or says which bound is reached (null: admitted). The
   * caller gives the place back with `release(bytes)` once the answer is sent or the
   * connection lost.
   */
  admit(request: IncomingMessage): { readonly bytes: number } | { readonly refused: "requests" | "body_bytes" } {
    const bytes = declaredBodyBytes(request, this.requestBodyBytesMax);
    if (this.requests >= this.limits.inflightRequestsMax) return { refused: "requests" };
    // One request is always let through, however large, or a body over the budget could never be sent.
    if (this.bodyBytes > 0 && this.bodyBytes + bytes > this.limits.inflightBodyBytesMax) return { refused: "body_bytes" };
    this.requests++;
    this.bodyBytes += bytes;
    return { bytes };
  }

  release(bytes: number): void {
    this.requests--;
    this.bodyBytes -= bytes;
  }
}

/** The bytes a request's body may take: its Content-Length (capped), the most a body may be when chunked, 0 without one. */
function declaredBodyBytes(request: IncomingMessage, requestBodyBytesMax: number): number {
  const length = request.headers["content-length"];
  if (length !== undefined) {
    const declared = Number(length);
    // Past the limit the route answers 413 without reading it: count no more than the limit.
    return Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, requestBodyBytesMax) : 0;
  }
  return request.headers["transfer-encoding"] === undefined ? 0 : requestBodyBytesMax;
}

/**
 * `handler` behind `admission`: a request past a bound is answered 503 `overloaded` at once
 * (its body unread, which Node then drops); an admitted one holds its place until its
 * response is finished or its connection closes.
 */
export function admitRequests(handler: RequestListener, admission: Admission, limits: ClientLimits, metrics: LimitMetrics): RequestListener {
  return (request: IncomingMessage, response: ServerResponse) => {
    if (isExempt(request)) return void handler(request, response);
    const admitted = admission.admit(request);
    if ("refused" in admitted) {
      metrics.requestsShed.inc({ reason: admitted.refused });
      return shed(response, admitted.refused, limits);
    }
    let released = false;
    response.once("close", () => {
      if (released) return;
      released = true;
      admission.release(admitted.bytes);
    });
    handler(request, response);
  };
}

function isExempt(request: IncomingMessage): boolean {
  if (request.method !== "GET" && request.method !== "HEAD") return false;
  const url = request.url ?? "/";
  const question = url.indexOf("?");
  return EXEMPT_PATHS.has(question === -1 ? url : url.slice(0, question));
}

function shed(response: ServerResponse, reason: "requests" | "body_bytes", limits: ClientLimits): void {
  const what =
    reason === "requests"
      ? `this node has ${limits.inflightRequestsMax} requests in progress, its limit (--max-inflight-requests)`
      : `this node is receiving ${limits.inflightBodyBytesMax} bytes of request bodies, its limit (--max-inflight-body-bytes)`;
  const text = JSON.stringify({ error: "overloaded", message: `overloaded: ${what}; nothing was done: retry after a moment, or send the request to another member` });
  response.writeHead(503, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "retry-after": "1" });
  response.end(text);
}

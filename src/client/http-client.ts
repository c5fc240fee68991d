// A minimal client of the node's HTTP API (docs/http-api.md): one keep-alive undici Pool per
// endpoint, typed errors, and failover to the next endpoint when a node cannot be reached or
// knows no leader. The load-balancing SDK (issue 5) builds on this; it deliberately has no
// policy beyond "stick to the endpoint that last worked".
import { setTimeout as sleep } from "node:timers/promises";
import { Pool, type Dispatcher } from "undici";
import { assert } from "../core/common/assert.js";
import { InvalidInputError, SynodError } from "../core/common/errors.js";
import { CompareFailedError, ConnectionError, HttpApiError, NoLeaderError, NotMemberError, TimeoutError, UnavailableError } from "./errors.js";

export type Consistency = "linearizable" | "lease" | "stale";

export const CONSISTENCIES: readonly Consistency[] = ["linearizable", "lease", "stale"];

/** One key's record as the store holds it. */
export interface KeyValue {
  readonly key: string;
  /** The value's bytes, decoded from the API's UTF-8 text or base64. */
  readonly value: Uint8Array;
  /** The key's last modification. */
  readonly revision: number;
  /** The key's creation. */
  readonly createRevision: number;
  /** Changes since creation (1 after the first put). */
  readonly version: number;
}

export interface RangeResult {
  readonly kvs: readonly KeyValue[];
  /** True when more keys match than were returned; page on with `after` = the last key. */
  readonly more: boolean;
  /** The store's revision the range was read at. */
  readonly revision: number;
}

export type CompareOperator = "=" | "!=" | "<" | ">";
export type TxnCompare =
  | { readonly key: string; readonly target: "value"; readonly op: CompareOperator; readonly value: string }
  | { readonly key: string; readonly target: "revision" | "createRevision" | "version"; readonly op: CompareOperator; readonly value: number };
export type TxnOperation =
  | { readonly op: "put"; readonly key: string; readonly value: string }
  | { readonly op: "get"; readonly key: string }
  | { readonly op: "delete"; readonly key: string };
export interface TxnRequest {
  readonly compare?: readonly TxnCompare[];
  readonly success?: readonly TxnOperation[];
  readonly failure?: readonly TxnOperation[];
}
/** One operation's result, in request order: a put's `{revision}`, a get's `{kv}`, a delete's `{deleted, revision}`. */
export type TxnResult = { readonly revision: number } | { readonly kv: KeyValue | null } | { readonly deleted: number; readonly revision: number };
export interface TxnResponse {
  readonly succeeded: boolean;
  readonly revision: number;
  readonly results: readonly TxnResult[];
}

export interface MemberInfo {
  readonly id: number;
  readonly peer: string;
  readonly http: string;
}

/** `GET /v1/status`; fields the API adds later are kept as they came. */
export interface NodeStatus {
  readonly id: number;
  readonly role: string;
  readonly term: number;
  /** The leader this node believes in, or null during an election. */
  readonly leader: number | null;
  /** The leader's HTTP endpoint, or null when no leader is known. */
  readonly leaderHttp: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly members: readonly MemberInfo[];
  readonly [field: string]: unknown;
}

export interface SynodHttpClientOptions {
  /** Origins such as `http://127.0.0.1:7001`; at least one, no path. */
  readonly endpoints: readonly string[];
  /** How long one attempt may take, connecting and reading the answer included; default 10,000 ms (above the node's own request timeout, so its 503 `timeout` arrives first). */
  readonly requestTimeoutMs?: number;
  /** How long one attempt may take to connect; default 3,000 ms. */
  readonly connectTimeoutMs?: number;
  /** Keep-alive connections per endpoint, 1..1024; default 8. */
  readonly connectionsPerEndpoint?: number;
  /** Attempts per call, over all endpoints, 1..100; default max(3, 2 × endpoints). */
  readonly attemptsMax?: number;
  /** The longest pause between two attempts, whatever `Retry-After` says; default 1,000 ms. */
  readonly retryDelayMsMax?: number;
  /** The first pause once every endpoint has been tried, doubled after each further attempt; default 50 ms. */
  readonly retryDelayMsBase?: number;
  /** The largest response body accepted; default 64 MiB (a full range page of large values). */
  readonly responseBytesMax?: number;
}

interface ApiRequest {
  readonly method: "GET" | "PUT" | "DELETE" | "POST";
  /** Path and query, already encoded. */
  readonly path: string;
  readonly body?: Uint8Array | string;
  readonly contentType?: string;
  /** Reads may be sent again after any failure; writes only when they surely did not arrive. */
  readonly idempotent: boolean;
}

interface ApiResponse {
  readonly endpoint: string;
  readonly status: number;
  readonly headers: Dispatcher.ResponseData["headers"];
  readonly body: Uint8Array;
}

const REQUEST_TIMEOUT_MS_DEFAULT = 10_000;
const CONNECT_TIMEOUT_MS_DEFAULT = 3_000;
const CONNECTIONS_PER_ENDPOINT_DEFAULT = 8;
const CONNECTIONS_PER_ENDPOINT_MAX = 1024;
const ATTEMPTS_MAX_LIMIT = 100;
const RETRY_DELAY_MS_MAX_DEFAULT = 1_000;
const RETRY_DELAY_MS_BASE_DEFAULT = 50;
const RESPONSE_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

/** Socket error codes meaning the connection was never established, so nothing was sent. */
const NOT_CONNECTED_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "EADDRNOTAVAIL", "UND_ERR_CONNECT_TIMEOUT"]);
const CLIENT_TIMEOUT_CODES = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);
/** undici's codes for misuse (bad arguments, a closed pool): bugs, passed on unchanged. */
const PROGRAMMING_ERROR_CODES = new Set(["UND_ERR_INVALID_ARG", "UND_ERR_CLOSED", "UND_ERR_DESTROYED", "UND_ERR_NOT_SUPPORTED"]);

export class SynodHttpClient {
  /** The configured origins, in the order given. */
  readonly endpoints: readonly string[];
  private readonly pools = new Map<string, Pool>();
  private readonly requestTimeoutMs: number;
  private readonly attemptsMax: number;
  private readonly retryDelayMsMax: number;
  private readonly retryDelayMsBase: number;
  /** Index of the endpoint that answered last; calls start there. */
  private preferred = 0;
  private closed = false;

  /** @throws InvalidInputError when an endpoint is not an http(s) origin or an option is out of range. */
  constructor(options: SynodHttpClientOptions) {
    if (options.endpoints.length === 0) throw new InvalidInputError("at least one endpoint is needed");
    this.endpoints = options.endpoints.map(normalizeEndpoint);
    this.requestTimeoutMs = positiveOption(options.requestTimeoutMs, REQUEST_TIMEOUT_MS_DEFAULT, "requestTimeoutMs", Number.MAX_SAFE_INTEGER);
    const connectTimeoutMs = positiveOption(options.connectTimeoutMs, CONNECT_TIMEOUT_MS_DEFAULT, "connectTimeoutMs", Number.MAX_SAFE_INTEGER);
    const connections = positiveOption(options.connectionsPerEndpoint, CONNECTIONS_PER_ENDPOINT_DEFAULT, "connectionsPerEndpoint", CONNECTIONS_PER_ENDPOINT_MAX);
    this.attemptsMax = positiveOption(options.attemptsMax, Math.max(3, 2 * this.endpoints.length), "attemptsMax", ATTEMPTS_MAX_LIMIT);
    this.retryDelayMsMax = nonNegativeOption(options.retryDelayMsMax, RETRY_DELAY_MS_MAX_DEFAULT, "retryDelayMsMax");
    this.retryDelayMsBase = nonNegativeOption(options.retryDelayMsBase, RETRY_DELAY_MS_BASE_DEFAULT, "retryDelayMsBase");
    const responseBytesMax = positiveOption(options.responseBytesMax, RESPONSE_BYTES_MAX_DEFAULT, "responseBytesMax", Number.MAX_SAFE_INTEGER);
    for (const endpoint of this.endpoints) {
      if (this.pools.has(endpoint)) continue;
      this.pools.set(endpoint, new Pool(endpoint, { connections, connect: { timeout: connectTimeoutMs }, maxResponseSize: responseBytesMax }));
    }
  }

  /**
   * Writes `value` under `key`. With `prevRevision` it is a compare-and-set: it happens only
   * if the key's revision is that number (0: only if the key does not exist).
   * @throws CompareFailedError when the compare did not hold; the errors of every call (see `call`).
   */
  async put(key: string, value: Uint8Array | string, options: { readonly prevRevision?: number } = {}): Promise<{ revision: number }> {
    const query = new URLSearchParams();
    if (options.prevRevision !== undefined) {
      if (!Number.isSafeInteger(options.prevRevision) || options.prevRevision < 0) throw new InvalidInputError(`prevRevision must be a non-negative integer, got ${options.prevRevision}`);
      query.set("prevRevision", String(options.prevRevision));
    }
    const body = typeof value === "string" ? Buffer.from(value, "utf8") : value;
    const response = await this.call({ method: "PUT", path: withQuery(`/v1/kv/${encodeKeyPath(key)}`, query), body, contentType: "application/octet-stream", idempotent: false });
    return { revision: numberField(jsonObject(response), "revision", response) };
  }

  /** Reads `key`; null when it does not exist. `consistency` defaults to the node's (linearizable). */
  async get(key: string, options: { readonly consistency?: Consistency } = {}): Promise<KeyValue | null> {
    const query = new URLSearchParams();
    if (options.consistency !== undefined) query.set("consistency", options.consistency);
    const response = await this.call({ method: "GET", path: withQuery(`/v1/kv/${encodeKeyPath(key)}`, query), idempotent: true }, isKeyNotFound);
    if (isKeyNotFound(response)) return null;
    return decodeKeyValue(jsonObject(response), response);
  }

  /** Deletes `key`; `deleted` is 0 when it did not exist. */
  async delete(key: string): Promise<{ deleted: number; revision: number }> {
    const response = await this.call({ method: "DELETE", path: `/v1/kv/${encodeKeyPath(key)}`, idempotent: false });
    const body = jsonObject(response);
    return { deleted: numberField(body, "deleted", response), revision: numberField(body, "revision", response) };
  }

  /** Keys starting with `prefix` ("" for all), in byte order, after `after`, at most `limit` (the node caps it at 1000). */
  async range(prefix: string, options: { readonly limit?: number; readonly after?: string; readonly consistency?: Consistency } = {}): Promise<RangeResult> {
    const query = new URLSearchParams();
    if (prefix !== "") query.set("prefix", prefix);
    if (options.limit !== undefined) query.set("limit", String(options.limit));
    if (options.after !== undefined) query.set("after", options.after);
    if (options.consistency !== undefined) query.set("consistency", options.consistency);
    const response = await this.call({ method: "GET", path: withQuery("/v1/kv", query), idempotent: true });
    const body = jsonObject(response);
    const kvs = body["kvs"];
    if (!Array.isArray(kvs)) throw invalidResponse(response, "kvs is not an array");
    return { kvs: kvs.map((kv: unknown) => decodeKeyValue(asObject(kv, response), response)), more: body["more"] === true, revision: numberField(body, "revision", response) };
  }

  /** Runs a transaction atomically: `success` if every compare holds, else `failure`. */
  async txn(request: TxnRequest): Promise<TxnResponse> {
    const response = await this.call({ method: "POST", path: "/v1/txn", body: JSON.stringify(request), contentType: "application/json", idempotent: false });
    const body = jsonObject(response);
    const results = body["results"];
    if (typeof body["succeeded"] !== "boolean" || !Array.isArray(results)) throw invalidResponse(response, "expected succeeded and results");
    return { succeeded: body["succeeded"], revision: numberField(body, "revision", response), results: results.map((result: unknown) => decodeTxnResult(asObject(result, response), response)) };
  }

  /**
   * `GET /v1/status` of `endpoint` (one of `endpoints`) and only that one; without it, of
   * whichever endpoint answers first in failover order.
   */
  async status(endpoint?: string): Promise<NodeStatus> {
    const request: ApiRequest = { method: "GET", path: "/v1/status", idempotent: true };
    const response = endpoint === undefined ? await this.call(request) : await this.callOne(normalizeEndpoint(endpoint), request);
    return decodeStatus(jsonObject(response), response);
  }

  /** Closes every connection; calls after this are programming errors. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.pools.values()].map((pool) => pool.close()));
  }

  /** One attempt at one endpoint, the answer mapped to its typed error (`accept` says which error statuses are answers). */
  private async callOne(endpoint: string, request: ApiRequest, accept?: (response: ApiResponse) => boolean): Promise<ApiResponse> {
    const response = await this.exchange(endpoint, request);
    if (response.status >= 400 && accept?.(response) !== true) throw errorFor(response);
    return response;
  }

  /**
   * Sends `request`, failing over: a refused connection (or, for a read, any broken one), a
   * 503 `no_leader` or `not_member` (a removed node), and for reads a timeout, move on to the next endpoint, at most
   * `attemptsMax` attempts. The first pass over the endpoints goes without pause (another
   * node may be fine); after that each attempt waits the node's `Retry-After`, or a doubling
   * backoff, bounded by `retryDelayMsMax`.
   * @throws NoLeaderError, TimeoutError (reads) or ConnectionError when every attempt failed
   *   (the latest node answer, else the latest connection failure);
   *   TimeoutError at once for a write (its outcome is unknown); HttpApiError for any other
   *   error answer; InvalidInputError for a key that cannot be sent.
   */
  private async call(request: ApiRequest, accept?: (response: ApiResponse) => boolean): Promise<ApiResponse> {
    assert(!this.closed, "the client is closed");
    const start = this.preferred;
    let lastError: unknown = null;
    for (let attempt = 0; attempt < this.attemptsMax; attempt++) {
      if (attempt > 0) {
        const delayMs = this.retryDelayMs(attempt, lastError);
        if (delayMs > 0) await sleep(delayMs);
      }
      const index = (start + attempt) % this.endpoints.length;
      const endpoint = this.endpoints[index];
      assert(endpoint !== undefined, "endpoint index in range");
      try {
        const response = await this.callOne(endpoint, request, accept);
        this.preferred = index;
        return response;
      } catch (error) {
        if (!isRetriable(error, request.idempotent)) throw error;
        // A node's answer (no leader) says more than a refused connection: keep the latest answer.
        if (!(error instanceof ConnectionError) || lastError === null || lastError instanceof ConnectionError) lastError = error;
      }
    }
    throw lastError;
  }

  /** The pause before attempt `attempt` (1-based retries): none while untried endpoints remain. */
  private retryDelayMs(attempt: number, lastError: unknown): number {
    if (attempt < this.endpoints.length) return 0;
    const retryAfterMs = lastError instanceof UnavailableError || lastError instanceof TimeoutError ? lastError.retryAfterMs : null;
    const backoffMs = this.retryDelayMsBase * 2 ** Math.min(attempt - this.endpoints.length, 20);
    return Math.min(this.retryDelayMsMax, retryAfterMs ?? backoffMs);
  }

  /** One HTTP exchange; socket failures become ConnectionError or TimeoutError. */
  private async exchange(endpoint: string, request: ApiRequest): Promise<ApiResponse> {
    const pool = this.pools.get(endpoint);
    assert(pool !== undefined, `${endpoint} is not one of the client's endpoints`);
    let answered = false;
    // undici's own headers timeout ticks in about a second; a native timer keeps short
    // request timeouts honest and bounds the whole attempt, body included.
    const deadline = AbortSignal.timeout(this.requestTimeoutMs);
    try {
      const response = await pool.request({
        signal: deadline,
        method: request.method,
        path: request.path,
        body: request.body ?? null,
        headers: request.contentType === undefined ? {} : { "content-type": request.contentType },
        headersTimeout: this.requestTimeoutMs,
        bodyTimeout: this.requestTimeoutMs,
        idempotent: request.idempotent,
      });
      answered = true;
      const body = new Uint8Array(await response.body.arrayBuffer());
      return { endpoint, status: response.statusCode, headers: response.headers, body };
    } catch (error) {
      if (deadline.aborted) throw clientTimeout(endpoint, request, error);
      throw classifySocketError(error, endpoint, request, answered);
    }
  }
}

function clientTimeout(endpoint: string, request: ApiRequest, cause: unknown): TimeoutError {
  const what = `${request.method} ${endpoint}${request.path.split("?")[0] ?? ""}`;
  return new TimeoutError({ message: `${what}: no answer in time (requestTimeoutMs); a write may or may not have been applied`, endpoint, status: null, retryAfterMs: null, cause });
}

/** Maps a failed exchange to the client's errors; `answered`: the response headers had arrived. */
function classifySocketError(error: unknown, endpoint: string, request: ApiRequest, answered: boolean): unknown {
  const code = errorCode(error);
  const what = `${request.method} ${endpoint}${request.path.split("?")[0] ?? ""}`;
  if (code === "UND_ERR_RES_EXCEEDED_MAX_SIZE") {
    return new SynodError("response_too_large", `${what}: the answer is larger than responseBytesMax`, { cause: error });
  }
  if (code !== undefined && CLIENT_TIMEOUT_CODES.has(code)) return clientTimeout(endpoint, request, error);
  if (error instanceof Error && (code === undefined || !PROGRAMMING_ERROR_CODES.has(code))) {
    const requestSent = answered || code === undefined || !NOT_CONNECTED_CODES.has(code);
    return new ConnectionError({ message: `${what}: ${code ?? error.message}${requestSent ? " (the connection broke during the request)" : " (cannot connect)"}`, endpoint, requestSent, cause: error });
  }
  return error;
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") return code;
  // Node reports "connection refused to every address" as an AggregateError whose parts carry the code.
  const errors = (error as { errors?: unknown }).errors;
  if (Array.isArray(errors)) return errorCode(errors[0]);
  return undefined;
}

function isRetriable(error: unknown, idempotent: boolean): boolean {
  if (error instanceof ConnectionError) return idempotent || !error.requestSent;
  if (error instanceof NoLeaderError || error instanceof NotMemberError) return true;
  if (error instanceof TimeoutError) return idempotent;
  return false;
}

function isKeyNotFound(response: ApiResponse): boolean {
  return response.status === 404 && errorBodyCode(response) === "key_not_found";
}

/** The typed error for an error answer (status >= 400). */
function errorFor(response: ApiResponse): Error {
  const body = parseJson(response.body);
  const fields = typeof body === "object" && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  const code = typeof fields["error"] === "string" ? fields["error"] : `http_${response.status}`;
  const detail = typeof fields["message"] === "string" ? fields["message"] : new TextDecoder().decode(response.body.subarray(0, 200)) || `HTTP ${response.status}`;
  const message = `${code}: ${detail}`;
  const endpoint = response.endpoint;
  if (response.status === 409 && code === "compare_failed") {
    const revision = fields["revision"];
    return new CompareFailedError({ message, endpoint, revision: typeof revision === "number" ? revision : null });
  }
  if (response.status === 503) {
    const retryAfterMs = parseRetryAfterMs(response.headers["retry-after"]);
    if (code === "no_leader") return new NoLeaderError({ message, endpoint, retryAfterMs });
    if (code === "not_member") return new NotMemberError({ message, endpoint, retryAfterMs });
    if (code === "timeout") return new TimeoutError({ message, endpoint, status: 503, retryAfterMs });
    return new UnavailableError({ code, message, endpoint, retryAfterMs });
  }
  return new HttpApiError({ status: response.status, code, message, endpoint });
}

function errorBodyCode(response: ApiResponse): string | null {
  const body = parseJson(response.body);
  return typeof body === "object" && body !== null && typeof (body as { error?: unknown }).error === "string" ? (body as { error: string }).error : null;
}

/** `Retry-After` as delta-seconds or an HTTP date, in milliseconds from now; null when absent or unreadable. */
export function parseRetryAfterMs(header: string | string[] | undefined, nowMs: number = Date.now()): number | null {
  const text = Array.isArray(header) ? header[0] : header;
  if (text === undefined || text.trim() === "") return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(text)) return Math.round(Number(text) * 1000);
  const dateMs = Date.parse(text);
  return Number.isNaN(dateMs) ? null : Math.max(0, dateMs - nowMs);
}

/**
 * The key as a URL path: each `/`-separated segment percent-encoded, so `a/b` stays `a/b`
 * and the node, which percent-decodes the rest of the path, sees the same key. `.` and `..`
 * segments are encoded too, so no URL resolution on the way turns them into path steps.
 * @throws InvalidInputError for an empty key or one that is not well-formed UTF-16.
 */
export function encodeKeyPath(key: string): string {
  if (key.length === 0) throw new InvalidInputError("a key must not be empty");
  try {
    return key
      .split("/")
      .map((segment) => (segment === "." ? "%2E" : segment === ".." ? "%2E%2E" : encodeURIComponent(segment)))
      .join("/");
  } catch (error) {
    throw new InvalidInputError("a key must be well-formed text (it holds a lone surrogate)", { cause: error });
  }
}

/** A record as the API's JSON shows it: UTF-8 text, or base64 with `"encoding":"base64"`. */
export function keyValueToJson(kv: KeyValue): Record<string, unknown> {
  const text = decodeUtf8Strict(kv.value);
  return {
    key: kv.key,
    value: text ?? Buffer.from(kv.value).toString("base64"),
    ...(text === null ? { encoding: "base64" } : {}),
    revision: kv.revision,
    createRevision: kv.createRevision,
    version: kv.version,
  };
}

/** The text, or null when the bytes are not valid UTF-8. */
export function decodeUtf8Strict(bytes: Uint8Array): string | null {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
}

function normalizeEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch (error) {
    throw new InvalidInputError(`endpoint "${endpoint}" is not a URL (expected e.g. http://127.0.0.1:7001)`, { cause: error });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new InvalidInputError(`endpoint "${endpoint}" must be http:// or https://`);
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "") throw new InvalidInputError(`endpoint "${endpoint}" must be an origin, without a path`);
  return url.origin;
}

function positiveOption(value: number | undefined, fallback: number, name: string, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) throw new InvalidInputError(`${name} must be an integer from 1 to ${max}, got ${value}`);
  return value;
}

function nonNegativeOption(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidInputError(`${name} must be a non-negative integer, got ${value}`);
  return value;
}

function withQuery(path: string, query: URLSearchParams): string {
  const text = query.toString();
  return text === "" ? path : `${path}?${text}`;
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  } catch {
    return undefined;
  }
}

function invalidResponse(response: ApiResponse, why: string): HttpApiError {
  return new HttpApiError({ status: response.status, code: "invalid_response", message: `invalid_response: ${response.endpoint} answered something the API does not define (${why})`, endpoint: response.endpoint });
}

function jsonObject(response: ApiResponse): Record<string, unknown> {
  const body = parseJson(response.body);
  if (body === undefined) throw invalidResponse(response, "the body is not JSON");
  return asObject(body, response);
}

function asObject(value: unknown, response: ApiResponse): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidResponse(response, "expected a JSON object");
  return value as Record<string, unknown>;
}

function numberField(body: Record<string, unknown>, name: string, response: ApiResponse): number {
  const value = body[name];
  if (typeof value !== "number" || !Number.isSafeInteger(value)) throw invalidResponse(response, `${name} is not an integer`);
  return value;
}

function decodeKeyValue(body: Record<string, unknown>, response: ApiResponse): KeyValue {
  const key = body["key"];
  const value = body["value"];
  if (typeof key !== "string" || typeof value !== "string") throw invalidResponse(response, "a record needs a key and a value");
  const bytes = body["encoding"] === "base64" ? new Uint8Array(Buffer.from(value, "base64")) : new Uint8Array(Buffer.from(value, "utf8"));
  return {
    key,
    value: bytes,
    revision: numberField(body, "revision", response),
    createRevision: numberField(body, "createRevision", response),
    version: numberField(body, "version", response),
  };
}

function decodeTxnResult(body: Record<string, unknown>, response: ApiResponse): TxnResult {
  if ("kv" in body) return { kv: body["kv"] === null ? null : decodeKeyValue(asObject(body["kv"], response), response) };
  if ("deleted" in body) return { deleted: numberField(body, "deleted", response), revision: numberField(body, "revision", response) };
  return { revision: numberField(body, "revision", response) };
}

function decodeStatus(body: Record<string, unknown>, response: ApiResponse): NodeStatus {
  const nullableNumber = (name: string): number | null => (body[name] === null || body[name] === undefined ? null : numberField(body, name, response));
  const leaderHttp = body["leaderHttp"];
  if (typeof body["role"] !== "string") throw invalidResponse(response, "role is not a string");
  const members = Array.isArray(body["members"]) ? (body["members"] as MemberInfo[]) : [];
  return {
    ...body,
    id: numberField(body, "id", response),
    role: body["role"],
    term: numberField(body, "term", response),
    leader: nullableNumber("leader"),
    leaderHttp: typeof leaderHttp === "string" && leaderHttp !== "" ? leaderHttp : null,
    commitIndex: numberField(body, "commitIndex", response),
    appliedIndex: numberField(body, "appliedIndex", response),
    members,
  };
}

// A minimal client of the node's HTTP API (docs/http-api.md): one keep-alive undici Pool per
// endpoint, typed errors, and failover to the next endpoint when a node cannot be reached or
// knows no leader. The load-balancing SDK (issue 5) builds on this; it deliberately has no
// policy beyond "stick to the endpoint that last worked".
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";
import { assert } from "../core/common/assert.js";
import { InvalidInputError, SynodError } from "../core/common/errors.js";
import { ConnectionError, NoLeaderError, NotMemberError, TimeoutError, UnavailableError } from "./errors.js";
import { asObject, decodeKeyValue, decodeStatus, decodeTxnResult, encodeKeyPath, errorFor, invalidResponse, isKeyNotFound, jsonObject, normalizeEndpoint, numberField, withQuery, type ApiResponse, type Consistency, type KeyValue, type NodeStatus, type RangeResult, type TxnRequest, type TxnResponse } from "./api.js";
export { CONSISTENCIES, decodeUtf8Strict, encodeKeyPath, keyValueToJson, parseRetryAfterMs, type CompareOperator, type Consistency, type KeyValue, type MemberInfo, type NodeStatus, type RangeResult, type TxnCompare, type TxnOperation, type TxnRequest, type TxnResponse, type TxnResult } from "./api.js";

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

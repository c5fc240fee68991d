// One HTTP exchange with one node: a keep-alive undici Pool per endpoint, the socket's
// failures mapped to the client's errors. No policy (retries, routing, timeouts beyond a
// backstop): the Client and the router decide those.
import { Pool } from "undici";
import { assert } from "../core/common/assert.js";
import { SynodError } from "../core/common/errors.js";
import type { ApiResponse } from "./api.js";
import { ConnectionError, TimeoutError } from "./errors.js";

export interface TransportRequest {
  readonly method: "GET" | "PUT" | "DELETE" | "POST";
  /** Path and query, already encoded. */
  readonly path: string;
  readonly body?: Uint8Array | string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface TransportOptions {
  /** Keep-alive connections per endpoint, 1..1024. */
  readonly connectionsPerEndpoint: number;
  /** How long connecting may take, in ms. */
  readonly connectTimeoutMs: number;
  /** A backstop on waiting for the answer's headers and body, in ms; callers abort sooner with their signal. */
  readonly answerTimeoutMs: number;
  /** The largest response body accepted, in bytes. */
  readonly responseBytesMax: number;
  /** For https:// endpoints: the CA to trust and a client certificate (ClientOptions.tls). */
  readonly tls?: ClientTls;
  /** An Authorization header sent with every request (ClientOptions.auth). */
  readonly authorization?: string;
}

/**
 * TLS for https:// endpoints. `ca`: the CA certificates to trust instead of the system's
 * (a cluster made by `synod cluster --tls` has its own: `<data-dir>/tls/ca.pem`); `cert` and
 * `key`: a client certificate, for servers that ask for one. PEM text or bytes.
 */
export interface ClientTls {
  readonly ca?: string | Uint8Array;
  readonly cert?: string | Uint8Array;
  readonly key?: string | Uint8Array;
}

/** undici's connect options for `tls`. */
export function tlsConnectOptions(tls: ClientTls | undefined): { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer } {
  if (tls === undefined) return {};
  const pem = (value: string | Uint8Array): string | Buffer => (typeof value === "string" ? value : Buffer.from(value));
  return {
    ...(tls.ca === undefined ? {} : { ca: pem(tls.ca) }),
    ...(tls.cert === undefined ? {} : { cert: pem(tls.cert) }),
    ...(tls.key === undefined ? {} : { key: pem(tls.key) }),
  };
}

/** Socket error codes meaning the connection was never established, so nothing was sent. */
const NOT_CONNECTED_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EADDRNOTAVAIL", "UND_ERR_CONNECT_TIMEOUT"]);
/** Codes a socket can also report after it connected (and sent): they mean "never connected" only from `connect`. */
const UNREACHABLE_CODES = new Set(["EHOSTUNREACH", "ENETUNREACH"]);
const ANSWER_TIMEOUT_CODES = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);
/** undici's codes for misuse (bad arguments, a closed pool): bugs, passed on unchanged. */
const PROGRAMMING_ERROR_CODES = new Set(["UND_ERR_INVALID_ARG", "UND_ERR_CLOSED", "UND_ERR_DESTROYED", "UND_ERR_NOT_SUPPORTED"]);
/** Distinct origins a transport keeps pools for (its endpoints, and any `status(url)` asked); a bound on a map that callers fill. */
const POOLS_MAX = 10_000;

/** Pools per origin, made on first use and kept until `close`. */
export class HttpTransport {
  private readonly pools = new Map<string, Pool>();
  private closed = false;

  constructor(private readonly options: TransportOptions) {}

  /**
   * One exchange with `endpoint` (a normalized origin). Resolves with any answer, error
   * statuses included. When `signal` aborts, rejects with `signal.reason` (the caller's own
   * error); otherwise with ConnectionError (`requestSent` false only when no connection was
   * made), TimeoutError (the backstop) or a SynodError `response_too_large`.
   */
  async send(endpoint: string, request: TransportRequest, signal: AbortSignal): Promise<ApiResponse> {
    assert(!this.closed, "the transport is closed");
    const pool = this.pool(endpoint);
    let answered = false;
    try {
      const response = await pool.request({
        signal,
        method: request.method,
        path: request.path,
        body: request.body ?? null,
        headers: this.options.authorization === undefined ? (request.headers ?? {}) : { authorization: this.options.authorization, ...request.headers },
        headersTimeout: this.options.answerTimeoutMs,
        bodyTimeout: this.options.answerTimeoutMs,
      });
      answered = true;
      const body = new Uint8Array(await response.body.arrayBuffer());
      return { endpoint, status: response.statusCode, headers: response.headers, body };
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw classifySocketError(error, endpoint, request, answered);
    }
  }

  /** Closes every connection at once (requests still running fail). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.pools.values()].map((pool) => pool.destroy()));
  }

  private pool(endpoint: string): Pool {
    let pool = this.pools.get(endpoint);
    if (pool === undefined) {
      assert(this.pools.size < POOLS_MAX, `at most ${POOLS_MAX} distinct endpoints`);
      const { connectionsPerEndpoint, connectTimeoutMs, responseBytesMax, tls } = this.options;
      pool = new Pool(endpoint, { connections: connectionsPerEndpoint, connect: { timeout: connectTimeoutMs, ...tlsConnectOptions(tls) }, maxResponseSize: responseBytesMax });
      this.pools.set(endpoint, pool);
    }
    return pool;
  }
}

function describe(endpoint: string, request: TransportRequest): string {
  return `${request.method} ${endpoint}${request.path.split("?")[0] ?? ""}`;
}

/** Maps a failed exchange to the client's errors; `answered`: the response headers had arrived. */
function classifySocketError(error: unknown, endpoint: string, request: TransportRequest, answered: boolean): unknown {
  const code = errorCode(error);
  const what = describe(endpoint, request);
  if (code === "UND_ERR_RES_EXCEEDED_MAX_SIZE") {
    return new SynodError("response_too_large", `${what}: the answer is larger than responseBytesMax`, { cause: error });
  }
  if (code !== undefined && ANSWER_TIMEOUT_CODES.has(code)) {
    return new TimeoutError({ message: `${what}: no answer in time; a write may or may not have been applied`, endpoint, status: null, retryAfterMs: null, outcomeUnknown: request.method !== "GET", cause: error });
  }
  if (error instanceof Error && (code === undefined || !PROGRAMMING_ERROR_CODES.has(code))) {
    const requestSent = answered || !neverConnected(error);
    return new ConnectionError({ message: `${what}: ${code ?? error.message}${requestSent ? " (the connection broke during the request)" : " (cannot connect)"}`, endpoint, requestSent, cause: error });
  }
  return error;
}

/** The system or undici error code of a failed exchange (looking inside aggregate errors and causes). */
export function errorCode(error: unknown): string | undefined {
  return errorField(error, "code");
}

/** Whether an exchange that failed with `error` never reached the node (so it applied nothing). */
export function neverConnected(error: unknown): boolean {
  const code = errorCode(error);
  if (code === undefined) return false;
  return NOT_CONNECTED_CODES.has(code) || (UNREACHABLE_CODES.has(code) && errorField(error, "syscall") === "connect");
}

/** A string field of a failed exchange's error, or of the first part of an aggregate error, or of its cause. */
function errorField(error: unknown, name: "code" | "syscall"): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const value = (error as Record<string, unknown>)[name];
  if (typeof value === "string") return value;
  // Node reports "connection refused to every address" as an AggregateError whose parts carry the code.
  const errors = (error as { errors?: unknown }).errors;
  if (Array.isArray(errors)) return errorField(errors[0], name);
  const cause = (error as { cause?: unknown }).cause;
  return cause === undefined ? undefined : errorField(cause, name);
}

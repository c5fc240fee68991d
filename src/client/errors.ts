import { SynodError } from "../core/common/errors.js";

/**
 * Errors of the HTTP client. Every failure a caller handles is one of these classes, so a
 * caller decides with `instanceof` (retry elsewhere, back off, fix the request) and never by
 * parsing a message. Each carries the endpoint that produced it.
 */

/** A node answered with an error status; `code` is the body's `error` (docs/http-api.md). */
export class HttpApiError extends SynodError {
  /** The HTTP status, 400..599. */
  readonly status: number;
  /** The endpoint (origin) that answered, e.g. `http://127.0.0.1:7001`. */
  readonly endpoint: string;
  constructor(options: { status: number; code: string; message: string; endpoint: string; cause?: unknown }) {
    super(options.code, options.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "HttpApiError";
    this.status = options.status;
    this.endpoint = options.endpoint;
  }
}

/** 409 `compare_failed`: a compare-and-set whose compare did not hold; nothing was written. */
export class CompareFailedError extends HttpApiError {
  /** The key's current revision as the store reported it (0: the key does not exist), or null if the answer did not say. */
  readonly revision: number | null;
  constructor(options: { message: string; endpoint: string; revision: number | null }) {
    super({ status: 409, code: "compare_failed", message: options.message, endpoint: options.endpoint });
    this.name = "CompareFailedError";
    this.revision = options.revision;
  }
}

/**
 * 503: the node cannot serve the request now (`overloaded`, or any 503 without a more
 * specific class). The request was not applied; retrying after `retryAfterMs` is safe.
 */
export class UnavailableError extends HttpApiError {
  /** From the `Retry-After` header, in milliseconds; null when the node did not say. */
  readonly retryAfterMs: number | null;
  constructor(options: { code: string; message: string; endpoint: string; retryAfterMs: number | null }) {
    super({ status: 503, code: options.code, message: options.message, endpoint: options.endpoint });
    this.name = "UnavailableError";
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** 503 `no_leader`: an election is running; the request was not applied. */
export class NoLeaderError extends UnavailableError {
  constructor(options: { message: string; endpoint: string; retryAfterMs: number | null }) {
    super({ code: "no_leader", ...options });
    this.name = "NoLeaderError";
  }
}

/**
 * 503 `not_member`: the node asked is not in the cluster's configuration (it was removed,
 * or has not been added yet); the request was not applied, and another member may take it.
 */
export class NotMemberError extends UnavailableError {
  constructor(options: { message: string; endpoint: string; retryAfterMs: number | null }) {
    super({ code: "not_member", ...options });
    this.name = "NotMemberError";
  }
}

/**
 * The request did not complete in time: either the node said so (503 `timeout`, `status`
 * 503) or no answer came within the client's `requestTimeoutMs` (`status` null). A write
 * may or may not have been applied, so the client never retries one after a timeout.
 */
export class TimeoutError extends SynodError {
  readonly endpoint: string;
  /** 503 when the node answered `timeout`; null when the client gave up waiting. */
  readonly status: 503 | null;
  readonly retryAfterMs: number | null;
  constructor(options: { message: string; endpoint: string; status: 503 | null; retryAfterMs: number | null; cause?: unknown }) {
    super("timeout", options.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TimeoutError";
    this.endpoint = options.endpoint;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/**
 * No HTTP answer: the connection was refused, reset or failed. `requestSent` says whether
 * the request may have reached the node: false when the connection was never established
 * (safe to send elsewhere), true when it broke during the exchange (a write's outcome is
 * then unknown). `cause` is the underlying socket error.
 */
export class ConnectionError extends SynodError {
  readonly endpoint: string;
  readonly requestSent: boolean;
  constructor(options: { message: string; endpoint: string; requestSent: boolean; cause: unknown }) {
    super("connection_failed", options.message, { cause: options.cause });
    this.name = "ConnectionError";
    this.endpoint = options.endpoint;
    this.requestSent = options.requestSent;
  }
}

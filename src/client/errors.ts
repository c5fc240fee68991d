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

/**
 * 503 `no_quorum` or `no_leader`: the node knows no leader. `no_quorum`: it cannot reach a
 * majority of the voters, so none can be elected until enough of them are back (`unreachable`
 * names the ones it cannot reach); `no_leader`: it reaches a majority and an election is
 * under way. The request was not applied; another attempt, on any node (one on the majority
 * side of a partition), may succeed.
 */
export class NoQuorumError extends UnavailableError {
  /** The voters the answering node could not reach (empty when it did not say). */
  readonly unreachable: readonly number[];
  constructor(options: { message: string; endpoint: string; retryAfterMs: number | null; code?: "no_leader" | "no_quorum"; unreachable?: readonly number[] }) {
    super({ code: options.code ?? "no_leader", message: options.message, endpoint: options.endpoint, retryAfterMs: options.retryAfterMs });
    this.name = "NoQuorumError";
    this.unreachable = options.unreachable ?? [];
  }
}

/** The earlier name of `NoQuorumError`, kept so existing `instanceof NoLeaderError` checks hold. */
export const NoLeaderError = NoQuorumError;
export type NoLeaderError = NoQuorumError;

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
 * The request did not complete in time: the node said so (503 `timeout`, `status` 503), no
 * answer came within the client's attempt timeout, or the call's `timeoutMs` ran out
 * (`status` null; `endpoint` null when it ran out before any attempt). `outcomeUnknown` is
 * true for a write that may have been applied (it reached a node, and no answer said it
 * was not): read the key before writing it again, or use a session (the `Client`'s default).
 */
export class TimeoutError extends SynodError {
  readonly endpoint: string | null;
  /** 503 when the node answered `timeout`; null when the client gave up waiting. */
  readonly status: 503 | null;
  readonly retryAfterMs: number | null;
  readonly outcomeUnknown: boolean;
  constructor(options: { message: string; endpoint: string | null; status: 503 | null; retryAfterMs: number | null; outcomeUnknown?: boolean; cause?: unknown }) {
    super("timeout", options.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TimeoutError";
    this.endpoint = options.endpoint;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
    this.outcomeUnknown = options.outcomeUnknown ?? false;
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

/**
 * 410 `session_expired`: the cluster no longer holds the write's client session (it expired
 * after an hour unused, or was dropped to make room). Nothing was applied. The `Client`
 * opens a new session and sends the write again by itself; this reaches the caller only
 * when that kept failing (`SESSION_REOPENS_MAX` times in a row).
 */
export class SessionExpiredError extends HttpApiError {
  constructor(options: { message: string; endpoint: string }) {
    super({ status: 410, code: "session_expired", message: options.message, endpoint: options.endpoint });
    this.name = "SessionExpiredError";
  }
}

/**
 * 409 `range_mismatch`: a write in a client session named a range (where its session is)
 * that does not own its key: the client's view of the cluster's ranges is stale, or it had
 * none. Nothing was applied. The `Client` reads the ranges (`GET /v1/shards`) and sends the
 * write again by itself, in a session of the right range; this reaches the caller only when
 * that kept failing.
 */
export class RangeMismatchError extends HttpApiError {
  /** The range that owns the key, as the node said; null if it did not. */
  readonly range: { readonly id: number; readonly start: string; readonly end: string | null; readonly epoch: number } | null;
  constructor(options: { message: string; endpoint: string; range: RangeMismatchError["range"] }) {
    super({ status: 409, code: "range_mismatch", message: options.message, endpoint: options.endpoint });
    this.name = "RangeMismatchError";
    this.range = options.range;
  }
}

/**
 * 410 `compacted`: a read at, or a watch from, a revision below the cluster's compaction
 * point; that history is gone. Read at `compactRevision` or later, or read the current state
 * and watch from its revision + 1.
 */
export class CompactedError extends HttpApiError {
  /** The oldest revision the cluster still holds, as the node said; null if it did not. */
  readonly compactRevision: number | null;
  constructor(options: { message: string; endpoint: string; compactRevision: number | null }) {
    super({ status: 410, code: "compacted", message: options.message, endpoint: options.endpoint });
    this.name = "CompactedError";
    this.compactRevision = options.compactRevision;
  }
}

/**
 * 409 `sequence_superseded`: a write in a session whose sequence is older than the session's
 * latest. The cluster keeps only the latest write's answer, so this one's is no longer
 * known (it may have been applied when it was first sent); nothing was applied now. It
 * means two writers share a session, or a copy arrived very late: sending it again cannot
 * succeed. The `Client` numbers its own writes and does not cause it.
 */
export class SequenceSupersededError extends HttpApiError {
  /** The session, the write's sequence and the session's latest, as the node reported them (null if it did not). */
  readonly session: number | null;
  readonly sequence: number | null;
  readonly latestSequence: number | null;
  constructor(options: { message: string; endpoint: string; session: number | null; sequence: number | null; latestSequence: number | null }) {
    super({ status: 409, code: "sequence_superseded", message: options.message, endpoint: options.endpoint });
    this.name = "SequenceSupersededError";
    this.session = options.session;
    this.sequence = options.sequence;
    this.latestSequence = options.latestSequence;
  }
}

/** The `Client` already holds `queueMax` calls waiting for a slot; this one was refused at once, and nothing was sent. */
export class QueueFullError extends SynodError {
  readonly queueMax: number;
  constructor(queueMax: number) {
    super("queue_full", `the client's queue is full (${queueMax} calls wait for one of its slots); slow down, or raise concurrency or queueMax`);
    this.name = "QueueFullError";
    this.queueMax = queueMax;
  }
}

/**
 * The call's `AbortSignal` fired (its reason is `cause`). A synod error rather than the DOM
 * `AbortError`, so it carries `outcomeUnknown`: true when it was a write that had already
 * reached a node (it may have been applied); false when nothing was sent or it was a read.
 */
export class AbortedError extends SynodError {
  readonly outcomeUnknown: boolean;
  constructor(options: { message: string; outcomeUnknown: boolean; cause: unknown }) {
    super("aborted", options.message, { cause: options.cause });
    this.name = "AbortedError";
    this.outcomeUnknown = options.outcomeUnknown;
  }
}

/** The `Client` was closed before the call completed (`outcomeUnknown` as for `AbortedError`), or a call came after `close`. */
export class ClientClosedError extends SynodError {
  readonly outcomeUnknown: boolean;
  constructor(options: { message?: string; outcomeUnknown?: boolean } = {}) {
    super("client_closed", options.message ?? "the client is closed");
    this.name = "ClientClosedError";
    this.outcomeUnknown = options.outcomeUnknown ?? false;
  }
}

/**
 * No endpoint to send to: every one is out of rotation and the balancer does not panic
 * (`panicThresholdPercent` 0). Nothing was sent.
 */
export class NoEndpointError extends SynodError {
  constructor(message = "no endpoint is available (every one is unhealthy or ejected)") {
    super("no_endpoint", message);
    this.name = "NoEndpointError";
  }
}

/**
 * 404 `lease_not_found`: the lease a call named does not exist: it was never granted, or it
 * expired or was revoked (its keys went with it). Nothing was written. Grant a new one.
 */
export class LeaseNotFoundError extends HttpApiError {
  /** The lease's id, as the node reported it (null if it did not). */
  readonly id: number | null;
  constructor(options: { message: string; endpoint: string; id: number | null }) {
    super({ status: 404, code: "lease_not_found", message: options.message, endpoint: options.endpoint });
    this.name = "LeaseNotFoundError";
    this.id = options.id;
  }
}

/**
 * What a `Lease`'s `lost` resolves with: the lease is gone, or may be, and its holder must
 * act as if it were (stop what it did under it). `reason` says which: "expired" (the cluster
 * said it no longer exists), "unrenewed" (no keep-alive was acknowledged within its time to
 * live, so it may have expired) or "closed" (the client was closed).
 */
export class LeaseLostError extends SynodError {
  readonly id: number;
  readonly reason: "expired" | "unrenewed" | "closed";
  constructor(options: { id: number; reason: "expired" | "unrenewed" | "closed"; message: string; cause?: unknown }) {
    super("lease_lost", options.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "LeaseLostError";
    this.id = options.id;
    this.reason = options.reason;
  }
}

/**
 * `Client.transaction` gave up after `attempts` runs of its function: each time, another
 * writer changed a key it had read before it could commit (or a transaction across ranges
 * held one of its keys). Nothing was written. `cause` is the last conflict: an
 * HttpApiError `txn_aborted` or `txn_locked`, or none when the reads' compares failed. Run
 * it again later, with more `retries`, or make the transactions touch fewer of the same keys.
 */
export class TransactionConflictError extends SynodError {
  readonly attempts: number;
  constructor(options: { attempts: number; message: string; cause?: unknown }) {
    super("transaction_conflict", options.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TransactionConflictError";
    this.attempts = options.attempts;
  }
}

/**
 * A `Transaction` (the `tx` of `Client.transaction`) was used after its attempt ended: its
 * function had returned or thrown, or the attempt was over. A `tx` serves one run of the
 * function only; keeping it (in a closure, a timer, another transaction) is a bug.
 */
export class TransactionFinishedError extends SynodError {
  constructor(message: string) {
    super("transaction_finished", message);
    this.name = "TransactionFinishedError";
  }
}

/**
 * How errors become HTTP answers (docs/http-api.md, "Errors"): the typed errors of the
 * engines, the replica, the store and the node each map to one status and `error` code,
 * whose message says whether anything was applied and what to do. An error nothing here
 * knows is a bug: a 500 `internal`, logged with its detail.
 */
import { InvalidInputError, MembershipChangeInProgressError, NotLeaderError, NotMemberError, OverloadedError, SynodError } from "../../core/common/errors.js";
import { CompactedError, FutureRevisionError, type KvResult } from "../../core/kv/store.js";
import { LeaderChangedError, RequestTimeoutError, StoppedError, TooManyRequestsError, TransferOvertakenError, TransferTimeoutError, WriteOutcomeUnknownError } from "./driver.js";
import { TxnAbortedError } from "./cross-range-txn.js";
import { NoSpaceError } from "./disk-guard.js";
import type { KvService, QuorumView } from "./http-api.js";
import { leaseNotFound } from "./lease-routes.js";
import { MoveRefusedError } from "./range-placement.js";
import { CrossRangeError, RangeMismatchError, RangeNotFoundError, RangeNotHostedError, RangeNotReadyError, TxnLockedError } from "./range-routing.js";
import { WatchCanceledError } from "./watch.js";

/** A 413: the request is larger than a limit. */
export class TooLargeError extends SynodError {
  constructor(message: string) {
    super("too_large", message);
    this.name = "TooLargeError";
  }
}

export class HttpError extends SynodError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    /** More fields of the error's JSON body, beside `error` and `message`. */
    readonly fields: Record<string, unknown> = {},
  ) {
    super(code, message);
    this.name = "HttpError";
  }
}

export function unexpectedResult(result: KvResult): Error {
  if (result.op === "lease-not-found") return leaseNotFound(result.id);
  if (result.op === "session-expired") {
    return new HttpError(410, "session_expired", `session ${result.clientId} expired or was never opened; nothing was applied: open a new one (POST /v1/sessions) and retry`);
  }
  if (result.op === "superseded") {
    // A conflict with the session's state, not a malformed request: the same request was
    // fine when first sent. Sending it again can never succeed, so it is not a 503.
    return new HttpError(
      409,
      "sequence_superseded",
      `sequence ${result.sequence} of session ${result.clientId} is older than the session's latest (${result.latestSequence}). ` +
        "A session keeps the answer to its latest write only, so this write's outcome is no longer known here (it may have been applied when first sent); nothing was applied now. " +
        `Write one at a time per session: the next write is sequence ${result.latestSequence + 1}`,
      {},
      { session: result.clientId, sequence: result.sequence, latestSequence: result.latestSequence },
    );
  }
  if (result.op === "range-mismatch") {
    return new HttpError(409, "range_mismatch", `key ${JSON.stringify(result.key)} is not in this range any more (the ranges changed after the request was routed); nothing was applied: read the ranges again (GET /v1/shards) and send it to the range that owns the key`, {}, { key: result.key });
  }
  if (result.op === "txn-locked") {
    // A transaction across ranges holds the key for a moment (prepare to resolve): retry.
    return new HttpError(503, "txn_locked", `key ${JSON.stringify(result.key)} is held by a transaction across ranges in flight (${result.txn}); nothing was applied: retry shortly`, { "retry-after": "1" }, { key: result.key });
  }
  if (result.op === "rejected") return new HttpError(503, "overloaded", `the write was not applied: ${result.reason}; retry`, { "retry-after": "1" });
  return new Error(`unexpected result ${result.op}`);
}

/** The answer to a request that failed with `error`. */
export function toHttpError(error: unknown, service: Pick<KvService, "quorum" | "logError">): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof TooLargeError) return new HttpError(413, error.code, error.message);
  if (error instanceof InvalidInputError) return new HttpError(400, error.code, error.message);
  if (error instanceof CompactedError) return new HttpError(410, error.code, error.message, {}, { compactRevision: error.compactRevision });
  if (error instanceof FutureRevisionError) return new HttpError(400, error.code, error.message, {}, { revision: error.currentRevision });
  if (error instanceof WatchCanceledError) return new HttpError(503, error.code, error.message, { "retry-after": "1" });
  if (error instanceof NotMemberError) return new HttpError(503, error.code, error.message);
  if (error instanceof NotLeaderError && error.leaderHint === null) return noLeaderError(service.quorum());
  if (error instanceof NotLeaderError || error instanceof LeaderChangedError || error instanceof StoppedError) return new HttpError(503, "no_leader", error.message, { "retry-after": "1" });
  if (error instanceof OverloadedError || error instanceof TooManyRequestsError) return new HttpError(503, "overloaded", error.message, { "retry-after": "1" });
  if (error instanceof NoSpaceError) return new HttpError(507, error.code, error.message);
  if (error instanceof CrossRangeError) return new HttpError(400, error.code, error.message, {}, { ranges: error.ranges });
  if (error instanceof RangeMismatchError) return new HttpError(409, error.code, error.message, {}, { range: error.current });
  if (error instanceof RangeNotHostedError) return new HttpError(503, error.code, error.message, { "retry-after": "1" }, { range: error.range });
  if (error instanceof TxnLockedError) return new HttpError(503, error.code, error.message, { "retry-after": "1" }, { key: error.key });
  if (error instanceof TxnAbortedError) return new HttpError(409, "txn_aborted", error.message, {}, { txn: error.txn });
  if (error instanceof RangeNotFoundError) return error.unheard ? new HttpError(503, error.code, error.message, { "retry-after": "1" }, { range: error.range }) : new HttpError(404, error.code, error.message);
  if (error instanceof RangeNotReadyError) return new HttpError(503, error.code, error.message, { "retry-after": "1" }, { range: error.range });
  if (error instanceof TransferOvertakenError) return new HttpError(503, error.code, error.message, { "retry-after": "1" });
  if (error instanceof MoveRefusedError) return new HttpError(409, error.code, error.message);
  if (error instanceof MembershipChangeInProgressError) return new HttpError(409, error.code, error.message, { "retry-after": "1" });
  if (error instanceof RequestTimeoutError || error instanceof WriteOutcomeUnknownError || error instanceof TransferTimeoutError) return new HttpError(503, error.code, error.message, { "retry-after": "1" });
  service.logError(error, "request failed unexpectedly");
  return new HttpError(500, "internal", "internal error; see the node's log");
}

/**
 * No leader is known. Without a majority of the voters connected none can be elected, and
 * the answer says which voters this node cannot reach (`no_quorum`); with one, an election
 * is under way and ends shortly (`no_leader`). Either way the request was not taken.
 */
export function noLeaderError(view: QuorumView): HttpError {
  const unreachable = view.voters.filter((id) => !view.reachable.includes(id));
  const reach = `this node reaches ${view.reachable.length} of ${view.voters.length} voters`;
  const fields = { voters: view.voters, unreachable };
  if (!view.quorum) {
    const message =
      `no leader, and none can be elected: ${reach}, not a majority; unreachable: ${unreachable.join(", ")}. ` +
      "Nothing was applied. Writes and linearizable reads wait until a majority of the voters is up and connected: restart or reconnect the unreachable ones";
    return new HttpError(503, "no_quorum", message, { "retry-after": "1" }, fields);
  }
  return new HttpError(503, "no_leader", `no leader is known: an election is under way (${reach}); nothing was applied; retry shortly`, { "retry-after": "1" }, fields);
}

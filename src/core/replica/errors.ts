/**
 * How a request waiting on a replica can fail, besides the engine's own refusals
 * (NotLeaderError, OverloadedError, MembershipChangeInProgressError, InvalidInputError).
 * Each says whether the request may still take effect: a caller retries a write blindly
 * only when it certainly did not.
 */
import { SynodError } from "../common/errors.js";

/** The request did not complete within the replica's request timeout. */
export class RequestTimeoutError extends SynodError {
  constructor(what: "write" | "read" | "membership change", timeoutMs: number) {
    super(
      "timeout",
      what === "write"
        ? `the write did not complete within ${timeoutMs} ms; it may or may not have been applied (check before retrying a non-idempotent write)`
        : what === "read"
          ? `the read could not be confirmed within ${timeoutMs} ms`
          : `the membership change did not complete within ${timeoutMs} ms; it may still take effect (check GET /v1/members before retrying)`,
    );
    this.name = "RequestTimeoutError";
  }
}

/** A read's leader changed before it confirmed the read (or a change's entry was overwritten); a retry finds the new one. */
export class LeaderChangedError extends SynodError {
  constructor() {
    super("no_leader", "the leader changed while the request waited for it; retry");
    this.name = "LeaderChangedError";
  }
}

/** Too many requests wait already; the client should back off. Nothing was proposed. */
export class TooManyRequestsError extends SynodError {
  constructor(limit: number) {
    super("overloaded", `${limit} requests are waiting already; retry later`);
    this.name = "TooManyRequestsError";
  }
}

/** A leadership transfer did not complete in time; this node still leads. */
export class TransferTimeoutError extends SynodError {
  constructor(timeoutMs: number) {
    super("timeout", `leadership did not move within ${timeoutMs} ms (the target may be down or cut off); this node still leads`);
    this.name = "TransferTimeoutError";
  }
}

/** Leadership went elsewhere than asked (an election overtook the transfer). */
export class TransferOvertakenError extends SynodError {
  constructor(target: number, leader: number) {
    super("transfer_overtaken", `leadership went to node ${leader}, not to node ${target}: an election overtook the transfer`);
    this.name = "TransferOvertakenError";
  }
}

/** A proposed write could not be followed to its end; it may or may not apply. */
export class WriteOutcomeUnknownError extends SynodError {
  constructor(why: string) {
    super("timeout", `${why}; it may or may not have been applied (check before retrying a non-idempotent write)`);
    this.name = "WriteOutcomeUnknownError";
  }
}

/** The replica is stopping (or stopped); the request was not taken. */
export class StoppedError extends SynodError {
  constructor() {
    super("no_leader", "the node is stopping");
    this.name = "StoppedError";
  }
}

/**
 * Operating errors: expected conditions a caller handles (retry elsewhere, back off, fix the
 * request). Each is a named class carrying what the caller needs, e.g. the leader's id.
 */
export class SynodError extends Error {
  /** A stable machine-readable code, used in HTTP error bodies: `{"error": code}`. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SynodError";
    this.code = code;
  }
}

/** This node cannot order the request; `leaderHint` is the leader it believes in, if any. */
export class NotLeaderError extends SynodError {
  readonly leaderHint: number | null;
  constructor(leaderHint: number | null, options?: { cause?: unknown }, code = "not_leader", message = leaderHint === null ? "no known leader" : `not the leader; try node ${leaderHint}`) {
    super(code, message, options);
    this.name = "NotLeaderError";
    this.leaderHint = leaderHint;
  }
}

/**
 * This node is outside the cluster's configuration (removed, or not yet added), so it
 * cannot learn what happens to a request: send it to a member. A NotLeaderError, so callers
 * that follow the leader hint need nothing new.
 */
export class NotMemberError extends NotLeaderError {
  constructor(leaderHint: number | null) {
    super(leaderHint, undefined, "not_member", "this node is not a member of the cluster's configuration (removed, or not yet added); send requests to a member");
    this.name = "NotMemberError";
  }
}

/** The engine refuses new work until what it already holds drains (a bound was reached). */
export class OverloadedError extends SynodError {
  constructor(what: string) {
    super("overloaded", `overloaded: ${what}`);
    this.name = "OverloadedError";
  }
}

/** Malformed input: a command or message that does not decode. */
export class InvalidInputError extends SynodError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("invalid_input", message, options);
    this.name = "InvalidInputError";
  }
}

/**
 * A configuration change was refused because an earlier one has not committed (or the
 * leader has not yet committed an entry of its term): retry once it has.
 */
export class MembershipChangeInProgressError extends SynodError {
  constructor(what: string) {
    super("membership_change_in_progress", what);
    this.name = "MembershipChangeInProgressError";
  }
}

/**
 * A short rendering of an untrusted value (decoded from a peer's bytes) for an error
 * message. It never throws, unlike JSON.stringify on a BigInt or a cycle, and cuts long
 * strings short, so that describing bad input cannot become a failure of its own.
 */
export function describeUntrusted(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value);
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint" || value === null || value === undefined) return String(value);
  return Array.isArray(value) ? "a list" : `a value of type ${typeof value}`;
}

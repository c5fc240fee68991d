// How the Client carries out one call: a slot (Admission), a session lane for a write (its
// session opened first, opened anew after a 410), then attempts on the endpoints the router
// picks, each bounded by the attempt timeout, and retries after a full-jitter backoff under
// the retry budget for as long as the last failure allows (`assess`): a write outside a
// session only when it surely was not applied. Its counters are most of `Client.stats()`.
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { Prng } from "../core/common/prng.js";
import { backoffMs, type BackoffOptions, type RetryBudget } from "../core/balance/retry.js";
import type { Admission } from "./admission.js";
import { decodeRangeLeaders, decodeSessionAnswer, decodeShardsAnswer, errorFor, type ApiResponse, type Consistency } from "./api.js";
import type { RangeTable } from "../core/multi/ranges.js";
import { CallContext, CallEnded } from "./call.js";
import type { ClientStats } from "./client.js";
import { ClientClosedError, ConnectionError, HttpApiError, NoEndpointError, NoQuorumError, RangeMismatchError, SessionExpiredError, TimeoutError, UnavailableError } from "./errors.js";
import { integerOption, TIMEOUT_MS_MAX, type CallOptions } from "./options.js";
import type { ClusterRouter, RouterEndpoint } from "./router.js";
import type { SessionLane, SessionLanes } from "./sessions.js";
import type { HttpTransport, TransportRequest } from "./transport.js";

/** What one call sends and how it may be retried. */
export interface CallSpec {
  readonly kind: "read" | "write";
  /** For messages: `PUT key`. */
  readonly what: string;
  readonly request: TransportRequest;
  readonly consistency?: Consistency;
  /** Reaches the hash strategy. */
  readonly key?: string;
  /** A write's key whose range its session must be in (a sharded cluster's sessions are per range); absent: the first range. */
  readonly rangeKey?: string;
  /** This endpoint only: one attempt, no routing. */
  readonly endpoint?: string;
  /** An error status that is an answer (404 key_not_found for a get). */
  readonly accept?: (response: ApiResponse) => boolean;
  /** Safe to send again although a write outside a session (opening a session: a duplicate only leaves an unused session). */
  readonly retrySafe?: boolean;
  /** False: never in a session (opening one; a transaction across ranges; a compaction). */
  readonly inSession?: boolean;
  /** Opening a session: not the caller's write (a duplicate only leaves an unused session), so it never makes an outcome unknown. */
  readonly opensSession?: boolean;
}

interface Verdict {
  /** Another attempt may go ahead. */
  readonly retry: boolean;
  /** The write may have been applied. */
  readonly maybeApplied: boolean;
  /** The endpoint is in trouble (a failure for health), not just answering. */
  readonly endpointFailed: boolean;
}

/** How old the client's view of each range's leader may grow before it is read again (in the background). */
export const RANGE_LEADERS_TTL_MS = 5000;

/** A write answered 409 range_mismatch reads the cluster's ranges and goes again at most this many times. */
export const RANGE_REFRESHES_MAX = 3;
/** A write answered 410 opens a new session and goes again at most this many times in a row. */
export const SESSION_REOPENS_MAX = 3;
/**
 * 503 codes that say the request was not applied (docs/http-api.md): even a write outside a
 * session may go elsewhere. `txn_locked`: a transaction across ranges holds a key the write
 * touches, and the range refused the write without applying it (nor recording it in its
 * session), so sending it again after a pause is safe. `range_not_hosted`, `range_not_ready`:
 * the node asked lacks the range (or has not applied the split that made it) and passed the
 * request to no one.
 */
const NOT_APPLIED_CODES = new Set(["no_leader", "no_quorum", "not_member", "overloaded", "txn_locked", "range_not_hosted", "range_not_ready"]);
/** 503 codes about the request, not the node: answering them is not a failure of the endpoint (counting it would eject a healthy node). */
const NOT_ENDPOINT_FAILURE_CODES = new Set(["no_leader", "txn_locked", "range_not_hosted", "range_not_ready"]);

/** What calls run on: the Client's parts, made from its options (and closed) by the Client. */
export interface CallRunnerParts {
  readonly router: ClusterRouter;
  readonly transport: HttpTransport;
  readonly admission: Admission;
  /** Null when the client's sessions are turned off. */
  readonly lanes: SessionLanes | null;
  readonly budget: RetryBudget;
  /** The client's, which its watches' backoff draws from too. */
  readonly prng: Prng;
  readonly backoff: BackoffOptions;
  readonly attemptsMax: number;
  /** Of reads that do not say theirs. */
  readonly consistency: Consistency;
  /** Of calls that do not say theirs. */
  readonly timeoutMs: number;
  readonly attemptTimeoutMs: number;
  /** Whether the client is closing: a call then rejects at once with ClientClosedError. */
  readonly closed: () => boolean;
}

export class CallRunner {
  private readonly router: ClusterRouter;
  private readonly transport: HttpTransport;
  private readonly admission: Admission;
  private readonly lanes: SessionLanes | null;
  private readonly budget: RetryBudget;
  private readonly prng: Prng;
  private readonly backoff: BackoffOptions;
  private readonly attemptsMax: number;
  private readonly consistency: Consistency;
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly closed: () => boolean;
  private readonly calls = new Set<CallContext>();
  private readonly counters = { calls: 0, retries: 0, callsRetried: 0, retriesDenied: 0, retriesMaybeApplied: 0, outcomeUnknown: 0, sessionsOpened: 0, sessionsExpired: 0, rangeRefreshes: 0 };
  /** The cluster's ranges, once a node said the client needs them (null: not read yet; every write's session is in range 0). */
  private ranges: RangeTable | null = null;
  /** Each range's leader's URL, from the same reads of the ranges: a call on a key goes there first. */
  private rangeLeaders = new Map<number, string>();
  /** When the ranges were last read, and whether a read of them is under way in the background. */
  private rangesReadAtMs = 0;
  private readingRanges = false;

  constructor(parts: CallRunnerParts) {
    this.router = parts.router;
    this.transport = parts.transport;
    this.admission = parts.admission;
    this.lanes = parts.lanes;
    this.budget = parts.budget;
    this.prng = parts.prng;
    this.backoff = parts.backoff;
    this.attemptsMax = parts.attemptsMax;
    this.consistency = parts.consistency;
    this.timeoutMs = parts.timeoutMs;
    this.attemptTimeoutMs = parts.attemptTimeoutMs;
    this.closed = parts.closed;
  }

  /** The calls' share of `Client.stats()`: slots, queue, counters and session lanes. */
  stats(): Omit<ClientStats, "router"> {
    return {
      inFlight: this.admission.active,
      queued: this.admission.queued,
      ...this.counters,
      lanes: this.lanes?.count ?? 0,
    };
  }

  /** At the client's close: calls waiting for a slot reject at once, calls under way end ("closed"). */
  endAll(): void {
    this.admission.rejectAll(new CallEnded("closed"));
    for (const call of this.calls) call.finish("closed");
  }

  /**
   * A write and its answer. The write was applied when its answer came, so an answer that
   * does not decode must not read as "not applied" (a caller would send it again): it is
   * a TimeoutError with `outcomeUnknown`, the decoding error as its cause.
   */
  async writeAndDecode<T>(spec: CallSpec, options: CallOptions, decode: (response: ApiResponse) => T): Promise<T> {
    const response = await this.call(spec, options);
    try {
      return decode(response);
    } catch (error) {
      this.counters.outcomeUnknown += 1;
      const message = `${spec.what}: ${response.endpoint} answered ${response.status}, but the answer could not be read (${(error as Error).message}); the write may have been applied: read before writing again`;
      throw new TimeoutError({ message, endpoint: response.endpoint, status: null, retryAfterMs: null, outcomeUnknown: true, cause: error });
    }
  }

  /** One call: a slot, then its attempts (in a session lane for a write), within its deadline and signal. */
  async call(spec: CallSpec, options: CallOptions): Promise<ApiResponse> {
    if (this.closed()) throw new ClientClosedError();
    const timeoutMs = options.timeoutMs === undefined ? this.timeoutMs : integerOption(options.timeoutMs, this.timeoutMs, "timeoutMs", 1, TIMEOUT_MS_MAX);
    const call = new CallContext(spec.what, timeoutMs, options.signal);
    this.calls.add(call);
    try {
      if (call.end !== null) throw call.failure(false, null, null);
      const waiting = this.admission.acquire(call.signal);
      if (waiting !== null) {
        try {
          await waiting;
        } catch {
          if (call.end === null) call.finish("closed");
          throw call.failure(false, null, null);
        }
      }
      try {
        if (spec.kind === "write" && this.lanes !== null && spec.inSession !== false) return await this.sessionWrite(spec, call, this.lanes);
        return await this.attempts(spec, call, null);
      } finally {
        this.admission.release();
      }
    } finally {
      call.dispose();
      this.calls.delete(call);
      this.counters.calls += 1;
      if (call.retried) this.counters.callsRetried += 1;
    }
  }

  /**
   * A write in a session lane: the lane's session (opened first if it has none) and its next
   * sequence, the same on every retry. A 410 means nothing was applied: a new session, and
   * the same write again as its sequence 1. Whatever the end, the lane's next write takes
   * the next number, so no number is reused while a copy of it may still be on its way.
   */
  private async sessionWrite(spec: CallSpec, call: CallContext, lanes: SessionLanes): Promise<ApiResponse> {
    for (let refreshes = 0; ; refreshes++) {
      const range = spec.rangeKey === undefined || this.ranges === null ? 0 : this.ranges.forKey(spec.rangeKey).id;
      try {
        return await this.laneWrite(spec, call, lanes, range);
      } catch (error) {
        // Nothing was applied: the session was of another range than the key's.
        if (!(error instanceof RangeMismatchError) || refreshes >= RANGE_REFRESHES_MAX) throw error;
        this.counters.rangeRefreshes += 1;
        const readRanges: CallSpec = { kind: "read", what: "read the cluster's ranges", request: { method: "GET", path: "/v1/shards" }, accept: (response) => response.status === 404 };
        this.learnRanges(await this.attempts(readRanges, call, null));
      }
    }
  }

  /** A write in a lane of `range`'s sessions (see `sessionWrite`). */
  private async laneWrite(spec: CallSpec, call: CallContext, lanes: SessionLanes, range: number): Promise<ApiResponse> {
    const lane = lanes.take(range);
    try {
      for (let expiries = 0; ; ) {
        if (lane.session === null) await this.openSession(lane, call);
        const session = lane.session as number;
        const sequence = lane.nextSequence;
        try {
          const response = await this.attempts(spec, call, { session, sequence, range });
          lane.nextSequence = sequence + 1;
          return response;
        } catch (error) {
          if (!(error instanceof SessionExpiredError)) {
            lane.nextSequence = sequence + 1;
            throw error;
          }
          lane.session = null;
          lane.nextSequence = 1;
          this.counters.sessionsExpired += 1;
          expiries += 1;
          if (expiries > SESSION_REOPENS_MAX) throw error;
        }
      }
    } finally {
      lanes.give(lane);
    }
  }

  /** `POST /v1/sessions` for `lane`, within the write's call (its deadline and signal). */
  private async openSession(lane: SessionLane, call: CallContext): Promise<void> {
    const path = lane.range === 0 ? "/v1/sessions" : `/v1/sessions?range=${lane.range}`;
    const spec: CallSpec = { kind: "write", what: "open a session", request: { method: "POST", path }, retrySafe: true, inSession: false, opensSession: true };
    const answer = decodeSessionAnswer(await this.attempts(spec, call, null));
    lane.session = answer.session;
    lane.nextSequence = 1;
    this.counters.sessionsOpened += 1;
  }

  /**
   * Attempts at one request until one is answered, moving to an endpoint not tried yet each
   * time, pausing `backoffMs` before each retry, and giving up at `attemptsMax`, when the
   * budget refuses a retry, or when the attempt's failure does not allow one (see `assess`).
   */
  private async attempts(spec: CallSpec, call: CallContext, ticket: { session: number; sequence: number; range?: number } | null): Promise<ApiResponse> {
    // Whether the caller's write may have been applied is what matters; opening a session is
    // not the caller's write. A write outside a session is: a transaction across ranges, sent
    // again after its answer was lost, would be coordinated a second time, meet the first's
    // locks and be answered "aborted, nothing applied" while the first committed (the bank
    // nemesis caught it when this test read `inSession`).
    const write = spec.kind === "write" && spec.opensSession !== true;
    const retrySafe = !write || ticket !== null || spec.retrySafe === true;
    const ranged = ticket?.range === undefined || ticket.range === 0 ? {} : { "x-synod-range": String(ticket.range) };
    const request = ticket === null ? spec.request : { ...spec.request, headers: { ...spec.request.headers, "x-synod-session": String(ticket.session), "x-synod-sequence": String(ticket.sequence), ...ranged } };
    this.budget.recordRequest(performance.now());
    let tried: Set<string> | null = null;
    let lastError: unknown = null;
    let lastEndpoint: string | null = null;
    let maybeApplied = false;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) await this.pause(attempt - 1, call, write && maybeApplied, lastError, lastEndpoint);
      const endpoint = this.pick(spec, tried);
      lastEndpoint = endpoint.url;
      try {
        const response = await this.attempt(endpoint, spec, request, call, retrySafe);
        this.router.reportSuccess(endpoint.id);
        return response;
      } catch (error) {
        // Ended in flight: a write may have arrived.
        if (error instanceof CallEnded) throw this.ended(call, write, lastError, endpoint.url);
        if (error instanceof SessionExpiredError) {
          this.router.reportSuccess(endpoint.id);
          // The 410 says this attempt applied nothing; an earlier one whose answer was lost
          // may have been applied before the session went. Reopening and resending could
          // apply the write twice: its outcome is unknown.
          if (write && maybeApplied) throw this.giveUp(spec, preferAnswer(lastError, error), true, attempt + 1);
          throw error;
        }
        const verdict = assess(error, write, retrySafe);
        if (verdict.endpointFailed) this.router.reportFailure(endpoint.id);
        else this.router.reportSuccess(endpoint.id);
        if (error instanceof NoQuorumError) this.router.noteLeader(null);
        maybeApplied ||= verdict.maybeApplied;
        lastError = preferAnswer(lastError, error);
        if (!verdict.retry || spec.endpoint !== undefined || attempt + 1 >= this.attemptsMax) throw this.giveUp(spec, lastError, maybeApplied, attempt + 1);
        if (!this.budget.tryRetry(performance.now())) {
          this.counters.retriesDenied += 1;
          throw this.giveUp(spec, lastError, maybeApplied, attempt + 1);
        }
        (tried ??= new Set()).add(endpoint.id);
        this.counters.retries += 1;
        if (write && maybeApplied) this.counters.retriesMaybeApplied += 1;
        call.retried = true;
        if (this.router.leader() === null) this.router.checkSoon();
      }
    }
  }

  /** One attempt on `endpoint`: an answer (error statuses as typed errors unless `spec.accept` takes them), bounded by the attempt timeout. */
  private async attempt(endpoint: RouterEndpoint, spec: CallSpec, request: TransportRequest, call: CallContext, retrySafe: boolean): Promise<ApiResponse> {
    if (call.end !== null) throw call.signal.reason;
    const attemptMs = Math.max(1, Math.ceil(retrySafe ? Math.min(this.attemptTimeoutMs, call.remainingMs()) : call.remainingMs()));
    const controller = new AbortController();
    const timer = setTimeout(() => {
      const message = `${spec.what} on ${endpoint.url}: no answer within attemptTimeoutMs (${this.attemptTimeoutMs} ms)`;
      controller.abort(new TimeoutError({ message, endpoint: endpoint.url, status: null, retryAfterMs: null }));
    }, attemptMs);
    const onCallEnd = (): void => controller.abort(call.signal.reason);
    call.signal.addEventListener("abort", onCallEnd, { once: true });
    // A fixed endpoint (`status(url)`) may be none of the router's.
    const routed = spec.endpoint === undefined;
    if (routed) this.router.onStart(endpoint.id);
    try {
      const response = await this.transport.send(endpoint.url, request, controller.signal);
      if (response.status >= 400 && spec.accept?.(response) !== true) throw errorFor(response);
      return response;
    } finally {
      clearTimeout(timer);
      call.signal.removeEventListener("abort", onCallEnd);
      if (routed) this.router.onFinish(endpoint.id);
    }
  }

  /** The pause before retry `retry` (0-based), cut short (and the call ended) by the call's signal. */
  private async pause(retry: number, call: CallContext, maybeApplied: boolean, lastError: unknown, lastEndpoint: string | null): Promise<void> {
    const pauseMs = backoffMs(retry, this.prng, this.backoff);
    if (pauseMs > 0 && call.end === null) {
      try {
        await sleep(pauseMs, undefined, { signal: call.signal });
      } catch {
        // The call ended while it slept; reported below.
      }
    }
    if (call.end !== null) throw this.ended(call, maybeApplied, lastError, lastEndpoint);
  }

  /** The ranges and their leaders, from an answer of `GET /v1/shards`. */
  private learnRanges(response: ApiResponse): void {
    this.ranges = decodeShardsAnswer(response);
    this.rangeLeaders = decodeRangeLeaders(response);
    this.rangesReadAtMs = performance.now();
  }

  /**
   * The leader of `key`'s range, as the client last read the ranges (null: not sharded, or
   * not known). Read again in the background once RANGE_LEADERS_TTL_MS old: leaderships move,
   * and a call sent to a node that no longer leads is only passed on, never wrong.
   */
  private rangeLeaderOf(key: string | undefined): string | null {
    if (key === undefined || this.ranges === null || this.ranges.size < 2) return null;
    if (performance.now() - this.rangesReadAtMs > RANGE_LEADERS_TTL_MS && !this.readingRanges && !this.closed()) void this.readRangesAside();
    return this.rangeLeaders.get(this.ranges.forKey(key).id) ?? null;
  }

  private async readRangesAside(): Promise<void> {
    const endpoint = this.router.pickForRead("stale");
    if (endpoint === null) return;
    this.readingRanges = true;
    try {
      const response = await this.transport.send(endpoint.url, { method: "GET", path: "/v1/shards" }, AbortSignal.timeout(this.attemptTimeoutMs));
      if (response.status === 200) this.learnRanges(response);
    } catch {
      // The next call tries again; calls go on by the ranges read before.
    } finally {
      this.readingRanges = false;
      this.rangesReadAtMs = Math.max(this.rangesReadAtMs, performance.now() - RANGE_LEADERS_TTL_MS / 2);
    }
  }

  private pick(spec: CallSpec, tried: ReadonlySet<string> | null): RouterEndpoint {
    if (spec.endpoint !== undefined) return { id: spec.endpoint, url: spec.endpoint, weight: 1 };
    const avoid = tried ?? undefined;
    const preferred = this.rangeLeaderOf(spec.rangeKey ?? spec.key);
    const endpoint = spec.kind === "write" ? this.router.pickForWrite(avoid, preferred) : this.router.pickForRead(spec.consistency ?? this.consistency, spec.key, avoid, preferred);
    if (endpoint === null) throw new NoEndpointError();
    return endpoint;
  }

  private ended(call: CallContext, outcomeUnknown: boolean, lastError: unknown, endpoint: string | null): Error {
    if (outcomeUnknown) this.counters.outcomeUnknown += 1;
    return call.failure(outcomeUnknown, lastError, endpoint);
  }

  /** The error a call gives up with: the last failure, or, when the write may have been applied, a TimeoutError saying so. */
  private giveUp(spec: CallSpec, lastError: unknown, maybeApplied: boolean, attempts: number): unknown {
    if (!maybeApplied) return lastError;
    this.counters.outcomeUnknown += 1;
    const last = lastError instanceof Error ? lastError.message : String(lastError);
    const endpoint = lastError instanceof HttpApiError || lastError instanceof ConnectionError || lastError instanceof TimeoutError ? lastError.endpoint : null;
    const status = lastError instanceof TimeoutError ? lastError.status : null;
    const retryAfterMs = lastError instanceof TimeoutError || lastError instanceof UnavailableError ? lastError.retryAfterMs : null;
    return new TimeoutError({ message: `${spec.what}: the write may or may not have been applied (${attempts} attempt${attempts === 1 ? "" : "s"}; last: ${last})`, endpoint, status, retryAfterMs, outcomeUnknown: true, cause: lastError });
  }
}

/**
 * What an attempt's failure allows. Reads, writes in a session and session openings may
 * always go again; a write outside a session only when it surely was not applied (no
 * connection was made, or the node answered no_leader, not_member or overloaded).
 */
function assess(error: unknown, write: boolean, retrySafe: boolean): Verdict {
  if (error instanceof ConnectionError) {
    if (!error.requestSent) return { retry: true, maybeApplied: false, endpointFailed: true };
    return { retry: retrySafe, maybeApplied: write, endpointFailed: true };
  }
  if (error instanceof TimeoutError) return { retry: retrySafe, maybeApplied: write, endpointFailed: true };
  if (error instanceof UnavailableError) {
    const notApplied = NOT_APPLIED_CODES.has(error.code);
    // `no_leader`: the node answered, and a majority is there; an election (or a leadership
    // moving) is under way. Not the node's failure: counting it would eject a healthy node,
    // maybe the next leader, just as it takes over. Nor is `txn_locked`, a key held for a moment.
    return { retry: notApplied || retrySafe, maybeApplied: write && !notApplied, endpointFailed: !NOT_ENDPOINT_FAILURE_CODES.has(error.code) };
  }
  if (error instanceof HttpApiError && error.status >= 500) return { retry: retrySafe, maybeApplied: write, endpointFailed: true };
  return { retry: false, maybeApplied: false, endpointFailed: false };
}

/** A node's answer (no leader) says more than a refused connection: keep the latest answer. */
function preferAnswer(last: unknown, error: unknown): unknown {
  if (!(error instanceof ConnectionError) || last === null || last instanceof ConnectionError) return error;
  return last;
}

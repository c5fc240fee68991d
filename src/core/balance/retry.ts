import type { Prng } from "../common/prng.js";
import { assertIntegerIn, assertNumberIn, assertTime, withDefaults } from "./options.js";

/** Exponential backoff with full jitter; see `backoffMs`. */
export interface BackoffOptions {
  /** The ceiling of the first pause; an integer in [1, 3_600_000] ms, default 25. */
  readonly backoffMsBase: number;
  /** The largest ceiling; an integer in [backoffMsBase, 3_600_000] ms, default 1,000. */
  readonly backoffMsMax: number;
}

export const DEFAULT_BACKOFF_OPTIONS: BackoffOptions = Object.freeze({ backoffMsBase: 25, backoffMsMax: 1_000 });

export function resolveBackoffOptions(options: Partial<BackoffOptions> = {}): BackoffOptions {
  const resolved = withDefaults(DEFAULT_BACKOFF_OPTIONS, options);
  assertIntegerIn("backoffMsBase", resolved.backoffMsBase, 1, 3_600_000);
  assertIntegerIn("backoffMsMax", resolved.backoffMsMax, resolved.backoffMsBase, 3_600_000);
  return Object.freeze(resolved);
}

/** Past this many doublings every ceiling is `backoffMsMax` anyway (2^40 ms is 35 years). */
const DOUBLINGS_MAX = 40;

/**
 * The pause before retry number `attempt + 1` (`attempt` 0 is the pause before the first
 * retry; a non-negative safe integer): a uniform random integer in
 * [0, min(backoffMsMax, backoffMsBase * 2^attempt)] ms, drawn from `prng`. "Full jitter":
 * clients that failed together spread their retries over the whole interval instead of
 * coming back in a wave at its end. The caller sleeps; this function only computes.
 */
export function backoffMs(attempt: number, prng: Prng, options: BackoffOptions = DEFAULT_BACKOFF_OPTIONS): number {
  assertIntegerIn("attempt", attempt, 0, Number.MAX_SAFE_INTEGER);
  const ceilingMs = Math.min(options.backoffMsMax, options.backoffMsBase * 2 ** Math.min(attempt, DOUBLINGS_MAX));
  return prng.int(0, ceilingMs);
}

/** The retry budget's shape; see `RetryBudget`. */
export interface RetryBudgetOptions {
  /** Retries allowed per 100 requests; a number in [0, 1000], default 20. */
  readonly budgetPercent: number;
  /** Retries allowed per second whatever the request rate (so a quiet client can still retry); a number in [0, 1_000_000], default 10. */
  readonly retriesPerSecondMin: number;
  /** The most unspent retries saved up, which bounds a burst after a quiet period; a number in [1, 1_000_000], default 100. */
  readonly retryTokensMax: number;
}

export const DEFAULT_RETRY_BUDGET_OPTIONS: RetryBudgetOptions = Object.freeze({ budgetPercent: 20, retriesPerSecondMin: 10, retryTokensMax: 100 });

export function resolveRetryBudgetOptions(options: Partial<RetryBudgetOptions> = {}): RetryBudgetOptions {
  const resolved = withDefaults(DEFAULT_RETRY_BUDGET_OPTIONS, options);
  assertNumberIn("budgetPercent", resolved.budgetPercent, 0, 1000);
  assertNumberIn("retriesPerSecondMin", resolved.retriesPerSecondMin, 0, 1_000_000);
  assertNumberIn("retryTokensMax", resolved.retryTokensMax, 1, 1_000_000);
  return Object.freeze(resolved);
}

/** Token amounts are kept in integer millionths. */
const UNITS_PER_TOKEN = 1_000_000;

/**
 * A retry budget (Finagle's RetryBudget, Envoy's retry budgets): retries may add at most
 * `budgetPercent` percent to the load, plus a small floor, so that when a cluster is in
 * trouble, retries do not multiply the traffic that put it there. Per-request attempt
 * limits alone do not do that: with 3 attempts a failing cluster sees 3x the load.
 *
 * A token bucket: each original request deposits `budgetPercent / 100` of a token, time
 * deposits `retriesPerSecondMin` tokens per second, the bucket holds at most
 * `retryTokensMax` (it starts full), and each retry takes one whole token. So over any
 * run, retries granted <= budgetPercent/100 * requests + retriesPerSecondMin * seconds +
 * retryTokensMax (a property test proves it).
 *
 * One budget per client (or per proxy upstream), shared by all its requests. Call
 * `recordRequest` once per original request, never per attempt (else retries would fund
 * themselves), and `tryRetry` before each retry; pure and synchronous, time comes in as
 * `nowMs` from a monotonic clock (a reading older than the last one adds no time).
 */
export class RetryBudget {
  /** Tokens in the bucket, in millionths of a token (integers, so 5 requests at 20% make exactly one retry). */
  private units: number;
  private lastMs: number;
  private readonly unitsMax: number;
  private readonly unitsPerRequest: number;
  private readonly retriesPerSecondMin: number;

  constructor(nowMs: number, options: Partial<RetryBudgetOptions> = {}) {
    assertTime(nowMs);
    const resolved = resolveRetryBudgetOptions(options);
    // Rounded down, so the bound in the class comment holds exactly.
    this.unitsMax = Math.floor(resolved.retryTokensMax * UNITS_PER_TOKEN);
    this.unitsPerRequest = Math.floor((resolved.budgetPercent / 100) * UNITS_PER_TOKEN);
    this.retriesPerSecondMin = resolved.retriesPerSecondMin;
    this.units = this.unitsMax;
    this.lastMs = nowMs;
  }

  /** An original request (not a retry) was sent. */
  recordRequest(nowMs: number): void {
    this.refill(nowMs);
    this.units = Math.min(this.unitsMax, this.units + this.unitsPerRequest);
  }

  /** Whether a retry would be allowed now; takes nothing. */
  canRetry(nowMs: number): boolean {
    this.refill(nowMs);
    return this.units >= UNITS_PER_TOKEN;
  }

  /** Takes a retry from the budget if one is left; returns whether the retry may go ahead. */
  tryRetry(nowMs: number): boolean {
    this.refill(nowMs);
    if (this.units < UNITS_PER_TOKEN) return false;
    this.units -= UNITS_PER_TOKEN;
    return true;
  }

  /** Tokens in the bucket (whole ones are retries allowed now), for statistics. */
  available(nowMs: number): number {
    this.refill(nowMs);
    return this.units / UNITS_PER_TOKEN;
  }

  private refill(nowMs: number): void {
    assertTime(nowMs);
    if (nowMs <= this.lastMs) return;
    // Rounded down: the fraction of a millionth lost per call keeps the bound safe.
    const earned = Math.floor(((nowMs - this.lastMs) / 1000) * this.retriesPerSecondMin * UNITS_PER_TOKEN);
    this.units = Math.min(this.unitsMax, this.units + earned);
    this.lastMs = nowMs;
  }
}

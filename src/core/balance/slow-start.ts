import { assertIntegerIn, withDefaults } from "./options.js";

/** Slow start: how an endpoint that comes back is eased into its share; see `slowStartFactor`. */
export interface SlowStartOptions {
  /** How long the ramp lasts; an integer in [0, 3_600_000] ms, default 10,000. 0 turns slow start off. */
  readonly slowStartWindowMs: number;
  /** The share of its weight an endpoint gets at the start of the ramp; an integer in [1, 100] percent, default 10. */
  readonly slowStartPercentMin: number;
}

export const DEFAULT_SLOW_START_OPTIONS: SlowStartOptions = Object.freeze({ slowStartWindowMs: 10_000, slowStartPercentMin: 10 });

export function resolveSlowStartOptions(options: Partial<SlowStartOptions> = {}): SlowStartOptions {
  const resolved = withDefaults(DEFAULT_SLOW_START_OPTIONS, options);
  assertIntegerIn("slowStartWindowMs", resolved.slowStartWindowMs, 0, 3_600_000);
  assertIntegerIn("slowStartPercentMin", resolved.slowStartPercentMin, 1, 100);
  return Object.freeze(resolved);
}

/**
 * The fraction of its weight an endpoint that became available at `sinceMs` is given at
 * `nowMs`: `slowStartPercentMin / 100` at `sinceMs`, rising linearly to 1 at
 * `sinceMs + slowStartWindowMs`, and 1 from then on (and always, when the window is 0).
 * A cold endpoint (empty caches, a JIT not yet warm, a Raft follower still catching up)
 * then takes a growing part of the traffic instead of its whole share at once.
 */
export function slowStartFactor(sinceMs: number, nowMs: number, options: SlowStartOptions): number {
  const elapsedMs = nowMs - sinceMs;
  if (elapsedMs >= options.slowStartWindowMs) return 1;
  const floor = options.slowStartPercentMin / 100;
  return elapsedMs <= 0 ? floor : floor + ((1 - floor) * elapsedMs) / options.slowStartWindowMs;
}

import { assertIntegerIn, withDefaults } from "./options.js";

/** The thresholds of active health checking; see `HealthCheck`. */
export interface HealthCheckOptions {
  /** Consecutive failed checks that make a healthy endpoint unhealthy; an integer in [1, 1000], default 2. */
  readonly unhealthyThreshold: number;
  /** Consecutive passed checks that make an unhealthy endpoint healthy; an integer in [1, 1000], default 2. */
  readonly healthyThreshold: number;
}

export const DEFAULT_HEALTH_CHECK_OPTIONS: HealthCheckOptions = Object.freeze({ unhealthyThreshold: 2, healthyThreshold: 2 });

const THRESHOLD_MAX = 1000;

/** Fills in defaults and asserts every threshold is in range (a bad value is a configuration bug). */
export function resolveHealthCheckOptions(options: Partial<HealthCheckOptions> = {}): HealthCheckOptions {
  const resolved = withDefaults(DEFAULT_HEALTH_CHECK_OPTIONS, options);
  assertIntegerIn("unhealthyThreshold", resolved.unhealthyThreshold, 1, THRESHOLD_MAX);
  assertIntegerIn("healthyThreshold", resolved.healthyThreshold, 1, THRESHOLD_MAX);
  return Object.freeze(resolved);
}

/**
 * The active health state of one endpoint, fed with the results of checks the caller runs
 * (the SDK and the proxy poll `GET /v1/status` on an interval; this class only counts).
 * It flips to unhealthy after `unhealthyThreshold` failed checks in a row, and back to
 * healthy after `healthyThreshold` passed checks in a row; a result of the other kind resets
 * the run. One result is never enough (with the defaults) so one lost check does not take
 * an endpoint out and one lucky answer does not put a broken one back.
 *
 * An endpoint starts healthy: before its first check has come back it is used, because a
 * freshly started client with every endpoint "unknown" must still be able to send, and the
 * passive outlier detection catches an endpoint that is in fact down within a few requests.
 */
export class HealthCheck {
  private healthyNow = true;
  /** Results in a row that disagree with the current state; below the threshold that flips it. */
  private streak = 0;

  constructor(private readonly options: HealthCheckOptions = DEFAULT_HEALTH_CHECK_OPTIONS) {}

  get healthy(): boolean {
    return this.healthyNow;
  }

  /** Records one check result; returns true when it changed the state (either way). */
  record(ok: boolean): boolean {
    if (ok === this.healthyNow) {
      this.streak = 0;
      return false;
    }
    this.streak += 1;
    const threshold = this.healthyNow ? this.options.unhealthyThreshold : this.options.healthyThreshold;
    if (this.streak < threshold) return false;
    this.healthyNow = ok;
    this.streak = 0;
    return true;
  }
}


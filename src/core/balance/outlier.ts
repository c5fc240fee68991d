import { assertIntegerIn, withDefaults } from "./options.js";

/** Passive outlier detection (Envoy's consecutive-failure ejection); see `OutlierDetector`. */
export interface OutlierOptions {
  /** Request failures in a row that eject an endpoint; an integer in [1, 10_000], default 5. */
  readonly consecutiveFailures: number;
  /** The first ejection's length; later ones are longer (see `OutlierDetector`). An integer in [1, 86_400_000] ms, default 30,000. */
  readonly ejectionMsBase: number;
  /** The longest ejection; an integer in [ejectionMsBase, 86_400_000] ms, default 300,000. */
  readonly ejectionMsMax: number;
  /**
   * The most endpoints ejected at once, as a percentage of all endpoints, rounded down but
   * at least one when there are two or more (see `ejectionLimit`); an integer in [0, 100],
   * default 50. 0 turns ejection off.
   */
  readonly ejectionPercentMax: number;
}

export const DEFAULT_OUTLIER_OPTIONS: OutlierOptions = Object.freeze({
  consecutiveFailures: 5,
  ejectionMsBase: 30_000,
  ejectionMsMax: 300_000,
  ejectionPercentMax: 50,
});

const DAY_MS = 86_400_000;

export function resolveOutlierOptions(options: Partial<OutlierOptions> = {}): OutlierOptions {
  const resolved = withDefaults(DEFAULT_OUTLIER_OPTIONS, options);
  assertIntegerIn("consecutiveFailures", resolved.consecutiveFailures, 1, 10_000);
  assertIntegerIn("ejectionMsBase", resolved.ejectionMsBase, 1, DAY_MS);
  assertIntegerIn("ejectionMsMax", resolved.ejectionMsMax, resolved.ejectionMsBase, DAY_MS);
  assertIntegerIn("ejectionPercentMax", resolved.ejectionPercentMax, 0, 100);
  return Object.freeze(resolved);
}

/**
 * How many of `endpointCount` endpoints may be ejected at the same time:
 * `floor(endpointCount * percent / 100)`, but at least 1 when there are two or more
 * endpoints (so with 2 or 3 endpoints at the default 50% one can go; otherwise a small
 * cluster could never eject a broken node), and 0 for a single endpoint (ejecting the only
 * endpoint leaves nothing to send to) or when `percent` is 0.
 */
export function ejectionLimit(endpointCount: number, percent: number): number {
  if (percent === 0 || endpointCount < 2) return 0;
  return Math.max(1, Math.floor((endpointCount * percent) / 100));
}

/**
 * Passive health of one endpoint, fed with the outcomes of real requests. After
 * `consecutiveFailures` failures in a row (a success resets the run) the owner asks
 * `eject(nowMs)`, if `ejectionLimit` allows one more; the endpoint is then out for
 * `ejectionMsBase * n`, capped at `ejectionMsMax`, where n counts its recent ejections
 * (this one included), and comes back by itself when that time has passed: no check is
 * needed, so an endpoint that is only reachable through requests (no health endpoint) is
 * retried too. If it is still broken, `consecutiveFailures` more requests eject it again,
 * for longer.
 *
 * The count n forgets: for every whole `ejectionMsBase` the endpoint spends back in
 * service, n drops by one (Envoy decrements its multiplier on each sweep in which the host
 * is not ejected; here the decay is computed from the time, so nothing has to tick). n
 * never grows past the count that reaches `ejectionMsMax`, so an endpoint that flapped
 * for an hour is not held at the cap for an hour after it recovered.
 *
 * While ejected, outcomes are ignored: requests that were already running when it was
 * ejected finish then, and their failures say nothing new.
 */
export class OutlierDetector {
  private failuresInRow = 0;
  /** Recent ejections, as of the end of the last one; see `ejectionCount`. */
  private ejections = 0;
  private ejectedUntil = Number.NEGATIVE_INFINITY;
  private readonly ejectionsMax: number;

  constructor(private readonly options: OutlierOptions = DEFAULT_OUTLIER_OPTIONS) {
    this.ejectionsMax = Math.ceil(options.ejectionMsMax / options.ejectionMsBase);
  }

  /** Until when it is (or was last) ejected; -Infinity if never. */
  get ejectedUntilMs(): number {
    return this.ejectedUntil;
  }

  /** Failures in a row since the last success or ejection. */
  get consecutiveFailures(): number {
    return this.failuresInRow;
  }

  isEjected(nowMs: number): boolean {
    return nowMs < this.ejectedUntil;
  }

  recordSuccess(nowMs: number): void {
    if (!this.isEjected(nowMs)) this.failuresInRow = 0;
  }

  /**
   * Counts a failure; returns true when the run has reached `consecutiveFailures` and the
   * endpoint should be ejected. The run stays at the threshold until an ejection or a
   * success, so when the ejection limit refuses now, the next failure asks again.
   */
  recordFailure(nowMs: number): boolean {
    if (this.isEjected(nowMs)) return false;
    this.failuresInRow = Math.min(this.failuresInRow + 1, this.options.consecutiveFailures);
    return this.failuresInRow >= this.options.consecutiveFailures;
  }

  /** Recent ejections at `nowMs`, after the decay (see the class comment); the current one counts. */
  ejectionCount(nowMs: number): number {
    if (this.isEjected(nowMs)) return this.ejections;
    const decayed = Math.floor((nowMs - this.ejectedUntil) / this.options.ejectionMsBase);
    return Math.max(0, this.ejections - decayed);
  }

  /** Ejects the endpoint from `nowMs`; returns when it comes back. The caller checks the limit first. */
  eject(nowMs: number): number {
    const count = Math.min(this.ejectionCount(nowMs) + 1, this.ejectionsMax);
    this.ejections = count;
    this.ejectedUntil = nowMs + Math.min(this.options.ejectionMsMax, this.options.ejectionMsBase * count);
    this.failuresInRow = 0;
    return this.ejectedUntil;
  }
}

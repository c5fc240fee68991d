import type { Prng } from "../common/prng.js";
import { BasePicker } from "./base.js";
import type { Endpoint, Strategy } from "./endpoint.js";

/**
 * Least outstanding requests: the endpoint with the fewest requests in flight (as reported
 * through `onStart`/`onFinish`). Weights are ignored; for a weight-aware load picker use
 * power-of-two-choices. Each pick scans every endpoint (O(n), n <= endpointsMax).
 *
 * Ties are broken deterministically by rotation: the scan starts one position after the
 * previous choice and takes the first minimum it meets, so idle endpoints (all at zero, the
 * common case at low concurrency) are used in turn rather than the first one always. The
 * first scan starts at a position drawn from the PRNG; no randomness is used after that.
 */
export class LeastOutstandingPicker<E extends Endpoint = Endpoint> extends BasePicker<E> {
  readonly strategy: Strategy = "least-outstanding";
  /** Where the next scan starts; in [0, list.length), or 0 when the list is empty. */
  private start: number;

  constructor(endpoints: readonly E[], prng: Prng) {
    super(endpoints);
    this.start = this.list.length === 0 ? 0 : prng.int(0, this.list.length - 1);
  }

  pick(): E | null {
    const count = this.list.length;
    if (count === 0) return null;
    const loads = this.loads;
    let best = this.start;
    let bestLoad = loads[best] as number;
    for (let step = 1; step < count && bestLoad > 0; step++) {
      let index = this.start + step;
      if (index >= count) index -= count;
      const load = loads[index] as number;
      if (load < bestLoad) {
        bestLoad = load;
        best = index;
      }
    }
    this.start = best + 1 === count ? 0 : best + 1;
    return this.list[best] as E;
  }

  protected rebuild(): void {
    if (this.start >= this.list.length) this.start = 0;
  }
}

import { assert } from "../common/assert.js";
import { BasePicker } from "./base.js";
import type { Endpoint, Strategy } from "./endpoint.js";

/**
 * Smooth weighted round-robin, nginx's algorithm. Each endpoint has a current weight,
 * starting at 0. On every pick, each current weight grows by its endpoint's weight, the
 * endpoint with the largest current weight is chosen (the earliest in the list on a tie),
 * and its current weight drops by the total weight. Over every cycle of `total` picks, from
 * the starting state, each endpoint is chosen exactly `weight` times and the choices are
 * interleaved: weights 5,1,1 give a,a,b,a,c,a,a. Deterministic; no PRNG.
 *
 * The current weights always sum to 0 and each lies in (-total, total), which bounds how far
 * any window of k picks strays from the exact share: at most one pick above
 * ceil(k * weight / total).
 *
 * On `update`, endpoints that stay keep their current weights and new ones start at 0, so
 * frequent weight changes (a slow-start ramp) do not restart the cycle and over-serve the
 * heaviest endpoint each time. The survivors' sum is then spread back to 0 as evenly as
 * integers allow, which keeps the invariant; the exact per-cycle counts resume only from a
 * zero state, but the long-run shares are exact from any state.
 */
export class SmoothWeightedPicker<E extends Endpoint = Endpoint> extends BasePicker<E> {
  readonly strategy: Strategy = "weighted";
  /** Current weight per position of `list`; integers, summing to 0. */
  private current: number[];
  private weights: number[];
  private total: number;

  constructor(endpoints: readonly E[]) {
    super(endpoints);
    this.current = this.list.map(() => 0);
    this.weights = this.list.map((endpoint) => endpoint.weight);
    this.total = this.weights.reduce((sum, weight) => sum + weight, 0);
  }

  pick(): E | null {
    const count = this.list.length;
    if (count === 0) return null;
    const current = this.current;
    const weights = this.weights;
    let best = 0;
    let bestWeight = -Infinity;
    for (let i = 0; i < count; i++) {
      const grown = (current[i] as number) + (weights[i] as number);
      current[i] = grown;
      if (grown > bestWeight) {
        bestWeight = grown;
        best = i;
      }
    }
    current[best] = bestWeight - this.total;
    return this.list[best] as E;
  }

  protected rebuild(previous: readonly E[]): void {
    const oldIndex = new Map<string, number>();
    previous.forEach((endpoint, index) => oldIndex.set(endpoint.id, index));
    const oldCurrent = this.current;
    const current = this.list.map((endpoint) => {
      const index = oldIndex.get(endpoint.id);
      return index === undefined ? 0 : (oldCurrent[index] as number);
    });
    const count = current.length;
    const residual = current.reduce((sum, value) => sum + value, 0);
    if (count > 0 && residual !== 0) {
      const share = Math.floor(residual / count);
      const extra = residual - share * count; // in [0, count)
      for (let i = 0; i < count; i++) current[i] = (current[i] as number) - share - (i < extra ? 1 : 0);
    }
    assert(current.reduce((sum, value) => sum + value, 0) === 0, "current weights must sum to 0");
    this.current = current;
    this.weights = this.list.map((endpoint) => endpoint.weight);
    this.total = this.weights.reduce((sum, weight) => sum + weight, 0);
  }
}

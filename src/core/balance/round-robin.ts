import type { Prng } from "../common/prng.js";
import { BasePicker } from "./base.js";
import type { Endpoint, Strategy } from "./endpoint.js";

/**
 * Plain round-robin: the endpoints in list order, each once per cycle, weights ignored.
 * The cycle starts at a position drawn from the PRNG, so many clients created at once do
 * not all send their first request to the first endpoint.
 *
 * On `update`, the endpoint that would have come next keeps its turn if it is still in the
 * list; otherwise the cycle continues from the same position (clamped to the new length).
 */
export class RoundRobinPicker<E extends Endpoint = Endpoint> extends BasePicker<E> {
  readonly strategy: Strategy = "round-robin";
  /** The position `pick` returns next; in [0, list.length), or 0 when the list is empty. */
  private next: number;

  constructor(endpoints: readonly E[], prng: Prng) {
    super(endpoints);
    this.next = this.list.length === 0 ? 0 : prng.int(0, this.list.length - 1);
  }

  pick(): E | null {
    const count = this.list.length;
    if (count === 0) return null;
    const index = this.next;
    this.next = index + 1 === count ? 0 : index + 1;
    return this.list[index] as E;
  }

  protected rebuild(previous: readonly E[]): void {
    const upcoming = previous[this.next];
    const kept = upcoming === undefined ? undefined : this.indexById.get(upcoming.id);
    if (kept !== undefined) this.next = kept;
    else this.next = this.next < this.list.length ? this.next : 0;
  }
}

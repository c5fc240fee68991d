import { assert } from "../common/assert.js";
import { type Endpoint, type Picker, type Strategy, validateEndpoints } from "./endpoint.js";

/**
 * What every picker shares: the endpoint list, an index by id and the in-flight count per
 * endpoint, kept in arrays parallel to the list so a pick reads them by position without a
 * map lookup. Subclasses implement `pick` and `rebuild` (called after every list change).
 */
export abstract class BasePicker<E extends Endpoint> implements Picker<E> {
  abstract readonly strategy: Strategy;
  protected list: E[] = [];
  protected indexById = new Map<string, number>();
  /** In-flight requests per position of `list`; non-negative integers. */
  protected loads: number[] = [];

  constructor(endpoints: readonly E[]) {
    this.replace(endpoints);
  }

  abstract pick(key?: string): E | null;

  onStart(id: string): void {
    const index = this.indexById.get(id);
    // Not assert(cond, `...`): the message would be built on every call of this hot path.
    if (index === undefined) assert(false, `onStart for unknown endpoint ${JSON.stringify(id)}`);
    this.loads[index] = (this.loads[index] as number) + 1;
  }

  onFinish(id: string): void {
    const index = this.indexById.get(id);
    if (index === undefined) return;
    const load = this.loads[index] as number;
    // A removed-then-re-added endpoint can see the finish of a request whose start it lost.
    if (load > 0) this.loads[index] = load - 1;
  }

  inFlight(id: string): number {
    const index = this.indexById.get(id);
    return index === undefined ? 0 : (this.loads[index] as number);
  }

  endpoints(): readonly E[] {
    return this.list;
  }

  update(endpoints: readonly E[]): void {
    const previous = this.list;
    this.replace(endpoints);
    this.rebuild(previous);
  }

  /** Called after the list changed; `previous` is the list before. Not called by the constructor. */
  protected abstract rebuild(previous: readonly E[]): void;

  private replace(endpoints: readonly E[]): void {
    validateEndpoints(endpoints);
    const indexById = new Map<string, number>();
    const loads: number[] = [];
    endpoints.forEach((endpoint, index) => {
      indexById.set(endpoint.id, index);
      loads.push(this.inFlight(endpoint.id));
    });
    this.list = [...endpoints];
    this.indexById = indexById;
    this.loads = loads;
  }
}

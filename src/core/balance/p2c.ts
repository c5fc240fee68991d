import type { Prng } from "../common/prng.js";
import { BasePicker } from "./base.js";
import type { Endpoint, Strategy } from "./endpoint.js";

const TWO_TO_32 = 0x1_0000_0000;

/**
 * Power of two choices, weight-aware: draw two distinct endpoints uniformly at random and
 * take the one with less load per unit of weight, `(inFlight + 1) / weight` (the +1 counts
 * the request being placed, so an idle heavy endpoint beats an idle light one). On a tie the
 * first draw wins, which is itself uniform. With one endpoint it is returned.
 *
 * The draws are uniform rather than weighted on purpose: weighted draws and a weighted
 * comparison would count the weight twice (weights 3,1,1 would send ~90% of sequential
 * requests to the heavy endpoint instead of 60%). Under concurrency the comparison alone
 * drives each endpoint toward in-flight counts proportional to its weight.
 *
 * Stateless apart from the in-flight counts, so `update` keeps nothing else.
 */
export class PowerOfTwoPicker<E extends Endpoint = Endpoint> extends BasePicker<E> {
  readonly strategy: Strategy = "p2c";
  private readonly prng: Prng;

  constructor(endpoints: readonly E[], prng: Prng) {
    super(endpoints);
    this.prng = prng;
  }

  pick(): E | null {
    const count = this.list.length;
    if (count <= 1) return count === 0 ? null : (this.list[0] as E);
    // Multiply-shift maps a uniform 32-bit draw onto [0, count) with bias below count/2^32.
    const first = Math.floor((this.prng.nextUint32() * count) / TWO_TO_32);
    let second = Math.floor((this.prng.nextUint32() * (count - 1)) / TWO_TO_32);
    if (second >= first) second += 1;
    const a = this.list[first] as E;
    const b = this.list[second] as E;
    // Compare (loadA + 1) / weightA with (loadB + 1) / weightB without dividing.
    const costA = ((this.loads[first] as number) + 1) * b.weight;
    const costB = ((this.loads[second] as number) + 1) * a.weight;
    return costB < costA ? b : a;
  }

  protected rebuild(): void {}
}

import { unreachable } from "../common/assert.js";
import type { Prng } from "../common/prng.js";
import type { Endpoint, Picker, Strategy } from "./endpoint.js";
import { LeastOutstandingPicker } from "./least-outstanding.js";
import { PowerOfTwoPicker } from "./p2c.js";
import { HashRingPicker, type HashRingOptions } from "./ring.js";
import { RoundRobinPicker } from "./round-robin.js";
import { SmoothWeightedPicker } from "./weighted.js";

export type PickerOptions = HashRingOptions;

/**
 * A picker of the given strategy over `endpoints` (validated; see `validateEndpoints`).
 * `prng` is owned by the picker from here on (round-robin and least-outstanding draw their
 * starting position from it, p2c draws every pick); pass `prng.fork()` to share a seed.
 * `options` reach the hash picker only.
 */
export function createPicker<E extends Endpoint>(strategy: Strategy, endpoints: readonly E[], prng: Prng, options: PickerOptions = {}): Picker<E> {
  switch (strategy) {
    case "round-robin":
      return new RoundRobinPicker(endpoints, prng);
    case "weighted":
      return new SmoothWeightedPicker(endpoints);
    case "least-outstanding":
      return new LeastOutstandingPicker(endpoints, prng);
    case "p2c":
      return new PowerOfTwoPicker(endpoints, prng);
    case "hash":
      return new HashRingPicker(endpoints, options);
    default:
      return unreachable(strategy, "strategy");
  }
}

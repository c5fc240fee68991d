import { assert } from "../common/assert.js";

/**
 * One target a picker can choose: a node, a proxy backend. Pickers keep references to the
 * caller's objects and hand the same objects back from `pick`, so a caller may extend this
 * with its own fields (a URL, a client) and get them back typed.
 */
export interface Endpoint {
  /** Unique among the endpoints of one picker; non-empty. */
  readonly id: string;
  /** A positive safe integer, at most `balanceLimits.weightMax`; the relative share of picks. */
  readonly weight: number;
}

/** The strategies `createPicker` knows. */
export const STRATEGIES = ["round-robin", "weighted", "least-outstanding", "p2c", "hash"] as const;
export type Strategy = (typeof STRATEGIES)[number];

export function isStrategy(name: string): name is Strategy {
  return (STRATEGIES as readonly string[]).includes(name);
}

/**
 * A load-balancing picker over a list of endpoints. Pure and synchronous; one instance is
 * not shared between threads. Every picker counts requests in flight per endpoint (the
 * caller reports them with `onStart`/`onFinish`), whether or not its choice reads the count,
 * so the count is there for statistics with any strategy.
 */
export interface Picker<E extends Endpoint = Endpoint> {
  readonly strategy: Strategy;
  /**
   * The endpoint for the next request, or null when there are none. `key` matters only to
   * the hash picker (requests with the same key go to the same endpoint); the others ignore
   * it. Allocation-free on every picker's hot path.
   */
  pick(key?: string): E | null;
  /** A request began on endpoint `id`, which must be one of the current endpoints. */
  onStart(id: string): void;
  /**
   * A request on endpoint `id` ended (success or failure). Ignored when `id` is no longer an
   * endpoint (it was removed while the request ran); the count never goes below zero.
   */
  onFinish(id: string): void;
  /** Requests in flight on `id`; 0 for an unknown id. */
  inFlight(id: string): number;
  /** The current endpoints, in the order given to the last `update`. */
  endpoints(): readonly E[];
  /**
   * Replaces the endpoint list (additions, removals, weight changes). In-flight counts of
   * endpoints that stay are kept; each picker keeps what fairness state it sensibly can
   * (documented on each class). Asserts the list is valid (see `validateEndpoints`).
   */
  update(endpoints: readonly E[]): void;
}

/** Bounds on what a picker accepts; asserted on every endpoint list. */
export const balanceLimits = Object.freeze({
  /** Most endpoints in one picker (every pick of least-outstanding scans them all). */
  endpointsMax: 10_000,
  /** Largest weight; with `endpointsMax` the total stays far below 2^53. */
  weightMax: 1_000_000,
  /** Longest endpoint id, in UTF-16 code units. */
  idLengthMax: 1024,
  /** Most points on a consistent-hash ring (all endpoints' virtual nodes together). */
  ringPointsMax: 1 << 20,
});

/**
 * Asserts an endpoint list is one a picker accepts: at most `endpointsMax` entries, ids
 * non-empty, unique and at most `idLengthMax` long, weights positive safe integers up to
 * `weightMax`. A bad list is a programming (or configuration-parsing) error, so it throws
 * an AssertionError; configuration loaders validate user input before calling this.
 */
export function validateEndpoints(endpoints: readonly Endpoint[]): void {
  assert(endpoints.length <= balanceLimits.endpointsMax, `at most ${balanceLimits.endpointsMax} endpoints, got ${endpoints.length}`);
  const seen = new Set<string>();
  for (const endpoint of endpoints) {
    const { id, weight } = endpoint;
    assert(typeof id === "string" && id.length > 0 && id.length <= balanceLimits.idLengthMax, `endpoint id must be a non-empty string of at most ${balanceLimits.idLengthMax} characters`);
    assert(!seen.has(id), `endpoint id ${JSON.stringify(id)} is not unique`);
    seen.add(id);
    assert(Number.isSafeInteger(weight) && weight >= 1 && weight <= balanceLimits.weightMax, `endpoint ${JSON.stringify(id)}: weight must be an integer in [1, ${balanceLimits.weightMax}], got ${weight}`);
  }
}

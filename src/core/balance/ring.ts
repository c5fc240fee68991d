import { assert } from "../common/assert.js";
import { BasePicker } from "./base.js";
import { balanceLimits, type Endpoint, type Strategy } from "./endpoint.js";
import { hashString32 } from "./hash.js";

/** Virtual nodes per unit of weight by default: each endpoint's share is then within a few percent. */
export const DEFAULT_VNODES_PER_WEIGHT = 160;

export interface HashRingOptions {
  /** Virtual nodes per unit of weight, an integer in [1, 10_000]; default 160. */
  readonly vnodesPerWeight?: number;
}

/**
 * Consistent hashing for key affinity, as a ring with virtual nodes. Each endpoint owns
 * `weight * vnodesPerWeight` points, at the hashes of `"<id>#<n>"`; a key goes to the owner
 * of the first point at or after the key's hash (wrapping around). When the total would
 * exceed `ringPointsMax`, every endpoint's count is scaled down alike (at least 1 each).
 *
 * Why a ring rather than Maglev: on a ring, removing an endpoint moves only the keys it
 * owned (about 1/N of them) and every other key stays exactly where it was; adding one
 * takes about 1/(N+1), only onto the new endpoint. Maglev balances more evenly and looks up
 * in O(1), but a table rebuild also shuffles a few keys between endpoints that did not
 * change, and affinity (a cache that stays warm) is the reason to hash at all. A lookup
 * here is a binary search, O(log points), with no allocation.
 *
 * The ring depends only on the set of (id, weight) pairs, not on list order: points are
 * sorted by hash, then by id (UTF-16 code unit order), so two clients that know the same endpoints
 * route every key alike. A pick without a key falls back to round-robin over the list.
 */
export class HashRingPicker<E extends Endpoint = Endpoint> extends BasePicker<E> {
  readonly strategy: Strategy = "hash";
  private readonly vnodesPerWeight: number;
  /** Point hashes, ascending. */
  private pointHashes: Uint32Array;
  /** The owner of each point, as a position in `list`. */
  private pointOwners: Uint32Array;
  /** The next position for key-less picks. */
  private nextKeyless = 0;

  constructor(endpoints: readonly E[], options: HashRingOptions = {}) {
    super(endpoints);
    const vnodesPerWeight = options.vnodesPerWeight ?? DEFAULT_VNODES_PER_WEIGHT;
    assert(Number.isSafeInteger(vnodesPerWeight) && vnodesPerWeight >= 1 && vnodesPerWeight <= 10_000, `vnodesPerWeight must be an integer in [1, 10000], got ${vnodesPerWeight}`);
    this.vnodesPerWeight = vnodesPerWeight;
    this.pointHashes = new Uint32Array(0);
    this.pointOwners = new Uint32Array(0);
    this.buildRing();
  }

  pick(key?: string): E | null {
    const count = this.list.length;
    if (count === 0) return null;
    if (key === undefined) {
      const index = this.nextKeyless < count ? this.nextKeyless : 0;
      this.nextKeyless = index + 1;
      return this.list[index] as E;
    }
    return this.list[this.pointOwners[this.firstPointAtOrAfter(hashString32(key))] as number] as E;
  }

  /** Ring points in use (for tests and statistics). */
  pointCount(): number {
    return this.pointHashes.length;
  }

  protected rebuild(): void {
    this.buildRing();
  }

  /** The index of the first point whose hash is >= `hash`, wrapping to 0 past the end. */
  private firstPointAtOrAfter(hash: number): number {
    const hashes = this.pointHashes;
    let low = 0;
    let high = hashes.length; // the answer is in [low, high]; the loop halves it, <= 21 rounds
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((hashes[middle] as number) < hash) low = middle + 1;
      else high = middle;
    }
    return low === hashes.length ? 0 : low;
  }

  private buildRing(): void {
    const totalWeight = this.list.reduce((sum, endpoint) => sum + endpoint.weight, 0);
    const scale = Math.min(1, balanceLimits.ringPointsMax / Math.max(1, totalWeight * this.vnodesPerWeight));
    const points: { hash: number; owner: number }[] = [];
    this.list.forEach((endpoint, owner) => {
      const vnodes = Math.max(1, Math.floor(endpoint.weight * this.vnodesPerWeight * scale));
      for (let n = 0; n < vnodes; n++) points.push({ hash: hashString32(`${endpoint.id}#${n}`), owner });
    });
    assert(points.length <= balanceLimits.ringPointsMax + balanceLimits.endpointsMax, `ring of ${points.length} points is over its bound`);
    points.sort((x, y) => x.hash - y.hash || compareIds((this.list[x.owner] as E).id, (this.list[y.owner] as E).id));
    this.pointHashes = Uint32Array.from(points, (point) => point.hash);
    this.pointOwners = Uint32Array.from(points, (point) => point.owner);
  }
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A simulated client's view of the ranges (`synod sim --splits`): what it routes each key
 * by, as the SDK's cached range table is. It starts as the cluster's first table (every
 * client knows the presplit ranges) and learns from the nodes' range-mismatch refusals,
 * each of which carries the answering node's ranges as it sees them (as the SDK reads
 * GET /v1/shards on a mismatch): possibly stale, possibly ahead of the client's.
 *
 * Ranges only split, so two descriptors whose spans overlap are an ancestor and its
 * descendant, and the descendant's epoch is the higher (a split gives both halves the
 * parent's epoch plus one). A key is routed by the descriptor with the highest epoch among
 * those known to hold it: the most recent the client has heard of. A stale one earns a
 * range mismatch, whose refusal carries newer descriptors.
 */
import { assert } from "../core/common/assert.js";
import type { GroupId } from "../core/multi/group.js";
import { spanHolds, type RangeDescriptor, type RangeTable } from "../core/multi/ranges.js";

/** Descriptors one client keeps: a run makes at most a few dozen ranges, each at a few epochs. */
const KNOWN_DESCRIPTORS_MAX = 4096;

export class ClientRangeView {
  private readonly known: RangeDescriptor[];
  private readonly seen = new Set<string>();

  constructor(initial: RangeTable) {
    this.known = [...initial.list()];
    for (const range of this.known) this.seen.add(`${range.id}@${range.epoch}`);
  }

  /** The range this view puts `key` in. */
  route(key: string): GroupId {
    let best: RangeDescriptor | null = null;
    for (const range of this.known) if (spanHolds(range, key) && (best === null || range.epoch > best.epoch)) best = range;
    // The first table covers every key, and no descriptor is ever forgotten.
    assert(best !== null, `no range holds ${JSON.stringify(key)}`);
    return best.id;
  }

  /** Takes in what a node said of its ranges. */
  learn(descriptors: readonly RangeDescriptor[]): void {
    for (const range of descriptors) {
      const name = `${range.id}@${range.epoch}`;
      if (this.seen.has(name) || this.known.length >= KNOWN_DESCRIPTORS_MAX) continue;
      this.seen.add(name);
      this.known.push(range);
    }
  }
}

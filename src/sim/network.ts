import { assert } from "../core/common/assert.js";
import type { Prng } from "../core/common/prng.js";
import type { NodeId } from "../core/engine/contract.js";

/** How a link behaves when it is up. Probabilities are per packet. */
export interface LinkModel {
  readonly delayMinMicros: number;
  /** Mean of the exponential part added to the minimum delay. */
  readonly delayMeanMicros: number;
  readonly dropProbability: number;
  readonly duplicateProbability: number;
  /** Chance of a much longer delay, which reorders the packet behind later ones. */
  readonly longDelayProbability: number;
  readonly longDelayMaxMicros: number;
  /** Deliver in the order sent, like one TCP connection (no drop, no long delay). */
  readonly fifo?: boolean;
}

export const RELIABLE_LINK: LinkModel = Object.freeze({
  delayMinMicros: 100,
  delayMeanMicros: 400,
  dropProbability: 0,
  duplicateProbability: 0,
  longDelayProbability: 0,
  longDelayMaxMicros: 0,
  fifo: true,
});

export type PartitionShape =
  | "split"
  | "asymmetric"
  | "isolate-one"
  | "isolate-leader"
  | "majority-minority"
  | "ring"
  | "bridge";

export const PARTITION_SHAPES: readonly PartitionShape[] = ["split", "asymmetric", "isolate-one", "isolate-leader", "majority-minority", "ring", "bridge"];

/**
 * Which node-to-node directions are cut. Clients are never partitioned (as in Jepsen, a
 * partition is between servers); their links still drop and delay.
 */
export class Partition {
  private readonly blocked = new Set<number>();
  description = "none";

  constructor(private readonly nodes: readonly NodeId[]) {}

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.size > 0 && this.blocked.has(from * 65536 + to);
  }

  get active(): boolean {
    return this.blocked.size > 0;
  }

  /** Every direction cut now, `[from, to]`, in order (for the replay; reads, draws nothing). */
  cutLinks(): [NodeId, NodeId][] {
    return [...this.blocked].sort((a, b) => a - b).map((link) => [Math.floor(link / 65536), link % 65536]);
  }

  heal(): void {
    this.blocked.clear();
    this.description = "none";
  }

  private cut(from: NodeId, to: NodeId): void {
    this.blocked.add(from * 65536 + to);
  }

  private cutBoth(groupA: readonly NodeId[], groupB: readonly NodeId[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        if (a === b) continue;
        this.cut(a, b);
        this.cut(b, a);
      }
    }
  }

  /** Replaces the current partition: nodes talk only within their group. */
  applyGroups(groups: readonly (readonly NodeId[])[]): void {
    this.heal();
    for (let i = 0; i < groups.length; i++) {
      for (let j = i + 1; j < groups.length; j++) this.cutBoth(groups[i] as readonly NodeId[], groups[j] as readonly NodeId[]);
    }
    this.description = groups.map((g) => `{${g.join(",")}}`).join(" | ");
  }

  /** Replaces the current partition with a new one of `shape`. */
  apply(shape: PartitionShape, prng: Prng, leader: NodeId | null): void {
    this.heal();
    const shuffled = prng.shuffle([...this.nodes]);
    const count = shuffled.length;
    const minority = Math.floor((count - 1) / 2);
    const sides = (size: number): [NodeId[], NodeId[]] => [shuffled.slice(0, size), shuffled.slice(size)];
    switch (shape) {
      case "split": {
        const [a, b] = sides(prng.int(1, count - 1));
        this.cutBoth(a, b);
        this.description = `split ${fmt(a)} | ${fmt(b)}`;
        break;
      }
      case "majority-minority": {
        const [a, b] = sides(Math.max(1, minority));
        this.cutBoth(a, b);
        this.description = `minority ${fmt(a)} | majority ${fmt(b)}`;
        break;
      }
      case "isolate-one":
      case "isolate-leader": {
        const target = shape === "isolate-leader" && leader !== null ? leader : (shuffled[0] as NodeId);
        const rest = this.nodes.filter((n) => n !== target);
        this.cutBoth([target], rest);
        this.description = `${shape === "isolate-leader" && leader !== null ? "isolate leader" : "isolate"} ${target}`;
        break;
      }
      case "asymmetric": {
        const [a, b] = sides(prng.int(1, count - 1));
        for (const x of a) for (const y of b) this.cut(x, y);
        this.description = `one-way ${fmt(a)} -/-> ${fmt(b)}`;
        break;
      }
      case "ring": {
        // Each node hears only its two ring neighbours: with 5 nodes every node sees a
        // majority, but majorities overlap differently; with 3 it is a chain (a bridge).
        for (let i = 0; i < count; i++) {
          for (let j = 0; j < count; j++) {
            const distance = Math.min(Math.abs(i - j), count - Math.abs(i - j));
            if (distance > 1 || (count === 3 && ((i === 0 && j === 2) || (i === 2 && j === 0)))) this.cut(shuffled[i] as NodeId, shuffled[j] as NodeId);
          }
        }
        this.description = `ring ${shuffled.join("-")}${count === 3 ? "" : `-${shuffled[0]}`}`;
        break;
      }
      case "bridge": {
        // Two halves that cannot talk, and one node that talks to both.
        const bridge = shuffled[0] as NodeId;
        const half = Math.floor((count - 1) / 2);
        const a = shuffled.slice(1, 1 + half);
        const b = shuffled.slice(1 + half);
        this.cutBoth(a, b);
        this.description = `bridge ${bridge} between ${fmt(a)} and ${fmt(b)}`;
        break;
      }
    }
    assert(this.blocked.size > 0 || count < 2, `partition ${shape} cut nothing`);
  }
}

function fmt(nodes: readonly NodeId[]): string {
  return `{${[...nodes].sort((a, b) => a - b).join(",")}}`;
}

/**
 * Decides each packet's fate: dropped, or delivered after a delay, possibly twice.
 * Returns the delivery delays (empty when dropped).
 */
export function packetDelays(link: LinkModel, prng: Prng): number[] {
  if (prng.chance(link.dropProbability)) return [];
  const one = (): number => {
    if (prng.chance(link.longDelayProbability)) return link.delayMinMicros + prng.int(0, link.longDelayMaxMicros);
    return link.delayMinMicros + Math.round(prng.exponential(link.delayMeanMicros));
  };
  const delays = [one()];
  if (prng.chance(link.duplicateProbability)) delays.push(one());
  return delays;
}

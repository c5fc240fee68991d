/**
 * Spreading leaderships over the nodes (docs/sharding.md). Every range elects its own
 * leader, and elections alone can leave one node leading most ranges, so it takes most of
 * the writes. Each node runs this rule on what it sees, with no coordinator: a node that
 * leads more than one range more than the node leading the fewest hands one of its ranges
 * to that node (a leadership transfer, which loses nothing). Only live nodes count: a node
 * that cannot be reached must not be handed a leadership. Done by every node, one transfer
 * at a time, the counts end within one of each other (tested by simulating rounds).
 */
import type { NodeId } from "../engine/contract.js";
import type { GroupId } from "./group.js";

export interface LeadershipView {
  /** The node deciding. */
  readonly self: NodeId;
  /** The nodes that may lead (voters of every range), reachable from `self`, `self` among them. */
  readonly live: readonly NodeId[];
  /** Each range's leader as `self` knows it (null: none known). */
  readonly leaders: ReadonlyMap<GroupId, NodeId | null>;
  /**
   * Each range's voters, where a range is not on every node (placement.ts): a leadership
   * goes only to a voter of its range. Absent: every live node is a voter of every range.
   */
  readonly voters?: ReadonlyMap<GroupId, readonly NodeId[]>;
}

/** A leadership `self` should hand over: `range` to `to`. */
export interface LeadershipMove {
  readonly range: GroupId;
  readonly to: NodeId;
}

/**
 * The transfer `self` should make now, or null. None while some range has no known leader
 * (an election is under way: its outcome changes the counts), or when `self` leads at most
 * one more range than the live node leading the fewest. Otherwise the highest-numbered range
 * `self` leads goes to that node (the lowest id among equals), so every node that decides on
 * the same view decides the same.
 */
export function leadershipMove(view: LeadershipView): LeadershipMove | null {
  return leadershipMoves(view, 1)[0] ?? null;
}

/**
 * Up to `max` transfers `self` should make now: `leadershipMove`'s rule applied again after
 * each move it picks, as if that move had happened (so the moves together never take `self`
 * below, or a target above, the counts the rule aims at). One move at a time took hours to
 * even out a node back from a restart among 10,000 ranges (it leads none of them then).
 */
export function leadershipMoves(view: LeadershipView, max: number): LeadershipMove[] {
  const counts = new Map<NodeId, number>(view.live.map((id) => [id, 0]));
  if (!counts.has(view.self) || max < 1) return [];
  const mine: GroupId[] = [];
  for (const [range, leader] of view.leaders) {
    if (leader === null) return [];
    if (counts.has(leader)) counts.set(leader, (counts.get(leader) as number) + 1);
    if (leader === view.self) mine.push(range);
  }
  const fewestOf = (candidates: readonly NodeId[]): NodeId | null => {
    let fewest: NodeId | null = null;
    for (const id of [...candidates].sort((a, b) => a - b)) if (counts.has(id) && (fewest === null || (counts.get(id) as number) < (counts.get(fewest) as number))) fewest = id;
    return fewest;
  };
  const moves: LeadershipMove[] = [];
  // The highest-numbered ranges `self` leads that have a voter leading two or more fewer.
  for (const range of mine.sort((a, b) => b - a)) {
    const to = fewestOf(view.voters?.get(range) ?? [...counts.keys()]);
    if (to !== null && (counts.get(view.self) as number) - (counts.get(to) as number) > 1) {
      moves.push({ range, to });
      counts.set(view.self, (counts.get(view.self) as number) - 1);
      counts.set(to, (counts.get(to) as number) + 1);
      if (moves.length === max) break;
    } else if (view.voters === undefined) break;
  }
  return moves;
}

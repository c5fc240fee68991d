/**
 * Leaderships spread over the nodes in the simulator (`synod sim --groups N
 * --balance-leaders`), with the production rule (core/multi/leader-balance.ts) a sharded
 * node runs: every second of its clock, a node that leads more than one group more than
 * the node leading the fewest hands one of its groups to that node, one move at a time and
 * at least three seconds apart. The moves are leadership transfers through the production
 * replica, under every fault the run injects, so the checkers see writes and reads across
 * them. Which nodes count as live is what the node knows: all of them, or with quiescence
 * the ones its liveness does not suspect; a move toward a node that is down times out like
 * any transfer to a dead node.
 */
import type { SimNodeTimers } from "./node-timers.js";
import type { NodeId } from "../core/engine/contract.js";
import { leadershipMove } from "../core/multi/leader-balance.js";
import type { GroupId } from "../core/multi/group.js";

/** Ticks between two looks at who leads what (a second at 50 ms ticks). */
export const BALANCE_EVERY_TICKS = 20;
/** Ticks a node waits after a move before the next. */
export const MOVE_SPACING_TICKS = 60;

/** What balancing needs of the node that runs it. */
export interface BalancingNode extends SimNodeTimers {
  /** Whether the node suspects `peer` is down (with quiescence's liveness; false without). */
  suspects(peer: NodeId): boolean;
  /** Each group's leader as this node knows it. */
  leaders(): ReadonlyMap<GroupId, NodeId | null>;
  /** Starts a transfer of `group`'s leadership to `to`; `done` runs when it ends, whatever the outcome. False if refused at once. */
  transfer(group: GroupId, to: NodeId, done: () => void): boolean;
}

/** One node's balancing over its incarnations, with the count of moves made. */
export class SimLeaderBalancing {
  /** Moves started (transfers the engine accepted). */
  moves = 0;

  constructor(private readonly node: BalancingNode) {}

  /** Incarnation `incarnation` started: it looks every BALANCE_EVERY_TICKS ticks of its clock. */
  start(incarnation: number): void {
    const { node } = this;
    let ticks = 0;
    let moving = false;
    let lastMoveTick = Number.NEGATIVE_INFINITY;
    const fire = (): void => {
      if (!node.alive(incarnation)) return;
      node.after(node.tickIntervalMicros, fire);
      if (node.paused()) return;
      ticks++;
      if (ticks % BALANCE_EVERY_TICKS !== 0 || moving || ticks - lastMoveTick < MOVE_SPACING_TICKS) return;
      const live = node.peerIds.filter((peer) => peer === node.id || !node.suspects(peer));
      const move = leadershipMove({ self: node.id, live, leaders: node.leaders() });
      if (move === null) return;
      moving = true;
      lastMoveTick = ticks;
      const started = node.transfer(move.range, move.to, () => {
        moving = false;
        lastMoveTick = ticks;
      });
      if (started) this.moves++;
      else moving = false;
    };
    node.after(node.tickIntervalMicros, fire);
  }
}

import type { NodeId } from "../core/engine/contract.js";

/**
 * What a node-level duty of a simulated node (liveness pings, leadership balancing,
 * placement) needs to run on the node's time: who it is and its peers, its tick, a timer,
 * and whether the incarnation that armed a timer still runs and is not paused.
 */
export interface SimNodeTimers {
  readonly id: NodeId;
  /** Every node of the run. */
  readonly peerIds: readonly NodeId[];
  /** Virtual time between two of the node's ticks, in microseconds. */
  readonly tickIntervalMicros: number;
  after(delayMicros: number, action: () => void): void;
  /** Whether incarnation `incarnation` of the node still runs (it has not crashed since). */
  alive(incarnation: number): boolean;
  /** Whether the process is paused (its timers do not fire). */
  paused(): boolean;
}

import { assert } from "../common/assert.js";
import type { NodeId } from "../engine/contract.js";

/**
 * Ballots (Lamport's proposal numbers) as one totally ordered integer: `round * BALLOT_NODE_SPAN
 * + node id`. Two nodes never use the same ballot, since the id is part of it, and a higher
 * round always wins, whatever the ids. One integer fits the engine contract's `term`
 * fields: a log entry's `term` is the ballot at which it was accepted (0: nothing accepted
 * there, a hole), and `EngineStatus.term` is the ballot a node has promised.
 *
 * The bound: node ids are below 2^20 (1,048,576), so rounds go up to 2^33 before a ballot
 * stops being a safe integer — billions of elections.
 */
export const BALLOT_NODE_SPAN = 1 << 20;
/** The highest node id a Paxos cluster can use. */
export const PAXOS_NODE_ID_MAX = BALLOT_NODE_SPAN - 1;
const ROUND_MAX = Math.floor(Number.MAX_SAFE_INTEGER / BALLOT_NODE_SPAN) - 1;

export function ballotOf(round: number, node: NodeId): number {
  assert(Number.isSafeInteger(round) && round >= 0 && round <= ROUND_MAX, `ballot round ${round} out of range`);
  assert(Number.isSafeInteger(node) && node > 0 && node <= PAXOS_NODE_ID_MAX, `node id ${node} out of the Paxos range 1..${PAXOS_NODE_ID_MAX}`);
  return round * BALLOT_NODE_SPAN + node;
}

export function roundOf(ballot: number): number {
  return Math.floor(ballot / BALLOT_NODE_SPAN);
}

/** The node that owns `ballot` (0 for the null ballot). */
export function ballotNode(ballot: number): NodeId {
  return ballot % BALLOT_NODE_SPAN;
}

/** `ballot` as people read it: round.node (0 for none). */
export function describeBallot(ballot: number): string {
  return ballot === 0 ? "0" : `${roundOf(ballot)}.${ballotNode(ballot)}`;
}

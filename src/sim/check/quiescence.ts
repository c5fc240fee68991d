/**
 * Quiescence's two properties (`synod sim --quiesce`; CockroachDB's quiesced ranges, whose
 * leader goes quiet only when every follower has caught up and nothing is pending, and
 * whose followers a node-liveness failure wakes).
 *
 * Safety of the mechanism — a quiet group has nothing to do (`checkQuietGroup`): a quiet
 * leader's log is all committed, and a member quiet under it (same term, following it)
 * holds exactly its log, all of it committed. Nothing is sent in a quiet group, so a group
 * that went quiet with a member behind leaves it behind until something wakes the group:
 * entries that never commit while their clients wait, or a follower missing committed
 * entries (one failure more from losing the quorum that holds them).
 *
 * Liveness — a quiet group whose leader is lost elects a successor (`checkQuietFailover`):
 * a quiet follower counts no election timeout, so without the node-level wake it would
 * follow a dead leader for ever. When the node that leads a quiet group crashes, pauses or
 * can no longer send to a majority of the group's voters, stays so for the next `windowMicros`,
 * and a majority of the other voters stays running and linked meanwhile, one of them must
 * lead a newer term within that window.
 */
import type { Engine, NodeId } from "../../core/engine/contract.js";
import { InvariantViolation } from "./violation.js";

/** A node's replica of the group being checked, if the node is up. */
export interface QuietMember {
  readonly id: NodeId;
  readonly engine: Engine<unknown, unknown>;
}

/** Checks one group at one moment; `where` names the group in a message (empty for one group). */
export function checkQuietGroup(members: readonly QuietMember[], where: string): void {
  for (const leader of members) {
    const leaderStatus = leader.engine.status();
    if (leaderStatus.role !== "leader" || leader.engine.quiescent?.() !== true) continue;
    if (leaderStatus.commitIndex !== leaderStatus.lastIndex) {
      throw new InvariantViolation("quiescence", `node ${leader.id}, leader of term ${leaderStatus.term}${where}, is quiet with entries ${leaderStatus.commitIndex + 1}..${leaderStatus.lastIndex} uncommitted: nothing will commit them until something wakes the group`);
    }
    for (const follower of members) {
      if (follower.id === leader.id || follower.engine.quiescent?.() !== true) continue;
      const status = follower.engine.status();
      if (status.term !== leaderStatus.term || status.leader !== leader.id) continue;
      if (status.lastIndex !== leaderStatus.lastIndex || status.commitIndex !== leaderStatus.commitIndex) {
        throw new InvariantViolation(
          "quiescence",
          `node ${follower.id} is quiet under leader ${leader.id} (term ${status.term}${where}) holding entries through ${status.lastIndex}, committed through ${status.commitIndex}, while its leader's log ends at ${leaderStatus.lastIndex}, committed through ${leaderStatus.commitIndex}: it went quiet behind its leader and stays there`,
        );
      }
    }
  }
}

/** The leader of a quiet group was lost to its group: crashed, paused, or cut off from a majority. */
export interface QuietLeaderLoss {
  readonly leader: NodeId;
  readonly term: number;
  readonly atMicros: number;
  /** What happened to it ("crashed", "paused", "cut off"). */
  readonly how: string;
  /** The group's voters then. */
  readonly voters: readonly NodeId[];
}

export interface QuietFailoverWorld {
  /** Whether the lost leader was back — running and linked with a majority of the voters — at some moment of the window. */
  leaderBack(loss: QuietLeaderLoss, fromMicros: number, toMicros: number): boolean;
  /** A majority of `among` (the largest set found) running and linked throughout the window, or an empty list. */
  connectedMajority(fromMicros: number, toMicros: number, among: readonly NodeId[]): NodeId[];
  /** Whether some node was elected in a term above `term` by `toMicros` (in the window, or before it: then the lost leader was already stale). */
  electedAfter(term: number, fromMicros: number, toMicros: number): boolean;
}

/** Checks every loss of a quiet group's leader whose window ended by `untilMicros`. */
export function checkQuietFailover(losses: readonly QuietLeaderLoss[], windowMicros: number, untilMicros: number, world: QuietFailoverWorld, where: string): void {
  for (const crash of losses) {
    const end = crash.atMicros + windowMicros;
    if (end > untilMicros) continue;
    if (world.leaderBack(crash, crash.atMicros, end)) continue;
    const survivors = crash.voters.filter((id) => id !== crash.leader);
    const linked = world.connectedMajority(crash.atMicros, end, survivors);
    if (linked.length * 2 <= crash.voters.length) continue;
    if (world.electedAfter(crash.term, crash.atMicros, end)) continue;
    throw new InvariantViolation(
      "quiet-failover",
      `node ${crash.leader}, leader of a quiet group${where} in term ${crash.term}, ${crash.how} at ${(crash.atMicros / 1e6).toFixed(3)} s, and no successor was elected within ${(windowMicros / 1e6).toFixed(1)} s though voters ${linked.join(",")} were running and linked with each other throughout: its quiet followers were never woken`,
    );
  }
}

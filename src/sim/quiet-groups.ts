/**
 * A run's quiescence (`synod sim --quiesce`), as the simulator watches it: the node-level
 * liveness every node runs, the quiet groups checked for members left behind, quiet leaders
 * lost and the successors their groups must elect (sim/check/quiescence.ts), and the counts
 * of what quiescence saved and what it cost.
 */
import type { NodeId } from "../core/engine/contract.js";
import { isLivenessMutant } from "../core/multi/liveness.js";
import type { GroupId } from "../core/multi/group.js";
import { checkQuietFailover, checkQuietGroup, type QuietLeaderLoss } from "./check/quiescence.js";
import type { GroupWatch } from "./group-watch.js";
import type { SimNode, SimQuiesceOptions } from "./node.js";
import type { SimParams } from "./params.js";
import type { SimResult } from "./run-options.js";
import type { Scheduler } from "./scheduler.js";
import type { Wire } from "./wire.js";

/** How often every group is checked for quiet members left behind. */
const QUIET_CHECK_MICROS = 100_000;
/**
 * The liveness ping interval, and how long a silent peer takes to be suspected, in ticks —
 * at least the longest election timeout a seed draws (20 ticks).
 */
const LIVENESS_PING_EVERY_TICKS = 5;
const LIVENESS_SUSPECT_AFTER_TICKS = 20;
/**
 * How long a quiet group whose leader's node crashed may take to elect a successor, when a
 * majority stays up and linked: suspicion (0.2 s), a woken voter's election timeout counted
 * from the wake (up to 0.4 s) and an election or two, with room.
 */
const QUIET_FAILOVER_MICROS = 1_500_000;

/** The node-level liveness every node runs with --quiesce; `mutant` is the run's, if any. */
export function livenessOptions(mutant: string | undefined): SimQuiesceOptions {
  return { pingEveryTicks: LIVENESS_PING_EVERY_TICKS, suspectAfterTicks: LIVENESS_SUSPECT_AFTER_TICKS, livenessMutant: mutant !== undefined && isLivenessMutant(mutant) ? mutant : null };
}

/** What the quiescence watch reads of the run. */
export interface QuietGroupsWorld {
  readonly params: SimParams;
  readonly scheduler: Scheduler;
  readonly nodes: ReadonlyMap<NodeId, SimNode<unknown>>;
  readonly wire: Wire;
  /** By group: every checker's state. */
  readonly groups: readonly GroupWatch[];
  /** How a message names a group (empty with one group). */
  readonly groupSuffix: (group: GroupId) => string;
}

/** Quiescence's checks and counts over a run with --quiesce. */
export class QuietGroups {
  /** By group: each time a quiet leader was lost to its group (at most once per leader and term). */
  private readonly quietLeaderLosses: QuietLeaderLoss[][] = [];

  constructor(private readonly world: QuietGroupsWorld) {}

  /** Checks every group for quiet members left behind every QUIET_CHECK_MICROS, from now on. */
  startChecks(): void {
    const { scheduler } = this.world;
    const quietCheck = (): void => {
      this.checkQuietGroups();
      scheduler.after(QUIET_CHECK_MICROS, quietCheck);
    };
    scheduler.after(QUIET_CHECK_MICROS, quietCheck);
  }

  /** Every group: no member quiet behind its quiet leader (sim/check/quiescence.ts). */
  checkQuietGroups(): void {
    for (const g of this.world.groups) {
      // A range a split made is hosted by a node once the node applied the split (or adopted it).
      const members = [...this.world.nodes.values()].filter((node) => node.up && node.hosts(g.group)).map((node) => ({ id: node.id, engine: node.engineOf(g.group) }));
      checkQuietGroup(members, this.world.groupSuffix(g.group));
    }
  }

  /**
   * The world changed: a quiet leader that crashed, paused or can no longer send to a
   * majority of its voters is noted, to check that its group elects a successor. A leader
   * whose messages still arrive (a one-way partition cutting only the answers) is not: the
   * group may wake (a proposal) and then, awake, its followers hear its heartbeats and do
   * not campaign — Raft's own limit without CheckQuorum, not quiescence's. A crashed node's
   * engine stays readable until it restarts.
   */
  noteQuietLeadersLost(g: GroupWatch): void {
    const { nodes, wire, scheduler } = this.world;
    for (const node of nodes.values()) {
      if (!node.hosts(g.group)) continue;
      const engine = node.engineOf(g.group);
      const status = engine.status();
      if (status.role !== "leader" || engine.quiescent?.() !== true) continue;
      const losses = (this.quietLeaderLosses[g.group] ??= []);
      if (losses.some((loss) => loss.leader === node.id && loss.term === status.term)) continue;
      const voters = engine.membership?.().voters ?? [...nodes.keys()];
      const reached = voters.filter((id) => id === node.id || (nodes.get(id)?.up === true && !wire.partition.isBlocked(node.id, id) && !wire.isHeld(node.id, id))).length;
      const how = !node.up ? "crashed" : node.paused ? "paused" : reached * 2 <= voters.length ? "was cut off from a majority" : null;
      if (how !== null) losses.push({ leader: node.id, term: status.term, atMicros: scheduler.now, how, voters });
    }
  }

  /** Every quiet leader lost: its group elected a successor in time, when it could (sim/check/quiescence.ts). */
  checkQuietFailovers(): void {
    const { params } = this.world;
    const until = params.faultPhaseMicros + params.healPhaseMicros;
    for (const g of this.world.groups) {
      const losses = this.quietLeaderLosses[g.group] ?? [];
      checkQuietFailover(losses, QUIET_FAILOVER_MICROS, until, {
        leaderBack: (loss, from, to) => g.opportunities.reachedMajority(loss.leader, from, to, loss.voters),
        connectedMajority: (from, to, among) => g.opportunities.connectedGroup(from, to, among, 1),
        // A newer term led by the window's end: elected in it, or before (the lost quiet leader was already stale).
        electedAfter: (term, _from, to) => g.leaderships.some((l) => l.term > term && l.atMicros <= to),
      }, this.world.groupSuffix(g.group));
    }
  }

  /** Every node's quiescence counts, summed: the run's stats. */
  counts(): NonNullable<SimResult["stats"]["quiescence"]> {
    const total = { pings: 0, groupTicks: 0, quietGroupTicks: 0, wakes: 0 };
    for (const node of this.world.nodes.values()) {
      const counts = node.quiescenceCounts;
      total.pings += counts.pings;
      total.groupTicks += counts.groupTicks;
      total.quietGroupTicks += counts.quietGroupTicks;
      total.wakes += counts.wakes;
    }
    return total;
  }
}

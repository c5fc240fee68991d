/**
 * A run's side of placing groups on some nodes only (`synod sim --replicas R`; the nodes'
 * side is placement.ts): where each group starts, when moves stop, the fault aimed at moves,
 * the final configuration the lost-write check reads, and the counts in the report.
 *
 * - Where groups start: group 0 on every node (it holds the cluster's configuration, as in
 *   production); every other group with the production `initialReplicas` over every node
 *   but the last, which joins with none, so the placement rule has ranges to move to it.
 * - The move-loss fault (R of 3 or more, with crashes among the fault classes): the first
 *   time a group gains a learner in the fault phase, the learner's node stalls (a pause,
 *   when pauses are among the fault classes), and a moment later one of the group's voters
 *   is lost for good: its machine never comes back. A range of R replicas must survive the
 *   loss of one: the correct rule, which removes a replica only once its replacement is a
 *   voter, keeps R voters through the move; the `remove-before-caught-up` mutant has removed
 *   one already, and the range, left with two voters of which one is gone, can never again
 *   elect a leader (the liveness checker sees it serve nothing after the heal).
 */
import type { Membership, NodeId } from "../core/engine/contract.js";
import { DEFAULT_GROUP, type GroupId } from "../core/multi/group.js";
import { initialReplicas, PLACEMENT_MUTANTS, type PlacementMutant } from "../core/multi/placement.js";
import type { SimNode, SimNodePlacement } from "./node.js";
import type { SimParams } from "./params.js";
import type { ScenarioContext } from "./scenario-kit.js";

/** How long the learner's node stalls, and when after the learner appeared a voter is lost. */
const LEARNER_STALL_MICROS = 2_500_000;
const LOSS_AFTER_MICROS = 1_500_000;

export function isPlacementMutant(name: string): name is PlacementMutant {
  return name in PLACEMENT_MUTANTS;
}

export interface PlacementRunWorld {
  readonly params: SimParams;
  readonly nodeIds: readonly NodeId[];
  readonly replicas: number;
  /** Zones given to the nodes in turn (`--zones Z`: node i in zone z((i - 1) mod Z)); absent: none. */
  readonly zones?: number;
  /** Start every group spread over every node, the last one included (a throughput run: nothing to move). */
  readonly spreadOverAll?: boolean;
  readonly mutant: PlacementMutant | null;
  readonly nodes: ReadonlyMap<NodeId, SimNode<unknown>>;
  now(): number;
  /** Moves stop here (when the clients stop), so the end state settles before the checks. */
  readonly stepsUntilMicros: number;
  /** The nemesis's hands (pause, during, the fault stream). */
  context(): ScenarioContext;
  /** Loses a node for good (Nemesis.lose). */
  lose(id: NodeId): void;
  /** `group`'s leader with the highest term among the live nodes. */
  leaderOf(group: GroupId): NodeId | null;
  /** With splits: whether range `group` exists (was born) as the run ends; absent, every group does. */
  groupExists?(group: GroupId): boolean;
  note(text: string): void;
}

export class PlacementRun {
  private moveLossFired = false;
  private readonly rangeMembers: readonly NodeId[];
  private readonly zoneMap: ReadonlyMap<NodeId, string> | undefined;

  constructor(private readonly world: PlacementRunWorld) {
    this.rangeMembers = world.spreadOverAll === true ? world.nodeIds : world.nodeIds.slice(0, -1);
    const zones = world.zones;
    this.zoneMap = zones === undefined ? undefined : new Map(world.nodeIds.map((id) => [id, `z${(id - 1) % zones}`]));
  }

  /** The voters `group` starts with. */
  initialVoters(group: GroupId): readonly NodeId[] {
    return group === DEFAULT_GROUP ? this.world.nodeIds : initialReplicas(group, this.rangeMembers, this.world.replicas);
  }

  /** What each node is told of placement. */
  nodeOptions(): SimNodePlacement {
    return {
      replicationFactor: this.world.replicas,
      initialVoters: (group) => this.initialVoters(group),
      mutant: this.world.mutant,
      ...(this.zoneMap === undefined ? {} : { zones: this.zoneMap }),
      stepsAllowed: () => this.world.now() < this.world.stepsUntilMicros,
    };
  }

  /** A node's replica of `group` now acts on `membership`: the move-loss fault watches for a learner. */
  membershipSeen(group: GroupId, membership: Membership): void {
    const { params } = this.world;
    if (this.moveLossFired || group === DEFAULT_GROUP || membership.learners.length === 0) return;
    if (this.world.replicas < 3 || !params.faults.includes("crash") || this.world.now() + LOSS_AFTER_MICROS + 1_500_000 >= params.faultPhaseMicros) return;
    this.moveLossFired = true;
    const ctx = this.world.context();
    const learner = membership.learners[0] as NodeId;
    this.world.note(`move-loss: group ${group} is adding node ${learner}; ${params.faults.includes("pause") ? `node ${learner} stalls, and ` : ""}one of the group's voters will be lost for good`);
    if (params.faults.includes("pause")) ctx.pause(learner, LEARNER_STALL_MICROS);
    ctx.during(LOSS_AFTER_MICROS, () => {
      const voters = (this.currentMembership(group) ?? membership).voters.filter((id) => id !== learner);
      if (voters.length === 0) return;
      this.world.lose(ctx.prng.pick(voters));
    });
  }

  /**
   * The voters of `group`'s final configuration: as its leader sees it, or with no leader as
   * the live replica that committed furthest does. Null when no live node hosts the group.
   */
  finalVoters(group: GroupId): NodeId[] | null {
    const membership = this.currentMembership(group);
    return membership === null ? null : [...new Set([...membership.voters, ...membership.outgoing])];
  }

  /** `group`'s configuration as its leader sees it, or with no leader as the live replica whose log goes furthest does. */
  private currentMembership(group: GroupId): Membership | null {
    const leader = this.world.leaderOf(group);
    let source: SimNode<unknown> | undefined = leader === null ? undefined : this.world.nodes.get(leader);
    if (source === undefined) {
      for (const node of this.world.nodes.values()) {
        if (!node.up || !node.hosts(group)) continue;
        if (source === undefined || node.engineOf(group).status().lastIndex > source.engineOf(group).status().lastIndex) source = node;
      }
    }
    return source?.engineOf(group).membership?.() ?? null;
  }

  stats(): { readonly moves: number; readonly transfers: number; readonly drops: number; readonly replicasAtEnd: readonly number[]; readonly zonesShortAtEnd?: number } {
    let moves = 0;
    let transfers = 0;
    let drops = 0;
    const replicasAtEnd: number[] = [];
    for (const node of this.world.nodes.values()) {
      const counts = node.placementCounts;
      moves += counts.moves;
      transfers += counts.transfers;
      drops += counts.drops;
      replicasAtEnd.push(node.up ? Array.from({ length: this.world.params.groups }, (_, group) => node.hosts(group)).filter(Boolean).length : 0);
    }
    return { moves, transfers, drops, replicasAtEnd, ...(this.zoneMap === undefined ? {} : { zonesShortAtEnd: this.zonesShort().length }) };
  }

  /**
   * With zones: the groups but group 0 whose final voters span fewer zones than they could
   * (the zones of the live nodes, up to the replicas each keeps), each as "group G on
   * nodes N:zone,...". A group no live node hosts counts too. Empty without zones.
   */
  zonesShort(): string[] {
    const zones = this.zoneMap;
    if (zones === undefined) return [];
    const live = [...this.world.nodes.values()].filter((node) => node.up).map((node) => node.id);
    const reachable = new Set(live.map((id) => zones.get(id))).size;
    const short: string[] = [];
    for (let group = 1; group < this.world.params.groups; group++) {
      if (this.world.groupExists?.(group) === false) continue;
      const voters = this.finalVoters(group) ?? [];
      if (new Set(voters.map((id) => zones.get(id))).size < Math.min(this.world.replicas, reachable)) short.push(`group ${group} on nodes ${voters.map((id) => `${id}:${zones.get(id) ?? "?"}`).join(",") || "none"}`);
    }
    return short;
  }
}

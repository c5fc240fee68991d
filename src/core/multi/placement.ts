/**
 * Where each range's replicas live (docs/sharding.md, "Placement"). A cluster with more
 * members than its replication factor keeps each range (other than group 0, which every
 * member hosts: it holds the cluster's configuration) on `replicationFactor` of them, and
 * this rule says what each range changes next:
 *
 * - repair: a range with fewer healthy voters than it wants gets a learner on the live
 *   member holding the fewest replicas (promoted by its leader once caught up); a replica on
 *   a node that left the cluster, or has been down longer than the cluster waits
 *   (`dead`), is removed, but only once the range has its healthy voters without it;
 * - rebalance: with nothing to repair and nothing under way anywhere, the member holding the
 *   most replicas gives one range to the live member holding the fewest, when they differ by
 *   two or more: a learner there first, and once it is a voter, the range has one voter too
 *   many and removes the one on the busiest node (the giver). Up to `REBALANCE_MOVES_MAX`
 *   such moves start together, each chosen with the counts the ones before it leave; the
 *   next ones wait until all of them are done, so views a second stale cannot overshoot.
 *
 * Zones (`--zone`: a rack, a data centre, any failure domain; a member without one is a zone
 * of its own) come first in every choice, as CockroachDB's localities and TiKV's labels do:
 * a new replica goes to a zone the range has none in when there is one, a replica removed
 * is one of two in a zone before any other, a range with two replicas in one zone while a
 * live member of a zone it lacks exists moves one there (`zone`), and rebalancing never
 * makes a move that leaves a range in fewer zones. Without zones every member is its own,
 * and each rule is the one above.
 *
 * A replica is never removed while the range would be left with fewer healthy voters than
 * it wants: a learner, still catching up, does not count (the mutant that counts it is
 * caught by placement.test.ts). Pure and deterministic: every node deciding on the same
 * view decides the same, and each range's leader takes its own range's step.
 */
import type { NodeId } from "../engine/contract.js";
import type { GroupId } from "./group.js";

/** A range's replicas, as its descriptor says. */
export interface RangeReplicas {
  readonly id: GroupId;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export interface PlacementView {
  /** The replicas each range keeps (capped by the number of members). */
  readonly replicationFactor: number;
  /** The cluster's members (group 0's voters): the nodes that may hold replicas. */
  readonly members: readonly NodeId[];
  /** The members reachable now: new replicas go only there. */
  readonly live: readonly NodeId[];
  /** Members down for longer than the cluster waits before it replaces their replicas. */
  readonly dead: readonly NodeId[];
  /** Every range but group 0. */
  readonly ranges: readonly RangeReplicas[];
  /** Each member's zone (absent, or a member missing: a zone of its own). */
  readonly zones?: ReadonlyMap<NodeId, string>;
}

/** A zone's name (`--zone`): 1 to 64 letters, digits, '.', '_' or '-'. */
export function isZoneName(name: string): boolean {
  return /^[A-Za-z0-9._-]{1,64}$/.test(name);
}

/** One configuration change of one range: a learner added (promoted once caught up), or a replica removed. */
export interface PlacementStep {
  readonly range: GroupId;
  readonly kind: "add" | "remove";
  readonly node: NodeId;
  readonly why: "under-replicated" | "not-a-member" | "dead" | "learner-lost" | "rebalance" | "over-replicated" | "zone" | "moved-by-request";
}

export const PLACEMENT_MUTANTS = {
  "remove-before-caught-up": "counts a learner that is still catching up as one of the range's replicas, so the replica it replaces is removed before the new one holds the range",
  "zone-blind": "places replicas by the members' replica counts alone, ignoring their zones: a range can end with every replica in one zone while other zones have room",
  "directory-trusts-term":
    "ranks two descriptions of a range by term before whether they know a leader: a removed replica that campaigns on, a term higher each try, hides its leader's description, so a node its leader added never hosts the range",
} as const;

export type PlacementMutant = keyof typeof PLACEMENT_MUTANTS;

/**
 * Rebalancing moves one plan starts at most, as TiKV's and CockroachDB's schedulers bound
 * theirs: one at a time made growing a cluster take a second or two per replica moved.
 */
export const REBALANCE_MOVES_MAX = 4;

/**
 * The next step of every range that has one: a repair for each range that needs one, and,
 * when nothing needs repair and no range is changing, up to `REBALANCE_MOVES_MAX`
 * rebalancing moves for the whole cluster, chosen on one view (the next wait until these are
 * done, so views a second stale cannot overshoot).
 */
export function placementPlan(view: PlacementView, mutant: PlacementMutant | null = null): PlacementStep[] {
  const wanted = Math.min(view.replicationFactor, view.members.length);
  const members = new Set(view.members);
  const dead = new Set(view.dead);
  const live = new Set(view.live.filter((id) => members.has(id) && !dead.has(id)));
  const healthy = (id: NodeId): boolean => members.has(id) && !dead.has(id);
  const zones = view.zones;
  const zoneOf = (id: NodeId): string => (mutant === "zone-blind" ? undefined : zones?.get(id)) ?? `node:${id}`;
  const counts = replicaCounts(view);
  const steps: PlacementStep[] = [];
  let changing = false;
  for (const range of [...view.ranges].sort((a, b) => a.id - b.id)) {
    if (range.learners.length > 0 || range.voters.length !== wanted || !range.voters.every(healthy)) changing = true;
    const step = repair(range, wanted, members, healthy, live, counts, zoneOf, mutant);
    if (step === null) continue;
    steps.push(step);
    // Later decisions in the same plan see this one's effect on the counts.
    counts.set(step.node, (counts.get(step.node) ?? 0) + (step.kind === "add" ? 1 : -1));
  }
  if (steps.length > 0 || changing) return steps;
  const moves: PlacementStep[] = [];
  const moving = new Set<GroupId>();
  while (moves.length < REBALANCE_MOVES_MAX) {
    const move = rebalance(
      view.ranges.filter((range) => !moving.has(range.id)),
      counts,
      healthy,
      live,
      zoneOf,
    );
    if (move === null) break;
    moves.push(move.step);
    moving.add(move.step.range);
    // The next moves see this one's effect: the taker gains a replica, the giver gives one up once it is a voter.
    counts.set(move.step.node, (counts.get(move.step.node) ?? 0) + 1);
    counts.set(move.giver, (counts.get(move.giver) ?? 0) - 1);
  }
  return moves;
}

/** How many ranges hold a replica (voter or learner) on each member. */
export function replicaCounts(view: Pick<PlacementView, "members" | "ranges">): Map<NodeId, number> {
  const counts = new Map<NodeId, number>(view.members.map((id) => [id, 0]));
  for (const range of view.ranges) for (const id of [...range.voters, ...range.learners]) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

function repair(
  range: RangeReplicas,
  wanted: number,
  members: ReadonlySet<NodeId>,
  healthy: (id: NodeId) => boolean,
  live: ReadonlySet<NodeId>,
  counts: ReadonlyMap<NodeId, number>,
  zoneOf: (id: NodeId) => string,
  mutant: PlacementMutant | null,
): PlacementStep | null {
  // A learner on a node that left or died will never catch up: it goes first.
  const lostLearner = range.learners.find((id) => !healthy(id));
  if (lostLearner !== undefined) return { range: range.id, kind: "remove", node: lostLearner, why: "learner-lost" };
  // What the range holds safely: its healthy voters (the mutant counts its learners too).
  const counted = mutant === "remove-before-caught-up" ? [...range.voters, ...range.learners] : range.voters;
  // A learner is catching up: its leader promotes it, then the range decides again.
  if (range.learners.length > 0 && mutant !== "remove-before-caught-up") return null;
  const hosted = new Set([...range.voters, ...range.learners]);
  // The zones the range's healthy replicas are in: a dead voter's zone is one a replacement may go to.
  const inZone = zoneCounts([...hosted].filter(healthy), zoneOf);
  const candidates = [...live].filter((id) => !hosted.has(id));
  if (counted.filter(healthy).length < wanted) {
    const target = fewest(candidates, counts, (id) => inZone.get(zoneOf(id)) ?? 0);
    return target === null ? null : { range: range.id, kind: "add", node: target, why: "under-replicated" };
  }
  // Enough healthy voters: one that is not healthy, or one too many, goes.
  const gone = range.voters.find((id) => !healthy(id));
  if (gone !== undefined) return { range: range.id, kind: "remove", node: gone, why: members.has(gone) ? "dead" : "not-a-member" };
  if (counted.length > wanted) {
    // One of two in a zone goes before any other, then the busiest.
    const crowded = Math.max(...range.voters.map((id) => inZone.get(zoneOf(id)) ?? 0));
    const busiest = most(
      range.voters.filter((id) => (inZone.get(zoneOf(id)) ?? 0) === crowded),
      counts,
    );
    return busiest === null ? null : { range: range.id, kind: "remove", node: busiest, why: "over-replicated" };
  }
  // Two in one zone while a live member of a zone the range lacks could take one: a learner there, then the crowded zone gives one up.
  if ([...inZone.values()].some((n) => n >= 2)) {
    const target = fewest(
      candidates.filter((id) => !inZone.has(zoneOf(id))),
      counts,
    );
    if (target !== null) return { range: range.id, kind: "add", node: target, why: "zone" };
  }
  return null;
}

/** How many of `ids` are in each zone. */
function zoneCounts(ids: readonly NodeId[], zoneOf: (id: NodeId) => string): Map<string, number> {
  const inZone = new Map<string, number>();
  for (const id of ids) inZone.set(zoneOf(id), (inZone.get(zoneOf(id)) ?? 0) + 1);
  return inZone;
}

/**
 * The member with the most replicas gives a range to the live member with the fewest, when
 * they differ by two or more: the highest-numbered range it holds that the taker does not and
 * that the move leaves in as many zones as before. When no range of the giver's may go to
 * that taker (zones), the next fewest is tried, while the two still differ by two.
 */
function rebalance(
  ranges: readonly RangeReplicas[],
  counts: ReadonlyMap<NodeId, number>,
  healthy: (id: NodeId) => boolean,
  live: ReadonlySet<NodeId>,
  zoneOf: (id: NodeId) => string,
): { readonly step: PlacementStep; readonly giver: NodeId } | null {
  const givers = [...counts.keys()].filter(healthy);
  const giver = most(givers, counts);
  if (giver === null) return null;
  const zonesOf = (ids: readonly NodeId[]): number => new Set(ids.map(zoneOf)).size;
  const byId = [...ranges].sort((a, b) => b.id - a.id);
  const takers = [...live].sort((a, b) => (counts.get(a) ?? 0) - (counts.get(b) ?? 0) || a - b);
  for (const taker of takers) {
    if ((counts.get(giver) ?? 0) - (counts.get(taker) ?? 0) < 2) return null;
    const range = byId.find((r) => r.voters.includes(giver) && !r.voters.includes(taker) && !r.learners.includes(taker) && zonesOf([...r.voters.filter((id) => id !== giver), taker]) >= zonesOf(r.voters));
    if (range !== undefined) return { step: { range: range.id, kind: "add", node: taker, why: "rebalance" }, giver };
  }
  return null;
}

/** The node of `ids` first by `first` (if given), then with the fewest replicas, then the lowest id; null if none. */
function fewest(ids: readonly NodeId[], counts: ReadonlyMap<NodeId, number>, first: (id: NodeId) => number = () => 0): NodeId | null {
  let best: NodeId | null = null;
  for (const id of [...ids].sort((a, b) => a - b)) {
    if (best === null || first(id) < first(best) || (first(id) === first(best) && (counts.get(id) ?? 0) < (counts.get(best) ?? 0))) best = id;
  }
  return best;
}

/** The node of `ids` with the most replicas (the highest id among equals); null if none. */
function most(ids: readonly NodeId[], counts: ReadonlyMap<NodeId, number>): NodeId | null {
  let best: NodeId | null = null;
  for (const id of [...ids].sort((a, b) => b - a)) if (best === null || (counts.get(id) ?? 0) > (counts.get(best) ?? 0)) best = id;
  return best;
}

/**
 * Why a replica of `range` cannot move from node `from` to node `to` now (`synod shards move
 * ID --from F --to T`), or null when it can: `to` must be a live member not hosting the range,
 * `from` one of its voters and not its leader (`leader`: its leadership moves first), and the
 * range not in the middle of another change. The move is then a learner on `to`, promoted
 * once caught up, and the voter on `from` removed: the range never has fewer voters than before.
 */
export function moveRefusal(range: RangeReplicas, from: NodeId, to: NodeId, view: Pick<PlacementView, "members" | "live">, leader: NodeId | null): string | null {
  const replicas = [...range.voters, ...range.learners].sort((a, b) => a - b).join(", ");
  if (from === to) return `from and to are both node ${from}`;
  if (!view.members.includes(to)) return `node ${to} is not a member of the cluster (synod members list)`;
  if (!view.live.includes(to)) return `node ${to} cannot be reached now`;
  if (range.voters.includes(to) || range.learners.includes(to)) return `node ${to} already hosts range ${range.id} (its replicas: ${replicas})`;
  if (!range.voters.includes(from)) return `node ${from} holds no voter of range ${range.id} (its replicas: ${replicas})`;
  if (from === leader) return `node ${from} leads range ${range.id}: move its leadership first (synod shards move ${range.id} --leader N)`;
  if (range.learners.length > 0) return `range ${range.id} is adding a replica already (a learner on node ${range.learners.join(", ")} is catching up): retry once it is a voter`;
  return null;
}

/**
 * Where a range the cluster starts with (`--shards`) is first placed, before any move: every
 * member for range 0 (the cluster's configuration lives there) or when the cluster has no
 * more members than the replicas each range keeps; otherwise `replicationFactor` members
 * taken round the members in id order, each range starting where the last one ended, so
 * the counts start within one of each other. Every member computes the same.
 */
export function initialReplicas(range: GroupId, members: readonly NodeId[], replicationFactor: number): NodeId[] {
  if (range === 0 || replicationFactor <= 0 || members.length <= replicationFactor) return [...members];
  const sorted = [...members].sort((a, b) => a - b);
  const first = ((range - 1) * replicationFactor) % sorted.length;
  return Array.from({ length: replicationFactor }, (_, k) => sorted[(first + k) % sorted.length] as NodeId).sort((a, b) => a - b);
}

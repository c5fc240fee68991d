import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { NodeId } from "../engine/contract.js";
import { initialReplicas, moveRefusal, placementPlan, REBALANCE_MOVES_MAX, replicaCounts, type PlacementMutant, type PlacementView, type RangeReplicas } from "./placement.js";

interface Cluster {
  readonly members: NodeId[];
  readonly dead: NodeId[];
  readonly ranges: { id: number; voters: NodeId[]; learners: NodeId[] }[];
}

/**
 * Runs the rule to rest: each round, every range's leader takes its step (some rounds a
 * random few are late), learners on live nodes catch up and are promoted at random. Returns
 * the first broken promise it sees, or null.
 */
function settle(cluster: Cluster, pace: readonly number[], mutant: PlacementMutant | null = null, zones?: ReadonlyMap<NodeId, string>): string | null {
  const wanted = Math.min(3, cluster.members.length);
  const healthy = (id: NodeId): boolean => cluster.members.includes(id) && !cluster.dead.includes(id);
  const view = (): PlacementView => ({
    replicationFactor: 3,
    members: cluster.members,
    live: cluster.members.filter((id) => !cluster.dead.includes(id)),
    dead: cluster.dead,
    ranges: cluster.ranges as readonly RangeReplicas[],
    ...(zones === undefined ? {} : { zones }),
  });
  for (let round = 0; round < 400; round++) {
    const steps = placementPlan(view(), mutant);
    const learners = cluster.ranges.some((range) => range.learners.length > 0);
    if (steps.length === 0 && !learners) return null;
    for (const [i, step] of steps.entries()) {
      if (round % 2 === 0 && (pace[(round + i) % pace.length] ?? 0) % 4 === 0) continue; // this leader looks later (every other round at most)
      const range = cluster.ranges.find((r) => r.id === step.range);
      if (range === undefined) return `a step for range ${step.range}, which does not exist`;
      if (step.kind === "add") {
        if (range.voters.includes(step.node) || range.learners.includes(step.node)) return `range ${range.id} adds node ${step.node}, which it holds`;
        if (!healthy(step.node)) return `range ${range.id} adds node ${step.node}, which is not a live member`;
        range.learners.push(step.node);
      } else {
        const learner = range.learners.indexOf(step.node);
        if (learner >= 0) range.learners.splice(learner, 1);
        else {
          const at = range.voters.indexOf(step.node);
          if (at < 0) return `range ${range.id} removes node ${step.node}, which it does not hold`;
          range.voters.splice(at, 1);
          const left = range.voters.filter(healthy).length;
          if (left < wanted) return `range ${range.id} removed node ${step.node} and was left with ${left} healthy voters, fewer than ${wanted}`;
        }
      }
    }
    // Learners on live nodes catch up, some this round and some later.
    for (const [i, range] of cluster.ranges.entries()) {
      if (round % 2 === 0 && (pace[(round * 7 + i) % pace.length] ?? 0) % 3 === 0) continue;
      const promoted = range.learners.filter(healthy);
      range.voters.push(...promoted);
      range.learners = range.learners.filter((id) => !healthy(id));
    }
  }
  return "the rule did not come to rest in 400 rounds";
}

const clusterShape = fc.record({
  nodes: fc.integer({ min: 3, max: 7 }),
  ranges: fc.integer({ min: 1, max: 24 }),
  start: fc.array(fc.nat(), { minLength: 72, maxLength: 72 }),
  deadPicks: fc.array(fc.nat(), { maxLength: 2 }),
  leftPicks: fc.array(fc.nat(), { maxLength: 1 }),
  pace: fc.array(fc.nat(), { minLength: 1, maxLength: 50 }),
});

/** A cluster whose ranges start on three nodes each (some of them the first three only, as one that just grew), with some nodes dead or gone. */
function build({ nodes, ranges, start, deadPicks, leftPicks }: { nodes: number; ranges: number; start: number[]; deadPicks: number[]; leftPicks: number[] }): Cluster {
  const all = Array.from({ length: nodes }, (_, i) => i + 1);
  const grown = (start[0] ?? 0) % 2 === 0;
  const placed = Array.from({ length: ranges }, (_, id) => {
    const pool = grown ? all.slice(0, 3) : [...all];
    const voters: NodeId[] = [];
    for (let k = 0; voters.length < 3; k++) {
      const pick = pool[((start[(id * 3 + k) % start.length] ?? 0) + k) % pool.length] as NodeId;
      if (!voters.includes(pick)) voters.push(pick);
    }
    return { id: id + 1, voters, learners: [] as NodeId[] };
  });
  // At most nodes - 3 nodes dead or gone, so three healthy members remain for every range.
  const spare = nodes - 3;
  const dead = [...new Set(deadPicks.map((pick) => all[pick % nodes] as NodeId))].slice(0, spare);
  const left = [...new Set(leftPicks.map((pick) => all[pick % nodes] as NodeId))].filter((id) => !dead.includes(id)).slice(0, spare - dead.length);
  return { members: all.filter((id) => !left.includes(id)), dead, ranges: placed };
}

describe("placementPlan", () => {
  test("from any start, with nodes dead or gone, every range ends on three healthy voters, replica counts within one of each other, and no replica is removed before its replacement is a voter", () => {
    fc.assert(
      fc.property(clusterShape, (shape) => {
        const cluster = build(shape);
        const broken = settle(cluster, shape.pace);
        assert.equal(broken, null);
        const healthy = cluster.members.filter((id) => !cluster.dead.includes(id));
        for (const range of cluster.ranges) {
          assert.equal(range.voters.length, 3, `range ${range.id}: ${range.voters.join(",")}`);
          assert.ok(range.voters.every((id) => healthy.includes(id)), `range ${range.id} is on healthy members only: ${range.voters.join(",")}`);
        }
        const counts = replicaCounts({ members: healthy, ranges: cluster.ranges });
        const spread = healthy.map((id) => counts.get(id) ?? 0);
        assert.ok(Math.max(...spread) - Math.min(...spread) <= 1, `replica counts ${spread.join(",")} over nodes ${healthy.join(",")}`);
        assert.deepEqual(placementPlan({ replicationFactor: 3, members: cluster.members, live: healthy, dead: cluster.dead, ranges: cluster.ranges }), [], "at rest");
      }),
      { numRuns: 300 },
    );
  });

  test("the mutant that counts a catching-up learner as a replica removes the replica it replaces too early, and is caught", () => {
    let caught = 0;
    fc.assert(
      fc.property(clusterShape, (shape) => {
        const broken = settle(build(shape), shape.pace, "remove-before-caught-up");
        if (broken !== null && broken.includes("fewer than")) caught++;
      }),
      { numRuns: 100 },
    );
    assert.ok(caught > 0, "some shape shows the early removal");
  });

  test("grows a three-node cluster's eight ranges onto two new nodes a few moves at a time: learners, then the busiest replicas go", () => {
    const ranges = Array.from({ length: 8 }, (_, i) => ({ id: i + 1, voters: [1, 2, 3], learners: [] as NodeId[] }));
    const view: PlacementView = { replicationFactor: 3, members: [1, 2, 3, 4, 5], live: [1, 2, 3, 4, 5], dead: [], ranges };
    // Up to REBALANCE_MOVES_MAX moves at once, each chosen with the counts the ones before it leave (the takers take turns).
    assert.equal(REBALANCE_MOVES_MAX, 4);
    assert.deepEqual(placementPlan(view), [
      { range: 8, kind: "add", node: 4, why: "rebalance" },
      { range: 7, kind: "add", node: 5, why: "rebalance" },
      { range: 6, kind: "add", node: 4, why: "rebalance" },
      { range: 5, kind: "add", node: 5, why: "rebalance" },
    ]);
    // While one learner catches up, nothing else starts.
    const catching = ranges.map((r) => (r.id === 8 ? { ...r, learners: [4] } : r));
    assert.deepEqual(placementPlan({ ...view, ranges: catching }), []);
    // Promoted: one voter too many, and node 3 (the busiest, highest id among equals) gives it up.
    const promoted = ranges.map((r) => (r.id === 8 ? { ...r, voters: [1, 2, 3, 4] } : r));
    assert.deepEqual(placementPlan({ ...view, ranges: promoted }), [{ range: 8, kind: "remove", node: 3, why: "over-replicated" }]);
    // All four promoted at once: each removal sees the ones before it, so each of the three old nodes gives one up before any gives a second.
    const all = ranges.map((r) => (r.id >= 5 ? { ...r, voters: [1, 2, 3, r.id % 2 === 0 ? 4 : 5] } : r));
    assert.deepEqual(
      placementPlan({ ...view, ranges: all }).map((step) => step.node),
      [3, 2, 1, 3],
    );
  });

  test("a dead node's replicas are replaced, each by a learner first; a node that left the cluster is removed once the range holds three without it; a lost learner goes", () => {
    const view: PlacementView = { replicationFactor: 3, members: [1, 2, 3, 4], live: [1, 2, 4], dead: [3], ranges: [{ id: 1, voters: [1, 2, 3], learners: [] }] };
    assert.deepEqual(placementPlan(view), [{ range: 1, kind: "add", node: 4, why: "under-replicated" }]);
    assert.deepEqual(placementPlan({ ...view, ranges: [{ id: 1, voters: [1, 2, 3, 4], learners: [] }] }), [{ range: 1, kind: "remove", node: 3, why: "dead" }]);
    // Down, but not for long enough (not dead): nothing moves.
    assert.deepEqual(placementPlan({ ...view, dead: [] }), []);
    // Node 3 left the cluster.
    const left: PlacementView = { replicationFactor: 3, members: [1, 2, 4], live: [1, 2, 4], dead: [], ranges: [{ id: 1, voters: [1, 2, 3, 4], learners: [] }] };
    assert.deepEqual(placementPlan(left), [{ range: 1, kind: "remove", node: 3, why: "not-a-member" }]);
    assert.deepEqual(placementPlan({ ...left, ranges: [{ id: 1, voters: [1, 2, 4], learners: [3] }] }), [{ range: 1, kind: "remove", node: 3, why: "learner-lost" }]);
    // Three members, one dead: no healthy node to replace it on, and the dead voter stays (removing it would leave two).
    assert.deepEqual(placementPlan({ replicationFactor: 3, members: [1, 2, 3], live: [1, 2], dead: [3], ranges: [{ id: 1, voters: [1, 2, 3], learners: [] }] }), []);
  });

  test("the ranges a cluster starts with are placed round the members, counts within one; range 0, and a cluster no larger than the factor, on every member", () => {
    const members = [5, 1, 3, 2, 4];
    const placed = Array.from({ length: 8 }, (_, i) => initialReplicas(i + 1, members, 3));
    assert.deepEqual(placed[0], [1, 2, 3]);
    assert.deepEqual(placed[1], [4, 5, 1].sort());
    const counts = replicaCounts({ members, ranges: placed.map((voters, i) => ({ id: i + 1, voters, learners: [] })) });
    const spread = [...counts.values()];
    assert.ok(Math.max(...spread) - Math.min(...spread) <= 1, spread.join(","));
    assert.deepEqual(initialReplicas(0, members, 3), members);
    assert.deepEqual(initialReplicas(4, [3, 1, 2], 3), [3, 1, 2]);
    assert.deepEqual(initialReplicas(4, members, 0), members);
  });
});

/** Nodes 1..n over `zoneCount` zones, round the zones in id order ("z0", "z1", ...), or some zone-less when `zoneless` picks them. */
function zonesFor(nodes: number, zoneCount: number, zoneless: readonly number[] = []): Map<NodeId, string> {
  const zones = new Map<NodeId, string>();
  for (let id = 1; id <= nodes; id++) if (!zoneless.includes(id)) zones.set(id, `z${(id - 1) % zoneCount}`);
  return zones;
}

describe("placementPlan with zones", () => {
  const zoneShape = fc.record({ shape: clusterShape, zoneCount: fc.integer({ min: 2, max: 4 }), zoneless: fc.array(fc.integer({ min: 1, max: 7 }), { maxLength: 2 }) });

  test("from any start, every range ends in as many zones as its replicas can span (the zones with a healthy member, up to three), and no replica is removed before its replacement is a voter", () => {
    fc.assert(
      fc.property(zoneShape, ({ shape, zoneCount, zoneless }) => {
        const cluster = build(shape);
        const zones = zonesFor(shape.nodes, zoneCount, zoneless);
        assert.equal(settle(cluster, shape.pace, null, zones), null);
        const healthy = cluster.members.filter((id) => !cluster.dead.includes(id));
        const zoneOf = (id: NodeId): string => zones.get(id) ?? `node:${id}`;
        const reachable = new Set(healthy.map(zoneOf)).size;
        for (const range of cluster.ranges) {
          assert.equal(range.voters.length, 3, `range ${range.id}: ${range.voters.join(",")}`);
          assert.equal(new Set(range.voters.map(zoneOf)).size, Math.min(3, reachable), `range ${range.id} on ${range.voters.map((id) => `${id}:${zoneOf(id)}`).join(",")}`);
        }
        assert.deepEqual(placementPlan({ replicationFactor: 3, members: cluster.members, live: healthy, dead: cluster.dead, ranges: cluster.ranges, zones }), [], "at rest");
      }),
      { numRuns: 300 },
    );
  });

  test("without zones, or with every member in a zone of its own, the plan is the same", () => {
    fc.assert(
      fc.property(clusterShape, (shape) => {
        const cluster = build(shape);
        const view: PlacementView = { replicationFactor: 3, members: cluster.members, live: cluster.members.filter((id) => !cluster.dead.includes(id)), dead: cluster.dead, ranges: cluster.ranges };
        const own = new Map(cluster.members.map((id) => [id, `rack-${id}`] as const));
        assert.deepEqual(placementPlan({ ...view, zones: own }), placementPlan(view));
      }),
      { numRuns: 300 },
    );
  });

  test("a new replica goes to a zone the range lacks, one of two in a zone is removed first, and a range crowded in one zone moves a replica out", () => {
    const zones = new Map<NodeId, string>([
      [1, "a"],
      [2, "a"],
      [3, "b"],
      [4, "b"],
      [5, "c"],
    ]);
    const base = { replicationFactor: 3, members: [1, 2, 3, 4, 5], live: [1, 2, 3, 4, 5], dead: [], zones };
    // Node 3 dead: of 4 and 5 (each with no replica), 5 is in zone c, which the range lacks.
    assert.deepEqual(placementPlan({ ...base, live: [1, 2, 4, 5], dead: [3], ranges: [{ id: 1, voters: [1, 3, 4], learners: [] }] }), [{ range: 1, kind: "add", node: 5, why: "under-replicated" }]);
    // Two in zone a: a learner in zone c; promoted, one of the two in zone a goes (the busier, 2).
    assert.deepEqual(placementPlan({ ...base, ranges: [{ id: 1, voters: [1, 2, 3], learners: [] }] }), [{ range: 1, kind: "add", node: 5, why: "zone" }]);
    assert.deepEqual(placementPlan({ ...base, ranges: [{ id: 1, voters: [1, 2, 3, 5], learners: [] }] }), [{ range: 1, kind: "remove", node: 2, why: "over-replicated" }]);
    // A dead voter's zone is free for its replacement: node 1 (zone a) dead, node 2 (zone a,
    // busier than node 4 of zone b) takes its place, not a second replica in zone b.
    const three = new Map<NodeId, string>([
      [1, "a"],
      [2, "a"],
      [3, "b"],
      [4, "b"],
      [5, "c"],
      [6, "c"],
    ]);
    const deadA: PlacementView = {
      replicationFactor: 3,
      members: [1, 2, 3, 4, 5, 6],
      live: [2, 3, 4, 5, 6],
      dead: [1],
      zones: three,
      ranges: [
        { id: 1, voters: [1, 3, 5], learners: [] },
        { id: 2, voters: [2, 3, 5], learners: [] },
      ],
    };
    assert.deepEqual(placementPlan(deadA), [{ range: 1, kind: "add", node: 2, why: "under-replicated" }]);
    // Zone blind, the range stays crowded in zone a.
    assert.deepEqual(placementPlan({ ...base, ranges: [{ id: 1, voters: [1, 2, 3], learners: [] }] }, "zone-blind"), []);
  });

  test("the zone-blind mutant leaves ranges crowded in a zone, and is caught", () => {
    let caught = 0;
    fc.assert(
      fc.property(zoneShape, ({ shape, zoneCount }) => {
        const cluster = build(shape);
        const zones = zonesFor(shape.nodes, zoneCount);
        if (settle(cluster, shape.pace, "zone-blind", zones) !== null) return;
        const healthy = cluster.members.filter((id) => !cluster.dead.includes(id));
        const reachable = new Set(healthy.map((id) => zones.get(id))).size;
        if (cluster.ranges.some((range) => new Set(range.voters.map((id) => zones.get(id))).size < Math.min(3, reachable))) caught++;
      }),
      { numRuns: 100 },
    );
    assert.ok(caught > 0, "some shape leaves a range in fewer zones than it could span");
  });
});

describe("moveRefusal", () => {
  const range: RangeReplicas = { id: 4, voters: [1, 2, 3], learners: [] };
  const view = { members: [1, 2, 3, 4, 5], live: [1, 2, 3, 4] };
  test("a voter that does not lead moves to a live member that does not host the range", () => {
    assert.equal(moveRefusal(range, 2, 4, view, 1), null);
  });
  test("each reason a move cannot be made now is named", () => {
    const cases: [NodeId, NodeId, NodeId | null, RangeReplicas, RegExp][] = [
      [2, 2, 1, range, /both node 2/],
      [2, 9, 1, range, /node 9 is not a member/],
      [2, 5, 1, range, /node 5 cannot be reached/],
      [2, 3, 1, range, /node 3 already hosts range 4 \(its replicas: 1, 2, 3\)/],
      [2, 4, 1, { ...range, learners: [4] }, /node 4 already hosts range 4 \(its replicas: 1, 2, 3, 4\)/],
      [4, 5, 1, range, /node 5 cannot be reached/],
      [5, 4, 1, range, /node 5 holds no voter of range 4/],
      [1, 4, 1, range, /node 1 leads range 4: move its leadership first \(synod shards move 4 --leader N\)/],
      [2, 4, 1, { id: 4, voters: [1, 2, 3], learners: [5] }, /adding a replica already \(a learner on node 5 is catching up\)/],
    ];
    for (const [from, to, leader, r, why] of cases) assert.match(moveRefusal(r, from, to, view, leader) ?? "(none)", why, `${from} -> ${to}`);
  });
});

/**
 * Simulator scenarios: what the nemesis does during the fault phase, and what must hold
 * besides the standard checkers (linearizability, no lost write, liveness after healing,
 * and the engine invariants the protocol claims). Each scenario runs over many seeds;
 * `random` — the default — lets each seed pick one, so a long run covers them all.
 *
 * The catalogue follows the classic Raft test suites (the paper's sections, the MIT
 * 6.5840 labs, etcd-io/raft's tests): elections, agreement, failures, partitions, Figure 8,
 * churn, snapshots — each as a fault schedule plus the property it is there to show.
 */
import type { Prng } from "../core/common/prng.js";
import type { NodeId } from "../core/engine/contract.js";
import { RELIABLE_LINK, type LinkModel } from "./network.js";
import { describeWindow } from "./opportunity.js";
import { type ScenarioContext, type Scenario, mixedNemesis, restartAllNemesis, reliable, unreliable, withNodes, withFaults, quorum, upCount, followers, isolate, atFaultPhaseEnd, countKinds, maxCommit, expectNewLeader, commitChance } from "./scenario-kit.js";
import { learnerVoteAdversary, leaderTransferNemesis, membershipAdversary, reconfigurationNemesis, transferLeaseAdversary } from "./scenario-membership.js";
import { figure8Adversary, lostAcceptanceAdversary, ownAcceptanceAdversary, staleAnswersAdversary, stalePromiseAdversary } from "./scenario-adversaries.js";
import { SNAPSHOT_SCENARIOS } from "./scenario-snapshots.js";
import { SPLIT_SCENARIOS } from "./scenario-splits.js";

export type { Scenario, ScenarioContext } from "./scenario-kit.js";

/** Keeps deposing leaders: isolate or crash whoever leads, every few hundred milliseconds. */
function leaderChurnNemesis(ctx: ScenarioContext): void {
  const canPartition = ctx.params.faults.includes("partition") && ctx.nodeIds.length > 1;
  const canCrash = ctx.params.faults.includes("crash");
  ctx.repeat(ctx.params.faultIntervalMicrosMean, () => {
    const leader = ctx.leader();
    const roll = ctx.prng.float();
    if (leader === null || (ctx.isPartitioned() && roll < 0.4)) {
      if (ctx.isPartitioned()) ctx.healPartition();
      return;
    }
    if (canPartition && (!canCrash || roll < 0.75)) {
      ctx.partition("isolate-leader");
      if (canCrash && ctx.prng.chance(0.5)) {
        // The others are about to elect: a crash inside a voter's next fsync hits the
        // durable vote, the write that one-vote-per-term rests on.
        const voters = followers(ctx);
        if (voters.length > 0) ctx.armCrash(ctx.prng.pick(voters));
      }
    } else if (canCrash) {
      if (ctx.prng.chance(0.5)) ctx.crash(leader);
      else ctx.armCrash(leader);
    }
  });
}

/**
 * Raft's Figure 8 history, generalised (as in the MIT labs' Figure 8 tests): leaders crash
 * again and again soon after election, with the others restarted just often enough to keep a
 * quorum sometimes up, so logs diverge across many terms and a new leader often holds
 * entries of earlier terms it must not commit by counting.
 */
function figure8Nemesis(ctx: ScenarioContext): void {
  // The adversary also watches for the moment Figure 8 is about: a leader whose commit
  // index has just moved onto an entry of an earlier term. A correct leader never does that
  // (it commits older entries only together with one of its own term), so this never
  // fires on a correct engine; when it does, the leader is cut off at once, before its own
  // entries spread, and a rival with a newer last term may win and overwrite.
  // It also cuts off some leaders the moment they are elected, before their term's first
  // entry spreads: the node keeps an entry of a newer term nobody else has (Figure 8's S5),
  // which later lets it win an election against logs holding older committed entries.
  const lastCommit = new Map<NodeId, number>();
  const leadTerm = new Map<NodeId, number>();
  ctx.onStatus((id, status) => {
    const previous = lastCommit.get(id) ?? 0;
    lastCommit.set(id, status.commitIndex);
    if (status.role === "leader" && leadTerm.get(id) !== status.term) {
      leadTerm.set(id, status.term);
      if (!ctx.isPartitioned() && ctx.prng.chance(0.3)) {
        isolate(ctx, id);
        ctx.during(ctx.prng.int(50_000, 300_000), () => ctx.healPartition());
        return;
      }
    }
    if (status.role !== "leader" || status.commitIndex <= previous || ctx.isPartitioned()) return;
    const term = ctx.entryTerm(id, status.commitIndex);
    if (term !== null && term < status.term) {
      isolate(ctx, id);
      ctx.during(ctx.prng.int(200_000, 800_000), () => ctx.healPartition());
    }
  });
  ctx.repeat(ctx.prng.int(30_000, 150_000), () => {
    const leader = ctx.leader();
    if (leader !== null && ctx.prng.chance(0.6)) {
      if (ctx.prng.chance(0.5)) ctx.crash(leader, "never");
      else ctx.armCrash(leader);
    }
    if (upCount(ctx) < quorum(ctx) || ctx.prng.chance(0.3)) {
      const down = ctx.nodeIds.filter((id) => !ctx.isUp(id));
      if (down.length > 0) ctx.restart(ctx.prng.pick(down));
    }
  });
}

/** Any node crashes, restarts, is cut off or rejoins, every ~100 ms. */
function churnNemesis(ctx: ScenarioContext): void {
  ctx.repeat(100_000, () => {
    const prng = ctx.prng;
    const up = ctx.nodeIds.filter((id) => ctx.isUp(id));
    const down = ctx.nodeIds.filter((id) => !ctx.isUp(id));
    const roll = prng.float();
    if (roll < 0.3 && up.length > 0) ctx.crash(prng.pick(up), "never");
    else if (roll < 0.6 && down.length > 0) ctx.restart(prng.pick(down));
    else if (roll < 0.8) ctx.partition(prng.pick(["isolate-one", "isolate-leader", "split"] as const));
    else ctx.healPartition();
  });
}

// ---- the catalogue ----

export const SCENARIOS: readonly Scenario[] = [
  {
    name: "mixed",
    description: "any enabled fault at random: partitions of every shape, crashes (half inside an fsync), pauses, over a lossy network",
    weight: 12,
    start: mixedNemesis,
  },
  {
    name: "leader-churn",
    description: "keeps deposing leaders, isolating or crashing whoever leads every few hundred ms, crashing voters inside the vote's fsync",
    weight: 5,
    params: (p, prng) => ({ ...withNodes(p, prng.pick([3, 5, 5]), prng), faultIntervalMicrosMean: prng.int(80, 300) * 1000 }),
    start: leaderChurnNemesis,
  },
  {
    name: "leader-transfer",
    description: "hands leadership from member to member every few hundred ms (thesis 3.10), on a lossy network with crashes and partitions",
    weight: 3,
    params: (p, prng) => ({ ...withNodes(p, prng.pick([3, 5]), prng), faultIntervalMicrosMean: prng.int(100, 400) * 1000 }),
    start: leaderTransferNemesis,
  },
  {
    name: "reconfiguration",
    needsMembership: true,
    description: "random membership changes — learners, promotions, adds, removes (the leader's too), joint changes, transfers — under every fault (chapter 4)",
    weight: 4,
    params: (p, prng) => ({ ...withNodes(p, prng.pick([5, 6]), prng), bootstrapVoters: 3, faultIntervalMicrosMean: prng.int(200, 800) * 1000 }),
    start: reconfigurationNemesis,
  },
  {
    name: "membership-adversary",
    needsMembership: true,
    description: "a leader cut off with two empty nodes is asked to add both at once: a second change in flight would let them commit writes the old majority elects a leader without (4.1)",
    weight: 2,
    // Sticky clients keep writing to the cut-off leader.
    params: (p, prng) => ({ ...withFaults(reliable(withNodes(p, 5, prng)), ["partition"]), bootstrapVoters: 3, roamingClients: 0 }),
    start: membershipAdversary,
  },
  {
    name: "learner-vote-adversary",
    needsMembership: true,
    description: "a voter cut off with two learners campaigns while the leader commits with the other voter: learners' votes must not make it leader (4.2.1)",
    weight: 2,
    params: (p, prng) => ({ ...withFaults(reliable(withNodes(p, 5, prng)), ["partition"]), bootstrapVoters: 3, roamingClients: 0 }),
    start: learnerVoteAdversary,
  },
  {
    name: "transfer-lease-adversary",
    description: "a leader with a lease hands over while every answer to it is held on the wire: it must not go on serving lease reads once its successor writes (3.10, 6.4.1)",
    weight: 2,
    tuning: { checkQuorum: true, leaseReads: true },
    // Clients stay with their node, so some keep reading from the old leader: mostly reads
    // (a write sent to it waits there until the client gives up), of one key.
    params: (p, prng) => ({ ...withFaults(reliable(withNodes(p, prng.pick([3, 5]), prng)), ["partition", "delay"]), roamingClients: 0, clientThinkMicrosMean: 3000, keys: 1, opMix: { get: 0.95, put: 0.05, delete: 0, cas: 0 } }),
    start: transferLeaseAdversary,
  },
  {
    name: "stale-promise-adversary",
    protocols: ["paxos"],
    description: "promises to a candidate's old ballot are held on the wire while others choose values, and arrive when it campaigns again: they must not count (MyPaxos #18)",
    weight: 2,
    tuning: { checkQuorum: false, preVote: false },
    params: (p, prng) => ({ ...withFaults(reliable(withNodes(p, 3, prng)), ["partition", "pause", "delay"]), clientThinkMicrosMean: 2000 }),
    start: stalePromiseAdversary,
  },
  {
    name: "lost-acceptance-adversary",
    protocols: ["paxos"],
    description: "a follower crashes inside the fsync of an acceptance, the leader is cut off, and the crashed node elects a new leader with the third: an acceptance sent before it was durable loses a chosen value (PMS 2.3)",
    weight: 2,
    params: (p, prng) => ({ ...withFaults(reliable(withNodes(p, 3, prng)), ["partition", "crash"]), clientThinkMicrosMean: 1000, roamingClients: 0 }),
    start: lostAcceptanceAdversary,
  },
  {
    name: "own-acceptance-adversary",
    protocols: ["paxos"],
    description: "the leader crashes inside the fsync of its own acceptance while one follower is cut off, and that follower elects a new leader with the restarted one: a leader that counted its acceptance before it was durable loses a chosen value (Ongaro's thesis 10.2.1)",
    weight: 2,
    params: (p, prng) => ({ ...withFaults(reliable(withNodes(p, 3, prng)), ["partition", "crash"]), fsyncMicrosMin: 2_000, fsyncMicrosMean: 4_000, clientThinkMicrosMean: 1000, roamingClients: 0 }),
    start: ownAcceptanceAdversary,
  },
  {
    name: "initial-election",
    protocols: ["raft"],
    countsMessages: true,
    description: "a healthy cluster elects one leader, within a message budget, and then no other (5.2)",
    weight: 1,
    params: (p) => reliable(p),
    start: (ctx) => {
      const n = ctx.nodeIds.length;
      atFaultPhaseEnd(ctx, () => {
        if (ctx.leaderTerms() > 1) ctx.fail(`${ctx.leaderTerms()} leaderships on a healthy network; one election should have been enough`);
        if (ctx.leaderTerms() === 0) {
          const group = ctx.connectedGroup(0, ctx.now(), ctx.nodeIds, quorum(ctx));
          if (group.length > 0) ctx.fail(`no leader elected, though nodes ${group.join(",")} were running and linked with each other from the start`);
        }
        // A PreVote and a vote round, each a request and an answer per peer, per node whose
        // timer ran out before it heard a leader — two nodes, or more when timers fire
        // together (randomized timeouts make that rare, not impossible) — and each once more
        // after a split vote. Beyond that, an engine campaigns or answers more than it must.
        const electionMessages = countKinds(ctx, /^(pre-)?vote /);
        const candidates = Math.max(2, ctx.messageSenders(/^(pre-)?vote request/));
        const budget = 2 * 4 * (n - 1) * candidates;
        if (electionMessages > budget) ctx.fail(`the election took ${electionMessages} messages; the budget is ${budget} (two PreVote and vote rounds for each of the ${candidates} candidates)`);
      });
    },
  },
  {
    name: "reelection",
    description: "a leader cut off from the rest is replaced within two seconds; it rejoins as a follower (5.2)",
    weight: 1,
    params: (p) => reliable(p),
    start: (ctx) => {
      // Cycles of 3 s: cut the leader off at 0.5 s, expect a successor by 2.5 s, heal at 2.6 s.
      for (let cycle = 0; (cycle + 1) * 3_000_000 < ctx.params.faultPhaseMicros; cycle++) {
        const t = cycle * 3_000_000;
        ctx.during(t + 500_000, () => {
          const leader = ctx.leader();
          if (leader === null) return;
          const term = ctx.status(leader)?.term ?? 0;
          ctx.partition("isolate-leader");
          expectNewLeader(ctx, leader, term, 2_000_000);
        });
        ctx.during(t + 2_600_000, () => ctx.healPartition());
      }
    },
  },
  {
    name: "many-elections",
    description: "random minorities cut off every ~300 ms; a majority always elects and serves",
    weight: 1,
    params: (p) => reliable(p),
    start: (ctx) => {
      ctx.repeat(300_000, () => {
        const cut = ctx.prng.shuffle([...ctx.nodeIds]).slice(0, ctx.prng.int(0, quorum(ctx) - 1));
        const rest = ctx.nodeIds.filter((id) => !cut.includes(id));
        ctx.partitionGroups([rest, ...cut.map((id) => [id])]);
      });
    },
  },
  {
    name: "basic-agreement",
    protocols: ["raft"],
    countsMessages: true,
    description: "no faults: every request succeeds, every node applies the same entries, within a message budget per entry (5.3)",
    weight: 1,
    params: (p) => reliable(p),
    start: (ctx) => {
      const n = ctx.nodeIds.length;
      atFaultPhaseEnd(ctx, () => {
        const committed = maxCommit(ctx);
        // An entry costs an append and its answer per follower, plus at most as many again
        // for the empty append that tells idle followers the new commit index.
        const replication = countKinds(ctx, /^append( ok)?$/);
        const budget = 4 * (n - 1) * committed + 50 * n;
        const chance = commitChance(ctx);
        if (committed < 10 && chance !== null) ctx.fail(`only ${committed} entries committed in a fault-free phase, though ${describeWindow(chance)}`);
        if (replication > budget) ctx.fail(`${replication} append messages for ${committed} entries; the budget is ${budget}`);
      });
    },
  },
  {
    name: "follower-failure",
    description: "followers crash and restart one at a time; the leader keeps committing (5.3, 5.5)",
    weight: 1,
    params: (p) => withFaults(p, ["crash"]),
    start: (ctx) => {
      ctx.repeat(800_000, () => {
        const candidates = followers(ctx);
        if (candidates.length > 0 && upCount(ctx) > quorum(ctx)) ctx.crash(ctx.prng.pick(candidates));
      });
    },
  },
  {
    name: "leader-failure",
    description: "the leader crashes again and again; a new one takes over and nothing acknowledged is lost (5.4)",
    weight: 1,
    params: (p) => withFaults(p, ["crash"]),
    start: (ctx) => {
      ctx.repeat(800_000, () => {
        const leader = ctx.leader();
        if (leader !== null && upCount(ctx) >= quorum(ctx)) ctx.crash(leader);
      });
    },
  },
  {
    name: "no-quorum",
    description: "with only a minority connected to each other, nothing commits; after healing, everything resumes (5.2, 5.3)",
    weight: 1,
    params: (p, prng) => reliable(withNodes(p, prng.pick([3, 5]), prng)),
    start: (ctx) => {
      // Cycles of 3 s: cut off at 0.5 s, measure at 0.6 s, check at 2.1 s, heal at 2.5 s.
      for (let cycle = 0; (cycle + 1) * 3_000_000 < ctx.params.faultPhaseMicros; cycle++) {
        const t = cycle * 3_000_000;
        let before = -1;
        ctx.during(t + 500_000, () => {
          const leader = ctx.leader();
          if (leader === null) return;
          // The leader keeps fewer than a majority with it; everyone else is alone.
          const others = ctx.prng.shuffle(ctx.nodeIds.filter((id) => id !== leader));
          const keep = quorum(ctx) - 2;
          ctx.partitionGroups([[leader, ...others.slice(0, keep)], ...others.slice(keep).map((id) => [id])]);
          // Messages already on the wire may still land; after that, no commit anywhere.
          ctx.during(100_000, () => (before = maxCommit(ctx)));
        });
        ctx.during(t + 2_100_000, () => {
          if (before >= 0 && maxCommit(ctx) > before) ctx.fail(`the commit index moved from ${before} to ${maxCommit(ctx)} with no majority connected`);
        });
        ctx.during(t + 2_500_000, () => ctx.healPartition());
      }
    },
  },
  {
    name: "concurrent-proposals",
    description: "many clients at once with no think time; every request answered, agreement kept (5.3)",
    weight: 1,
    params: (p) => ({ ...reliable(p), clients: 10, roamingClients: 5, keys: 10, clientThinkMicrosMean: 2000 }),
    start: () => {},
  },
  {
    name: "rejoin-partitioned-leader",
    description: "a leader cut off keeps taking proposals it cannot commit; on rejoining, its uncommitted entries are overwritten (5.3, Figure 7)",
    weight: 1,
    params: (p) => ({ ...reliable(p), roamingClients: 0 }),
    start: (ctx) => {
      ctx.repeat(1_500_000, () => {
        if (ctx.isPartitioned()) ctx.healPartition();
        else ctx.partition("isolate-leader");
      });
    },
  },
  {
    name: "fast-backup",
    protocols: ["raft"],
    countsMessages: true,
    description: "leaders cut off with one follower take many uncommitted entries, the majority commits others; logs that diverge by many entries are repaired in a few round trips (5.3)",
    weight: 1,
    // Without CheckQuorum a cut-off leader keeps leading its minority and taking writes, so
    // logs diverge by many entries.
    tuning: { checkQuorum: false },
    params: (p, prng) => ({ ...reliable(withNodes(p, 5, prng)), roamingClients: 0, clientThinkMicrosMean: 1000 }),
    start: (ctx) => {
      let repairs = 0;
      ctx.repeat(1_200_000, () => {
        if (ctx.isPartitioned()) {
          ctx.healPartition();
          repairs++;
          return;
        }
        const leader = ctx.leader();
        if (leader === null) return;
        const others = ctx.prng.shuffle(ctx.nodeIds.filter((id) => id !== leader));
        ctx.partitionGroups([[leader, others[0] as NodeId], others.slice(1)]);
      });
      atFaultPhaseEnd(ctx, () => {
        // Fast backtracking: one rejection per divergent term, not one per entry.
        const rejections = countKinds(ctx, /^append rejected$/);
        const budget = 3 * (ctx.nodeIds.length - 1) * (repairs + 1);
        if (rejections > budget) ctx.fail(`${rejections} append rejections over ${repairs} repairs; the budget is ${budget}`);
      });
    },
  },
  {
    name: "stale-messages",
    description: "fast-backup's rotating partitions over a network that delivers a few packets up to 1–4 s late: answers from terms long gone reach leaders that lead again",
    weight: 2,
    params: (p, prng) => {
      const base = withNodes(p, 5, prng);
      const nodeLink: LinkModel = { ...RELIABLE_LINK, fifo: false, longDelayProbability: prng.pick([0.02, 0.05, 0.1]), longDelayMaxMicros: prng.int(1_000_000, 4_000_000) };
      return { ...base, faults: ["partition", "reorder"], nodeLink, clientLink: RELIABLE_LINK, roamingClients: 0, clientThinkMicrosMean: 1000 };
    },
    start: (ctx) => {
      ctx.repeat(ctx.prng.int(300, 1200) * 1000, () => {
        if (ctx.isPartitioned()) return ctx.healPartition();
        const leader = ctx.leader();
        if (leader === null) return;
        const others = ctx.prng.shuffle(ctx.nodeIds.filter((id) => id !== leader));
        ctx.partitionGroups([[leader, others[0] as NodeId], others.slice(1)]);
      });
    },
  },
  {
    name: "stale-answers-adversary",
    description: "a follower's answers stall on the wire while its leader is deposed, both their logs rewritten, and that leader elected again; then they arrive: old answers must not count (Figure 2)",
    weight: 3,
    // Five nodes, so A and B are a minority and A's writes in (a) stay uncommitted; many
    // patient clients stuck to A, so A's log in (a) grows longer than the majority's.
    params: (p, prng) => ({
      ...withFaults(reliable(withNodes(p, 5, prng)), ["partition", "delay"]),
      clients: 10,
      keys: 10,
      roamingClients: 0,
      clientTimeoutMicros: 2_500_000,
      clientThinkMicrosMean: 1000,
    }),
    start: staleAnswersAdversary,
  },
  {
    name: "restart-all",
    description: "every node crashes at once (some inside an fsync) and restarts: terms, votes and logs come back from disk (5.1, 5.6)",
    weight: 1,
    params: (p) => withFaults(p, ["crash"]),
    start: restartAllNemesis,
  },
  {
    name: "restart-leader",
    description: "the leader crashes and restarts quickly, again and again",
    weight: 1,
    params: (p) => withFaults(p, ["crash"]),
    start: (ctx) => {
      ctx.repeat(600_000, () => {
        const leader = ctx.leader();
        if (leader === null) return;
        ctx.crash(leader, "never");
        ctx.during(ctx.prng.int(20_000, 300_000), () => ctx.restart(leader));
      });
    },
  },
  {
    name: "restart-partitioned-leader",
    description: "a leader is cut off, crashes while cut off, restarts and rejoins",
    weight: 1,
    params: (p) => withFaults(p, ["crash", "partition"]),
    start: (ctx) => {
      // Cycles of 2 s: cut the leader off, crash it while cut off, restart it, heal.
      for (let t = 200_000; t + 2_000_000 < ctx.params.faultPhaseMicros; t += 2_000_000) {
        let leader: NodeId | null = null;
        ctx.during(t, () => {
          leader = ctx.leader();
          if (leader !== null) ctx.partition("isolate-leader");
        });
        ctx.during(t + ctx.prng.int(100_000, 500_000), () => {
          if (leader !== null) ctx.crash(leader, "never");
        });
        ctx.during(t + ctx.prng.int(600_000, 1_200_000), () => {
          if (leader !== null) ctx.restart(leader);
        });
        ctx.during(t + ctx.prng.int(1_300_000, 1_900_000), () => ctx.healPartition());
      }
    },
  },
  {
    name: "figure-8",
    description: "Figure 8: leaders crash soon after election, again and again, over a reliable network (5.4.2)",
    weight: 2,
    params: (p, prng) => withFaults(reliable(withNodes(p, 5, prng)), ["crash"]),
    start: figure8Nemesis,
  },
  {
    name: "figure-8-adversary",
    protocols: ["raft"],
    description: "Figure 8 staged on purpose, again and again: an old entry on a minority, a newer-term leader cut off at once, an old leader bringing the old entry to a majority (5.4.2)",
    weight: 3,
    tuning: { smallMessages: true },
    params: (p, prng) => withFaults(reliable(withNodes(p, 5, prng)), ["partition"]),
    start: figure8Adversary,
  },
  {
    name: "figure-8-unreliable",
    description: "Figure 8 over a network that drops, duplicates and reorders with delays up to 2 s (5.4.2)",
    weight: 2,
    params: (p, prng) => withFaults(unreliable(withNodes(p, 5, prng), prng), ["crash", "drop", "duplicate", "reorder", "delay"]),
    start: figure8Nemesis,
  },
  {
    name: "churn",
    description: "any node crashes, restarts, is cut off or rejoins every ~100 ms, over a reliable network",
    weight: 1,
    params: (p) => withFaults(reliable(p), ["crash", "partition"]),
    start: churnNemesis,
  },
  {
    name: "churn-unreliable",
    description: "churn over a network that drops, duplicates and reorders",
    weight: 2,
    params: (p, prng) => withFaults(unreliable(p, prng), ["crash", "partition", "drop", "duplicate", "reorder", "delay"]),
    start: churnNemesis,
  },
  ...SNAPSHOT_SCENARIOS,
  ...SPLIT_SCENARIOS,
];

export const SCENARIO_NAMES: readonly string[] = ["random", ...SCENARIOS.map((s) => s.name)];

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}

/** Whether `scenario` applies to the protocol named `protocol` (see Scenario.protocols). */
export function scenarioApplies(scenario: Scenario, protocol: string): boolean {
  return scenario.protocols === undefined || scenario.protocols.includes(protocol);
}

/** `random`: a scenario drawn by weight, among those the protocol can play. */
export function pickScenario(prng: Prng, compacts = true, reconfigures = true, protocol = "raft"): Scenario {
  const candidates = SCENARIOS.filter((s) => (compacts || s.needsCompaction !== true) && (reconfigures || s.needsMembership !== true) && s.needsSplits !== true && scenarioApplies(s, protocol));
  const total = candidates.reduce((sum, s) => sum + s.weight, 0);
  let roll = prng.float() * total;
  for (const scenario of candidates) {
    roll -= scenario.weight;
    if (roll < 0) return scenario;
  }
  return candidates[0] as Scenario;
}

/**
 * The scenarios about snapshots and log compaction (Raft's section 7): compaction happens,
 * a follower cut off catches up from the leader's snapshot and then its log, snapshots
 * cross lossy networks and crashes, and no log outgrows its bound. Part of the catalogue
 * (scenarios.ts), in its order.
 */
import type { NodeId } from "../core/engine/contract.js";
import { SIM_CATCH_UP_ENTRIES } from "./node.js";
import { describeWindow } from "./opportunity.js";
import { atFaultPhaseEnd, commitChance, followers, isolate, mixedNemesis, reliable, restartAllNemesis, SNAPSHOT_CATCH_UP_INSTALLS_MAX, unreliable, withFaults, type Scenario, type ScenarioContext } from "./scenario-kit.js";

/** Cuts the first follower off at 0.5 s while the others go on (and compact), heals at `healMicros`; returns who was cut off (null: no follower then). */
function cutOffFollower(ctx: ScenarioContext, healMicros: number): () => NodeId | null {
  let victim: NodeId | null = null;
  ctx.during(500_000, () => {
    victim = followers(ctx)[0] ?? null;
    if (victim !== null) isolate(ctx, victim);
  });
  ctx.during(healMicros, () => ctx.healPartition());
  return () => victim;
}

export const SNAPSHOT_SCENARIOS: readonly Scenario[] = [
  {
    name: "snapshot-basic",
    needsCompaction: true,
    description: "no faults, a snapshot every 5 entries: every node compacts, and the state machine survives it (7)",
    weight: 1,
    params: (p) => ({ ...reliable(p), snapshotEveryEntries: 5 }),
    start: (ctx) => {
      atFaultPhaseEnd(ctx, () => {
        for (const id of ctx.nodeIds) {
          if ((ctx.status(id)?.snapshotIndex ?? 0) > 0) continue;
          // Compacting needs 5 applied entries: a leader that reached this node long enough to commit them.
          const chance = commitChance(ctx, id);
          if (chance !== null) ctx.fail(`node ${id} never compacted its log, though ${describeWindow(chance)}`);
        }
      });
    },
  },
  {
    name: "snapshot-install",
    needsCompaction: true,
    description: "a follower cut off while the others compact catches up by installing the leader's snapshot (7)",
    weight: 1,
    params: (p) => ({ ...reliable(p), snapshotEveryEntries: 10 }),
    start: (ctx) => {
      const healMicros = 3_000_000;
      const cutOff = cutOffFollower(ctx, healMicros);
      atFaultPhaseEnd(ctx, () => {
        const victim = cutOff();
        if (victim === null || ctx.snapshotInstalls(victim) > 0) return;
        // Catching up needs a leader that reached the victim after the heal, long enough.
        const chance = commitChance(ctx, victim, healMicros);
        if (chance !== null) ctx.fail(`node ${victim} installed no snapshot, though it was cut off while the others compacted and then ${describeWindow(chance)}`);
      });
    },
  },
  {
    name: "snapshot-catch-up",
    needsCompaction: true,
    description:
      "a follower cut off while the others compact comes back to snapshots that take longer to send than the log takes to outgrow them: it installs one and catches up from the leader's log, instead of chasing newer snapshots (7; etcd's catch-up entries)",
    weight: 1,
    tuning: { smallSnapshotChunks: true },
    // A hundred keys, written without pause, make snapshots of some kilobytes (hundreds of
    // round trips in 32-byte chunks) while the leader compacts every 5 entries.
    params: (p) => ({
      ...reliable(p),
      keys: 100,
      clientThinkMicrosMean: 1000,
      roamingClients: 0,
      opMix: { get: 0.1, put: 0.8, delete: 0.05, cas: 0.05 },
      snapshotEveryEntries: 5,
      historyRevisions: 50,
      faultPhaseMicros: Math.max(p.faultPhaseMicros, 8_000_000),
    }),
    start: (ctx) => {
      const cutOff = cutOffFollower(ctx, 1_500_000);
      atFaultPhaseEnd(ctx, () => {
        const victim = cutOff();
        // One snapshot brings the follower that was away past what was compacted meanwhile;
        // after it, the leader's log. A node that installs one after another chases them.
        for (const id of ctx.nodeIds) {
          const installs = ctx.snapshotInstalls(id);
          if (installs <= SNAPSHOT_CATCH_UP_INSTALLS_MAX) continue;
          ctx.fail(
            `node ${id} installed ${installs} snapshots${id === victim ? " after it came back" : ""}, where one brings a node past what was compacted: ` +
              `it chases the leader's newer snapshots instead of catching up from the log`,
          );
          return;
        }
      });
    },
  },
  {
    name: "snapshot-unreliable",
    description: "snapshots every 5 entries while the network drops, duplicates and reorders chunks, and partitions come and go (7)",
    weight: 2,
    params: (p, prng) => ({ ...withFaults(unreliable(p, prng), ["partition", "drop", "duplicate", "reorder", "delay"]), snapshotEveryEntries: 5 }),
    start: mixedNemesis,
  },
  {
    name: "snapshot-crash",
    description: "snapshots every 5 entries with crashes (half inside an fsync) (7)",
    weight: 1,
    params: (p) => ({ ...withFaults(p, ["crash"]), snapshotEveryEntries: 5 }),
    start: mixedNemesis,
  },
  {
    name: "snapshot-restart-all",
    description: "snapshots every 5 entries and every node crashing at once, again and again (7)",
    weight: 1,
    params: (p) => ({ ...withFaults(p, ["crash"]), snapshotEveryEntries: 5 }),
    start: restartAllNemesis,
  },
  {
    name: "snapshot-bounded-log",
    needsCompaction: true,
    description: "with a snapshot every 20 entries, no node's log ever holds more than a bounded number of entries: the interval, the catch-up entries kept for a follower a little behind, and a margin (7)",
    weight: 1,
    params: (p) => ({ ...reliable(p), snapshotEveryEntries: 20 }),
    start: (ctx) => {
      const bound = 20 + SIM_CATCH_UP_ENTRIES + 200;
      ctx.repeat(100_000, () => {
        for (const id of ctx.nodeIds) {
          const status = ctx.status(id);
          if (status !== null && status.lastIndex - status.snapshotIndex > bound) {
            ctx.fail(`node ${id} holds ${status.lastIndex - status.snapshotIndex} log entries; with a snapshot every 20 and ${SIM_CATCH_UP_ENTRIES} catch-up entries the bound is ${bound}`);
          }
        }
      });
    },
  },
];

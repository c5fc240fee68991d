/**
 * Adversaries: scenarios that steer the faults at the one moment a protocol's rule exists
 * for — Raft's Figure 8, stale answers from an earlier term, and Paxos's promises and
 * acceptances lost or reordered across ballots. A correct engine passes them; the mutant
 * each is aimed at fails.
 */
import type { NodeId } from "../core/engine/contract.js";
import { type ScenarioContext, isolate } from "./scenario-kit.js";
/**
 * Figure 8 staged by an adversary that watches the cluster, in cycles of 2.5 s:
 * (a) the leader A and one follower B are cut off from the other three; A takes writes it
 *     can replicate to B only;
 * (b) the moment the three elect a leader S, S is cut off alone — its term's first entry
 *     reaches nobody (a partition also drops what is in flight);
 * (c) A and B rejoin the remaining two; one of them leads a newer term and brings its old
 *     entries to them. If its commit index ever lands on an entry of an older term (which a
 *     correct leader never does), it is cut off at once
 * (d) and S rejoins the others: its last term is newer than theirs, so it can win and
 *     overwrite what they hold — which the cut-off leader already applied.
 */
export function figure8Adversary(ctx: ScenarioContext): void {
  let stage: "idle" | "split" | "old-leader" | "done" = "idle";
  let s: NodeId | null = null;
  let cycleTerm = 0;
  const lastCommit = new Map<NodeId, number>();
  ctx.onStatus((id, status) => {
    const previousCommit = lastCommit.get(id) ?? 0;
    lastCommit.set(id, status.commitIndex);
    if (status.role !== "leader" || status.term <= cycleTerm) return;
    if (stage === "split") {
      // (b) a new leader on the majority side: cut it off before its entry spreads.
      s = id;
      cycleTerm = status.term;
      stage = "old-leader";
      isolate(ctx, id);
    } else if (stage === "old-leader" && id !== s) {
      const term = ctx.entryTerm(id, status.commitIndex);
      if (term !== null && term < status.term && status.commitIndex > previousCommit) {
        // (c) caught committing an older entry by counting: (d) cut it off, let S back in.
        stage = "done";
        isolate(ctx, id);
      }
    }
  });
  for (let cycle = 0; (cycle + 1) * 2_500_000 < ctx.params.faultPhaseMicros; cycle++) {
    const t = cycle * 2_500_000;
    ctx.during(t + 200_000, () => {
      const a = ctx.leader();
      if (a === null) return;
      const b = ctx.prng.pick(ctx.nodeIds.filter((id) => id !== a));
      cycleTerm = ctx.status(a)?.term ?? 0;
      stage = "split";
      s = null;
      ctx.partitionGroups([[a, b], ctx.nodeIds.filter((id) => id !== a && id !== b)]);
    });
    ctx.during(t + 2_300_000, () => {
      stage = "idle";
      ctx.healPartition();
    });
  }
}

/**
 * Stale answers staged on purpose, in cycles of 3 s, after the scripted test "a leader
 * ignores append answers from an earlier term":
 * (a) the leader A and a follower B are cut off from the rest; A takes writes and sends them
 *     to B, whose answers stay on the wire (a stalled connection);
 * (b) at 0.3 s B joins the majority, whose new leader rewrites B's log;
 * (c) at 0.45 s A rejoins too and its log is rewritten the same way — now shorter than the
 *     one A had in (a), when clients were writing to it;
 * (d) from 0.55 s every new leader other than A is cut off the moment it is elected, until A
 *     leads; (e) then B's old answers arrive, claiming entries neither A nor B holds any more.
 */
export function staleAnswersAdversary(ctx: ScenarioContext): void {
  const others = (id: NodeId): NodeId[] => ctx.nodeIds.filter((other) => other !== id);
  let stage: "idle" | "a" | "b" | "hunt" = "idle";
  let a: NodeId | null = null;
  let b: NodeId | null = null;
  /** A's last index and term when it was cut off with B: the entries B's held answers claim. */
  let claimed = { index: 0, term: 0 };
  let cutTerm = 0;
  const release = (): void => {
    if (a !== null && b !== null) ctx.releaseLink(b, a);
  };
  const rewritten = (id: NodeId): boolean => ctx.entryTerm(id, claimed.index) !== claimed.term;
  ctx.onStatus((id, status) => {
    if (a === null || b === null) return;
    if (stage === "a" && status.role === "leader" && id !== a && status.term > claimed.term) {
      // (b) the majority elected M: B joins it (A stays alone), so M rewrites B's log.
      stage = "b";
      cutTerm = status.term;
      isolate(ctx, a);
    } else if (stage === "b" && rewritten(b)) {
      // (c) B's log no longer holds A's entries: A rejoins, M is cut off.
      stage = "hunt";
      const m = ctx.leader();
      if (m !== null && m !== a) isolate(ctx, m);
      else ctx.healPartition();
    } else if (stage === "hunt" && status.role === "leader" && status.term > cutTerm) {
      if (id === a) {
        // (e) A leads again, with a rewritten log: B's old answers arrive now.
        stage = "idle";
        release();
      } else if (rewritten(a)) {
        // (d) a leader other than A, once it has rewritten A's log too, is cut off.
        cutTerm = status.term;
        isolate(ctx, id);
      }
    }
  });
  for (let t = 300_000; t + 2_900_000 < ctx.params.faultPhaseMicros; t += 3_000_000) {
    ctx.during(t, () => {
      a = ctx.leader();
      if (a === null) return;
      const leader = a;
      const status = ctx.status(leader);
      b = ctx.prng.pick(others(leader));
      // (a) A and B alone; B's answers stall on the wire.
      stage = "a";
      ctx.partitionGroups([[leader, b], others(leader).filter((id) => id !== b)]);
      ctx.holdLink(b, leader);
      ctx.during(250_000, () => {
        const last = ctx.status(leader)?.lastIndex ?? 0;
        claimed = { index: last, term: ctx.entryTerm(leader, last) ?? status?.term ?? 0 };
      });
    });
    ctx.during(t + 2_700_000, () => {
      stage = "idle";
      release();
      ctx.healPartition();
    });
  }
}

/**
 * A promise that answers an older ballot arrives late (the MyPaxos #18 history), in cycles
 * of 3 s on three nodes: every link into node C holds its packets, so C hears no leader and
 * prepares; the other two promise it (no lease holds them back: CheckQuorum and probes are
 * off), their answers stuck on the wire. C freezes while the two elect a leader of their own
 * and choose values; it wakes, campaigns again at a higher ballot, and then the held answers
 * arrive — promises to its old ballot first. Counted toward the new ballot, one of them
 * completes a majority that reports nothing of what was chosen meanwhile, and C's proposals
 * overwrite it. A correct candidate waits for promises to the ballot it runs.
 */
export function stalePromiseAdversary(ctx: ScenarioContext): void {
  for (let t = 300_000; t + 2_900_000 < ctx.params.faultPhaseMicros; t += 3_000_000) {
    let c: NodeId | null = null;
    const others = (): NodeId[] => ctx.nodeIds.filter((id) => id !== c);
    ctx.during(t, () => {
      const leader = ctx.leader();
      if (leader === null) return;
      c = ctx.prng.pick(ctx.nodeIds.filter((id) => id !== leader));
      for (const other of others()) ctx.holdLink(other, c);
    });
    ctx.during(t + 700_000, () => {
      if (c !== null) ctx.pause(c, 900_000);
    });
    ctx.during(t + 1_800_000, () => {
      if (c === null) return;
      for (const other of others()) ctx.releaseLink(other, c);
      c = null;
    });
  }
}

/**
 * An acceptance lost in a crash (PMS 2.3: an acceptor answers only once what it accepted is
 * durable), every 1.5 s on three nodes with clients writing: follower A is set to crash
 * inside its next fsync — after the Ready's early messages left, before its writes are
 * durable — while the leader's accepts to the third node B are held on the wire. Had A
 * answered before its slot was durable, the leader would choose the slot with A and answer
 * its client; then the leader is cut off, A restarts without the slot, and A and B elect a
 * leader that puts something else there.
 */
export function lostAcceptanceAdversary(ctx: ScenarioContext): void {
  for (let t = 200_000; t + 1_400_000 < ctx.params.faultPhaseMicros; t += 1_500_000) {
    let cut: { leader: NodeId; a: NodeId; b: NodeId } | null = null;
    ctx.during(t, () => {
      const leader = ctx.leader();
      if (leader === null) return;
      const [a, b] = ctx.prng.shuffle(ctx.nodeIds.filter((id) => id !== leader));
      if (a === undefined || b === undefined) return;
      cut = { leader, a, b };
      ctx.holdLink(leader, b);
      ctx.armCrash(a);
    });
    ctx.during(t + ctx.prng.int(60_000, 150_000), () => {
      if (cut === null) return;
      ctx.partitionGroups([[cut.leader], [cut.a, cut.b]]);
      ctx.releaseLink(cut.leader, cut.b);
      ctx.restart(cut.a);
    });
    ctx.during(t + 1_200_000, () => {
      cut = null;
      ctx.healPartition();
    });
  }
}

/**
 * The leader's own acceptance, lost: one follower is cut off while the leader and the other
 * choose values, the leader crashes inside one of its fsyncs (slow disks, so answers come
 * back while it runs), and the follower that was cut off elects a new leader with the
 * restarted one. A leader that counted its own acceptance before it was durable announced a
 * slot chosen that only the third node holds, and the new leader fills it differently.
 */
export function ownAcceptanceAdversary(ctx: ScenarioContext): void {
  for (let t = 200_000; t + 1_400_000 < ctx.params.faultPhaseMicros; t += 1_500_000) {
    let cut: { leader: NodeId; a: NodeId; b: NodeId } | null = null;
    ctx.during(t, () => {
      const leader = ctx.leader();
      if (leader === null) return;
      const [a, b] = ctx.prng.shuffle(ctx.nodeIds.filter((id) => id !== leader));
      if (a === undefined || b === undefined) return;
      cut = { leader, a, b };
      ctx.partitionGroups([[leader, a], [b]]);
      ctx.armCrash(leader);
    });
    ctx.during(t + ctx.prng.int(60_000, 150_000), () => {
      if (cut === null) return;
      ctx.partitionGroups([[cut.a], [cut.leader, cut.b]]);
      ctx.restart(cut.leader);
    });
    ctx.during(t + 1_200_000, () => {
      cut = null;
      ctx.healPartition();
    });
  }
}

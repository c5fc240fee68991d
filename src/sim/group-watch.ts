import type { DurableState, EngineFactory, EngineInvariant, Membership, NodeId } from "../core/engine/contract.js";
import type { GroupId } from "../core/multi/group.js";
import { ElectionSafety } from "./check/election-safety.js";
import { checkMajorityCommit, type NodeLog } from "./check/majority-commit.js";
import { OneValuePerSlot } from "./check/one-value-per-slot.js";
import { StateMachineSafety } from "./check/state-machine-safety.js";
import { InvariantViolation } from "./check/violation.js";
import type { SimNode } from "./node.js";
import { OpportunityLog } from "./opportunity.js";

/**
 * What the simulation watches of one consensus group: every checker's state is per group,
 * since each group has its own log, terms, leader and state machine (`synod sim --groups`),
 * and the checks that read only that state (majority commit, the requests applied through an
 * index). A run of one group has one of these, and checks exactly what it checked before
 * groups.
 */
export class GroupWatch {
  /** The log index at which each request (client:sequence) took effect. */
  readonly appliedIndexOf = new Map<string, number>();
  /** Every write any node ever applied: when it was first applied, and with what outcome. */
  readonly firstApplied = new Map<string, { readonly atMicros: number; readonly output: string | null | boolean }>();
  /** By log index: the request key of the write first applied there (null for none). */
  readonly appliedKeyAt: (string | null)[] = [];
  readonly electionSafety = new ElectionSafety();
  readonly stateMachineSafety: StateMachineSafety;
  readonly oneValuePerSlot: OneValuePerSlot;
  readonly leaderTermSeen = new Map<NodeId, number>();
  /** Leaderships seen in this group (a node leading a term). */
  leaderTerms = 0;
  /** Each leadership seen, in order: who led which term, from when. */
  readonly leaderships: { readonly node: NodeId; readonly term: number; readonly atMicros: number }[] = [];
  /** The configuration each node acted on when last seen (to trace its changes). */
  readonly membershipSeen = new Map<NodeId, Membership>();
  /** The commit index last checked for each leader, and the durable state of crashed nodes. */
  readonly leaderCommitSeen = new Map<NodeId, { readonly term: number; readonly commit: number }>();
  readonly downDurable = new Map<NodeId, DurableState<unknown>>();
  /** When this group's leader could have made progress: what its progress checks are conditioned on. */
  readonly opportunities: OpportunityLog;
  /** Each node's role and term when last seen, to notice the changes that move leadership. */
  readonly roleSeen = new Map<NodeId, { readonly role: string; readonly term: number }>();
  /** The term in which each node, leading, last committed an entry of its own term (hot path: one compare per Ready). */
  readonly settledTerm = new Map<NodeId, number>();
  /** Configuration entries committed so far (seen applied), in order. */
  readonly configsCommitted: { readonly index: number; readonly atMicros: number }[] = [];

  constructor(
    readonly group: GroupId,
    claims: ReadonlySet<EngineInvariant>,
    factory: EngineFactory<unknown, unknown>,
    nodeIds: readonly NodeId[],
  ) {
    this.stateMachineSafety = new StateMachineSafety(claims.has("log-matching"));
    this.oneValuePerSlot = new OneValuePerSlot(factory.logWords);
    this.opportunities = new OpportunityLog(nodeIds);
  }

  /** The request keys of every write applied at or before `index` (see NodeHost.requestsThrough). */
  requestsThrough(index: number): Set<string> {
    const keys = new Set<string>();
    const appliedKeyAt = this.appliedKeyAt;
    for (let i = 1; i <= index && i < appliedKeyAt.length; i++) {
      const key = appliedKeyAt[i];
      if (key !== undefined && key !== null) keys.add(key);
    }
    return keys;
  }

  /**
   * Majority commit, each time a leader's commit index moves: a majority of the nodes hold
   * the committed entry, a crashed node counting with the durable log on its disk (read
   * once per crash).
   */
  checkCommitMajority(leader: NodeId, commitIndex: number, nodes: ReadonlyMap<NodeId, SimNode<unknown>>): void {
    const leaderEngine = nodes.get(leader)?.engineOf(this.group);
    const leaderTerm = leaderEngine?.status().term ?? 0;
    const seen = this.leaderCommitSeen.get(leader);
    if (seen !== undefined && seen.term === leaderTerm && seen.commit >= commitIndex) return;
    this.leaderCommitSeen.set(leader, { term: leaderTerm, commit: commitIndex });
    // A new leader's commit index was decided before it led, under the configuration of
    // that time (checked then): only what this leader commits is checked against its own.
    const membership = leaderEngine?.membership?.();
    if (membership !== undefined && (seen === undefined || seen.term !== leaderTerm)) return;
    const term = leaderEngine?.entryTerm(commitIndex) ?? null;
    if (term === null) return; // compacted at once: nothing to compare
    const logs = new Map<NodeId, NodeLog>();
    for (const node of nodes.values()) {
      if (node.up && node.hosts(this.group)) {
        const engine = node.engineOf(this.group);
        logs.set(node.id, { up: true, snapshotIndex: engine.status().snapshotIndex, entryTerm: (index) => engine.entryTerm(index) });
      } else if (!node.up) {
        let durable = this.downDurable.get(node.id);
        if (durable === undefined) {
          durable = node.disk.replay(this.group);
          this.downDurable.set(node.id, durable);
        }
        logs.set(node.id, { up: false, durable });
      } else {
        // Up, and hosting no replica of the group (placement): it holds none of its log.
        logs.set(node.id, { up: false, durable: { hardState: null, snapshot: null, entries: [] } });
      }
    }
    if (membership === undefined) {
      checkMajorityCommit(leader, commitIndex, term, logs);
      return;
    }
    // A majority of every group (both halves of a joint configuration) of the configuration
    // the leader committed under: its latest — or, when it appended a newer one in the same
    // step as it committed, the one before it, which is in force at the committed index.
    const atCommit = leaderEngine?.membershipAt?.(commitIndex) ?? membership;
    const check = (m: Membership): void => {
      for (const group of m.outgoing.length > 0 ? [m.voters, m.outgoing] : [m.voters]) {
        checkMajorityCommit(leader, commitIndex, term, new Map(group.map((id) => [id, logs.get(id) as NodeLog] as const)));
      }
    };
    try {
      check(membership);
    } catch (error) {
      if (!(error instanceof InvariantViolation) || atCommit === membership) throw error;
      check(atCommit);
    }
  }
}

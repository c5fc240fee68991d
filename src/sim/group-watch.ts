import type { DurableState, EngineFactory, EngineInvariant, Membership, NodeId } from "../core/engine/contract.js";
import type { GroupId } from "../core/multi/group.js";
import { ElectionSafety } from "./check/election-safety.js";
import { OneValuePerSlot } from "./check/one-value-per-slot.js";
import { StateMachineSafety } from "./check/state-machine-safety.js";
import { OpportunityLog } from "./opportunity.js";

/**
 * What the simulation watches of one consensus group: every checker's state is per group,
 * since each group has its own log, terms, leader and state machine (`synod sim --groups`).
 * A run of one group has one of these, and checks exactly what it checked before groups.
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
}

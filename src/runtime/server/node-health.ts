/**
 * What a node says of its own health: which voters it reaches (`quorum`, to say why there is
 * no leader) and its readiness checks (`GET /readyz`). Pure: the node hands in what it sees.
 */
import type { EngineStatus, Membership, NodeId } from "../../core/engine/contract.js";
import { READY_APPLIED_LAG_MAX, type QuorumView, type Readiness } from "./http-api.js";
import { memberRole } from "./members.js";

/** Which voters `self` reaches: itself, and the peers it holds a connection with (either way). */
export function quorumViewOf(self: NodeId, membership: Membership, links: ReadonlyMap<NodeId, { readonly connected: boolean; readonly inboundConnected?: boolean }> | undefined): QuorumView {
  const reaches = (id: NodeId): boolean => id === self || links?.get(id)?.connected === true || links?.get(id)?.inboundConnected === true;
  const majority = (voters: readonly NodeId[]): boolean => voters.length === 0 || voters.filter(reaches).length * 2 > voters.length;
  const voters = [...new Set([...membership.voters, ...membership.outgoing])].sort((a, b) => a - b);
  return { voters, reachable: voters.filter(reaches), quorum: majority(membership.voters) && majority(membership.outgoing) };
}

/** What readiness looks at. */
export interface ReadinessInputs {
  readonly self: NodeId;
  readonly membership: Membership;
  readonly member: boolean;
  /** Range 0's group. */
  readonly status: EngineStatus;
  readonly applied: number;
  /** The most committed entries any range has not applied. */
  readonly lag: number;
  /** The other ranges with no leader known (a sharded node). */
  readonly leaderless: readonly number[];
  readonly sharded: boolean;
  /** Asked only when no leader is known: which voters are reachable. */
  readonly quorum: () => QuorumView;
}

/** `GET /readyz`: a member, a leader known for every range, and each state machine within READY_APPLIED_LAG_MAX of its commit index. */
export function readinessOf(inputs: ReadinessInputs): Readiness {
  const { self, status, member, lag, leaderless } = inputs;
  const view = status.leader === null ? inputs.quorum() : null;
  const unreachable = view === null ? [] : view.voters.filter((id) => !view.reachable.includes(id));
  return {
    checks: [
      { name: "member", ok: member, detail: member ? `node ${self} is a ${memberRole(inputs.membership, self)}` : `node ${self} is not in the cluster's configuration (removed, or not yet added)` },
      {
        name: "leader",
        ok: status.leader !== null && leaderless.length === 0,
        detail:
          status.leader === null
            ? view?.quorum === false
              ? `no leader: no quorum reachable (unreachable voters: ${unreachable.join(", ")})`
              : "no leader is known: an election is under way"
            : leaderless.length > 0
              ? `node ${status.leader} leads range 0; no leader is known for range${leaderless.length === 1 ? "" : "s"} ${leaderless.join(", ")}`
              : `node ${status.leader} leads`,
      },
      {
        name: "caught_up",
        ok: lag <= READY_APPLIED_LAG_MAX,
        detail: !inputs.sharded
          ? `applied ${inputs.applied} of ${status.commitIndex} committed entries (at most ${READY_APPLIED_LAG_MAX} behind)`
          : `every range has applied all but at most ${lag} of its committed entries (at most ${READY_APPLIED_LAG_MAX} behind)`,
      },
    ],
  };
}

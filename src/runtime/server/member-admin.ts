/**
 * The requests that change who is in the cluster or who leads it — `POST /v1/members`,
 * `DELETE /v1/members/{id}`, `POST /v1/members/{id}/promote`, `POST /v1/leader/transfer`,
 * `POST /v1/shards/{id}/move`:
 * done by the node that leads, passed once to the leader by any other, whose answer is the
 * client's.
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { MembershipChangeInProgressError, NotLeaderError } from "../../core/common/errors.js";
import type { EngineStatus, Membership, MembershipChange, NodeId } from "../../core/engine/contract.js";
import { isMember } from "../../core/engine/membership.js";
import { parseHostPort, type MemberAddress, type NodeConfig } from "./config.js";
import { termDetails } from "./consensus.js";
import { WriteOutcomeUnknownError } from "./driver.js";
import { FORWARDED_HEADER, HttpError, type MemberRequest } from "./http-api.js";
import { encodeDirectory, memberRole } from "./members.js";

/** How often a membership change waiting for the one before it asks again. */
const CHANGE_RETRY_MS = 20;

/** What the administration needs of its node. */
export interface MemberAdminHost {
  readonly config: Pick<NodeConfig, "id" | "requestTimeoutMs" | "consensus">;
  status(): EngineStatus;
  membership(): Membership;
  /** Where the members of `membership` are. */
  directory(membership: Membership): MemberAddress[];
  /** The members as `GET /v1/members` lists them. */
  membersList(): object[];
  /** A member's HTTP address, as its handshake or the directory gave it. */
  memberHttp(id: NodeId): string | undefined;
  changeMembership(change: MembershipChange): Promise<{ readonly index: number }>;
  transferLeadership(to: NodeId | null): Promise<{ readonly leader: NodeId; readonly term: number }>;
}

export type AdminAnswer = { readonly status: number; readonly body: object };

/** One range's group, for a transfer of its leadership (a sharded cluster). */
export interface RangeLeadership {
  readonly id: number;
  status(): EngineStatus;
  transferLeadership(to: NodeId | null): Promise<{ readonly leader: NodeId; readonly term: number }>;
}

export class MemberAdmin {
  constructor(private readonly node: MemberAdminHost) {}

  /** A membership change: done here if this node leads (answered once applied, so in force), else passed once to the leader. */
  async changeMembers(request: MemberRequest, forwarded: boolean, credentials?: string): Promise<AdminAnswer> {
    // A change waits for the one before it to take effect, within the request timeout,
    // rather than being refused: a client removing two members one after the other need
    // not retry. Under Paxos a change takes effect only α slots after its own (the leader
    // fills them with no-ops at once), which is a moment, not one commit.
    const deadlineMs = performance.now() + this.node.config.requestTimeoutMs;
    for (;;) {
      try {
        return await this.changeMembersOnce(request, forwarded, credentials);
      } catch (error) {
        if (!(error instanceof MembershipChangeInProgressError) || performance.now() + CHANGE_RETRY_MS >= deadlineMs) throw error;
        await sleep(CHANGE_RETRY_MS);
      }
    }
  }

  /**
   * A leadership transfer of group 0, or of `range` on a sharded cluster: done here if this
   * node leads it, else passed (once) to its leader.
   */
  async transferLeadership(to: NodeId | null, forwarded: boolean, credentials?: string, range: RangeLeadership | null = null): Promise<AdminAnswer> {
    const status = range?.status() ?? this.node.status();
    if (status.role === "leader") {
      const startedMs = performance.now();
      const moved = await (range === null ? this.node.transferLeadership(to) : range.transferLeadership(to));
      const which = range === null ? {} : { range: range.id };
      return { status: 200, body: { ...which, leader: moved.leader, leaderHttp: this.node.memberHttp(moved.leader) ?? null, term: moved.term, ...termDetails(this.node.config.consensus, moved.term), ms: Math.round(performance.now() - startedMs) } };
    }
    const path = range === null ? "/v1/leader/transfer" : `/v1/leader/transfer?range=${range.id}`;
    return this.passToLeader(forwarded, "POST", path, JSON.stringify(to === null ? {} : { to }), "leadership transfer", credentials, status.leader);
  }

  /**
   * A move of one of `range`'s replicas (`POST /v1/shards/{id}/move`): `move` runs here if
   * this node leads the range, else the request is passed once to its leader, given the
   * time a move may take (`waitMs`: its new replica catching up).
   */
  async moveReplica(range: Pick<RangeLeadership, "id" | "status">, move: () => Promise<object>, request: { readonly from: NodeId; readonly to: NodeId }, waitMs: number, forwarded: boolean, credentials?: string): Promise<AdminAnswer> {
    const status = range.status();
    if (status.role === "leader") return { status: 200, body: await move() };
    return this.passToLeader(forwarded, "POST", `/v1/shards/${range.id}/move`, JSON.stringify(request), "replica move", credentials, status.leader, waitMs);
  }

  private async changeMembersOnce(request: MemberRequest, forwarded: boolean, credentials: string | undefined): Promise<AdminAnswer> {
    if (this.node.status().role !== "leader") return this.forwardToLeader(request, forwarded, credentials);
    const current = this.node.membership();
    const directory = this.node.directory(current);
    const without = (list: readonly number[]): number[] => list.filter((id) => id !== request.id);
    let change: MembershipChange;
    switch (request.op) {
      case "add": {
        if (isMember(current, request.id)) throw new HttpError(409, "already_member", `node ${request.id} is already a member (${memberRole(current, request.id)})`);
        const added: MemberAddress = { id: request.id, peer: parseHostPort(request.peer, "peer"), http: request.http };
        const context = encodeDirectory([...directory, added]);
        change = request.learner
          ? { voters: current.voters, learners: [...current.learners, request.id], autoPromote: request.autoPromote ? [...current.autoPromote, request.id] : current.autoPromote, context }
          : { voters: [...current.voters, request.id], learners: current.learners, autoPromote: current.autoPromote, context };
        break;
      }
      case "remove":
        if (!isMember(current, request.id)) throw new HttpError(404, "unknown_member", `node ${request.id} is not a member`);
        change = { voters: without(current.voters), learners: without(current.learners), autoPromote: without(current.autoPromote), context: encodeDirectory(directory.filter((m) => m.id !== request.id)) };
        break;
      case "promote":
        if (!current.learners.includes(request.id)) throw new HttpError(409, "not_learner", `node ${request.id} is not a learner (${isMember(current, request.id) ? "already a voter" : "not a member"})`);
        change = { voters: [...current.voters, request.id], learners: without(current.learners), autoPromote: without(current.autoPromote), context: encodeDirectory(directory) };
        break;
    }
    const startedMs = performance.now();
    const { index } = await this.node.changeMembership(change);
    return { status: 200, body: { index, ms: Math.round(performance.now() - startedMs), members: this.node.membersList() } };
  }

  private async forwardToLeader(request: MemberRequest, forwarded: boolean, credentials: string | undefined): Promise<AdminAnswer> {
    const { path, method, body } =
      request.op === "add"
        ? { path: "/v1/members", method: "POST", body: JSON.stringify({ id: request.id, peer: request.peer, http: request.http, learner: request.learner, promote: request.autoPromote ? "auto" : "manual" }) }
        : request.op === "remove"
          ? { path: `/v1/members/${request.id}`, method: "DELETE", body: undefined }
          : { path: `/v1/members/${request.id}/promote`, method: "POST", body: undefined };
    return this.passToLeader(forwarded, method, path, body, "membership change", credentials);
  }

  /**
   * Passes a request this node cannot answer to the leader, once (a request already
   * forwarded is not passed on again: no loops); the leader's answer is the client's.
   */
  private async passToLeader(forwarded: boolean, method: string, path: string, body: string | undefined, what: string, credentials: string | undefined, leader = this.node.status().leader, waitMs = 0): Promise<AdminAnswer> {
    const leaderHttp = leader === null ? undefined : this.node.memberHttp(leader);
    if (forwarded || leaderHttp === undefined) throw new NotLeaderError(leader);
    try {
      const response = await fetch(`${leaderHttp}${path}`, {
        method,
        ...(body === undefined ? {} : { body }),
        // The caller's credentials go along: the leader checks them again, as it would the caller's own request.
        headers: { "content-type": "application/json", [FORWARDED_HEADER]: String(this.node.config.id), ...(credentials === undefined ? {} : { authorization: credentials }) },
        signal: AbortSignal.timeout(this.node.config.requestTimeoutMs + waitMs + 1000),
      });
      return { status: response.status, body: (await response.json()) as object };
    } catch (error) {
      throw forwardFailure(leader, error, what);
    }
  }
}

/**
 * What to answer when passing a request to the leader failed: "no leader" if it never got
 * there (the connection was refused), else "outcome unknown" (the leader may have acted
 * before its answer was lost), so a client does not blindly send it again.
 */
function forwardFailure(leader: NodeId | null, error: unknown, what: string): Error {
  const code = (error as { cause?: { code?: unknown } }).cause?.code;
  if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EHOSTUNREACH") return new NotLeaderError(leader, { cause: error });
  return new WriteOutcomeUnknownError(`the leader did not answer the ${what}`);
}

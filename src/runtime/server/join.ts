/**
 * Joining a running cluster (`synod node --join URL`): what a new node asks of a member
 * before and after it starts.
 *
 * Before: the cluster's id (a joining node has no `--peers` to derive it from, and the
 * transport refuses nodes of another cluster) and its member directory (the transport
 * accepts connections only from peers it knows, and the leader is about to dial in).
 * After the node listens: `POST /v1/members` as an auto-promoted learner, retried while the
 * cluster is busy (another change in flight, an election), until it is a member.
 */
import type { Logger } from "pino";
import { InvalidInputError } from "../../core/common/errors.js";
import { formatHostPort, parseHostPort, type MemberAddress, type NodeConfig } from "./config.js";
import { StartupError } from "./data-dir.js";

/** What a member tells a joining node. */
export interface ClusterView {
  readonly clusterId: string;
  /** The consensus protocol the cluster runs (a node joins only with the same one). */
  readonly consensus: string;
  /** The members as the answering node knows them, with their roles. */
  readonly members: readonly (MemberAddress & { readonly role: string })[];
}

/** How long a node keeps trying to reach the cluster (a mistyped URL should not hang for long). */
export const REACH_TIMEOUT_MS = 15_000;
/** How long it keeps asking a busy cluster to add it before it gives up. */
export const JOIN_TIMEOUT_MS = 60_000;
const ANSWER_TIMEOUT_MS = 10_000;
const BACKOFF_MS_MIN = 200;
const BACKOFF_MS_MAX = 2000;

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly retryAfterMs: number | null;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, { ...init, headers: { "content-type": "application/json" }, signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null) body = parsed as Record<string, unknown>;
  } catch {
    body = { message: text.slice(0, 200) };
  }
  const retryAfter = Number(response.headers.get("retry-after"));
  return { status: response.status, body, retryAfterMs: Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter * 1000, BACKOFF_MS_MAX) : null };
}

function describe(answer: Answer): string {
  return `${answer.status} ${String(answer.body["error"] ?? "")}: ${String(answer.body["message"] ?? "")}`;
}

/** Retries `attempt` (which returns a result, or null to try again) with backoff until `deadlineMs` (Date.now scale). */
async function retrying<T>(deadlineMs: number, attempt: () => Promise<{ readonly done: T } | { readonly waitMs: number | null; readonly why: string }>): Promise<T | { readonly failed: string }> {
  let backoffMs = BACKOFF_MS_MIN;
  let why = "no attempt";
  for (let attempts = 0; attempts < 10_000 && Date.now() < deadlineMs; attempts++) {
    const outcome = await attempt();
    if ("done" in outcome) return outcome.done;
    why = outcome.why;
    const waitMs = Math.min(outcome.waitMs ?? backoffMs, Math.max(0, deadlineMs - Date.now()));
    backoffMs = Math.min(backoffMs * 2, BACKOFF_MS_MAX);
    await new Promise((resolve) => setTimeout(resolve, waitMs));
  }
  return { failed: why };
}

/**
 * The cluster's id and directory, from `GET /v1/status` and `GET /v1/members` of `url`.
 * Retries a member that does not answer yet (it may be starting) until `deadlineMs`.
 * Throws StartupError with what to check.
 */
export async function fetchClusterView(url: string, deadlineMs: number): Promise<ClusterView> {
  const view = await retrying<ClusterView>(deadlineMs, async () => {
    try {
      const status = await call(`${url}/v1/status`);
      const listed = await call(`${url}/v1/members`);
      const failed = status.status !== 200 ? status : listed.status !== 200 ? listed : null;
      if (failed !== null) {
        // 503 (an election, a node still starting) passes; anything else will not.
        if (failed.status !== 503 || failed.body["error"] === "not_member") throw new StartupError(`${url} answered ${describe(failed)}: --join the HTTP URL of a member of a running synod cluster`);
        return { waitMs: failed.retryAfterMs, why: `answered ${describe(failed)}` };
      }
      const clusterId = status.body["clusterId"];
      if (typeof clusterId !== "string") throw new StartupError(`${url} answered /v1/status without a clusterId: is it a synod node?`);
      // Nodes from before Paxos say nothing: they run Raft.
      const consensus = typeof status.body["consensus"] === "string" ? status.body["consensus"] : "raft";
      return { done: { clusterId, consensus, members: parseMembers(url, listed.body["members"]) } };
    } catch (error) {
      if (error instanceof StartupError) throw error;
      return { waitMs: null, why: (error as Error).message };
    }
  });
  if ("failed" in view) throw new StartupError(`cannot reach the cluster at ${url} (${view.failed}): check --join, and that the cluster is running`);
  return view;
}

function parseMembers(url: string, list: unknown): (MemberAddress & { readonly role: string })[] {
  if (!Array.isArray(list)) throw new StartupError(`${url} answered /v1/members without a members list: is it a synod node?`);
  try {
    return list.map((item: unknown) => {
      const { id, peer, http, role } = (item ?? {}) as Record<string, unknown>;
      if (typeof id !== "number" || typeof peer !== "string") throw new InvalidInputError(`a member without an id or a peer address: ${JSON.stringify(item)}`);
      return { id, peer: parseHostPort(peer, `member ${id}'s peer address`), http: typeof http === "string" ? http : null, role: typeof role === "string" ? role : "voter" };
    });
  } catch (error) {
    throw new StartupError(`${url} answered /v1/members with a list this node cannot read (${(error as Error).message})`, { cause: error });
  }
}

export interface JoinRequest {
  readonly url: string;
  readonly id: number;
  /** `HOST:PORT` the other members dial. */
  readonly peer: string;
  readonly http: string;
  readonly deadlineMs: number;
  readonly log: Logger;
}

/**
 * Asks the cluster at `url` to add this node as a learner it promotes once caught up.
 * Resolves once the change is in force ("added"), or when the node is a member already
 * (a restart after a join whose answer was lost: the caller checks the address). Retries a busy cluster until
 * `deadlineMs`; throws StartupError on a refusal (another node has the id, a bad address)
 * or at the deadline.
 */
export interface JoinAnswer {
  readonly outcome: "added" | "already";
  /** The members the cluster listed once this node was added (null when it was already a member). */
  readonly members: readonly MemberAddress[] | null;
}

export async function requestJoin(request: JoinRequest): Promise<JoinAnswer> {
  const body = JSON.stringify({ id: request.id, peer: request.peer, http: request.http, learner: true, promote: "auto" });
  const outcome = await retrying<JoinAnswer>(request.deadlineMs, async () => {
    let answer: Answer;
    try {
      answer = await call(`${request.url}/v1/members`, { method: "POST", body });
    } catch (error) {
      return { waitMs: null, why: (error as Error).message };
    }
    if (answer.status === 200) return { done: { outcome: "added", members: parseMembers(request.url, answer.body["members"]) } };
    if (answer.status === 409 && answer.body["error"] === "already_member") return { done: { outcome: "already", members: null } };
    if (answer.status === 503 && answer.body["error"] === "not_member") {
      throw new StartupError(`${request.url} is not a member of the cluster (it was removed): --join a member`);
    }
    if (answer.status === 409 || answer.status >= 500) {
      request.log.info({ answer: describe(answer) }, "the cluster is busy; asking again to be added");
      return { waitMs: answer.retryAfterMs, why: describe(answer) };
    }
    throw new StartupError(`the cluster at ${request.url} refused to add node ${request.id}: ${describe(answer)}`);
  });
  if ("failed" in outcome) throw new StartupError(`the cluster at ${request.url} did not add node ${request.id} in time (last answer: ${outcome.failed}); start the node again to retry`);
  return outcome;
}

/**
 * Refuses to join a cluster of another consensus protocol (its messages would not decode
 * here), or as a member that exists at another address: two nodes with one id would split
 * its votes and its log.
 */
export function checkIdFree(config: NodeConfig, view: ClusterView): void {
  if (view.consensus !== config.consensus) {
    throw new StartupError(`the cluster runs ${view.consensus}, and this node was started with --consensus ${config.consensus}: start it with --consensus ${view.consensus}`);
  }
  const taken = view.members.find((member) => member.id === config.id);
  if (taken !== undefined && formatHostPort(taken.peer) !== formatHostPort(config.peer)) {
    throw new StartupError(`node id ${config.id} is already a member of the cluster, at ${formatHostPort(taken.peer)}: choose another --id, or remove that member first (synod members remove ${config.id})`);
  }
}

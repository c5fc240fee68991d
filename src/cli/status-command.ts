// `synod status`: the cluster as it knows itself. Every endpoint is asked at once, each
// with a short timeout (a paused node costs 2 s, not the command's whole timeout); the
// configuration comes from the leader (`GET /v1/members`), or, without one, from the
// answer of the most recent term; every member is shown with its role and whether it
// answers, and endpoints that are not members (removed nodes) are shown apart.
import type { Command } from "commander";
import { normalizeEndpoint, type MemberInfo, type NodeStatus } from "../client/api.js";
import type { Client } from "../client/client.js";
import { ConnectionError, TimeoutError } from "../client/errors.js";
import { connectionCause, endpointsOption, EXIT, print, termText, withClient, type ClientCommandOptions } from "./client-options.js";

/** One `/v1/status` (or members) question's limit: a node that does not answer by then is shown as not answering. */
export const STATUS_TIMEOUT_MS = 2_000;

interface Probe {
  readonly endpoint: string;
  readonly status: NodeStatus | null;
  readonly error: unknown;
}

/** Where the configuration shown came from. */
type Source = { readonly kind: "leader"; readonly id: number } | { readonly kind: "latest-term"; readonly id: number; readonly term: number } | { readonly kind: "none" };

interface MemberRow {
  readonly member: MemberInfo;
  readonly probe: Probe | null;
}

export interface ClusterView {
  readonly leader: { readonly id: number; readonly http: string; readonly term: number; readonly ballot?: unknown } | null;
  readonly source: Source;
  readonly joint: boolean;
  readonly members: readonly MemberRow[];
  /** Endpoints that answered as a node the configuration does not list. */
  readonly notMembers: readonly Probe[];
  /** Endpoints that did not answer and are no member's address. */
  readonly unreachable: readonly Probe[];
}

export function registerStatusCommand(program: Command, setExitCode: (code: number) => void): void {
  program
    .command("status")
    .description("show the cluster: its leader, and each member's role, state, term and indexes, as the cluster's configuration lists them")
    .addOption(endpointsOption())
    .option("--json", "print {leader, configurationFrom, joint, members: [{id, role, peer, http, status | error}], notMembers, unreachable}", false)
    .addHelpText(
      "after",
      `
Examples:
  $ synod status
  $ synod status --endpoints http://127.0.0.1:7003 --json

Every endpoint is asked at once, ${STATUS_TIMEOUT_MS / 1000} s at most each; so is every member the
configuration names that the endpoints do not (a node added since). The members are the
leader's (GET /v1/members); without a leader, the view of the most recent term's answer.
Endpoints whose node is not a member (removed) are listed apart.

Exit codes: 0 a leader is known, 3 none is (no quorum, an election, or nothing answered).`,
    )
    .action(async (options: ClientCommandOptions) => {
      await withClient(options, setExitCode, async (client) => {
        const view = await clusterView(client);
        print(options.json ? JSON.stringify(viewJson(view), null, 2) : formatView(view));
        if (view.leader === null) setExitCode(EXIT.unavailable);
      });
    });
}

/** Asks the endpoints, the leader's member list and the members not among the endpoints. */
export async function clusterView(client: Client): Promise<ClusterView> {
  const probes = new Map<string, Probe>();
  const ask = async (urls: readonly string[]): Promise<void> => {
    const fresh = [...new Set(urls)].filter((url) => !probes.has(url));
    for (const probe of await Promise.all(fresh.map((url) => probeStatus(client, url)))) probes.set(probe.endpoint, probe);
  };
  await ask(client.endpoints);
  const named = leaderNamed([...probes.values()]);
  if (named !== null) await ask([named]);
  const leaderProbe = leaderOf([...probes.values()]);
  const { members, joint, source } = await configuration(client, leaderProbe, [...probes.values()]);
  await ask(members.flatMap((member) => (member.http === null || probeOf(probes, member) !== null ? [] : [safeNormalize(member.http)])));
  const memberIds = new Set(members.map((member) => member.id));
  const memberUrls = new Set(members.flatMap((member) => (member.http === null ? [] : [safeNormalize(member.http)])));
  const all = [...probes.values()];
  return {
    leader: leaderProbe?.status === null || leaderProbe === null ? null : { id: leaderProbe.status.id, http: leaderProbe.endpoint, term: leaderProbe.status.term, ...(leaderProbe.status["ballot"] === undefined ? {} : { ballot: leaderProbe.status["ballot"] }) },
    source,
    joint,
    members: members.map((member) => ({ member, probe: probeOf(probes, member) })),
    notMembers: all.filter((probe) => probe.status !== null && source.kind !== "none" && !memberIds.has(probe.status.id)),
    unreachable: all.filter((probe) => probe.status === null && !memberUrls.has(probe.endpoint)),
  };
}

async function probeStatus(client: Client, endpoint: string): Promise<Probe> {
  try {
    return { endpoint, status: await client.status(endpoint, { timeoutMs: STATUS_TIMEOUT_MS }), error: null };
  } catch (error) {
    return { endpoint, status: null, error };
  }
}

/** The leader's URL as the answers of the highest term name it, when no endpoint is the leader. */
function leaderNamed(probes: readonly Probe[]): string | null {
  const answered = probes.flatMap((probe) => (probe.status === null ? [] : [probe.status]));
  const termMax = Math.max(-1, ...answered.map((status) => status.term));
  const leaderHttp = answered.find((status) => status.term === termMax && status.leaderHttp !== null)?.leaderHttp ?? null;
  return leaderHttp === null ? null : safeNormalize(leaderHttp);
}

/** The endpoint whose node says it leads, in the highest term any node reported (a leader of an older term has been deposed). */
function leaderOf(probes: readonly Probe[]): Probe | null {
  const termMax = Math.max(-1, ...probes.map((probe) => probe.status?.term ?? -1));
  return probes.find((probe) => probe.status?.role === "leader" && probe.status.term === termMax) ?? null;
}

/** The leader's `GET /v1/members`; failing that its status's list; without a leader, the list of the answer of the highest term (then the highest commit). */
async function configuration(client: Client, leader: Probe | null, probes: readonly Probe[]): Promise<{ members: readonly MemberInfo[]; joint: boolean; source: Source }> {
  if (leader !== null && leader.status !== null) {
    try {
      const view = await client.members(leader.endpoint, { timeoutMs: STATUS_TIMEOUT_MS });
      return { members: sorted(view.members), joint: view.joint, source: { kind: "leader", id: leader.status.id } };
    } catch {
      return { members: sorted(leader.status.members), joint: false, source: { kind: "leader", id: leader.status.id } };
    }
  }
  const latest = probes
    .flatMap((probe) => (probe.status === null || probe.status.members.length === 0 ? [] : [probe.status]))
    .sort((a, b) => b.term - a.term || b.commitIndex - a.commitIndex)[0];
  if (latest === undefined) return { members: [], joint: false, source: { kind: "none" } };
  return { members: sorted(latest.members), joint: false, source: { kind: "latest-term", id: latest.id, term: latest.term } };
}

/** The answer of `member`'s node: an endpoint whose status named its id, else its own address's. */
function probeOf(probes: ReadonlyMap<string, Probe>, member: MemberInfo): Probe | null {
  for (const probe of probes.values()) if (probe.status?.id === member.id) return probe;
  return member.http === null ? null : (probes.get(safeNormalize(member.http)) ?? null);
}

function sorted(members: readonly MemberInfo[]): MemberInfo[] {
  return [...members].sort((a, b) => a.id - b.id);
}

function safeNormalize(url: string): string {
  try {
    return normalizeEndpoint(url);
  } catch {
    return url;
  }
}

function problem(error: unknown): string {
  if (error instanceof ConnectionError) return `unreachable (${connectionCause(error)})`;
  if (error instanceof TimeoutError) return `no answer within ${STATUS_TIMEOUT_MS / 1000} s`;
  return `error: ${error instanceof Error ? error.message : String(error)}`;
}

export function formatView(view: ClusterView): string {
  const lines: string[] = [];
  const from = view.source.kind === "leader" ? "as the leader lists it" : view.source.kind === "latest-term" ? `as node ${view.source.id} saw it in term ${view.source.term} (no leader to confirm it)` : "";
  if (view.leader !== null) lines.push(`leader: node ${view.leader.id} at ${view.leader.http}, ${termText(view.leader)}`);
  else lines.push("no leader is known: no quorum of the members answers, or an election is under way");
  if (view.source.kind === "none") lines.push(`no node answered with the configuration${view.unreachable.length > 0 && view.notMembers.length === 0 ? "; is the cluster running? (npm start)" : ""}`);
  else {
    lines.push(`members${view.joint ? " (a joint configuration: a change is under way)" : ""}, ${from}:`);
    lines.push(...table(view.members));
  }
  if (view.notMembers.length > 0) {
    lines.push("endpoints whose node is not a member (removed, or not added yet):");
    for (const probe of view.notMembers) lines.push(`  ${probe.endpoint}  node ${probe.status?.id ?? "?"}, ${probe.status?.role ?? "?"}, ${probe.status === null ? "term ?" : termText(probe.status)}`);
  }
  if (view.unreachable.length > 0) {
    lines.push("endpoints that did not answer:");
    for (const probe of view.unreachable) lines.push(`  ${probe.endpoint}  ${problem(probe.error)}`);
  }
  const answering = view.members.filter((row) => (row.probe?.status ?? null) !== null).length;
  if (view.source.kind !== "none") lines.push(`${view.members.length} members, ${answering} answering`);
  return lines.join("\n");
}

function table(rows: readonly MemberRow[]): string[] {
  // A Paxos cluster's nodes show their ballot (round.node) where Raft's show a term.
  const ballots = rows.some(({ probe }) => termText(probe?.status ?? {}).startsWith("ballot"));
  const header = ["id", "role", "state", ballots ? "ballot" : "term", "commit", "applied", "http"];
  const cells = rows.map(({ member, probe }) => {
    const http = member.http ?? probe?.endpoint ?? "-";
    const status = probe?.status ?? null;
    if (status === null) return [String(member.id), member.role, probe === null ? (member.http === null ? "no address known" : "not asked") : problem(probe.error), "-", "-", "-", http];
    return [String(member.id), member.role, status.role, termText(status).replace(/^(term|ballot) /, ""), String(status.commitIndex), String(status.appliedIndex), http];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((row) => (row[column] ?? "").length)));
  const line = (row: readonly string[]): string => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join("  ");
  return [line(header), ...cells.map(line)];
}

function viewJson(view: ClusterView): object {
  const errorJson = (error: unknown): object => ({ code: error instanceof Error ? String((error as { code?: unknown }).code ?? error.name) : "unknown", message: problem(error) });
  return {
    leader: view.leader,
    configurationFrom: view.source.kind === "none" ? null : view.source,
    joint: view.joint,
    members: view.members.map(({ member, probe }) => {
      if (probe === null) return { ...member, error: null };
      return { ...member, ...(probe.status === null ? { error: errorJson(probe.error) } : { status: probe.status }) };
    }),
    notMembers: view.notMembers.map((probe) => ({ endpoint: probe.endpoint, status: probe.status })),
    unreachable: view.unreachable.map((probe) => ({ endpoint: probe.endpoint, error: errorJson(probe.error) })),
  };
}

/**
 * One nemesis run: a cluster of real `synod node` processes, one per network namespace,
 * clients recording a history, and a seeded schedule of faults (partitions of every shape,
 * kill -9 and restart, SIGSTOP and SIGCONT). Then everything is healed, the cluster serves
 * a while longer, settles, and the verdict (verdict.ts) is reached.
 *
 * Whatever happens (a pass, a violation, an exception, SIGINT or SIGTERM), every node is
 * killed and every namespace, veth and bridge removed before the run ends.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Prng } from "../core/common/prng.js";
import { NemesisCluster } from "./cluster.js";
import { nowMicros, readAll, Workload } from "./clients.js";
import { Network, removeLeftovers } from "./netns.js";
import { describeFault, makeSchedule, type Fault, type Target } from "./schedule.js";
import { judge, type NodeView, type Verdict } from "./verdict.js";

export interface NemesisOptions {
  readonly seed: number;
  readonly durationMs: number;
  readonly nodes: 3 | 5;
  readonly consensus: "raft" | "paxos";
  /** Keep the data directories and node logs even when the run passes. */
  readonly keepData?: boolean;
  readonly print?: (line: string) => void;
}

export interface NemesisReport {
  readonly verdict: Verdict;
  /** Each fault as it was applied: its kind and the nodes it hit, resolved. */
  readonly faults: readonly { readonly kind: Fault["kind"]; readonly nodes: string; readonly droppedPackets: number }[];
  readonly operations: number;
  readonly wallMs: number;
  /** Where the node logs are, when kept. */
  readonly dataRoot: string | null;
  /** The namespaces, bridge and veths the run made (all removed by the time it returns). */
  readonly networkNames: readonly string[];
}

const CLIENTS = 5;
/** The nodes give up on a request after this; clients wait a second longer. */
const NODE_REQUEST_TIMEOUT_MS = 2000;
const CLIENT_TIMEOUT_MS = 3000;
/** After the heal, clients go on this long: the cluster must serve again. */
const SERVE_AFTER_HEAL_MS = 3000;
const LEADER_WAIT_MS = 20_000;
const CATCH_UP_MS = 30_000;

export async function runNemesis(options: NemesisOptions): Promise<NemesisReport> {
  const print = options.print ?? ((line: string) => console.log(line));
  const wallStart = Date.now();
  for (const removed of removeLeftovers()) print(`removed a leftover of an earlier run: ${removed}`);
  const schedule = makeSchedule(options);
  const root = mkdtempSync(join(tmpdir(), "synod-nemesis-"));
  let network: Network;
  try {
    network = Network.create({ nodes: options.nodes, ownerPid: process.pid });
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
  const cluster = new NemesisCluster(network, options.nodes, { consensus: options.consensus, root, requestTimeoutMs: NODE_REQUEST_TIMEOUT_MS });
  // A signal ends the run at once, with no verdict to keep logs for: kill the nodes, remove
  // the network and the data, exit.
  const onSignal = (signal: NodeJS.Signals): void => {
    print(`${signal}: killing the nodes, removing the network and ${root}`);
    cluster.killAllNow();
    network.destroy();
    rmSync(root, { recursive: true, force: true });
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  const onExit = (): void => {
    cluster.killAllNow();
    network.destroy();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("exit", onExit);
  let passed = false;
  try {
    print(`nemesis: seed ${options.seed}, ${options.nodes} nodes, ${options.consensus}, ${options.durationMs} ms of faults (${schedule.length} scheduled); network ${network.describe()}, data in ${root}`);
    const report = await exercise(options, schedule, network, cluster, print);
    passed = report.verdict.pass;
    const keep = !passed || options.keepData === true;
    return { ...report, wallMs: Date.now() - wallStart, dataRoot: keep ? root : null, networkNames: network.names() };
  } finally {
    await cluster.killAll();
    network.destroy();
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    process.removeListener("exit", onExit);
    if (passed && options.keepData !== true) rmSync(root, { recursive: true, force: true });
  }
}

async function exercise(options: NemesisOptions, schedule: readonly Fault[], network: Network, cluster: NemesisCluster, print: (line: string) => void): Promise<Omit<NemesisReport, "wallMs" | "dataRoot" | "networkNames">> {
  for (const id of cluster.ids) cluster.start(id);
  const first = await cluster.waitForLeader(LEADER_WAIT_MS);
  if (first === null) throw new Error(`no leader within ${LEADER_WAIT_MS} ms of starting; see the node logs in ${cluster.logFile(1).replace(/node-1\.log$/, "")}`);
  const workload = new Workload({ clients: CLIENTS, urls: cluster.ids.map((id) => cluster.url(id)), timeoutMs: CLIENT_TIMEOUT_MS, seed: options.seed });
  const start = Date.now();
  const stamp = (): string => `[${((Date.now() - start) / 1000).toFixed(3).padStart(8)}s]`;
  print(`${stamp()} node ${first} leads; ${CLIENTS} clients start`);
  workload.start();
  const choices = new Prng(options.seed ^ 0x6e656d);
  const applied: NemesisReport["faults"][number][] = [];
  for (const fault of schedule) {
    await sleepUntil(start + fault.atMs);
    const droppedBefore = network.droppedPackets();
    const effect = await apply(fault, network, cluster, choices);
    print(`${stamp()} fault  ${describeFault(fault)}${effect.resolved ? `: ${effect.nodes}` : ""}`);
    await sleepUntil(start + fault.atMs + fault.durationMs);
    const dropped = network.droppedPackets() - droppedBefore;
    await effect.heal();
    print(`${stamp()} heal   ${fault.kind}${isPartition(fault) ? ` (${dropped} packets dropped)` : ""}`);
    applied.push({ kind: fault.kind, nodes: effect.nodes, droppedPackets: dropped });
  }
  // Whatever a fault left (it should have healed itself): heal it all.
  network.healAll();
  for (const id of cluster.ids) {
    cluster.resume(id);
    if (!cluster.isRunning(id)) cluster.start(id);
  }
  const healedAt = nowMicros();
  print(`${stamp()} healed everything; clients go on for ${SERVE_AFTER_HEAL_MS} ms`);
  await sleepUntil(Date.now() + SERVE_AFTER_HEAL_MS);
  await workload.stop();
  print(`${stamp()} clients stopped after ${workload.history.length} operations; settling`);
  const settled = await settle(cluster);
  const verdict = judge({ history: workload.history, healedAt, ...settled });
  print(`${stamp()} ${verdict.pass ? "PASS" : "FAIL"}: ${verdict.summary}`);
  for (const problem of verdict.problems) print(`  - ${problem}`);
  return { verdict, faults: applied, operations: workload.history.length };
}

interface Effect {
  /** The nodes the fault hit, with "the leader" resolved. */
  readonly nodes: string;
  /** Whether `nodes` says more than the fault's description (a role was resolved to a node). */
  readonly resolved: boolean;
  readonly heal: () => Promise<void> | void;
}

async function apply(fault: Fault, network: Network, cluster: NemesisCluster, choices: Prng): Promise<Effect> {
  const others = (id: number): number[] => cluster.ids.filter((other) => other !== id);
  const set = (ids: readonly number[]): string => `{${ids.join(",")}}`;
  const healNetwork = (): void => network.healAll();
  switch (fault.kind) {
    case "isolate-leader": {
      const leader = await resolve("leader", cluster, choices);
      network.cutBetween([leader.id], others(leader.id));
      return { nodes: `node ${leader.id}${leader.note} | ${set(others(leader.id))}`, resolved: true, heal: healNetwork };
    }
    case "split":
      network.cutBetween(fault.minority, fault.majority);
      return { nodes: `${set(fault.minority)} | ${set(fault.majority)}`, resolved: false, heal: healNetwork };
    case "one-way": {
      const from = await resolve(fault.from, cluster, choices);
      const to = fault.to === "a follower" ? choices.pick(others(from.id)) : fault.to;
      network.cut(from.id, to);
      return { nodes: `node ${from.id}${from.note} cannot send to node ${to}`, resolved: fault.from === "leader", heal: healNetwork };
    }
    case "bridge":
      network.cutBetween(fault.left, fault.right);
      return { nodes: `${set(fault.left)} <- ${fault.middle} -> ${set(fault.right)}`, resolved: false, heal: healNetwork };
    case "kill-restart": {
      const target = await resolve(fault.target, cluster, choices);
      await cluster.kill(target.id);
      return { nodes: `node ${target.id}${target.note}`, resolved: fault.target === "leader", heal: () => cluster.start(target.id) };
    }
    case "pause-resume": {
      const target = await resolve(fault.target, cluster, choices);
      await cluster.pause(target.id);
      return { nodes: `node ${target.id}${target.note}`, resolved: fault.target === "leader", heal: () => cluster.resume(target.id) };
    }
  }
}

/** A node id for a target; "leader" is asked of the cluster (up to 2 s), else a node at random. */
async function resolve(target: Target, cluster: NemesisCluster, choices: Prng): Promise<{ id: number; note: string }> {
  if (target !== "leader") return { id: target, note: "" };
  const leader = await cluster.waitForLeader(2000);
  if (leader !== null) return { id: leader, note: " (the leader)" };
  return { id: choices.pick(cluster.ids), note: " (no leader known: a node at random)" };
}

/**
 * Waits for a leader, reads the whole store through it (linearizable) and its commit index,
 * then every node's applied index and own (stale) read of the store; until every node has
 * caught up with that read, or the time is up. The read is taken again each round: a write
 * that timed out may still commit after one, and any linearizable read is a fair final read.
 */
async function settle(cluster: NemesisCluster): Promise<{ finalRead: FinalRead | null; leaderCommitIndex: number | null; nodes: NodeView[] }> {
  const deadline = Date.now() + CATCH_UP_MS;
  let last: { finalRead: FinalRead | null; leaderCommitIndex: number | null; nodes: NodeView[] } = { finalRead: null, leaderCommitIndex: null, nodes: [] };
  while (Date.now() < deadline) {
    const leader = await cluster.waitForLeader(Math.max(0, deadline - Date.now()));
    if (leader === null) break;
    const call = nowMicros();
    const values = await readAll(cluster.url(leader), "linearizable", CLIENT_TIMEOUT_MS);
    const finalRead = values === null ? last.finalRead : { values, call, return: nowMicros() };
    const leaderCommitIndex = (await cluster.status(leader))?.commitIndex ?? last.leaderCommitIndex;
    const nodes = await Promise.all(cluster.ids.map(async (id) => ({ id, appliedIndex: (await cluster.status(id))?.appliedIndex ?? null, store: await readAll(cluster.url(id), "stale", CLIENT_TIMEOUT_MS) })));
    last = { finalRead, leaderCommitIndex, nodes };
    const caughtUp = nodes.every((node) => node.appliedIndex !== null && leaderCommitIndex !== null && node.appliedIndex >= leaderCommitIndex && node.store !== null && sameStore(node.store, finalRead?.values));
    if (values !== null && caughtUp) break;
    await sleepUntil(Date.now() + 250);
  }
  return last;
}

interface FinalRead {
  readonly values: ReadonlyMap<string, string>;
  readonly call: number;
  readonly return: number;
}

function sameStore(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string> | undefined): boolean {
  if (b === undefined || a.size !== b.size) return false;
  for (const [key, value] of a) if (b.get(key) !== value) return false;
  return true;
}

function sleepUntil(timeMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, timeMs - Date.now())));
}

function isPartition(fault: Fault): boolean {
  return fault.kind === "isolate-leader" || fault.kind === "split" || fault.kind === "one-way" || fault.kind === "bridge";
}

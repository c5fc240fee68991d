/**
 * `synod cluster`: a local cluster of N nodes, each a child process running `synod node`,
 * on loopback. What `npm start` runs. It prints where everything is, waits for a leader,
 * reports a node that dies (and leaves the others running: a dead node is a failover to
 * watch, not a reason to stop), and stops every node cleanly on Ctrl-C.
 *
 * Before it starts anything it checks that the ports are free and that no running node
 * holds the data directories, so a second `npm start` says so in one line rather than
 * starting nodes that would fail, or answer for the first cluster, or write in its logs. A
 * node that refuses to start (it was removed from its cluster, say) has its one-line reason
 * relayed; a cluster that cannot elect a leader with the nodes it started is told why.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Command, InvalidArgumentError, Option } from "commander";
import { CONSENSUS_PROTOCOLS, type ConsensusProtocol } from "../runtime/server/consensus.js";
import { DEFAULT_NODE_CONFIG, SHARDS_MAX } from "../runtime/server/config.js";
import { isZoneName } from "../core/multi/placement.js";
import { dataDirFailure, lockHolder, readIdentity } from "../runtime/server/data-dir.js";
import { termText } from "./client-options.js";
import { openLocalCa } from "../runtime/tls/local-ca.js";
import type { TlsFiles } from "../runtime/tls/material.js";
import { trustForFetch } from "../runtime/tls/trust.js";
import { CLUSTER_CONTROL_TOKEN_ENV, CLUSTER_CONTROL_URL_ENV } from "../runtime/server/cluster-control.js";
import { startControlServer, type ControlServer } from "./cluster-control-server.js";

interface ClusterFlags {
  nodes: number;
  basePort: number;
  peerBasePort?: number;
  host: string;
  dataDir: string;
  consensus: ConsensusProtocol;
  shards: number;
  splitKeys: number;
  splitLoad: number;
  replicas: number;
  replaceAfterMs: number;
  zones?: readonly string[];
  logLevel: string;
  snapshotEntries: number;
  requestTimeoutMs: number;
  historyRevisions: number;
  tls: boolean;
  allowFaultInjection: boolean;
}

/** One node of the plan: where it listens, where its data and log are, how it is started. */
interface NodePlan {
  readonly id: number;
  readonly httpPort: number;
  readonly peerPort: number;
  readonly http: string;
  readonly peer: string;
  readonly dir: string;
  readonly logPath: string;
  /** The `synod` arguments that start it (what restarts it, too). */
  readonly args: readonly string[];
}

interface Child extends NodePlan {
  process: ChildProcess;
  /** Where this run's output begins in the log file (it is appended to across runs). */
  readonly logOffset: number;
  exited: boolean;
  /** The node's own one-line reason, when it refused to start. */
  refusal: string | null;
  /** Killed from the dashboard: its exit is expected, and it may be restarted from there. */
  killedOnPurpose: boolean;
}

/** What waiting for a leader found. */
type LeaderWait = { readonly kind: "leader"; readonly id: number; readonly term: number; readonly ballot?: unknown; readonly http: string | null } | { readonly kind: "stuck"; readonly why: string } | { readonly kind: "none" };

const LEADER_WAIT_MS = 30_000;
/** How long without a leader before asking whether one can be elected at all (several election timeouts). */
const STUCK_CHECK_AFTER_MS = 3000;
const STOP_GRACE_MS = 10_000;
const NODES_MAX = 9;
/** How far apart the ports of a suggested second cluster are from the first's. */
const PORT_SHIFT = 10;

function integerIn(what: string, min: number, max: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min || value > max) throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}`);
    return value;
  };
}

export function registerClusterCommand(program: Command, setExitCode: (code: number) => void): void {
  program
    .command("cluster")
    .description("run a local cluster: N nodes as child processes on loopback, until Ctrl-C (what `npm start` runs)")
    .option("--nodes <n>", "how many nodes", integerIn("--nodes", 1, NODES_MAX), 3)
    .option("--base-port <port>", "node i serves HTTP on base-port + i - 1", integerIn("--base-port", 1, 65000), 7001)
    .option("--peer-base-port <port>", "node i listens for peers on peer-base-port + i - 1 (default base-port + 100)", integerIn("--peer-base-port", 1, 65000))
    .option("--host <address>", "the loopback address to bind", "127.0.0.1")
    .option("--data-dir <dir>", "node i keeps its data in <dir>/node-<i> and logs to <dir>/node-<i>.log (JSON lines)", "./data")
    .addOption(new Option("--consensus <protocol>", "the consensus protocol").choices([...CONSENSUS_PROTOCOLS]).default(DEFAULT_NODE_CONFIG.consensus))
    .option("--shards <n>", `ranges the key space is cut into, each its own consensus group of every node (1 to ${SHARDS_MAX})`, integerIn("--shards", 1, SHARDS_MAX), DEFAULT_NODE_CONFIG.shards)
    .option("--split-keys <n>", "with --shards: a range splits in two once it holds more than this many keys (0: never by itself)", integerIn("--split-keys", 0, Number.MAX_SAFE_INTEGER), DEFAULT_NODE_CONFIG.splitKeys)
    .option("--split-load <n>", "with --shards: a range splits at the key that halves its writes once it takes more than this many writes a second for 3 s (0: never by load)", integerIn("--split-load", 0, Number.MAX_SAFE_INTEGER), DEFAULT_NODE_CONFIG.splitLoad)
    .option("--replicas <n>", "with --shards: each range but range 0 keeps this many replicas once the cluster has more members (0: every member hosts every range)", integerIn("--replicas", 0, 7), DEFAULT_NODE_CONFIG.replicas)
    .option("--replace-after-ms <ms>", "with --replicas: a member unreachable this long has its ranges' replicas made again elsewhere", integerIn("--replace-after-ms", 1, Number.MAX_SAFE_INTEGER), DEFAULT_NODE_CONFIG.replaceAfterMs)
    .option("--zones <list>", "with --replicas: zones given to the nodes in turn (node i gets the ((i - 1) mod count)th), e.g. a,b,c; each range spreads over as many as it can", zoneList)
    .option("--snapshot-entries <n>", "each node snapshots after this many applied entries", integerIn("--snapshot-entries", 1, Number.MAX_SAFE_INTEGER), DEFAULT_NODE_CONFIG.snapshotEntries)
    .option("--request-timeout-ms <ms>", "each node's request timeout", integerIn("--request-timeout-ms", 1, 3_600_000), DEFAULT_NODE_CONFIG.requestTimeoutMs)
    .option("--history-revisions <n>", "revisions of history each node keeps (0: all, until POST /v1/compact)", integerIn("--history-revisions", 0, Number.MAX_SAFE_INTEGER), DEFAULT_NODE_CONFIG.historyRevisions)
    .option("--log-level <level>", "the nodes' log level", "info")
    .option("--allow-fault-injection", "let admins inject faults into the nodes' peer transport (POST /v1/debug/faults; the dashboard's isolate and drop buttons)", false)
    .option("--tls", "serve HTTPS only, with mutual TLS between the nodes: a CA of the cluster's own and the nodes' certificates are made in <data-dir>/tls (kept for later runs)", false)
    .addHelpText(
      "after",
      `
Example:
  synod cluster                       # 3 nodes, HTTP on 7001-7003, data in ./data
  synod cluster --nodes 5 --base-port 8001 --data-dir /tmp/synod
  synod cluster --tls --data-dir data-tls  # HTTPS; clients trust data-tls/tls/ca.pem
  synod cluster --shards 8             # the key space in 8 ranges, each its own consensus group
Then, in another terminal:
  curl -X PUT --data-binary world http://127.0.0.1:7001/v1/kv/hello
  curl http://127.0.0.1:7002/v1/kv/hello
  npx synod status`,
    )
    .action(async (flags: ClusterFlags) => setExitCode(await runCluster(flags)));
}

/** The most nodes the dashboard's "add a node" grows a local cluster to. */
const ADDED_NODES_MAX = 9;

/** A path as the user would type it: relative to the working directory when inside it. */
function display(path: string): string {
  const relativePath = relative(process.cwd(), path);
  return relativePath.startsWith("..") ? path : relativePath || ".";
}

/** Where `synod cluster --tls` keeps its CA and the nodes' certificates. */
function tlsDirOf(dataDir: string): string {
  return join(dataDir, "tls");
}

function tlsFilesOf(dataDir: string, id: number): TlsFiles {
  const dir = tlsDirOf(dataDir);
  return { certFile: join(dir, `node-${id}.pem`), keyFile: join(dir, `node-${id}-key.pem`), caFile: join(dir, "ca.pem") };
}

/**
 * Makes (or opens) the cluster's CA and each node's certificate, and has this process trust
 * the CA for its own requests to the nodes. One line on failure, or null.
 */
function prepareTls(flags: ClusterFlags, dataDir: string, nodes: readonly NodePlan[], say: (text: string) => void): string | null {
  const dir = tlsDirOf(dataDir);
  const fresh = !existsSync(join(dir, "ca.pem"));
  try {
    const ca = openLocalCa(dir);
    for (const node of nodes) ca.ensureNode(node.id, [flags.host]);
    const client = ca.ensureClient();
    trustForFetch({ ca: readFileSync(ca.caFile, "utf8"), cert: readFileSync(client.certFile, "utf8"), key: readFileSync(client.keyFile, "utf8") });
  } catch (error) {
    return `cannot prepare TLS in ${display(dir)}: ${(error as Error).message}`;
  }
  say(`TLS: ${fresh ? "made a CA" : "the CA"} in ${display(join(dir, "ca.pem"))}; clients trust it (curl --cacert, synod --cacert)`);
  return null;
}

function planCluster(flags: ClusterFlags): { readonly dataDir: string; readonly nodes: readonly NodePlan[] } {
  const dataDir = resolve(flags.dataDir);
  const peerBase = flags.peerBasePort ?? flags.basePort + 100;
  const ids = Array.from({ length: flags.nodes }, (_, i) => i + 1);
  const peers = ids.map((id) => `${id}=${flags.host}:${peerBase + id - 1}`).join(",");
  const nodes = ids.map((id) => planNode(flags, dataDir, id, ["--peers", peers]));
  return { dataDir, nodes };
}

/** `--zones a,b,c`: the zone names, each checked. */
function zoneList(value: string): string[] {
  const zones = value.split(",").map((zone) => zone.trim());
  const bad = zones.find((zone) => !isZoneName(zone));
  if (bad !== undefined) throw new InvalidArgumentError(`--zones takes zone names separated by commas, each 1 to 64 letters, digits, '.', '_' or '-'; got ${JSON.stringify(bad)}`);
  return zones;
}

/** Node `id` of the cluster, started with `membership` (`--peers LIST` to bootstrap, or `--join URL`). */
function planNode(flags: ClusterFlags, dataDir: string, id: number, membership: readonly string[]): NodePlan {
  const peerBase = flags.peerBasePort ?? flags.basePort + 100;
  const synodBin = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "synod.js");
  const httpPort = flags.basePort + id - 1;
  const peerPort = peerBase + id - 1;
  const dir = join(dataDir, `node-${id}`);
  const args = [synodBin, "node", "--id", String(id), "--http", `${flags.host}:${httpPort}`, "--peer", `${flags.host}:${peerPort}`, ...membership, "--data-dir", dir];
  args.push("--consensus", flags.consensus, "--snapshot-entries", String(flags.snapshotEntries), "--request-timeout-ms", String(flags.requestTimeoutMs));
  args.push("--history-revisions", String(flags.historyRevisions));
  if (flags.shards > 1) args.push("--shards", String(flags.shards), "--split-keys", String(flags.splitKeys), "--split-load", String(flags.splitLoad), "--replicas", String(flags.replicas), "--replace-after-ms", String(flags.replaceAfterMs));
  const zone = flags.zones?.[(id - 1) % flags.zones.length];
  if (zone !== undefined) args.push("--zone", zone);
  // The log is a file: JSON lines, whatever the terminal this command runs in.
  args.push("--log-level", flags.logLevel, "--log-format", "json");
  if (flags.allowFaultInjection) args.push("--allow-fault-injection");
  if (flags.tls) {
    const files = tlsFilesOf(dataDir, id);
    args.push("--tls-cert", files.certFile, "--tls-key", files.keyFile, "--tls-ca", files.caFile);
  }
  return { id, httpPort, peerPort, http: `${flags.tls ? "https" : "http"}://${flags.host}:${httpPort}`, peer: `${flags.host}:${peerPort}`, dir, logPath: join(dataDir, `node-${id}.log`), args };
}

async function runCluster(flags: ClusterFlags): Promise<number> {
  const say = (text: string): void => void process.stdout.write(`${text}\n`);
  const plan = planCluster(flags);
  const problem = await checkNothingRunning(flags, plan.dataDir, plan.nodes);
  const logs = problem === null ? openLogs(plan.dataDir, plan.nodes) : problem;
  if (typeof logs === "string") {
    process.stderr.write(`synod cluster: ${logs}\n`);
    return 1;
  }

  const ranges = flags.shards > 1 ? `, ${flags.shards} ranges` : "";
  say(`synod cluster: ${flags.nodes} node${flags.nodes === 1 ? "" : "s"} (${flags.consensus}${ranges}), data in ${display(plan.dataDir)}`);
  const tlsProblem = flags.tls ? prepareTls(flags, plan.dataDir, plan.nodes, say) : null;
  if (tlsProblem !== null) {
    process.stderr.write(`synod cluster: ${tlsProblem}\n`);
    return 1;
  }
  let stopping = false;
  let leaderFound = false;
  let wakeAllExited = (): void => undefined;
  const allExited = new Promise<void>((resolveAll) => (wakeAllExited = resolveAll));
  // Done once every node has exited, unless some were killed from the dashboard: those may
  // be restarted from there, so the cluster runs on until Ctrl-C.
  const checkAllExited = (): void => {
    if (children.every((child) => child.exited) && (stopping || !children.some((child) => child.killedOnPurpose))) wakeAllExited();
  };
  const watchExit = (child: Child): void => {
    child.process.once("exit", (code, signal) => {
      child.exited = true;
      child.refusal = startupRefusal(child);
      if (!stopping && child.killedOnPurpose) say(`node ${child.id} was killed from the dashboard (pid ${child.process.pid ?? "?"}); restart it from there, or Ctrl-C to stop all`);
      else if (!stopping) reportExit(child, code, signal, leaderFound, say);
      checkAllExited();
    });
  };
  const control = await startControlServer(flags.host, {
    check: (id, action) => {
      const child = children.find((c) => c.id === id);
      if (child === undefined) return `node ${id} is not one of this cluster's ${children.length} nodes`;
      if (stopping) return "the cluster is stopping";
      if (action === "kill") return child.exited ? `node ${id} is not running` : null;
      return child.exited ? null : `node ${id} is running (pid ${child.process.pid ?? "?"})`;
    },
    perform: (id, action) => {
      const index = children.findIndex((c) => c.id === id);
      const child = children[index] as Child;
      if (action === "kill") {
        child.killedOnPurpose = true;
        child.process.kill("SIGKILL");
        return;
      }
      const log = openLogs(plan.dataDir, [child]);
      if (typeof log === "string") return say(`synod cluster: cannot restart node ${id}: ${log}`);
      const restarted = startNode(child, log[0] as number, control);
      children[index] = restarted;
      watchExit(restarted);
      say(`node ${id} restarted from the dashboard (pid ${restarted.process.pid ?? "?"})`);
    },
    add: () => {
      if (stopping) return "the cluster is stopping";
      const through = children.find((c) => !c.exited);
      if (through === undefined) return "no node of this cluster runs to join through";
      const id = Math.max(...children.map((c) => c.id)) + 1;
      if (id > ADDED_NODES_MAX) return `this local cluster has ${children.length} nodes; the dashboard adds up to ${ADDED_NODES_MAX}`;
      if (flags.tls) {
        try {
          openLocalCa(tlsDirOf(plan.dataDir)).ensureNode(id, [flags.host]);
        } catch (error) {
          return `cannot make node ${id}'s certificate: ${(error as Error).message}`;
        }
      }
      const node = planNode(flags, plan.dataDir, id, ["--join", through.http]);
      const log = openLogs(plan.dataDir, [node]);
      if (typeof log === "string") return `cannot start node ${id}: ${log}`;
      const added = startNode(node, log[0] as number, control);
      children.push(added);
      watchExit(added);
      say(`  node ${id}  ${node.http}  peer ${node.peer}  log ${display(node.logPath)}  pid ${added.process.pid ?? "?"}  (added from the dashboard; it joins through node ${through.id})`);
      return id;
    },
  });
  const children = plan.nodes.map((node, i) => {
    const child = startNode(node, logs[i] as number, control);
    say(`  node ${node.id}  ${node.http}  peer ${node.peer}  log ${display(node.logPath)}  pid ${child.process.pid ?? "?"}`);
    return child;
  });
  for (const child of children) watchExit(child);

  const stopAll = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    checkAllExited();
    say("\nstopping the cluster...");
    for (const child of children) if (!child.exited) child.process.kill("SIGTERM");
    const timer = setTimeout(() => {
      for (const child of children) if (!child.exited) child.process.kill("SIGKILL");
    }, STOP_GRACE_MS);
    await allExited;
    clearTimeout(timer);
    await control.close();
    say("stopped.");
  };
  process.once("SIGINT", () => void stopAll());
  process.once("SIGTERM", () => void stopAll());

  const giveUp = (): boolean => stopping || children.every((child) => child.exited);
  const found = await waitForLeader(children, plan.dataDir, giveUp, LEADER_WAIT_MS);
  if (found.kind === "leader") {
    leaderFound = true;
    sayLeader(found, children, flags.tls ? join(plan.dataDir, "tls", "ca.pem") : null, say);
  } else if (!stopping) {
    say(`\n${noLeader(found, children, plan.dataDir)}`);
    if (!giveUp()) {
      say("The nodes keep running (Ctrl-C stops them); a leader, once elected, is reported here.");
      // Members started elsewhere may still come: report the leader if one is elected.
      void waitForLeader(children, plan.dataDir, giveUp, Number.POSITIVE_INFINITY, false).then((later) => {
        if (later.kind !== "leader" || stopping) return;
        leaderFound = true;
        sayLeader(later, children, flags.tls ? join(plan.dataDir, "tls", "ca.pem") : null, say);
      });
    }
  }
  await allExited;
  await control.close();
  return children.every((child) => child.process.exitCode === 0 || child.process.signalCode === "SIGTERM") ? 0 : 1;
}

/** Why no leader was found, and what to do. */
function noLeader(found: LeaderWait, children: readonly Child[], dataDir: string): string {
  if (found.kind === "stuck") return found.why;
  if (children.every((child) => child.exited)) return `no node is running (see above). To start a new cluster instead, pass another --data-dir, or empty ${display(dataDir)}.`;
  return `no leader after ${LEADER_WAIT_MS / 1000} s; the nodes' logs say why: ${children.map((child) => display(child.logPath)).join(", ")}.`;
}

/** Starts `node`, its output appended to its log (`out`, an open file, closed here once the child has it). */
function startNode(node: NodePlan, out: number, control: ControlServer): Child {
  const logOffset = fstatSync(out).size;
  // stdin is a pipe the node watches: if this process dies, even by SIGKILL, the pipe
  // closes and the node stops (SYNOD_STOP_WITH_PARENT).
  const child = spawn(process.execPath, node.args, {
    stdio: ["pipe", out, out],
    env: { ...process.env, SYNOD_STOP_WITH_PARENT: "1", [CLUSTER_CONTROL_URL_ENV]: control.url, [CLUSTER_CONTROL_TOKEN_ENV]: control.token },
  });
  closeSync(out);
  return { ...node, process: child, logOffset, exited: false, refusal: null, killedOnPurpose: false };
}

function reportExit(child: Child, code: number | null, signal: NodeJS.Signals | null, leaderFound: boolean, say: (text: string) => void): void {
  if (child.refusal !== null) {
    // Restarting it as it was would be refused again: the reason says what to do instead.
    say(`\nnode ${child.id} cannot start: ${child.refusal}`);
    return;
  }
  say(`\nnode ${child.id} (pid ${child.process.pid}) ${signal === null ? `exited with code ${code}` : `was killed by ${signal}`}. Its log ends:`);
  for (const line of tail(child.logPath, 5)) say(`  | ${line}`);
  say(`the other nodes keep running${leaderFound ? "" : " (if any)"}. Restart it, from another terminal, with:`);
  say(`  npx synod ${child.args.slice(1).join(" ")} >> ${display(child.logPath)} 2>&1`);
  say("or Ctrl-C to stop all.");
}

function sayLeader(leader: { readonly id: number; readonly term: number; readonly ballot?: unknown }, children: readonly Child[], caFile: string | null, say: (text: string) => void): void {
  const running = children.filter((child) => !child.exited);
  const first = running[0] ?? children[0];
  const second = running[1] ?? first;
  const curl = caFile === null ? "curl" : `curl --cacert ${display(caFile)}`;
  say(`\nnode ${leader.id} leads (${termText(leader)}).`);
  say(`Dashboard: ${first?.http}/dashboard   (every node serves it)`);
  say("Try:");
  say(`  ${curl} -X PUT --data-binary world ${first?.http}/v1/kv/hello`);
  say(`  ${curl} ${second?.http}/v1/kv/hello`);
  say(`  ${curl} ${first?.http}/v1/status`);
  say(`  npx synod status --endpoints ${running.map((child) => child.http).join(",")}${caFile === null ? "" : ` --cacert ${display(caFile)}`}`);
  say("Ctrl-C stops the cluster.");
}

/**
 * Whether another cluster (or anything else) already has what this one needs: a data
 * directory one of its nodes holds, or a port. One line that says what and what to do, or
 * null. Reads only: nothing is created or written before this passes.
 */
async function checkNothingRunning(flags: ClusterFlags, dataDir: string, nodes: readonly NodePlan[]): Promise<string | null> {
  const held = nodes.map((node) => ({ node, pid: lockHolder(node.dir) })).find((entry) => entry.pid !== null);
  const ports = nodes.flatMap((node) => [node.httpPort, node.peerPort]);
  const { taken, failure } = await portsInUse(flags.host, ports.sort((a, b) => a - b));
  if (failure !== null) return failure;
  const otherDataDir = held === undefined ? "" : ` --data-dir ${freshDataDir(dataDir)}`;
  if (taken.length > 0) {
    const which = taken.length === 1 ? `port ${taken[0]} is` : `ports ${taken.join(", ")} are`;
    const otherPorts = await freePortsFlags(flags, nodes.length);
    return `${which} in use (is a synod cluster already running? stop it, or pass ${otherPorts}${otherDataDir})`;
  }
  if (held !== undefined) {
    return `${display(held.node.dir)} is in use by a running node (pid ${held.pid}): is a synod cluster already running with --data-dir ${display(dataDir)}? stop it, or pass${otherDataDir}`;
  }
  return null;
}

/**
 * Creates the data directory and opens each node's log for appending: the open files, or,
 * when a file or an unwritable place is in the way, one line that says so.
 */
function openLogs(dataDir: string, nodes: readonly NodePlan[]): number[] | string {
  const opened: number[] = [];
  try {
    mkdirSync(dataDir, { recursive: true });
    for (const node of nodes) opened.push(openSync(node.logPath, "a"));
    return opened;
  } catch (error) {
    for (const fd of opened) closeSync(fd);
    const failure = dataDirFailure(error, dataDir);
    if (failure === null) throw error;
    return failure.message;
  }
}

/** Which of `ports` cannot be listened on at `host`: taken (EADDRINUSE), or another failure as one line. */
async function portsInUse(host: string, ports: readonly number[]): Promise<{ readonly taken: number[]; readonly failure: string | null }> {
  const taken: number[] = [];
  for (const port of ports) {
    const error = await tryListen(host, port);
    if (error === null) continue;
    if (error.code === "EADDRINUSE") taken.push(port);
    else return { taken, failure: `cannot listen on ${host}:${port} (${error.code ?? error.message}): check --host and --base-port` };
  }
  return { taken, failure: null };
}

function tryListen(host: string, port: number): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolveTry) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => resolveTry(error));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolveTry(null)));
  });
}

/** `--base-port B` (and `--peer-base-port P` when given) for ports all free, a few tens above these. */
async function freePortsFlags(flags: ClusterFlags, count: number): Promise<string> {
  const peerBase = flags.peerBasePort ?? flags.basePort + 100;
  let shift = PORT_SHIFT;
  for (let attempt = 1; attempt <= 10; attempt++) {
    shift = attempt * PORT_SHIFT;
    const ports = Array.from({ length: count }, (_, i) => [flags.basePort + shift + i, peerBase + shift + i]).flat();
    if (ports.every((port) => port <= 65535) && (await portsInUse(flags.host, ports)).taken.length === 0) break;
  }
  return `--base-port ${flags.basePort + shift}${flags.peerBasePort === undefined ? "" : ` --peer-base-port ${flags.peerBasePort + shift}`}`;
}

/** A data directory next to `dataDir` that does not exist yet: `data2`, `data3`, ... */
function freshDataDir(dataDir: string): string {
  for (let n = 2; ; n++) if (!existsSync(`${dataDir}${n}`)) return display(`${dataDir}${n}`);
}

/** The one-line reason a node gave for refusing to start (`synod node N: cannot start: ...`), from this run's part of its log. */
function startupRefusal(child: Child): string | null {
  const prefix = `synod node ${child.id}: cannot start: `;
  const line = readFrom(child.logPath, child.logOffset)
    .split("\n")
    .find((text) => text.startsWith(prefix));
  return line === undefined ? null : line.slice(prefix.length);
}

/** The file from `offset`, at most 1 MiB of it (a refusal is in the first lines of a run). */
function readFrom(path: string, offset: number): string {
  try {
    const fd = openSync(path, "r");
    try {
      const buffer = Buffer.alloc(1024 * 1024);
      const read = readSync(fd, buffer, 0, buffer.length, offset);
      return buffer.subarray(0, read).toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return "";
  }
}

interface StatusAnswer {
  readonly leader: number | null;
  readonly leaderHttp?: string | null;
  readonly term: number;
  /** Paxos: the ballot the term encodes. */
  readonly ballot?: unknown;
  readonly role: string;
  readonly members?: readonly { readonly id: number; readonly role: string; readonly peer: string; readonly http: string | null }[];
}

async function fetchStatus(child: Child): Promise<StatusAnswer | null> {
  try {
    const response = await fetch(`${child.http}/v1/status`, { signal: AbortSignal.timeout(500) });
    return (await response.json()) as StatusAnswer;
  } catch {
    return null; // not up yet, or gone
  }
}

/**
 * Polls the running nodes until one reports a leader, or `waitMs` passes. With `explain`,
 * once STUCK_CHECK_AFTER_MS passed without one, it asks whether a leader can be elected at
 * all: if most voters of the configuration the nodes hold are not among the running nodes
 * (members removed, or started elsewhere), it says so, and what to do.
 */
async function waitForLeader(children: readonly Child[], dataDir: string, giveUp: () => boolean, waitMs: number, explain = true): Promise<LeaderWait> {
  const startedMs = Date.now();
  /** Nodes that answered once: up, past the checks a node makes at start. */
  const answered = new Set<number>();
  while (Date.now() - startedMs < waitMs && !giveUp()) {
    let configuration: StatusAnswer["members"] | undefined;
    for (const child of children) {
      if (child.exited) continue;
      const status = await fetchStatus(child);
      if (status === null) continue;
      answered.add(child.id);
      if (status.leader !== null && status.role !== "candidate") return { kind: "leader", id: status.leader, term: status.term, ballot: status.ballot, http: status.leaderHttp ?? null };
      configuration ??= status.members;
    }
    // Explained only once every node is up or has exited (having said why), so the
    // explanation comes after the nodes' own reasons.
    const settled = children.every((child) => child.exited || answered.has(child.id));
    if (explain && settled && Date.now() - startedMs >= STUCK_CHECK_AFTER_MS && configuration !== undefined) {
      const why = whyNoQuorum(children, configuration, dataDir);
      if (why !== null) return { kind: "stuck", why };
    }
    await new Promise((resolveSleep) => setTimeout(resolveSleep, 200));
  }
  return { kind: "none" };
}

/** Null when the running nodes hold a majority of the configuration's voters; else why not, and what to do. */
function whyNoQuorum(children: readonly Child[], members: NonNullable<StatusAnswer["members"]>, dataDir: string): string | null {
  const isMember = (id: number): boolean => members.some((member) => member.id === id);
  const running = children.filter((child) => !child.exited && isMember(child.id)).map((child) => child.id);
  const voters = members.filter((member) => member.role !== "learner");
  if (voters.length === 0 || voters.filter((member) => running.includes(member.id)).length * 2 > voters.length) return null;
  const ours = new Set(children.map((child) => child.id));
  const removed = children.filter((child) => !isMember(child.id)).map((child) => child.id);
  const elsewhere = members.filter((member) => !ours.has(member.id));
  const down = members.filter((member) => ours.has(member.id) && !running.includes(member.id)).map((member) => member.id);
  const where = display(dataDir);
  const facts = [
    `the cluster whose data is in ${where} has members ${members.map((member) => member.id).sort((a, b) => a - b).join(", ")}, and ${running.length === 0 ? "none of them runs" : `only ${list(running)} ${running.length === 1 ? "runs" : "run"}`} here`,
    ...(removed.length > 0 ? [`${list(removed)} ${removed.length === 1 ? "was" : "were"} removed from it`] : []),
    ...(elsewhere.length > 0 ? [`${list(elsewhere.map((member) => member.id))} ${elsewhere.length === 1 ? "is a member" : "are members"} this command does not start`] : []),
    ...(down.length > 0 ? [`${list(down)} exited`] : []),
  ];
  const starts = elsewhere.map((member) => `  ${memberCommand(member, dataDir)}`);
  return [
    `no leader can be elected: ${facts.join("; ")}.`,
    `Start the members${starts.length > 0 ? " this command does not (each in its own terminal):" : "."}`,
    ...starts,
    `or pass another --data-dir, or empty ${where} to start afresh.`,
  ].join("\n");
}

/** How to start a member this command does not run: a node that joined needs neither --join nor --peers once its data directory holds its log. */
function memberCommand(member: { readonly id: number; readonly peer: string; readonly http: string | null }, dataDir: string): string {
  const dir = join(dataDir, `node-${member.id}`);
  const ownDir = readIdentitySafe(dir)?.nodeId === member.id ? display(dir) : "ITS-DATA-DIR";
  const http = member.http === null ? "" : ` --http ${member.http.replace(/^https?:\/\//, "")}`;
  return `npx synod node --id ${member.id}${http} --peer ${member.peer} --data-dir ${ownDir}`;
}

function readIdentitySafe(dir: string): { readonly nodeId: number } | null {
  try {
    return readIdentity(dir);
  } catch {
    return null;
  }
}

function list(ids: readonly number[]): string {
  if (ids.length <= 1) return ids.map((id) => `node ${id}`).join("");
  return `nodes ${ids.slice(0, -1).join(", ")} and ${ids[ids.length - 1]}`;
}

function tail(path: string, lines: number): string[] {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines);
  } catch {
    return ["(no log)"];
  }
}

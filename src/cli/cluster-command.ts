/**
 * `synod cluster`: a local cluster of N nodes, each a child process running `synod node`,
 * on loopback. What `npm start` runs. It prints where everything is, waits for a leader,
 * reports a node that dies (and leaves the others running: a dead node is a failover to
 * watch, not a reason to stop), and stops every node cleanly on Ctrl-C.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Command, InvalidArgumentError, Option } from "commander";
import { CONSENSUS_PROTOCOLS, type ConsensusProtocol } from "../runtime/server/consensus.js";
import { DEFAULT_NODE_CONFIG } from "../runtime/server/config.js";

interface ClusterFlags {
  nodes: number;
  basePort: number;
  peerBasePort?: number;
  host: string;
  dataDir: string;
  consensus: ConsensusProtocol;
  logLevel: string;
  snapshotEntries: number;
  requestTimeoutMs: number;
}

interface Child {
  readonly id: number;
  readonly http: string;
  readonly peer: string;
  readonly logPath: string;
  /** The `synod` arguments that start it (what restarts it, too). */
  readonly args: readonly string[];
  process: ChildProcess;
  exited: boolean;
}

const LEADER_WAIT_MS = 30_000;
const STOP_GRACE_MS = 10_000;
const NODES_MAX = 9;

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
    .option("--data-dir <dir>", "node i keeps its data in <dir>/node-<i> and logs to <dir>/node-<i>.log", "./data")
    .addOption(new Option("--consensus <protocol>", "the consensus protocol").choices([...CONSENSUS_PROTOCOLS]).default(DEFAULT_NODE_CONFIG.consensus))
    .option("--snapshot-entries <n>", "each node snapshots after this many applied entries", integerIn("--snapshot-entries", 1, Number.MAX_SAFE_INTEGER), DEFAULT_NODE_CONFIG.snapshotEntries)
    .option("--request-timeout-ms <ms>", "each node's request timeout", integerIn("--request-timeout-ms", 1, 3_600_000), DEFAULT_NODE_CONFIG.requestTimeoutMs)
    .option("--log-level <level>", "the nodes' log level", "info")
    .addHelpText(
      "after",
      `
Example:
  synod cluster                       # 3 nodes, HTTP on 7001-7003, data in ./data
  synod cluster --nodes 5 --base-port 8001 --data-dir /tmp/synod
Then, in another terminal:
  curl -X PUT --data-binary world http://127.0.0.1:7001/v1/kv/hello
  curl http://127.0.0.1:7002/v1/kv/hello
  npx synod status`,
    )
    .action(async (flags: ClusterFlags) => setExitCode(await runCluster(flags)));
}

async function runCluster(flags: ClusterFlags): Promise<number> {
  const say = (text: string): void => void process.stdout.write(`${text}\n`);
  const dataDir = resolve(flags.dataDir);
  const peerBase = flags.peerBasePort ?? flags.basePort + 100;
  const ids = Array.from({ length: flags.nodes }, (_, i) => i + 1);
  const peers = ids.map((id) => `${id}=${flags.host}:${peerBase + id - 1}`).join(",");
  const synodBin = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "synod.js");
  mkdirSync(dataDir, { recursive: true });
  const display = (path: string): string => (relative(process.cwd(), path).startsWith("..") ? path : relative(process.cwd(), path) || ".");

  say(`synod cluster: ${flags.nodes} node${flags.nodes === 1 ? "" : "s"} (${flags.consensus}), data in ${display(dataDir)}`);
  const children: Child[] = ids.map((id) => {
    const http = `${flags.host}:${flags.basePort + id - 1}`;
    const peer = `${flags.host}:${peerBase + id - 1}`;
    const logPath = join(dataDir, `node-${id}.log`);
    const args = [
      synodBin,
      "node",
      "--id", String(id),
      "--http", http,
      "--peer", peer,
      "--peers", peers,
      "--data-dir", join(dataDir, `node-${id}`),
      "--consensus", flags.consensus,
      "--snapshot-entries", String(flags.snapshotEntries),
      "--request-timeout-ms", String(flags.requestTimeoutMs),
      "--log-level", flags.logLevel,
    ];
    const out = openSync(logPath, "a");
    // stdin is a pipe the node watches: if this process dies, even by SIGKILL, the pipe
    // closes and the node stops (SYNOD_STOP_WITH_PARENT).
    const child = spawn(process.execPath, args, { stdio: ["pipe", out, out], env: { ...process.env, SYNOD_STOP_WITH_PARENT: "1" } });
    closeSync(out);
    say(`  node ${id}  http://${http}  peer ${peer}  log ${display(logPath)}  pid ${child.pid ?? "?"}`);
    return { id, http: `http://${http}`, peer, logPath, args: args.slice(1), process: child, exited: false };
  });

  let stopping = false;
  const allExited = new Promise<void>((resolveAll) => {
    let left = children.length;
    for (const child of children) {
      child.process.once("exit", (code, signal) => {
        child.exited = true;
        if (!stopping) {
          say(`\nnode ${child.id} (pid ${child.process.pid}) ${signal === null ? `exited with code ${code}` : `was killed by ${signal}`}. Its log ends:`);
          for (const line of tail(child.logPath, 5)) say(`  | ${line}`);
          say("the other nodes keep running. Restart it, from another terminal, with:");
          say(`  npx synod ${child.args.join(" ")} >> ${display(child.logPath)} 2>&1`);
          say("or Ctrl-C to stop all.");
        }
        if (--left === 0) resolveAll();
      });
    }
  });

  const stopAll = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say("\nstopping the cluster...");
    for (const child of children) if (!child.exited) child.process.kill("SIGTERM");
    const timer = setTimeout(() => {
      for (const child of children) if (!child.exited) child.process.kill("SIGKILL");
    }, STOP_GRACE_MS);
    await allExited;
    clearTimeout(timer);
    say("stopped.");
  };
  process.once("SIGINT", () => void stopAll());
  process.once("SIGTERM", () => void stopAll());

  const leader = await waitForLeader(children, () => stopping || children.every((child) => child.exited));
  if (leader !== null) {
    say(`\nnode ${leader.id} leads (term ${leader.term}). Try:`);
    say(`  curl -X PUT --data-binary world ${children[0]?.http}/v1/kv/hello`);
    say(`  curl ${children[children.length > 1 ? 1 : 0]?.http}/v1/kv/hello`);
    say(`  curl ${children[0]?.http}/v1/status`);
    say(`  npx synod status --endpoints ${children.map((child) => child.http).join(",")}`);
    say("Ctrl-C stops the cluster.");
  } else if (!stopping) {
    say(`\nno leader after ${LEADER_WAIT_MS / 1000} s; the nodes' logs say why (see above). Ctrl-C stops the cluster.`);
  }
  await allExited;
  return children.every((child) => child.process.exitCode === 0 || child.process.signalCode === "SIGTERM") ? 0 : 1;
}

async function waitForLeader(children: readonly Child[], giveUp: () => boolean): Promise<{ id: number; term: number } | null> {
  const deadline = Date.now() + LEADER_WAIT_MS;
  while (Date.now() < deadline && !giveUp()) {
    for (const child of children) {
      if (child.exited) continue;
      try {
        const response = await fetch(`${child.http}/v1/status`, { signal: AbortSignal.timeout(500) });
        const status = (await response.json()) as { leader: number | null; term: number; role: string };
        if (status.leader !== null && status.role !== "candidate") return { id: status.leader, term: status.term };
      } catch {
        // not up yet
      }
    }
    await new Promise((resolveSleep) => setTimeout(resolveSleep, 200));
  }
  return null;
}

function tail(path: string, lines: number): string[] {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines);
  } catch {
    return ["(no log)"];
  }
}

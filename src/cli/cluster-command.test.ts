import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePortRange, freePorts, request, sleep, within } from "../runtime/server/process-cluster.test-util.js";

const SYNOD_BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "synod.js");

async function until(condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(100);
  }
  return false;
}

test("synod cluster: its nodes serve, and stop when the cluster process dies, even by SIGKILL", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "synod-cluster-cmd-"));
  const [httpBase, peerBase] = await freePorts(2);
  try {
    const cluster = spawn(process.execPath, [SYNOD_BIN, "cluster", "--nodes", "1", "--base-port", String(httpBase), "--peer-base-port", String(peerBase), "--data-dir", dir], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    cluster.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    const url = `http://127.0.0.1:${httpBase}`;
    assert.ok(await until(async () => output.includes("leads"), 20_000), `the cluster elects a leader and says so:\n${output}`);
    assert.match(output, new RegExp(`node 1  http://127\\.0\\.0\\.1:${httpBase}`), "it prints where each node is");
    assert.equal((await request("PUT", `${url}/v1/kv/k`, "v")).status, 200);

    cluster.kill("SIGKILL");
    assert.ok(await until(async () => (await request("GET", `${url}/v1/status`)).status === 0, 10_000), "the orphaned node stopped");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A `synod` process whose output (stdout and stderr) is collected. */
function synod(args: readonly string[]): { readonly child: ChildProcess; readonly output: () => string; readonly stderr: () => string; readonly exit: Promise<number | null> } {
  const child = spawn(process.execPath, [SYNOD_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
    stderr += chunk.toString("utf8");
  });
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => output, stderr: () => stderr, exit };
}

async function exitWithin(run: { readonly child: ChildProcess; readonly exit: Promise<number | null> }, timeoutMs: number): Promise<number | null | "running"> {
  const result = await within(run.exit, timeoutMs, () => "running" as const);
  if (result === "running") run.child.kill("SIGKILL");
  return result;
}

test("a second synod cluster on taken ports, or on a data directory in use, says so in one line, exits 1 and writes nothing", { timeout: 60_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), "synod-cluster-twice-"));
  const first = join(root, "data");
  const [httpBase, peerBase, otherHttp, otherPeer] = await freePorts(4);
  const running = synod(["cluster", "--nodes", "1", "--base-port", String(httpBase), "--peer-base-port", String(peerBase), "--data-dir", first]);
  try {
    assert.ok(await until(async () => running.output().includes("leads"), 20_000), running.output());
    const logPath = join(first, "node-1.log");
    const logBefore = readFileSync(logPath, "utf8");

    const second = join(root, "data-second");
    const samePorts = synod(["cluster", "--nodes", "1", "--base-port", String(httpBase), "--peer-base-port", String(peerBase), "--data-dir", second]);
    assert.equal(await exitWithin(samePorts, 15_000), 1, samePorts.output());
    assert.equal(samePorts.stderr().trimEnd().split("\n").length, 1, samePorts.output());
    assert.match(samePorts.stderr(), new RegExp(`^synod cluster: ports ${Math.min(httpBase as number, peerBase as number)}, ${Math.max(httpBase as number, peerBase as number)} are in use \\(is a synod cluster already running\\? stop it, or pass --base-port \\d+ --peer-base-port \\d+\\)`));
    assert.equal(samePorts.output(), samePorts.stderr(), "nothing else is printed: nothing started");
    assert.ok(!existsSync(second), "nothing is created for the second cluster");

    const sameDir = synod(["cluster", "--nodes", "1", "--base-port", String(otherHttp), "--peer-base-port", String(otherPeer), "--data-dir", first]);
    assert.equal(await exitWithin(sameDir, 15_000), 1, sameDir.output());
    assert.match(sameDir.stderr(), /^synod cluster: .*node-1 is in use by a running node \(pid \d+\): is a synod cluster already running with --data-dir .*\? stop it, or pass --data-dir .*data2\n$/);

    assert.equal(readFileSync(logPath, "utf8").slice(0, logBefore.length), logBefore);
    assert.doesNotMatch(readFileSync(logPath, "utf8").slice(logBefore.length), /cannot start|recovered|EADDRINUSE/, "the first cluster's log has nothing of the second");
    assert.equal((await request("PUT", `http://127.0.0.1:${httpBase}/v1/kv/k`, "v")).status, 200, "the first cluster still serves");
  } finally {
    running.child.kill("SIGINT");
    await exitWithin(running, 15_000);
    rmSync(root, { recursive: true, force: true });
  }
});

test("after a shrink, the removed nodes refuse to start, each saying why, and the cluster says why no leader can be elected and what to do", { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), "synod-cluster-shrunk-"));
  const dataDir = join(root, "data");
  const httpBase = await freePortRange(2);
  const peerBase = await freePortRange(2);
  const [joinerHttp, joinerPeer] = await freePorts(2);
  const clusterArgs = ["cluster", "--nodes", "2", "--base-port", String(httpBase), "--peer-base-port", String(peerBase), "--data-dir", dataDir];
  const url = (port: number): string => `http://127.0.0.1:${port}`;
  const processes: ChildProcess[] = [];
  try {
    // Nodes 1 and 2; node 3 joins (its data in the cluster's data directory, as in the
    // README); node 1 is removed.
    const first = synod(clusterArgs);
    processes.push(first.child);
    assert.ok(await until(async () => first.output().includes("leads"), 20_000), first.output());
    const joinerArgs = ["node", "--id", "3", "--http", `127.0.0.1:${joinerHttp}`, "--peer", `127.0.0.1:${joinerPeer}`, "--join", url(httpBase), "--data-dir", join(dataDir, "node-3")];
    const joiner = synod(joinerArgs);
    processes.push(joiner.child);
    const isVoter = async (): Promise<boolean> => ((await request("GET", `${url(httpBase)}/v1/members`)).body["members"] as { id: number; role: string }[] | undefined)?.some((m) => m.id === 3 && m.role === "voter") ?? false;
    assert.ok(await until(isVoter, 30_000), joiner.output());
    const removal = await request("DELETE", `${url(httpBase + 1)}/v1/members/1`);
    assert.equal(removal.status, 200, removal.text);
    const index = removal.body["index"] as number;
    const applied = async (): Promise<boolean> => (((await request("GET", `${url(httpBase)}/v1/status`)).body["appliedIndex"] as number | undefined) ?? 0) >= index;
    assert.ok(await until(applied, 10_000), "node 1 applied its removal");
    first.child.kill("SIGINT");
    joiner.child.kill("SIGTERM");
    await Promise.all([first.exit, joiner.exit]);

    // Again: node 1 refuses, node 2 alone is no majority of {2, 3}.
    const again = synod(clusterArgs);
    processes.push(again.child);
    assert.ok(await until(async () => again.output().includes("no leader can be elected"), 30_000), again.output());
    const output = again.output();
    const refusal = output.indexOf("node 1 cannot start: node 1 was removed from the cluster whose data is in ");
    assert.ok(refusal >= 0, output);
    assert.match(output, /node 1 cannot start: .*its configuration's members are 2, 3\. To serve that cluster, empty .* and start it with --join http:\/\/\S+ to be added again; or give it another --data-dir to start a new cluster\n/);
    assert.ok(refusal < output.indexOf("no leader can be elected"), "the node's reason comes first");
    assert.match(output, /no leader can be elected: the cluster whose data is in .*data has members 2, 3, and only node 2 runs here; node 1 was removed from it; node 3 is a member this command does not start\./);
    const start = new RegExp(`  (npx synod node --id 3 --http 127\\.0\\.0\\.1:${joinerHttp} --peer 127\\.0\\.0\\.1:${joinerPeer} --data-dir (\\S+))\n`).exec(output);
    assert.ok(start !== null, `the command that starts node 3:\n${output}`);
    assert.equal(start[2], join(dataDir, "node-3"));
    assert.match(output, /or pass another --data-dir, or empty .*data to start afresh\./);
    assert.doesNotMatch(output, /\n\s+at /, "no stack trace");

    // Node 3 started as it says: a leader is elected, and reported.
    const member = synod((start[1] as string).split(" ").slice(2));
    processes.push(member.child);
    assert.ok(await until(async () => /node [23] leads/.test(again.output()), 20_000), `${again.output()}\n${member.output()}`);
  } finally {
    for (const child of processes) child.kill("SIGINT");
    await sleep(500);
    for (const child of processes) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(root, { recursive: true, force: true });
  }
});

test("synod cluster --consensus paxos: a write through one node is read through the others; status, synod status and leader transfer speak in ballots; restarted as Raft, each node refuses its data directory in one line", { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), "synod-cluster-paxos-"));
  const dataDir = join(root, "data");
  const httpBase = await freePortRange(3);
  const peerBase = await freePortRange(3);
  const clusterArgs = ["cluster", "--nodes", "3", "--base-port", String(httpBase), "--peer-base-port", String(peerBase), "--data-dir", dataDir];
  const urls = [0, 1, 2].map((i) => `http://127.0.0.1:${httpBase + i}`);
  const processes: ChildProcess[] = [];
  try {
    const paxos = synod([...clusterArgs, "--consensus", "paxos"]);
    processes.push(paxos.child);
    assert.ok(await until(async () => / leads \(ballot \d+\.\d+\)/.test(paxos.output()), 30_000), paxos.output());
    assert.match(paxos.output(), /synod cluster: 3 nodes \(paxos\)/);
    assert.equal((await request("PUT", `${urls[0]}/v1/kv/greeting`, "hello")).status, 200);
    for (const url of urls.slice(1)) {
      // A node that finds no leader (a campaign under way: timers run late on a loaded
      // machine) answers 503 "retry shortly", as a client would.
      let read = await request("GET", `${url}/v1/kv/greeting`);
      for (let i = 0; i < 50 && read.status === 503; i++) {
        await sleep(100);
        read = await request("GET", `${url}/v1/kv/greeting`);
      }
      assert.equal(read.body["value"], "hello", `${url}: ${read.status} ${read.text}`);
    }

    const status = (await request("GET", `${urls[1]}/v1/status`)).body;
    assert.equal(status["consensus"], "paxos");
    const ballot = status["ballot"] as { round: number; node: number };
    assert.equal(status["term"], ballot.round * 2 ** 20 + ballot.node, "the term is the ballot as one number");
    assert.equal(ballot.node, status["leader"], "the ballot in force is the leader's");

    const endpoints = ["--endpoints", urls.join(",")];
    const shown = synod(["status", ...endpoints]);
    assert.equal(await exitWithin(shown, 20_000), 0, shown.output());
    assert.match(shown.output(), new RegExp(`leader: node ${ballot.node} at \\S+, ballot ${ballot.round}\\.${ballot.node}\\n`));
    assert.match(shown.output(), /id\s+role\s+state\s+ballot\s+commit/);
    const target = ((ballot.node % 3) + 1) as number;
    const moved = synod(["leader", "transfer", "--to", String(target), ...endpoints]);
    assert.equal(await exitWithin(moved, 20_000), 0, moved.output());
    assert.match(moved.output(), new RegExp(`node ${target} leads \\(ballot \\d+\\.${target}\\), after \\d+ ms`));
    paxos.child.kill("SIGINT");
    await exitWithin(paxos, 15_000);

    const raft = synod(clusterArgs);
    processes.push(raft.child);
    assert.ok(await until(async () => (raft.output().match(/cannot start/g) ?? []).length === 3, 30_000), raft.output());
    for (const id of [1, 2, 3]) {
      assert.match(raft.output(), new RegExp(`node ${id} cannot start: \\S*node-${id} holds a paxos log, and this node was started with --consensus raft: start it with --consensus paxos, or give it an empty --data-dir to run raft\\n`));
    }
    assert.doesNotMatch(raft.output(), /\n\s+at /, "no stack trace");
  } finally {
    for (const child of processes) child.kill("SIGINT");
    await sleep(500);
    for (const child of processes) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(root, { recursive: true, force: true });
  }
});

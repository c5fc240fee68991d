// `npm run bench:failover` (`node dist/bench/failover.bench.js [raft|paxos ...] [--rounds N]`):
// the pause a client sees when the leader of a real three-node cluster is killed with
// SIGKILL. Per round and protocol (the protocols alternate, so a drift in the machine's
// speed hits both alike): `synod cluster --nodes 3 --consensus P` on free ports with a fresh
// data directory; once a leader is named, the load generator of `synod bench` writes
// 100-byte values at concurrency 32 to the leader (following a new one), and 2 s in the
// leader's process is killed. Reported per run: the longest time without an acknowledged
// write (the gap a client sees), the time from the kill until a survivor names a leader,
// and the acknowledged writes per second over the run. Then the median of each per protocol. A benchmark
// prints numbers; it asserts nothing.
//
//   npm run bench:failover                      # raft and paxos, 5 rounds
//   npm run bench:failover -- paxos --rounds 3
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runKvBench } from "./kv-load.js";
import { runBench } from "./run-bench.js";

const NODES = 3;
const RUN_MS = 6_000;
const KILL_AT_MS = 2_000;
const CONCURRENCY = 32;
const LEADER_WAIT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const STATUS_TIMEOUT_MS = 300;

const bin = fileURLToPath(new URL("../../bin/synod.js", import.meta.url));

interface Run {
  readonly protocol: string;
  /** The longest time without an acknowledged write, in ms. */
  readonly gapMs: number;
  /** From the kill until a surviving node names a surviving leader, in ms. */
  readonly electedMs: number;
  /** Acknowledged writes per second over the whole run, the pause included. */
  readonly putsPerSecond: number;
  readonly errors: number;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A base port whose HTTP ports and peer ports (base + 100 ..) are all free. */
async function freeBasePort(): Promise<number> {
  for (let base = 21_000 + Math.floor(Math.random() * 400) * 10; base < 60_000; base += 10) {
    const ports = Array.from({ length: NODES }, (_, i) => [base + i, base + 100 + i]).flat();
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  throw new Error("no free ports");
}

interface Status {
  readonly id: number;
  readonly leader: number | null;
  readonly role: string;
}

async function status(url: string): Promise<Status | null> {
  try {
    const response = await fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
    return (await response.json()) as Status;
  } catch {
    return null;
  }
}

/** The id a node among `urls` names as leader, if it is one of `among`; polled until `waitMs`. */
async function leaderAmong(urls: readonly string[], among: readonly number[], waitMs: number): Promise<number | null> {
  const deadline = performance.now() + waitMs;
  while (performance.now() < deadline) {
    for (const url of urls) {
      const answer = await status(url);
      if (answer?.leader !== null && answer?.leader !== undefined && answer.role !== "candidate" && among.includes(answer.leader)) return answer.leader;
    }
    await sleep(10);
  }
  return null;
}

async function oneRun(protocol: string): Promise<Run> {
  const base = await freeBasePort();
  const dataDir = mkdtempSync(join(tmpdir(), "synod-failover-"));
  const child: ChildProcess = spawn(process.execPath, [bin, "cluster", "--nodes", String(NODES), "--consensus", protocol, "--base-port", String(base), "--data-dir", dataDir], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const urls = Array.from({ length: NODES }, (_, i) => `http://127.0.0.1:${base + i}`);
  const ids = urls.map((_, i) => i + 1);
  try {
    const leader = await leaderAmong(urls, ids, LEADER_WAIT_MS);
    if (leader === null) throw new Error(`no leader:\n${output}`);
    const pid = Number(new RegExp(`node ${leader} .* pid (\\d+)`).exec(output)?.[1]);
    if (!Number.isSafeInteger(pid)) throw new Error(`no pid for node ${leader} in:\n${output}`);
    const bench = runKvBench({ endpoints: urls, durationMs: RUN_MS, concurrency: CONCURRENCY, valueBytes: 100, op: "put", mixedGetRatio: 0, consistency: "linearizable", target: "leader", maxOps: 10_000_000 });
    await sleep(KILL_AT_MS);
    process.kill(pid, "SIGKILL");
    const killedAt = performance.now();
    const survivors = ids.filter((id) => id !== leader);
    const next = await leaderAmong(urls.filter((_, i) => i + 1 !== leader), survivors, 10_000);
    const electedMs = next === null ? Number.NaN : performance.now() - killedAt;
    const result = await bench;
    return {
      protocol,
      gapMs: result.gap.longestMs,
      electedMs,
      putsPerSecond: result.opsPerSecond,
      errors: Object.values(result.errors).reduce((sum, n) => sum + n, 0),
    };
  } finally {
    child.kill("SIGINT");
    await Promise.race([exited, sleep(STOP_GRACE_MS)]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { rounds: { type: "string" } } });
  const protocols = positionals.length > 0 ? positionals : ["raft", "paxos"];
  const rounds = Number(values.rounds ?? 5);
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new Error("--rounds must be a positive integer");
  process.stdout.write(`failover after kill -9 of the leader: ${protocols.join(", ")}, ${rounds} round(s), load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
  const runs: Run[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const protocol of protocols) {
      const run = await oneRun(protocol);
      runs.push(run);
      process.stdout.write(
        `round ${round} ${protocol.padEnd(5)}: client gap ${run.gapMs.toFixed(0)} ms, new leader ${run.electedMs.toFixed(0)} ms after the kill, ${run.putsPerSecond.toFixed(0)} puts/s over the run, ${run.errors} failed requests\n`,
      );
    }
  }
  for (const protocol of protocols) {
    const mine = runs.filter((run) => run.protocol === protocol);
    process.stdout.write(`${protocol.padEnd(5)} median: client gap ${median(mine.map((r) => r.gapMs)).toFixed(0)} ms, new leader ${median(mine.map((r) => r.electedMs)).toFixed(0)} ms after the kill (max gap ${Math.max(...mine.map((r) => r.gapMs)).toFixed(0)} ms)\n`);
  }
  process.stdout.write(`load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
}

await runBench("failover.bench", main);

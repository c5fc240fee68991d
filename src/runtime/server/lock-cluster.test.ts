/**
 * `synod lock` on real processes: three lockers, each running `synod lock NAME -- COMMAND`
 * again and again, while the test kill -9's the cluster's leader mid-hold (twice) and
 * restarts it. Each command appends a "start" line (with its fencing token) and an "end"
 * line to one file in O_APPEND mode, so the file's line order is the real order of those
 * moments, and no clock is compared.
 *
 * What `synod lock` guarantees, and so what is asserted (docs/recipes.md):
 * - Fencing tokens grow in the order holders started, always: a holder whose lease lapsed
 *   while its command ran can still be running when the next one starts, and the token is
 *   what lets a resource refuse it.
 * - No two commands run at once while the holder kept its lease alive: a command whose
 *   lease was lost is stopped (SIGTERM, synod exits 4), and only its interval may meet the
 *   next holder's. A failover inside the lease's time to live must not lose it, so with a
 *   TTL of several election timeouts every run here is expected to keep it; the test says
 *   how many did not, and checks them only for the token order.
 * - Every waiter gets the lock: every run's command ran, and synod exited with its code.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CONSENSUS_FOR_ENGINE_AGNOSTIC, ProcessCluster, runSynod, sleep } from "./process-cluster.test-util.js";

const LOCKERS = 3;
const RUNS_PER_LOCKER = 5;
const HOLD_MS = 400;
/** Kill the leader this many times, each while a holder runs its command and the others wait... */
const KILLS = 2;
/** ...the first once this many commands have started. */
const FIRST_KILL_AFTER_STARTS = 3;
/** How long a killed node stays down. */
const DOWN_MS = 1500;
/** Several election timeouts (at most 1 s each with the node's defaults): a failover must not cost the lease. */
const TTL_SECONDS = 5;
/** synod's exit code when it stopped the command because the lease was lost. */
const EXIT_LOCK_LOST = 4;

/**
 * The command each run holds the lock for: "start RUN TOKEN", a pause, "end RUN". On
 * SIGTERM (the lease lost), "end RUN term" at once; the pause runs in the background so
 * the trap is not held up by it.
 */
function holderScript(log: string): string {
  return `trap 'echo "end $1 term" >> ${log}; exit 143' TERM; echo "start $1 $SYNOD_LOCK_TOKEN" >> ${log}; sleep ${HOLD_MS / 1000} & wait $!; echo "end $1" >> ${log}`;
}

interface Run {
  readonly id: string;
  readonly code: number | null;
  readonly output: string;
}

interface Interval {
  readonly id: string;
  readonly token: number;
  /** Line numbers in the log of its start and end (end: Infinity when it never ended). */
  readonly startLine: number;
  readonly endLine: number;
}

function intervalsOf(lines: readonly string[]): Interval[] {
  const starts = new Map<string, { token: number; line: number }>();
  const intervals: Interval[] = [];
  lines.forEach((line, at) => {
    const [what, id, token] = line.split(" ") as [string, string, string | undefined];
    if (what === "start") {
      assert.ok(!starts.has(id), `run ${id} started twice`);
      starts.set(id, { token: Number(token), line: at });
    } else if (what === "end") {
      const start = starts.get(id);
      assert.ok(start !== undefined, `run ${id} ended before it started: ${line}`);
      intervals.push({ id, token: start.token, startLine: start.line, endLine: at });
    } else assert.fail(`unexpected line ${JSON.stringify(line)}`);
  });
  for (const [id, start] of starts) if (!intervals.some((interval) => interval.id === id)) intervals.push({ id, token: start.token, startLine: start.line, endLine: Infinity });
  return intervals.sort((a, b) => a.startLine - b.startLine);
}

for (const consensus of CONSENSUS_FOR_ENGINE_AGNOSTIC) {
  describe(`synod lock through kill -9 of the leader (${consensus})`, { timeout: 180_000 }, () => {
    let cluster: ProcessCluster;
    let dir: string;
    before(async () => {
      cluster = await ProcessCluster.start({ consensus, size: 3 });
      await cluster.waitForLeader(15_000);
      dir = mkdtempSync(join(tmpdir(), "synod-lock-cluster-"));
    });
    after(async () => {
      await cluster.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test("holders never run at once while they keep their lease, tokens grow in the order they started, and every waiter gets its turn", async (t) => {
      const log = join(dir, "log");
      writeFileSync(log, "");
      const endpoints = cluster.nodes.map((node) => node.http).join(",");
      const lockOnce = async (id: string): Promise<Run> => {
        const run = await runSynod(["lock", "locks/job", "--ttl", String(TTL_SECONDS), "--endpoints", endpoints, "--", "sh", "-c", holderScript(log), "sh", id], 90_000);
        return { id, code: run.code, output: run.output };
      };
      const lockers = Array.from({ length: LOCKERS }, async (_, locker) => {
        const runs: Run[] = [];
        for (let i = 0; i < RUNS_PER_LOCKER; i++) runs.push(await lockOnce(`${locker}.${i}`));
        return runs;
      });
      let runsDone = false;
      const allRuns = Promise.all(lockers).then((runs) => {
        runsDone = true;
        return runs.flat();
      });
      const kills = killLeaderWhileHeld(cluster, log, () => runsDone, t.diagnostic.bind(t));
      kills.catch(() => undefined); // awaited below, after the runs: not an unhandled rejection meanwhile
      const runs = await allRuns;
      const heldThroughKills = await kills;
      assert.equal(heldThroughKills.length, KILLS, `the leader was killed ${KILLS} times while a holder ran its command and others waited`);

      for (const run of runs) assert.ok(run.code === 0 || run.code === EXIT_LOCK_LOST, `run ${run.id} exited ${run.code}: ${run.output}`);
      const lines = readFileSync(log, "utf8").split("\n").filter((line) => line !== "");
      const intervals = intervalsOf(lines);
      assert.deepEqual(intervals.map((interval) => interval.id).sort(), runs.map((run) => run.id).sort(), "every run's command ran, once");
      const lost = new Set(runs.filter((run) => run.code === EXIT_LOCK_LOST).map((run) => run.id));
      for (const interval of intervals) {
        if (lost.has(interval.id)) continue;
        assert.ok(interval.endLine !== Infinity, `run ${interval.id} kept its lease and never ended`);
        const during = intervals.filter((other) => other !== interval && other.startLine > interval.startLine && other.startLine < interval.endLine);
        assert.deepEqual(during.map((other) => other.id), [], `run ${interval.id} held the lock with its lease alive, and others started meanwhile:\n${lines.join("\n")}`);
      }
      const tokens = intervals.map((interval) => interval.token);
      for (let i = 1; i < tokens.length; i++) assert.ok((tokens[i] as number) > (tokens[i - 1] as number), `tokens in the order holders started: ${tokens.join(", ")}`);
      t.diagnostic(`${runs.length} runs, ${lost.size} lost their lease; tokens ${tokens.join(", ")}`);
    });
  });
}

/**
 * Kills the leader (kill -9) while a holder runs its command and the others wait, `KILLS`
 * times, restarting it after `DOWN_MS`. A kill is aimed at the moment a new start line
 * appears; when the aim misses (the holder had already ended, or the leader moved before
 * the kill: a loaded machine can take longer than a hold), the node is killed all the same
 * and the next start is tried, while runs remain. Returns the run that held the lock
 * throughout each kill that hit (the test asserts `KILLS` of them).
 */
async function killLeaderWhileHeld(cluster: ProcessCluster, log: string, runsDone: () => boolean, say: (message: string) => void): Promise<string[]> {
  const logLines = (): string[] => readFileSync(log, "utf8").split("\n").filter((line) => line !== "");
  const startsIn = (lines: readonly string[]): number => lines.filter((line) => line.startsWith("start ")).length;
  const held: string[] = [];
  let seen = FIRST_KILL_AFTER_STARTS - 1;
  while (held.length < KILLS && !runsDone()) {
    // The leader is found first, so the kill follows the start line within a poll.
    const leader = await cluster.waitForLeader(15_000);
    while (startsIn(logLines()) <= seen && !runsDone()) await sleep(10);
    if (runsDone()) break;
    const before = logLines();
    seen = startsIn(before);
    if (!(before.at(-1) ?? "").startsWith("start ") || (await cluster.status(leader))?.role !== "leader") continue; // missed: aim at the next start
    const killed = cluster.kill(leader); // SIGKILL is sent now; this waits for the exit
    // Nothing logged meanwhile and the last line a start: that run held the lock across the kill.
    const last = before.at(-1) as string;
    const holder = logLines().length === before.length ? (last.split(" ")[1] as string) : null;
    await killed;
    if (holder !== null) held.push(holder);
    say(`killed the leader, node ${leader}, at start ${seen}, while ${holder === null ? "no run (a miss: the next start is tried)" : `run ${holder}`} held the lock`);
    await sleep(DOWN_MS);
    cluster.startNode(leader);
  }
  return held;
}

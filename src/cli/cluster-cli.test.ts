// The cluster commands of the CLI against a real cluster of `synod node` processes, in one
// story: a paused leader (SIGSTOP) costs get and status a couple of seconds, not ten; bench
// follows a new leader after the old one is killed and reports the gap; members add makes a
// learner unless told --voter, and --voter only for a node that answers; after a grow and a
// shrink, status shows the configuration the cluster has, and exits 3 once no leader is left.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { freePorts, ProcessCluster, request, runSynodApart, sleep } from "../runtime/server/process-cluster.test-util.js";

const synod = runSynodApart;

interface Member {
  readonly id: number;
  readonly role: string;
  readonly peer: string;
  readonly http: string | null;
}

describe("the CLI against a real cluster", { timeout: 240_000 }, () => {
  let cluster: ProcessCluster;
  const endpointsOf = (ids: readonly number[]): string[] => ["--endpoints", ids.map((id) => cluster.node(id).http).join(",")];
  /** The member list as node `via` answers it; asked again while an election runs (503 no_leader), as a client would. */
  async function members(via: number): Promise<Member[]> {
    let answer = await request("GET", `${cluster.node(via).http}/v1/members`);
    for (let i = 0; i < 50 && answer.status === 503 && answer.body["error"] === "no_leader"; i++) {
      await sleep(100);
      answer = await request("GET", `${cluster.node(via).http}/v1/members`);
    }
    assert.equal(answer.status, 200, `node ${via}: ${answer.text}`);
    return answer.body["members"] as Member[];
  }
  const roles = (list: readonly Member[]): string[] => list.map((member) => `${member.id}:${member.role}`).sort();

  before(async () => {
    cluster = await ProcessCluster.start({ size: 3, spare: 1 });
    await cluster.waitForLeader(10_000, [1, 2, 3]);
  });
  after(() => cluster.close());

  test("a paused leader (SIGSTOP): get and status each answer within a few seconds, not after a 10 s timeout", async (t) => {
    const put = await synod(["put", "paused/k", "v", ...endpointsOf([1, 2, 3])]);
    assert.equal(put.code, 0, put.stderr);
    const leader = await cluster.waitForLeader(10_000, [1, 2, 3]);
    const paused = cluster.node(leader).process;
    assert.ok(paused !== null);
    paused.kill("SIGSTOP");
    try {
      // Three reads: the client picks its first node at random, so some start on the paused one.
      for (let i = 0; i < 3; i++) {
        const get = await synod(["get", "paused/k", ...endpointsOf([leader, ...[1, 2, 3].filter((id) => id !== leader)])]);
        assert.equal(get.code, 0, get.stderr);
        assert.equal(get.stdout, "v\n");
        assert.ok(get.ms < 7_000, `get took ${get.ms} ms`);
        t.diagnostic(`get with the leader paused: ${get.ms} ms`);
      }
      const status = await synod(["status", ...endpointsOf([1, 2, 3])]);
      assert.ok(status.ms < 7_000, `status took ${status.ms} ms`);
      assert.match(status.stdout, new RegExp(`\\n${leader}\\s+voter\\s+no answer within 2 s`), status.stdout);
      t.diagnostic(`status with the leader paused: ${status.ms} ms`);
    } finally {
      paused.kill("SIGCONT");
    }
    await cluster.waitForLeader(10_000, [1, 2, 3]);
  });

  test("bench follows the new leader when the leader is killed, and reports the gap and the failures by code", async (t) => {
    const leader = await cluster.waitForLeader(10_000, [1, 2, 3]);
    // 6 s: the kill at 2.5 s, a new leader within about a second, and writes acknowledged
    // again for more than a second before the end (an 8 s run proved nothing more).
    const bench = synod(["bench", "--duration", "6s", "--concurrency", "8", "--json", ...endpointsOf([1, 2, 3])]);
    await sleep(2_500);
    await cluster.kill(leader);
    const run = await bench;
    cluster.startNode(leader);
    await cluster.waitForLeader(10_000, [1, 2, 3]);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as { ops: number; errors: Record<string, number>; leaders: string[]; gap: { longestMs: number; fromS: number; toS: number }; seconds: number };
    t.diagnostic(`bench: ${run.stdout}`);
    assert.equal(result.leaders[0], cluster.node(leader).http);
    assert.ok(result.leaders.length >= 2 && !result.leaders.slice(1).includes(cluster.node(leader).http), `followed a new leader: ${result.leaders.join(" -> ")}`);
    // Without following, every request after the kill (3.5 s of the run) failed.
    assert.ok(result.gap.longestMs < 4_000, `the longest gap was ${result.gap.longestMs} ms`);
    assert.ok(result.gap.toS < result.seconds - 1, `writes were acknowledged again well before the end (${result.gap.toS} s of ${result.seconds} s)`);
    const failed = Object.values(result.errors).reduce((sum, n) => sum + n, 0);
    assert.ok(failed > 0 && failed < 2_000, `${failed} requests failed: ${JSON.stringify(result.errors)}`);
  });

  test("members add: a learner by default (the quorum does not grow), --voter only for a node that answers at --http as that node", async () => {
    const [free, freeHttp] = await freePorts(2);
    const added = await synod(["members", "add", "5", "--peer", `127.0.0.1:${free}`, ...endpointsOf([1, 2, 3])]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /^node 5 added as a learner: it receives the log without voting, and becomes a voter by itself once it has caught up/);
    assert.deepEqual(roles(await members(1)), ["1:voter", "2:voter", "3:voter", "5:learner"]);
    // Node 5 does not exist: as a voter it would make 3 of 4 the quorum; as a learner, with
    // one voter down the other two still commit.
    const leader = await cluster.waitForLeader(10_000, [1, 2, 3]);
    const down = [1, 2, 3].find((id) => id !== leader) as number;
    await cluster.kill(down);
    const put = await synod(["put", "quorum/k", "v", "--endpoints", cluster.node(leader).http]);
    cluster.startNode(down);
    assert.equal(put.code, 0, put.stdout + put.stderr);
    // The node restarted answers again before it is asked as itself below (a loaded machine takes a while to start it).
    await cluster.waitForLeader(10_000, [1, 2, 3]);

    const noHttp = await synod(["members", "add", "6", "--peer", `127.0.0.1:${free}`, "--voter", ...endpointsOf([1, 2, 3])]);
    assert.equal(noHttp.code, 2);
    assert.match(noHttp.stderr, /--voter needs --http URL/);
    const absent = await synod(["members", "add", "6", "--peer", `127.0.0.1:${free}`, "--http", `http://127.0.0.1:${freeHttp}`, "--voter", ...endpointsOf([1, 2, 3])]);
    assert.equal(absent.code, 2);
    assert.match(absent.stderr, new RegExp(`^synod members add: --voter adds a voter at once, counted in every quorum from then on, so node 6 must be running: nothing answers at http://127\\.0\\.0\\.1:${freeHttp} \\(ECONNREFUSED\\); start it first, or add it without --voter`));
    const wrongId = await synod(["members", "add", "6", "--peer", `127.0.0.1:${free}`, "--http", cluster.node(2).http, "--voter", ...endpointsOf([1, 2, 3])]);
    assert.equal(wrongId.code, 2);
    assert.match(wrongId.stderr, /is node 2, not node 6/);
    assert.equal((await synod(["members", "remove", "5", ...endpointsOf([1, 2, 3])])).code, 0);
    assert.deepEqual(roles(await members(1)), ["1:voter", "2:voter", "3:voter"]);

    // A node that runs (node 3, removed and still up) comes back as a voter at once.
    const peer3 = (await members(1)).find((member) => member.id === 3)?.peer as string;
    assert.equal((await synod(["members", "remove", "3", ...endpointsOf([1, 2])])).code, 0);
    const voter = await synod(["members", "add", "3", "--peer", peer3, "--http", cluster.node(3).http, "--voter", ...endpointsOf([1, 2])]);
    assert.equal(voter.code, 0, voter.stderr);
    assert.match(voter.stdout, new RegExp(`^node 3 added as a voter: it answered at ${cluster.node(3).http}, and counts in the quorum from now on`));
    assert.deepEqual(roles(await members(1)), ["1:voter", "2:voter", "3:voter"]);
    await cluster.waitForLeader(10_000, [1, 2, 3]);
  });

  test("status after a grow and a shrink: the members as the leader lists them (a new one included), the removed node apart; exit 3 once no leader is left", async () => {
    cluster.joinNode(4, cluster.node(1).http);
    for (let i = 0; i < 200 && !roles(await members(2)).includes("4:voter"); i++) await sleep(100);
    assert.ok(roles(await members(2)).includes("4:voter"), "node 4 joined");
    assert.equal((await synod(["members", "remove", "1", ...endpointsOf([1, 2, 3])])).code, 0);
    await cluster.waitForLeader(10_000, [2, 3, 4]);
    const status = await synod(["status", ...endpointsOf([1, 2, 3])]);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    const rows = status.stdout.split("\n");
    const memberRows = rows.filter((row) => /^\d+\s+(voter|learner|leaving)\s/.test(row)).map((row) => row.split(/\s+/).slice(0, 3).join(" "));
    assert.equal(memberRows.length, 3, status.stdout);
    assert.deepEqual(memberRows.map((row) => row.split(" ")[0]), ["2", "3", "4"], status.stdout);
    assert.ok(memberRows.every((row) => /voter (leader|follower)$/.test(row)), status.stdout);
    assert.match(status.stdout, new RegExp(`endpoints whose node is not a member \\(removed, or not added yet\\):\\n  ${cluster.node(1).http}  node 1,`));
    assert.match(status.stdout, /\n3 members, 3 answering$/m);

    const leader = await cluster.waitForLeader(10_000, [2, 3, 4]);
    const follower = [2, 3, 4].find((id) => id !== leader) as number;
    await cluster.kill(leader);
    await cluster.kill(follower);
    const lost = await synod(["status", ...endpointsOf([1, 2, 3, 4])]);
    assert.equal(lost.code, 3, lost.stdout + lost.stderr);
    assert.match(lost.stdout, /^no leader is known/);
  });
});

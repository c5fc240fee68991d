/**
 * Ranges placed on some members only, with real processes: three `synod node`s with
 * `--shards 8 --replicas 3` grow to five while the SDK writes through the first three. The
 * ranges move by themselves (a learner on a new node, promoted once caught up, then the
 * busiest node's replica removed) until every node holds within one of the average number
 * of replicas and of leaderships; no SDK request fails and nothing acknowledged is lost,
 * read back through the new nodes (which forward what they do not host). Then a node is
 * killed with SIGKILL: every range serves again within 3 s, and once it has been down for
 * `--replace-after-ms` its replicas are made again on the others. A replica moved by request
 * goes where it is asked, and the refusals of a move say why.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { RANGE_LEADERS_TTL_MS } from "../../client/call-runner.js";
import { Client } from "../../client/client.js";
import { RangeTable } from "../../core/multi/ranges.js";
import { ProcessCluster, request, sleep, type ShardView } from "./process-cluster.test-util.js";

const SHARDS = 8;
const TABLE = RangeTable.presplit(SHARDS);
/** A key in each range. */
const KEY_OF_RANGE = TABLE.list().map((range) => `${range.start === "" ? "0" : range.start}-key`);

type Placed = ShardView & { readonly voters?: readonly number[]; readonly learners?: readonly number[] };

/** Each node's count of replicas (range 0 included: every member hosts it) and of leaderships, as node `via` sees the ranges. */
async function spread(cluster: ProcessCluster, via: number, nodes: readonly number[]): Promise<{ replicas: number[]; leaders: number[]; settled: boolean; shards: Placed[] | null }> {
  const shards = (await cluster.shards(via)) as Placed[] | null;
  const replicas = nodes.map((id) => shards?.filter((s) => s.voters?.includes(id) === true).length ?? 0);
  const leaders = nodes.map((id) => shards?.filter((s) => s.leader === id).length ?? 0);
  const settled = shards !== null && shards.length === SHARDS && shards.every((s) => s.leader !== null && (s.learners?.length ?? 0) === 0 && (s.id === 0 || s.voters?.length === 3));
  return { replicas, leaders, settled, shards };
}

/** Every acknowledged write, read back through `client` with the value written. */
async function assertAllRead(client: Client, acknowledged: ReadonlyMap<string, string>): Promise<void> {
  for (const [key, value] of acknowledged) {
    const record = await client.get(key);
    assert.equal(record === null ? null : Buffer.from(record.value).toString("utf8"), value, key);
  }
}

function withinOneOfAverage(counts: readonly number[]): boolean {
  const average = counts.reduce((a, b) => a + b, 0) / counts.length;
  return counts.every((count) => Math.abs(count - average) <= 1);
}

describe("ranges on three of the members (--shards 8 --replicas 3)", { timeout: 180_000 }, () => {
  let cluster: ProcessCluster;
  const acknowledged = new Map<string, string>();

  before(async () => {
    cluster = await ProcessCluster.start({ size: 3, spare: 2, flags: ["--shards", String(SHARDS), "--replicas", "3", "--replace-after-ms", "2000"] });
    await cluster.waitForRangeLeaders(SHARDS);
  });
  after(async () => cluster.close());

  test("grown to five nodes under load: replicas and leaderships spread to the new nodes, each within one of the average, with no failed request", async (t) => {
    const client = new Client({ endpoints: [1, 2, 3].map((id) => cluster.node(id).http), healthCheckIntervalMs: 200, timeoutMs: 8000 });
    const failures: string[] = [];
    let writing = true;
    const writer = async (w: number): Promise<void> => {
      for (let i = 0; writing && i < 3000; i++) {
        const key = `${KEY_OF_RANGE[(i + w) % SHARDS]}-w${w}-${i}`;
        try {
          await client.put(key, `v${i}`);
          acknowledged.set(key, `v${i}`);
        } catch (error) {
          failures.push(`${key}: ${(error as Error).name}: ${(error as Error).message}`);
        }
        await sleep(5);
      }
    };
    const writers = [0, 1, 2].map((w) => writer(w));
    try {
      await sleep(500);
      const startedMs = Date.now();
      cluster.joinNode(4, cluster.node(1).http);
      cluster.joinNode(5, cluster.node(1).http);
      const nodes = [1, 2, 3, 4, 5];
      let view = await spread(cluster, 1, nodes);
      for (;;) {
        view = await spread(cluster, 1, nodes);
        if (view.settled && withinOneOfAverage(view.replicas) && withinOneOfAverage(view.leaders) && view.replicas[3] !== 1 && view.replicas[4] !== 1) break;
        if (Date.now() - startedMs > 60_000) assert.fail(`the ranges did not spread over five nodes in 60 s: replicas ${view.replicas.join(",")}, leaders ${view.leaders.join(",")}: ${JSON.stringify(view.shards)}`);
        await sleep(200);
      }
      t.diagnostic(`spread ${Date.now() - startedMs} ms after nodes 4 and 5 started: replicas per node ${view.replicas.join(", ")}, leaderships ${view.leaders.join(", ")}`);
      // Every node sees the same placement (the directory reached each).
      for (const id of [2, 4, 5]) {
        const deadline = Date.now() + 10_000;
        for (;;) {
          const theirs = await spread(cluster, id, nodes);
          if (JSON.stringify(theirs.replicas) === JSON.stringify(view.replicas)) break;
          if (Date.now() > deadline) assert.fail(`node ${id} sees replicas ${theirs.replicas.join(",")}, node 1 ${view.replicas.join(",")}: ${JSON.stringify(theirs.shards)} against ${JSON.stringify(view.shards)}`);
          await sleep(200);
        }
      }
    } finally {
      writing = false;
      await Promise.all(writers);
      await client.close();
    }
    t.diagnostic(`${acknowledged.size} writes acknowledged, ${failures.length} failed`);
    assert.deepEqual(failures, [], "no request failed through the SDK");
    assert.ok(acknowledged.size > 100, `writes went on: ${acknowledged.size}`);

    // A split asked of a node that hosts neither the range nor the highest-numbered one: the
    // request goes to a node that hosts the range, and the new range takes an id no range has.
    const seen = ((await cluster.shards(5)) ?? []) as (Placed & { hosted?: boolean })[];
    const highest = seen.find((s) => s.id === SHARDS - 1);
    const candidates = seen.filter((s) => s.id !== 0 && s.id !== SHARDS - 1 && s.hosted === false);
    // Best, a range whose leader (which splits it) does not host the highest-numbered range either.
    const target = candidates.find((s) => s.leader !== null && highest?.voters?.includes(s.leader) === false) ?? candidates[0];
    assert.ok(target !== undefined, "node 5 lacks some range");
    const at = `${KEY_OF_RANGE[target.id] as string}-w1`;
    const split = await request("POST", `${cluster.node(5).http}/v1/shards/${target.id}/split`, JSON.stringify({ key: at }), { "content-type": "application/json" });
    assert.equal(split.status, 200, split.text);
    const child = split.body["child"] as number;
    assert.ok(!seen.some((s) => s.id === child), `the new range ${child} takes an id no range had (${seen.map((s) => s.id).join(",")})`);
    const splitDeadline = Date.now() + 10_000;
    for (;;) {
      const after = await cluster.shards(1);
      if (after !== null && after.length === SHARDS + 1 && new Set(after.map((s) => s.id)).size === SHARDS + 1 && after.find((s) => s.id === child)?.start === at) break;
      if (Date.now() > splitDeadline) assert.fail(`node 1 does not see range ${child} from ${at}: ${JSON.stringify(after)}`);
      await sleep(200);
    }
    // Read back through the new nodes, which forward what they do not host.
    const reader = new Client({ endpoints: [4, 5].map((id) => cluster.node(id).http), healthCheckIntervalMs: 0 });
    try {
      await assertAllRead(reader, acknowledged);
      // A listing over every range, through a node that hosts only some of them.
      const listed = await request("GET", `${cluster.node(5).http}/v1/kv?prefix=&limit=1000`);
      assert.equal(listed.status, 200, listed.text);
    } finally {
      await reader.close();
    }
  });

  test("kill -9 of a node: every range serves within 3 s, and its replicas are made again on the others", async (t) => {
    const nodes = [1, 2, 3, 4, 5];
    const victim = 2;
    const survivors = nodes.filter((id) => id !== victim);
    const client = new Client({ endpoints: survivors.map((id) => cluster.node(id).http), healthCheckIntervalMs: 200, timeoutMs: 8000 });
    try {
      const killedAt = Date.now();
      await cluster.kill(victim);
      await Promise.all(KEY_OF_RANGE.map((key) => client.put(`${key}-after-kill`, "served")));
      const servedMs = Date.now() - killedAt;
      t.diagnostic(`every range served a write ${servedMs} ms after the kill`);
      assert.ok(servedMs < 3000, `every range served again after ${servedMs} ms`);
      for (const key of KEY_OF_RANGE) acknowledged.set(`${key}-after-kill`, "served");

      let view: Placed[] | null = null;
      for (;;) {
        view = (await cluster.shards(1)) as Placed[] | null;
        const moved = view?.every((s) => s.id === 0 || (s.voters?.length === 3 && s.learners?.length === 0 && !s.voters.includes(victim) && s.leader !== null));
        if (moved === true) break;
        if (Date.now() - killedAt > 30_000) assert.fail(`node ${victim}'s replicas were not made again elsewhere in 30 s: ${JSON.stringify(view)}`);
        await sleep(200);
      }
      t.diagnostic(`node ${victim}'s replicas made again on the others ${Date.now() - killedAt} ms after the kill`);
      await assertAllRead(client, acknowledged);
    } finally {
      await client.close();
    }
  });

  test("a replica moved by request (POST /v1/shards/{id}/move, through a node not hosting the range): a learner, then a voter, then the old one removed; refusals say why", async (t) => {
    const live = [1, 3, 4, 5];
    const shards = ((await cluster.shards(1)) as Placed[] | null) ?? [];
    const range = shards.find((s) => s.id !== 0 && s.leader !== null && live.some((id) => !(s.voters ?? []).includes(id))) as Placed;
    assert.ok(range !== undefined, `a range not on every live node: ${JSON.stringify(shards)}`);
    const voters = range.voters ?? [];
    const to = live.find((id) => !voters.includes(id)) as number;
    const move = (body: object): Promise<{ status: number; text: string; body: Record<string, unknown> }> =>
      request("POST", `${cluster.node(to).http}/v1/shards/${range.id}/move`, JSON.stringify(body), { "content-type": "application/json" });
    // A node already hosting the range takes no second replica; a node not hosting it has none to give.
    const hosting = await move({ from: voters[0], to: voters[1] });
    assert.equal(hosting.status, 409, hosting.text);
    assert.match(String(hosting.body["message"]), new RegExp(`node ${String(voters[1])} already hosts range ${range.id}`));
    const notHosting = await move({ from: to, to: voters[0] });
    assert.equal(notHosting.body["error"], "move_refused", notHosting.text);
    assert.equal((await move({ from: voters[0] })).status, 400);
    // The leader's replica moves only once its leadership has (moveRefusal's unit test): a
    // voter that does not lead is asked for, read again if leadership moved meanwhile.
    let moved: { status: number; text: string; body: Record<string, unknown> } | null = null;
    let from = 0;
    for (let attempt = 0; attempt < 3 && moved === null; attempt++) {
      const now = (((await cluster.shards(1)) as Placed[] | null) ?? []).find((s) => s.id === range.id);
      from = (now?.voters ?? voters).find((id) => id !== now?.leader && id !== to) as number;
      const answer = await move({ from, to });
      if (answer.status === 409 && /leads range/.test(String(answer.body["message"]))) continue;
      moved = answer;
    }
    assert.ok(moved !== null, "the range's leadership kept landing on the replica to move");
    assert.equal(moved.status, 200, moved.text);
    t.diagnostic(`range ${range.id}: node ${from} -> node ${to} through node ${to} in ${String(moved.body["ms"])} ms; voters now ${JSON.stringify(moved.body["voters"])}`);
    assert.deepEqual(moved.body["voters"], [...voters.filter((id) => id !== from), to].sort((a, b) => a - b));
    // Node 1's view of the range follows (the directory), and the range serves its keys.
    const key = KEY_OF_RANGE[range.id] as string;
    const client = new Client({ endpoints: live.map((id) => cluster.node(id).http), healthCheckIntervalMs: 0, timeoutMs: 8000 });
    try {
      await client.put(`${key}-after-move`, "moved");
      acknowledged.set(`${key}-after-move`, "moved");
      await assertAllRead(client, acknowledged);
    } finally {
      await client.close();
    }
  });

  test("the SDK sends each key to its range's leader (GET /v1/shards' leaderHttp): the nodes forward few of its requests", async (t) => {
    const survivors = [1, 3, 4, 5];
    const forwards = async (): Promise<number> => {
      let total = 0;
      for (const id of survivors) {
        const metrics = await request("GET", `${cluster.node(id).http}/metrics`);
        total += Number(/^synod_range_forwards_total (\d+)$/m.exec(metrics.text)?.[1] ?? "0");
      }
      return total;
    };
    const client = new Client({ endpoints: survivors.map((id) => cluster.node(id).http), healthCheckIntervalMs: 200, timeoutMs: 8000 });
    try {
      // The first write outside range 0 makes the client read the ranges and their leaders.
      await client.put(`${KEY_OF_RANGE[SHARDS - 1] as string}-sdk-first`, "x");
      await sleep(RANGE_LEADERS_TTL_MS + 500);
      await client.put(`${KEY_OF_RANGE[SHARDS - 1] as string}-sdk-second`, "x");
      const before = await forwards();
      const puts = 200;
      for (let i = 0; i < puts; i++) await client.put(`${KEY_OF_RANGE[i % SHARDS] as string}-sdk-${i}`, `v${i}`);
      const forwarded = (await forwards()) - before;
      t.diagnostic(`${forwarded} of ${puts} puts over ${SHARDS} ranges forwarded by a node`);
      // Sent to any one node, about two in five would be (each node lacks two of every five ranges but range 0).
      assert.ok(forwarded <= puts / 10, `${forwarded} of ${puts} forwarded`);
    } finally {
      await client.close();
    }
  });
});

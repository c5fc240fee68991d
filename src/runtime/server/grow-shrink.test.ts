/**
 * Growing and shrinking a live cluster of real processes while a client writes: two nodes
 * join with `--join` (learners, promoted once caught up), then the leader and another
 * original member are removed. Every acknowledged write must be on every remaining node,
 * and the clients must see only a short pause. Every log is compacted before the joins, so
 * the new nodes start from a snapshot.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ProcessCluster, request, runSynod, sleep, CONSENSUS_UNDER_TEST } from "./process-cluster.test-util.js";

interface Member {
  readonly id: number;
  readonly role: string;
}

for (const consensus of CONSENSUS_UNDER_TEST) {
  describe(`growing a cluster from 3 to 5 and shrinking it back to 3, under load (${consensus})`, { timeout: 120_000 }, () => {
    let cluster: ProcessCluster;
    before(async () => {
      cluster = await ProcessCluster.start({ consensus, size: 3, spare: 2, flags: ["--snapshot-entries", "200"] });
      await cluster.waitForLeader(10_000, [1, 2, 3]);
    });
    after(async () => cluster.close());

    async function membersOf(id: number): Promise<Member[]> {
      const answer = await request("GET", `${cluster.node(id).http}/v1/members`);
      return answer.status === 200 ? (answer.body["members"] as Member[]) : [];
    }

    /** Waits (bounded) until node `asked` lists exactly `voters` as voters and no one else. */
    async function waitForVoters(asked: number, voters: readonly number[], timeoutMs: number): Promise<number> {
      const startedMs = Date.now();
      let seen: Member[] = [];
      while (Date.now() - startedMs < timeoutMs) {
        seen = await membersOf(asked);
        const ids = seen.map((m) => m.id).sort((a, b) => a - b);
        if (ids.join() === [...voters].sort((a, b) => a - b).join() && seen.every((m) => m.role === "voter")) return Date.now() - startedMs;
        await sleep(50);
      }
      throw new Error(`node ${asked} lists ${JSON.stringify(seen)}, not voters ${voters.join(",")}, after ${timeoutMs} ms:\n${cluster.nodes.map((n) => `node ${n.id}:\n${n.output.slice(-3000)}`).join("\n")}`);
    }

    /** The members left by the first test. */
    let remaining: number[] = [];

    test("two nodes join and are promoted, then the leader and one more leave; nothing acknowledged is lost", async (t) => {
      let writing = true;
      let serving = [1, 2, 3];
      const acknowledged: { key: string; value: string; at: number }[] = [];
      // Four clients, each writing its own keys one after another, to any serving member (a
      // follower passes a write to the leader).
      const writeLoop = async (client: number): Promise<void> => {
        for (let i = 0; writing && i < 10_000; i++) {
          const node = serving[(i + client) % serving.length] as number;
          const key = `g-${client}-${String(i).padStart(6, "0")}`;
          const value = `v${i}`;
          const answer = await request("PUT", `${cluster.node(node).http}/v1/kv/${key}`, value);
          if (answer.status === 200) acknowledged.push({ key, value, at: Date.now() });
          else await sleep(5);
        }
      };
      const writer = Promise.all([0, 1, 2, 3].map(writeLoop));
      try {
        // Enough writes that every member has compacted its log: a joining node must be sent a snapshot.
        const compactedMs = Date.now();
        while (Date.now() - compactedMs < 20_000) {
          const statuses = await Promise.all(serving.map((id) => cluster.status(id)));
          if (statuses.every((status) => Number(status?.["snapshotIndex"] ?? 0) > 0)) break;
          await sleep(100);
        }
        for (const id of serving) assert.ok(Number((await cluster.status(id))?.["snapshotIndex"] ?? 0) > 0, `node ${id} compacted its log`);
        // Grow: node 4 joins through node 1, node 5 through node 2.
        const joinMs: number[] = [];
        for (const [id, via] of [
          [4, 1],
          [5, 2],
        ] as const) {
          const startedMs = Date.now();
          cluster.joinNode(id, cluster.node(via).http);
          await waitForVoters(via, [...serving, id], 20_000);
          joinMs.push(Date.now() - startedMs);
          serving = [...serving, id];
        }
        for (const id of serving) await waitForVoters(id, [1, 2, 3, 4, 5], 5000);
        await sleep(300);
        // Shrink: the leader goes, and another of the first three.
        const leader = await cluster.waitForLeader(5000, serving);
        const other = [1, 2, 3].find((id) => id !== leader) as number;
        const removeMs: number[] = [];
        for (const gone of [leader, other]) {
          const remaining = serving.filter((id) => id !== gone);
          const asked = remaining[0] as number;
          const startedMs = Date.now();
          let answer = await request("DELETE", `${cluster.node(asked).http}/v1/members/${gone}`);
          // As any client would: a 503 with Retry-After (an election after the last removal) is retried.
          let outcomeUnknown = false;
          for (let retry = 0; retry < 50 && answer.status === 503 && answer.headers.has("retry-after"); retry++) {
            outcomeUnknown ||= answer.body["error"] === "timeout";
            await sleep(100);
            answer = await request("DELETE", `${cluster.node(asked).http}/v1/members/${gone}`);
          }
          // A removal whose answer timed out may have been made: then the retry finds no such member.
          if (outcomeUnknown && answer.status === 404) answer = { ...answer, status: 200 };
          assert.equal(answer.status, 200, `removing ${gone} through ${asked}: ${answer.text}\n${cluster.nodes.map((n) => `node ${n.id}:\n${n.output.slice(-3000)}`).join("\n")}`);
          removeMs.push(Date.now() - startedMs);
          serving = remaining;
          await waitForVoters(asked, serving, 5000);
          await cluster.waitForLeader(5000, serving);
        }
        const newLeader = await cluster.waitForLeader(5000, serving);
        assert.ok(serving.includes(newLeader), `node ${newLeader} leads the remaining ${serving.join(",")}`);
        await sleep(300);
        writing = false;
        await writer;
        assert.ok(acknowledged.length > 100, `${acknowledged.length} writes acknowledged`);
        const last = acknowledged[acknowledged.length - 1] as { at: number };
        // Every acknowledged write, read from each remaining node's state machine (a
        // linearizable range is served by the node asked, once it has caught up).
        for (const id of serving) {
          const found = new Map<string, string>();
          let after: string | null = null;
          for (let page = 0; page < 100; page++) {
            const query: string = `prefix=g-&limit=1000&consistency=linearizable${after === null ? "" : `&after=${encodeURIComponent(after)}`}`;
            const answer = await request("GET", `${cluster.node(id).http}/v1/kv?${query}`);
            assert.equal(answer.status, 200, `range on node ${id}: ${answer.text}`);
            const kvs = answer.body["kvs"] as { key: string; value: string }[];
            for (const kv of kvs) found.set(kv.key, kv.value);
            if (answer.body["more"] !== true || kvs.length === 0) break;
            after = (kvs[kvs.length - 1] as { key: string }).key;
          }
          const missing = acknowledged.filter((w) => found.get(w.key) !== w.value);
          assert.deepEqual(missing.slice(0, 5), [], `node ${id} lacks ${missing.length} of ${acknowledged.length} acknowledged writes`);
        }
        // The removed nodes take no more writes.
        for (const gone of [1, 2, 3, 4, 5].filter((id) => !serving.includes(id))) {
          const refused = await request("PUT", `${cluster.node(gone).http}/v1/kv/after-removal`, "x");
          assert.equal(refused.body["error"], "not_member", `node ${gone}: ${refused.text}`);
        }
        let longestGapMs = 0;
        for (let i = 1; i < acknowledged.length; i++) longestGapMs = Math.max(longestGapMs, (acknowledged[i] as { at: number }).at - (acknowledged[i - 1] as { at: number }).at);
        t.diagnostic(
          `joins (start to voter): ${joinMs.join(", ")} ms; removals (leader ${leader}, then ${other}): ${removeMs.join(", ")} ms; ` +
            `${acknowledged.length} writes acknowledged, the last at +${last.at - (acknowledged[0] as { at: number }).at} ms; the longest gap between acknowledged writes: ${longestGapMs} ms`,
        );
        assert.ok(longestGapMs < 3000, `the client paused ${longestGapMs} ms`);
        remaining = serving;
      } finally {
        writing = false;
        await writer;
      }
    });

    test("a node that joined, killed and restarted without --join or --peers, follows its cluster", async () => {
      assert.ok(remaining.length === 3, "needs the previous test's cluster");
      const joined = remaining.find((id) => id >= 4) as number;
      const leader = await cluster.waitForLeader(5000, remaining);
      const term = (await cluster.status(leader))?.term;
      await cluster.kill(joined);
      // Its configuration comes from its log: "no --peers" must not make it a cluster of one.
      cluster.restartJoined(joined);
      await waitForVoters(joined, remaining, 10_000);
      const after = await cluster.waitForLeader(5000, remaining);
      if (leader !== joined) {
        assert.equal(after, leader, "the leader did not change");
        assert.equal((await cluster.status(leader))?.term, term, "the term did not move");
      }
      const write = await request("PUT", `${cluster.node(joined).http}/v1/kv/after-rejoin`, "ok");
      assert.equal(write.status, 200, write.text);
      for (const id of remaining) {
        const read = await request("GET", `${cluster.node(id).http}/v1/kv/after-rejoin?consistency=linearizable`);
        assert.equal(read.body["value"], "ok", `node ${id}: ${read.text}`);
      }
    });

    test("joins that cannot be right are refused at start, with what to do, and leave no data behind", async () => {
      const member = cluster.node(remaining[0] as number).http;
      const dir = mkdtempSync(join(tmpdir(), "synod-join-"));
      try {
        // An id the cluster has at another address.
        const taken = await runSynod(["node", "--consensus", consensus, "--id", String(remaining[0]), "--http", "127.0.0.1:0", "--peer", "127.0.0.1:1", "--join", member, "--data-dir", join(dir, "taken")], 15_000);
        assert.equal(taken.code, 1, taken.output);
        assert.match(taken.output, /already a member of the cluster, at 127\.0\.0\.1:\d+: choose another --id/);
        assert.equal(existsSync(join(dir, "taken")), false, "nothing was written");
        // A directory that bootstrapped a cluster with --peers.
        const removed = [1, 2, 3].find((id) => !remaining.includes(id)) as number;
        const bootstrapped = await runSynod(["node", "--consensus", consensus, "--id", String(removed), "--http", "127.0.0.1:0", "--peer", "127.0.0.1:1", "--join", member, "--data-dir", cluster.node(removed).dataDir], 15_000);
        assert.equal(bootstrapped.code, 1, bootstrapped.output);
        assert.match(bootstrapped.output, /bootstrapped its cluster with --peers/);
        // Another consensus protocol than the cluster's.
        const other = consensus === "raft" ? "paxos" : "raft";
        const protocol = await runSynod(["node", "--consensus", other, "--id", "9", "--http", "127.0.0.1:0", "--peer", "127.0.0.1:1", "--join", member, "--data-dir", join(dir, "other")], 15_000);
        assert.equal(protocol.code, 1, protocol.output);
        assert.match(protocol.output, new RegExp(`the cluster runs ${consensus}, and this node was started with --consensus ${other}: start it with --consensus ${consensus}`));
        assert.equal(existsSync(join(dir, "other")), false, "nothing was written");
        // --join and --peers together.
        const both = await runSynod(["node", "--id", "9", "--join", member, "--peers", "9=127.0.0.1:1,1=127.0.0.1:2", "--data-dir", join(dir, "both")], 15_000);
        assert.equal(both.code, 2, both.output);
        assert.match(both.output, /--join and --peers do not go together/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

/**
 * Membership changes on real processes: the HTTP API refuses bad requests clearly, and
 * removing the leader of a cluster under load hands over to a remaining voter, loses no
 * acknowledged write, and leaves the removed node serving nothing.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ProcessCluster, request, runSynod, sleep, CONSENSUS_UNDER_TEST } from "./process-cluster.test-util.js";

const JSON_TYPE = { "content-type": "application/json" };

for (const consensus of CONSENSUS_UNDER_TEST) {
  describe(`membership changes on a real cluster (${consensus})`, { timeout: 90_000 }, () => {
    let cluster: ProcessCluster;
    before(async () => {
      cluster = await ProcessCluster.start({ consensus, size: 3 });
      await cluster.waitForLeader();
    });
    after(async () => cluster.close());
    /** The node the second test removed, and the index of the configuration that removed it. */
    let removed = 0;
    let removalIndex = 0;

    test("GET /v1/members lists the voters; bad changes are refused with a clear 4xx and change nothing", async () => {
      const url = cluster.node(1).http;
      const listed = await request("GET", `${url}/v1/members`);
      assert.equal(listed.status, 200, listed.text);
      const members = listed.body["members"] as { id: number; role: string; peer: string }[];
      assert.deepEqual(members.map((m) => [m.id, m.role]), [[1, "voter"], [2, "voter"], [3, "voter"]]);
      const cases: [string, string, string | undefined, number][] = [
        ["DELETE", "/v1/members/9", undefined, 404],
        ["DELETE", "/v1/members/abc", undefined, 400],
        ["POST", "/v1/members/2/promote", undefined, 409],
        ["POST", "/v1/members", JSON.stringify({ id: 2, peer: "127.0.0.1:1" }), 409],
        ["POST", "/v1/members", JSON.stringify({ id: 0, peer: "127.0.0.1:1" }), 400],
        ["POST", "/v1/members", JSON.stringify({ id: 7, peer: "nowhere" }), 400],
        ["POST", "/v1/members", "{id:", 400],
        ["PUT", "/v1/members", "{}", 405],
      ];
      for (const [method, path, body, status] of cases) {
        // Asked of every node: followers pass the change to the leader.
        for (const node of [1, 2, 3]) {
          const answer = await request(method, `${cluster.node(node).http}${path}`, body, JSON_TYPE);
          assert.equal(answer.status, status, `${method} ${path} on node ${node}: ${answer.text}`);
          assert.equal(typeof answer.body["error"], "string");
        }
      }
      const still = await request("GET", `${url}/v1/members`);
      assert.deepEqual((still.body["members"] as { id: number }[]).map((m) => m.id), [1, 2, 3]);
      // The same through the CLI: a listing, and a refusal with its reason and exit code 2.
      const endpoints = [1, 2, 3].map((node) => cluster.node(node).http).join(",");
      const list = await runSynod(["members", "list", "--endpoints", endpoints], 10_000);
      assert.equal(list.code, 0, list.output);
      assert.match(list.output, /^1 +voter +peer 127\.0\.0\.1:\d+/m);
      const promoteVoter = await runSynod(["members", "promote", "2", "--endpoints", endpoints], 10_000);
      assert.equal(promoteVoter.code, 2, promoteVoter.output);
      assert.match(promoteVoter.output, /not a learner/);
    });

    test("removing the leader under load: a remaining voter leads, nothing acknowledged is lost", async (t) => {
      const leader = await cluster.waitForLeader();
      const [asked, other] = [1, 2, 3].filter((id) => id !== leader) as [number, number];
      let writing = true;
      const acknowledged: { key: string; at: number }[] = [];
      const writer = (async () => {
        for (let i = 0; writing && i < 5000; i++) {
          const node = [asked, other][i % 2] as number;
          const answer = await request("PUT", `${cluster.node(node).http}/v1/kv/m-${i}`, `v${i}`);
          if (answer.status === 200) acknowledged.push({ key: `m-${i}`, at: Date.now() });
          else await sleep(5);
        }
      })();
      await sleep(500);
      const startedMs = Date.now();
      const answer = await request("DELETE", `${cluster.node(asked).http}/v1/members/${leader}`);
      const tookMs = Date.now() - startedMs;
      assert.equal(answer.status, 200, `${answer.text}\n${[1, 2, 3].map((id) => `node ${id}:\n${cluster.node(id).output.slice(-4000)}`).join("\n")}`);
      const newLeader = await cluster.waitForLeader(3000, [asked, other]);
      assert.ok(newLeader === asked || newLeader === other, `node ${newLeader} leads`);
      await sleep(500);
      writing = false;
      await writer;
      const listed = await request("GET", `${cluster.node(asked).http}/v1/members`);
      assert.deepEqual((listed.body["members"] as { id: number }[]).map((m) => m.id).sort(), [asked, other].sort());
      // Every acknowledged write, read back linearizably from both remaining members.
      for (const node of [asked, other]) {
        for (const { key } of acknowledged.filter((_, i) => i % 10 === 0 || i === acknowledged.length - 1)) {
          const read = await request("GET", `${cluster.node(node).http}/v1/kv/${key}?consistency=linearizable`);
          assert.equal(read.status, 200, `${key} on node ${node}: ${read.text}`);
        }
      }
      const afterRemoval = acknowledged.filter((w) => w.at > startedMs + tookMs).length;
      assert.ok(afterRemoval > 10, `writes continue without the removed leader (${afterRemoval} after the change)`);
      // The removed node takes no writes: it would never learn their outcome.
      const refused = await request("PUT", `${cluster.node(leader).http}/v1/kv/after-removal`, "x");
      assert.equal(refused.status, 503, refused.text);
      assert.equal(refused.body["error"], "not_member");
      removed = leader;
      removalIndex = answer.body["index"] as number;
      let longestGapMs = 0;
      for (let i = 1; i < acknowledged.length; i++) longestGapMs = Math.max(longestGapMs, (acknowledged[i] as { at: number }).at - (acknowledged[i - 1] as { at: number }).at);
      t.diagnostic(`the removal took ${tookMs} ms; the longest gap between acknowledged writes was ${longestGapMs} ms; ${acknowledged.length} writes acknowledged`);
    });

    test("the removed node, killed and restarted with its old data and peer list, refuses to start, saying why, and disturbs nothing", async () => {
      assert.ok(removed > 0, "needs the previous test's removal");
      const members = [1, 2, 3].filter((id) => id !== removed);
      const leader = await cluster.waitForLeader(3000, members);
      const term = (await cluster.status(leader))?.term;
      // It learns that its removal committed (the leader's last word to it), and applies it.
      for (let i = 0; i < 100 && ((await cluster.status(removed))?.appliedIndex ?? 0) < removalIndex; i++) await sleep(50);
      assert.ok(((await cluster.status(removed))?.appliedIndex ?? 0) >= removalIndex, "the removed node applied its removal");
      await cluster.kill(removed);
      cluster.startNode(removed); // with the original --peers, which still lists every node
      const exit = await cluster.exited(removed, 15_000);
      assert.equal(exit.code, 1, exit.output);
      assert.match(exit.output, new RegExp(`synod node ${removed}: cannot start: node ${removed} was removed from the cluster whose data is in \\S+: its configuration's members are ${members.join(", ")}\\. To serve that cluster, empty \\S+ and start it with --join http://\\S+ to be added again; or give it another --data-dir to start a new cluster\n`));
      // A second later (a campaign would have raised the term): nothing moved.
      await sleep(1000);
      for (const id of members) {
        const status = await cluster.status(id);
        assert.equal(status?.leader, leader, `node ${id} still follows node ${leader}`);
        assert.equal(status?.term, term, `node ${id}'s term did not move`);
      }
      const write = await request("PUT", `${cluster.node(members[0] as number).http}/v1/kv/after-restart`, "ok");
      assert.equal(write.status, 200, write.text);
    });
  });
}

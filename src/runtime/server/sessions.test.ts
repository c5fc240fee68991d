/**
 * Client sessions over HTTP on a real cluster: a write retried with the same session and
 * sequence applies once, through any node; a session the cluster does not hold is refused
 * with 410 and nothing applied; malformed session headers get a 400.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ProcessCluster, request, CONSENSUS_FOR_ENGINE_AGNOSTIC } from "./process-cluster.test-util.js";

for (const consensus of CONSENSUS_FOR_ENGINE_AGNOSTIC) {
  describe(`client sessions over HTTP (${consensus})`, { timeout: 60_000 }, () => {
    let cluster: ProcessCluster;
    before(async () => {
      cluster = await ProcessCluster.start({ consensus, size: 3 });
      await cluster.waitForLeader();
    });
    after(async () => cluster.close());

    const session = (id: number, sequence: number): Record<string, string> => ({ "x-synod-session": String(id), "x-synod-sequence": String(sequence) });

    test("a retried write applies once, whichever node it is sent to", async () => {
      const opened = await request("POST", `${cluster.node(2).http}/v1/sessions`);
      assert.equal(opened.status, 200, opened.text);
      const id = opened.body["session"] as number;
      assert.ok(Number.isSafeInteger(id) && id > 0, opened.text);
      assert.equal(opened.body["ttlMs"], 3_600_000);
      const first = await request("PUT", `${cluster.node(1).http}/v1/kv/once`, "1", session(id, 1));
      assert.equal(first.status, 200, first.text);
      // The answer was "lost": the client sends the same request again, to other nodes.
      for (const node of [2, 3, 1]) {
        const again = await request("PUT", `${cluster.node(node).http}/v1/kv/once`, "1", session(id, 1));
        assert.equal(again.status, 200, again.text);
        assert.deepEqual(again.body, first.body, "the first application's answer");
      }
      const read = await request("GET", `${cluster.node(3).http}/v1/kv/once`);
      assert.equal(read.body["version"], 1, "applied once");
      // The next sequence is a new write; a transaction and a delete go through sessions too.
      const second = await request("PUT", `${cluster.node(1).http}/v1/kv/once`, "2", session(id, 2));
      assert.equal(second.status, 200, second.text);
      const txn = JSON.stringify({ compare: [], success: [{ op: "put", key: "once-txn", value: "t" }], failure: [] });
      const t1 = await request("POST", `${cluster.node(1).http}/v1/txn`, txn, { "content-type": "application/json", ...session(id, 3) });
      const t2 = await request("POST", `${cluster.node(2).http}/v1/txn`, txn, { "content-type": "application/json", ...session(id, 3) });
      assert.equal(t1.status, 200, t1.text);
      assert.deepEqual(t2.body, t1.body);
      const removed = await request("DELETE", `${cluster.node(1).http}/v1/kv/once`, undefined, session(id, 4));
      const removedAgain = await request("DELETE", `${cluster.node(3).http}/v1/kv/once`, undefined, session(id, 4));
      assert.deepEqual(removed.body["deleted"], 1);
      assert.deepEqual(removedAgain.body, removed.body, "the retried delete answers as the first did, not deleted: 0");
    });

    test("a session the cluster does not hold is refused with 410 and nothing is applied; bad headers get 400", async () => {
      const unknown = await request("PUT", `${cluster.node(1).http}/v1/kv/never`, "x", session(987_654, 1));
      assert.equal(unknown.status, 410, unknown.text);
      assert.equal(unknown.body["error"], "session_expired");
      assert.equal((await request("GET", `${cluster.node(1).http}/v1/kv/never`)).status, 404);
      const cases: Record<string, string>[] = [
        { "x-synod-session": "5" },
        { "x-synod-sequence": "5" },
        { "x-synod-session": "abc", "x-synod-sequence": "1" },
        { "x-synod-session": "5", "x-synod-sequence": "0" },
        { "x-synod-session": String(2 ** 52 + 1), "x-synod-sequence": "1" },
      ];
      for (const headers of cases) {
        const answer = await request("PUT", `${cluster.node(1).http}/v1/kv/bad`, "x", headers);
        assert.equal(answer.status, 400, `${JSON.stringify(headers)}: ${answer.text}`);
      }
      assert.equal((await request("GET", `${cluster.node(1).http}/v1/sessions`)).status, 405);
    });
  });
}

/**
 * `synod node --join` against a stand-in member that accepts the join but never sends the
 * log: the new node must stay a follower without a configuration — never campaign, never
 * serve a write — however long it waits, and a restart without `--join` must be refused
 * rather than make it a cluster of one.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePorts, request, runSynod, sleep } from "./process-cluster.test-util.js";

const SYNOD_BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "bin", "synod.js");
const CLUSTER_ID = "0123456789abcdef";

describe("joining: a node the cluster added but never sent the log", { timeout: 60_000 }, () => {
  let member: Server;
  let memberUrl = "";
  let joins = 0;
  const dir = mkdtempSync(join(tmpdir(), "synod-join-"));
  before(async () => {
    const [memberPeer] = await freePorts(1);
    const members = [{ id: 1, peer: `127.0.0.1:${memberPeer}`, http: null, role: "voter" }];
    member = createServer((req, res) => {
      const answer = (body: object): void => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      if (req.url === "/v1/status") return answer({ id: 1, role: "leader", term: 3, leader: 1, clusterId: CLUSTER_ID });
      if (req.url === "/v1/members" && req.method === "GET") return answer({ members, joint: false });
      if (req.url === "/v1/members" && req.method === "POST") {
        joins++;
        return answer({ index: 7, ms: 1, members: [...members, { id: 9, peer: "127.0.0.1:1", http: null, role: "learner" }] });
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => member.listen(0, "127.0.0.1", resolve));
    const address = member.address();
    memberUrl = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;
  });
  after(async () => {
    await new Promise((resolve) => member.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  test("it waits as a follower, serves no write, and records that it joined", async () => {
    const [http, peer] = await freePorts(2);
    const data = join(dir, "node-9");
    const child = spawn(process.execPath, [SYNOD_BIN, "node", "--id", "9", "--http", `127.0.0.1:${http}`, "--peer", `127.0.0.1:${peer}`, "--join", memberUrl, "--data-dir", data, "--log-level", "warn"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      const url = `http://127.0.0.1:${http}`;
      let up = false;
      for (let i = 0; i < 100 && !up; i++) {
        up = (await request("GET", `${url}/v1/status`)).status === 200 && joins > 0;
        if (!up) await sleep(50);
      }
      assert.ok(up, `the node started and asked to join:\n${output}`);
      // Three times the longest election timeout (20 ticks of 50 ms).
      await sleep(3000);
      const status = await request("GET", `${url}/v1/status`);
      assert.equal(status.body["role"], "follower", status.text);
      assert.equal(status.body["term"], 0, "it never campaigned");
      assert.equal(status.body["clusterId"], CLUSTER_ID, "it took the cluster's id");
      const write = await request("PUT", `${url}/v1/kv/k`, "v");
      assert.equal(write.status, 503, write.text);
      assert.equal(write.body["error"], "not_member");
      const identity = JSON.parse(readFileSync(join(data, "node.json"), "utf8")) as Record<string, unknown>;
      assert.equal(identity["joined"], true);
      assert.deepEqual((identity["directory"] as { id: number }[]).map((m) => m.id), [1]);
      assert.equal(joins, 1);
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
    // Restarted without --join (and without --peers, which would mean "a cluster of me"):
    // refused, since its configuration never arrived.
    const restarted = await runSynod(["node", "--id", "9", "--http", `127.0.0.1:${http}`, "--peer", `127.0.0.1:${peer}`, "--data-dir", data], 15_000);
    assert.equal(restarted.code, 1, restarted.output);
    assert.match(restarted.output, /is not a member of its cluster's configuration .*start it with --join URL/);
  });

  test("a bad --join is refused at once, with what to check: a URL with a path, port 0, a server that is not a synod member", async () => {
    const [http, peer] = await freePorts(2);
    const started = Date.now();
    const withPath = await runSynod(["node", "--id", "8", "--http", `127.0.0.1:${http}`, "--peer", `127.0.0.1:${peer}`, "--join", `${memberUrl}/nothing-here`, "--data-dir", join(dir, "node-8")], 15_000);
    assert.equal(withPath.code, 2, withPath.output); // a usage error
    const portZero = await runSynod(["node", "--id", "8", "--http", `127.0.0.1:${http}`, "--peer", `127.0.0.1:0`, "--join", memberUrl, "--data-dir", join(dir, "node-8")], 15_000);
    assert.equal(portZero.code, 2, portZero.output);
    assert.match(portZero.output, /--join needs a fixed --peer port/);
    // Some other HTTP server: it answers, but 404. Refused without waiting the 15 s a silent URL gets.
    const other = createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    try {
      const address = other.address();
      const otherUrl = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;
      const notSynod = await runSynod(["node", "--id", "8", "--http", `127.0.0.1:${http}`, "--peer", `127.0.0.1:${peer}`, "--join", otherUrl, "--data-dir", join(dir, "node-8")], 15_000);
      assert.equal(notSynod.code, 1, notSynod.output);
      assert.match(notSynod.output, /--join the HTTP URL of a member of a running synod cluster/);
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
    assert.ok(Date.now() - started < 10_000, "no long wait");
  });
});

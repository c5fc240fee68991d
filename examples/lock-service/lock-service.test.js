// @ts-check
/**
 * The lock service, tested as its users run it: three real processes of server.js on
 * loopback ports, asked over HTTP, one of them killed with SIGKILL. Its state machine in
 * the simulator is sim.test.js's.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const serverPath = join(here, "server.js");

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Free loopback ports (bound to port 0 once, then released).
 * @param {number} count
 * @returns {Promise<number[]>}
 */
async function freePorts(count) {
  const servers = await Promise.all(
    Array.from({ length: count }, () => /** @type {Promise<import("node:net").Server>} */ (new Promise((resolve, reject) => {
      const server = createServer();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve(server));
    }))),
  );
  const ports = servers.map((server) => /** @type {import("node:net").AddressInfo} */ (server.address()).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/**
 * @typedef {{ id: number, http: string, args: string[], child: import("node:child_process").ChildProcess | null, output: string }} Member
 */

class LockCluster {
  /**
   * @param {string} root
   * @param {Member[]} members
   */
  constructor(root, members) {
    this.root = root;
    this.members = members;
  }

  static async start() {
    const ports = await freePorts(6);
    const root = mkdtempSync(join(tmpdir(), "lock-service-"));
    const peers = [1, 2, 3].map((id) => `${id}=127.0.0.1:${ports[id + 2]}`).join(",");
    const members = [1, 2, 3].map((id) => ({
      id,
      http: `http://127.0.0.1:${ports[id - 1]}`,
      args: [serverPath, "--id", String(id), "--http", `127.0.0.1:${ports[id - 1]}`, "--data-dir", join(root, `node-${id}`), "--peers", peers],
      child: /** @type {import("node:child_process").ChildProcess | null} */ (null),
      output: "",
    }));
    const cluster = new LockCluster(root, members);
    await Promise.all(members.map((member) => cluster.startNode(member.id)));
    return cluster;
  }

  /** @param {number} id */
  member(id) {
    return /** @type {Member} */ (this.members[id - 1]);
  }

  /**
   * Starts a member's process and resolves once it serves HTTP.
   * @param {number} id
   */
  async startNode(id) {
    const member = this.member(id);
    const child = spawn(process.execPath, member.args, { stdio: ["ignore", "pipe", "pipe"] });
    member.child = child;
    member.output = "";
    await new Promise((resolve, reject) => {
      const onData = (/** @type {Buffer} */ chunk) => {
        member.output += chunk.toString();
        if (member.output.includes("HTTP on")) resolve(undefined);
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("exit", (code) => reject(new Error(`node ${id} exited (${code}) at start:\n${member.output}`)));
    });
  }

  /** @param {number} id */
  async kill(id) {
    const child = this.member(id).child;
    if (child === null || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    this.member(id).child = null;
  }

  live() {
    return this.members.filter((member) => member.child !== null);
  }

  async leader(timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const member of this.live()) {
        const answer = await call(member.http, "GET", "/status").catch(() => null);
        if (answer?.body.role === "leader") return member.id;
      }
      await sleep(50);
    }
    throw new Error("no leader");
  }

  async close() {
    for (const member of this.members) await this.kill(member.id);
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * @param {string} base
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<{ status: number, body: any }>}
 */
async function call(base, method, path, body) {
  const response = await fetch(`${base}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }), signal: AbortSignal.timeout(8000) });
  return { status: response.status, body: await response.json() };
}

describe("the lock service on three real processes", { timeout: 120_000 }, () => {
  /** @type {LockCluster} */
  let cluster;
  before(async () => {
    cluster = await LockCluster.start();
    await cluster.leader();
  });
  after(async () => cluster.close());

  test("acquire and release through different nodes; the fencing token grows with each grant", async () => {
    const [one, two, three] = [1, 2, 3].map((id) => cluster.member(id).http);
    const first = await call(/** @type {string} */ (one), "POST", "/locks/orders/acquire", { owner: "alice" });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.token, 1);
    const denied = await call(/** @type {string} */ (two), "POST", "/locks/orders/acquire", { owner: "bob" });
    assert.deepEqual([denied.status, denied.body], [409, { ok: false, holder: "alice" }]);
    assert.deepEqual((await call(/** @type {string} */ (three), "GET", "/locks/orders")).body, { holder: { owner: "alice", token: 1 } });
    assert.equal((await call(/** @type {string} */ (three), "POST", "/locks/orders/release", { owner: "bob", token: 1 })).status, 409, "only the holder releases");
    assert.equal((await call(/** @type {string} */ (three), "POST", "/locks/orders/release", { owner: "alice", token: 1 })).status, 200);
    const second = await call(/** @type {string} */ (two), "POST", "/locks/orders/acquire", { owner: "bob" });
    assert.deepEqual([second.status, second.body], [200, { ok: true, token: 2 }]);
    const bad = await call(/** @type {string} */ (one), "POST", "/locks/orders/acquire", { who: "x" });
    assert.equal(bad.status, 400);
  });

  test("with the leader killed (SIGKILL) under contention, no two workers ever hold the lock at once", async () => {
    /** @type {{ worker: number, token: number, learnedAtMs: number, releaseSentAtMs: number }[]} */
    const grants = [];
    let running = true;
    let killedAtMs = Infinity;
    const pick = () => {
      const live = cluster.live();
      return /** @type {Member} */ (live[Math.floor(Math.random() * live.length)]).http;
    };
    /** Who holds the lock, asked until some member answers. */
    const holder = async () => {
      for (;;) {
        const answer = await call(pick(), "GET", "/locks/contended").catch(() => null);
        if (answer?.status === 200) return answer.body.holder;
        await sleep(20);
      }
    };
    /** @param {number} worker */
    const work = async (worker) => {
      const owner = `worker-${worker}`;
      while (running) {
        const answer = await call(pick(), "POST", "/locks/contended/acquire", { owner }).catch(() => null);
        let token = null;
        if (answer?.status === 200) token = answer.body.token;
        else if (answer === null || answer.status === 504) {
          // The outcome is unknown (the node died, or the request timed out): the lock says.
          const current = await holder();
          if (current?.owner === owner) token = current.token;
        }
        if (token === null) {
          await sleep(5);
          continue;
        }
        const learnedAtMs = performance.now();
        await sleep(20); // the critical section
        const releaseSentAtMs = performance.now();
        grants.push({ worker, token, learnedAtMs, releaseSentAtMs });
        for (;;) {
          const released = await call(pick(), "POST", "/locks/contended/release", { owner, token }).catch(() => null);
          if (released?.status === 200) break;
          // 409: an earlier try that timed out did release it.
          if (released?.status === 409 && (await holder())?.token !== token) break;
          await sleep(20);
        }
      }
    };
    const workers = [1, 2, 3, 4].map(work);
    await sleep(1500);
    const leader = await cluster.leader();
    await cluster.kill(leader);
    killedAtMs = performance.now();
    await sleep(3000);
    running = false;
    await Promise.all(workers);

    grants.sort((a, b) => a.token - b.token);
    assert.equal(new Set(grants.map((g) => g.token)).size, grants.length, "no token granted twice");
    for (let i = 1; i < grants.length; i++) {
      const previous = /** @type {typeof grants[number]} */ (grants[i - 1]);
      const next = /** @type {typeof grants[number]} */ (grants[i]);
      if (next.token !== previous.token + 1) continue;
      assert.ok(previous.releaseSentAtMs < next.learnedAtMs, `token ${next.token} went to worker ${next.worker} before worker ${previous.worker} released token ${previous.token}`);
    }
    assert.ok(grants.length > 10, `${grants.length} grants`);
    assert.ok(grants.some((g) => g.learnedAtMs > killedAtMs), "grants go on after the leader was killed");

    // The killed node comes back and catches up from its log.
    await cluster.startNode(leader);
    const expected = await call(cluster.member(leader === 1 ? 2 : 1).http, "GET", "/locks/contended");
    let caughtUp = null;
    for (let i = 0; i < 100 && caughtUp?.status !== 200; i++) caughtUp = await call(cluster.member(leader).http, "GET", "/locks/contended").catch(() => null);
    assert.deepEqual(caughtUp?.body, expected.body);
  });
});

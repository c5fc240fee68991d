// ClusterRouter: health checks, leader awareness and picks, against fake nodes over HTTP and
// against a scripted status fetcher with a fake clock.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { within } from "../runtime/server/process-cluster.test-util.js";
import v8 from "node:v8";
import vm from "node:vm";
import { after, describe, test } from "node:test";
import { InvalidInputError } from "../core/common/errors.js";
import type { MemberInfo, NodeStatus } from "./api.js";
import { fakeNodes, refusingEndpoint } from "./fake-node.test-util.js";
import { ClusterRouter, type ClusterRouterOptions, type MembersFetcher, type StatusCheckResult } from "./router.js";

const startNode = fakeNodes();

function router(options: ClusterRouterOptions): ClusterRouter {
  const created = new ClusterRouter(options);
  after(() => created.close());
  return created;
}

const URLS = ["http://127.0.0.1:7001", "http://127.0.0.1:7002", "http://127.0.0.1:7003"];

function status(id: number, role: string, term: number, leaderHttp: string | null): NodeStatus {
  return { id, role, term, leader: leaderHttp === null ? null : 1, leaderHttp, commitIndex: 0, appliedIndex: 0, members: [] };
}

/** A fetcher answering from `answers` (by URL; a missing URL fails its check), counting calls. */
function scripted(answers: Map<string, StatusCheckResult>): { fetch: ClusterRouterOptions["fetchStatus"] & object; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    fetch: async (url) => {
      calls.push(url);
      return answers.get(url) ?? { ok: false };
    },
  };
}

function picks(pick: () => { id: string } | null, count: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const id = pick()?.id ?? "none";
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

describe("over HTTP, with the default status check", () => {
  test("the leader is learned from a follower's leaderHttp and from the leader's role; writes and linearizable reads go there, stale reads spread", async () => {
    const leader = await startNode({ id: 1, role: "leader" });
    const followers = [await startNode({ id: 2, role: "follower", leaderHttp: leader.url }), await startNode({ id: 3, role: "follower", leaderHttp: leader.url })];
    const cluster = router({ endpoints: [followers[0]!, leader, followers[1]!].map((node) => ({ url: node.url })), healthCheckIntervalMs: 0, seed: 1 });
    assert.equal(cluster.leader(), null, "nothing known before a check");
    await cluster.checkNow();
    assert.equal(cluster.leader()?.url, leader.url);
    assert.deepEqual(picks(() => cluster.pickForWrite(), 50), new Map([[leader.url, 50]]));
    assert.deepEqual(picks(() => cluster.pickForRead("linearizable"), 20), new Map([[leader.url, 20]]));
    const stale = picks(() => cluster.pickForRead("stale"), 300);
    for (const node of [leader, ...followers]) assert.ok((stale.get(node.url) ?? 0) > 50, `stale reads reach ${node.url}: ${JSON.stringify([...stale])}`);
    const stats = cluster.stats();
    assert.deepEqual([stats.leader, stats.leaderTerm, stats.checks, stats.checksFailed, stats.available], [leader.url, 2, 3, 0, 3]);
  });

  test("a node that refuses connections fails its checks and leaves the rotation after two; the timer runs checks by itself and close stops it", async () => {
    const up = await startNode({ id: 1, role: "leader" });
    const down = await refusingEndpoint();
    const cluster = router({ endpoints: [{ url: up.url }, { url: down }], healthCheckIntervalMs: 20, healthCheckTimeoutMs: 200, seed: 2 });
    cluster.start();
    cluster.start(); // idempotent: one timer
    for (let waited = 0; cluster.stats().checks < 6 && waited < 100; waited++) await sleep(10);
    assert.equal(cluster.stats().endpoints.find((endpoint) => endpoint.id === down)?.health, "unhealthy");
    assert.deepEqual(picks(() => cluster.pickForRead("stale"), 40), new Map([[up.url, 40]]));
    await cluster.close();
    const checks = cluster.stats().checks;
    await sleep(80);
    assert.equal(cluster.stats().checks, checks, "no check after close");
  });
});

describe("with a scripted status check and a fake clock", () => {
  test("an answer from an older term does not overrule a newer one; a leaderless answer of the current term clears the leader", async () => {
    const answers = new Map<string, StatusCheckResult>([
      [URLS[0]!, { ok: true, status: status(1, "follower", 5, URLS[2]!) }],
      [URLS[1]!, { ok: true, status: status(2, "leader", 4, URLS[1]!) }], // deposed, does not know yet
    ]);
    const { fetch } = scripted(answers);
    const cluster = router({ endpoints: URLS.map((url) => ({ url })), healthCheckIntervalMs: 0, fetchStatus: fetch, now: () => 0 });
    await cluster.checkNow();
    assert.equal(cluster.leader()?.url, URLS[2]);
    answers.set(URLS[0]!, { ok: true, status: status(1, "candidate", 5, null) });
    answers.delete(URLS[1]!);
    await cluster.checkNow();
    assert.equal(cluster.leader(), null);
    assert.equal(cluster.stats().leaderTerm, 5);
  });

  test("the leader is passed over while it is unhealthy, ejected or avoided, and taken again when it is fit", async () => {
    let nowMs = 0;
    const answers = new Map<string, StatusCheckResult>(URLS.map((url, index) => [url, { ok: true, status: status(index + 1, index === 0 ? "leader" : "follower", 3, URLS[0]!) }]));
    const { fetch } = scripted(answers);
    const cluster = router({ endpoints: URLS.map((url) => ({ url })), healthCheckIntervalMs: 0, fetchStatus: fetch, now: () => nowMs, seed: 3, balancer: { slowStartWindowMs: 0 } });
    await cluster.checkNow();
    assert.equal(cluster.pickForWrite()?.url, URLS[0]);
    assert.notEqual(cluster.pickForWrite(new Set([URLS[0]!]))?.url, URLS[0], "avoid wins over the leader");
    answers.set(URLS[0]!, { ok: false });
    await cluster.checkNow();
    await cluster.checkNow();
    assert.equal(cluster.leader()?.url, URLS[0], "still believed the leader (the followers say so)");
    assert.equal(picks(() => cluster.pickForWrite(), 100).has(URLS[0]!), false, "an unhealthy leader takes no writes");
    answers.set(URLS[0]!, { ok: true, status: status(1, "leader", 3, URLS[0]!) });
    await cluster.checkNow();
    await cluster.checkNow();
    assert.equal(cluster.pickForWrite()?.url, URLS[0]);
    for (let i = 0; i < 5; i++) cluster.reportFailure(URLS[0]!);
    assert.equal(cluster.leader(), null, "a failure on the leader forgets it");
    cluster.noteLeader(URLS[0]!);
    assert.equal(picks(() => cluster.pickForWrite(), 100).has(URLS[0]!), false, "ejected after 5 failures");
    nowMs = 30_000;
    assert.equal(cluster.pickForWrite()?.url, URLS[0], "back when the ejection ends");
  });

  test("noteLeader takes a URL in any spelling of an endpoint, and an unknown URL or null as no leader", () => {
    const cluster = router({ endpoints: URLS.map((url) => ({ url })), healthCheckIntervalMs: 0, fetchStatus: async () => ({ ok: true }), now: () => 0 });
    cluster.noteLeader("http://127.0.0.1:7002/");
    assert.equal(cluster.leader()?.url, URLS[1]);
    cluster.noteLeader("http://10.0.0.9:7002");
    assert.equal(cluster.leader(), null);
    cluster.noteLeader(URLS[2]!);
    cluster.noteLeader(null);
    assert.equal(cluster.leader(), null);
  });

  test("at most one check in flight per endpoint; a check that hangs fails at healthCheckTimeoutMs", async () => {
    const calls: string[] = [];
    const hanging = (url: string, signal: AbortSignal): Promise<StatusCheckResult> => {
      calls.push(url);
      return new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
    };
    const cluster = router({ endpoints: URLS.map((url) => ({ url })), healthCheckIntervalMs: 0, healthCheckTimeoutMs: 40, fetchStatus: hanging, now: () => 0 });
    const first = cluster.checkNow();
    await cluster.checkNow(); // every endpoint busy: asks nobody
    assert.equal(calls.length, 3);
    await first;
    assert.deepEqual([cluster.stats().checks, cluster.stats().checksFailed], [3, 3]);
    await cluster.checkNow();
    assert.equal(cluster.stats().endpoints.every((endpoint) => endpoint.health === "unhealthy"), true);
  });

  test("a hung check still times out when the garbage collector runs meanwhile (nodejs/node#57736)", { timeout: 10_000 }, async () => {
    // AbortSignal.any([closing, AbortSignal.timeout(ms)]) holds the timeout signal weakly in
    // Node 20: collected before it fires, the check never ended (a CI run hung here).
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const hanging = (_url: string, signal: AbortSignal): Promise<StatusCheckResult> => new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
    const cluster = router({ endpoints: URLS.map((url) => ({ url })), healthCheckIntervalMs: 0, healthCheckTimeoutMs: 40, fetchStatus: hanging, now: () => 0 });
    const round = cluster.checkNow();
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    const outcome = await within(round.then(() => "ended"), 2_000, () => "hung");
    assert.equal(outcome, "ended", "the checks' 40 ms timeout never fired");
    assert.deepEqual([cluster.stats().checks, cluster.stats().checksFailed], [3, 3]);
    await cluster.close();
  });

  test("close aborts the checks in flight and reports nothing more", async () => {
    let aborted = 0;
    const hanging = (_url: string, signal: AbortSignal): Promise<StatusCheckResult> =>
      new Promise((_resolve, reject) =>
        signal.addEventListener("abort", () => {
          aborted += 1;
          reject(signal.reason);
        }),
      );
    const cluster = router({ endpoints: URLS.map((url) => ({ url })), healthCheckIntervalMs: 0, healthCheckTimeoutMs: 60_000, fetchStatus: hanging, now: () => 0 });
    const round = cluster.checkNow();
    await cluster.close();
    await round;
    assert.equal(aborted, 3);
    assert.equal(cluster.stats().checks, 0);
  });

  test("update keeps the endpoints that stay, adds new ones and forgets a removed leader", async () => {
    const cluster = router({ endpoints: URLS.slice(0, 2).map((url) => ({ url })), healthCheckIntervalMs: 0, fetchStatus: async () => ({ ok: true }), now: () => 0 });
    for (let i = 0; i < 3; i++) cluster.reportSuccess(URLS[0]!);
    cluster.noteLeader(URLS[1]!);
    cluster.update([{ url: URLS[0]! }, { url: URLS[2]!, weight: 3 }]);
    assert.equal(cluster.leader(), null);
    const stats = cluster.stats();
    assert.deepEqual(stats.endpoints.map((endpoint) => [endpoint.id, endpoint.weight, endpoint.requests]), [[URLS[0], 1, 3], [URLS[2], 3, 0]]);
  });

  test("bad configuration is refused with InvalidInputError", () => {
    const fetchStatus = async (): Promise<StatusCheckResult> => ({ ok: true });
    assert.throws(() => new ClusterRouter({ endpoints: [], fetchStatus }), InvalidInputError);
    assert.throws(() => new ClusterRouter({ endpoints: [{ url: "127.0.0.1:7001" }], fetchStatus }), InvalidInputError);
    assert.throws(() => new ClusterRouter({ endpoints: [{ url: URLS[0]! }, { url: `${URLS[0]!}/` }], fetchStatus }), InvalidInputError);
    assert.throws(() => new ClusterRouter({ endpoints: [{ url: URLS[0]!, weight: 0 }], fetchStatus }), InvalidInputError);
    assert.throws(() => new ClusterRouter({ endpoints: [{ url: URLS[0]! }], healthCheckIntervalMs: -1, fetchStatus }), InvalidInputError);
  });
});

describe("following the membership, with scripted answers and a fake clock", () => {
  const voter = (id: number, http: string | null): MemberInfo => ({ id, peer: `127.0.0.1:${7100 + id}`, http, role: "voter" });

  /** A member-list fetcher answering from `views` (by URL; a missing URL fails), recording who was asked. */
  function scriptedMembers(views: Map<string, readonly MemberInfo[]>): { fetch: MembersFetcher; asked: string[] } {
    const asked: string[] = [];
    return {
      asked,
      fetch: async (url) => {
        asked.push(url);
        const members = views.get(url);
        if (members === undefined) throw new Error("connection refused");
        return { members, joint: false };
      },
    };
  }

  test("a member list routes to its voters: a seed known by its status id keeps its spelling, a new voter is reached at its advertised address, a removed node and learners are not routed to", async () => {
    const seeds = ["http://localhost:7001", "http://localhost:7002", "http://localhost:7003"];
    const answers = new Map<string, StatusCheckResult>(seeds.map((url, i) => [url, { ok: true, status: status(i + 1, i === 1 ? "leader" : "follower", 3, seeds[1]!) }]));
    const view = [voter(2, "http://127.0.0.1:7002"), voter(3, "http://127.0.0.1:7003"), voter(4, "http://127.0.0.1:7004"), { ...voter(5, "http://127.0.0.1:7005"), role: "learner" }];
    const members = scriptedMembers(new Map([[seeds[1]!, view]]));
    const cluster = router({ endpoints: seeds.map((url) => ({ url })), healthCheckIntervalMs: 0, fetchStatus: scripted(answers).fetch, fetchMembers: members.fetch, now: () => 0 });
    await cluster.checkNow();
    assert.equal(await cluster.refreshMembers(), true);
    assert.deepEqual(members.asked, [seeds[1]], "the leader is asked first");
    assert.deepEqual(cluster.endpoints().map((endpoint) => endpoint.url), [seeds[1], seeds[2], "http://127.0.0.1:7004"]);
    assert.equal(cluster.leader()?.url, seeds[1], "the leader is kept");
    assert.deepEqual([cluster.stats().membersRefreshes, cluster.stats().membersChanges], [1, 1]);
    // The same list again changes nothing.
    await cluster.refreshMembers();
    assert.equal(cluster.stats().membersChanges, 1);
  });

  test("a list with no reachable address changes nothing; when no endpoint answers, the seeds are asked", async () => {
    const views = new Map<string, readonly MemberInfo[]>([[URLS[0]!, [voter(7, null), voter(8, null)]]]);
    const members = scriptedMembers(views);
    const cluster = router({ endpoints: URLS.map((url) => ({ url })), healthCheckIntervalMs: 0, fetchStatus: async () => ({ ok: false }), fetchMembers: members.fetch, now: () => 0 });
    assert.equal(await cluster.refreshMembers(), true);
    assert.deepEqual(cluster.endpoints().map((endpoint) => endpoint.url), URLS, "never an empty list");
    // The cluster moved to a node the seeds do not name; then that node stops answering.
    views.set(URLS[0]!, [voter(9, "http://127.0.0.1:7009")]);
    await cluster.refreshMembers();
    assert.deepEqual(cluster.endpoints().map((endpoint) => endpoint.url), ["http://127.0.0.1:7009"]);
    views.set(URLS[2]!, [voter(3, URLS[2]!)]);
    views.delete(URLS[0]!);
    members.asked.length = 0;
    assert.equal(await cluster.refreshMembers(), true);
    assert.deepEqual(members.asked, ["http://127.0.0.1:7009", URLS[0], URLS[1], URLS[2]]);
    assert.deepEqual(cluster.endpoints().map((endpoint) => endpoint.url), [URLS[2]]);
    views.clear();
    assert.equal(await cluster.refreshMembers(), false);
    assert.deepEqual(cluster.endpoints().map((endpoint) => endpoint.url), [URLS[2]]);
    assert.equal(cluster.stats().membersRefreshesFailed, 1);
  });

  test("once started, a failed request and a leader listing other members each ask for the list, at most once a second; not before start, nor with membersIntervalMs 0", async () => {
    let nowMs = 0;
    const view = URLS.map((url, i) => voter(i + 1, url));
    const members = scriptedMembers(new Map(URLS.map((url) => [url, view])));
    const answers = new Map<string, StatusCheckResult>(URLS.map((url, i) => [url, { ok: true, status: status(i + 1, i === 0 ? "leader" : "follower", 3, URLS[0]!) }]));
    const options = { endpoints: URLS.map((url) => ({ url })), healthCheckIntervalMs: 0, fetchStatus: scripted(answers).fetch, fetchMembers: members.fetch, now: () => nowMs, membersIntervalMs: 3_600_000 };
    const cluster = router(options);
    cluster.reportFailure(URLS[1]!);
    assert.equal(members.asked.length, 0, "nothing before start");
    cluster.start();
    for (let i = 0; i < 50 && members.asked.length === 0; i++) await sleep(5);
    assert.equal(members.asked.length, 1, "a first list at start");
    nowMs = 5_000;
    cluster.reportFailure(URLS[1]!);
    cluster.reportFailure(URLS[2]!);
    await sleep(20);
    assert.equal(members.asked.length, 2, "one list for two failures");
    nowMs = 5_500;
    cluster.reportFailure(URLS[1]!);
    await sleep(20);
    assert.equal(members.asked.length, 2, "none within a second of the last");
    // The leader's status names a fourth member.
    nowMs = 10_000;
    answers.set(URLS[0]!, { ok: true, status: { ...status(1, "leader", 3, URLS[0]!), members: [...view, voter(4, "http://127.0.0.1:7004")] } });
    await cluster.checkNow();
    await sleep(20);
    assert.equal(members.asked.length, 3);
    const off = router({ ...options, membersIntervalMs: 0 });
    off.start();
    off.reportFailure(URLS[1]!);
    await sleep(20);
    assert.equal(members.asked.length, 3);
  });
});

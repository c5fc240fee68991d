// The Client against fake nodes (fake-node.test-util.ts) that share one store, as a cluster
// does: routing, retries and their budget, session lanes, the bounded queue, abort and
// timeout. The real-process test is src/runtime/server/exactly-once.test.ts.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, test } from "node:test";
import { Client, type ClientOptions } from "./client.js";
import { AbortedError, ClientClosedError, NoQuorumError, QueueFullError, TimeoutError } from "./errors.js";
import { fakeNodes, fakeState, refusingEndpoint, type FakeNode, type FakeNodeOptions, type SeenRequest } from "./fake-node.test-util.js";

const startNode = fakeNodes();

function client(nodes: readonly (FakeNode | string)[], options: Partial<ClientOptions> = {}): Client {
  const created = new Client({
    endpoints: nodes.map((node) => (typeof node === "string" ? node : node.url)),
    seed: 11,
    healthCheckIntervalMs: 25,
    ...options,
    retry: { backoffMsBase: 5, backoffMsMax: 20, ...options.retry },
  });
  after(() => created.close());
  return created;
}

/** A leader and two followers naming it, sharing one store. */
async function cluster(extra: Partial<FakeNodeOptions>[] = []): Promise<FakeNode[]> {
  const state = fakeState();
  const leader = await startNode({ id: 1, role: "leader", state, ...extra[0] });
  const followers = [];
  for (const id of [2, 3]) followers.push(await startNode({ id, role: "follower", leaderHttp: leader.url, state, ...extra[id - 1] }));
  return [leader, ...followers];
}

async function until(condition: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const puts = (node: FakeNode): SeenRequest[] => node.seen.filter((request) => request.method === "PUT");
const sessionOf = (request: SeenRequest): [string, string] => [String(request.headers["x-synod-session"]), String(request.headers["x-synod-sequence"])];

describe("routing", () => {
  test("writes go to the known leader; stale reads spread over the healthy nodes and avoid an unhealthy one", async () => {
    const nodes = await cluster();
    const [leader, a, b] = nodes as [FakeNode, FakeNode, FakeNode];
    const synod = client(nodes);
    await until(() => synod.stats().router.leader === leader.url, "the leader to be learned");
    for (let i = 0; i < 20; i++) await synod.put(`k${i}`, "v");
    assert.deepEqual([puts(leader).length, puts(a).length, puts(b).length], [20, 0, 0]);
    for (let i = 0; i < 300; i++) await synod.get("k1", { consistency: "stale" });
    for (const node of nodes) assert.ok(node.requests.get("GET")! > 50, `stale reads reach every node: ${nodes.map((n) => n.requests.get("GET"))}`);
    await b.close();
    await until(() => synod.stats().router.endpoints.find((endpoint) => endpoint.id === b.url)?.health === "unhealthy", "the closed node to fail its checks");
    const before = [leader.requests.get("GET")!, a.requests.get("GET")!];
    for (let i = 0; i < 100; i++) await synod.get("k1", { consistency: "stale" });
    assert.equal(leader.requests.get("GET")! + a.requests.get("GET")! - before[0]! - before[1]!, 100);
    assert.equal(synod.stats().retries, 0, "no read was sent to the unhealthy node");
  });

  test("linearizable reads go to the leader; the leader is re-learned when it moves, and a no_leader answer forgets it at once", async () => {
    const nodes = await cluster();
    const [one, two] = nodes as [FakeNode, FakeNode];
    const synod = client(nodes);
    await until(() => synod.stats().router.leader === one.url, "the first leader");
    await synod.put("k", "v");
    for (let i = 0; i < 10; i++) await synod.get("k");
    assert.equal(one.requests.get("GET"), 10);
    // Leadership moves to node 2 in term 3; every node says so.
    for (const node of nodes) node.options = { ...node.options, term: 3, role: node === two ? "leader" : "follower", leaderHttp: two.url };
    await until(() => synod.stats().router.leader === two.url, "the new leader");
    await synod.put("k", "w");
    assert.equal(puts(two).length, 1);
    // Node 2 loses its quorum: its no_leader answer makes the client forget it before any check.
    two.options = { ...two.options, failWith: { status: 503, code: "no_leader" } };
    await synod.put("k", "x");
    assert.equal(synod.stats().retries, 1, "the write went on to another node");
  });
});

describe("retries", () => {
  test("the retry budget stops retries when it is spent; the call then fails with its last error", async () => {
    const nodes = await cluster([{ failWith: { status: 503, code: "no_leader" } }, { failWith: { status: 503, code: "no_leader" } }, { failWith: { status: 503, code: "no_leader" } }]);
    const synod = client(nodes, { retry: { attemptsMax: 10, budgetPercent: 0, retriesPerSecondMin: 0, retryTokensMax: 2 }, healthCheckIntervalMs: 0 });
    await assert.rejects(synod.get("k"), NoQuorumError);
    await assert.rejects(synod.get("k"), NoQuorumError);
    const stats = synod.stats();
    assert.deepEqual([stats.retries, stats.retriesDenied], [2, 2], "two tokens, two retries; then each call's first retry is refused");
    assert.equal(nodes.reduce((sum, node) => sum + (node.requests.get("GET") ?? 0), 0), 4);
  });

  test("pauses between attempts are bounded by backoffMsMax", async () => {
    const nodes = await cluster([{ failWith: { status: 503, code: "no_leader" } }, { failWith: { status: 503, code: "no_leader" } }, { failWith: { status: 503, code: "no_leader" } }]);
    const synod = client(nodes, { retry: { attemptsMax: 8, backoffMsBase: 10, backoffMsMax: 30 }, healthCheckIntervalMs: 0 });
    const startMs = performance.now();
    await assert.rejects(synod.get("k"), NoQuorumError);
    const elapsedMs = performance.now() - startMs;
    assert.ok(elapsedMs < 7 * 30 + 300, `7 pauses of at most 30 ms took ${elapsedMs} ms`);
    assert.equal(synod.stats().retries, 7);
  });

  test("a write outside a session is not sent again once it may have arrived; in a session it is, and applies once", async () => {
    for (const sessions of [false, true]) {
      let broken = 0;
      const nodes = await cluster([{ hook: (request) => (request.method === "PUT" && broken++ === 0 ? "apply-then-destroy" : "pass") }]);
      const synod = client(nodes, { sessions });
      await until(() => synod.stats().router.leader === nodes[0]!.url, "the leader");
      if (!sessions) {
        await assert.rejects(synod.put("k", "v"), (error: unknown) => error instanceof TimeoutError && error.outcomeUnknown);
        assert.equal(nodes.flatMap(puts).length, 1, "no blind retry");
      } else {
        assert.equal((await synod.put("k", "v")).revision, 2);
        const sent = nodes.flatMap(puts);
        assert.equal(sent.length, 2, "sent again after the lost answer");
        assert.deepEqual(sessionOf(sent[0]!), sessionOf(sent[1]!), "the same session and sequence");
      }
      assert.equal(nodes[0]!.store.get("k")?.version, 1, "applied once");
    }
  });

  test("a refused connection is retried even for a write outside a session (nothing was sent)", async () => {
    const nodes = await cluster();
    const synod = client([await refusingEndpoint(), ...nodes], { sessions: false, healthCheckIntervalMs: 0, strategy: "round-robin" });
    for (let i = 0; i < 8; i++) await synod.put(`k${i}`, "v");
    assert.equal(nodes[0]!.state.applied, 8);
  });
});

describe("sessions", () => {
  test("each lane writes serially, sequences 1, 2, 3, ... per session, never two at once; lanes never outnumber concurrency", async () => {
    const inFlight = new Map<string, number>();
    let overlaps = 0;
    const track = {
      delayMs: 3,
      hook: (request: SeenRequest) => {
        const session = String(request.headers["x-synod-session"]);
        if (request.method === "PUT") {
          if ((inFlight.get(session) ?? 0) > 0) overlaps++;
          inFlight.set(session, (inFlight.get(session) ?? 0) + 1);
        }
        return "pass" as const;
      },
      onAnswer: (request: SeenRequest) => {
        if (request.method === "PUT") inFlight.set(String(request.headers["x-synod-session"]), (inFlight.get(String(request.headers["x-synod-session"])) ?? 1) - 1);
      },
    };
    const nodes = await cluster([track, track, track]);
    const synod = client(nodes, { concurrency: 4 });
    await until(() => synod.stats().router.leader === nodes[0]!.url, "the leader");
    await Promise.all(Array.from({ length: 60 }, (_, i) => synod.put(`k${i}`, "v")));
    assert.equal(overlaps, 0);
    const bySession = new Map<string, number[]>();
    for (const request of nodes.flatMap(puts)) {
      const [session, sequence] = sessionOf(request);
      bySession.set(session, [...(bySession.get(session) ?? []), Number(sequence)]);
    }
    assert.ok(bySession.size >= 1 && bySession.size <= 4, `${bySession.size} sessions`);
    for (const sequences of bySession.values()) assert.deepEqual(sequences, sequences.map((_, i) => i + 1));
    const stats = synod.stats();
    assert.ok(stats.lanes <= 4 && stats.sessionsOpened === bySession.size);
  });

  test("410 session_expired: a new session, and the same write again as its sequence 1", async () => {
    const nodes = await cluster();
    const synod = client(nodes, { concurrency: 1 });
    await until(() => synod.stats().router.leader === nodes[0]!.url, "the leader");
    await synod.put("a", "1");
    await synod.put("b", "2");
    nodes[0]!.state.sessions.clear(); // the cluster dropped the session
    assert.ok((await synod.put("c", "3")).revision > 0);
    const sent = nodes.flatMap(puts).map(sessionOf);
    assert.equal(sent.length, 4);
    assert.deepEqual(sent[3]![1], "1");
    assert.notEqual(sent[3]![0], sent[2]![0], "a new session");
    assert.deepEqual(sent[2], [sent[0]![0], "3"], "the refused write kept the old session's next number");
    assert.deepEqual([synod.stats().sessionsOpened, synod.stats().sessionsExpired], [2, 1]);
  });

  test("a write whose outcome stays unknown leaves its sequence behind: the lane's next write takes the next number", async () => {
    const nodes = await cluster([{ hook: (request) => (request.path === "/v1/kv/lost" ? "hang" : "pass") }, { hook: (request) => (request.path === "/v1/kv/lost" ? "hang" : "pass") }, { hook: (request) => (request.path === "/v1/kv/lost" ? "hang" : "pass") }]);
    const synod = client(nodes, { concurrency: 1, attemptTimeoutMs: 30 });
    await synod.put("first", "v");
    await assert.rejects(synod.put("lost", "v", { timeoutMs: 200 }), (error: unknown) => error instanceof TimeoutError && error.outcomeUnknown);
    await synod.put("after", "v");
    const sequencesOf = (path: string): string[] => nodes.flatMap(puts).filter((request) => request.path === path).map((request) => sessionOf(request)[1]);
    assert.ok(sequencesOf("/v1/kv/lost").length > 1, "the lost write was retried");
    assert.deepEqual(new Set(sequencesOf("/v1/kv/lost")), new Set(["2"]), "every retry of the lost write was sequence 2");
    // Every attempt at the next write is sequence 3 (a busy machine may time out its first
    // 30 ms attempt, and a session write is sent again with its sequence).
    assert.deepEqual(new Set(sequencesOf("/v1/kv/after")), new Set(["3"]));
  });

  test("cas builds on a transaction: null means absent; a failed compare is a result; values may be bytes", async () => {
    const nodes = await cluster();
    const synod = client(nodes);
    assert.equal((await synod.cas("lock", null, "me")).succeeded, true);
    assert.equal((await synod.cas("lock", null, "you")).succeeded, false);
    assert.equal((await synod.cas("lock", "someone", "you")).succeeded, false);
    assert.equal((await synod.cas("lock", new TextEncoder().encode("me"), "you")).succeeded, true);
    assert.equal(nodes[0]!.store.get("lock")?.value.toString(), "you");
    assert.equal((await synod.cas("lock", "you", new Uint8Array([0xff, 0]))).succeeded, true);
    assert.equal((await synod.cas("lock", new Uint8Array([0xff, 0]), "x")).succeeded, true, "a compare on bytes that are not UTF-8");
    assert.equal(nodes[0]!.store.get("lock")?.value.toString(), "x");
    const txns = nodes.flatMap((node) => node.seen).filter((request) => request.path === "/v1/txn");
    assert.ok(txns.every((request) => request.headers["x-synod-session"] !== undefined), "in a session");
    assert.deepEqual((await synod.range("lo")).kvs.map((kv) => kv.key), ["lock"]);
  });
});

describe("queue, abort and timeout", () => {
  test("calls beyond concurrency wait, at most queueMax of them; more reject at once; close rejects what waits and what runs", async () => {
    const node = await startNode({ id: 1, hook: () => "hang" });
    const synod = client([node], { concurrency: 1, queueMax: 2, sessions: false });
    const running = synod.get("a");
    const waiting = [synod.get("b"), synod.get("c")];
    await until(() => node.seen.length === 1, "the first call to arrive");
    await assert.rejects(synod.get("d"), QueueFullError);
    assert.deepEqual([synod.stats().inFlight, synod.stats().queued], [1, 2]);
    const writing = synod.put("e", "v"); // a fourth waiter is refused too
    await assert.rejects(writing, QueueFullError);
    const outcomes = Promise.allSettled([running, ...waiting]);
    await synod.close();
    const [ran, ...waited] = await outcomes;
    assert.ok(ran?.status === "rejected" && ran.reason instanceof ClientClosedError && !ran.reason.outcomeUnknown, "a read in flight: nothing to be unknown about");
    for (const outcome of waited) assert.ok(outcome.status === "rejected" && outcome.reason instanceof ClientClosedError);
    assert.equal(node.seen.length, 1, "the queued calls were never sent");
    await assert.rejects(synod.get("f"), ClientClosedError);
    await synod.close(); // idempotent
  });

  test("an abort ends a call while it waits in the queue, while it is in flight, and while it backs off", async () => {
    const hanging = await startNode({ id: 1, hook: () => "hang" });
    const synod = client([hanging], { concurrency: 1, sessions: false });
    const inFlight = new AbortController();
    const first = synod.put("a", "v", { signal: inFlight.signal });
    const queued = new AbortController();
    const second = synod.get("b", { signal: queued.signal });
    queued.abort(new Error("changed my mind"));
    await assert.rejects(second, (error: unknown) => error instanceof AbortedError && !error.outcomeUnknown && (error.cause as Error).message === "changed my mind");
    await until(() => hanging.seen.length === 1, "the write to arrive");
    inFlight.abort();
    await assert.rejects(first, (error: unknown) => error instanceof AbortedError && error.outcomeUnknown, "a write aborted in flight may have been applied");

    const electing = await startNode({ id: 2, failWith: { status: 503, code: "no_leader" } });
    const slow = client([electing], { retry: { backoffMsBase: 5_000, backoffMsMax: 5_000 }, seed: 3, healthCheckIntervalMs: 0 });
    const backingOff = new AbortController();
    const startMs = performance.now();
    const read = slow.get("k", { signal: backingOff.signal });
    await until(() => (electing.requests.get("GET") ?? 0) === 1, "the first attempt");
    backingOff.abort();
    await assert.rejects(read, AbortedError);
    assert.ok(performance.now() - startMs < 1_000, "the pause was cut short");
    const already = AbortSignal.abort();
    await assert.rejects(slow.get("k", { signal: already }), AbortedError);
    assert.equal(electing.requests.get("GET"), 1, "an aborted signal sends nothing");
  });

  test("the call's timeout counts from the call, queue included", async () => {
    const node = await startNode({ id: 1, hook: () => "hang" });
    const synod = client([node], { concurrency: 1, sessions: false, timeoutMs: 60_000, attemptTimeoutMs: 60_000 });
    const first = synod.get("a", { timeoutMs: 300 });
    const startMs = performance.now();
    await assert.rejects(synod.get("b", { timeoutMs: 100 }), (error: unknown) => error instanceof TimeoutError && error.endpoint === null && !error.outcomeUnknown);
    assert.ok(performance.now() - startMs < 250);
    await assert.rejects(first, (error: unknown) => error instanceof TimeoutError && error.status === null);
    assert.equal(node.seen.length, 1, "the queued call timed out before it was sent");
  });
});

/**
 * `GET /v1/dashboard/stream` against three real `synod node` processes: one stream shows
 * every node and one leader with its followers' replication, counts the requests and WAL
 * syncs a write causes, and, when the leader is killed, shows it unreachable and pushes the
 * election and the new leader as events.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SseParser, type SseEvent } from "../../client/sse.js";
import { CONSENSUS_UNDER_TEST, ProcessCluster, request, sleep } from "./process-cluster.test-util.js";

interface LinkFrame {
  readonly peer: number;
  readonly sentPerSecond: number;
  readonly receivedPerSecond: number;
}

interface MemberFrame {
  readonly id: number;
  readonly reachable: boolean;
  readonly links: readonly LinkFrame[] | null;
  readonly status: { readonly role: string; readonly leader: number | null; readonly term: number; readonly replication?: readonly { readonly id: number; readonly match: number; readonly state: string }[] } | null;
}

interface StateFrame {
  readonly node: number;
  readonly members: readonly MemberFrame[];
  readonly links: readonly LinkFrame[];
  readonly sample: { readonly requestsPerSecond: number; readonly fsyncs: number } | null;
}

/** One open stream, read as it arrives. */
class Stream {
  readonly events: SseEvent[] = [];
  private readonly abort = new AbortController();
  private wake: (() => void) | null = null;

  static async open(url: string): Promise<Stream> {
    const stream = new Stream();
    const answer = await fetch(url, { signal: stream.abort.signal });
    assert.equal(answer.status, 200);
    assert.match(answer.headers.get("content-type") ?? "", /^text\/event-stream/);
    void stream.read(answer.body as ReadableStream<Uint8Array>);
    return stream;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const parser = new SseParser(4 * 1024 * 1024);
    try {
      for await (const chunk of body) {
        this.events.push(...parser.push(chunk));
        this.wake?.();
      }
    } catch {
      // Closed by the test, or the node died.
    }
  }

  /** Waits until `found` returns something for an event received (from `fromIndex` on). */
  async until<T>(found: (event: SseEvent) => T | undefined, timeoutMs: number, fromIndex = 0): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let index = fromIndex;
    for (;;) {
      for (; index < this.events.length; index++) {
        const result = found(this.events[index] as SseEvent);
        if (result !== undefined) return result;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`not seen within ${timeoutMs} ms; last events: ${this.events.slice(-3).map((e) => `${e.event} ${e.data.slice(0, 300)}`).join("\n")}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, Math.min(left, 100));
      });
    }
  }

  close(): void {
    this.abort.abort();
  }
}

const state = (predicate: (frame: StateFrame) => boolean) => (event: SseEvent): StateFrame | undefined => {
  if (event.event !== "state") return undefined;
  const frame = JSON.parse(event.data) as StateFrame;
  return predicate(frame) ? frame : undefined;
};

const leadersOf = (frame: StateFrame): number[] => frame.members.filter((m) => m.status?.role === "leader").map((m) => m.id);

for (const consensus of CONSENSUS_UNDER_TEST) describe(`the dashboard's stream, on three real processes (${consensus})`, { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  const streams: Stream[] = [];
  before(async () => {
    cluster = await ProcessCluster.start({ size: 3, consensus });
    await cluster.waitForLeader();
  });
  after(async () => {
    for (const stream of streams) stream.close();
    await cluster.close();
  });

  test("starts with the node's history, then shows all three nodes, one leader, and the leader's followers replicating", async () => {
    const stream = await Stream.open(`${cluster.node(1).http}/v1/dashboard/stream`);
    streams.push(stream);
    const history = await stream.until((e) => (e.event === "history" ? (JSON.parse(e.data) as { node: number; intervalMs: number; events: { kind: string }[] }) : undefined), 2000);
    assert.equal(history.node, 1);
    assert.equal(history.intervalMs, 500);
    assert.ok(history.events.some((e) => e.kind === "started"), "the node's start is in its events");
    // A leader streams to a follower once it has heard back from it (probing before): on a
    // busy machine the first frames may come before that, so wait for a frame that shows it.
    const replicating = (f: StateFrame): boolean => (f.members.find((m) => m.status?.role === "leader")?.status?.replication ?? []).every((r) => r.state === "replicate" && r.match > 0);
    const frame = await stream.until(state((f) => f.members.length === 3 && f.members.every((m) => m.reachable) && leadersOf(f).length === 1 && replicating(f)), 10_000);
    const leader = frame.members.find((m) => m.status?.role === "leader") as MemberFrame;
    const replication = leader.status?.replication ?? [];
    assert.deepEqual(replication.map((r) => r.id), [1, 2, 3].filter((id) => id !== leader.id), "the leader lists each follower's progress");
    assert.ok(replication.every((r) => r.state === "replicate" && r.match > 0), JSON.stringify(replication));
    for (const member of frame.members) assert.equal(member.status?.leader, leader.id, `node ${member.id} knows the leader`);
    assert.deepEqual(frame.links.map((l) => l.peer).sort(), [2, 3], "node 1's two links");
  });

  test("writes show as requests per second and WAL syncs in the samples", async () => {
    const stream = streams[0] as Stream;
    const from = stream.events.length;
    for (let i = 0; i < 20; i++) assert.equal((await request("PUT", `${cluster.node(1).http}/v1/kv/dash-${i}`, "v")).status, 200);
    const frame = await stream.until(state((f) => (f.sample?.requestsPerSecond ?? 0) > 0 && (f.sample?.fsyncs ?? 0) > 0), 3000, from);
    assert.ok(frame.links.some((l) => l.sentPerSecond > 0), "messages flow on the links");
  });

  test("every member's links show messages per second, the other members' from the counters in their status", async () => {
    const stream = streams[0] as Stream;
    const leader = await cluster.waitForLeader();
    const writes = (async () => {
      for (let i = 0; i < 40; i++) assert.equal((await request("PUT", `${cluster.node(1).http}/v1/kv/links-${i}`, "v")).status, 200);
    })();
    // Each follower exchanges appends and their answers with the leader, and the leader with both.
    const flowing = (m: MemberFrame, peer: number): boolean => (m.links ?? []).some((l) => l.peer === peer && l.sentPerSecond > 0 && l.receivedPerSecond > 0);
    const frame = await stream.until(state((f) => f.members.length === 3 && f.members.every((m) => (m.id === leader ? [1, 2, 3].filter((id) => id !== leader).every((peer) => flowing(m, peer)) : flowing(m, leader)))), 5000, stream.events.length);
    await writes;
    for (const member of frame.members) {
      assert.deepEqual((member.links ?? []).map((l) => l.peer), [1, 2, 3].filter((id) => id !== member.id), `node ${member.id} shows its two links`);
    }
    assert.deepEqual(frame.members.find((m) => m.id === 1)?.links, frame.links, "the streaming node's own links are those of its transport");
    // A member's counters are in its public status, for anyone to turn into rates.
    // Two followers exchange nothing (Raft), so only the link to the leader must have carried messages.
    const otherId = frame.members.find((m) => m.id !== 1)?.id ?? 2;
    const other = await request("GET", `${cluster.node(otherId).http}/v1/status`);
    const counters = other.body["links"] as { peer: number; framesSent: number; framesReceived: number; framesDropped: number; connected: boolean }[];
    assert.equal(counters.length, 2);
    assert.ok(counters.every((c) => c.framesReceived >= 0 && c.connected), JSON.stringify(counters));
    const toLeader = otherId === leader ? counters : counters.filter((c) => c.peer === leader);
    assert.ok(toLeader.length > 0 && toLeader.every((c) => c.framesSent > 0 && c.framesReceived > 0), `node ${otherId}'s links with the leader (${leader}) carried messages: ${JSON.stringify(counters)}`);
    process.stdout.write(`# links: ${frame.members.map((m) => `${m.id}: ${(m.links ?? []).map((l) => `→${l.peer} ${l.sentPerSecond}/${l.receivedPerSecond}`).join(" ")}`).join("; ")}\n`);
  });

  test("a killed leader shows unreachable within a second or two, and the new leader arrives as an event", async () => {
    const leader = await cluster.waitForLeader();
    const watcher = [1, 2, 3].find((id) => id !== leader) as number;
    const stream = await Stream.open(`${cluster.node(watcher).http}/v1/dashboard/stream`);
    streams.push(stream);
    await stream.until(state((f) => f.members.every((m) => m.reachable)), 3000);
    const from = stream.events.length;
    const killedAt = Date.now();
    await cluster.kill(leader);
    try {
      await stream.until(state((f) => f.members.find((m) => m.id === leader)?.reachable === false), 3000, from);
      const newLeader = await stream.until((e) => {
        if (e.event !== "event") return undefined;
        const event = JSON.parse(e.data) as { kind: string; fields: { leader?: number } };
        return event.kind === "leader" && event.fields.leader !== leader ? event.fields.leader : undefined;
      }, 5000, from);
      assert.ok(newLeader !== undefined && newLeader !== leader);
      assert.ok(Date.now() - killedAt < 5000);
    } finally {
      cluster.startNode(leader);
      // The tests after this one ask node 1, which may be the one restarted: wait until it serves.
      for (let tries = 0; tries < 100 && (await request("GET", `${cluster.node(leader).http}/healthz`).catch(() => null))?.status !== 200; tries++) await sleep(100);
    }
  });

  test("fault injection is refused (409) on a node started without --allow-fault-injection, kill and restart on one not started by synod cluster; bad bodies are 400", async () => {
    const url = cluster.node(1).http;
    const faults = await request("POST", `${url}/v1/debug/faults`, JSON.stringify({ isolate: true, durationMs: 1000 }));
    assert.deepEqual([faults.status, faults.body["error"]], [409, "fault_injection_disabled"]);
    assert.match(String(faults.body["message"]), /--allow-fault-injection/);
    assert.deepEqual((await request("GET", `${url}/v1/debug/faults`)).body, { allowed: false, faults: null });
    const kill = await request("POST", `${url}/v1/debug/cluster`, JSON.stringify({ node: 2, action: "kill" }));
    assert.deepEqual([kill.status, kill.body["error"]], [409, "not_local_cluster"]);
    for (const body of ["", "{", '{"isolate":true}', '{"dropRate":2,"durationMs":5}', '{"isolate":true,"dropRate":0.5,"durationMs":5}', '{"isolate":true,"durationMs":5,"extra":1}']) {
      assert.equal((await request("POST", `${url}/v1/debug/faults`, body)).status, 400, body);
    }
    assert.equal((await request("POST", `${url}/v1/debug/cluster`, '{"node":2,"action":"explode"}')).status, 400);
  });

  test("a bad query parameter is a 400, and HEAD answers the stream's headers alone", async () => {
    const bad = await request("GET", `${cluster.node(1).http}/v1/dashboard/stream?x=1`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body["error"], "invalid_input");
    const head = await fetch(`${cluster.node(1).http}/v1/dashboard/stream`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.match(head.headers.get("content-type") ?? "", /^text\/event-stream/);
  });
});

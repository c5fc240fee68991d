/**
 * `GET /v1/watch` in-process: the HTTP layer and a real WatchHub over a real KvStore (writes
 * applied at once, without consensus), read by the SDK's SSE parser over real sockets.
 * What a client relies on: every change once, in revision order, a transaction's changes in
 * one message; resuming from any id it was sent misses and repeats nothing; compaction is
 * said, never a silent gap; a client that does not read is cut, saying where to resume.
 */
import assert from "node:assert/strict";
import type { IncomingMessage, Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { request as undiciRequest } from "undici";
import { Client } from "../../client/client.js";
import { CompactedError } from "../../client/errors.js";
import { SseParser, type SseEvent } from "../../client/sse.js";
import { NotMemberError } from "../../core/common/errors.js";
import type { KvCommand } from "../../core/kv/command.js";
import { KvStore } from "../../core/kv/store.js";
import { ALL_REACHED, fakeService, READY, type Fault } from "./fake-service.test-util.js";
import { createHttpApi, type KvService } from "./http-api.js";
import { request, sleep } from "./process-cluster.test-util.js";
import { parseEventId } from "./watch.js";

const PROGRESS_MS = 200;
const QUEUED_BYTES_MAX = 256 * 1024;
const WATCHERS_MAX = 6;

interface Change {
  readonly type: "put" | "delete";
  readonly key: string;
  readonly value?: string;
  readonly revision: number;
  readonly createRevision?: number;
  readonly version?: number;
  readonly prevValue?: string;
}

/** An open stream: the events read so far, and ways to wait for more. */
class Stream {
  readonly events: SseEvent[] = [];
  private ended = false;
  private wake: (() => void) | null = null;
  private readonly controller = new AbortController();

  static async open(url: string, headers: Record<string, string> = {}, options: { readonly read?: boolean } = {}): Promise<Stream | { status: number; body: Record<string, unknown> }> {
    const stream = new Stream();
    const response = await undiciRequest(url, { headers, signal: stream.controller.signal });
    if (response.statusCode !== 200) return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> };
    stream.body = response.body;
    if (options.read !== false) stream.resume();
    return stream;
  }

  private body: AsyncIterable<Buffer> | null = null;
  private reading = false;

  /** Starts (or goes on) reading the body. */
  resume(): void {
    if (this.reading || this.body === null) return;
    this.reading = true;
    const parser = new SseParser(16 * 1024 * 1024);
    void (async () => {
      try {
        for await (const chunk of this.body as AsyncIterable<Buffer>) {
          this.events.push(...parser.push(chunk));
          this.wake?.();
        }
      } catch {
        // aborted by close()
      }
      this.ended = true;
      this.wake?.();
    })();
  }

  /** Waits until `done(events)` holds, at most `timeoutMs`. */
  async until(what: string, done: (events: readonly SseEvent[]) => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.events)) {
      if (this.ended) throw new Error(`${what}: the stream ended; events: ${JSON.stringify(this.events.slice(-5))}`);
      if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; events: ${JSON.stringify(this.events.slice(-5))}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** The changes of the change messages, in order. */
  changes(): Change[] {
    return this.events.filter((event) => event.event === "message").flatMap((event) => (JSON.parse(event.data) as { events: Change[] }).events);
  }

  close(): void {
    this.controller.abort();
  }
}

function isStream(opened: Stream | { status: number }): opened is Stream {
  return opened instanceof Stream;
}

async function openStream(url: string, headers: Record<string, string> = {}, options: { readonly read?: boolean } = {}): Promise<Stream> {
  const opened = await Stream.open(url, headers, options);
  if (!isStream(opened)) throw new Error(`the watch was refused: ${opened.status} ${JSON.stringify(opened.body)}`);
  return opened;
}

describe("GET /v1/watch in-process", () => {
  let server: Server;
  let url: string;
  let store: KvStore;
  let service: KvService;
  const writes: KvCommand[] = [];
  const fault: Fault = { refuse: null, quorum: ALL_REACHED, readiness: READY };
  const streams: Stream[] = [];
  const watch = async (query: string, headers: Record<string, string> = {}, options: { readonly read?: boolean } = {}): Promise<Stream> => {
    const stream = await openStream(`${url}/v1/watch?${query}`, headers, options);
    streams.push(stream);
    return stream;
  };
  const put = async (key: string, value: string): Promise<number> => (await request("PUT", `${url}/v1/kv/${encodeURIComponent(key)}`, value)).body["revision"] as number;
  const txn = async (body: object): Promise<number> => (await request("POST", `${url}/v1/txn`, JSON.stringify(body), { "content-type": "application/json" })).body["revision"] as number;

  before(async () => {
    store = new KvStore();
    service = fakeService(store, fault, writes, { progressIntervalMs: PROGRESS_MS, queuedBytesMax: QUEUED_BYTES_MAX, watchersMax: WATCHERS_MAX, tailBytesMax: 2 * 1024 * 1024 });
    server = createHttpApi(service, { requestBodyBytesMax: 4 * 1024 * 1024 });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const stream of streams) stream.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test("from now: each change once, in revision order, a transaction's changes in one message whose id is the revision; progress when idle", async () => {
    await put("other", "before");
    const now = store.currentRevision;
    const stream = await watch("prefix=w/");
    await stream.until("created", (events) => events.length >= 1);
    assert.deepEqual(stream.events[0], { event: "created", id: String(now), data: JSON.stringify({ revision: now, startRevision: now + 1, compactRevision: 0, progressMs: PROGRESS_MS }) });
    const a = await put("w/a", "1");
    const bc = await txn({ success: [{ op: "put", key: "w/c", value: "3" }, { op: "put", key: "w/b", value: "2" }, { op: "put", key: "x/not-watched", value: "x" }] });
    await put("x/other", "x");
    const deleted = (await request("DELETE", `${url}/v1/kv/w/a`)).body["revision"] as number;
    await stream.until("three messages", (events) => events.filter((event) => event.event === "message").length >= 3);
    const messages = stream.events.filter((event) => event.event === "message");
    assert.deepEqual(
      messages.map((event) => event.id),
      [String(a), String(bc), String(deleted)],
    );
    assert.deepEqual(JSON.parse(messages[1]?.data ?? ""), {
      revision: bc,
      events: [
        { type: "put", key: "w/b", value: "2", revision: bc, createRevision: bc, version: 1 },
        { type: "put", key: "w/c", value: "3", revision: bc, createRevision: bc, version: 1 },
      ],
    }, "the revision whole, in key order");
    assert.deepEqual(JSON.parse(messages[2]?.data ?? ""), { revision: deleted, events: [{ type: "delete", key: "w/a", revision: deleted }] });
    await stream.until("a progress event", (events) => events.some((event) => event.event === "progress"), PROGRESS_MS * 10);
    const progress = stream.events.find((event) => event.event === "progress");
    assert.deepEqual([progress?.id, JSON.parse(progress?.data ?? "{}")], [String(store.currentRevision), { revision: store.currentRevision }], "everything up to the store's revision was seen");
    stream.close();
  });

  test("a lease's revoke deletes its keys as one revision: one message with every delete", async () => {
    const lease = (await request("POST", `${url}/v1/leases`, JSON.stringify({ ttlSeconds: 60 }))).body["id"] as number;
    await request("PUT", `${url}/v1/kv/lease/b?lease=${lease}`, "2");
    await request("PUT", `${url}/v1/kv/lease/a?lease=${lease}`, "1");
    const stream = await watch("prefix=lease/");
    await stream.until("created", (events) => events.length >= 1);
    const revoked = await request("DELETE", `${url}/v1/leases/${lease}`);
    assert.equal(revoked.body["deleted"], 2);
    await stream.until("the revoke", (events) => events.some((event) => event.event === "message"));
    const message = stream.events.find((event) => event.event === "message");
    assert.equal(message?.id, String(revoked.body["revision"]));
    assert.deepEqual((JSON.parse(message?.data ?? "") as { events: Change[] }).events.map((event) => [event.type, event.key, event.revision]), [
      ["delete", "lease/a", revoked.body["revision"]],
      ["delete", "lease/b", revoked.body["revision"]],
    ]);
  });

  test("?linearizable starts once the node has applied a read index: \"now\" is after it, not when the request came", async () => {
    let release = (): void => undefined;
    fault.linearizableGate = new Promise<void>((resolve) => (release = resolve));
    try {
      const opening = watch("key=lin&linearizable");
      await sleep(100);
      const during = await put("lin", "written while the read index was not yet applied");
      release();
      const stream = await opening;
      await stream.until("created", (events) => events.length >= 1);
      assert.equal((JSON.parse(stream.events[0]?.data ?? "{}") as { startRevision: number }).startRevision, during + 1, "the write before the barrier is not part of the stream");
      const after = await put("lin", "after");
      await stream.until("the write after", (events) => events.some((event) => event.event === "message"));
      assert.deepEqual(
        stream.changes().map((change) => change.revision),
        [after],
      );
      stream.close();
    } finally {
      fault.linearizableGate = null;
    }
  });

  test("from a past revision, with previous values; Last-Event-ID resumes after it; R:n skips n changes of revision R", async () => {
    const first = await put("r/k", "v1");
    const second = await put("r/k", "v2");
    await put("r/z", "zz");
    const bulk = (await request("DELETE", `${url}/v1/kv/r/?prefix`)).body["revision"] as number;
    const replay = await watch(`prefix=r/&fromRevision=${first}&prevValue`);
    await replay.until("four changes", (events) => events.filter((event) => event.event === "message").length >= 3);
    assert.deepEqual(replay.changes(), [
      { type: "put", key: "r/k", value: "v1", revision: first, createRevision: first, version: 1 },
      { type: "put", key: "r/k", value: "v2", revision: second, createRevision: first, version: 2, prevValue: "v1" },
      { type: "put", key: "r/z", value: "zz", revision: second + 1, createRevision: second + 1, version: 1 },
      { type: "delete", key: "r/k", revision: bulk, prevValue: "v2" },
      { type: "delete", key: "r/z", revision: bulk, prevValue: "zz" },
    ]);
    const resumed = await watch(`prefix=r/&fromRevision=${first}`, { "last-event-id": String(second) });
    await resumed.until("the rest", (events) => events.filter((event) => event.event === "message").length >= 2);
    assert.deepEqual(
      resumed.changes().map((change) => `${change.type} ${change.key}@${change.revision}`),
      [`put r/z@${second + 1}`, `delete r/k@${bulk}`, `delete r/z@${bulk}`],
      "Last-Event-ID wins over fromRevision",
    );
    const midway = await watch("prefix=r/", { "last-event-id": `${bulk}:1` });
    await midway.until("the second delete", (events) => events.some((event) => event.event === "message"));
    assert.deepEqual(
      midway.changes().map((change) => change.key),
      ["r/z"],
    );
    assert.equal(midway.events.find((event) => event.event === "message")?.id, String(bulk));
    for (const stream of [replay, resumed, midway]) stream.close();
  });

  test("a revision too large for one message comes in parts; resuming from any part's id misses and repeats nothing", async () => {
    const value = "v".repeat(12 * 1024);
    const keys = Array.from({ length: 120 }, (_, i) => `big/${String(i).padStart(3, "0")}`);
    const start = store.currentRevision + 1;
    const stream = await watch(`prefix=big/&fromRevision=${start}`);
    const revision = await txn({ success: keys.map((key) => ({ op: "put", key, value })) });
    await stream.until("the whole revision", (events) => events.some((event) => event.event === "message" && event.id === String(revision)));
    const parts = stream.events.filter((event) => event.event === "message");
    assert.ok(parts.length >= 2, `split into ${parts.length} messages`);
    assert.deepEqual(
      stream.changes().map((change) => change.key),
      keys,
    );
    for (const part of parts.slice(0, -1)) {
      assert.match(part.id ?? "", new RegExp(`^${revision}:\\d+$`));
      const resumed = await watch(`prefix=big/`, { "last-event-id": part.id ?? "" });
      await resumed.until("the rest of the revision", (events) => events.some((event) => event.id === String(revision)));
      const sentBefore = parseEventId(part.id ?? "")?.skip ?? 0;
      assert.deepEqual(
        resumed.changes().map((change) => change.key),
        keys.slice(sentBefore),
        `from ${part.id}`,
      );
      resumed.close();
    }
    stream.close();
  });

  test("a watch from below the compaction point is 410 naming it; one that falls behind a compaction is canceled with compacted, never left with a gap (etcd-io/etcd#17529)", async () => {
    const from = store.currentRevision + 1;
    const value = "x".repeat(64 * 1024);
    for (let i = 0; i < 300; i++) await put(`lag/${i % 10}`, value);
    // A client that does not read: its watcher, catching up from history, waits for the socket.
    const lagging = await watch(`prefix=lag/&fromRevision=${from}`, {}, { read: false });
    await sleep(300);
    const compactTo = store.currentRevision - 5;
    assert.equal((await request("POST", `${url}/v1/compact`, JSON.stringify({ revision: compactTo }))).status, 200);
    const refused = await Stream.open(`${url}/v1/watch?prefix=lag/&fromRevision=${from}`);
    assert.ok(!isStream(refused));
    assert.deepEqual([refused.status, refused.body["error"], refused.body["compactRevision"]], [410, "compacted", compactTo]);
    const byId = await Stream.open(`${url}/v1/watch?prefix=lag/`, { "last-event-id": String(from) });
    assert.ok(!isStream(byId) && byId.status === 410, "a resume below the point too");
    lagging.resume();
    await lagging.until("canceled", (events) => events.some((event) => event.event === "canceled"), 15_000);
    const canceled = JSON.parse(lagging.events.find((event) => event.event === "canceled")?.data ?? "{}") as Record<string, unknown>;
    assert.deepEqual([canceled["error"], canceled["compactRevision"]], ["compacted", compactTo]);
    const revisions = lagging.changes().map((change) => change.revision);
    assert.deepEqual(
      revisions,
      Array.from({ length: revisions.length }, (_, i) => from + i),
      "what came before the cancel has no gap",
    );
    assert.ok((revisions.at(-1) ?? 0) < compactTo, "and stops before the compacted history");
    lagging.close();
  });

  test("a client that stops reading an up-to-date watch is cut past the bound, told where to resume; resuming from there misses and repeats nothing", async () => {
    const from = store.currentRevision + 1;
    const slow = await watch(`prefix=slow/&fromRevision=${from}`, {}, { read: false });
    await sleep(100);
    const value = "s".repeat(32 * 1024);
    const written: number[] = [];
    const cutBefore = service.watches.slowWatchersCut;
    // Until the kernel's socket buffers are full and the node's queue passes the bound.
    for (let i = 0; i < 3000 && service.watches.slowWatchersCut === cutBefore; i++) written.push(await put(`slow/${i}`, value));
    assert.equal(service.watches.slowWatchersCut, cutBefore + 1, "cut");
    slow.resume();
    await slow.until("canceled", (events) => events.some((event) => event.event === "canceled"), 15_000);
    const canceled = JSON.parse(slow.events.find((event) => event.event === "canceled")?.data ?? "{}") as Record<string, unknown>;
    assert.equal(canceled["error"], "slow_watcher");
    const seen = slow.changes().map((change) => change.revision);
    assert.equal(String(canceled["lastEventId"]), slow.events.filter((event) => event.id !== null).at(-1)?.id, "the last id it was sent");
    const resumed = await watch("prefix=slow/", { "last-event-id": String(canceled["lastEventId"]) });
    await resumed.until("the rest", (events) => events.some((event) => event.id === String(written.at(-1))));
    assert.deepEqual([...seen, ...resumed.changes().map((change) => change.revision)], written);
    resumed.close();
  });

  test("a removed node refuses a watch 503 not_member and cancels open ones; bad requests are 400; past watchersMax, 503 overloaded", async () => {
    const open = await watch("key=anything");
    try {
      fault.refuse = new NotMemberError(null);
      const refused = await Stream.open(`${url}/v1/watch?key=k`);
      assert.ok(!isStream(refused));
      assert.deepEqual([refused.status, refused.body["error"]], [503, "not_member"]);
      await open.until("canceled", (events) => events.some((event) => event.event === "canceled"), PROGRESS_MS * 10);
      assert.equal((JSON.parse(open.events.at(-1)?.data ?? "{}") as Record<string, unknown>)["error"], "not_member");
    } finally {
      fault.refuse = null;
    }
    for (const [query, headers, pattern] of [
      ["", {}, /names \?key=K or \?prefix=P/],
      ["key=a&prefix=b", {}, /one of the two/],
      ["key=", {}, /\?key is empty/],
      ["key=a&fromRevision=0", {}, /fromRevision must be an integer from 1/],
      ["key=a&prevValue=maybe", {}, /prevValue is a flag/],
      ["key=a", { "last-event-id": "seven" }, /Last-Event-ID must be an id this stream sent/],
      ["key=a", { "last-event-id": "7:0" }, /Last-Event-ID/],
    ] as const) {
      const answer = await Stream.open(`${url}/v1/watch?${query}`, headers);
      assert.ok(!isStream(answer));
      assert.deepEqual([answer.status, answer.body["error"]], [400, "invalid_input"], query);
      assert.match(String(answer.body["message"]), pattern);
    }
    const many = [];
    for (let i = 0; i <= WATCHERS_MAX; i++) many.push(await Stream.open(`${url}/v1/watch?key=many`));
    const over = many.find((one) => !isStream(one));
    assert.ok(over !== undefined && !isStream(over), "the bound is reached");
    assert.deepEqual([over.status, over.body["error"]], [503, "overloaded"]);
    for (const one of many) if (isStream(one)) one.close();
  });
});

describe("the SDK's watch against a node in-process", () => {
  let server: Server;
  let url: string;
  let store: KvStore;
  let client: Client;
  const fault: Fault = { refuse: null, quorum: ALL_REACHED, readiness: READY };
  const put = async (key: string, value: string): Promise<number> => (await request("PUT", `${url}/v1/kv/${encodeURIComponent(key)}`, value)).body["revision"] as number;
  /** The connections of watch streams, to break them as a failing node would. */
  const watchSockets = new Set<Socket>();

  before(async () => {
    store = new KvStore();
    const service = fakeService(store, fault, [], { progressIntervalMs: PROGRESS_MS, queuedBytesMax: QUEUED_BYTES_MAX, watchersMax: 100, tailBytesMax: 2 * 1024 * 1024 });
    server = createHttpApi(service, { requestBodyBytesMax: 4 * 1024 * 1024 });
    server.on("request", (incoming: IncomingMessage) => {
      if (incoming.url?.startsWith("/v1/watch") === true) watchSockets.add(incoming.socket);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    client = new Client({ endpoints: [url], healthCheckIntervalMs: 0, membersIntervalMs: 0, retry: { backoffMsBase: 5, backoffMsMax: 50 } });
  });
  after(async () => {
    await client.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test("every change once, in order, while the node drops every connection again and again; revision follows", async () => {
    const watch = client.watch("drop/", { prefix: true, fromRevision: store.currentRevision + 1 });
    const seen: number[] = [];
    const reading = (async () => {
      for await (const event of watch) {
        seen.push(event.revision);
        if (seen.length === 200) break;
      }
    })();
    const written: number[] = [];
    for (let i = 0; i < 200; i++) {
      written.push(await put(`drop/${i % 7}`, `v${i}`));
      if (i % 20 === 10) for (const socket of watchSockets) socket.destroy();
    }
    await reading;
    assert.deepEqual(seen, written);
    assert.ok(watch.stats.reconnects >= 5, `reconnected ${watch.stats.reconnects} times`);
    assert.equal(watch.stats.duplicatesDropped, 0);
    assert.equal(watch.revision, written.at(-1));
  });

  test("a consumer that stops reading is cut by the node and resumed by the SDK: nothing missed, nothing twice", async () => {
    const watch = client.watch("lazy/", { prefix: true });
    const iterator = watch[Symbol.asyncIterator]();
    const first = await putThenNext(put, iterator, "lazy/0");
    const written = [first];
    const value = "z".repeat(64 * 1024);
    for (let i = 1; i < 400; i++) written.push(await put(`lazy/${i % 13}`, value));
    const seen = [first];
    while (seen.length < written.length) {
      const next = await iterator.next();
      assert.equal(next.done, false);
      seen.push((next.value as { revision: number }).revision);
    }
    assert.deepEqual(seen, written);
    assert.ok(watch.stats.reconnects >= 1, "the node cut it at least once");
    watch.close();
  });

  test("compaction past where a watch stands ends it with CompactedError; close and a signal end it quietly", async () => {
    const start = store.currentRevision + 1;
    await put("gone/a", "1");
    await put("gone/a", "2");
    assert.equal((await request("POST", `${url}/v1/compact`, JSON.stringify({ revision: store.currentRevision }))).status, 200);
    const late = client.watch("gone/", { prefix: true, fromRevision: start });
    await assert.rejects(late.next(), (error: unknown) => error instanceof CompactedError && error.compactRevision === store.currentRevision);
    const closed = client.watch("quiet");
    setTimeout(() => closed.close(), 50);
    assert.deepEqual(await closed.next(), { done: true, value: undefined });
    const controller = new AbortController();
    const signalled = client.watch("quiet", { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const events: unknown[] = [];
    for await (const event of signalled) events.push(event);
    assert.deepEqual(events, []);
    assert.throws(() => client.watch(""), /must not be empty/);
    assert.throws(() => client.watch("k", { fromRevision: 0 }), /fromRevision must be a positive integer/);
  });

  test("reads at a revision and compact through the SDK", async () => {
    const first = (await client.put("sdk-hist", "one")).revision;
    await client.put("sdk-hist", "two");
    assert.equal(new TextDecoder().decode((await client.get("sdk-hist", { revision: first }))?.value), "one");
    assert.deepEqual(
      (await client.range("sdk-", { revision: first })).kvs.map((kv) => new TextDecoder().decode(kv.value)),
      ["one"],
    );
    const compacted = await client.compact(first + 1);
    assert.equal(compacted.compactRevision, first + 1);
    await assert.rejects(client.get("sdk-hist", { revision: first }), (error: unknown) => error instanceof CompactedError && error.compactRevision === first + 1);
    await assert.rejects(client.compact(store.currentRevision + 10), /future_revision/);
  });
});

/** Writes `key` and takes the first change of `iterator`: the watch is established before the flood. */
async function putThenNext(put: (key: string, value: string) => Promise<number>, iterator: AsyncIterator<{ revision: number }>, key: string): Promise<number> {
  const next = iterator.next();
  await sleep(100);
  const revision = await put(key, "first");
  const result = await next;
  assert.equal(result.value?.revision, revision);
  return revision;
}

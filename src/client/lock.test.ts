/**
 * `client.lock`: granted in the order asked, one holder at a time, each with a fencing
 * token above every earlier one; a waiter watches only the contender before it; a waiter
 * that gives up leaves the queue. Against the HTTP API in-process over a real KvStore.
 */
import assert from "node:assert/strict";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { KvCommand } from "../core/kv/command.js";
import { KvStore } from "../core/kv/store.js";
import { ALL_REACHED, fakeService, READY, type Fault } from "../runtime/server/fake-service.test-util.js";
import { createHttpApi, type KvService } from "../runtime/server/http-api.js";
import { RequestTimeoutError } from "../core/replica/errors.js";
import { Client } from "./client.js";
import type { Lock } from "./lock.js";

describe("client.lock", () => {
  let server: Server;
  let url: string;
  let store: KvStore;
  const writes: KvCommand[] = [];
  const fault: Fault = { refuse: null, quorum: ALL_REACHED, readiness: READY };
  const clients: Client[] = [];
  const client = (): Client => {
    const made = new Client({ endpoints: [url], healthCheckIntervalMs: 0 });
    clients.push(made);
    return made;
  };

  before(async () => {
    store = new KvStore();
    server = createHttpApi(fakeService(store, fault, writes), { requestBodyBytesMax: 1024 * 1024 });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const made of clients) await made.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test("three contenders hold it one at a time, in the order they asked, with growing fencing tokens", async () => {
    const order: string[] = [];
    const holding = new Set<string>();
    const contend = async (who: string, delayMs: number): Promise<number> => {
      await sleep(delayMs);
      const lock = await client().lock("locks/db", { ttlSeconds: 5 });
      assert.equal(holding.size, 0, `${who} got the lock while ${[...holding].join(",")} held it`);
      holding.add(who);
      order.push(who);
      await sleep(150);
      holding.delete(who);
      await lock.release();
      return lock.token;
    };
    const tokens = await Promise.all([contend("a", 0), contend("b", 60), contend("c", 120)]);
    assert.deepEqual(order, ["a", "b", "c"]);
    assert.ok(tokens[0] < tokens[1] && tokens[1] < tokens[2], `tokens ${tokens.join(", ")}`);
    assert.deepEqual(store.range("locks/db/", 10), [], "every contender's key is gone");
  });

  test("a waiter watches only the contender just before it: a release wakes one waiter", async () => {
    const first = await client().lock("locks/herd", { ttlSeconds: 5 });
    const waiters = [client().lock("locks/herd", { ttlSeconds: 5 }), client().lock("locks/herd", { ttlSeconds: 5 })];
    await sleep(200);
    await first.release();
    const second = await (waiters[0] as Promise<Lock>);
    await sleep(200);
    let thirdHeld = false;
    void waiters[1]?.then(() => (thirdHeld = true));
    await sleep(100);
    assert.equal(thirdHeld, false, "the third waits for the second, not the first");
    await second.release();
    const third = await waiters[1];
    assert.ok(third !== undefined && third.token > second.token);
    await third.release();
  });

  test("a waiter that gives up (its signal) leaves the queue: the one behind it does not wait for it", async () => {
    const holder = await client().lock("locks/quit", { ttlSeconds: 5 });
    const abort = new AbortController();
    const quitter = client().lock("locks/quit", { ttlSeconds: 5, signal: abort.signal });
    await sleep(100);
    const patient = client().lock("locks/quit", { ttlSeconds: 5 });
    await sleep(100);
    abort.abort();
    await assert.rejects(quitter);
    await holder.release();
    const next = await patient;
    assert.ok(next.token > holder.token);
    await next.release();
  });

  test("under a lease of the caller's, a release sent again after the lock was taken anew removes only its own acquisition's key (etcd #22082)", async () => {
    const owner = client();
    const lease = await owner.lease(5);
    try {
      const first = await owner.lock("locks/same-lease", { lease });
      await first.release();
      const second = await owner.lock("locks/same-lease", { lease });
      assert.equal(second.key, first.key, "the same lease makes the same key");
      assert.ok(second.token > first.token);
      await first.release(); // as a retry of the first release whose answer was lost would
      assert.equal(store.get(second.key)?.createRevision, second.token, "the second acquisition still holds");
      await second.release();
      assert.equal(store.get(second.key), undefined);
    } finally {
      await lease.revoke();
    }
  });

  test("elections: the first candidate leads; observe sees each leader and value; on resign the next in line leads, with a higher token", async () => {
    const watcher = client();
    const abort = new AbortController();
    const seen: (string | null)[] = [];
    const observing = (async () => {
      for await (const leader of watcher.observe("elect/web", { signal: abort.signal })) seen.push(leader === null ? null : leader.value);
    })();
    await sleep(200);
    assert.deepEqual(seen, [null], "no leader yet");
    const first = await client().campaign("elect/web", "node-a", { ttlSeconds: 5 });
    let secondLeads = false;
    const secondCampaign = client().campaign("elect/web", "node-b", { ttlSeconds: 5 });
    void secondCampaign.then(() => (secondLeads = true));
    await sleep(300);
    assert.equal(secondLeads, false, "one leader at a time");
    assert.equal((await watcher.electionLeader("elect/web"))?.value, "node-a");
    await first.proclaim("node-a v2");
    await sleep(200);
    await first.resign();
    const second = await secondCampaign;
    assert.ok(second.token > first.token);
    await sleep(300);
    abort.abort();
    await observing;
    assert.deepEqual(seen, [null, "node-a", "node-a v2", "node-b"]);
    await second.resign();
    assert.equal(await watcher.electionLeader("elect/web"), null);
  });

  test("without sessions (as the CLI runs), a lock's grant, key write and release whose answers were lost are sent again: the lock is taken and let go", async () => {
    // A node that applies the first grant, txn and revoke, then answers 503 timeout (the
    // leader died with them in flight): outcome unknown, and no session to resend them in.
    const lossy = new KvStore();
    const base = fakeService(lossy, { refuse: null, quorum: ALL_REACHED, readiness: READY }, []);
    const loseAnswerOf = new Set(["lease-grant", "txn", "lease-revoke"]);
    const service: KvService = {
      ...base,
      write: async (operation, session) => {
        const result = await base.write(operation, session);
        if (loseAnswerOf.delete(operation.op)) throw new RequestTimeoutError("write", 5000);
        return result;
      },
    };
    const lossyServer = createHttpApi(service, { requestBodyBytesMax: 1024 * 1024 });
    await new Promise<void>((resolve) => lossyServer.listen(0, "127.0.0.1", resolve));
    const lossyClient = new Client({ endpoints: [`http://127.0.0.1:${(lossyServer.address() as AddressInfo).port}`], sessions: false, healthCheckIntervalMs: 0, membersIntervalMs: 0 });
    try {
      const lock = await lossyClient.lock("locks/lossy", { ttlSeconds: 5 });
      assert.equal(loseAnswerOf.has("lease-grant") || loseAnswerOf.has("txn"), false, "the grant and the key's write were answered 503 timeout once each");
      assert.equal(lossy.leaseCount, 2, "the grant whose answer was lost, and the one the lock is held under");
      assert.equal(lock.token, lossy.get(lock.key)?.createRevision, "the token is the key's creation revision, from the retry's failure branch");
      await lock.release();
      assert.equal(loseAnswerOf.has("lease-revoke"), false, "the revoke was answered 503 timeout once");
      assert.deepEqual(lossy.range("locks/lossy/", 10), [], "released");
    } finally {
      await lossyClient.close();
      lossyServer.closeAllConnections();
      await new Promise((resolve) => lossyServer.close(resolve));
    }
  });
});

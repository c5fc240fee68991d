/**
 * `client.lease`: keep-alives in the background at a third of the time to live, through a
 * node refusing for a while; `lost` when the cluster says the lease is gone, when no
 * keep-alive was acknowledged within its time to live, or when the client closes; never
 * after revoke. Against the HTTP API in-process over a real KvStore.
 */
import assert from "node:assert/strict";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { within } from "../runtime/server/process-cluster.test-util.js";
import { NotLeaderError } from "../core/common/errors.js";
import type { KvCommand } from "../core/kv/command.js";
import { KvStore } from "../core/kv/store.js";
import { ALL_REACHED, fakeService, READY, type Fault } from "../runtime/server/fake-service.test-util.js";
import { createHttpApi } from "../runtime/server/http-api.js";
import { Client } from "./client.js";
import { LeaseLostError, LeaseNotFoundError } from "./errors.js";

describe("client.lease", () => {
  let server: Server;
  let url: string;
  let store: KvStore;
  const writes: KvCommand[] = [];
  const fault: Fault = { refuse: null, quorum: ALL_REACHED, readiness: READY };
  const clients: Client[] = [];
  const client = (): Client => {
    const made = new Client({ endpoints: [url], healthCheckIntervalMs: 0, timeoutMs: 5000, retry: { backoffMsBase: 20, backoffMsMax: 50 } });
    clients.push(made);
    return made;
  };
  const keepalives = (id: number): number => writes.filter((write) => write.op === "lease-keepalive" && write.lease === id).length;

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

  test("is kept alive at a third of its time to live; keys attach with put({lease}); revoke deletes them and stops the keep-alives without calling it lost", async () => {
    const sdk = client();
    const lease = await sdk.lease(3);
    await sdk.put("svc/a", "1", { lease });
    await sdk.txn({ success: [{ op: "put", key: "svc/b", value: "2", lease: lease.id }] });
    assert.deepEqual((await sdk.leaseInfo(lease.id))?.keys, ["svc/a", "svc/b"]);
    await sleep(2300);
    const renewed = keepalives(lease.id);
    assert.ok(renewed >= 2 && renewed <= 3, `kept alive every second: ${renewed} in 2.3 s`);
    assert.ok(lease.alive);
    let lost = false;
    lease.onLost(() => (lost = true));
    assert.deepEqual(await lease.revoke(), { deleted: 2, revision: store.currentRevision });
    assert.equal(await sdk.get("svc/a"), null);
    await sleep(1200);
    assert.equal(keepalives(lease.id), renewed, "no keep-alive after the revoke");
    assert.equal(lost, false);
    assert.equal(lease.alive, false);
    assert.equal(await sdk.leaseInfo(lease.id), null);
  });

  test("a put naming a lease that does not exist is LeaseNotFoundError, and nothing is written", async () => {
    const sdk = client();
    await assert.rejects(sdk.put("orphan", "v", { lease: 987_654 }), (error: unknown) => error instanceof LeaseNotFoundError && error.id === 987_654);
    assert.equal(store.get("orphan"), undefined);
  });

  test("survives the cluster refusing for less than its time to live; is lost ('unrenewed') when it refuses for longer", async () => {
    const sdk = client();
    const lease = await sdk.lease(2);
    await sleep(500);
    fault.refuse = new NotLeaderError(null);
    await sleep(900);
    fault.refuse = null;
    await sleep(1500);
    assert.ok(lease.alive, "renewed again once the cluster answered");
    const before = keepalives(lease.id);
    fault.refuse = new NotLeaderError(null);
    const lost = await within(lease.lost, 4000, () => null);
    fault.refuse = null;
    assert.ok(lost instanceof LeaseLostError && lost.reason === "unrenewed", String(lost));
    assert.equal(lost.id, lease.id);
    assert.equal(lease.alive, false);
    assert.equal(keepalives(lease.id), before, "nothing renewed it meanwhile");
  });

  test("is lost ('expired') soon after someone else revokes it, and ('closed') when its client closes", async () => {
    const holder = client();
    const lease = await holder.lease(3);
    await client().revokeLease(lease.id);
    const lost = await within(lease.lost, 3000, () => null);
    assert.ok(lost instanceof LeaseLostError && lost.reason === "expired", String(lost));
    const other = await holder.lease(3);
    await holder.close();
    assert.equal((await other.lost).reason, "closed");
  });
});

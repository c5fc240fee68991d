/**
 * Leases in the state machine: grant, attach, keep-alive, revoke, and expiry by the log's
 * clock only, so every replica deletes the same keys at the same entry in one revision.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { utf8Encode } from "../common/utf8.js";
import { decodeCommand, encodeCommand, type KvCommand, type TxnOperation } from "./command.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM, type KvChange, type KvResult } from "./store.js";

const T0 = Date.UTC(2026, 11, 1);
const anonymous = { clientId: 0, sequence: 0 };
const at = (timeMs: number) => ({ clientId: 0, sequence: 0, timeMs });
const value = utf8Encode("v");

const grant = (ttlMs: number, timeMs = T0): Uint8Array => encodeCommand({ op: "lease-grant", request: at(timeMs), ttlMs });
const keepalive = (lease: number, timeMs = T0): Uint8Array => encodeCommand({ op: "lease-keepalive", request: at(timeMs), lease });
const revoke = (lease: number): Uint8Array => encodeCommand({ op: "lease-revoke", request: anonymous, lease });
const put = (key: string, lease?: number): Uint8Array => encodeCommand({ op: "put", request: anonymous, key, value, ...(lease === undefined ? {} : { lease }) });
const clock = (timeMs: number, newLeader = false): Uint8Array => encodeCommand({ op: "clock", request: at(timeMs), ...(newLeader ? { newLeader } : {}) });
const txn = (success: TxnOperation[]): Uint8Array => encodeCommand({ op: "txn", request: anonymous, compares: [], success, failure: [] });

/** A store and the next index to apply at, with the changes its observer was told of, by commit. */
function harness() {
  const store = new KvStore();
  const commits: KvChange[][] = [];
  store.setObserver({ committed: (changes) => commits.push([...changes]), restored: () => undefined });
  let index = 0;
  const apply = (data: Uint8Array): KvResult => store.apply(++index, data).result;
  return { store, commits, apply, next: () => index + 1 };
}

describe("leases", () => {
  test("a grant's id is its entry's index; puts attach keys; a revoke deletes them in one revision, which a watcher sees as one commit", () => {
    const { store, commits, apply } = harness();
    apply(clock(T0));
    assert.deepEqual(apply(grant(5000)), { op: "lease-grant", id: 2, ttlMs: 5000 });
    apply(put("a", 2));
    apply(put("b", 2));
    apply(put("c"));
    assert.deepEqual(store.leaseKeys(2, 10), ["a", "b"]);
    assert.equal(store.leaseOf("a"), 2);
    assert.equal(store.leaseOf("c"), undefined);
    commits.length = 0;
    assert.deepEqual(apply(revoke(2)), { op: "lease-revoke", id: 2, deleted: 2, revision: 4 });
    assert.equal(store.get("a"), undefined);
    assert.equal(store.get("b"), undefined);
    assert.ok(store.get("c") !== undefined, "a key attached to no lease stays");
    assert.deepEqual(commits, [[{ key: "a", revision: 4, record: null }, { key: "b", revision: 4, record: null }]]);
    assert.equal(store.lease(2), undefined);
    assert.equal(store.leaseCount, 0);
  });

  test("a put, a transaction, a keep-alive or a revoke naming a lease the store does not hold gets lease-not-found and applies nothing", () => {
    const { store, apply } = harness();
    apply(put("x"));
    assert.deepEqual(apply(put("a", 99)), { op: "lease-not-found", id: 99 });
    assert.deepEqual(apply(encodeCommand({ op: "cas-revision", request: anonymous, key: "x", expectedRevision: 1, value, lease: 99 })), { op: "lease-not-found", id: 99 });
    assert.deepEqual(apply(txn([{ op: "put", key: "b", value }, { op: "put", key: "c", value, lease: 99 }])), { op: "lease-not-found", id: 99 });
    assert.deepEqual(apply(keepalive(99)), { op: "lease-not-found", id: 99 });
    assert.deepEqual(apply(revoke(99)), { op: "lease-not-found", id: 99 });
    assert.equal(store.currentRevision, 1, "nothing was written");
    assert.equal(store.get("b"), undefined, "the transaction's other put did not apply either");
  });

  test("a put without a lease detaches the key; a put with another lease moves it; a delete detaches it", () => {
    const { store, apply } = harness();
    apply(clock(T0));
    apply(grant(5000));
    apply(grant(5000));
    apply(put("k", 2));
    apply(put("k", 3));
    assert.deepEqual([store.leaseKeys(2, 10), store.leaseKeys(3, 10)], [[], ["k"]]);
    apply(put("k"));
    assert.deepEqual(store.leaseKeys(3, 10), []);
    apply(txn([{ op: "put", key: "k", value, lease: 2 }]));
    assert.equal(store.leaseOf("k"), 2);
    apply(encodeCommand({ op: "delete", request: anonymous, key: "k" }));
    assert.equal(store.leaseOf("k"), undefined);
    assert.deepEqual(apply(revoke(2)), { op: "lease-revoke", id: 2, deleted: 0, revision: store.currentRevision }, "a lease without keys revokes at no revision");
  });

  test("a lease expires at the first clock entry at or past its expiry, its keys deleted in one revision; not a millisecond before", () => {
    const { store, commits, apply } = harness();
    apply(clock(T0));
    apply(grant(3000));
    apply(put("a", 2));
    apply(put("b", 2));
    assert.deepEqual(apply(clock(T0 + 2999)), { op: "clock", expired: [] });
    assert.ok(store.get("a") !== undefined);
    commits.length = 0;
    assert.deepEqual(apply(clock(T0 + 3000)), { op: "clock", expired: [{ id: 2, deleted: 2, revision: 3 }] });
    assert.equal(store.lease(2), undefined);
    assert.deepEqual(commits, [[{ key: "a", revision: 3, record: null }, { key: "b", revision: 3, record: null }]]);
  });

  test("other commands' times never expire a lease: only clock entries do", () => {
    const { store, apply } = harness();
    apply(clock(T0));
    apply(grant(1000));
    apply(put("a", 2));
    apply(encodeCommand({ op: "put", request: at(T0 + 60_000), key: "z", value }));
    apply(keepalive(99, T0 + 60_000));
    assert.ok(store.lease(2) !== undefined);
  });

  test("a keep-alive makes the lease live its time to live from the later of the store's clock and the keep-alive's own time", () => {
    const { store, apply } = harness();
    apply(clock(T0));
    apply(grant(3000));
    // The store's clock lags the leader's by up to a clock interval: the keep-alive counts from its own time.
    assert.deepEqual(apply(keepalive(2, T0 + 2000)), { op: "lease-keepalive", id: 2, ttlMs: 3000 });
    assert.equal(store.lease(2)?.expiresAtMs, T0 + 5000);
    // A keep-alive from a slower clock never shortens the lease.
    apply(keepalive(2, T0 + 100));
    assert.equal(store.lease(2)?.expiresAtMs, T0 + 5000);
    assert.deepEqual(apply(clock(T0 + 4999)), { op: "clock", expired: [] });
    assert.deepEqual(apply(clock(T0 + 5000)), { op: "clock", expired: [{ id: 2, deleted: 0, revision: 0 }] });
  });

  test("a new leader's clock entry extends every lease to its full time to live before it expires any (etcd's rule)", () => {
    const lapsed = (newLeader: boolean): KvResult => {
      const { apply } = harness();
      apply(clock(T0));
      apply(grant(3000));
      apply(put("a", 2));
      // The old leader died at T0 + 1000; the new one took 4 s to be elected.
      return apply(clock(T0 + 5000, newLeader));
    };
    assert.deepEqual(lapsed(true), { op: "clock", expired: [] });
    assert.deepEqual(lapsed(false), { op: "clock", expired: [{ id: 2, deleted: 1, revision: 2 }] }, "without the rule the failover expires it");
    const { store, apply } = harness();
    apply(clock(T0));
    apply(grant(3000));
    apply(clock(T0 + 5000, true));
    assert.equal(store.lease(2)?.expiresAtMs, T0 + 8000);
    assert.deepEqual(apply(clock(T0 + 8000)), { op: "clock", expired: [{ id: 2, deleted: 0, revision: 0 }] });
  });

  test("leases granted before the clock was ever set count from the first clock entry", () => {
    const { store, apply } = harness();
    apply(encodeCommand({ op: "lease-grant", request: anonymous, ttlMs: 2000 }));
    apply(clock(T0));
    assert.equal(store.lease(1)?.expiresAtMs, T0 + 2000);
  });

  test("a retried grant in a client session answers the first grant's id and grants nothing more", () => {
    const { store, apply } = harness();
    const client = { clientId: SELF_ASSIGNED_SESSIONS_FROM + 1, sequence: 1 };
    const first = apply(encodeCommand({ op: "lease-grant", request: client, ttlMs: 2000 }));
    const retry = apply(encodeCommand({ op: "lease-grant", request: client, ttlMs: 2000 }));
    assert.deepEqual(retry, first);
    assert.equal(store.leaseCount, 1);
    // The session's result survives a snapshot (its encoding).
    const restored = KvStore.restore(store.snapshot());
    assert.deepEqual(restored.apply(3, encodeCommand({ op: "lease-grant", request: client, ttlMs: 2000 })).result, first);
  });

  test("leases and their keys are in the snapshot: restored, the store expires and snapshots exactly as the original", () => {
    const { store, apply, next } = harness();
    apply(clock(T0));
    apply(grant(3000));
    apply(grant(9000));
    apply(put("a", 2));
    apply(put("b", 3));
    apply(put("c", 3));
    apply(put("free"));
    const restored = KvStore.restore(store.snapshot());
    assert.deepEqual(restored.snapshot(), store.snapshot());
    assert.deepEqual(restored.leases(10), store.leases(10));
    assert.deepEqual(restored.leaseKeys(3, 10), ["b", "c"]);
    const index = next();
    assert.deepEqual(restored.apply(index, clock(T0 + 3000)).result, store.apply(index, clock(T0 + 3000)).result);
    assert.deepEqual(restored.snapshot(), store.snapshot());
  });

  test("lease commands and leased puts round-trip through the codec; bad ones are refused before the log", () => {
    const commands: KvCommand[] = [
      { op: "lease-grant", request: at(T0), ttlMs: 1000 },
      { op: "lease-keepalive", request: at(T0), lease: 7 },
      { op: "lease-revoke", request: anonymous, lease: 7 },
      { op: "put", request: anonymous, key: "k", value, lease: 7 },
      { op: "cas-value", request: anonymous, key: "k", expected: null, value, lease: 7 },
      { op: "clock", request: at(T0), newLeader: true },
      { op: "txn", request: anonymous, compares: [], success: [{ op: "put", key: "k", value, lease: 7 }, { op: "put", key: "j", value }], failure: [] },
    ];
    for (const command of commands) assert.deepEqual(decodeCommand(encodeCommand(command)), command);
    assert.throws(() => encodeCommand({ op: "lease-grant", request: anonymous, ttlMs: 999 }), /time to live/);
    assert.throws(() => encodeCommand({ op: "put", request: anonymous, key: "k", value, lease: 0 }), /lease id/);
    assert.throws(() => encodeCommand({ op: "lease-keepalive", request: anonymous, lease: 1.5 }), /lease id/);
  });

  test("a snapshot attaching a key it does not hold, or one key to two leases, is refused and changes nothing", () => {
    const { store, apply } = harness();
    apply(clock(T0));
    apply(grant(3000));
    apply(grant(3000));
    apply(put("a", 2));
    const good = store.snapshot();
    // The leases section is last: lease 3 (no keys) then gets key "a" too, as 4 more bytes + "a".
    const tail = Buffer.from(good.subarray(good.length - 4));
    assert.equal(tail.readUInt32BE(0), 0, "lease 3 has no keys");
    const twice = Buffer.concat([good.subarray(0, good.length - 4), Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 0x61])]);
    const target = KvStore.restore(good);
    assert.throws(() => target.restore(twice), /two leases/);
    assert.deepEqual(target.snapshot(), good, "the refused snapshot changed nothing");
    const missing = Buffer.concat([good.subarray(0, good.length - 4), Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 0x7a])]);
    assert.throws(() => target.restore(missing), /does not hold/);
  });
});

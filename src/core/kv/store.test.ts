import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { InvalidInputError } from "../common/errors.js";
import { limits } from "../common/limits.js";
import { utf8Encode } from "../common/utf8.js";
import { decodeCommand, encodeCommand, type KvCommand } from "./command.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM } from "./store.js";

// Client 0 has no session, so these commands are never deduplicated against each other.
const request = { clientId: 0, sequence: 0 };
const bytes = (s: string): Uint8Array => utf8Encode(s);

describe("KV commands", () => {
  test("every command round-trips through its byte format", () => {
    const commands: KvCommand[] = [
      { op: "put", request, key: "a", value: bytes("1") },
      { op: "delete", request, key: "ключ" },
      { op: "cas-value", request, key: "a", expected: null, value: bytes("2") },
      { op: "cas-value", request, key: "a", expected: bytes("1"), value: bytes("2") },
      { op: "cas-revision", request, key: "a", expectedRevision: 12, value: new Uint8Array([0, 255]) },
      { op: "delete-prefix", request, prefix: "dir/é" },
    ];
    for (const command of commands) assert.deepEqual(decodeCommand(encodeCommand(command)), command);
  });

  test("empty and oversized keys and values are refused with a typed error", () => {
    assert.throws(() => encodeCommand({ op: "delete", request, key: "" }), InvalidInputError);
    assert.throws(() => encodeCommand({ op: "delete", request, key: "k".repeat(limits.keyBytesMax + 1) }), InvalidInputError);
    // The limit counts UTF-8 bytes, not characters: 256 four-byte characters fill it exactly.
    assert.ok(encodeCommand({ op: "delete", request, key: "😀".repeat(limits.keyBytesMax / 4) }).length > 0);
    assert.throws(() => encodeCommand({ op: "delete", request, key: "😀".repeat(limits.keyBytesMax / 4) + "k" }), InvalidInputError);
    assert.throws(() => encodeCommand({ op: "put", request, key: "k", value: new Uint8Array(1024 * 1024 + 1) }), InvalidInputError);
    assert.throws(() => encodeCommand({ op: "delete-prefix", request, prefix: "" }), /prefix of a range delete must not be empty/);
    assert.throws(() => encodeCommand({ op: "delete-prefix", request, prefix: "k".repeat(limits.keyBytesMax + 1) }), InvalidInputError);
    // A range delete with an empty prefix, written by hand, is refused when decoding too.
    const empty = encodeCommand({ op: "delete-prefix", request, prefix: "x" }).slice(0, -1);
    new DataView(empty.buffer).setUint32(empty.length - 4, 0);
    assert.throws(() => decodeCommand(empty), /empty key/);
    const asVersion1 = encodeCommand({ op: "delete", request, key: "x" });
    asVersion1[0] = 1;
    asVersion1[1] = 7;
    assert.throws(() => decodeCommand(asVersion1), /unknown command op/, "version 1 had no range delete");
  });

  test("any truncated or corrupted command is refused with InvalidInputError, never a crash", () => {
    const good = encodeCommand({ op: "cas-value", request, key: "key", expected: bytes("old"), value: bytes("new") });
    for (let cut = 0; cut < good.length; cut++) assert.throws(() => decodeCommand(good.slice(0, cut)), InvalidInputError);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (garbage) => {
        try {
          decodeCommand(garbage);
        } catch (error) {
          assert.ok(error instanceof InvalidInputError, String(error));
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe("KV store", () => {
  test("revisions: create and modify revision per key, a store-wide counter", () => {
    const store = new KvStore();
    const put = (index: number, key: string, value: string) => store.apply(index, encodeCommand({ op: "put", request, key, value: bytes(value) }));
    assert.deepEqual(put(1, "a", "1").result, { op: "put", revision: 1 });
    assert.deepEqual(put(2, "b", "1").result, { op: "put", revision: 2 });
    assert.deepEqual(put(3, "a", "2").result, { op: "put", revision: 3 });
    const a = store.get("a");
    assert.equal(a?.createRevision, 1);
    assert.equal(a?.modRevision, 3);
    assert.equal(a?.version, 2);
    const del = store.apply(4, encodeCommand({ op: "delete", request, key: "a" }));
    assert.deepEqual(del.result, { op: "delete", deleted: 1, revision: 4 });
    assert.deepEqual(store.apply(5, encodeCommand({ op: "delete", request, key: "a" })).result, { op: "delete", deleted: 0, revision: 4 });
    put(6, "a", "3");
    assert.equal(store.get("a")?.createRevision, 5, "a re-created key gets a new create revision");
  });

  test("compare-and-set by value and by revision", () => {
    const store = new KvStore();
    const casValue = (index: number, expected: string | null, value: string) =>
      store.apply(index, encodeCommand({ op: "cas-value", request, key: "k", expected: expected === null ? null : bytes(expected), value: bytes(value) })).result;
    assert.deepEqual(casValue(1, null, "a"), { op: "cas", succeeded: true, revision: 1 });
    assert.deepEqual(casValue(2, null, "b"), { op: "cas", succeeded: false, revision: 1 });
    assert.deepEqual(casValue(3, "a", "b"), { op: "cas", succeeded: true, revision: 2 });
    const casRevision = (index: number, expectedRevision: number) =>
      store.apply(index, encodeCommand({ op: "cas-revision", request, key: "k", expectedRevision, value: bytes("c") })).result;
    assert.deepEqual(casRevision(4, 1), { op: "cas", succeeded: false, revision: 2 });
    assert.deepEqual(casRevision(5, 2), { op: "cas", succeeded: true, revision: 3 });
  });

  test("range by prefix, sorted, limited", () => {
    const store = new KvStore();
    ["b/2", "a/1", "b/1", "b/3", "c"].forEach((key, i) => store.apply(i + 1, encodeCommand({ op: "put", request, key, value: bytes("v") })));
    assert.deepEqual(store.range("b/", 2).map((r) => r.key), ["b/1", "b/2"]);
    assert.deepEqual(store.range("", 10).length, 5);
  });

  test("client sessions: a request applied twice takes effect once", () => {
    const store = new KvStore();
    const put = (index: number, sequence: number, value: string) =>
      store.apply(index, encodeCommand({ op: "put", request: { clientId: SELF_ASSIGNED_SESSIONS_FROM + 9, sequence }, key: "k", value: bytes(value) }));
    assert.equal(put(1, 5, "a").duplicate, false);
    assert.equal(put(2, 6, "b").duplicate, false);
    const again = put(3, 6, "b");
    assert.equal(again.duplicate, true);
    assert.deepEqual(again.result, { op: "put", revision: 2 }, "a duplicate gets the first application's result");
    const stale = put(4, 5, "a");
    assert.equal(stale.duplicate, true);
    assert.deepEqual(stale.result, { op: "superseded", clientId: SELF_ASSIGNED_SESSIONS_FROM + 9, sequence: 5, latestSequence: 6 }, "an older sequence: its result is gone, nothing applied");
    assert.equal(store.currentRevision, 2);
    assert.deepEqual(store.get("k")?.value, bytes("b"));
    // Client 0 has no session: never deduplicated.
    const anonymous = (index: number) => store.apply(index, encodeCommand({ op: "put", request: { clientId: 0, sequence: 0 }, key: "k", value: bytes("z") }));
    assert.equal(anonymous(5).duplicate, false);
    assert.equal(anonymous(6).duplicate, false);
    // Sessions survive a snapshot.
    const restored = KvStore.restore(store.snapshot());
    assert.equal(restored.apply(7, encodeCommand({ op: "put", request: { clientId: SELF_ASSIGNED_SESSIONS_FROM + 9, sequence: 6 }, key: "k", value: bytes("b") })).duplicate, true);
  });

  test("a corrupt entry is skipped by every replica alike, not fatal", () => {
    const store = new KvStore();
    assert.equal(store.apply(1, new Uint8Array([9, 9, 9])).result.op, "rejected");
    assert.equal(store.applied, 1);
  });

  test("applying out of order is a programming error", () => {
    const store = new KvStore();
    assert.throws(() => store.apply(2, new Uint8Array()), /out of order/);
  });

  test("snapshot and restore give the same state and byte-identical snapshots", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom("put", "delete", "cas"), fc.constantFrom("a", "b", "c/d"), fc.string({ maxLength: 5 })), { maxLength: 40 }),
        (ops) => {
          const store = new KvStore();
          ops.forEach(([op, key, value], i) => {
            const command: KvCommand =
              op === "put" ? { op, request, key, value: bytes(value) } : op === "delete" ? { op, request, key } : { op: "cas-value", request, key, expected: bytes(value), value: bytes(value + "!") };
            store.apply(i + 1, encodeCommand(command));
          });
          const snapshot = store.snapshot();
          const restored = KvStore.restore(snapshot);
          assert.deepEqual(restored.snapshot(), snapshot);
          assert.equal(restored.applied, store.applied);
          assert.equal(restored.currentRevision, store.currentRevision);
          for (const key of ["a", "b", "c/d"]) assert.deepEqual(restored.get(key), store.get(key));
        },
      ),
      { numRuns: 300 },
    );
  });

  test("a truncated snapshot is refused", () => {
    const store = new KvStore();
    store.apply(1, encodeCommand({ op: "put", request, key: "a", value: bytes("1") }));
    const snapshot = store.snapshot();
    for (let cut = 0; cut < snapshot.length; cut++) assert.throws(() => KvStore.restore(snapshot.slice(0, cut)), InvalidInputError);
  });
});

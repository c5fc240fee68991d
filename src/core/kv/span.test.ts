/**
 * A range's store refuses, when it applies, every command on a key outside its span: the
 * request was routed with a stale view of the ranges (a split committed first). The refusal
 * is the same on every replica, changes nothing, and is kept in no session.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MemoryKvBackend } from "./backend.js";
import { encodeCommand, type KvCommand } from "./command.js";
import { SELF_ASSIGNED_SESSIONS_FROM } from "./model.js";
import { KvStore } from "./store.js";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const request = { clientId: 0, sequence: 0 };

/** A store over ["b", "m"). */
function rangeStore(): KvStore {
  const backend = new MemoryKvBackend();
  backend.span = { start: "b", end: "m" };
  return new KvStore(backend);
}

describe("a range's store refuses keys outside its span when it applies", () => {
  test("puts, deletes, compare-and-sets and transactions with a key outside change nothing", () => {
    const store = rangeStore();
    let index = 0;
    const apply = (command: KvCommand) => store.apply(++index, encodeCommand(command)).result;
    assert.deepEqual(apply({ op: "put", request, key: "banana", value: bytes("1") }), { op: "put", revision: 1 });
    const refused: KvCommand[] = [
      { op: "put", request, key: "apple", value: bytes("x") },
      { op: "put", request, key: "m", value: bytes("x") },
      { op: "delete", request, key: "zebra" },
      { op: "cas-value", request, key: "a", expected: null, value: bytes("x") },
      { op: "cas-revision", request, key: "mango", expectedRevision: 0, value: bytes("x") },
      { op: "txn", request, compares: [], success: [{ op: "put", key: "cherry", value: bytes("x") }, { op: "put", key: "zebra", value: bytes("x") }], failure: [] },
      { op: "txn", request, compares: [{ key: "aardvark", target: "version", op: "=", value: 0 }], success: [{ op: "put", key: "cherry", value: bytes("x") }], failure: [] },
      { op: "delete-prefix", request, prefix: "a" },
      // Keys with the prefix "m" start at the span's end.
      { op: "delete-prefix", request, prefix: "m" },
    ];
    for (const command of refused) assert.equal(apply(command).op, "range-mismatch", JSON.stringify(command, (_, v: unknown) => (v instanceof Uint8Array ? "<bytes>" : v)));
    assert.equal(store.currentRevision, 1);
    assert.deepEqual(store.range("", 100).map((r) => r.key), ["banana"]);
    assert.equal(store.applied, index, "refused entries are still applied (skipped) in order");
    // Within the span each is served.
    assert.equal(apply({ op: "delete-prefix", request, prefix: "l" }).op, "delete-prefix");
    assert.equal(apply({ op: "txn", request, compares: [], success: [{ op: "put", key: "cherry", value: bytes("2") }], failure: [] }).op, "txn");
  });

  test("a refused write is kept in no session: the same sequence, sent to its right range later, is not a duplicate there, and this session moves on", () => {
    const store = rangeStore();
    const session = { clientId: SELF_ASSIGNED_SESSIONS_FROM + 5, sequence: 1 };
    const first = store.apply(1, encodeCommand({ op: "put", request: session, key: "zebra", value: bytes("x") }));
    assert.deepEqual(first.result, { op: "range-mismatch", key: "zebra" });
    assert.equal(first.duplicate, false);
    assert.equal(store.backend.getSession(session.clientId), undefined, "no session opened by the refusal");
    const next = store.apply(2, encodeCommand({ op: "put", request: session, key: "kiwi", value: bytes("y") }));
    assert.deepEqual(next.result, { op: "put", revision: 1 });
  });

  test("a store over every key refuses nothing", () => {
    const store = new KvStore(new MemoryKvBackend());
    assert.equal(store.apply(1, encodeCommand({ op: "put", request, key: "\u{10ffff}", value: bytes("x") })).result.op, "put");
  });
});

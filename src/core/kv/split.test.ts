import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { utf8Decode, utf8Encode } from "../common/utf8.js";
import { MemoryKvBackend } from "./backend.js";
import { decodeCommand, encodeCommand, type KvCommand } from "./command.js";
import { decodeSnapshot } from "./snapshot.js";
import { RANGE_BIRTH_INDEX, splitRefusal } from "./split.js";
import { CompactedError, KvStore } from "./store.js";

const request = { clientId: 0, sequence: 0, timeMs: 1_000 };
const put = (key: string, value: string): KvCommand => ({ op: "put", request, key, value: utf8Encode(value) });

/** A range's store over `span` that records what it hands its split host. */
function rangeStore(span: { start: string; end: string | null }): { store: KvStore; backend: MemoryKvBackend; prepared: Map<number, Uint8Array>; born: number[] } {
  const backend = new MemoryKvBackend();
  backend.span = span;
  const store = new KvStore(backend);
  const prepared = new Map<number, Uint8Array>();
  const born: number[] = [];
  store.setSplitHost({
    parent: 1,
    prepare: (child, snapshot) => {
      assert.equal(born.includes(child), false, "prepared before it is born");
      prepared.set(child, snapshot);
    },
    born: (child) => born.push(child),
  });
  return { store, backend, prepared, born };
}

function applyAll(store: KvStore, commands: readonly KvCommand[]): ReturnType<KvStore["apply"]>[] {
  return commands.map((command) => store.apply(store.applied + 1, encodeCommand(command)));
}

/** The child a prepared snapshot starts: restored into a memory backend, as a node's replica of it would be. */
function childOf(snapshot: Uint8Array): KvStore {
  const child = new KvStore(new MemoryKvBackend());
  child.restore(snapshot);
  return child;
}

const keysOf = (store: KvStore): string[] => store.range("", 100).map((record) => record.key);

describe("splitting a range", () => {
  test("the parent keeps the keys before the split key; the child is born with the rest, its revisions continuing the parent's", () => {
    const { store, backend, prepared, born } = rangeStore({ start: "a", end: "z" });
    applyAll(store, [put("apple", "1"), put("kiwi", "2"), put("mango", "3"), put("pear", "4"), put("mango", "5"), put("m", "6")]);
    const [split] = applyAll(store, [{ op: "split", request, at: "m", child: 7 }]);
    assert.deepEqual(split?.result, { op: "split", child: 7, at: "m", epoch: 2, revision: 6 });
    assert.deepEqual(born, [7]);
    assert.deepEqual(keysOf(store), ["apple", "kiwi"]);
    assert.deepEqual(backend.span, { start: "a", end: "m" });
    assert.equal(store.keys, 2);
    assert.equal(store.rangeEpoch, 2);

    const child = childOf(prepared.get(7) as Uint8Array);
    assert.deepEqual(keysOf(child), ["m", "mango", "pear"], "the split key itself is the child's first");
    assert.equal(child.applied, RANGE_BIRTH_INDEX);
    assert.equal(child.currentRevision, 6);
    assert.equal(child.rangeEpoch, 2);
    assert.deepEqual(child.backend.span, { start: "m", end: "z" });
    const mango = child.get("mango");
    assert.equal(mango === undefined ? "" : utf8Decode(mango.value), "5");
    assert.equal(mango?.version, 2, "a record moves whole: its versions and revisions");
    assert.equal(mango?.createRevision, 3);
    // The child's history starts at the split: its records are readable there, not before.
    assert.equal(child.getAt("pear", 6)?.modRevision, 4);
    assert.throws(() => child.getAt("pear", 5), CompactedError);
    // Each goes on alone; the child's next revision follows the parent's.
    const [next] = applyAll(child, [put("melon", "7")]);
    assert.deepEqual(next?.result, { op: "put", revision: 7 });
  });

  test("after the split, the parent refuses the keys it gave away and the child those it did not get", () => {
    const { store, prepared } = rangeStore({ start: "", end: null });
    applyAll(store, [put("b", "1"), put("x", "2"), { op: "split", request, at: "m", child: 3 }]);
    const [moved, kept] = applyAll(store, [put("x", "3"), put("c", "4")]);
    assert.deepEqual(moved?.result, { op: "range-mismatch", key: "x" });
    assert.deepEqual(kept?.result, { op: "put", revision: 3 });
    const child = childOf(prepared.get(3) as Uint8Array);
    const [refused] = applyAll(child, [put("c", "5")]);
    assert.deepEqual(refused?.result, { op: "range-mismatch", key: "c" });
    assert.deepEqual(child.backend.span, { start: "m", end: null }, "the last range keeps its open end");
  });

  test("a retried write of a session answers as it did after a split moved its key away: it is not applied twice", () => {
    const { store } = rangeStore({ start: "", end: null });
    const session = { clientId: 2 ** 52 + 9, sequence: 1, timeMs: 1_000 };
    const write: KvCommand = { op: "put", request: session, key: "x", value: utf8Encode("1") };
    const [first] = applyAll(store, [write]);
    applyAll(store, [{ op: "split", request, at: "m", child: 3 }]);
    const [retry] = applyAll(store, [write]);
    assert.deepEqual(retry?.result, first?.result);
    assert.equal(retry?.duplicate, true);
    const [next] = applyAll(store, [{ ...write, request: { ...session, sequence: 2 } }]);
    assert.deepEqual(next?.result, { op: "range-mismatch", key: "x" }, "a new write of the moved key is refused");
  });

  test("a split key at or outside the range's bounds is refused and changes nothing", () => {
    const { store, born } = rangeStore({ start: "c", end: "k" });
    applyAll(store, [put("d", "1")]);
    const before = store.snapshot();
    for (const at of ["c", "k", "a", "z"]) {
      const [result] = applyAll(store, [{ op: "split", request, at, child: 9 }]);
      assert.equal(result?.result.op, "rejected", at);
    }
    assert.deepEqual(born, []);
    assert.equal(store.rangeEpoch, 1);
    assert.deepEqual(decodeSnapshot(store.snapshot(), { record: () => undefined, session: () => undefined, change: () => undefined, lease: () => undefined }).range, { start: "c", end: "k", epoch: 1, nextRangeId: 0 });
    assert.equal(store.snapshot().length, before.length);
    assert.match(splitRefusal({ start: "c", end: "k" }, "k") ?? "", /not inside the range \["c", "k"\)/);
  });

  test("keys attached to a lease do not move: such a split is refused", () => {
    const { store, born } = rangeStore({ start: "", end: null });
    const [grant] = applyAll(store, [{ op: "lease-grant", request, ttlMs: 60_000 }]);
    const lease = grant?.result.op === "lease-grant" ? grant.result.id : 0;
    applyAll(store, [{ op: "put", request, key: "q", value: utf8Encode("v"), lease }]);
    const [result] = applyAll(store, [{ op: "split", request, at: "m", child: 2 }]);
    assert.equal(result?.result.op, "rejected");
    assert.match(result?.result.op === "rejected" ? result.result.reason : "", /attached to a lease/);
    assert.deepEqual(born, []);
    const [below] = applyAll(store, [{ op: "split", request, at: "r", child: 2 }]);
    assert.equal(below?.result.op, "split", "a split that moves no leased key goes ahead");
  });

  test("a store without a split host refuses to split", () => {
    const store = new KvStore();
    const [result] = applyAll(store, [put("a", "1"), { op: "split", request, at: "m", child: 1 }]).slice(1);
    assert.equal(result?.result.op, "rejected");
  });

  test("a failing host aborts the split: the parent is as it was", () => {
    const backend = new MemoryKvBackend();
    const store = new KvStore(backend);
    store.setSplitHost({
      parent: 1,
      prepare: () => {
        throw new Error("disk full");
      },
      born: () => assert.fail("not born"),
    });
    applyAll(store, [put("a", "1"), put("x", "2")]);
    const before = store.snapshot();
    assert.throws(() => store.apply(3, encodeCommand({ op: "split", request, at: "m", child: 1 })), /disk full/);
    assert.deepEqual(store.snapshot(), before);
    assert.equal(store.rangeEpoch, 1);
    assert.equal(backend.span, undefined);
  });

  test("range ids are handed out once each, at least as large as asked", () => {
    const store = new KvStore();
    const ids = applyAll(store, [
      { op: "range-id", request, atLeast: 4 },
      { op: "range-id", request, atLeast: 0 },
      { op: "range-id", request, atLeast: 10 },
      { op: "range-id", request, atLeast: 5 },
    ]).map((applied) => (applied.result.op === "range-id" ? applied.result.id : -1));
    assert.deepEqual(ids, [4, 5, 10, 11]);
    const restored = new KvStore();
    restored.restore(store.snapshot());
    const [next] = applyAll(restored, [{ op: "range-id", request, atLeast: 0 }]);
    assert.deepEqual(next?.result, { op: "range-id", id: 12 }, "the next id survives a snapshot");
  });

  test("a parent's snapshot after the split holds no change of a key it gave away: the moved values are not carried again", () => {
    const { store } = rangeStore({ start: "a", end: "z" });
    applyAll(store, [put("kiwi", "1"), put("pear", "2"), put("pear", "3"), { op: "split", request, at: "m", child: 7 }, put("kiwi", "4")]);
    const changed: string[] = [];
    decodeSnapshot(store.snapshot(), { record: () => undefined, session: () => undefined, change: (change) => void changed.push(change.key) });
    assert.deepEqual([...new Set(changed)], ["kiwi"]);
    const backend = new MemoryKvBackend();
    backend.span = { start: "a", end: "m" };
    const copy = KvStore.restore(store.snapshot(), backend);
    assert.equal(utf8Decode((copy.getAt("kiwi", 1) as { value: Uint8Array }).value), "1", "its own keys' history is kept");
    // On disk too, once compaction passes them: the purge walks the history again after a split.
    assert.notEqual(store.backend.changeAtOrBefore("pear", 10), undefined);
    applyAll(store, [{ op: "compact", request, revision: 4 }]);
    while (store.purgeHistory(1));
    assert.equal(store.backend.changeAtOrBefore("pear", 10), undefined, "the moved key's history is gone");
    assert.equal(store.getAt("kiwi", 4)?.modRevision, 4);
    assert.equal(store.backend.changeAtOrBefore("kiwi", 3), undefined, "compaction's own purge as before: kiwi's change at 1 is superseded");
  });

  test("a parent's snapshot after the split restores its span and epoch; splits survive the round trip of their commands", () => {
    const { store } = rangeStore({ start: "", end: null });
    applyAll(store, [put("a", "1"), put("x", "2"), { op: "split", request, at: "m", child: 3 }]);
    const replica = new MemoryKvBackend();
    replica.span = { start: "", end: null };
    const follower = new KvStore(replica);
    follower.restore(store.snapshot());
    assert.deepEqual(replica.span, { start: "", end: "m" });
    assert.equal(follower.rangeEpoch, 2);
    assert.deepEqual(follower.snapshot(), store.snapshot());
    const command: KvCommand = { op: "split", request, at: "ключ", child: 4_000_000_000 };
    assert.deepEqual(decodeCommand(encodeCommand(command)), command);
    assert.throws(() => encodeCommand({ op: "split", request, at: "", child: 1 }), /split's key/);
    assert.throws(() => encodeCommand({ op: "split", request, at: "m", child: -1 }), /range id/);
  });
});

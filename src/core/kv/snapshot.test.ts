import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidInputError } from "../common/errors.js";
import { utf8Encode } from "../common/utf8.js";
import { encodeCommand } from "./command.js";
import type { KvChange, KvMeta, KvRecord, KvSession } from "./model.js";
import { encodeSnapshot } from "./snapshot.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM } from "./store.js";

const value = utf8Encode("v");
const record = (key: string, createRevision: number, modRevision: number, version: number): KvRecord => ({ key, value, createRevision, modRevision, version });
const put = (revision: number): KvSession["result"] => ({ op: "put", revision });
const change = (key: string, revision: number, text: string | null): KvChange => ({ key, revision, record: text === null ? null : { key, value: utf8Encode(text), createRevision: revision, modRevision: revision, version: 1 } });

/** A store with some state, to show that a refused restore leaves it as it was. */
function populated(): KvStore {
  const store = new KvStore();
  store.apply(1, encodeCommand({ op: "put", request: { clientId: SELF_ASSIGNED_SESSIONS_FROM + 3, sequence: 1 }, key: "keep", value }));
  return store;
}

describe("KV snapshot restore validates", () => {
  const meta: KvMeta = { appliedIndex: 10, revision: 5 };
  const refusals: [string, Uint8Array][] = [
    ["a repeated key", encodeSnapshot(meta, [record("a", 1, 1, 1), record("a", 2, 2, 1)], [])],
    ["keys out of order", encodeSnapshot(meta, [record("b", 1, 1, 1), record("a", 2, 2, 1)], [])],
    // UTF-16 order puts U+1F600 (a surrogate pair) before U+E000; UTF-8 byte order after.
    ["keys in UTF-16 rather than UTF-8 order", encodeSnapshot(meta, [record("😀", 1, 1, 1), record("\uE000", 2, 2, 1)], [])],
    ["an empty key", encodeSnapshot(meta, [record("", 1, 1, 1)], [])],
    ["a create revision of 0", encodeSnapshot(meta, [record("a", 0, 1, 1)], [])],
    ["a create revision after the mod revision", encodeSnapshot(meta, [record("a", 3, 2, 1)], [])],
    ["a mod revision after the store's", encodeSnapshot(meta, [record("a", 1, 6, 1)], [])],
    ["a version of 0", encodeSnapshot(meta, [record("a", 1, 1, 0)], [])],
    ["more versions than revisions", encodeSnapshot(meta, [record("a", 1, 2, 3)], [])],
    ["sessions out of order", encodeSnapshot(meta, [], [{ clientId: 2, sequence: 1, result: put(1) }, { clientId: 1, sequence: 1, result: put(2) }])],
    ["a repeated session", encodeSnapshot(meta, [], [{ clientId: 2, sequence: 1, result: put(1) }, { clientId: 2, sequence: 2, result: put(2) }])],
    ["a session for client 0", encodeSnapshot(meta, [], [{ clientId: 0, sequence: 1, result: put(1) }])],
    ["a session result from a future revision", encodeSnapshot(meta, [], [{ clientId: 1, sequence: 1, result: put(6) }])],
    ["trailing bytes", new Uint8Array([...encodeSnapshot(meta, [], []), 0])],
    ["trailing bytes after the history", new Uint8Array([...encodeSnapshot(meta, [], [], { compactRevision: 0, changes: [] }), 0])],
    ["a compaction point past the revision", encodeSnapshot(meta, [], [], { compactRevision: 6, changes: [] })],
    ["a record without its change in the history", encodeSnapshot(meta, [record("a", 1, 1, 1)], [], { compactRevision: 0, changes: [] })],
    ["history changes out of order", encodeSnapshot(meta, [], [], { compactRevision: 0, changes: [change("b", 2, "x"), change("a", 2, "y")] })],
    ["a repeated history change", encodeSnapshot(meta, [], [], { compactRevision: 0, changes: [change("a", 2, "x"), change("a", 2, "y")] })],
    ["a history change past the revision", encodeSnapshot(meta, [], [], { compactRevision: 0, changes: [change("a", 6, "x")] })],
    ["a delete below the compaction point", encodeSnapshot(meta, [], [], { compactRevision: 3, changes: [change("a", 2, null)] })],
    ["two changes of a key at or below the compaction point", encodeSnapshot(meta, [], [], { compactRevision: 4, changes: [change("a", 2, "x"), change("a", 4, "y")] })],
  ];
  for (const [what, bytes] of refusals) {
    test(`refuses ${what}, leaving the store unchanged`, () => {
      const store = populated();
      const before = store.snapshot();
      assert.throws(() => store.restore(bytes), InvalidInputError);
      assert.deepEqual(store.snapshot(), before);
      assert.equal(store.applied, 1);
      assert.deepEqual(store.get("keep")?.value, value);
    });
  }

  test("refuses a key that is not valid UTF-8 (two such keys could decode to one string)", () => {
    const good = encodeSnapshot(meta, [record("ab", 1, 1, 1)], []);
    const bad = good.slice();
    bad[24] = 0xff; // the key's first byte: after f64, f64, u32 count, u32 key length
    assert.throws(() => KvStore.restore(bad), /not valid UTF-8/);
  });

  test("accepts what a store wrote, and the restored state snapshots to the same bytes", () => {
    const bytes = encodeSnapshot(meta, [record("a", 1, 4, 2), record("é", 2, 2, 1), record("\uE000", 3, 3, 1), record("😀", 5, 5, 1)], [
      { clientId: 1, sequence: 9, result: { op: "txn", succeeded: true, revision: 5, results: [{ op: "put", revision: 5 }, { op: "get-forgotten" }, { op: "delete", deleted: 0 }] } },
      { clientId: 4, sequence: 2, result: { op: "cas", succeeded: false, revision: 3 } },
    ]);
    const store = KvStore.restore(bytes);
    const again = KvStore.restore(store.snapshot());
    assert.deepEqual(again.snapshot(), store.snapshot());
    assert.deepEqual(
      store.range("", 10).map((r) => r.key),
      ["a", "é", "\uE000", "😀"],
    );
  });

  test("a snapshot from before there was history starts the history at its revision, from its records", () => {
    const legacy = encodeSnapshot(meta, [record("a", 1, 4, 2), record("b", 2, 2, 1)], []);
    const store = KvStore.restore(legacy);
    assert.equal(store.compactRevision, 5, "nothing is known below the snapshot's revision");
    assert.deepEqual(store.getAt("a", 5), record("a", 1, 4, 2));
    assert.deepEqual(
      store.rangeAt("", 10, { revision: 5 }).map((r) => r.key),
      ["a", "b"],
    );
    assert.throws(() => store.getAt("a", 4), /compacted/);
    const restored = KvStore.restore(store.snapshot());
    assert.deepEqual(restored.snapshot(), store.snapshot(), "and its snapshots now carry that history");
  });
});

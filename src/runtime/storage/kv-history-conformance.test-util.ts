// The history (MVCC) part of the KV backend conformance suite: the backend's history
// primitives, and the store's reads at a revision, compaction and purging over them, run
// against every backend. The oracle for "the state at revision R" is the store's own current
// state recorded right after the write that reached R: a read at R must give what a read
// then gave.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { AssertionError } from "../../core/common/assert.js";
import { utf8Encode } from "../../core/common/utf8.js";
import { txnArbitrary } from "../../core/kv/arbitraries.test-util.js";
import type { KvBackend } from "../../core/kv/backend.js";
import { encodeCommand } from "../../core/kv/command.js";
import { CompactedError, FutureRevisionError, KvStore, type KvChange, type KvRecord } from "../../core/kv/store.js";
import { memoryTwin, type BackendSubject } from "./kv-backend-conformance.test-util.js";

const bytes = (s: string): Uint8Array => utf8Encode(s);
const anonymous = { clientId: 0, sequence: 0 };
const put = (key: string, value: string): Uint8Array => encodeCommand({ op: "put", request: anonymous, key, value: bytes(value) });
const del = (key: string): Uint8Array => encodeCommand({ op: "delete", request: anonymous, key });
const compact = (revision: number): Uint8Array => encodeCommand({ op: "compact", request: anonymous, revision });
const record = (key: string, revision: number, text: string): KvRecord => ({ key, value: bytes(text), createRevision: revision, modRevision: revision, version: 1 });
/** Keys whose UTF-16 and UTF-8 orders differ, one with a zero byte, one a prefix of others. */
const KEYS = ["a", "a\u0000", "a/1", "a/😀", "a/\uE000", "b", "😀", "\uE000"];
const EVERYTHING = 1_000_000;

/** Every change the backend stores, in (revision, key) order. */
function stored(backend: KvBackend): KvChange[] {
  return backend.changesAfter({ revision: 0, afterKey: "" }, EVERYTHING);
}

function brief(changes: readonly KvChange[]): string[] {
  return changes.map((change) => `${change.revision}:${change.key}:${change.record === null ? "deleted" : new TextDecoder().decode(change.record.value)}`);
}

export function kvHistoryConformance(subject: BackendSubject): void {
  describe(`KV history conformance: ${subject.name}`, () => {
    let backend: KvBackend;
    const fresh = (): KvStore => {
      backend.transaction(() => backend.clear());
      return KvStore.open(backend);
    };
    before(() => {
      backend = subject.create();
    });
    after(async () => {
      await subject.dispose(backend);
    });

    test("history primitives: changes by (key, revision), in (revision, key) order, revisions not consecutive", () => {
      fresh();
      backend.transaction(() => {
        for (const change of [
          { key: "a", revision: 3, record: record("a", 3, "x") },
          { key: "a\u0000", revision: 4, record: record("a\u0000", 4, "nul") },
          { key: "😀", revision: 10, record: record("😀", 10, "smile") },
          { key: "b", revision: 10, record: record("b", 10, "z") },
          { key: "a", revision: 10, record: null },
          { key: "\uE000", revision: 10, record: record("\uE000", 10, "private") },
          { key: "a/1", revision: 10, record: record("a/1", 10, "one") },
          { key: "a", revision: 1000, record: record("a", 1000, "y") },
        ]) {
          backend.putChange(change);
        }
      });
      assert.deepEqual(brief(stored(backend)), ["3:a:x", "4:a\u0000:nul", "10:a:deleted", "10:a/1:one", "10:b:z", "10:\uE000:private", "10:😀:smile", "1000:a:y"], "revision order, then the keys' UTF-8 byte order");
      assert.equal(backend.changeAtOrBefore("a", 2), undefined);
      assert.deepEqual(brief([backend.changeAtOrBefore("a", 3), backend.changeAtOrBefore("a", 9), backend.changeAtOrBefore("a", 10), backend.changeAtOrBefore("a", 999), backend.changeAtOrBefore("a", 2 ** 52)] as KvChange[]), ["3:a:x", "3:a:x", "10:a:deleted", "10:a:deleted", "1000:a:y"]);
      assert.deepEqual(brief([backend.changeAfter("a", 0), backend.changeAfter("a", 3), backend.changeAfter("a", 10)] as KvChange[]), ["3:a:x", "10:a:deleted", "1000:a:y"]);
      assert.equal(backend.changeAfter("a", 1000), undefined);
      assert.equal(backend.changeAtOrBefore("nothing", 10), undefined);
      assert.deepEqual(brief(backend.changesAfter({ revision: 10, afterKey: "a/1" }, 2)), ["10:b:z", "10:\uE000:private"], "after a place inside a revision");
      assert.deepEqual(brief(backend.changesAfter({ revision: 10, afterKey: "" }, 1)), ["10:a:deleted"], "from the start of a revision");
      assert.deepEqual(brief(backend.changesAfter({ revision: 5, afterKey: "" }, 1)), ["10:a:deleted"], "from a revision without changes");
      assert.deepEqual(backend.changesAfter({ revision: 1001, afterKey: "" }, 10), []);
      assert.deepEqual(backend.historyKeys({ prefix: "a", limit: 10 }), ["a", "a\u0000", "a/1"], "deleted keys too");
      assert.deepEqual(backend.historyKeys({ prefix: "", limit: 2, after: "a\u0000" }), ["a/1", "b"]);
      assert.deepEqual(backend.historyKeys({ prefix: "z", limit: 10 }), []);
      backend.transaction(() => {
        backend.deleteChange("a\u0000", 4);
        backend.deleteChange("a\u0000", 4);
        backend.deleteChange("never", 1);
        backend.deleteChange("a", 3);
      });
      assert.deepEqual(backend.historyKeys({ prefix: "a", limit: 10 }), ["a", "a/1"], "a key whose last change went is no longer listed");
      assert.equal(backend.changeAtOrBefore("a", 9), undefined);
      assert.throws(
        () =>
          backend.transaction(() => {
            backend.putChange({ key: "c", revision: 2000, record: null });
            backend.deleteChange("b", 10);
            throw new Error("boom");
          }),
        /boom/,
      );
      assert.deepEqual(brief(stored(backend)), ["10:a:deleted", "10:a/1:one", "10:b:z", "10:\uE000:private", "10:😀:smile", "1000:a:y"], "an aborted transaction changed nothing");
      backend.transaction(() => backend.putChange({ key: "c", revision: 2001, record: null }));
      assert.deepEqual(brief([backend.changeAtOrBefore("c", 3000)] as KvChange[]), ["2001:c:deleted"], "a key first written in an aborted transaction is written afresh");
      assert.throws(() => backend.putChange({ key: "c", revision: 1, record: null }), AssertionError, "outside a transaction");
    });

    test("a read at revision R is the state replayed to R, and the changes a watch reads are those between states, for random writes, compactions and purges", () => {
      const keyArbitrary = fc.constantFrom(...KEYS);
      const step: fc.Arbitrary<{ readonly command: Uint8Array } | { readonly purge: number }> = fc.oneof(
        { weight: 5, arbitrary: fc.tuple(keyArbitrary, fc.string({ maxLength: 3 })).map(([key, value]) => ({ command: put(key, value) })) },
        { weight: 2, arbitrary: keyArbitrary.map((key) => ({ command: del(key) })) },
        { weight: 2, arbitrary: txnArbitrary.map((txn) => ({ command: encodeCommand({ ...txn, request: anonymous }) })) },
        { weight: 1, arbitrary: fc.constantFrom("a", "a/", "😀").map((prefix) => ({ command: encodeCommand({ op: "delete-prefix", request: anonymous, prefix }) })) },
        { weight: 2, arbitrary: fc.integer({ min: 1, max: 40 }).map((revision) => ({ command: compact(revision) })) },
        { weight: 2, arbitrary: fc.integer({ min: 1, max: 4 }).map((changesMax) => ({ purge: changesMax })) },
      );
      fc.assert(
        fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
          const store = fresh();
          // The reference never purges: what a node answers and snapshots must not depend on how far it purged.
          const reference = memoryTwin(subject);
          const states = new Map<number, Map<string, KvRecord>>([[0, new Map()]]);
          let index = 1;
          for (const one of steps) {
            if ("purge" in one) {
              store.purgeHistory(one.purge);
              continue;
            }
            store.apply(index, one.command);
            reference.apply(index++, one.command);
            states.set(store.currentRevision, new Map(store.range("", 100).map((r) => [r.key, r])));
          }
          checkReads(store, states);
          checkChanges(store, states);
          assert.deepEqual(store.snapshot(), reference.snapshot());
          const restored = KvStore.restore(store.snapshot());
          checkReads(restored, states);
          while (store.purgeHistory(3));
          checkReads(store, states);
          checkChanges(store, states);
          assert.deepEqual(store.snapshot(), reference.snapshot(), "after purging everything it can");
          assert.deepEqual(brief(stored(backend)), brief(stored(restored.backend)), "a store holds exactly what its snapshot keeps, once purged");
        }),
        { numRuns: 60 },
      );
    });

    test("compaction keeps the changes at its revision, deletes too (etcd-io/etcd#18089), and refuses reads below it", () => {
      const store = fresh();
      store.applyBatch([put("a", "1"), put("b", "2"), del("a"), compact(3)].map((data, i) => ({ index: i + 1, data })));
      assert.equal(store.compactRevision, 3);
      assert.deepEqual(brief(store.changesAfter({ revision: 3, afterKey: "" }, 10)), ["3:a:deleted"], "a watch from the compaction revision sees its delete");
      assert.throws(() => store.changesAfter({ revision: 2, afterKey: "" }, 10), (error) => error instanceof CompactedError && error.compactRevision === 3 && error.revision === 2);
      assert.throws(() => store.getAt("b", 2), CompactedError);
      assert.throws(() => store.rangeAt("", 10, { revision: 2 }), CompactedError);
      assert.throws(() => store.getAt("b", 4), FutureRevisionError);
      assert.equal(store.getAt("a", 3), undefined);
      assert.deepEqual(store.getAt("b", 3)?.value, bytes("2"));
      while (store.purgeHistory(1));
      assert.deepEqual(brief(stored(backend)), ["2:b:2", "3:a:deleted"], "a's put, superseded by the delete at 3, is gone; the delete at 3 stays");
      assert.equal(store.purgePending, false);
      assert.equal(store.recordBefore("a", 3), undefined, "the value before the compaction revision is no longer known");
      let index = 5;
      assert.deepEqual(store.apply(index++, put("c", "3")).result, { op: "put", revision: 4 });
      assert.equal(store.recordBefore("c", 4), null, "absent before it was put");
      assert.deepEqual(store.apply(index++, compact(4)).result, { op: "compact", compacted: true, compactRevision: 4, revision: 4 });
      assert.deepEqual(store.apply(index++, compact(2)).result, { op: "compact", compacted: true, compactRevision: 4, revision: 4 }, "an older point changes nothing");
      assert.deepEqual(store.apply(index++, compact(9)).result, { op: "compact", compacted: false, compactRevision: 4, revision: 4 }, "a future one neither, and says so");
      while (store.purgeHistory(100));
      assert.deepEqual(brief(stored(backend)), ["2:b:2", "4:c:3"], "the delete below the point is gone, and its key with it");
      assert.deepEqual(backend.historyKeys({ prefix: "", limit: 10 }), ["b", "c"]);
      assert.deepEqual(
        store.rangeAt("", 10, { revision: 4 }).map((r) => r.key),
        ["b", "c"],
      );
    });

    if (subject.reopen !== undefined) {
      const reopen = subject.reopen;
      test("the history, the compaction point and the purge's place survive reopening", async () => {
        const store = fresh();
        store.applyBatch([put("a", "1"), put("a", "2"), put("a", "3"), put("b", "4"), compact(4)].map((data, i) => ({ index: i + 1, data })));
        assert.equal(store.purgeHistory(1), true, "one step of several");
        const before = store.snapshot();
        backend = await reopen(backend);
        const reopened = KvStore.open(backend);
        assert.equal(reopened.compactRevision, 4);
        assert.deepEqual(reopened.snapshot(), before);
        while (reopened.purgeHistory(1));
        assert.deepEqual(brief(stored(backend)), ["3:a:3", "4:b:4"]);
        assert.deepEqual(reopened.getAt("a", 4)?.value, bytes("3"));
      });
    }
  });
}

/** Every revision from the compaction point on reads as recorded; below it, CompactedError. */
function checkReads(store: KvStore, states: ReadonlyMap<number, ReadonlyMap<string, KvRecord>>): void {
  for (const [revision, state] of states) {
    if (revision < store.compactRevision) {
      assert.throws(() => store.getAt("a", revision), CompactedError);
      continue;
    }
    for (const key of KEYS) assert.deepEqual(store.getAt(key, revision), state.get(key), `${JSON.stringify(key)} at ${revision}`);
    const all = [...state.values()].sort((x, y) => Buffer.compare(Buffer.from(x.key), Buffer.from(y.key)));
    assert.deepEqual(store.rangeAt("", 100, { revision }), all, `everything at ${revision}`);
    assert.deepEqual(store.rangeAt("a/", 1, { revision, after: "a/1" }), all.filter((r) => r.key.startsWith("a/") && r.key > "a/1").slice(0, 1));
  }
}

/** The changes at each revision from the compaction point on are the keys that differ from the revision before. */
function checkChanges(store: KvStore, states: ReadonlyMap<number, ReadonlyMap<string, KvRecord>>): void {
  const from = Math.max(store.compactRevision, 1);
  const changes = store.changesAfter({ revision: from, afterKey: "" }, EVERYTHING);
  const expected: KvChange[] = [];
  for (let revision = from; states.has(revision); revision++) {
    const now = states.get(revision) as ReadonlyMap<string, KvRecord>;
    const then = states.get(revision - 1) as ReadonlyMap<string, KvRecord>;
    const keys = [...new Set([...now.keys(), ...then.keys()])].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    for (const key of keys) {
      const record = now.get(key);
      if (record !== undefined && record.modRevision === revision) expected.push({ key, revision, record });
      if (record === undefined && then.has(key)) expected.push({ key, revision, record: null });
    }
  }
  assert.deepEqual(changes, expected);
}

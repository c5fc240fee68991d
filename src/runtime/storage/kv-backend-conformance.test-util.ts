// One conformance suite for every KvBackend (openraft's testing/log/suite.rs is the model):
// the KV state machine over the backend under test must behave exactly as over the memory
// backend — same results, same ranges in UTF-8 byte order, byte-identical snapshots — and
// a transaction must commit all or nothing.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fc from "fast-check";
import { AssertionError } from "../../core/common/assert.js";
import { compareBytes } from "../../core/common/bytes.js";
import { InvalidInputError } from "../../core/common/errors.js";
import { limits } from "../../core/common/limits.js";
import { utf8Encode } from "../../core/common/utf8.js";
import { txnArbitrary } from "../../core/kv/arbitraries.test-util.js";
import { MemoryKvBackend, type KvBackend } from "../../core/kv/backend.js";
import { encodeCommand } from "../../core/kv/command.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM, type KvEntry } from "../../core/kv/store.js";

export interface BackendSubject {
  readonly name: string;
  /** A new, empty backend. */
  create(): KvBackend;
  /** Closes `backend` and opens its storage again; absent for a backend that keeps nothing. */
  readonly reopen?: (backend: KvBackend) => Promise<KvBackend>;
  /** Closes it and deletes whatever it stored. */
  dispose(backend: KvBackend): Promise<void>;
  /** The span of the key space the backend holds (absent: every key); its memory twin gets the same. */
  readonly span?: { readonly start: string; readonly end: string | null };
}

/** A store over a memory backend with the subject's span: what the subject must behave exactly as. */
export function memoryTwin(subject: BackendSubject): KvStore {
  const backend = new MemoryKvBackend();
  backend.span = subject.span;
  return new KvStore(backend);
}

const bytes = (s: string): Uint8Array => utf8Encode(s);
const anonymous = { clientId: 0, sequence: 0 };
const put = (key: string, value: string, request = anonymous): Uint8Array => encodeCommand({ op: "put", request, key, value: bytes(value) });
/** Keys whose UTF-16 and UTF-8 orders differ (astral vs U+E000-U+FFFF), and other scripts. */
const KEYS = ["a", "a/1", "a/2", "a/é", "a/😀", "a/\uE000", "a/\uFFFD", "b", "é", "ключ", "日本", "\uE000", "😀", "🙂", "z"];

const T0 = Date.UTC(2026, 11, 1);
const leased = (key: string, lease: number): Uint8Array => encodeCommand({ op: "put", request: anonymous, key, value: bytes("l"), lease });

/** Applies entries from `index` on, returning the next free index. */
function entries(from: number, data: readonly Uint8Array[]): KvEntry[] {
  return data.map((one, i) => ({ index: from + i, data: one }));
}

export function kvBackendConformance(subject: BackendSubject): void {
  describe(`KV backend conformance: ${subject.name}`, () => {
    let backend: KvBackend;
    // Each test starts from an empty backend; cheaper than a new one per test for LMDB.
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

    test("applyBatch applies every entry and stores the applied index and revision with the data", () => {
      const store = fresh();
      const applied = store.applyBatch(entries(1, [put("a", "1"), put("b", "2", { clientId: SELF_ASSIGNED_SESSIONS_FROM + 5, sequence: 1 }), new Uint8Array(), new Uint8Array([9]), encodeCommand({ op: "delete", request: anonymous, key: "a" })]));
      assert.deepEqual(
        applied.map((one) => one.result),
        [{ op: "put", revision: 1 }, { op: "put", revision: 2 }, { op: "noop" }, { op: "rejected", reason: "unknown command version 9" }, { op: "delete", deleted: 1, revision: 3 }],
      );
      assert.deepEqual(backend.readMeta(), { appliedIndex: 5, revision: 3, clockMs: 0, compactRevision: 0, purged: { revision: 0, afterKey: "" } });
      const reopened = KvStore.open(backend);
      assert.equal(reopened.applied, 5);
      assert.equal(reopened.currentRevision, 3);
      assert.equal(reopened.get("a"), undefined);
      assert.deepEqual(reopened.get("b"), { key: "b", value: bytes("2"), createRevision: 2, modRevision: 2, version: 1 });
      assert.equal(reopened.apply(6, put("b", "2", { clientId: SELF_ASSIGNED_SESSIONS_FROM + 5, sequence: 1 })).duplicate, true, "the session was stored too");
      assert.deepEqual(store.applyBatch([]), []);
    });

    test("ranges: by prefix, limited, paged with `after`, in UTF-8 byte order", () => {
      const store = fresh();
      store.applyBatch(entries(1, [...KEYS].reverse().map((key) => put(key, key))));
      const byteOrder = [...KEYS].sort((x, y) => compareBytes(bytes(x), bytes(y)));
      assert.deepEqual(
        store.range("", 100).map((record) => record.key),
        byteOrder,
      );
      assert.deepEqual(
        store.range("a/", 100).map((record) => record.key),
        byteOrder.filter((key) => key.startsWith("a/")),
      );
      assert.deepEqual(
        store.range("a/", 2).map((record) => record.key),
        ["a/1", "a/2"],
      );
      assert.deepEqual(store.range("", 0), []);
      assert.deepEqual(store.range("nothing", 10), []);
      assert.deepEqual(store.range("k".repeat(limits.keyBytesMax + 5), 10), [], "a prefix longer than any key matches nothing");
      // Paging: each page continues after the last key of the one before.
      const paged: string[] = [];
      for (let page = 0, last: string | undefined; page < KEYS.length; page++) {
        const records = store.range("", 4, last === undefined ? {} : { after: last });
        if (records.length === 0) break;
        paged.push(...records.map((record) => record.key));
        last = records[records.length - 1]?.key;
      }
      assert.deepEqual(paged, byteOrder);
      assert.deepEqual(
        store.range("a/", 10, { after: "a/3" }).map((record) => record.key),
        ["a/é", "a/\uE000", "a/\uFFFD", "a/😀"],
        "`after` need not be a stored key",
      );
      assert.deepEqual(
        store.range("a/", 2, { after: "0" }).map((record) => record.key),
        ["a/1", "a/2"],
        "`after` before the prefix",
      );
      assert.deepEqual(store.range("a/", 2, { after: "b" }), [], "`after` past the prefix");
      assert.deepEqual(store.range("", 10, { after: "\u{10FFFF}".repeat(limits.keyBytesMax) }), [], "`after` past every key");
      const longAfter = "y".repeat(limits.keyBytesMax + 5);
      assert.deepEqual(
        store.range("", 100, { after: longAfter }).map((record) => record.key),
        byteOrder.filter((key) => compareBytes(bytes(key), bytes(longAfter)) > 0),
        "`after` longer than any key",
      );
    });

    test("lone surrogates name the same key as U+FFFD, as their UTF-8 does", () => {
      const store = fresh();
      store.apply(1, put("x\uD800", "lone"));
      assert.deepEqual(store.get("x\uFFFD")?.value, bytes("lone"));
      assert.deepEqual(store.get("x\uDC00")?.value, bytes("lone"));
      assert.equal(store.range("x\uD800", 10).length, 1);
    });

    test("the same commands give the same results, ranges and byte-identical snapshots as the memory backend", () => {
      const commandArbitrary: fc.Arbitrary<Uint8Array> = fc.oneof(
        { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...KEYS), fc.string({ maxLength: 4 })).map(([key, value]) => put(key, value)) },
        { weight: 2, arbitrary: fc.constantFrom(...KEYS).map((key) => encodeCommand({ op: "delete", request: anonymous, key })) },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...KEYS), fc.nat({ max: 6 })).map(([key, expectedRevision]) => encodeCommand({ op: "cas-revision", request: anonymous, key, expectedRevision, value: bytes("c") })) },
        { weight: 3, arbitrary: txnArbitrary.map((command) => encodeCommand({ ...command, request: anonymous })) },
        { weight: 1, arbitrary: fc.constantFrom("a", "a/", "é", "😀", "\uE000", "z").map((prefix) => encodeCommand({ op: "delete-prefix", request: anonymous, prefix })) },
        { weight: 1, arbitrary: fc.constant(new Uint8Array()) },
        // Leases: ids are grant indexes, so small ids name a lease now and then.
        { weight: 1, arbitrary: fc.integer({ min: 1000, max: 5000 }).map((ttlMs) => encodeCommand({ op: "lease-grant", request: { ...anonymous, timeMs: T0 }, ttlMs })) },
        { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...KEYS), fc.integer({ min: 1, max: 12 })).map(([key, lease]) => encodeCommand({ op: "put", request: anonymous, key, value: bytes("l"), lease })) },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom("lease-keepalive", "lease-revoke"), fc.integer({ min: 1, max: 12 }), fc.nat({ max: 6000 })).map(([op, lease, ms]) => encodeCommand({ op, request: { ...anonymous, timeMs: T0 + ms }, lease })) },
        { weight: 1, arbitrary: fc.tuple(fc.nat({ max: 8000 }), fc.boolean()).map(([ms, newLeader]) => encodeCommand({ op: "clock", request: { ...anonymous, timeMs: T0 + ms }, newLeader })) },
      );
      // Sessions: a few clients whose sequences mostly grow and sometimes repeat.
      const sessionArbitrary = fc.option(fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: -1, max: 2 })), { freq: 2 });
      fc.assert(
        fc.property(fc.array(fc.tuple(commandArbitrary, sessionArbitrary), { maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 5 }), (commands, batchSizes) => {
          const reference = memoryTwin(subject);
          const store = fresh();
          const sequences = new Map<number, number>();
          const data = commands.map(([command, session]) => (session === null ? command : withSession(command, session, sequences)));
          const expected = data.map((one, i) => reference.apply(i + 1, one));
          const actual = [];
          for (let at = 0, batch = 0; at < data.length; batch++) {
            const size = batchSizes[batch % batchSizes.length] as number;
            actual.push(...store.applyBatch(entries(at + 1, data.slice(at, at + size))));
            at += size;
          }
          assert.deepEqual(actual, expected);
          assert.deepEqual(store.snapshot(), reference.snapshot());
          assert.deepEqual(store.range("a", 5), reference.range("a", 5));
          assert.deepEqual(KvStore.open(backend).snapshot(), reference.snapshot(), "what the backend holds, not only the store's caches");
          assert.equal(store.keys, reference.keys, "the key count kept by the store");
          assert.equal(backend.recordCount(), reference.keys, "the key count the backend gives");
          assert.deepEqual(store.leases(100), reference.leases(100));
          for (const key of KEYS) assert.equal(store.leaseOf(key), reference.leaseOf(key));
        }),
        { numRuns: 50 },
      );
    });

    test("a range delete removes every key under its prefix, in UTF-8 byte order, as one revision, however many", () => {
      const store = fresh();
      const many = Array.from({ length: 2100 }, (_, i) => `m/${String(i).padStart(5, "0")}`);
      store.applyBatch(entries(1, [...KEYS, ...many, "m", "n/1"].map((key) => put(key, key))));
      const revision = store.currentRevision;
      assert.equal(store.keys, KEYS.length + many.length + 2);
      let index = store.applied + 1;
      const deletePrefix = (prefix: string, request = anonymous) => store.apply(index++, encodeCommand({ op: "delete-prefix", request, prefix }));
      assert.deepEqual(deletePrefix("m/").result, { op: "delete-prefix", deleted: many.length, revision: revision + 1 }, "more keys than one page");
      assert.deepEqual(store.range("m", 10).map((record) => record.key), ["m"], "the prefix itself is not a key under m/");
      const session = { clientId: SELF_ASSIGNED_SESSIONS_FROM + 6, sequence: 1 };
      assert.deepEqual(deletePrefix("a/", session).result, { op: "delete-prefix", deleted: KEYS.filter((key) => key.startsWith("a/")).length, revision: revision + 2 });
      assert.deepEqual(deletePrefix("a/", session), { request: session, result: { op: "delete-prefix", deleted: 6, revision: revision + 2 }, duplicate: true }, "a retry answers as the first did");
      assert.deepEqual(deletePrefix("nothing").result, { op: "delete-prefix", deleted: 0, revision: revision + 2 }, "no key matched: no new revision");
      assert.deepEqual(store.range("", 100).map((record) => record.key), [...KEYS.filter((key) => !key.startsWith("a/")), "m", "n/1"].sort((x, y) => compareBytes(bytes(x), bytes(y))));
      assert.equal(store.keys, KEYS.length - 6 + 2);
      assert.equal(backend.recordCount(), store.keys);
      assert.equal(KvStore.open(backend).keys, store.keys, "counted again from the backend");
    });

    test("restore replaces the state in one transaction; a bad snapshot changes nothing", () => {
      const source = memoryTwin(subject);
      source.applyBatch(entries(1, [put("😀", "1"), put("a", "2", { clientId: SELF_ASSIGNED_SESSIONS_FROM + 4, sequence: 7 }), put("\uE000", "3")]));
      const store = fresh();
      store.applyBatch(entries(1, [put("old", "x"), put("a", "x")]));
      store.restore(source.snapshot());
      assert.deepEqual(store.snapshot(), source.snapshot());
      assert.equal(store.keys, 3);
      assert.equal(store.get("old"), undefined);
      assert.equal(KvStore.open(backend).applied, 3);
      const before = store.snapshot();
      const truncated = before.slice(0, before.length - 3);
      assert.throws(() => store.restore(truncated), InvalidInputError);
      assert.deepEqual(store.snapshot(), before);
      assert.deepEqual(KvStore.open(backend).snapshot(), before);
    });

    test("a transaction that throws leaves the backend and the store as they were", () => {
      const store = fresh();
      store.applyBatch(entries(1, [put("a", "1"), put("b", "2", { clientId: SELF_ASSIGNED_SESSIONS_FROM + 2, sequence: 1 })]));
      const before = store.snapshot();
      const boom = new Error("boom");
      assert.throws(
        () =>
          backend.transaction(() => {
            backend.putRecord({ key: "c", value: bytes("3"), createRevision: 3, modRevision: 3, version: 1 });
            backend.deleteRecord("a");
            backend.putSession({ clientId: 2, sequence: 9, result: { op: "noop" } });
            backend.putSession({ clientId: 3, sequence: 1, result: { op: "noop" } });
            backend.writeMeta({ appliedIndex: 99, revision: 99 });
            backend.putChange({ key: "c", revision: 3, record: { key: "c", value: bytes("3"), createRevision: 3, modRevision: 3, version: 1 } });
            backend.deleteChange("a", 1);
            backend.clear();
            backend.putRecord({ key: "d", value: bytes("4"), createRevision: 1, modRevision: 1, version: 1 });
            backend.putChange({ key: "d", revision: 1, record: null });
            throw boom;
          }),
        (error) => error === boom,
      );
      assert.deepEqual(KvStore.open(backend).snapshot(), before);
      assert.deepEqual(backend.readMeta(), { appliedIndex: 2, revision: 2, clockMs: 0, compactRevision: 0, purged: { revision: 0, afterKey: "" } });
      // Through the store: an entry out of order in a batch undoes the batch and the caches.
      assert.throws(() => store.applyBatch([{ index: 3, data: put("c", "3") }, { index: 5, data: put("d", "4") }]), AssertionError);
      assert.equal(store.applied, 2);
      assert.equal(store.currentRevision, 2);
      assert.equal(store.keys, 2);
      assert.deepEqual(store.snapshot(), before);
      assert.deepEqual(store.apply(3, put("c", "3")).result, { op: "put", revision: 3 }, "and the store goes on from where it was");
    });

    test("leases: attachments follow puts and deletes; a transaction that throws undoes lease writes too", () => {
      const store = fresh();
      store.applyBatch(entries(1, [encodeCommand({ op: "clock", request: { ...anonymous, timeMs: T0 } }), encodeCommand({ op: "lease-grant", request: anonymous, ttlMs: 5000 }), leased("a", 2), leased("😀", 2), leased("b", 2)]));
      assert.deepEqual(store.leaseKeys(2, 10), ["a", "b", "😀"], "in UTF-8 byte order");
      assert.deepEqual(store.leaseKeys(2, 1, "a"), ["b"]);
      const before = store.snapshot();
      assert.throws(() => store.applyBatch(entries(6, [encodeCommand({ op: "lease-revoke", request: anonymous, lease: 2 }), encodeCommand({ op: "lease-grant", request: anonymous, ttlMs: 5000 }), put("c", "1")]).concat([{ index: 99, data: put("d", "1") }])));
      assert.deepEqual(KvStore.open(backend).snapshot(), before);
      assert.deepEqual(store.leaseKeys(2, 10), ["a", "b", "😀"]);
      assert.equal(store.leaseCount, 1);
      store.applyBatch(entries(6, [encodeCommand({ op: "delete", request: anonymous, key: "a" }), put("b", "no lease")]));
      assert.deepEqual(store.leaseKeys(2, 10), ["😀"]);
      assert.deepEqual(store.applyBatch(entries(8, [encodeCommand({ op: "clock", request: { ...anonymous, timeMs: T0 + 5000 } })]))[0]?.result, { op: "clock", expired: [{ id: 2, deleted: 1, revision: 6 }] });
      assert.equal(store.get("😀"), undefined);
      assert.equal(store.leaseCount, 0);
      assert.deepEqual([...backend.allLeases()], []);
    });

    test("reads inside a transaction see its writes; reads outside see the last commit", () => {
      fresh();
      const record = { key: "k", value: bytes("v"), createRevision: 1, modRevision: 1, version: 1 };
      backend.transaction(() => {
        backend.putRecord(record);
        assert.deepEqual(backend.getRecord("k"), record);
        assert.deepEqual(backend.rangeRecords({ prefix: "", limit: 10 }), [record]);
        backend.deleteRecord("k");
        assert.equal(backend.getRecord("k"), undefined);
        backend.putRecord(record);
      });
      assert.deepEqual(backend.getRecord("k"), record);
      assert.deepEqual([...backend.allRecords()], [record]);
    });

    test("writes outside a transaction, and transactions inside one, are programming errors", () => {
      fresh();
      assert.throws(() => backend.putRecord({ key: "k", value: bytes("v"), createRevision: 1, modRevision: 1, version: 1 }), AssertionError);
      assert.throws(() => backend.writeMeta({ appliedIndex: 1, revision: 0 }), AssertionError);
      assert.throws(() => backend.transaction(() => backend.transaction(() => 1)), AssertionError);
      assert.equal(backend.getRecord("k"), undefined);
    });

    test("keys of the maximum length and values of the maximum size", () => {
      const store = fresh();
      const longKey = "😀".repeat(limits.keyBytesMax / 4);
      const bigValue = new Uint8Array(limits.valueBytesMax).map((_, i) => i % 251);
      store.apply(1, encodeCommand({ op: "put", request: anonymous, key: longKey, value: bigValue }));
      assert.deepEqual(store.get(longKey)?.value, bigValue);
      assert.equal(store.range("😀", 1)[0]?.key, longKey);
    });

    if (subject.reopen !== undefined) {
      const reopen = subject.reopen;
      test("reopening recovers the applied index, revision, records, sessions and leases", async () => {
        const store = fresh();
        store.applyBatch(entries(1, [put("a", "1"), put("😀", "2", { clientId: SELF_ASSIGNED_SESSIONS_FROM + 8, sequence: 3 }), encodeCommand({ op: "delete", request: anonymous, key: "a" }), encodeCommand({ op: "lease-grant", request: { ...anonymous, timeMs: T0 }, ttlMs: 5000 }), leased("l", 4)]));
        const before = store.snapshot();
        backend = await reopen(backend);
        const reopened = KvStore.open(backend);
        assert.equal(reopened.applied, 5);
        assert.equal(reopened.currentRevision, 4);
        assert.deepEqual(reopened.snapshot(), before);
        assert.deepEqual(reopened.leaseKeys(4, 10), ["l"]);
        assert.equal(reopened.apply(6, put("😀", "2", { clientId: SELF_ASSIGNED_SESSIONS_FROM + 8, sequence: 3 })).duplicate, true);
      });
    }
  });
}

/** The command with a session: client `clientId`, its sequence moved by `step` (0 or less repeats one). */
function withSession(command: Uint8Array, [clientId, step]: [number, number], sequences: Map<number, number>): Uint8Array {
  if (command.length === 0) return command;
  const sequence = Math.max(0, (sequences.get(clientId) ?? 0) + step);
  sequences.set(clientId, Math.max(sequence, sequences.get(clientId) ?? 0));
  const withRequest = command.slice();
  const view = new DataView(withRequest.buffer);
  view.setFloat64(2, SELF_ASSIGNED_SESSIONS_FROM + clientId);
  view.setFloat64(10, sequence);
  return withRequest;
}

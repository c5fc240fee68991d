import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { open } from "lmdb";
import { AssertionError } from "../../core/common/assert.js";
import { InvalidInputError } from "../../core/common/errors.js";
import { limits } from "../../core/common/limits.js";
import { utf8Encode } from "../../core/common/utf8.js";
import { encodeCommand } from "../../core/kv/command.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM } from "../../core/kv/store.js";
import { LmdbKvBackend } from "./kv-lmdb.js";
import { LmdbKvEnvironment } from "./kv-lmdb-env.js";
import { KvGroupSpanError, WHOLE_KEY_SPACE, type KvSpan } from "./kv-lmdb-groups.js";

const MARKER = "synod-kv-marker.json";
/** A store written by the synod before groups (see its README.md). */
const SINGLE_GROUP_FIXTURE = fileURLToPath(new URL("../../../src/runtime/storage/testdata/kv-lmdb-single-group/", import.meta.url));
const directories: string[] = [];
afterEach(() => {
  for (const path of directories.splice(0)) rmSync(path, { recursive: true, force: true });
});
function directory(): string {
  const path = mkdtempSync(join(tmpdir(), "synod-kv-env-"));
  directories.push(path);
  return path;
}

const anonymous = { clientId: 0, sequence: 0 };
const put = (key: string, value: string, request = anonymous): Uint8Array => encodeCommand({ op: "put", request, key, value: utf8Encode(value) });
const T0 = Date.UTC(2026, 11, 1);

/** Applies a little of everything to a group: records, a session, a lease and its key, a deletion, a compaction, an auth change. */
function fill(store: KvStore, keys: readonly string[]): void {
  const commands = [
    encodeCommand({ op: "clock", request: { ...anonymous, timeMs: T0 } }),
    encodeCommand({ op: "lease-grant", request: anonymous, ttlMs: 60_000 }),
    ...keys.map((key, i) => (i === 0 ? encodeCommand({ op: "put", request: anonymous, key, value: utf8Encode("leased"), lease: store.applied + 2 }) : put(key, `${key}!`, { clientId: SELF_ASSIGNED_SESSIONS_FROM + 1, sequence: store.applied + 3 + i }))),
    encodeCommand({ op: "delete", request: anonymous, key: keys[1] as string }),
    put(keys[1] as string, "again"),
    encodeCommand({ op: "compact", request: anonymous, revision: 2 }),
    encodeCommand({ op: "auth", request: anonymous, change: { kind: "role-add", name: `role-of-${keys[0]}` } }),
  ];
  store.applyBatch(commands.map((data, i) => ({ index: store.applied + 1 + i, data })));
}

const SPANS: readonly [number, KvSpan, readonly string[]][] = [
  [0, { start: "", end: "g" }, ["a", "b", "c/1"]],
  [12, { start: "g", end: "p" }, ["g", "hello", "o😀"]],
  [0xffff_ffff, { start: "p", end: null }, ["p", "z", "😀"]],
];

describe("LMDB environment: groups", () => {
  test("every group's state survives closing and reopening, and the environment lists its groups", async () => {
    const path = directory();
    let environment = LmdbKvEnvironment.open({ path, bootId: () => "boot-1" });
    const before = new Map<number, Uint8Array>();
    for (const [group, span, keys] of SPANS) {
      const store = KvStore.open(environment.group(group, span));
      fill(store, keys);
      before.set(group, store.snapshot());
    }
    await environment.close();
    assert.deepEqual(JSON.parse(readFileSync(join(path, MARKER), "utf8")), { state: "clean", bootId: "boot-1" });
    environment = LmdbKvEnvironment.open({ path, bootId: () => "boot-2" });
    assert.equal(environment.trusted, true, "closed cleanly: trusted after a reboot");
    assert.deepEqual(
      environment.groups(),
      SPANS.map(([group, span]) => ({ group, span })),
    );
    for (const [group, span, keys] of SPANS) {
      const store = KvStore.open(environment.group(group, span));
      assert.deepEqual(store.snapshot(), before.get(group), `group ${group} as it was`);
      assert.equal(store.keys, keys.length);
      assert.equal(store.leaseCount, 1);
    }
    await environment.close();
  });

  test("an environment that cannot be trusted starts empty, every group with it, and says why", async () => {
    const path = directory();
    let environment = LmdbKvEnvironment.open({ path, bootId: () => "boot-1" });
    for (const [group, span, keys] of SPANS) fill(KvStore.open(environment.group(group, span)), keys);
    await environment.close();
    // What the marker would say had the machine died with the environment open.
    writeFileSync(join(path, MARKER), JSON.stringify({ state: "dirty", bootId: "boot-1" }));
    const logged: string[] = [];
    environment = LmdbKvEnvironment.open({ path, bootId: () => "boot-2", log: (message) => logged.push(message) });
    assert.equal(environment.trusted, false);
    assert.match(environment.reason ?? "", /machine restarted/);
    assert.equal(logged.length, 1);
    assert.deepEqual(environment.groups(), [], "no group is left: each is rebuilt from its snapshot");
    for (const [group, span] of SPANS) {
      const backend = environment.group(group, span);
      assert.equal(KvStore.open(backend).applied, 0);
      assert.equal(backend.recordCount(), 0);
      assert.deepEqual([...backend.allSessions()], []);
      assert.deepEqual(backend.changesAfter({ revision: 0, afterKey: "" }, 100), []);
    }
    await environment.close();
  });

  test("spans: overlapping, reversed, empty or malformed spans are refused, and a stored group keeps its span", async () => {
    const environment = LmdbKvEnvironment.open({ path: directory() });
    const middle = environment.group(5, { start: "f", end: "m" });
    const overlapping: KvSpan[] = [WHOLE_KEY_SPACE, { start: "a", end: "g" }, { start: "l", end: null }, { start: "g", end: "h" }, { start: "", end: "f\u0000" }];
    for (const span of overlapping) assert.throws(() => environment.group(6, span), KvGroupSpanError, JSON.stringify(span));
    for (const span of [{ start: "m", end: "m" }, { start: "n", end: "m" }, { start: "x\uD800", end: null }, { start: "k".repeat(limits.keyBytesMax + 1), end: null }]) {
      assert.throws(() => environment.group(6, span), InvalidInputError, JSON.stringify(span).slice(0, 40));
    }
    assert.throws(() => environment.group(5, { start: "f", end: "n" }), KvGroupSpanError, "not the span it is stored with");
    assert.equal(environment.group(5, { start: "f", end: "m" }), middle, "the same backend, asked again");
    // Touching spans are not overlapping ones.
    environment.group(6, { start: "m", end: null });
    environment.group(7, { start: "", end: "f" });
    assert.deepEqual(
      environment.groups().map(({ group }) => group),
      [5, 6, 7],
    );
    await environment.close();
  });

  test("a record outside its group's span, and a transaction inside another group's, are programming errors", async () => {
    const environment = LmdbKvEnvironment.open({ path: directory() });
    const left = environment.group(1, { start: "", end: "m" });
    const right = environment.group(2, { start: "m", end: null });
    const record = { key: "m", value: utf8Encode("v"), createRevision: 1, modRevision: 1, version: 1 };
    assert.throws(() => left.transaction(() => left.putRecord(record)), AssertionError);
    assert.throws(() => left.getRecord("m"), AssertionError);
    assert.throws(() => left.transaction(() => left.deleteRecord("zz")), AssertionError);
    assert.throws(() => right.getRecord("l"), AssertionError);
    assert.throws(() => left.transaction(() => right.transaction(() => right.putRecord(record))), AssertionError);
    right.transaction(() => right.putRecord(record));
    assert.deepEqual(right.getRecord("m"), record);
    assert.deepEqual(left.rangeRecords({ prefix: "", limit: 10 }), [], "a range of every key reads the group's span only");
    assert.equal(left.recordCount(), 0);
    await environment.close();
  });
});

describe("LMDB environment: splitting a span, dropping a group", () => {
  /** Group 1 over every key, holding `a0`..`z9`. */
  function parentWithKeys(environment: LmdbKvEnvironment): KvStore {
    const store = KvStore.open(environment.group(1, WHOLE_KEY_SPACE));
    const keys = [..."abcdefghijklmnopqrstuvwxyz"].flatMap((letter) => Array.from({ length: 10 }, (_, i) => `${letter}${i}`));
    store.applyBatch(keys.map((key, i) => ({ index: i + 1, data: put(key, key) })));
    return store;
  }

  test("setSpan shrinks a group in its transaction and a child takes the rest, no record copied; both survive reopening", async () => {
    const path = directory();
    let environment = LmdbKvEnvironment.open({ path });
    const parent = parentWithKeys(environment);
    const entries = () => (environment.databases.main.getStats() as { entryCount: number }).entryCount;
    const entriesBefore = entries();
    parent.backend.transaction(() => {
      (parent.backend as LmdbKvBackend).setSpan({ start: "", end: "n" });
      assert.equal(parent.backend.recordCount(), 130, "counted in the transaction");
    });
    assert.throws(() => environment.group(1, WHOLE_KEY_SPACE), KvGroupSpanError, "stored with its new span");
    const child = environment.group(2, { start: "n", end: null });
    assert.equal(child.recordCount(), 130);
    assert.deepEqual(child.getRecord("n0")?.value, utf8Encode("n0"));
    assert.equal(entries(), entriesBefore + 0, "no record was written by the split");
    assert.deepEqual(
      parent.backend.rangeRecords({ prefix: "", limit: 1000, after: "m8" }).map(({ key }) => key),
      ["m9"],
    );
    assert.equal(KvStore.open(parent.backend).keys, 130);
    await environment.close();
    environment = LmdbKvEnvironment.open({ path });
    assert.deepEqual(environment.groups(), [
      { group: 1, span: { start: "", end: "n" } },
      { group: 2, span: { start: "n", end: null } },
    ]);
    assert.equal(environment.group(1, { start: "", end: "n" }).recordCount(), 130);
    assert.equal(environment.group(2, { start: "n", end: null }).recordCount(), 130);
    await environment.close();
  });

  test("a span change that aborts, or that would overlap another group, leaves the span and the count as they were", async () => {
    const environment = LmdbKvEnvironment.open({ path: directory() });
    const parent = parentWithKeys(environment).backend as LmdbKvBackend;
    parent.transaction(() => parent.setSpan({ start: "", end: "t" }));
    environment.group(3, { start: "t", end: null });
    assert.throws(() =>
      parent.transaction(() => {
        parent.setSpan({ start: "", end: "c" });
        throw new Error("boom");
      }),
    );
    assert.deepEqual(parent.span, { start: "", end: "t" });
    assert.equal(parent.recordCount(), 190);
    assert.throws(() => parent.transaction(() => parent.setSpan({ start: "", end: "u" })), KvGroupSpanError);
    assert.deepEqual(parent.span, { start: "", end: "t" });
    assert.equal(parent.recordCount(), 190);
    assert.throws(() => environment.group(4, { start: "c", end: "d" }), KvGroupSpanError, "the span is still group 1's");
    await environment.close();
  });

  test("dropGroup removes the group's records and everything of its own; its span is free again; others are untouched", async () => {
    const environment = LmdbKvEnvironment.open({ path: directory() });
    const stores = SPANS.map(([group, span, keys]) => {
      const store = KvStore.open(environment.group(group, span));
      fill(store, keys);
      return store;
    });
    const [first, second, third] = stores as [KvStore, KvStore, KvStore];
    const kept = [first.snapshot(), third.snapshot()];
    const main = environment.databases.main;
    const entriesBefore = (main.getStats() as { entryCount: number }).entryCount;
    environment.dropGroup(12);
    assert.equal((main.getStats() as { entryCount: number }).entryCount, entriesBefore - second.keys, "its records are gone from the main database");
    for (const database of [environment.databases.history, environment.databases.leases, environment.databases.groups]) {
      assert.equal(database.getKeysCount({ start: Buffer.from([0x10, 0, 0, 0, 12]), end: Buffer.from([0x10, 0, 0, 0, 13]) }), 0, "nothing under its prefix");
    }
    assert.throws(() => second.backend.transaction(() => 0), AssertionError, "its backend is closed");
    assert.deepEqual([first.snapshot(), third.snapshot()], kept);
    environment.dropGroup(12);
    const taker = environment.group(40, { start: "h", end: "i" });
    assert.equal(taker.recordCount(), 0);
    // Group 0 cleared: its keys have no prefix, and the other groups' are still there.
    const history = third.backend.changesAfter({ revision: 0, afterKey: "" }, 100);
    assert.ok(history.length > 0);
    first.backend.transaction(() => first.backend.clear());
    assert.deepEqual(third.snapshot(), kept[1]);
    assert.deepEqual(third.backend.changesAfter({ revision: 0, afterKey: "" }, 100), history);
    assert.deepEqual(KvStore.open(third.backend).leases(10), third.leases(10));
    await environment.close();
  });
});

describe("LMDB environment: a store from before groups", () => {
  const expected = JSON.parse(readFileSync(join(SINGLE_GROUP_FIXTURE, "expected.json"), "utf8")) as { applied: number; revision: number; keys: number; sessions: number; leases: number; compactRevision: number };

  function fixtureCopy(): string {
    const path = directory();
    cpSync(SINGLE_GROUP_FIXTURE, path, { recursive: true });
    return path;
  }

  test("opens as group 0 over the whole key space, its data intact, and another group cannot claim any of it", async () => {
    const environment = LmdbKvEnvironment.open({ path: fixtureCopy(), bootId: () => "another-boot" });
    assert.equal(environment.trusted, true);
    assert.deepEqual(environment.groups(), [{ group: 0, span: WHOLE_KEY_SPACE }]);
    const backend = environment.group(0, WHOLE_KEY_SPACE);
    const store = KvStore.open(backend);
    const snapshot = readFileSync(join(SINGLE_GROUP_FIXTURE, "expected-snapshot.bin"));
    assert.deepEqual(Buffer.from(store.snapshot()), snapshot);
    const builder = backend.beginSnapshot();
    while (!builder.step(10));
    assert.deepEqual(Buffer.from(builder.data), snapshot, "the built snapshot too");
    assert.deepEqual({ applied: store.applied, revision: store.currentRevision, keys: store.keys, sessions: store.sessions, leases: store.leaseCount, compactRevision: store.compactRevision }, expected);
    assert.throws(() => environment.group(1, { start: "zz", end: null }), KvGroupSpanError);
    await environment.close();
  });

  test("LmdbKvBackend.open opens it as before, and writes go where the synod before groups put them", async () => {
    const path = fixtureCopy();
    const { backend, trusted } = LmdbKvBackend.open({ path });
    assert.equal(trusted, true);
    const store = KvStore.open(backend);
    assert.equal(store.applied, expected.applied);
    store.applyBatch([put("new", "1", { clientId: SELF_ASSIGNED_SESSIONS_FROM + 9, sequence: 1 }), encodeCommand({ op: "lease-grant", request: anonymous, ttlMs: 5000 })].map((data, i) => ({ index: expected.applied + 1 + i, data })));
    await backend.close();
    // Read back without this module: every key where the single-group layout has it.
    const raw = open<Buffer, Buffer>({ path, noSubdir: false, keyEncoding: "binary", encoding: "binary", cache: false, compression: false });
    const firstBytes = new Set([...raw.getKeys({ end: Buffer.from([0x03]) })].map((key) => key[0]));
    assert.deepEqual([...firstBytes].sort(), [0x00, 0x01, 0x02], "meta and auth, records, sessions");
    assert.deepEqual([...raw.getKeys({ start: Buffer.from([0x03]) })].map((key) => key.toString().replace(/\0$/, "")), ["groups", "history", "leases"], "LMDB's names of the named databases");
    for (const name of ["history", "leases"]) {
      const database = raw.openDB<Buffer, Buffer>({ name, keyEncoding: "binary", encoding: "binary", cache: false, compression: false });
      assert.equal(database.getKeysCount({ start: Buffer.from([0x10]) }), 0, `no group prefix in ${name}`);
      assert.ok(database.getKeysCount({ end: Buffer.from([0x10]) }) > 0, `group 0's ${name} as before`);
    }
    const groups = raw.openDB<Buffer, Buffer>({ name: "groups", keyEncoding: "binary", encoding: "binary", cache: false, compression: false });
    assert.deepEqual([...groups.getKeys()], [Buffer.from([0x01, 0, 0, 0, 0])], "the registry's entry for group 0, and nothing else");
    assert.deepEqual(raw.getBinary(Buffer.concat([Buffer.from([0x01]), Buffer.from("new")]))?.subarray(24), Buffer.from("1"), "the new record, at 0x01 | its key");
    await raw.close();
  });
});

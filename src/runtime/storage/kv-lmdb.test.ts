import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { open } from "lmdb";
import { utf8Encode } from "../../core/common/utf8.js";
import { encodeCommand } from "../../core/kv/command.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM } from "../../core/kv/store.js";
import { KvStorageFormatError, LmdbKvBackend, readBootId, UNKNOWN_BOOT_ID } from "./kv-lmdb.js";

const MARKER = "synod-kv-marker.json";
const directories: string[] = [];
afterEach(() => {
  for (const path of directories.splice(0)) rmSync(path, { recursive: true, force: true });
});
function directory(): string {
  const path = mkdtempSync(join(tmpdir(), "synod-kv-lmdb-"));
  directories.push(path);
  return path;
}

const put = (key: string, value: string): Uint8Array => encodeCommand({ op: "put", request: { clientId: 0, sequence: 0 }, key, value: utf8Encode(value) });

/** Opens a store at `path` under boot `bootId`, applies one put, and closes it cleanly. */
async function storeOneKey(path: string, bootId: string): Promise<void> {
  const { backend } = LmdbKvBackend.open({ path, bootId: () => bootId });
  KvStore.open(backend).apply(1, put("k", "v"));
  await backend.close();
}

/** What the marker would say had the process died with the store open under `bootId`. */
function markDirty(path: string, bootId: string): void {
  writeFileSync(join(path, MARKER), JSON.stringify({ state: "dirty", bootId }));
}

describe("LMDB KV store: trusting the database after a crash", () => {
  test("a new store is trusted; while open its marker says dirty under this boot", async () => {
    const path = directory();
    const opened = LmdbKvBackend.open({ path, bootId: () => "boot-1" });
    assert.equal(opened.trusted, true);
    assert.equal(opened.reason, null);
    assert.deepEqual(JSON.parse(readFileSync(join(path, MARKER), "utf8")), { state: "dirty", bootId: "boot-1" });
    await opened.backend.close();
    assert.deepEqual(JSON.parse(readFileSync(join(path, MARKER), "utf8")), { state: "clean", bootId: "boot-1" });
  });

  test("closed cleanly: trusted on reopen, even after a reboot", async () => {
    const path = directory();
    await storeOneKey(path, "boot-1");
    const opened = LmdbKvBackend.open({ path, bootId: () => "boot-2" });
    assert.equal(opened.trusted, true);
    assert.equal(KvStore.open(opened.backend).get("k")?.version, 1);
    await opened.backend.close();
  });

  test("dirty under the same boot (the process died, the machine did not): trusted, data kept", async () => {
    const path = directory();
    await storeOneKey(path, "boot-1");
    markDirty(path, "boot-1");
    const opened = LmdbKvBackend.open({ path, bootId: () => "boot-1" });
    assert.equal(opened.trusted, true);
    assert.equal(KvStore.open(opened.backend).applied, 1);
    await opened.backend.close();
  });

  const distrusted: [string, (path: string) => void, string, RegExp][] = [
    ["dirty under another boot (the machine restarted)", (path) => markDirty(path, "boot-1"), "boot-2", /machine restarted/],
    ["dirty where the system has no boot id", (path) => markDirty(path, UNKNOWN_BOOT_ID), UNKNOWN_BOOT_ID, /no boot id/],
    ["a database without a marker", (path) => rmSync(join(path, MARKER)), "boot-1", /no marker/],
    ["an unreadable marker", (path) => writeFileSync(join(path, MARKER), "{ torn"), "boot-1", /unreadable/],
  ];
  for (const [what, damage, bootId, reason] of distrusted) {
    test(`${what}: not trusted, replaced by an empty store, and said so`, async () => {
      const path = directory();
      await storeOneKey(path, "boot-1");
      damage(path);
      const logged: string[] = [];
      const opened = LmdbKvBackend.open({ path, bootId: () => bootId, log: (message) => logged.push(message) });
      assert.equal(opened.trusted, false);
      assert.match(opened.reason ?? "", reason);
      assert.equal(logged.length, 1);
      const store = KvStore.open(opened.backend);
      assert.equal(store.applied, 0, "the node rebuilds it from its snapshot and log");
      assert.equal(store.get("k"), undefined);
      await opened.backend.close();
      assert.equal(LmdbKvBackend.open({ path, bootId: () => bootId }).trusted, true, "once rebuilt and closed, it is trusted again");
    });
  }

  test("a process killed with the store open loses nothing it committed", async () => {
    const path = directory();
    const module = fileURLToPath(new URL("./kv-lmdb.js", import.meta.url));
    const core = fileURLToPath(new URL("../../core/kv/store.js", import.meta.url));
    const command = fileURLToPath(new URL("../../core/kv/command.js", import.meta.url));
    const child = `
      const { LmdbKvBackend } = await import(${JSON.stringify(module)});
      const { KvStore } = await import(${JSON.stringify(core)});
      const { encodeCommand } = await import(${JSON.stringify(command)});
      const store = KvStore.open(LmdbKvBackend.open({ path: ${JSON.stringify(path)} }).backend);
      const entries = [];
      for (let i = 1; i <= 100; i++) entries.push({ index: i, data: encodeCommand({ op: "put", request: { clientId: 0, sequence: 0 }, key: "k" + i, value: new Uint8Array([i]) }) });
      store.applyBatch(entries);
      process.kill(process.pid, "SIGKILL");
    `;
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", child], { timeout: 20_000 });
    assert.equal(result.signal, "SIGKILL", result.stderr.toString());
    const opened = LmdbKvBackend.open({ path });
    assert.equal(opened.trusted, true, opened.reason ?? "");
    const store = KvStore.open(opened.backend);
    assert.equal(store.applied, 100);
    assert.deepEqual(store.get("k100")?.value, new Uint8Array([100]));
    await opened.backend.close();
  });

  test("the boot id comes from the kernel where it has one", () => {
    const id = readBootId();
    if (existsSync("/proc/sys/kernel/random/boot_id")) assert.equal(id, readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
    else assert.equal(id, UNKNOWN_BOOT_ID);
  });
});

describe("LMDB KV store: files", () => {
  test("flush, then destroy removes the database and its marker", async () => {
    const path = directory();
    const { backend } = LmdbKvBackend.open({ path });
    KvStore.open(backend).apply(1, put("k", "v"));
    backend.flush();
    await backend.destroy();
    for (const name of ["data.mdb", "lock.mdb", MARKER]) assert.equal(existsSync(join(path, name)), false, name);
    const reopened = LmdbKvBackend.open({ path });
    assert.equal(reopened.trusted, true);
    assert.equal(KvStore.open(reopened.backend).applied, 0);
    await reopened.backend.close();
  });

  test("sizeBytes is the database file's size: it grows as values are stored, and is 0 once closed", async () => {
    const path = directory();
    const { backend } = LmdbKvBackend.open({ path });
    const store = KvStore.open(backend);
    const empty = backend.sizeBytes();
    assert.ok(empty > 0, `an empty database has pages (${empty} bytes)`);
    const big = "x".repeat(64 * 1024);
    store.applyBatch(Array.from({ length: 32 }, (_, i) => ({ index: i + 1, data: put(`big-${i}`, big) })));
    assert.ok(backend.sizeBytes() >= empty + 32 * big.length, `2 MiB of values stored: ${backend.sizeBytes()} bytes`);
    assert.equal(backend.recordCount(), 32);
    await backend.close();
    assert.equal(backend.sizeBytes(), 0);
  });

  test("a directory whose name has a dot is still a directory", async () => {
    const path = join(directory(), "state.lmdb");
    await storeOneKey(path, "boot-1");
    assert.equal(existsSync(join(path, "data.mdb")), true);
  });
});

describe("LMDB KV store: snapshots built a piece at a time", () => {
  test("give the bytes KvStore.snapshot() gives, for the state when they began, whatever is applied meanwhile", async () => {
    const { backend } = LmdbKvBackend.open({ path: directory() });
    const kv = KvStore.open(backend);
    let index = 0;
    const session = (clientId: number, sequence: number, key: string, value: string): Uint8Array =>
      encodeCommand({ op: "put", request: { clientId: SELF_ASSIGNED_SESSIONS_FROM + clientId, sequence }, key, value: utf8Encode(value) });
    // Leases too: granted every 50 entries, keys attached to the latest, one revoked now and then.
    const leaseCommand = (at: number, key: string): Uint8Array | null => {
      const request = { clientId: 0, sequence: 0 };
      const latest = at - (at % 50) + 1;
      if (at % 50 === 1) return encodeCommand({ op: "lease-grant", request, ttlMs: 60_000 });
      if (at % 11 === 0) return encodeCommand({ op: "put", request, key, value: utf8Encode("leased"), lease: latest });
      if (at % 97 === 0) return encodeCommand({ op: "lease-revoke", request, lease: latest });
      return null;
    };
    const batch = (count: number): void => {
      const entries = [];
      for (let i = 0; i < count; i++) {
        index++;
        const key = ["a", "é", "😀", "z/"][index % 4] + String(index % 500);
        const data = index % 7 === 0 ? encodeCommand({ op: "delete", request: { clientId: 0, sequence: 0 }, key }) : index % 3 === 0 ? session(7 + (index % 5), index, key, `v${index}`) : put(key, `value-${index}`);
        entries.push({ index, data: leaseCommand(index, key) ?? data });
      }
      kv.applyBatch(entries);
    };
    batch(1199);
    // A compaction whose purge has only begun: the snapshot keeps what compaction keeps, however far it went.
    kv.apply(++index, encodeCommand({ op: "compact", request: { clientId: 0, sequence: 0 }, revision: 600 }));
    kv.purgeHistory(100);
    // Users and roles travel in the snapshot too, and are not counted as keys.
    const keys = kv.keys;
    const password = { cost: 15, salt: new Uint8Array(16).fill(1), hash: new Uint8Array(32).fill(2) };
    kv.apply(++index, encodeCommand({ op: "auth", request: { clientId: 0, sequence: 0 }, change: { kind: "user-add", name: "alice", password } }));
    kv.apply(++index, encodeCommand({ op: "auth", request: { clientId: 0, sequence: 0 }, change: { kind: "role-add", name: "reader" } }));
    assert.equal(kv.keys, keys);
    assert.equal(backend.recordCount(), keys);
    const expected = kv.snapshot();
    const builder = backend.beginSnapshot();
    assert.equal(builder.meta.appliedIndex, 1202);
    let steps = 0;
    while (!builder.step(50)) {
      steps++;
      batch(10); // applies go on between steps, as they do in a node
      kv.purgeHistory(20);
    }
    assert.ok(steps > 5, "the snapshot took several steps");
    assert.ok(KvStore.restore(expected).leaseCount > 10, "the state holds leases");
    assert.deepEqual(Buffer.from(builder.data), Buffer.from(expected), "byte-identical to the synchronous snapshot of the same state");
    const restored = KvStore.restore(builder.data);
    assert.equal(restored.applied, 1202);
    assert.deepEqual([...restored.auth.users.keys()], ["alice"]);
    assert.notEqual(kv.applied, 1202, "the live store moved on meanwhile");
    await backend.close();
  });

  test("an aborted snapshot ends its read transaction, and the store goes on", async () => {
    const { backend } = LmdbKvBackend.open({ path: directory() });
    const kv = KvStore.open(backend);
    kv.apply(1, put("k", "v"));
    const builder = backend.beginSnapshot();
    builder.abort();
    assert.throws(() => builder.step(10), /ended/);
    kv.apply(2, put("k2", "v2"));
    const second = backend.beginSnapshot();
    while (!second.step(1)) {
      // one record a step
    }
    assert.equal(KvStore.restore(second.data).get("k2")?.version, 1);
    await backend.close();
  });
});

describe("LMDB KV store: data written before there was history", () => {
  /** A store with `keys` in it, rewritten as format 2 with no history, as an earlier synod left it. */
  async function formatTwoStore(path: string): Promise<void> {
    const { backend } = LmdbKvBackend.open({ path, bootId: () => "boot-1" });
    KvStore.open(backend).applyBatch([put("a", "1"), put("b", "2"), put("a", "3"), encodeCommand({ op: "delete", request: { clientId: 0, sequence: 0 }, key: "b" }), put("c", "4")].map((data, i) => ({ index: i + 1, data })));
    await backend.close();
    const raw = open<Buffer, Buffer>({ path, noSubdir: false, keyEncoding: "binary", encoding: "binary", cache: false, compression: false });
    const history = raw.openDB<Buffer, Buffer>({ name: "history", keyEncoding: "binary", encoding: "binary", cache: false, compression: false });
    const meta = Buffer.alloc(25);
    meta[0] = 2;
    meta.writeDoubleBE(5, 1); // applied index
    meta.writeDoubleBE(5, 9); // revision
    meta.writeDoubleBE(0, 17); // clock
    await raw.put(Buffer.from([0x00]), meta);
    await history.clearAsync();
    await raw.close();
  }

  test("opens with its history starting at its revision, the records as the changes that made them", async () => {
    const path = directory();
    await formatTwoStore(path);
    const logged: string[] = [];
    const { backend } = LmdbKvBackend.open({ path, bootId: () => "boot-1", log: (message) => logged.push(message) });
    const store = KvStore.open(backend);
    assert.equal(store.compactRevision, 5);
    assert.match(logged.join("\n"), /history starts at revision 5/);
    assert.deepEqual(
      store.rangeAt("", 10, { revision: 5 }).map((r) => `${r.key}=${new TextDecoder().decode(r.value)}@${r.modRevision}`),
      ["a=3@3", "c=4@5"],
    );
    assert.throws(() => store.getAt("a", 4), /compacted/);
    store.apply(6, put("a", "5"));
    assert.deepEqual(store.getAt("a", 5)?.value, utf8Encode("3"), "and it grows from there");
    const builder = backend.beginSnapshot();
    while (!builder.step(100));
    assert.equal(Buffer.compare(builder.data, store.snapshot()), 0);
    await backend.close();
    const reopened = LmdbKvBackend.open({ path, bootId: () => "boot-1" });
    assert.equal(KvStore.open(reopened.backend).compactRevision, 5, "migrated once: the meta is format 3 now");
    await reopened.backend.close();
  });

  test("a store written by a later synod is refused, with what to do", async () => {
    const path = directory();
    await storeOneKey(path, "boot-1");
    const raw = open<Buffer, Buffer>({ path, noSubdir: false, keyEncoding: "binary", encoding: "binary", cache: false, compression: false });
    const meta = Buffer.from((raw.getBinary(Buffer.from([0x00])) as Buffer).subarray());
    meta[0] = 7;
    await raw.put(Buffer.from([0x00]), meta);
    await raw.close();
    assert.throws(() => LmdbKvBackend.open({ path, bootId: () => "boot-1" }), (error) => error instanceof KvStorageFormatError && /format 7, written by a later synod/.test(error.message));
  });
});

describe("LMDB KV store: data written before sessions expired", () => {
  test("a meta without the clock and sessions without a last use still open, and deduplicate", async () => {
    const path = directory();
    await storeOneKey(path, "boot-1");
    // Rewrite the meta and add a session in the older layouts, as an earlier version did.
    const raw = open<Buffer, Buffer>({ path, noSubdir: false, keyEncoding: "binary", encoding: "binary", cache: false, compression: false });
    const meta = Buffer.alloc(17);
    meta[0] = 1;
    meta.writeDoubleBE(2, 1); // applied index
    meta.writeDoubleBE(1, 9); // revision
    const sessionKey = Buffer.alloc(9);
    sessionKey[0] = 0x02;
    sessionKey.writeDoubleBE(SELF_ASSIGNED_SESSIONS_FROM + 3, 1);
    // f64 sequence 4 | result: kind put (0), flag 0, f64 revision 1
    const session = Buffer.alloc(18);
    session.writeDoubleBE(4, 0);
    session.writeDoubleBE(1, 10);
    await raw.put(Buffer.from([0x00]), meta);
    await raw.put(sessionKey, session);
    await raw.close();
    const { backend } = LmdbKvBackend.open({ path, bootId: () => "boot-1" });
    const store = KvStore.open(backend);
    assert.equal(store.applied, 2);
    assert.equal(store.clock, 0);
    assert.equal(store.sessions, 1);
    const again = encodeCommand({ op: "put", request: { clientId: SELF_ASSIGNED_SESSIONS_FROM + 3, sequence: 4 }, key: "k", value: utf8Encode("v") });
    assert.equal(store.apply(3, again).duplicate, true);
    assert.equal(store.get("k")?.version, 1);
    // Written back in the current layouts, and a snapshot equals the memory store's.
    assert.deepEqual(KvStore.restore(store.snapshot()).snapshot(), store.snapshot());
    const builder = backend.beginSnapshot();
    while (!builder.step(100));
    assert.equal(Buffer.compare(builder.data, store.snapshot()), 0, "the LMDB snapshot builder writes the same bytes");
    await backend.close();
  });
});

// A split over LMDB (src/core/kv/split.ts): the parent's snapshots after it are the same
// bytes as the memory backend's, whether built by the store or a step at a time, and decode:
// the keys it gave away stay stored (the child's now) but are not the parent's records.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { utf8Encode } from "../../core/common/utf8.js";
import { MemoryKvBackend } from "../../core/kv/backend.js";
import { encodeCommand, type KvCommand } from "../../core/kv/command.js";
import { childSnapshot } from "../../core/kv/split.js";
import { KvStore } from "../../core/kv/store.js";
import type { LmdbKvBackend } from "./kv-lmdb.js";
import { LmdbKvEnvironment } from "./kv-lmdb-env.js";

const request = { clientId: 0, sequence: 0, timeMs: 1_000 };
const SPAN = { start: "h", end: null };
const put = (key: string, value: string): KvCommand => ({ op: "put", request, key, value: utf8Encode(value) });

test("LMDB: a parent's snapshots after a split are the memory backend's bytes, and decode", async () => {
  const path = mkdtempSync(join(tmpdir(), "synod-split-"));
  try {
    const environment = LmdbKvEnvironment.open({ path });
    const store = KvStore.open(environment.group(1, SPAN));
    const memory = new MemoryKvBackend();
    memory.span = SPAN;
    const twin = new KvStore(memory);
    const children: Uint8Array[] = [];
    for (const each of [store, twin]) each.setSplitHost({ prepare: (_child, snapshot) => void children.push(snapshot), born: () => undefined });
    const commands: KvCommand[] = [put("kiwi", "1"), put("plum", "2"), put("pear", "3"), { op: "split", request, at: "p", child: 5 }, put("kiwi", "4")];
    for (const command of commands) {
      const encoded = encodeCommand(command);
      assert.deepEqual(store.apply(store.applied + 1, encoded), twin.apply(twin.applied + 1, encoded));
    }
    assert.deepEqual(Buffer.from(children[0] as Uint8Array), Buffer.from(children[1] as Uint8Array), "the child's first state, byte for byte");
    assert.deepEqual(Buffer.from(store.snapshot()), Buffer.from(twin.snapshot()));
    const builder = (store.backend as LmdbKvBackend).beginSnapshot();
    while (!builder.step(100));
    assert.equal(Buffer.compare(builder.data, store.snapshot()), 0, "built a step at a time: the same bytes");
    // They restore: into a fresh range over the parent's span.
    const restored = new MemoryKvBackend();
    restored.span = { start: "h", end: "p" };
    const copy = new KvStore(restored);
    copy.restore(builder.data);
    assert.deepEqual(copy.range("", 10).map((record) => record.key), ["kiwi"]);
    await environment.close();
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
});

test("LMDB: a child born with an empty history answers and snapshots as the memory backend does, and keeps its birth revision across a reopen", async () => {
  const path = mkdtempSync(join(tmpdir(), "synod-born-"));
  try {
    const records = ["pear", "plum", "quince"].map((key, i) => ({ key, value: utf8Encode(`${key}!`), createRevision: 1 + i, modRevision: 2 + i, version: 2 }));
    const birth = childSnapshot(records, 4, 1_000, { start: "p", end: null }, 2);
    let environment = LmdbKvEnvironment.open({ path });
    const span = { start: "p", end: null };
    const store = KvStore.open(environment.group(5, span));
    store.restore(birth);
    const memory = new MemoryKvBackend();
    memory.span = span;
    const twin = KvStore.restore(birth, memory);
    const commands: KvCommand[] = [put("plum", "new"), { op: "delete", request, key: "quince" }, put("pippin", "1"), { op: "compact", request, revision: 5 }];
    for (const command of commands) {
      const encoded = encodeCommand(command);
      assert.deepEqual(store.apply(store.applied + 1, encoded), twin.apply(twin.applied + 1, encoded));
    }
    const reads = (each: KvStore): unknown => [each.getAt("plum", 5), each.getAt("quince", 5), each.getAt("pear", 7), each.rangeAt("", 10, { revision: 5 }), each.changesAfter({ revision: 5, afterKey: "" }, 10)];
    assert.deepEqual(reads(store), reads(twin));
    assert.deepEqual(Buffer.from(store.snapshot()), Buffer.from(twin.snapshot()));
    const builder = (store.backend as LmdbKvBackend).beginSnapshot();
    while (!builder.step(1));
    assert.equal(Buffer.compare(builder.data, twin.snapshot()), 0, "built a step at a time: the same bytes");
    await environment.close();
    environment = LmdbKvEnvironment.open({ path });
    const reopened = KvStore.open(environment.group(5, span));
    assert.deepEqual(reads(reopened), reads(twin), "the birth revision is kept on disk");
    assert.deepEqual(reopened.getAt("pear", 5), records[0], "a record never written since reads as born");
    await environment.close();
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
});

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
import { childSnapshot, heldFirstStateOf, RangeStateHeldError } from "../../core/kv/split.js";
import { KvStore } from "../../core/kv/store.js";
import type { LmdbKvBackend } from "./kv-lmdb.js";
import { LmdbKvEnvironment } from "./kv-lmdb-env.js";

const request = { clientId: 0, sequence: 0, timeMs: 1_000 };
const SPAN = { start: "h", end: null };
const put = (key: string, value: string): KvCommand => ({ op: "put", request, key, value: utf8Encode(value) });
const spanned = (span: { start: string; end: string | null }): MemoryKvBackend => Object.assign(new MemoryKvBackend(), { span });

test("LMDB: a parent's snapshots after a split are the memory backend's bytes, and decode", async () => {
  const path = mkdtempSync(join(tmpdir(), "synod-split-"));
  try {
    const environment = LmdbKvEnvironment.open({ path });
    const store = KvStore.open(environment.group(1, SPAN));
    const memory = new MemoryKvBackend();
    memory.span = SPAN;
    const twin = new KvStore(memory);
    const children: Uint8Array[] = [];
    for (const each of [store, twin]) each.setSplitHost({ parent: 1, prepare: (_child, snapshot) => void children.push(snapshot), born: () => undefined });
    const commands: KvCommand[] = [put("kiwi", "1"), put("plum", "2"), put("pear", "3"), { op: "split", request, at: "p", child: 5 }, put("kiwi", "4")];
    for (const command of commands) {
      const encoded = encodeCommand(command);
      assert.deepEqual(store.apply(store.applied + 1, encoded), twin.apply(twin.applied + 1, encoded));
    }
    // Over LMDB the child's records stay where they are: its first state only names them, and
    // its group in the environment holds the state the memory backend's child snapshot copies.
    assert.deepEqual(heldFirstStateOf(children[0] as Uint8Array), { parent: 1, index: 4 });
    assert.equal(heldFirstStateOf(children[1] as Uint8Array), null);
    const child = KvStore.open(environment.group(5, { start: "p", end: null }));
    assert.deepEqual(Buffer.from(child.snapshot()), Buffer.from(KvStore.restore(children[1] as Uint8Array, spanned({ start: "p", end: null })).snapshot()), "the child, byte for byte");
    child.restore(children[0] as Uint8Array); // it holds what its first state names: nothing to do
    assert.deepEqual(child.range("", 10).map((record) => record.key), ["pear", "plum"]);
    assert.throws(() => KvStore.restore(children[0] as Uint8Array, spanned({ start: "p", end: null })), RangeStateHeldError, "elsewhere, a held first state cannot be restored");
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

test("LMDB: a range's middle key is read over its own span's keys alone, and is the one the memory backend pages to", async () => {
  const path = mkdtempSync(join(tmpdir(), "synod-middle-"));
  try {
    const environment = LmdbKvEnvironment.open({ path });
    const span = { start: "b", end: "m" };
    const store = KvStore.open(environment.group(3, span));
    const twin = new KvStore(spanned(span));
    // Keys on both sides of the span in the shared environment: another group's, not this one's.
    const other = KvStore.open(environment.group(4, { start: "m", end: null }));
    other.apply(1, encodeCommand(put("zebra", "z")));
    assert.equal(store.middleKey(), null, "fewer than two keys");
    for (const [i, key] of ["bee", "cat", "dog", "eel", "fox", "gnu", "hen"].entries()) {
      const command = encodeCommand(put(key, String(i)));
      store.apply(store.applied + 1, command);
      twin.apply(twin.applied + 1, command);
    }
    assert.equal(store.middleKey(), "eel");
    assert.equal(twin.middleKey(), "eel");
    assert.equal((store.backend as LmdbKvBackend).keyAt(0), "bee");
    assert.equal((store.backend as LmdbKvBackend).keyAt(7), undefined, "past the span's last key, not the next group's");
    await environment.close();
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
});

test("LMDB: the index a range's span was set at (its split's) is kept across a reopen, carried by its snapshots, and a snapshot claiming a later one is refused", async () => {
  const path = mkdtempSync(join(tmpdir(), "synod-span-since-"));
  try {
    let environment = LmdbKvEnvironment.open({ path });
    const store = KvStore.open(environment.group(1, SPAN));
    store.setSplitHost({ parent: 1, prepare: () => undefined, born: () => undefined });
    assert.equal(store.spanSince, 0, "a range that never split");
    for (const command of [put("kiwi", "1"), put("plum", "2"), { op: "split", request, at: "p", child: 5 } as KvCommand, put("kiwi", "3")]) store.apply(store.applied + 1, encodeCommand(command));
    assert.equal(store.spanSince, 3, "the split's index");
    const snapshot = store.snapshot();
    await environment.close();
    environment = LmdbKvEnvironment.open({ path });
    assert.equal(KvStore.open(environment.group(1, { start: "h", end: "p" })).spanSince, 3, "kept on disk");
    await environment.close();
    const copy = KvStore.restore(snapshot, spanned(SPAN));
    assert.equal(copy.spanSince, 3, "carried by the snapshot");
    assert.deepEqual(Buffer.from(copy.snapshot()), Buffer.from(snapshot));
    // The section's number, 3, sits in the last 8 bytes: claim 9, past the snapshot's applied index, 4.
    const forged = Uint8Array.from(snapshot);
    new DataView(forged.buffer).setFloat64(forged.length - 8, 9);
    assert.throws(() => KvStore.restore(forged, spanned(SPAN)), /span was set at index 9: it is from 1 to its applied index, 4/);
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
});

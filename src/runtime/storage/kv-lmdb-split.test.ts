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

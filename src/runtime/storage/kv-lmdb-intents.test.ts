// Transactions across ranges (src/core/kv/intents.ts) over LMDB: the same phases give the
// same snapshots as over memory, intents survive closing and reopening, and the state does
// not count as a key.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { utf8Encode } from "../../core/common/utf8.js";
import { MemoryKvBackend } from "../../core/kv/backend.js";
import { encodeCommand, type KvCommand } from "../../core/kv/command.js";
import { KvStore } from "../../core/kv/store.js";
import { LmdbKvBackend } from "./kv-lmdb.js";
import { LmdbKvEnvironment } from "./kv-lmdb-env.js";

const request = { clientId: 0, sequence: 0, timeMs: 1_000 };
const SPAN = { start: "h", end: "q" };
const COMMANDS: KvCommand[] = [
  { op: "put", request, key: "kim", value: utf8Encode("5") },
  { op: "txn-prepare", request, txn: "t1", anchor: 0, compares: [{ key: "kim", target: "value", op: "=", value: utf8Encode("5") }], success: [{ op: "put", key: "kim", value: utf8Encode("6") }], failure: [] },
  { op: "txn-decide", request, txn: "t0", outcome: "abort" },
  { op: "put", request, key: "kim", value: utf8Encode("locked?") },
];
const RESOLVE: KvCommand = { op: "txn-resolve", request, txn: "t1", outcome: "success" };

function applyAll(store: KvStore, commands: readonly KvCommand[]): unknown[] {
  return commands.map((command) => store.apply(store.applied + 1, encodeCommand(command)).result);
}

test("LMDB: intents and outcomes as over memory, across a reopen, byte for byte", async () => {
  const path = mkdtempSync(join(tmpdir(), "synod-intents-"));
  try {
    let environment = LmdbKvEnvironment.open({ path });
    let store = KvStore.open(environment.group(1, SPAN));
    const memory = new MemoryKvBackend();
    memory.span = SPAN;
    const twin = new KvStore(memory);
    assert.deepEqual(applyAll(store, COMMANDS), applyAll(twin, COMMANDS));
    assert.deepEqual(Buffer.from(store.snapshot()), Buffer.from(twin.snapshot()));
    await environment.close();
    environment = LmdbKvEnvironment.open({ path });
    store = KvStore.open(environment.group(1, SPAN));
    assert.equal(store.intents.lockOf("kim"), "t1", "the lock survives the reopen");
    assert.deepEqual(applyAll(store, [RESOLVE]), applyAll(twin, [RESOLVE]));
    assert.deepEqual(Buffer.from(store.snapshot()), Buffer.from(twin.snapshot()));
    assert.equal(store.get("kim")?.value.length, 1);
    const builder = (store.backend as LmdbKvBackend).beginSnapshot();
    while (!builder.step(100));
    assert.equal(Buffer.compare(builder.data, store.snapshot()), 0, "the LMDB snapshot builder writes the same bytes");
    await environment.close();

    // A store of one range over every key counts its keys without the transaction state.
    const whole = LmdbKvBackend.open({ path: join(path, "whole") });
    const single = KvStore.open(whole.backend);
    applyAll(single, COMMANDS);
    assert.equal(whole.backend.recordCount(), 1);
    await whole.backend.close();
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
});

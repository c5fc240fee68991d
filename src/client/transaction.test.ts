/**
 * `client.transaction`: reads validated at commit, writes buffered, the function run again
 * on a conflict, and never run again after a commit whose outcome is unknown. Against the
 * HTTP API in-process over a real KvStore (one range), whose writes a test may refuse
 * (409 txn_aborted) or leave unanswered. The same over real processes and several ranges:
 * src/runtime/server/txn-interactive.test.ts.
 */
import assert from "node:assert/strict";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, test } from "node:test";
import { InvalidInputError } from "../core/common/errors.js";
import type { KvCommand } from "../core/kv/command.js";
import { KvStore } from "../core/kv/store.js";
import { TxnAbortedError } from "../runtime/server/cross-range-txn.js";
import { ALL_REACHED, fakeService, READY, type Fault } from "../runtime/server/fake-service.test-util.js";
import { createHttpApi } from "../runtime/server/http-api.js";
import { Client } from "./client.js";
import { AbortedError, TimeoutError, TransactionConflictError, TransactionFinishedError } from "./errors.js";
import type { Transaction } from "./transaction.js";

const text = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString("utf8");
const balance = async (tx: Transaction, key: string): Promise<number> => Number(text((await tx.get(key))?.value));

describe("client.transaction", { timeout: 30_000 }, () => {
  let server: Server;
  let client: Client;
  const writes: KvCommand[] = [];
  const fault: Fault = { refuse: null, quorum: ALL_REACHED, readiness: READY };
  /** What the node does with the next transactions (`POST /v1/txn`), in order; then it serves them. */
  const txnFaults: ("abort" | "hang")[] = [];
  /** The transactions the node was sent. */
  const txns = (): Extract<KvCommand, { op: "txn" }>[] => writes.filter((command): command is Extract<KvCommand, { op: "txn" }> => command.op === "txn");

  before(async () => {
    const service = fakeService(new KvStore(), fault, writes);
    const write = service.write.bind(service);
    service.write = (operation, session) => {
      const next = operation.op === "txn" ? txnFaults.shift() : undefined;
      if (next === "abort") return Promise.reject(new TxnAbortedError("t-1", "key \"a\" is held by another transaction in flight"));
      if (next === "hang") return new Promise(() => undefined);
      return write(operation, session);
    };
    server = createHttpApi(service, { requestBodyBytesMax: 1024 * 1024 });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    client = new Client({ endpoints: [`http://127.0.0.1:${(server.address() as AddressInfo).port}`], healthCheckIntervalMs: 0, membersIntervalMs: 0, seed: 5, retry: { backoffMsBase: 2, backoffMsMax: 10 } });
  });
  after(async () => {
    await client.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(async () => {
    txnFaults.length = 0;
    await client.put("a", "50");
    await client.put("b", "50");
    await client.delete("c");
    writes.length = 0;
  });

  test("reads its own writes: a put reads as its value (revisions 0, not committed), a delete as absent; one commit applies them", async () => {
    const seen: unknown[] = [];
    const result = await client.transaction(async (tx) => {
      seen.push(text((await tx.get("a"))?.value));
      tx.put("a", "51");
      const written = await tx.get("a");
      seen.push(text(written?.value), written?.revision);
      tx.delete("b");
      seen.push(await tx.get("b"));
      tx.put("c", new Uint8Array([104, 105]));
      seen.push(text((await tx.get("c"))?.value));
      return "done";
    });
    assert.deepEqual(seen, ["50", "51", 0, null, "hi"]);
    assert.equal(result.value, "done");
    assert.equal(result.attempts, 1);
    assert.equal(txns().length, 1, "one transaction commits it");
    assert.equal(result.revision, (await client.get("a"))?.revision);
    assert.equal(text((await client.get("a"))?.value), "51");
    assert.equal(await client.get("b"), null);
    assert.equal(text((await client.get("c"))?.value), "hi");
  });

  test("repeatable read: a key read again gives the first answer though it changed; one read and no write sends nothing", async () => {
    const result = await client.transaction(async (tx) => {
      const first = await balance(tx, "a");
      await client.put("a", "7");
      return [first, await balance(tx, "a")];
    });
    assert.deepEqual(result.value, [50, 50]);
    assert.equal(result.revision, null);
    assert.equal(txns().length, 0);
  });

  test("a write between a read and the commit makes the function run again; the transfer lands on what is there then", async () => {
    const result = await client.transaction(async (tx) => {
      const [a, b] = [await balance(tx, "a"), await balance(tx, "b")];
      if (tx.attempt === 1) await client.put("a", "80");
      tx.put("a", String(a - 10));
      tx.put("b", String(b + 10));
      return a;
    });
    assert.equal(result.attempts, 2);
    assert.equal(result.value, 80, "the second run read the write that came between");
    assert.equal(text((await client.get("a"))?.value), "70");
    assert.equal(text((await client.get("b"))?.value), "60");
    assert.equal(txns().length, 2, "the first commit failed its compare, the second went through");
    assert.equal(txns()[0]?.compares.length, 2, "each read is a compare");
  });

  test("a key read as absent is compared as absent: created in between, the function runs again", async () => {
    const result = await client.transaction(async (tx) => {
      const c = await tx.get("c");
      if (tx.attempt === 1) await client.put("c", "taken");
      if (c === null) tx.put("c", "mine");
      return c === null ? "created" : text(c.value);
    });
    assert.deepEqual([result.value, result.attempts], ["taken", 2]);
    assert.equal(text((await client.get("c"))?.value), "taken");
  });

  test("a conflict on every run: TransactionConflictError after retries + 1 runs, and nothing of it written", async () => {
    let runs = 0;
    await assert.rejects(
      client.transaction(async (tx) => {
        runs++;
        const a = await balance(tx, "a");
        await client.put("a", String(a + 1));
        tx.put("c", "never");
      }, { retries: 2 }),
      (error: unknown) => error instanceof TransactionConflictError && error.attempts === 3 && error.code === "transaction_conflict",
    );
    assert.equal(runs, 3);
    assert.equal(await client.get("c"), null);
  });

  test("409 txn_aborted (a key held by another transaction) makes the function run again", async () => {
    txnFaults.push("abort");
    const result = await client.transaction(async (tx) => {
      tx.put("a", String((await balance(tx, "a")) + 1));
    });
    assert.equal(result.attempts, 2);
    assert.equal(text((await client.get("a"))?.value), "51");
  });

  test("the function throws after reads that held: its own error, unchanged, after a validating compares-only transaction; nothing written", async () => {
    const mistake = new RangeError("insufficient funds");
    let runs = 0;
    await assert.rejects(
      client.transaction(async (tx) => {
        runs++;
        await tx.get("a");
        await tx.get("b");
        tx.put("c", "never");
        throw mistake;
      }),
      (error: unknown) => error === mistake,
    );
    assert.equal(runs, 1);
    assert.equal(await client.get("c"), null);
    assert.equal(txns().length, 1);
    assert.deepEqual([txns()[0]?.compares.length, txns()[0]?.success.length], [2, 0], "the validation writes nothing");
    // One read is consistent by itself: nothing to validate.
    await assert.rejects(client.transaction(async (tx) => Promise.reject(new Error(`no ${text((await tx.get("a"))?.value)}`))), /no 50/);
    assert.equal(txns().length, 1);
  });

  test("the function throws on an inconsistent view (a transfer landed between its reads): it runs again, and sees a consistent one", async () => {
    const result = await client.transaction(async (tx) => {
      const a = await balance(tx, "a");
      if (tx.attempt === 1) await client.txn({ success: [{ op: "put", key: "a", value: "40" }, { op: "put", key: "b", value: "60" }] });
      const b = await balance(tx, "b");
      if (a + b !== 100) throw new Error(`the total is ${a + b}`);
      return [a, b];
    });
    assert.deepEqual(result.value, [40, 60]);
    assert.equal(result.attempts, 2);
  });

  test("read-only with several reads validates them (serializable): a change between them makes it run again", async () => {
    const result = await client.transaction(async (tx) => {
      const a = await balance(tx, "a");
      if (tx.attempt === 1) await client.txn({ success: [{ op: "put", key: "a", value: "30" }, { op: "put", key: "b", value: "70" }] });
      return a + (await balance(tx, "b"));
    });
    assert.deepEqual([result.value, result.attempts], [100, 2]);
    assert.equal(typeof result.revision, "number");
    assert.equal(txns().filter((txn) => txn.success.length === 0).length, 2, "each run sent a compares-only transaction");
  });

  test("a commit whose outcome is unknown is not run again: its TimeoutError (outcomeUnknown) reaches the caller", async () => {
    txnFaults.push("hang", "hang", "hang");
    let runs = 0;
    await assert.rejects(
      client.transaction(async (tx) => {
        runs++;
        tx.put("a", String((await balance(tx, "a")) + 1));
      }, { timeoutMs: 300 }),
      (error: unknown) => error instanceof TimeoutError && error.outcomeUnknown,
    );
    assert.equal(runs, 1);
  });

  test("its signal aborts it: AbortedError, nothing written", async () => {
    const controller = new AbortController();
    await assert.rejects(
      client.transaction(async (tx) => {
        await tx.get("a");
        controller.abort();
        tx.put("c", "never");
      }, { signal: controller.signal }),
      (error: unknown) => error instanceof AbortedError && !error.outcomeUnknown,
    );
    assert.equal(await client.get("c"), null);
  });

  test("a function that hangs does not hold the transaction past its timeoutMs: TimeoutError, nothing written, and its tx refuses from then on", { timeout: 5_000 }, async () => {
    let release: () => void = () => undefined;
    let lateWrite: unknown = null;
    const startMs = performance.now();
    await assert.rejects(
      client.transaction(async (tx) => {
        await tx.get("a");
        await new Promise<void>((resolve) => (release = resolve));
        try {
          tx.put("c", "late");
        } catch (error) {
          lateWrite = error;
        }
      }, { timeoutMs: 150 }),
      (error: unknown) => error instanceof TimeoutError && !error.outcomeUnknown && /nothing was written/.test(error.message),
    );
    assert.ok(performance.now() - startMs < 1_000);
    release();
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(lateWrite instanceof TransactionFinishedError);
    assert.equal(await client.get("c"), null);
  });

  test("a tx used after its run ended throws TransactionFinishedError", async () => {
    let kept: Transaction | null = null;
    await client.transaction(async (tx) => {
      kept = tx;
      await tx.get("a");
    });
    const tx = kept as unknown as Transaction;
    assert.throws(() => tx.put("a", "1"), TransactionFinishedError);
    assert.throws(() => tx.delete("a"), /run \(attempt 1\) is over/);
    await assert.rejects(tx.get("a"), TransactionFinishedError);
    assert.equal(text((await client.get("a"))?.value), "50");
  });

  test("bad keys, values and options are InvalidInputError at the call, and nothing is sent", async () => {
    const refused = async (fn: (tx: Transaction) => Promise<unknown>): Promise<void> => {
      await assert.rejects(client.transaction(fn), InvalidInputError);
    };
    await refused(async (tx) => tx.put("", "v"));
    await refused(async (tx) => tx.put("k\uD800", "v"));
    await refused(async (tx) => tx.put("k", "v\uDC00"));
    await refused(async (tx) => tx.put("x".repeat(1025), "v"));
    await refused(async (tx) => tx.put("k", new Uint8Array(1024 * 1024 + 1)));
    await refused(async (tx) => tx.put("k", 5 as unknown as string));
    await refused(async (tx) => tx.delete(""));
    await refused(async (tx) => tx.get("\uD800"));
    await refused(async (tx) => {
      for (let i = 0; i < 129; i++) tx.put(`k${i}`, "v");
    });
    await assert.rejects(client.transaction(async () => 1, { retries: -1 }), InvalidInputError);
    await assert.rejects(client.transaction(async () => 1, { timeoutMs: 0 }), InvalidInputError);
    await assert.rejects(client.transaction(null as unknown as () => Promise<void>), InvalidInputError);
    assert.equal(txns().length, 0);
  });
});

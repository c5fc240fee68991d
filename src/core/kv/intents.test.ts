import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { utf8Decode, utf8Encode } from "../common/utf8.js";
import { MemoryKvBackend } from "./backend.js";
import { decodeTxnState, encodeTxnState } from "./intents.js";
import { encodeCommand, type KvCommand, type TxnCompare, type TxnOperation, type TxnOutcome } from "./command.js";
import type { KvResult } from "./model.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM } from "./store.js";

const request = { clientId: 0, sequence: 0, timeMs: 1_000 };
const bytes = (text: string): Uint8Array => utf8Encode(text);

/** Ranges over ["", "h"), ["h", "q"), ["q", end): range i holds the keys of its span. */
function ranges(): KvStore[] {
  const cuts = ["", "h", "q", null];
  return [0, 1, 2].map((i) => {
    const backend = new MemoryKvBackend();
    backend.span = { start: cuts[i] as string, end: cuts[i + 1] as string | null };
    return new KvStore(backend);
  });
}

const rangeOf = (key: string): number => (key < "h" ? 0 : key < "q" ? 1 : 2);

function apply(store: KvStore, command: KvCommand): KvResult {
  return store.apply(store.applied + 1, encodeCommand(command)).result;
}

const value = (store: KvStore, key: string): string | null => {
  const record = store.get(key);
  return record === undefined ? null : utf8Decode(record.value);
};

interface CrossTxn {
  readonly txn: string;
  readonly compares: readonly TxnCompare[];
  readonly success: readonly TxnOperation[];
  readonly failure: readonly TxnOperation[];
}

/** Phase one in every range the transaction touches; the anchor is the first key's range. */
function prepareAll(stores: KvStore[], t: CrossTxn): { anchor: number; parts: number[]; results: KvResult[] } {
  const keys = [...t.compares.map((c) => c.key), ...t.success.map((o) => o.key), ...t.failure.map((o) => o.key)];
  const parts = [...new Set(keys.map(rangeOf))].sort();
  const anchor = rangeOf([...keys].sort()[0] as string);
  const results = parts.map((part) =>
    apply(stores[part] as KvStore, {
      op: "txn-prepare",
      request,
      txn: t.txn,
      anchor,
      compares: t.compares.filter((c) => rangeOf(c.key) === part),
      success: t.success.filter((o) => rangeOf(o.key) === part),
      failure: t.failure.filter((o) => rangeOf(o.key) === part),
    }),
  );
  return { anchor, parts, results };
}

function outcomeOf(results: readonly KvResult[]): TxnOutcome {
  if (!results.every((r) => r.op === "txn-prepare")) return "abort";
  return results.every((r) => r.op === "txn-prepare" && r.holds) ? "success" : "failure";
}

/** The whole protocol, with nothing failing. */
function run(stores: KvStore[], t: CrossTxn): TxnOutcome {
  const { anchor, parts, results } = prepareAll(stores, t);
  const decided = apply(stores[anchor] as KvStore, { op: "txn-decide", request, txn: t.txn, outcome: outcomeOf(results) });
  const outcome = decided.op === "txn-decide" ? decided.outcome : "abort";
  for (const part of parts) apply(stores[part] as KvStore, { op: "txn-resolve", request, txn: t.txn, outcome });
  return outcome;
}

const transfer = (txn: string, from: string, to: string, balances: Map<string, number>, amount: number): CrossTxn => ({
  txn,
  compares: [
    { key: from, target: "value", op: "=", value: bytes(String(balances.get(from))) },
    { key: to, target: "value", op: "=", value: bytes(String(balances.get(to))) },
  ],
  success: [
    { op: "put", key: from, value: bytes(String((balances.get(from) as number) - amount)) },
    { op: "put", key: to, value: bytes(String((balances.get(to) as number) + amount)) },
  ],
  failure: [{ op: "get", key: from }],
});

describe("transactions across ranges: prepare, decide, resolve", () => {
  test("a transfer between two ranges applies in both, one revision each, and only once resolved", () => {
    const stores = ranges();
    apply(stores[0] as KvStore, { op: "put", request, key: "alice", value: bytes("10") });
    apply(stores[2] as KvStore, { op: "put", request, key: "zoe", value: bytes("0") });
    const t = transfer("t1", "alice", "zoe", new Map([["alice", 10], ["zoe", 0]]), 4);
    const { anchor, results } = prepareAll(stores, t);
    assert.equal(anchor, 0);
    assert.deepEqual(results, [
      { op: "txn-prepare", txn: "t1", holds: true },
      { op: "txn-prepare", txn: "t1", holds: true },
    ]);
    // Prepared, not resolved: nothing visible, and the keys are held.
    assert.equal(value(stores[0] as KvStore, "alice"), "10");
    assert.deepEqual(apply(stores[0] as KvStore, { op: "put", request, key: "alice", value: bytes("99") }), { op: "txn-locked", key: "alice", txn: "t1" });
    assert.equal(stores[2]?.intents.lockOf("zoe"), "t1");
    assert.deepEqual(apply(stores[0] as KvStore, { op: "txn-decide", request, txn: "t1", outcome: "success" }), { op: "txn-decide", txn: "t1", outcome: "success" });
    const resolved = apply(stores[2] as KvStore, { op: "txn-resolve", request, txn: "t1", outcome: "success" });
    assert.deepEqual(resolved, { op: "txn-resolve", txn: "t1", revision: 2, results: [{ op: "put", revision: 2 }] });
    apply(stores[0] as KvStore, { op: "txn-resolve", request, txn: "t1", outcome: "success" });
    assert.equal(value(stores[0] as KvStore, "alice"), "6");
    assert.equal(value(stores[2] as KvStore, "zoe"), "4");
    assert.equal(stores[0]?.intents.lockOf("alice"), undefined, "released");
    assert.deepEqual(apply(stores[2] as KvStore, { op: "txn-resolve", request, txn: "t1", outcome: "success" }), { op: "txn-resolve", txn: "t1", revision: 2, results: null }, "a second resolve changes nothing");
  });

  test("a compare that fails in one range runs the failure branch everywhere", () => {
    const stores = ranges();
    apply(stores[0] as KvStore, { op: "put", request, key: "alice", value: bytes("10") });
    apply(stores[1] as KvStore, { op: "put", request, key: "kim", value: bytes("3") });
    const outcome = run(stores, transfer("t2", "alice", "kim", new Map([["alice", 10], ["kim", 5]]), 1));
    assert.equal(outcome, "failure");
    assert.equal(value(stores[0] as KvStore, "alice"), "10");
    assert.equal(value(stores[1] as KvStore, "kim"), "3");
  });

  test("a key held by one transaction refuses another's prepare: it aborts, and the first goes on", () => {
    const stores = ranges();
    apply(stores[0] as KvStore, { op: "put", request, key: "alice", value: bytes("10") });
    apply(stores[2] as KvStore, { op: "put", request, key: "zoe", value: bytes("0") });
    const balances = new Map([["alice", 10], ["zoe", 0]]);
    prepareAll(stores, transfer("first", "alice", "zoe", balances, 1));
    const second = prepareAll(stores, transfer("second", "zoe", "alice", balances, 1));
    assert.deepEqual(second.results[0], { op: "txn-locked", key: "alice", txn: "first" });
    assert.equal(outcomeOf(second.results), "abort");
    assert.equal(run(stores, transfer("first", "alice", "zoe", balances, 1)), "success", "the first's prepares were retried as they were");
    assert.equal(value(stores[2] as KvStore, "zoe"), "1");
  });

  test("the first outcome recorded stands: a recovery's abort after a commit learns the commit", () => {
    const [anchor] = ranges();
    assert.deepEqual(apply(anchor as KvStore, { op: "txn-decide", request, txn: "t", outcome: "success" }), { op: "txn-decide", txn: "t", outcome: "success" });
    assert.deepEqual(apply(anchor as KvStore, { op: "txn-decide", request, txn: "t", outcome: "abort" }), { op: "txn-decide", txn: "t", outcome: "success" });
    assert.equal(apply(anchor as KvStore, { op: "txn-prepare", request, txn: "t", anchor: 0, compares: [], success: [{ op: "put", key: "a", value: bytes("1") }], failure: [] }).op, "rejected", "a late prepare of a decided transaction locks nothing");
    assert.equal(anchor?.intents.lockOf("a"), undefined);
  });

  test("a range remembers what it resolved: a late copy of a prepare (a retry, a duplicated message) locks nothing, and a phase that changes nothing applies as a duplicate", () => {
    const [, other] = ranges();
    const store = other as KvStore;
    const prepare: KvCommand = { op: "txn-prepare", request, txn: "t", anchor: 0, compares: [], success: [{ op: "put", key: "kim", value: bytes("1") }], failure: [] };
    const applyFull = (command: KvCommand) => store.apply(store.applied + 1, encodeCommand(command));
    assert.equal(applyFull(prepare).duplicate, false);
    assert.equal(applyFull(prepare).duplicate, true, "the same prepare again changes nothing");
    assert.equal(applyFull({ op: "txn-resolve", request, txn: "t", outcome: "success" }).duplicate, false);
    assert.equal(value(store, "kim"), "1");
    assert.equal(applyFull({ op: "txn-resolve", request, txn: "t", outcome: "success" }).duplicate, true);
    const late = applyFull(prepare);
    assert.equal(late.result.op, "rejected", "a prepare after the resolve is refused");
    assert.equal(late.duplicate, true);
    assert.equal(store.intents.lockOf("kim"), undefined, "nothing is locked again");
    // A resolve that overtook its prepare (a coordinator that gave up on a slow range) also bars it.
    assert.equal(applyFull({ op: "txn-resolve", request, txn: "u", outcome: "abort" }).duplicate, false);
    assert.equal(applyFull({ ...prepare, txn: "u" }).result.op, "rejected");
    assert.equal(store.intents.inFlight, 0);
  });

  test("a write refused because a transaction holds its key: kept in a node's own session (a late copy is a duplicate), left out of a client's (its retry goes ahead)", () => {
    const [store] = ranges() as [KvStore];
    apply(store, { op: "txn-prepare", request, txn: "t", anchor: 0, compares: [], success: [{ op: "put", key: "alice", value: bytes("1") }], failure: [] });
    const nodeSession = { clientId: SELF_ASSIGNED_SESSIONS_FROM + 1, sequence: 7, timeMs: 1_000 };
    const refused = store.apply(store.applied + 1, encodeCommand({ op: "put", request: nodeSession, key: "alice", value: bytes("2") }));
    assert.equal(refused.result.op, "txn-locked");
    apply(store, { op: "txn-resolve", request, txn: "t", outcome: "success" });
    const lateCopy = store.apply(store.applied + 1, encodeCommand({ op: "put", request: nodeSession, key: "alice", value: bytes("2") }));
    assert.equal(lateCopy.duplicate, true, "its proposer was told it did not happen: a late copy must not apply");
    assert.equal(value(store, "alice"), "1");
    const client = store.apply(store.applied + 1, encodeCommand({ op: "register", request })).result;
    assert.equal(client.op, "session");
    const clientId = client.op === "session" ? client.clientId : 0;
    apply(store, { op: "txn-prepare", request, txn: "v", anchor: 0, compares: [], success: [{ op: "put", key: "alice", value: bytes("3") }], failure: [] });
    assert.equal(store.apply(store.applied + 1, encodeCommand({ op: "put", request: { clientId, sequence: 1 }, key: "alice", value: bytes("4") })).result.op, "txn-locked");
    apply(store, { op: "txn-resolve", request, txn: "v", outcome: "abort" });
    assert.equal(store.apply(store.applied + 1, encodeCommand({ op: "put", request: { clientId, sequence: 1 }, key: "alice", value: bytes("4") })).result.op, "put", "the client's retry of the same sequence applies");
    assert.equal(value(store, "alice"), "4");
  });

  test("each outcome is an entry of its own: recording one does not rewrite the others, a snapshot carries them all, and a state that held them (as written before) gives them up at the next save", () => {
    const backend = new MemoryKvBackend();
    const anchor = new KvStore(backend);
    for (let i = 0; i < 500; i++) apply(anchor, { op: "txn-decide", request, txn: `t${i}`, outcome: "success" });
    assert.equal(backend.readTxnState(), undefined, "no decision went into the intents' value");
    assert.equal([...backend.txnRecords()].length, 500);
    const copy = new KvStore();
    copy.restore(anchor.snapshot());
    assert.deepEqual(apply(copy, { op: "txn-decide", request, txn: "t7", outcome: "abort" }), { op: "txn-decide", txn: "t7", outcome: "success" }, "the snapshot carried the outcomes");

    // A store whose state value held its records: they are read, and move out at the next save.
    const legacy = new MemoryKvBackend();
    legacy.transaction(() => legacy.writeTxnState(encodeTxnState([], new Map([["old", { outcome: "failure", atMs: 5 }]]))));
    const store = new KvStore(legacy);
    assert.deepEqual(apply(store, { op: "txn-decide", request, txn: "old", outcome: "abort" }), { op: "txn-decide", txn: "old", outcome: "failure" });
    apply(store, { op: "txn-decide", request, txn: "new", outcome: "success" });
    assert.deepEqual([...legacy.txnRecords()].map(([txn]) => txn).sort(), ["new", "old"]);
    assert.equal(decodeTxnState(legacy.readTxnState() as Uint8Array).records.size, 0, "the state holds the intents only");
  });

  test("intents and outcomes survive a snapshot, and resolve after it", () => {
    const stores = ranges();
    apply(stores[0] as KvStore, { op: "put", request, key: "alice", value: bytes("10") });
    apply(stores[2] as KvStore, { op: "put", request, key: "zoe", value: bytes("0") });
    const t = transfer("t3", "alice", "zoe", new Map([["alice", 10], ["zoe", 0]]), 2);
    prepareAll(stores, t);
    apply(stores[0] as KvStore, { op: "txn-decide", request, txn: "t3", outcome: "success" });
    const copies = stores.map((store) => {
      const backend = new MemoryKvBackend();
      backend.span = store.backend.span;
      const copy = new KvStore(backend);
      copy.restore(store.snapshot());
      assert.deepEqual(copy.snapshot(), store.snapshot());
      return copy;
    });
    assert.equal(copies[0]?.intents.lockOf("alice"), "t3");
    assert.deepEqual(apply(copies[0] as KvStore, { op: "txn-decide", request, txn: "t3", outcome: "abort" }), { op: "txn-decide", txn: "t3", outcome: "success" });
    for (const part of [0, 2]) apply(copies[part] as KvStore, { op: "txn-resolve", request, txn: "t3", outcome: "success" });
    assert.equal(value(copies[0] as KvStore, "alice"), "8");
    assert.equal(value(copies[2] as KvStore, "zoe"), "2");
  });

  test("bank: transfers across ranges interleaved, with coordinators that stop at any step and recoveries that abort what they find undecided, conserve the total and leave nothing locked", () => {
    const accounts = ["ann", "bob", "cy", "hal", "ivy", "kim", "quin", "rex", "zoe"];
    const step = fc.record({ from: fc.nat(accounts.length - 1), to: fc.nat(accounts.length - 1), amount: fc.integer({ min: 1, max: 20 }), stopAfter: fc.integer({ min: 0, max: 5 }), interleave: fc.boolean() });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
        const stores = ranges();
        for (const account of accounts) apply(stores[rangeOf(account)] as KvStore, { op: "put", request, key: account, value: bytes("100") });
        const balanceOf = (key: string): number => Number(value(stores[rangeOf(key)] as KvStore, key));
        /** Transactions whose coordinator stopped: found later by a recovery. */
        const stranded: { txn: string; anchor: number; parts: number[] }[] = [];
        const recover = (): void => {
          for (const { txn, anchor, parts } of stranded.splice(0)) {
            const decided = apply(stores[anchor] as KvStore, { op: "txn-decide", request, txn, outcome: "abort" });
            const outcome = decided.op === "txn-decide" ? decided.outcome : "abort";
            for (const part of parts) apply(stores[part] as KvStore, { op: "txn-resolve", request, txn, outcome });
          }
        };
        steps.forEach(({ from, to, amount, stopAfter, interleave }, i) => {
          if (from === to) return;
          const [a, b] = [accounts[from] as string, accounts[to] as string];
          const balances = new Map([
            [a, balanceOf(a)],
            [b, balanceOf(b)],
          ]);
          const t = transfer(`t${i}`, a, b, balances, amount);
          const { anchor, parts, results } = prepareAll(stores, t);
          if (stopAfter === 0) return void stranded.push({ txn: t.txn, anchor, parts });
          const decided = apply(stores[anchor] as KvStore, { op: "txn-decide", request, txn: t.txn, outcome: outcomeOf(results) });
          const outcome = decided.op === "txn-decide" ? decided.outcome : "abort";
          if (stopAfter === 1) return void stranded.push({ txn: t.txn, anchor, parts });
          // Resolved in some of the ranges only, then stopped: a recovery finishes with the recorded outcome.
          const resolved = stopAfter === 2 ? parts.slice(0, 1) : parts;
          for (const part of resolved) apply(stores[part] as KvStore, { op: "txn-resolve", request, txn: t.txn, outcome });
          if (resolved.length < parts.length) stranded.push({ txn: t.txn, anchor, parts });
          if (!interleave) recover();
        });
        recover();
        const total = accounts.reduce((sum, account) => sum + balanceOf(account), 0);
        assert.equal(total, 100 * accounts.length, "money is neither made nor lost");
        for (const store of stores) assert.equal(store.intents.inFlight, 0, "nothing is left locked");
        for (const account of accounts) assert.ok(balanceOf(account) >= 100 - 20 * steps.length);
      }),
      { numRuns: 200 },
    );
  });
});

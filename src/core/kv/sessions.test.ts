/**
 * Client sessions in the state machine: registration, exactly-once retries, and expiry by
 * the store's clock, which must be the same on every replica (restarted or not).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { utf8Encode } from "../common/utf8.js";
import { encodeCommand } from "./command.js";
import { encodeSnapshot } from "./snapshot.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM, SESSION_LIMITS, type KvResult, type SessionLimits } from "./store.js";

const HOUR_MS = 60 * 60 * 1000;
const T0 = Date.UTC(2026, 11, 1);

const register = (timeMs: number): Uint8Array => encodeCommand({ op: "register", request: { clientId: 0, sequence: 0, timeMs } });
/** The leader's clock entry: the only command whose time moves the store's clock. */
const clock = (timeMs: number): Uint8Array => encodeCommand({ op: "clock", request: { clientId: 0, sequence: 0, timeMs } });
const put = (clientId: number, sequence: number, key: string, value: string, timeMs: number): Uint8Array =>
  encodeCommand({ op: "put", request: { clientId, sequence, timeMs }, key, value: utf8Encode(value) });

function sessionOf(result: KvResult): number {
  assert.equal(result.op, "session");
  return (result as { clientId: number }).clientId;
}

describe("client sessions", () => {
  test("a registered session applies each sequence once: a retry gets the first result and changes nothing", () => {
    const store = new KvStore();
    const client = sessionOf(store.apply(1, register(T0)).result);
    assert.equal(client, 1, "the session's id is its registration's index");
    assert.deepEqual(store.apply(2, put(client, 1, "k", "a", T0)).result, { op: "put", revision: 1 });
    assert.deepEqual(store.apply(3, put(client, 2, "k", "b", T0)).result, { op: "put", revision: 2 });
    // The answer to sequence 2 was lost; the client sends it again, maybe through another node.
    const retry = store.apply(4, put(client, 2, "k", "b", T0 + 10));
    assert.equal(retry.duplicate, true);
    assert.deepEqual(retry.result, { op: "put", revision: 2 });
    assert.equal(store.currentRevision, 2);
    assert.equal(store.get("k")?.version, 2, "applied twice would make version 3");
  });

  test("a write for a session the store does not hold is refused as expired and changes nothing", () => {
    const store = new KvStore();
    store.apply(1, put(SELF_ASSIGNED_SESSIONS_FROM + 1, 1, "self", "ok", T0));
    const applied = store.apply(2, put(77, 1, "k", "v", T0));
    assert.deepEqual(applied.result, { op: "session-expired", clientId: 77 });
    assert.equal(applied.duplicate, false);
    assert.equal(store.get("k"), undefined);
    assert.equal(store.currentRevision, 1);
    assert.equal(store.sessions, 1, "the self-assigned session was created on first use; 77 was not");
  });

  test("an idle session expires by the log's clock; a busy one does not; an expired client can register again", () => {
    const store = new KvStore();
    const idle = sessionOf(store.apply(1, register(T0)).result);
    const busy = sessionOf(store.apply(2, register(T0)).result);
    assert.equal(store.clock, 0, "a registration's time does not move the clock");
    let index = 2;
    store.apply(++index, clock(T0));
    // Busy writes every 10 minutes for 2 hours; idle writes nothing; the leader's clock entries come between.
    for (let minute = 10, sequence = 1; minute <= 120; minute += 10, sequence++) {
      store.apply(++index, clock(T0 + minute * 60_000));
      assert.equal(store.apply(++index, put(busy, sequence, "b", String(minute), 0)).result.op, "put");
    }
    assert.equal(store.clock, T0 + 2 * HOUR_MS);
    assert.equal(store.sessions, 1);
    const late = store.apply(++index, put(idle, 1, "i", "late", T0 + 2 * HOUR_MS));
    assert.deepEqual(late.result, { op: "session-expired", clientId: idle });
    assert.equal(store.get("i"), undefined);
    const again = sessionOf(store.apply(++index, register(T0 + 2 * HOUR_MS)).result);
    assert.equal(store.apply(++index, put(again, 1, "i", "now", T0 + 2 * HOUR_MS)).result.op, "put");
  });

  test("only clock entries move the clock, and never back: a write stamped hours ahead expires nothing", () => {
    const store = new KvStore();
    store.apply(1, clock(T0 + HOUR_MS));
    const client = sessionOf(store.apply(2, register(T0)).result);
    store.apply(3, clock(T0));
    assert.equal(store.clock, T0 + HOUR_MS);
    // A node whose clock is three hours fast takes a write: the clock does not follow it.
    store.apply(4, put(SELF_ASSIGNED_SESSIONS_FROM + 1, 1, "x", "1", T0 + 4 * HOUR_MS));
    assert.equal(store.clock, T0 + HOUR_MS);
    assert.equal(store.apply(5, put(client, 1, "k", "v", 0)).result.op, "put");
  });

  test("past sessionsMax, registering drops the least recently used sessions (1% of them, at least one)", () => {
    const limits: SessionLimits = { ...SESSION_LIMITS, sessionsMax: 3 };
    const store = new KvStore(undefined, limits);
    store.apply(1, clock(T0));
    const ids = [2, 4, 6].map((index) => {
      store.apply(index, clock(T0 + index));
      return sessionOf(store.apply(index + 1, register(0)).result);
    });
    store.apply(8, clock(T0 + 10));
    store.apply(9, put(ids[0] as number, 1, "k", "v", 0)); // the first session is now the most recent
    const fourth = sessionOf(store.apply(10, register(0)).result);
    assert.equal(store.sessions, 3);
    assert.equal(store.apply(11, put(ids[1] as number, 1, "k", "w", 0)).result.op, "session-expired", "the second was the least recently used");
    assert.equal(store.apply(12, put(ids[0] as number, 2, "k", "x", 0)).result.op, "put");
    assert.equal(store.apply(13, put(fourth, 1, "k", "y", 0)).result.op, "put");
  });

  test("replicas agree: the same commands give byte-identical snapshots, with one replica restarted from a snapshot anywhere", () => {
    const limits: SessionLimits = { ttlMs: 5_000, sweepIntervalMs: 1_000, sessionsMax: 4 };
    const step = fc.oneof(
      fc.record({ kind: fc.constant("register" as const), advanceMs: fc.nat({ max: 3_000 }) }),
      fc.record({ kind: fc.constant("put" as const), advanceMs: fc.nat({ max: 3_000 }), client: fc.nat({ max: 6 }), retry: fc.boolean() }),
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), fc.nat(), (steps, cut) => {
        const a = new KvStore(undefined, limits);
        let b = new KvStore(undefined, limits);
        const restartAt = cut % steps.length;
        const registered: number[] = [];
        const sequences = new Map<number, number>();
        let timeMs = T0;
        let index = 0;
        const both = (data: Uint8Array): KvResult => {
          index++;
          const resultA = a.apply(index, data).result;
          assert.deepEqual(b.apply(index, data).result, resultA);
          return resultA;
        };
        steps.forEach((s, i) => {
          if (s.advanceMs > 0) {
            timeMs += s.advanceMs;
            both(clock(timeMs));
          }
          let data: Uint8Array;
          if (s.kind === "register") data = register(timeMs);
          else {
            const client = registered.length === 0 ? 99 : (registered[s.client % registered.length] as number);
            const sequence = (sequences.get(client) ?? 0) + (s.retry ? 0 : 1);
            sequences.set(client, sequence);
            data = put(client, Math.max(1, sequence), `k${client}`, String(i), timeMs);
          }
          const resultA = both(data);
          if (resultA.op === "session") registered.push(resultA.clientId);
          if (i === restartAt) b = KvStore.restore(b.snapshot(), undefined, limits);
        });
        assert.deepEqual(b.snapshot(), a.snapshot());
        assert.equal(b.clock, a.clock);
        assert.equal(b.sessions, a.sessions);
      }),
      { numRuns: 300 },
    );
  });

  test("a snapshot written before sessions expired (no clock, no last use) still restores", () => {
    // The older layout: the session count straight after the records, sessions without a time.
    const current = encodeSnapshot({ appliedIndex: 4, revision: 1 }, [], [{ clientId: 5, sequence: 2, result: { op: "put", revision: 1 } }]);
    // Rebuild it in the old layout: header (20 bytes), then u32 count | f64 id | f64 seq | result (10 bytes).
    const header = current.subarray(0, 20);
    const sessions = current.subarray(20 + 4 + 8);
    const old = new Uint8Array([...header, ...sessions.subarray(0, 4), ...sessions.subarray(4, 4 + 8 + 8 + 10)]);
    const store = KvStore.restore(old);
    assert.equal(store.applied, 4);
    assert.equal(store.sessions, 1);
    assert.equal(store.clock, 0);
    assert.equal(store.apply(5, put(5, 2, "k", "v", 0)).duplicate, true, "the session still deduplicates");
    // Its last use is unknown (0): the first clock entry starts its lifetime, on every replica alike.
    store.apply(6, clock(T0));
    assert.equal(store.apply(7, put(5, 3, "k", "v", 0)).result.op, "put");
    store.apply(8, clock(T0 + 2 * HOUR_MS));
    assert.equal(store.apply(9, put(5, 4, "k", "v", 0)).result.op, "session-expired", "and it expires an hour after");
  });

  test("at capacity, a burst of registrations evicts in batches, oldest first", () => {
    const limits: SessionLimits = { ...SESSION_LIMITS, sessionsMax: 200 };
    const store = new KvStore(undefined, limits);
    let index = 0;
    store.apply(++index, clock(T0));
    const ids: number[] = [];
    for (let i = 0; i < 200; i++) {
      store.apply(++index, clock(T0 + 1000 * (i + 1)));
      ids.push(sessionOf(store.apply(++index, register(0)).result));
    }
    assert.equal(store.sessions, 200);
    const newest = sessionOf(store.apply(++index, register(0)).result);
    assert.equal(store.sessions, 199, "two of the oldest went (1% of 200), the new one came");
    for (const [i, id] of [ids[0], ids[1]].entries()) assert.equal(store.apply(++index, put(id as number, 1, "k", String(i), 0)).result.op, "session-expired");
    assert.equal(store.apply(++index, put(ids[2] as number, 1, "k", "v", 0)).result.op, "put");
    assert.equal(store.apply(++index, put(newest, 1, "k", "w", 0)).result.op, "put");
  });
});


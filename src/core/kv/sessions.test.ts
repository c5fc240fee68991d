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
    let index = 2;
    // Busy writes every 10 minutes for 2 hours; idle writes nothing.
    for (let minute = 10, sequence = 1; minute <= 120; minute += 10, sequence++) {
      assert.equal(store.apply(++index, put(busy, sequence, "b", String(minute), T0 + minute * 60_000)).result.op, "put");
    }
    assert.equal(store.clock, T0 + 2 * HOUR_MS);
    assert.equal(store.sessions, 1);
    const late = store.apply(++index, put(idle, 1, "i", "late", T0 + 2 * HOUR_MS));
    assert.deepEqual(late.result, { op: "session-expired", clientId: idle });
    assert.equal(store.get("i"), undefined);
    const again = sessionOf(store.apply(++index, register(T0 + 2 * HOUR_MS)).result);
    assert.equal(store.apply(++index, put(again, 1, "i", "now", T0 + 2 * HOUR_MS)).result.op, "put");
  });

  test("the clock never goes back: a proposer with a slow clock does not undo the expiry", () => {
    const store = new KvStore();
    const client = sessionOf(store.apply(1, register(T0 + HOUR_MS)).result);
    store.apply(2, put(SELF_ASSIGNED_SESSIONS_FROM + 1, 1, "x", "1", T0));
    assert.equal(store.clock, T0 + HOUR_MS);
    assert.equal(store.apply(3, put(client, 1, "k", "v", T0)).result.op, "put");
  });

  test("past sessionsMax, registering drops the least recently used session", () => {
    const limits: SessionLimits = { ...SESSION_LIMITS, sessionsMax: 3 };
    const store = new KvStore(undefined, limits);
    const ids = [1, 2, 3].map((index) => sessionOf(store.apply(index, register(T0 + index)).result));
    store.apply(4, put(ids[0] as number, 1, "k", "v", T0 + 10)); // session 1 is now the most recent
    const fourth = sessionOf(store.apply(5, register(T0 + 11)).result);
    assert.equal(store.sessions, 3);
    assert.equal(store.apply(6, put(ids[1] as number, 1, "k", "w", T0 + 12)).result.op, "session-expired", "session 2 was the least recently used");
    assert.equal(store.apply(7, put(ids[0] as number, 2, "k", "x", T0 + 13)).result.op, "put");
    assert.equal(store.apply(8, put(fourth, 1, "k", "y", T0 + 14)).result.op, "put");
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
        steps.forEach((s, i) => {
          const index = i + 1;
          timeMs += s.advanceMs;
          let data: Uint8Array;
          if (s.kind === "register") data = register(timeMs);
          else {
            const client = registered.length === 0 ? 99 : (registered[s.client % registered.length] as number);
            const sequence = (sequences.get(client) ?? 0) + (s.retry ? 0 : 1);
            sequences.set(client, sequence);
            data = put(client, Math.max(1, sequence), `k${client}`, String(i), timeMs);
          }
          const resultA = a.apply(index, data).result;
          const resultB = b.apply(index, data).result;
          assert.deepEqual(resultB, resultA);
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
    // Its last use is unknown (0), so the first command with a time sweeps it, on every replica alike.
    assert.equal(store.apply(6, put(5, 3, "k", "v", T0)).result.op, "session-expired");
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { LogWrite } from "../replica/contract.js";
import { GroupCommit, type SyncDevice } from "./group-commit.js";

/**
 * A device that counts writes and holds each sync until the test completes it, and a
 * `soon` that queues until the test ends the turn: the event loop, by hand.
 */
function world() {
  let written = 0;
  let durable = 0;
  const syncs: { through: number; done: (error: unknown) => void }[] = [];
  const device: SyncDevice = { sync: (done) => syncs.push({ through: written, done }) };
  const soonQueue: (() => void)[] = [];
  const commit = new GroupCommit({ device, soon: (action) => soonQueue.push(action) });
  const endTurn = (): void => {
    for (const action of soonQueue.splice(0)) action();
  };
  /** Completes the oldest running device sync: what it covered becomes durable. */
  const completeSync = (error: unknown = null): void => {
    const sync = syncs.shift();
    assert.ok(sync !== undefined, "no device sync runs");
    if (error === null) durable = Math.max(durable, sync.through);
    sync.done(error);
  };
  /** A group's storage: each save is one write to the shared device. */
  const group = () => {
    let lastWrite = 0;
    const storage = commit.storage<number>({
      save: (_write: LogWrite<number>) => void (lastWrite = ++written),
      prepareSnapshot: (_snapshot, done) => done(null),
      compact: () => undefined,
    });
    const outcomes: unknown[] = [];
    return {
      saveAndSync: () => {
        storage.save({ snapshot: null, entries: [], hardState: 1 });
        storage.sync((error) => {
          // The rule that matters: told durable only once its saves are.
          if (error === null) assert.ok(durable >= lastWrite, `done before its write ${lastWrite} was durable (durable through ${durable})`);
          outcomes.push(error);
        });
      },
      outcomes,
    };
  };
  return { commit, syncs, endTurn, completeSync, group };
}

describe("GroupCommit", () => {
  test("groups that ask in the same turn share one device sync, and each hears of it", () => {
    const w = world();
    const groups = [w.group(), w.group(), w.group(), w.group()];
    for (const g of groups) g.saveAndSync();
    assert.equal(w.syncs.length, 0, "the device sync waits for the end of the turn");
    w.endTurn();
    assert.equal(w.syncs.length, 1);
    assert.ok(groups.every((g) => g.outcomes.length === 0), "nobody is done before the device sync completes");
    w.completeSync();
    assert.deepEqual(groups.map((g) => g.outcomes), [[null], [null], [null], [null]]);
    assert.equal(w.commit.deviceSyncs, 1);
    assert.equal(w.commit.requests, 4);
  });

  test("a request made while a device sync runs waits for the next one, which starts after it", () => {
    const w = world();
    const [a, b, c] = [w.group(), w.group(), w.group()];
    a.saveAndSync();
    w.endTurn();
    b.saveAndSync(); // its write is not covered by the sync running now
    c.saveAndSync();
    w.endTurn();
    assert.equal(w.syncs.length, 1, "one device sync at a time");
    w.completeSync();
    assert.deepEqual([a.outcomes, b.outcomes, c.outcomes], [[null], [], []]);
    w.endTurn();
    assert.equal(w.syncs.length, 1, "the next sync starts for what waited");
    w.completeSync();
    assert.deepEqual([b.outcomes, c.outcomes], [[null], [null]]);
    assert.equal(w.commit.deviceSyncs, 2);
  });

  test("a failed device sync fails every group it covered, and every later request", () => {
    const w = world();
    const [a, b, c] = [w.group(), w.group(), w.group()];
    a.saveAndSync();
    b.saveAndSync();
    w.endTurn();
    const error = new Error("EIO");
    w.completeSync(error);
    assert.deepEqual([a.outcomes, b.outcomes], [[error], [error]]);
    c.saveAndSync();
    w.endTurn();
    assert.equal(w.syncs.length, 0, "a failed device is not asked again");
    assert.deepEqual(c.outcomes, [error]);
  });

  test("a device that completes at once (in memory) still serves every group once", () => {
    let deviceSyncs = 0;
    const soonQueue: (() => void)[] = [];
    const commit = new GroupCommit({ device: { sync: (done) => (deviceSyncs++, done(null)) }, soon: (action) => soonQueue.push(action) });
    const outcomes: unknown[] = [];
    commit.sync((error) => {
      outcomes.push(error);
      commit.sync((again) => outcomes.push(again)); // asked from inside a completion
    });
    commit.sync((error) => outcomes.push(error));
    while (soonQueue.length > 0) soonQueue.shift()?.();
    assert.deepEqual(outcomes, [null, null, null]);
    assert.equal(deviceSyncs, 2);
  });
});

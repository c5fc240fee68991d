import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { contenderKey, isLockMutant, lockTurn, type Contender } from "./lock-turn.js";

const c = (key: string, createRevision: number): Contender => ({ key, createRevision });

describe("the lock recipe's turn", () => {
  test("the lowest creation revision holds; others wait for the contender created just before them", () => {
    const all = [c("l/3", 30), c("l/1", 10), c("l/2", 20)];
    assert.deepEqual(lockTurn(all, c("l/1", 10)), { kind: "held" });
    assert.deepEqual(lockTurn(all, c("l/2", 20)), { kind: "wait", predecessor: c("l/1", 10) });
    assert.deepEqual(lockTurn(all, c("l/3", 30)), { kind: "wait", predecessor: c("l/2", 20) });
  });

  test("a contender whose key is gone, or was made again at another revision, holds nothing", () => {
    assert.deepEqual(lockTurn([c("l/2", 20)], c("l/1", 10)), { kind: "gone" });
    assert.deepEqual(lockTurn([], c("l/1", 10)), { kind: "gone" });
    assert.deepEqual(lockTurn([c("l/1", 40)], c("l/1", 10)), { kind: "gone" });
  });

  test("a waiter whose predecessor went reads again: it waits for whoever is still before it", () => {
    // l/3 waited for l/2, whose lease expired while it waited; l/1 still holds.
    assert.deepEqual(lockTurn([c("l/1", 10), c("l/3", 30)], c("l/3", 30), { waitedFor: "l/2" }), { kind: "wait", predecessor: c("l/1", 10) });
  });

  test("the mutants make the mistakes they are named for", () => {
    assert.deepEqual(lockTurn([], c("l/1", 10), { mutant: "lock-skips-own-key" }), { kind: "held" });
    assert.deepEqual(lockTurn([c("l/1", 10), c("l/3", 30)], c("l/3", 30), { waitedFor: "l/2", mutant: "lock-trusts-predecessor" }), { kind: "held" });
    assert.ok(isLockMutant("lock-skips-own-key") && !isLockMutant("lock-forgets"));
  });

  test("a contender's key is the lock's name and the lease id", () => {
    assert.equal(contenderKey("locks/db", 42), "locks/db/42");
  });
});

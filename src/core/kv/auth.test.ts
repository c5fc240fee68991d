import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ByteReader } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { applyAuthChange, decodeAuthChange, decodeAuthState, EMPTY_AUTH, encodeAuthChange, encodeAuthState, isAdmin, mayAccess, type AuthChange, type AuthState, type PasswordHash, type User } from "./auth.js";
import { decodeCommand, encodeCommand } from "./command.js";
import { KvStore } from "./store.js";

const hash = (fill: number): PasswordHash => ({ cost: 15, salt: new Uint8Array(16).fill(fill), hash: new Uint8Array(32).fill(fill + 1) });

function applyAll(changes: readonly AuthChange[], from: AuthState = EMPTY_AUTH): { state: AuthState; outcomes: string[] } {
  let state = from;
  const outcomes: string[] = [];
  for (const change of changes) {
    const next = applyAuthChange(state, change);
    state = next.state;
    outcomes.push(next.outcome);
  }
  return { state, outcomes };
}

const setup: AuthChange[] = [
  { kind: "user-add", name: "root", password: hash(1) },
  { kind: "user-grant", name: "root", role: "root" },
  { kind: "role-add", name: "reader" },
  { kind: "role-grant", name: "reader", permission: { prefix: "app/", read: true, write: false } },
  { kind: "role-grant", name: "reader", permission: { prefix: "app/own/", read: true, write: true } },
  { kind: "user-add", name: "alice", password: hash(3) },
  { kind: "user-grant", name: "alice", role: "reader" },
  { kind: "enable", secret: new Uint8Array(32).fill(9) },
];

describe("auth state", () => {
  test("permissions cover keys and ranges under their prefix; admin only through a role that has it", () => {
    const { state, outcomes } = applyAll(setup);
    assert.deepEqual(outcomes, setup.map(() => "ok"));
    assert.equal(state.enabled, true);
    const alice = state.users.get("alice") as User;
    const root = state.users.get("root") as User;
    assert.equal(mayAccess(state, alice, "read", "app/x"), true);
    assert.equal(mayAccess(state, alice, "read", "app/"), true, "a range under the prefix");
    assert.equal(mayAccess(state, alice, "read", "ap"), false, "a range wider than the permission");
    assert.equal(mayAccess(state, alice, "write", "app/x"), false);
    assert.equal(mayAccess(state, alice, "write", "app/own/x"), true);
    assert.equal(mayAccess(state, alice, "read", "other"), false);
    assert.equal(isAdmin(state, alice), false);
    assert.equal(isAdmin(state, root), true);
    assert.equal(mayAccess(state, root, "write", ""), true, "root reads and writes every key");
  });

  test("auth is enabled only with a user root holding the role root, who keeps it while enabled", () => {
    const refused = applyAll([{ kind: "user-add", name: "root", password: hash(1) }, { kind: "enable", secret: new Uint8Array(32) }]);
    assert.deepEqual(refused.outcomes, ["ok", "root-required"]);
    assert.equal(refused.state.enabled, false);
    const { state } = applyAll(setup);
    const after = applyAll([
      { kind: "user-revoke", name: "root", role: "root" },
      { kind: "user-delete", name: "root" },
      { kind: "role-delete", name: "root" },
      { kind: "role-grant", name: "root", permission: { prefix: "", read: true, write: false } },
    ], state);
    assert.deepEqual(after.outcomes, ["root-protected", "root-protected", "root-protected", "root-protected"]);
  });

  test("a password change moves the user's generation (old tokens stop working); deleting a role takes it from its users", () => {
    const { state } = applyAll(setup);
    const before = (state.users.get("alice") as User).generation;
    const { state: next } = applyAll([{ kind: "user-password", name: "alice", password: hash(7) }, { kind: "role-delete", name: "reader" }], state);
    const alice = next.users.get("alice") as User;
    assert.ok(alice.generation > before);
    assert.deepEqual(alice.roles, []);
    assert.equal(mayAccess(next, alice, "read", "app/x"), false);
  });

  test("changes and states encode canonically and decode to themselves; bad bytes are a typed error", () => {
    for (const change of setup) {
      const bytes = encodeAuthChange(change);
      const reader = new ByteReader(bytes, "change");
      assert.deepEqual(decodeAuthChange(reader), change);
      reader.expectEnd();
      const command = encodeCommand({ op: "auth", request: { clientId: 1, sequence: 2 }, change });
      assert.deepEqual(encodeCommand(decodeCommand(command)), command);
    }
    const { state } = applyAll(setup);
    const bytes = encodeAuthState(state);
    assert.deepEqual(encodeAuthState(decodeAuthState(new ByteReader(bytes, "state"))), bytes);
    assert.throws(() => encodeAuthChange({ kind: "user-add", name: "no spaces", password: hash(1) }), InvalidInputError);
    for (let cut = 0; cut < bytes.length; cut += 7) assert.throws(() => decodeAuthState(new ByteReader(bytes.subarray(0, cut), "state")), InvalidInputError);
  });

  test("the store applies auth commands through the log, and a snapshot carries the state to a replica", () => {
    const store = new KvStore();
    let index = 0;
    for (const change of setup) {
      const applied = store.apply(++index, encodeCommand({ op: "auth", request: { clientId: 0, sequence: index }, change }));
      assert.deepEqual(applied.result, { op: "auth", outcome: "ok", authRevision: index });
    }
    assert.equal(store.auth.enabled, true);
    const restored = KvStore.restore(store.snapshot());
    assert.deepEqual(encodeAuthState(restored.auth), encodeAuthState(store.auth));
    assert.deepEqual(restored.snapshot(), store.snapshot());
    const plain = new KvStore();
    plain.apply(1, encodeCommand({ op: "put", request: { clientId: 0, sequence: 1 }, key: "k", value: new Uint8Array(1) }));
    assert.equal(KvStore.restore(plain.snapshot()).auth, EMPTY_AUTH, "a store that never changed auth has no auth section");
  });
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { AssertionError } from "./assert.js";
import { emptyMap, emptySet, writable, writableSet } from "./empty.js";

test("the shared empty map reads as empty, refuses writes, and writable() gives a map of its own", () => {
  const shared = emptyMap<string, number>();
  assert.equal(shared.size, 0);
  assert.equal(shared.get("a"), undefined);
  assert.equal(shared.delete("a"), false);
  shared.clear();
  assert.deepEqual([...shared], []);
  assert.throws(() => shared.set("a", 1), AssertionError);
  const own = writable(shared);
  assert.notEqual(own, shared);
  own.set("a", 1);
  assert.equal(writable(own), own, "a map of its own is kept");
  assert.equal(emptyMap<string, number>().size, 0, "writing to its own map leaves the shared one empty");
});

test("the shared empty set reads as empty, refuses adds, and writableSet() gives a set of its own", () => {
  const shared = emptySet<string>();
  assert.equal(shared.has("a"), false);
  assert.throws(() => shared.add("a"), AssertionError);
  const own = writableSet(shared);
  own.add("a");
  assert.equal(writableSet(own), own);
  assert.equal(emptySet<string>().size, 0);
});

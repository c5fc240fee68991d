import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { routeOf } from "./route.js";

describe("proxy routing", () => {
  test("writes and linearizable reads go to the leader; lease and stale reads to any node", () => {
    assert.deepEqual(routeOf("PUT", "/v1/kv/a%2Fb", false), { target: "leader", consistency: null, key: "a/b", repeatable: false });
    assert.deepEqual(routeOf("DELETE", "/v1/kv/a", true), { target: "leader", consistency: null, key: "a", repeatable: true });
    assert.deepEqual(routeOf("GET", "/v1/kv/a", false), { target: "leader", consistency: "linearizable", key: "a", repeatable: true });
    assert.deepEqual(routeOf("GET", "/v1/kv/a?consistency=stale", false), { target: "any", consistency: "stale", key: "a", repeatable: true });
    assert.deepEqual(routeOf("GET", "/v1/kv?prefix=a&consistency=lease", false), { target: "any", consistency: "lease", key: null, repeatable: true });
    assert.deepEqual(routeOf("GET", "/v1/members", false), { target: "leader", consistency: "linearizable", key: null, repeatable: true });
  });

  test("only reads and session writes may be sent twice", () => {
    assert.equal(routeOf("POST", "/v1/txn", false).repeatable, false);
    assert.equal(routeOf("POST", "/v1/txn", true).repeatable, true);
    assert.equal(routeOf("POST", "/v1/sessions", false).repeatable, false, "a second registration would open a second session");
    assert.equal(routeOf("DELETE", "/v1/members/3", true).repeatable, false, "membership changes are not in client sessions");
    assert.equal(routeOf("POST", "/v1/leader/transfer", false).target, "leader");
    assert.deepEqual(routeOf("GET", "/v1/status", false), { target: "any", consistency: null, key: null, repeatable: true });
  });

  test("a malformed key is passed on for the node to refuse", () => {
    assert.equal(routeOf("PUT", "/v1/kv/%E0%A4%A", false).key, "%E0%A4%A");
  });
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { checkHello, isRefusal } from "./handshake.js";

const self = { clusterId: "c", nodeId: 1, isKnownPeer: (id: number) => id === 2 };

// Found by `npm run fuzz` (target peer): checkHello ran String() on the hello's version, which
// throws a TypeError for an object whose toString is not a function. A stranger's single
// frame on the peer port then stopped the node (the throw escaped the socket's data handler).
test("fuzz: a hello whose version cannot be converted to a string is refused, not thrown", () => {
  for (const synod of [{ toString: 1 }, { toString: 1, valueOf: 1 }, 2n ** 64n - 1n, [1], null]) {
    const checked = checkHello({ synod, clusterId: "c", from: 2, to: 1 }, self);
    assert.ok(isRefusal(checked) && checked.code === "version", String(checked));
  }
  assert.ok(!isRefusal(checkHello({ synod: 1, clusterId: "c", from: 2, to: 1 }, self)));
});

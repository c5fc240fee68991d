import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { NodeId } from "../engine/contract.js";
import { AssertionError } from "../common/assert.js";
import { DEFAULT_GROUP, GROUP_ID_MAX, groupOfKey, isGroupId, type GroupEnvelope } from "./group.js";
import { createRouter } from "./mutants.js";
import { GroupRouter } from "./router.js";

/** A router whose sends are recorded, with one replica's inbox per hosted group. */
function routerWith(groups: readonly number[], mutant: "cross-group-delivery" | null = null) {
  const sent: { to: NodeId; envelope: GroupEnvelope<string> }[] = [];
  const unknown: { from: NodeId; group: number }[] = [];
  const router = createRouter<string>({ send: (to, envelope) => (sent.push({ to, envelope }), true), unknownGroup: (from, group) => unknown.push({ from, group }) }, mutant);
  const inbox = new Map<number, { from: NodeId; message: unknown }[]>();
  const networks = new Map(groups.map((group) => {
    inbox.set(group, []);
    return [group, router.host(group, (from, message) => inbox.get(group)?.push({ from, message }))] as const;
  }));
  return { router, sent, unknown, inbox, networks };
}

describe("group ids", () => {
  test("are the integers 0 .. 2^32 - 1; group 0 is the one every cluster has", () => {
    assert.equal(DEFAULT_GROUP, 0);
    for (const ok of [0, 1, 4096, GROUP_ID_MAX]) assert.equal(isGroupId(ok), true, String(ok));
    for (const bad of [-1, 0.5, GROUP_ID_MAX + 1, Number.NaN, "1", null, undefined]) assert.equal(isGroupId(bad), false, String(bad));
  });
});

describe("GroupRouter", () => {
  test("each hosted replica sends through its own network, tagged with its group", () => {
    const { sent, networks } = routerWith([0, 3]);
    assert.equal(networks.get(0)?.send(2, "a"), true);
    networks.get(3)?.send(5, "b");
    assert.deepEqual(sent, [
      { to: 2, envelope: { group: 0, message: "a" } },
      { to: 5, envelope: { group: 3, message: "b" } },
    ]);
  });

  test("an incoming envelope reaches the replica of its group, and only that one", () => {
    const { router, inbox } = routerWith([0, 1, 2]);
    assert.equal(router.deliver(7, { group: 1, message: "m1" }), "delivered");
    assert.equal(router.deliver(8, { group: 2, message: "m2" }), "delivered");
    assert.deepEqual(inbox.get(0), []);
    assert.deepEqual(inbox.get(1), [{ from: 7, message: "m1" }]);
    assert.deepEqual(inbox.get(2), [{ from: 8, message: "m2" }]);
  });

  test("a message for a group the node does not host is counted and dropped, never a crash", () => {
    const { router, inbox, unknown } = routerWith([0]);
    assert.equal(router.deliver(2, { group: 9, message: "x" }), "unknown-group");
    assert.equal(router.deliver(2, { group: 9, message: "y" }), "unknown-group");
    assert.equal(router.droppedUnknownGroup, 2);
    assert.deepEqual(unknown, [{ from: 2, group: 9 }, { from: 2, group: 9 }]);
    assert.deepEqual(inbox.get(0), []);
  });

  test("a group field that is no group id is counted as malformed and dropped", () => {
    const { router, inbox } = routerWith([0]);
    for (const group of [-1, 1.5, Number.NaN, "0" as unknown as number]) assert.equal(router.deliver(2, { group, message: "x" }), "malformed");
    assert.equal(router.droppedMalformed, 4);
    assert.equal(router.droppedUnknownGroup, 0);
    assert.deepEqual(inbox.get(0), []);
  });

  test("after unhost, the group's messages are unknown; hosting it twice is a programming error", () => {
    const { router } = routerWith([0, 1]);
    assert.throws(() => router.host(1, () => undefined), AssertionError);
    assert.throws(() => router.host(-1, () => undefined), AssertionError);
    router.unhost(1);
    assert.equal(router.hosts(1), false);
    assert.deepEqual(router.groups, [0]);
    assert.equal(router.deliver(2, { group: 1, message: "x" }), "unknown-group");
  });

  test("the plain router never misroutes, however many messages pass", () => {
    const { router, inbox } = routerWith([0, 1]);
    assert.ok(router instanceof GroupRouter);
    for (let i = 0; i < 100; i++) router.deliver(2, { group: i % 2, message: i });
    assert.ok(inbox.get(0)?.every((m) => (m.message as number) % 2 === 0));
    assert.ok(inbox.get(1)?.every((m) => (m.message as number) % 2 === 1));
  });

  test("the cross-group-delivery mutant hands some messages to another group's replica (and none with one group)", () => {
    const { router, inbox } = routerWith([0, 1], "cross-group-delivery");
    for (let i = 0; i < 700; i++) router.deliver(2, { group: 0, message: i });
    assert.equal(inbox.get(1)?.length, 7);
    const single = routerWith([0], "cross-group-delivery");
    for (let i = 0; i < 700; i++) single.router.deliver(2, { group: 0, message: i });
    assert.equal(single.inbox.get(0)?.length, 700);
  });
});

describe("groupOfKey", () => {
  test("is fixed, in range, one group for a one-group cluster, and spreads keys over every group", () => {
    assert.equal(groupOfKey("anything", 1), 0);
    assert.equal(groupOfKey("k1", 4), groupOfKey("k1", 4));
    const seen = new Set<number>();
    for (let i = 1; i <= 64; i++) {
      const group = groupOfKey(`k${i}`, 4);
      assert.ok(Number.isInteger(group) && group >= 0 && group < 4);
      seen.add(group);
    }
    assert.equal(seen.size, 4);
    assert.throws(() => groupOfKey("k", 0), AssertionError);
  });
});

/**
 * The dashboard feed's link arithmetic without processes: the counters `GET /v1/status`
 * publishes read back as they were written, anything else from a member is refused rather
 * than drawn, and two readings make rates, a counter that went down (a restarted node)
 * counting from zero.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { linkCountersOf, linkRates, publicLinkCounters, type LinkCounters } from "./dashboard-feed.js";

const link = (framesSent: number, framesReceived: number, framesDropped = 0): LinkCounters => ({ connected: true, inboundConnected: true, framesSent, framesReceived, framesDropped });

describe("the dashboard feed's link counters and rates", () => {
  test("what a status publishes is read back as the same counters, sorted by peer, and carries nothing else of the transport", () => {
    const stats = new Map<number, LinkCounters & { bytesSent: number; queueBytes: number }>([
      [3, { ...link(10, 20, 1), bytesSent: 999, queueBytes: 5 }],
      [2, { ...link(7, 8), bytesSent: 1, queueBytes: 0 }],
    ]);
    const published = publicLinkCounters(stats);
    assert.deepEqual(published.map((l) => l.peer), [2, 3]);
    assert.deepEqual(Object.keys(published[0] ?? {}).sort(), ["connected", "framesDropped", "framesReceived", "framesSent", "inboundConnected", "peer"]);
    const read = linkCountersOf(JSON.parse(JSON.stringify({ id: 1, links: published })));
    assert.deepEqual(read, new Map([[2, link(7, 8)], [3, link(10, 20, 1)]]));
  });

  test("a status without counters (an older node) or with malformed ones gives none", () => {
    for (const status of [null, {}, { links: {} }, { links: [null] }, { links: [{ peer: 2, connected: true, inboundConnected: true, framesSent: -1, framesReceived: 0, framesDropped: 0 }] }, { links: [{ peer: "2", connected: true, inboundConnected: true, framesSent: 1, framesReceived: 0, framesDropped: 0 }] }, { links: [{ peer: 2, connected: 1, inboundConnected: true, framesSent: 1, framesReceived: 0, framesDropped: 0 }] }, { links: Array.from({ length: 1025 }, () => ({})) }]) {
      assert.equal(linkCountersOf(status), null, JSON.stringify(status).slice(0, 120));
    }
    assert.deepEqual(linkCountersOf({ links: [] }), new Map(), "a node with no peers has no links");
  });

  test("two readings make messages per second; a new peer and a counter that went down count from zero", () => {
    const before = new Map([[2, link(100, 50, 4)], [3, link(900, 900)]]);
    const now = new Map([[2, link(150, 70, 4)], [3, link(30, 10)], [4, link(5, 0)]]);
    assert.deepEqual(linkRates(now, before, 0.5), [
      { peer: 2, connected: true, inboundConnected: true, sentPerSecond: 100, receivedPerSecond: 40, droppedPerSecond: 0 },
      { peer: 3, connected: true, inboundConnected: true, sentPerSecond: 60, receivedPerSecond: 20, droppedPerSecond: 0 },
      { peer: 4, connected: true, inboundConnected: true, sentPerSecond: 10, receivedPerSecond: 0, droppedPerSecond: 0 },
    ]);
    assert.throws(() => linkRates(now, before, 0), /positive interval/);
  });
});

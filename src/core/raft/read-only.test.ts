import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { NodeId } from "../engine/contract.js";
import { ReadOnly } from "./read-only.js";

/** A read queue of leader 1 in a cluster of 1, 2, 3, recording what it releases. */
function queue(leaseAcknowledgedAt = 0): { reads: ReadOnly; released: string[] } {
  const released: string[] = [];
  const reads = new ReadOnly(1, 10, 8, {
    quorumConfirms: (acks) => [1, 2, 3].filter((id: NodeId) => acks.has(id)).length >= 2,
    leaseAcknowledgedAt: () => leaseAcknowledgedAt,
    release: (from, requestId, index) => released.push(`${requestId}@${index} to ${from}`),
  });
  return { reads, released };
}

describe("6.4 ReadIndex: the read queue", () => {
  test("reads that arrive before the next Ready share one round, released in order once a quorum answers it", () => {
    const { reads, released } = queue();
    reads.awaitConfirmation(1, 100, 5, 0);
    reads.awaitConfirmation(2, 101, 6, 0);
    const round = reads.takeBatchedRound();
    assert.equal(reads.hasBatchedRound, false);
    reads.awaitConfirmation(1, 102, 7, 1);
    const next = reads.takeBatchedRound();
    assert.ok(next > round);
    reads.acknowledge(3, round);
    assert.deepEqual(released, ["100@5 to 1", "101@6 to 2"], "an answer to the first round confirms only its reads");
    reads.acknowledge(2, next);
    assert.deepEqual(released, ["100@5 to 1", "101@6 to 2", "102@7 to 1"]);
  });

  test("a role change drops the reads being confirmed and those waiting for the term's first commit", () => {
    const { reads, released } = queue();
    reads.awaitConfirmation(1, 100, 5, 0);
    const round = reads.takeBatchedRound();
    reads.awaitTermCommit({ requestId: 101, from: 2, lease: false });
    reads.reset();
    reads.acknowledge(2, round);
    assert.deepEqual(released, []);
    assert.equal(reads.hasReadsAwaitingTermCommit, false);
  });
});

describe("6.4.1 the leader lease", () => {
  test("holds for leaseTicks after the heartbeats a quorum acknowledged were sent, and not once given away", () => {
    const { reads } = queue(20);
    assert.equal(reads.leaseValid(27), true);
    assert.equal(reads.leaseValid(28), false, "8 ticks after the acknowledged heartbeat the lease has run out");
    reads.giveLeaseAway();
    assert.equal(reads.leaseValid(21), false);
    reads.reset();
    assert.equal(reads.leaseValid(21), true, "a new term's lease is its own");
  });

  test("a round's send time is remembered for two election timeouts, then forgotten", () => {
    const { reads } = queue();
    const old = reads.newRound(0);
    assert.equal(reads.sentAt(old), 0);
    reads.newRound(20);
    assert.equal(reads.sentAt(old), 0);
    reads.newRound(21);
    assert.equal(reads.sentAt(old), undefined);
  });
});

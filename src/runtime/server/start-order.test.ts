// The pace at which a node's replicas start ticking (start-order.ts): by range id, a batch at
// a time, none while too many started are still awake; engines that never go quiet start a
// batch every interval.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { GroupReplica } from "./group-replica.js";
import { AWAKE_STARTED_MAX, START_BATCH_INTERVAL_MS, STARTS_PER_BATCH, startInBatches } from "./start-order.js";

interface FakeReplica {
  readonly group: number;
  started: boolean;
  quiet: boolean;
}

/** `count` replicas in a shuffled order, with engines that go quiet (or, `quiesces` false, have no quiescence). */
function replicas(count: number, quiesces = true): { readonly fakes: FakeReplica[]; readonly replicas: GroupReplica[] } {
  const fakes = Array.from({ length: count }, (_, i) => ({ group: (i * 7919) % count, started: false, quiet: false }));
  const wrapped = fakes.map((fake) => ({
    group: fake.group,
    engine: quiesces ? { quiescent: () => fake.quiet } : {},
    driver: { start: () => void (fake.started = true) },
  })) as unknown as GroupReplica[];
  return { fakes, replicas: wrapped };
}

const startedIds = (fakes: readonly FakeReplica[]): number[] => fakes.filter((fake) => fake.started).map((fake) => fake.group).sort((a, b) => a - b);

test("a batch at a time in range id order; none while AWAKE_STARTED_MAX started are awake; more once they go quiet", async () => {
  const total = AWAKE_STARTED_MAX + STARTS_PER_BATCH + 100;
  const { fakes, replicas: list } = replicas(total);
  const stop = startInBatches(list);
  try {
    assert.deepEqual(startedIds(fakes), Array.from({ length: STARTS_PER_BATCH }, (_, i) => i), "the first batch at once: the lowest ids");
    await sleep(START_BATCH_INTERVAL_MS * 1.5);
    assert.equal(startedIds(fakes).length, AWAKE_STARTED_MAX, "a second batch");
    await sleep(START_BATCH_INTERVAL_MS * 2);
    assert.equal(startedIds(fakes).length, AWAKE_STARTED_MAX, "every started one is awake: none more");
    for (const fake of fakes) if (fake.started) fake.quiet = true;
    await sleep(START_BATCH_INTERVAL_MS * 2.5);
    assert.equal(startedIds(fakes).length, total, "they went quiet: the rest start");
  } finally {
    stop();
  }
});

test("few replicas start at once; engines without quiescence start a batch every interval; stop ends the starting", async () => {
  const few = replicas(STARTS_PER_BATCH);
  startInBatches(few.replicas)();
  assert.equal(startedIds(few.fakes).length, STARTS_PER_BATCH);
  const many = replicas(AWAKE_STARTED_MAX + STARTS_PER_BATCH, false);
  const stop = startInBatches(many.replicas);
  try {
    await sleep(START_BATCH_INTERVAL_MS * 2.5);
    assert.equal(startedIds(many.fakes).length, AWAKE_STARTED_MAX + STARTS_PER_BATCH, "no quiescence to wait for");
  } finally {
    stop();
  }
  const stopped = replicas(AWAKE_STARTED_MAX);
  startInBatches(stopped.replicas)();
  await sleep(START_BATCH_INTERVAL_MS * 1.5);
  assert.equal(startedIds(stopped.fakes).length, STARTS_PER_BATCH, "stopped after the first batch");
});

/**
 * The pace at which a node's replicas start ticking (issue 16: thousands of ranges per
 * node). Started all at once, every range of every node times out and campaigns within the
 * same second, and an awake replica costs its node work on every tick (10,000 of them take
 * a whole core): with 10,000 ranges no range elected a leader in minutes on the development
 * machine. So a node starts them in range id order, at most `STARTS_PER_BATCH` every
 * `START_BATCH_INTERVAL_MS`, and none while `AWAKE_STARTED_MAX` of those it started are still
 * awake (not yet quiet): it takes on the next ranges as the last ones settle, and never more
 * than it can tick. A quiet one costs nothing (it rests: core/replica/replica.ts).
 *
 * Every node goes in the same order, so a range's replicas start ticking at about the same
 * time everywhere: a replica that has not ticked for an election timeout refuses pre-votes
 * (it may still hear from a leader), so a range whose replicas elsewhere wait for their turn
 * cannot elect. (Starting each node's natural leaderships first, a tried variant, deadlocked
 * on exactly that.) A replica that is not ticking yet still steps what it receives: it votes,
 * follows and goes quiet with its range. A node with few ranges starts them all at once, as
 * before; engines that never go quiet (Paxos) start a batch every interval.
 */
import type { GroupReplica } from "./group-replica.js";

/** Replicas that start ticking together. */
export const STARTS_PER_BATCH = 500;
/** Between two batches. */
export const START_BATCH_INTERVAL_MS = 250;
/** Started replicas still awake (not quiet) at most, for the next batch to start. */
export const AWAKE_STARTED_MAX = 1_000;

/** The replicas in the order every node starts them: by range id. */
export function startOrder(replicas: readonly GroupReplica[]): GroupReplica[] {
  return [...replicas].sort((a, b) => a.group - b.group);
}

/**
 * Starts `replicas` (Driver.start: a replica started already, or stopped, is left alone) a
 * batch at a time, in `startOrder`. Returns a function that stops starting the rest.
 */
export function startInBatches(replicas: readonly GroupReplica[]): () => void {
  const order = startOrder(replicas);
  let next = 0;
  let timer: NodeJS.Timeout | null = null;
  /** Started, and not seen quiet since (those seen quiet are dropped: they cost nothing). */
  let awake: GroupReplica[] = [];
  const batch = (): void => {
    timer = null;
    awake = awake.filter((replica) => replica.engine.quiescent?.() !== true && replica.engine.quiescent !== undefined);
    const end = Math.min(order.length, next + Math.min(STARTS_PER_BATCH, AWAKE_STARTED_MAX - awake.length));
    for (; next < end; next++) {
      const replica = order[next] as GroupReplica;
      replica.driver.start();
      awake.push(replica);
    }
    if (next < order.length) timer = setTimeout(batch, START_BATCH_INTERVAL_MS);
  };
  batch();
  return () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };
}

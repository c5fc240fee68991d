/**
 * Deliberately broken replicas, so the simulator can prove it catches a mistake in the
 * production loop itself, not only in an engine. Each overrides one hook point of
 * `Replica`; production never builds one. They apply to every protocol.
 */
import type { Ready } from "../engine/contract.js";
import { Replica, type ReplicaOptions } from "./replica.js";

export const REPLICA_MUTANTS = {
  "send-before-persist": "sends the messages that must wait for the fsync (votes, append acknowledgements) with the others, before the Ready's writes are durable",
  "compact-under-transfer": "compacts the log past entries a live follower still needs — one receiving a snapshot needs a newer one as soon as it has installed it",
} as const;

export type ReplicaMutant = keyof typeof REPLICA_MUTANTS;

export function isReplicaMutant(name: string): name is ReplicaMutant {
  return Object.hasOwn(REPLICA_MUTANTS, name);
}

/** Persist-before-send broken: a crash inside the fsync loses a vote or an entry a peer was already told of. */
class SendBeforePersistReplica<M, H, R> extends Replica<M, H, R> {
  protected override sendBeforePersist(ready: Ready<M, H>): void {
    super.sendBeforePersist(ready);
    super.sendAfterPersist(ready);
  }

  protected override sendAfterPersist(): void {
    // Sent already.
  }
}

/** The compaction floor ignored: a follower receiving a snapshot slower than the log outgrows it chases snapshots without end. */
class CompactUnderTransferReplica<M, H, R> extends Replica<M, H, R> {
  protected override compactionHeld(): boolean {
    // Compacts whatever followers still need.
    return false;
  }
}

/** A replica, or with `mutant`, the broken variant of that name. */
export function createReplica<M, H, R>(options: ReplicaOptions<M, H, R>, mutant: ReplicaMutant | null = null): Replica<M, H, R> {
  switch (mutant) {
    case null:
      return new Replica(options);
    case "send-before-persist":
      return new SendBeforePersistReplica(options);
    case "compact-under-transfer":
      return new CompactUnderTransferReplica(options);
  }
}

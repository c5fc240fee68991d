/**
 * Replicas that applied the same entries hold the same state. The engine checks hold the
 * logs to agreeing (log matching, state-machine safety); this holds the state machines built
 * from them to it too: at the end of a run, every replica of a group that holds its state
 * and has applied a given index must hold the same bytes (the KV store's snapshot: records,
 * revisions, sessions, history, leases, and a range's span and epoch). A replica that built
 * its state from another beginning (a range moved to a node after a split, taking the log
 * from its first entry) applies the same entries to another state, with other revisions,
 * and no check of keys and values sees it.
 */
import { bytesEqual } from "../../core/common/bytes.js";
import type { NodeId } from "../../core/engine/contract.js";
import type { KvStore } from "../../core/kv/store.js";
import type { GroupId } from "../../core/multi/group.js";
import { InvariantViolation } from "./violation.js";

/** One replica's state, as the check compares it. */
export interface ReplicaState {
  readonly node: NodeId;
  readonly applied: number;
  readonly bytes: Uint8Array;
  readonly revision: number;
  readonly epoch: number;
}

/** A KV store's state as the check compares it. */
export function kvStateOf(kv: KvStore): Omit<ReplicaState, "node"> {
  return { applied: kv.applied, bytes: kv.snapshot(), revision: kv.currentRevision, epoch: kv.rangeEpoch };
}

/** Throws InvariantViolation("replica-state") when two of `states` (one group's replicas) applied through one index and differ. */
export function checkReplicaStates(group: GroupId, states: readonly ReplicaState[], what = "group"): void {
  const byApplied = new Map<number, ReplicaState>();
  for (const state of states) {
    const other = byApplied.get(state.applied);
    if (other === undefined) byApplied.set(state.applied, state);
    else if (!bytesEqual(other.bytes, state.bytes)) {
      throw new InvariantViolation(
        "replica-state",
        `${what} ${group}: nodes ${other.node} and ${state.node} have both applied through index ${state.applied} and hold different states (revision ${other.revision}, epoch ${other.epoch} against revision ${state.revision}, epoch ${state.epoch})`,
      );
    }
  }
}

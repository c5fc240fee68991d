/**
 * No acknowledged write lost: every write the system acknowledged (a put, a delete, a
 * successful cas) is in the applied sequence of every node that is up at the end of the
 * run, after the heal phase has let them catch up. This is the user's view of durability:
 * what was acknowledged survives crashes, failovers and partitions.
 */
import type { NodeId } from "../../core/engine/contract.js";
import type { Operation } from "../history.js";
import { InvariantViolation } from "./violation.js";

export interface AckedWrite {
  readonly requestKey: string;
  readonly operation: Operation;
  readonly answeredBy: NodeId | null;
}

export function checkNoLostWrites(acked: readonly AckedWrite[], appliedByNode: ReadonlyMap<NodeId, ReadonlySet<string>>): void {
  for (const [node, applied] of appliedByNode) {
    const missing = acked.filter((write) => !applied.has(write.requestKey));
    if (missing.length > 0) {
      const first = missing[0] as AckedWrite;
      const op = first.operation;
      throw new InvariantViolation(
        "lost-write",
        `${missing.length} acknowledged write(s) missing on node ${node}; the first: client ${op.client} ${op.op} ${JSON.stringify(op.key)}` +
          `${op.value === undefined ? "" : ` = ${JSON.stringify(op.value)}`}, acknowledged by node ${first.answeredBy} at ${(op.return / 1000).toFixed(3)}ms`,
      );
    }
  }
}

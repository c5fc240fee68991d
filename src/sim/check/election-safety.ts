/**
 * Election Safety (Raft paper, Figure 3 and section 5.2): at most one leader can be elected
 * in a given term. Checked on every role observation, so the violation is caught at the
 * moment the second leader appears.
 */
import type { EngineStatus, NodeId } from "../../core/engine/contract.js";
import { InvariantViolation } from "./violation.js";

export class ElectionSafety {
  private readonly leaderByTerm = new Map<number, NodeId>();

  observe(status: EngineStatus): void {
    if (status.role !== "leader") return;
    const known = this.leaderByTerm.get(status.term);
    if (known === undefined) this.leaderByTerm.set(status.term, status.id);
    else if (known !== status.id) {
      throw new InvariantViolation("election-safety", `two leaders in term ${status.term}: node ${known} and node ${status.id}`);
    }
  }

  /** Terms in which some node was seen as leader, with that node. */
  leaders(): ReadonlyMap<number, NodeId> {
    return this.leaderByTerm;
  }
}

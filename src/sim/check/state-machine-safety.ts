/**
 * State Machine Safety (Raft paper, Figure 3 and section 5.4.3): if a server has applied a
 * log entry at a given index, no other server ever applies a different entry for that
 * index. Equivalently, every node's applied sequence is a prefix of one sequence — the
 * canonical sequence built here from the first application of each index.
 */
import { bytesEqual } from "../../core/kv/store.js";
import type { LogEntry, NodeId } from "../../core/engine/contract.js";
import { InvariantViolation } from "./violation.js";

export class StateMachineSafety {
  private readonly canonical: (LogEntry | undefined)[] = [];
  private readonly firstApplier: NodeId[] = [];

  /**
   * `compareTerms`: an entry is its term and data (Raft, where the same entry keeps its term
   * everywhere); without, only its value counts (Multi-Paxos, where nodes may hold a chosen
   * value at different ballots).
   */
  constructor(private readonly compareTerms = true) {}

  /** Records an application; with `judge` false it only records (for other checkers). */
  onApply(node: NodeId, entry: LogEntry, judge = true): void {
    const known = this.canonical[entry.index];
    if (known === undefined) {
      this.canonical[entry.index] = entry;
      this.firstApplier[entry.index] = node;
      return;
    }
    if (judge && ((this.compareTerms && known.term !== entry.term) || known.kind !== entry.kind || !bytesEqual(known.data, entry.data))) {
      throw new InvariantViolation(
        "state-machine-safety",
        `node ${node} applied a different entry at index ${entry.index} (term ${entry.term}) than node ${this.firstApplier[entry.index]} did (term ${known.term})`,
      );
    }
  }

  /** The committed entries every node must agree on, by index (holes where none applied yet). */
  committed(): readonly (LogEntry | undefined)[] {
    return this.canonical;
  }
}

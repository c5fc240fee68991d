/**
 * Log Matching (Raft paper, Figure 3 and section 5.3): if two logs contain an entry with
 * the same index and term, the logs are identical in all entries up through that index.
 * Checked over every pair of live nodes at checkpoints; entries a node no longer holds
 * (compacted into a snapshot) are skipped.
 */
import type { Engine, NodeId } from "../../core/engine/contract.js";
import { InvariantViolation } from "./violation.js";

export function checkLogMatching(engines: ReadonlyMap<NodeId, Engine<unknown, unknown>>): void {
  const nodes = [...engines.entries()];
  for (let a = 0; a < nodes.length; a++) {
    for (let b = a + 1; b < nodes.length; b++) {
      const [idA, engineA] = nodes[a] as [NodeId, Engine<unknown, unknown>];
      const [idB, engineB] = nodes[b] as [NodeId, Engine<unknown, unknown>];
      const last = Math.min(engineA.status().lastIndex, engineB.status().lastIndex);
      // Find the highest index where both hold an entry of the same term ...
      let match = 0;
      for (let i = last; i >= 1; i--) {
        const termA = engineA.entryTerm(i);
        if (termA !== null && termA === engineB.entryTerm(i)) {
          match = i;
          break;
        }
      }
      // ... then everything both still hold below it must agree.
      for (let i = match - 1; i >= 1; i--) {
        const termA = engineA.entryTerm(i);
        const termB = engineB.entryTerm(i);
        if (termA === null || termB === null) break;
        if (termA !== termB) {
          throw new InvariantViolation(
            "log-matching",
            `nodes ${idA} and ${idB} agree on term ${engineA.entryTerm(match)} at index ${match} but differ at index ${i} (terms ${termA} and ${termB})`,
          );
        }
      }
    }
  }
}

/**
 * Leader Completeness (Raft paper, Figure 3 and section 5.4): if a log entry is committed
 * in a given term, it is present in the logs of the leaders of all higher terms. Checked
 * each time a node is first seen leading a term, against every entry already applied
 * somewhere (applied implies committed). Entries the leader has compacted are skipped.
 */
import type { Engine, LogEntry } from "../../core/engine/contract.js";
import { InvariantViolation } from "./violation.js";

export function checkLeaderCompleteness(leader: Engine<unknown, unknown>, committed: readonly (LogEntry | undefined)[]): void {
  const status = leader.status();
  for (let index = 1; index < committed.length; index++) {
    const entry = committed[index];
    if (entry === undefined || entry.term >= status.term) continue;
    const held = leader.entryTerm(index);
    if (held === null && index <= status.lastIndex) continue; // compacted into a snapshot
    if (held !== entry.term) {
      throw new InvariantViolation(
        "leader-completeness",
        `node ${status.id} leads term ${status.term} without the entry committed at index ${index} in term ${entry.term}` +
          (held === null ? " (its log ends before it)" : ` (it holds term ${held} there)`),
      );
    }
  }
}

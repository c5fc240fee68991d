/**
 * Majority commit (Raft paper, section 5.3 and Figure 2): an entry is committed only once it
 * is stored on a majority of the servers. Checked whenever a leader's commit index moves:
 * the entry there must be held — with the leader's term for it — by a quorum, counting live
 * nodes by their logs and crashed nodes by what their disks would give back. (A node whose
 * snapshot covers the index counts as holding it.) A leader that counts a replica it does
 * not have — a stale acknowledgement, a miscounted quorum — is caught here at once, before
 * the entry is ever lost.
 */
import type { DurableState, NodeId } from "../../core/engine/contract.js";
import { InvariantViolation } from "./violation.js";

/** What the checker can see of one node. */
export type NodeLog =
  | { readonly up: true; readonly snapshotIndex: number; entryTerm(index: number): number | null }
  | { readonly up: false; readonly durable: DurableState<unknown> };

function holds(node: NodeLog, index: number, term: number): boolean {
  if (node.up) return node.snapshotIndex >= index || node.entryTerm(index) === term;
  const snapshot = node.durable.snapshot;
  if (snapshot !== null && snapshot.index >= index) return true;
  const first = node.durable.entries[0];
  if (first === undefined) return false;
  return node.durable.entries[index - first.index]?.term === term;
}

export function checkMajorityCommit(leader: NodeId, index: number, term: number, nodes: ReadonlyMap<NodeId, NodeLog>): void {
  const holders = [...nodes].filter(([, node]) => holds(node, index, term)).map(([id]) => id);
  const quorum = Math.floor(nodes.size / 2) + 1;
  if (holders.length < quorum) {
    throw new InvariantViolation(
      "majority-commit",
      `leader ${leader} committed index ${index} (term ${term}) held by ${holders.length} of ${nodes.size} nodes (${holders.join(", ") || "none"}); a majority is ${quorum}`,
    );
  }
}

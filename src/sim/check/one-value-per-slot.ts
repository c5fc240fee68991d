/**
 * At most one value is chosen per slot, across all nodes and all time (Lamport, "Paxos Made
 * Simple", section 2.1: "only a single value is chosen"; Raft's State Machine Safety is the
 * same property seen at apply time). A node's chosen prefix — its commit index — is what it
 * claims chosen: every time it moves, the values the node holds at the newly covered slots
 * are compared with what any node ever held there as chosen. A violation is caught the
 * moment a node learns a second value, before anything applies it.
 */
import { bytesEqual } from "../../core/kv/store.js";
import type { LogEntry, NodeId } from "../../core/engine/contract.js";
import { InvariantViolation } from "./violation.js";

interface Chosen {
  readonly entry: LogEntry;
  readonly node: NodeId;
}

export class OneValuePerSlot {
  /** `words`: what the protocol calls a log position and a round (index and term, or slot and ballot). */
  constructor(private readonly words: { readonly position: string; readonly round: string } = { position: "index", round: "term" }) {}

  private readonly chosen: (Chosen | undefined)[] = [];
  /** How far each node's chosen prefix has been compared. */
  private readonly checkedThrough = new Map<NodeId, number>();

  /**
   * A node's chosen prefix is `commitIndex`; `entry` reads its log (null where not held:
   * compacted into a snapshot, which was itself built from compared slots).
   */
  observe(node: NodeId, commitIndex: number, entry: (index: number) => LogEntry | null): void {
    const from = this.checkedThrough.get(node) ?? 0;
    // A restarted node counts again from what it recovered (its commit index may be lower).
    if (commitIndex < from) {
      this.checkedThrough.set(node, commitIndex);
      return;
    }
    for (let index = from + 1; index <= commitIndex; index++) {
      const held = entry(index);
      if (held === null) continue;
      const known = this.chosen[index];
      if (known === undefined) {
        this.chosen[index] = { entry: held, node };
        continue;
      }
      if (known.entry.kind !== held.kind || !bytesEqual(known.entry.data, held.data)) {
        throw new InvariantViolation(
          "one-value-per-slot",
          `node ${node} holds a different value as chosen at ${this.words.position} ${index} (${describe(held, this.words.round)}) than node ${known.node} did (${describe(known.entry, this.words.round)})`,
        );
      }
    }
    this.checkedThrough.set(node, commitIndex);
  }

  /** A node restarted: its chosen prefix is compared again from the start of what it holds. */
  restarted(node: NodeId): void {
    this.checkedThrough.delete(node);
  }
}

function describe(entry: LogEntry, round: string): string {
  if (entry.kind === "config") return `a configuration, of ${round} ${entry.term}`;
  return `${entry.data.length === 0 ? "a no-op" : `${entry.data.length} bytes`}, of ${round} ${entry.term}`;
}

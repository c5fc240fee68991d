import { ALL_ENGINE_INVARIANTS, NO_ENTRIES, type Admission, type Engine, type EngineFactory, type EngineOptions, type EngineStatus, type LogEntry, type Outbound, type Ready, type ReadState } from "../../core/engine/contract.js";
import { assert } from "../../core/common/assert.js";
import { MemoryLog } from "./memory-log.js";

/**
 * The positive control: one node, no replication, and correct. An entry commits once its
 * write is durable (it learns that from `advance`), so every acknowledged write survives a
 * crash; reads are served at the commit index. The simulator must find no fault in it under
 * any crash, pause or network fault — if it does, the simulator or a checker is wrong.
 */
type SingleMessage = never;
type SingleHardState = null;

const MUTANTS = {
  "skip-persist": "commits and acknowledges entries without handing them to the driver to write",
};
type SingleMutant = keyof typeof MUTANTS;

class SingleEngine implements Engine<SingleMessage, SingleHardState> {
  readonly id: number;
  private readonly log: MemoryLog;
  private commitIndex: number;
  private appliedIndex: number;
  private readStates: ReadState[] = [];
  private pending: Ready<SingleMessage, SingleHardState> | null = null;

  constructor(
    options: EngineOptions<SingleHardState>,
    private readonly mutant: SingleMutant | null,
  ) {
    assert(options.peers.length === 1 && options.peers[0] === options.id, "the single engine runs alone");
    this.id = options.id;
    this.log = new MemoryLog(options.durable);
    // Everything durable on the only voter is committed.
    this.commitIndex = this.log.lastIndex;
    this.appliedIndex = options.appliedIndex;
  }

  tick(): void {}

  step(): void {
    assert(false, "the single engine has no peers to hear from");
  }

  propose(data: Uint8Array): Admission {
    this.log.append(1, data);
    return { accepted: true };
  }

  readIndex(requestId: number): Admission {
    this.readStates.push({ requestId, index: this.commitIndex });
    return { accepted: true };
  }

  hasReady(): boolean {
    return this.pending === null && (this.log.hasUnstable || this.appliedIndex < this.commitIndex || this.readStates.length > 0);
  }

  ready(): Ready<SingleMessage, SingleHardState> {
    assert(this.pending === null, "ready() called twice without advance()");
    const committed: LogEntry[] = this.appliedIndex < this.commitIndex ? this.log.slice(this.appliedIndex + 1, this.commitIndex) : [...NO_ENTRIES];
    const none: Outbound<SingleMessage>[] = [];
    this.pending = {
      hardState: null,
      entries: this.takeEntriesToWrite(),
      snapshot: null,
      messages: none,
      messagesAfterPersist: none,
      committedEntries: committed,
      readStates: this.readStates,
    };
    this.readStates = [];
    return this.pending;
  }

  private takeEntriesToWrite(): LogEntry[] {
    const entries = this.log.takeUnstable();
    if (this.mutant !== "skip-persist" || entries.length === 0) return entries;
    this.commitIndex = Math.max(this.commitIndex, (entries[entries.length - 1] as LogEntry).index);
    return [];
  }

  advance(ready: Ready<SingleMessage, SingleHardState>): void {
    assert(ready === this.pending, "advance() with a Ready that is not the outstanding one");
    const lastWritten = ready.entries[ready.entries.length - 1];
    if (lastWritten !== undefined) this.commitIndex = Math.max(this.commitIndex, lastWritten.index);
    const lastApplied = ready.committedEntries[ready.committedEntries.length - 1];
    if (lastApplied !== undefined) this.appliedIndex = lastApplied.index;
    this.pending = null;
  }

  status(): EngineStatus {
    return { id: this.id, role: "leader", term: 1, leader: this.id, commitIndex: this.commitIndex, lastIndex: this.log.lastIndex, snapshotIndex: 0 };
  }

  entryTerm(index: number): number | null {
    return this.log.term(index);
  }
}

export const singleFactory: EngineFactory<SingleMessage, SingleHardState> = {
  name: "single",
  description: "positive control: one durable node, no replication (correct, not fault tolerant)",
  fixedClusterSize: 1,
  invariants: ALL_ENGINE_INVARIANTS,
  mutants: MUTANTS,
  create: (options, mutant) => new SingleEngine(options, (mutant ?? null) as SingleMutant | null),
  describeMessage: () => "(none)",
};

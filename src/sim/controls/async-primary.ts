import { assert } from "../../core/common/assert.js";
import { NotLeaderError } from "../../core/common/errors.js";
import { Prng } from "../../core/common/prng.js";
import type { Admission, Engine, EngineFactory, EngineOptions, EngineStatus, LogEntry, NodeId, Outbound, Ready, ReadState } from "../../core/engine/contract.js";
import { MemoryLog } from "./memory-log.js";

/**
 * The negative control, unsafe on purpose: a primary that acknowledges a write as soon as
 * it is in its own log, before any backup has it, and serves reads from its own state
 * without asking anyone; a backup that stops hearing the primary simply declares itself
 * primary of the next view, with no vote. Crashes lose acknowledged writes; partitions make
 * two primaries. The simulator's checkers must catch it on a good share of seeds.
 */
export type AsyncPrimaryMessage =
  | { readonly type: "append"; readonly view: number; readonly prevIndex: number; readonly entries: readonly LogEntry[] }
  | { readonly type: "ack"; readonly view: number; readonly lastIndex: number };

export interface AsyncPrimaryHardState {
  readonly view: number;
}

const HEARTBEAT_TICKS = 2;
const TIMEOUT_TICKS_MIN = 10;
const TIMEOUT_TICKS_MAX = 20;
const ENTRIES_PER_MESSAGE_MAX = 64;

class AsyncPrimaryEngine implements Engine<AsyncPrimaryMessage, AsyncPrimaryHardState> {
  readonly id: NodeId;
  private readonly peers: readonly NodeId[];
  private readonly prng: Prng;
  private readonly log: MemoryLog;
  private view: number;
  private primary: NodeId | null;
  private commitIndex: number;
  private appliedIndex: number;
  private ticksSinceHeard = 0;
  private timeoutTicks: number;
  private readonly nextIndex = new Map<NodeId, number>();
  private hardStateDirty = false;
  private messages: Outbound<AsyncPrimaryMessage>[] = [];
  private readStates: ReadState[] = [];
  private pending: Ready<AsyncPrimaryMessage, AsyncPrimaryHardState> | null = null;

  constructor(options: EngineOptions<AsyncPrimaryHardState>) {
    this.id = options.id;
    this.peers = options.peers;
    this.prng = new Prng(options.seed);
    this.log = new MemoryLog(options.durable);
    this.view = options.durable.hardState?.view ?? 1;
    // View 1 starts with the lowest id as primary; later views with whoever declared them.
    const lowest = Math.min(...this.peers);
    this.primary = this.view === 1 ? lowest : null;
    this.commitIndex = this.log.lastIndex; // every entry in the log counts as committed: the flaw
    this.appliedIndex = options.appliedIndex;
    this.timeoutTicks = this.prng.int(TIMEOUT_TICKS_MIN, TIMEOUT_TICKS_MAX);
  }

  private get isPrimary(): boolean {
    return this.primary === this.id;
  }

  tick(): void {
    this.ticksSinceHeard++;
    if (this.isPrimary) {
      if (this.ticksSinceHeard >= HEARTBEAT_TICKS) {
        this.ticksSinceHeard = 0;
        this.broadcast();
      }
    } else if (this.ticksSinceHeard >= this.timeoutTicks) {
      // No vote, no log comparison: just take over.
      this.view++;
      this.primary = this.id;
      this.hardStateDirty = true;
      this.ticksSinceHeard = 0;
      this.nextIndex.clear();
      this.broadcast();
    }
  }

  private broadcast(): void {
    for (const peer of this.peers) {
      if (peer === this.id) continue;
      const next = Math.min(this.nextIndex.get(peer) ?? this.log.lastIndex + 1, this.log.lastIndex + 1);
      const entries = this.log.slice(next, Math.min(this.log.lastIndex, next + ENTRIES_PER_MESSAGE_MAX - 1));
      this.messages.push({ to: peer, message: { type: "append", view: this.view, prevIndex: next - 1, entries } });
    }
  }

  step(from: NodeId, message: AsyncPrimaryMessage): void {
    if (message.view < this.view) return;
    if (message.view > this.view || (message.type === "append" && !this.isPrimary)) {
      if (message.view > this.view) this.hardStateDirty = true;
      this.view = message.view;
      if (message.type === "append") this.primary = from;
    }
    if (message.type === "append") {
      if (this.isPrimary) return; // two primaries in one view: ignore each other
      this.ticksSinceHeard = 0;
      if (message.prevIndex <= this.log.lastIndex) {
        // Overwrite without looking at terms: whatever this node had applied stays applied.
        this.log.replaceAfter(message.prevIndex, message.entries);
        this.commitIndex = this.log.lastIndex;
      }
      this.messages.push({ to: from, message: { type: "ack", view: this.view, lastIndex: this.log.lastIndex } });
    } else if (this.isPrimary) {
      this.nextIndex.set(from, message.lastIndex + 1);
    }
  }

  propose(data: Uint8Array): Admission {
    if (!this.isPrimary) return { accepted: false, error: new NotLeaderError(this.primary) };
    this.log.append(this.view, data);
    this.commitIndex = this.log.lastIndex; // acknowledged before any backup has it
    this.broadcast();
    return { accepted: true };
  }

  readIndex(requestId: number): Admission {
    if (!this.isPrimary) return { accepted: false, error: new NotLeaderError(this.primary) };
    this.readStates.push({ requestId, index: this.commitIndex });
    return { accepted: true };
  }

  hasReady(): boolean {
    if (this.pending !== null) return false;
    return this.hardStateDirty || this.log.hasUnstable || this.messages.length > 0 || this.readStates.length > 0 || this.appliedIndex < this.commitIndex;
  }

  ready(): Ready<AsyncPrimaryMessage, AsyncPrimaryHardState> {
    assert(this.pending === null, "ready() called twice without advance()");
    const committed = this.appliedIndex < this.commitIndex ? this.log.slice(this.appliedIndex + 1, this.commitIndex) : [];
    this.pending = {
      hardState: this.hardStateDirty ? { view: this.view } : null,
      entries: this.log.takeUnstable(),
      snapshot: null,
      messages: this.messages,
      messagesAfterPersist: [],
      committedEntries: committed,
      readStates: this.readStates,
    };
    this.hardStateDirty = false;
    this.messages = [];
    this.readStates = [];
    return this.pending;
  }

  advance(ready: Ready<AsyncPrimaryMessage, AsyncPrimaryHardState>): void {
    assert(ready === this.pending, "advance() with a Ready that is not the outstanding one");
    const last = ready.committedEntries[ready.committedEntries.length - 1];
    if (last !== undefined) this.appliedIndex = last.index;
    this.pending = null;
  }

  status(): EngineStatus {
    return {
      id: this.id,
      role: this.isPrimary ? "leader" : "follower",
      term: this.view,
      leader: this.primary,
      commitIndex: this.commitIndex,
      lastIndex: this.log.lastIndex,
      snapshotIndex: 0,
    };
  }

  entryTerm(index: number): number | null {
    return this.log.term(index);
  }
}

export const asyncPrimaryFactory: EngineFactory<AsyncPrimaryMessage, AsyncPrimaryHardState> = {
  name: "async-primary",
  description: "negative control: acknowledges before replicating, fails over without votes (unsafe on purpose)",
  // It claims nothing: the point is that the client-visible checkers catch it alone.
  invariants: [],
  mutants: {},
  create: (options) => new AsyncPrimaryEngine(options),
  describeMessage: (m) =>
    m.type === "append" ? `append view=${m.view} prev=${m.prevIndex} entries=${m.entries.length}` : `ack view=${m.view} last=${m.lastIndex}`,
};

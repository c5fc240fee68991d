import type { LogEntry, Membership } from "../engine/contract.js";
import type { PaxosConfig } from "./config.js";
import { sameQuorums, type ConfigHistory } from "./configs.js";
import { Fifo } from "./fifo.js";
import { isHole, type PaxosLog } from "./log.js";
import type { Phase1 } from "./phase1.js";

const EMPTY = new Uint8Array(0);

/** A value waiting for a slot on the leader: a recovered one, a client's proposal, a configuration. */
interface PendingValue {
  readonly data: Uint8Array;
  readonly kind?: "config";
  /** Counts toward the bound on uncommitted bytes (a client's proposal). */
  readonly counted: boolean;
}

/** What the proposer needs from the engine that owns it. */
export interface ProposerHost {
  /** The ballot this node leads at: the term of every slot it writes. */
  readonly ballot: () => number;
  /** Writes a slot of this node's log, keeping the configuration history in step. */
  readonly write: (entry: LogEntry) => void;
}

/**
 * The distinguished proposer's log (Paxos Made Simple, section 3): which value a leader puts
 * in which slot, and which of its slots are chosen. After phase 1 it first proposes, per
 * slot, the value phase 1 recovered there (a no-op where none was accepted), then its
 * clients' proposals and configuration changes, in order, pipelined.
 *
 * It writes slot x only once every slot up to x - α is chosen, and only in the configuration
 * it did phase 1 in (its epoch; the α rule, see configs.ts). After a configuration entry,
 * no-ops fill the 2α slots after it when nothing else does, so the change takes effect
 * promptly and the next may follow. Client proposals count toward a bound on the bytes
 * written and not yet chosen.
 *
 * The engine says when it may write (it leads, no transfer under way); this class keeps the
 * state of one leadership, from `start` to `stop`.
 */
export class Proposer {
  private epochValue: Membership | null = null;
  private writtenValue = 0;
  /** Values waiting for the next slots, in order: phase 1's recovered values first, then proposals. */
  private readonly pending = new Fifo<PendingValue>();
  private recoveredThroughValue = 0;
  private knownChosenThroughValue = 0;
  /** Bytes of proposals waiting or written and not yet chosen, and the written ones by slot. */
  private uncommittedBytesValue = 0;
  /** Written proposals not yet chosen: their slots and sizes, in slot order (numbers, so that a slot costs no object). */
  private readonly writtenSlots = new Fifo<number>();
  private readonly writtenBytes = new Fifo<number>();

  constructor(
    private readonly config: PaxosConfig,
    private readonly log: PaxosLog,
    private readonly configs: ConfigHistory,
    private readonly host: ProposerHost,
  ) {}

  /** The configuration this leader did phase 1 in; it proposes only slots that configuration governs (null: not leading). */
  get epoch(): Membership | null {
    return this.epochValue;
  }

  /** Every slot through here holds this leader's proposal (at its ballot) or a chosen value. */
  get written(): number {
    return this.writtenValue;
  }

  /** Recovered values fill slots through here; reads wait until these are chosen. */
  get recoveredThrough(): number {
    return this.recoveredThroughValue;
  }

  /** Slots through here are known chosen (phase 1 reports); they commit without a quorum count. */
  get knownChosenThrough(): number {
    return this.knownChosenThroughValue;
  }

  get uncommittedBytes(): number {
    return this.uncommittedBytesValue;
  }

  /**
   * Starts a leadership from a completed phase 1: per slot the value phase 1 decided, a
   * no-op where nothing was accepted, then the proposals still waiting. (With
   * `noopFillWithoutPhase1`, the mutant of that name, the holes of this node's own log are
   * taken for empty slots.)
   */
  start(phase1: Phase1, noopFillWithoutPhase1: boolean): void {
    this.epochValue = phase1.epoch;
    this.writtenValue = phase1.from - 1;
    this.recoveredThroughValue = phase1.lastSlot;
    this.knownChosenThroughValue = phase1.chosenThrough;
    this.uncommittedBytesValue = 0;
    this.writtenSlots.clear();
    this.writtenBytes.clear();
    const recovered: PendingValue[] = [];
    for (let slot = phase1.from; slot <= phase1.lastSlot; slot++) {
      const own = this.log.entry(slot);
      const adopted = noopFillWithoutPhase1 && (own === null || isHole(own)) ? null : phase1.value(slot);
      if (adopted === null) recovered.push({ data: EMPTY, counted: false });
      else recovered.push(adopted.entry.kind === "config" ? { data: adopted.entry.data, kind: "config", counted: false } : { data: adopted.entry.data, counted: false });
    }
    const proposals = this.pending.toArray().filter((value) => value.counted);
    this.pending.clear();
    for (const value of recovered) this.pending.push(value);
    for (const value of proposals) this.enqueue(value.data);
  }

  /** Ends the leadership; returns the client proposals not yet written, for the next leader. */
  stop(): Uint8Array[] {
    const unwritten: Uint8Array[] = [];
    for (const value of this.pending.toArray()) if (value.counted) unwritten.push(value.data);
    this.pending.clear();
    this.epochValue = null;
    this.uncommittedBytesValue = 0;
    this.writtenSlots.clear();
    this.writtenBytes.clear();
    return unwritten;
  }

  /** Whether a proposal of `data` fits the bound on uncommitted bytes (one always does when nothing is uncommitted). */
  admits(data: Uint8Array): boolean {
    return this.uncommittedBytesValue === 0 || this.uncommittedBytesValue + data.length <= this.config.uncommittedBytesMax;
  }

  /** Queues a client's proposal (the caller checked `admits`). */
  enqueue(data: Uint8Array): void {
    this.uncommittedBytesValue += data.length;
    this.pending.push({ data, counted: true });
  }

  /** Queues a configuration entry (see `changeBlocked`). */
  enqueueConfig(data: Uint8Array): void {
    this.pending.push({ data, kind: "config", counted: false });
  }

  /**
   * Gives waiting values their slots, in order, as far as the α window allows and only in
   * the epoch's configuration, then pads after a configuration entry; returns whether it
   * wrote a slot.
   */
  fill(): boolean {
    const epoch = this.epochValue as Membership;
    let wrote = false;
    const padThrough = this.padThrough();
    while (this.pending.length > 0 || this.writtenValue < padThrough) {
      const slot = this.writtenValue + 1;
      if (slot > this.log.commitIndex + this.config.windowSlots) break;
      if (this.pending.length === 0 && slot > this.padLimit()) break;
      if (!sameQuorums(this.configs.configFor(slot), epoch)) break;
      const value = this.pending.shift() ?? { data: EMPTY, counted: false };
      const ballot = this.host.ballot();
      const entry: LogEntry = value.kind === "config" ? { index: slot, term: ballot, data: value.data, kind: "config" } : { index: slot, term: ballot, data: value.data };
      this.host.write(entry);
      this.writtenValue = slot;
      if (value.counted) {
        this.writtenSlots.push(slot);
        this.writtenBytes.push(value.data.length);
      }
      wrote = true;
      // The driver reads a new configuration entry's slot as the last index: the padding
      // after it waits for the next Ready.
      if (value.kind === "config") break;
    }
    return wrote;
  }

  /** After a configuration change, no-ops fill the 2α slots after it when nothing else does (any leader's). */
  private padThrough(): number {
    const last = this.configs.lastChangeSlot();
    return last === null ? 0 : last + 2 * this.config.windowSlots - 1;
  }

  /**
   * Padding runs at most a full pipeline ahead of the chosen prefix (`entriesPerMessageMax`
   * slots in each of `inflightMessagesMax` accepts): proposals that arrive meanwhile take the
   * next slot, not one behind up to 2α no-ops — with a narrow pipeline those would keep a
   * client waiting past its timeout.
   */
  private padLimit(): number {
    return this.log.commitIndex + Math.max(1, this.config.entriesPerMessageMax * this.config.inflightMessagesMax);
  }

  /** Whether the padding after a configuration entry has a slot to fill now. */
  canPad(): boolean {
    if (this.writtenValue >= this.padThrough()) return false;
    const slot = this.writtenValue + 1;
    return slot <= this.log.commitIndex + this.config.windowSlots && slot <= this.padLimit() && sameQuorums(this.configs.configFor(slot), this.epochValue as Membership);
  }

  /**
   * The chosen prefix this leader can vouch for: slot x is chosen once a majority of every
   * group of the configuration governing x holds it at this ballot (`quorumMatch`), or some
   * acceptor reported it chosen in phase 1. Configurations are constant over ranges of
   * slots, so each range is one quorum count.
   */
  chosenThrough(quorumMatch: (cfg: Membership) => number): number {
    let commit = Math.max(this.log.commitIndex, Math.min(this.knownChosenThroughValue, this.writtenValue));
    for (;;) {
      const slot = commit + 1;
      if (slot > this.writtenValue) break;
      const cfg = this.configs.configFor(slot);
      const quorum = quorumMatch(cfg);
      if (quorum < slot) break;
      commit = Math.min(quorum, this.rangeEnd(slot));
    }
    return commit;
  }

  /** The last slot governed by the same configuration as `slot` (as known now). */
  private rangeEnd(slot: number): number {
    const cfg = this.configs.configFor(slot);
    let end = slot;
    // Configurations change at most every 2α slots: a step of α finds the next change.
    while (end < this.writtenValue && this.configs.configFor(Math.min(end + this.config.windowSlots, this.writtenValue)) === cfg) end = Math.min(end + this.config.windowSlots, this.writtenValue);
    while (end < this.writtenValue && this.configs.configFor(end + 1) === cfg) end++;
    return end;
  }

  /** Slots through `index` are chosen: their proposals no longer count toward the bound. */
  chosen(index: number): void {
    while ((this.writtenSlots.peek() ?? Number.POSITIVE_INFINITY) <= index) {
      this.writtenSlots.shift();
      this.uncommittedBytesValue = Math.max(0, this.uncommittedBytesValue - (this.writtenBytes.shift() as number));
    }
  }

  /**
   * The configuration governing this leader's next slot when it is not its epoch's and every
   * slot it wrote is chosen — its own change took effect, and it must run phase 1 again in
   * it — else null.
   */
  nextEpoch(): Membership | null {
    const slot = this.writtenValue + 1;
    if (slot > this.log.commitIndex + this.config.windowSlots || this.log.commitIndex < this.writtenValue) return null;
    const next = this.configs.configFor(slot);
    return sameQuorums(next, this.epochValue as Membership) ? null : next;
  }

  /**
   * Why a configuration change cannot be written now, or null: the previous change must
   * have been chosen and had 2α slots to take effect, and the entry must get a slot at once.
   */
  changeBlocked(): string | null {
    const slot = this.writtenValue + 1;
    const last = this.configs.lastChangeSlot();
    if (last !== null && last > this.log.commitIndex) return `the configuration change at slot ${last} is not chosen yet; one change at a time`;
    if (last !== null && slot < last + 2 * this.config.windowSlots) return `the configuration change at slot ${last} takes effect over the next ${2 * this.config.windowSlots} slots; retry in a moment`;
    if (this.pending.length > 0 || slot > this.log.commitIndex + this.config.windowSlots || !sameQuorums(this.configs.configFor(slot), this.epochValue as Membership)) {
      return "this leader has values waiting for slots; retry in a moment";
    }
    return null;
  }
}

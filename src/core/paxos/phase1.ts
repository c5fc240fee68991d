import type { LogEntry, Membership, NodeId } from "../engine/contract.js";
import { hasMajority, majorityImpossible } from "../engine/membership.js";
import { HOLES_PER_MESSAGE_MAX } from "./log.js";

/** What one acceptor has reported so far. */
interface Report {
  /** The next slot to ask it about (its pages arrive in order). */
  next: number;
  complete: boolean;
  /** Its chosen prefix: the slots it reported up to here are chosen values. */
  commit: number;
}

/** A slot's value as phase 1 decides it: the chosen one if some acceptor knows it, else the highest ballot's. */
export interface Adopted {
  readonly entry: LogEntry;
  readonly chosen: boolean;
}

/**
 * A candidate's phase 1 at one ballot, for every slot from `from` on (Paxos Made Simple,
 * section 2.2; the "scout" of Paxos Made Moderately Complex). Promises come in pages; the
 * phase is complete once a majority of every group of `epoch` — the configuration
 * governing `from` — has reported everything it accepted. Then, per slot, the candidate
 * must propose the value accepted at the highest ballot among the reports, and may propose
 * anything (a no-op) where no report has a value.
 */
export class Phase1 {
  private readonly reports = new Map<NodeId, Report>();
  private readonly refused = new Set<NodeId>();
  private readonly adopted = new Map<number, Adopted>();
  private maxSlot: number;

  constructor(
    readonly ballot: number,
    readonly from: number,
    readonly epoch: Membership,
    /** The mutant "skip-phase1": the reports' values are ignored. */
    private readonly ignoreReports: boolean,
  ) {
    this.maxSlot = from - 1;
  }

  /** The candidate's own log, as its own complete report. */
  recordOwn(id: NodeId, entries: readonly LogEntry[], commit: number): void {
    this.merge(entries, commit);
    this.reports.set(id, { next: Number.POSITIVE_INFINITY, complete: true, commit });
  }

  /** The slot the next page of `id`'s report starts at (`from` for the first). */
  expected(id: NodeId): number {
    return this.reports.get(id)?.next ?? this.from;
  }

  /** A page of `id`'s report; false when it is not the page expected (a duplicate, or out of order). */
  record(id: NodeId, page: { readonly from: number; readonly through: number; readonly complete: boolean; readonly entries: readonly LogEntry[]; readonly commit: number }): boolean {
    if (page.from !== this.expected(id) || this.refused.has(id) || this.holesIn(page) > HOLES_PER_MESSAGE_MAX) return false;
    if (!this.ignoreReports) this.merge(page.entries, page.commit);
    const known = this.reports.get(id);
    this.reports.set(id, { next: page.through + 1, complete: page.complete, commit: Math.max(known?.commit ?? 0, page.commit) });
    return true;
  }

  /**
   * The slots past those known so far that `page` would leave empty: the new leader fills
   * each with a no-op, so one page naming slot 2^40 would have it propose 2^40 of them.
   */
  private holesIn(page: { readonly from: number; readonly entries: readonly LogEntry[] }): number {
    let end = Math.max(this.maxSlot, page.from - 1);
    let holes = 0;
    for (const entry of page.entries) {
      if (entry.index <= end) continue;
      holes += entry.index - end - 1;
      end = entry.index;
    }
    return holes;
  }

  private merge(entries: readonly LogEntry[], commit: number): void {
    for (const entry of entries) {
      if (entry.index < this.from || entry.term === 0) continue;
      const chosen = entry.index <= commit;
      const known = this.adopted.get(entry.index);
      if (known === undefined || (!known.chosen && (chosen || entry.term > known.entry.term))) this.adopted.set(entry.index, { entry, chosen });
      if (entry.index > this.maxSlot) this.maxSlot = entry.index;
    }
  }

  refuse(id: NodeId): void {
    this.refused.add(id);
  }

  /** A majority of the epoch's every group reported all they accepted. */
  get complete(): boolean {
    return hasMajority(this.epoch, (id) => this.reports.get(id)?.complete === true);
  }

  /** So many refused that no majority can complete the phase. */
  get hopeless(): boolean {
    return majorityImpossible(this.epoch, (id) => this.refused.has(id));
  }

  /** The highest slot any report holds a value for (from - 1 when none). */
  get lastSlot(): number {
    return this.maxSlot;
  }

  /** The decided value for `slot`, or null where nothing was reported (the candidate fills a no-op). */
  value(slot: number): Adopted | null {
    return this.adopted.get(slot) ?? null;
  }

  /** The highest slot through which some acceptor reported every slot as chosen. */
  get chosenThrough(): number {
    let through = this.from - 1;
    for (const report of this.reports.values()) through = Math.max(through, Math.min(report.commit, report.next - 1));
    return Math.min(through, this.maxSlot);
  }
}

/**
 * A probe before phase 1 (Raft's PreVote, thesis 9.6, for Paxos): the would-be candidate
 * asks the voters whether they would promise its next ballot, raising no promise, and runs
 * phase 1 only once a majority would. A node cut off from its leader then cannot depose it
 * by raising ballots. The configuration is the one governing the candidate's first
 * unchosen slot, asked each time an answer arrives.
 */
export class Probe {
  private readonly votes = new Map<NodeId, boolean>();

  constructor(
    readonly ballot: number,
    selfId: NodeId,
  ) {
    this.votes.set(selfId, true);
  }

  /** Whether a majority of every group of `epoch` would promise. */
  won(epoch: Membership): boolean {
    return hasMajority(epoch, (id) => this.votes.get(id) === true);
  }

  /** `id` would promise; returns whether a majority of `epoch` now would. */
  grant(id: NodeId, epoch: Membership): boolean {
    this.votes.set(id, true);
    return this.won(epoch);
  }

  /** `id` would not promise; returns whether a majority of `epoch` still may. */
  refuse(id: NodeId, epoch: Membership): boolean {
    this.votes.set(id, false);
    return hasMajority(epoch, (voter) => this.votes.get(voter) !== false);
  }
}

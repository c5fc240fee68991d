import type { LogEntry, Membership, NodeId } from "../engine/contract.js";
import type { RaftLog } from "./log.js";
import { decodeMembership, isMember } from "./membership.js";

/** A configuration entry still in the log (not compacted into the snapshot). */
export interface ConfigEntry {
  readonly index: number;
  readonly term: number;
  readonly membership: Membership;
}

/**
 * The configurations a Raft log holds (thesis chapter 4): the one in force at the
 * snapshot's index (the bootstrap one before any snapshot), and every configuration entry
 * after it, committed or not. A server acts on the latest as soon as it is in its log
 * (thesis 4.1), so the entries that a leader's conflicting append truncates must be
 * forgotten with the entries themselves: the configuration before them applies again.
 *
 * It follows the log: entries are pushed as they are appended, dropped when truncated,
 * folded into the base when the log is compacted, and replaced when a snapshot replaces
 * the log. Indexes at or after the snapshot's only.
 */
export class ConfigLog {
  private base: Membership;
  private entries: ConfigEntry[] = [];

  /** `base`: the configuration at the snapshot's index; `logEntries`: the log after it, as read from disk. */
  constructor(base: Membership, logEntries: readonly LogEntry[]) {
    this.base = base;
    for (const entry of logEntries) if (entry.kind === "config") this.entries.push({ index: entry.index, term: entry.term, membership: decodeMembership(entry.data) });
  }

  /** The latest configuration in the log, committed or not. */
  get latest(): Membership {
    return this.entries[this.entries.length - 1]?.membership ?? this.base;
  }

  /** The index of the latest configuration entry; 0 when none follows the snapshot. */
  get latestIndex(): number {
    return this.entries[this.entries.length - 1]?.index ?? 0;
  }

  /** The index of the first configuration entry after `index`, or null when none follows it. */
  firstAfter(index: number): number | null {
    for (const c of this.entries) if (c.index > index) return c.index;
    return null;
  }

  /**
   * The index of the latest entry that made `id` a member (it was not one in the
   * configuration before), or null when it has been one since the snapshot's configuration.
   */
  joinedAt(id: NodeId): number | null {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const entry = this.entries[i] as ConfigEntry;
      const before = i === 0 ? this.base : (this.entries[i - 1] as ConfigEntry).membership;
      if (isMember(entry.membership, id) && !isMember(before, id)) return entry.index;
    }
    return null;
  }

  /** The configuration in force at `index` (at or after the snapshot's index). */
  membershipAt(index: number): Membership {
    let found = this.base;
    for (const c of this.entries) {
      if (c.index > index) break;
      found = c.membership;
    }
    return found;
  }

  /** A configuration entry this leader appended. */
  push(entry: ConfigEntry): void {
    this.entries.push(entry);
  }

  /**
   * After a follower's append: drops the configuration entries that a conflict truncated
   * from `log` (their index no longer holds their term). Returns whether it dropped any.
   */
  dropTruncated(log: Pick<RaftLog, "term">): boolean {
    let dropped = false;
    while (this.entries.length > 0) {
      const last = this.entries[this.entries.length - 1] as ConfigEntry;
      if (log.term(last.index) === last.term) break;
      this.entries.pop();
      dropped = true;
    }
    return dropped;
  }

  /**
   * After a follower's append: adds the configuration entries among `appended` that `log`
   * now holds beyond the latest known one. Returns whether it added any.
   */
  addAppended(appended: readonly LogEntry[], log: Pick<RaftLog, "term" | "snapshotIndexValue">): boolean {
    let added = false;
    for (const entry of appended) {
      if (entry.kind !== "config") continue;
      const last = this.entries[this.entries.length - 1];
      if (last !== undefined && entry.index <= last.index) continue;
      if (entry.index <= log.snapshotIndexValue || log.term(entry.index) !== entry.term) continue;
      this.entries.push({ index: entry.index, term: entry.term, membership: decodeMembership(entry.data) });
      added = true;
    }
    return added;
  }

  /** The log was compacted through `index`: the configuration in force there becomes the base. Returns it. */
  compact(index: number): Membership {
    this.base = this.membershipAt(index);
    this.entries = this.entries.filter((c) => c.index > index);
    return this.base;
  }

  /** A snapshot replaced the log: its configuration (if it records one) is the base, and no entry follows. */
  restore(membership: Membership | undefined): void {
    this.base = membership ?? this.base;
    this.entries = [];
  }
}

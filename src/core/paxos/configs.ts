import { InvalidInputError } from "../common/errors.js";
import type { LogEntry, Membership, MembershipChange, NodeId } from "../engine/contract.js";
import { checkMembership, decodeMembership, members } from "../engine/membership.js";
import { PAXOS_NODE_ID_MAX } from "./ballot.js";

const EMPTY = new Uint8Array(0);

/** The configuration of a cluster bootstrapped with `voters`. */
export function bootstrapMembership(voters: readonly NodeId[]): Membership {
  return { voters: [...voters], outgoing: [], learners: [], autoPromote: [], autoLeave: true, context: EMPTY };
}

/**
 * The configuration `change` asks for after `latest`: voters and learners, at most one voter
 * added or removed (Paxos has no joint configurations here; each change is one entry).
 * Throws InvalidInputError for a change it cannot make.
 */
export function nextMembership(latest: Membership, change: MembershipChange): Membership {
  if (change.joint === true) throw new InvalidInputError("Multi-Paxos changes the configuration one voter at a time; it has no joint changes");
  const autoPromote = change.autoPromote ?? [];
  const next: Membership = { voters: [...change.voters], outgoing: [], learners: [...change.learners], autoPromote: [...autoPromote], autoLeave: true, context: change.context };
  checkMembership(next, { votersRequired: true });
  for (const id of members(next)) if (id > PAXOS_NODE_ID_MAX) throw new InvalidInputError(`Paxos node ids go up to ${PAXOS_NODE_ID_MAX}; ${id} is too large`);
  const changed = next.voters.filter((id) => !latest.voters.includes(id)).length + latest.voters.filter((id) => !next.voters.includes(id)).length;
  if (changed > 1) throw new InvalidInputError(`Multi-Paxos changes one voter at a time; this asks for ${changed} (voters ${latest.voters.join(",")} to ${next.voters.join(",")})`);
  return next;
}

/** Same voters in both halves: the same quorums, whatever the learners. */
export function sameQuorums(a: Membership, b: Membership): boolean {
  return a === b || (sameIds(a.voters, b.voters) && sameIds(a.outgoing, b.outgoing));
}

/** The same ids, in any order (lists of a handful of voters). A leader asks once per slot. */
function sameIds(x: readonly NodeId[], y: readonly NodeId[]): boolean {
  if (x.length !== y.length) return false;
  for (const id of x) if (!y.includes(id)) return false;
  return true;
}

interface ConfigEntry {
  readonly index: number;
  readonly membership: Membership;
}

/**
 * Which configuration governs which slot (the α rule of "Paxos Made Moderately Complex"): a
 * configuration entry chosen in slot s governs every slot from s + α on, until the next one.
 * A leader proposes slot x only when every slot up to x - α is chosen, so it knows the
 * configuration whose quorums x needs; the quorums of phase 1 and 2 for x are then always
 * those of one configuration, and single-slot Paxos' safety argument holds slot by slot.
 *
 * The history starts from a base: the bootstrap configuration, or a snapshot's. A snapshot
 * at i taken while a change in slot t (i - α < t <= i) was not yet in force records both
 * configurations as one joint configuration (new voters, the old as `outgoing`), since the
 * log that said where the change takes effect is gone: for the slots up to i + α a restored
 * node asks majorities of both — which intersect every majority of either, so it is safe
 * whichever of the two governs such a slot — and from i + α + 1 on the new one alone.
 *
 * Compacting again while such a joint base is in force keeps where it ends: the change was
 * made at or before the first base's index, whatever the later compactions' indexes. (Moving
 * the end to each new index + α kept the old voters voting, and the leader padding the log
 * with no-ops, for as long as the log was compacted more often than every α slots: simulator
 * seeds 5031, 5145 and 5198 on main.)
 */
export class ConfigHistory {
  /** The configuration at the base (possibly joint, see above), and its simple (new) half. */
  private base: Membership;
  private baseSimple: Membership;
  private baseIndex: number;
  /** Where the change a joint base records was made, at the latest (a restored base: its index). */
  private baseChangeSlot: number;
  /** The last slot a joint base governs; from the next one on, its new half alone. */
  private baseJointThrough: number;
  /** Configuration entries in the log after the base, by slot (accepted; chosen up to the commit index). */
  private entries: ConfigEntry[] = [];

  constructor(
    private readonly window: number,
    base: Membership,
    baseIndex: number,
  ) {
    this.base = base;
    this.baseSimple = simpleHalf(base);
    this.baseIndex = baseIndex;
    this.baseChangeSlot = baseIndex;
    this.baseJointThrough = baseIndex + window;
  }

  /** The configuration governing slot `x`: final once every slot up to x - α is chosen. */
  configFor(x: number): Membership {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const entry = this.entries[i] as ConfigEntry;
      if (entry.index <= x - this.window) return entry.membership;
    }
    return x <= this.baseJointThrough ? this.base : this.baseSimple;
  }

  /** The latest configuration in the log (possibly not chosen, possibly not yet in force). */
  latest(): Membership {
    return this.entries[this.entries.length - 1]?.membership ?? this.baseSimple;
  }

  /** The slot of the latest configuration entry (0 for the base). */
  latestIndex(): number {
    return this.entries[this.entries.length - 1]?.index ?? 0;
  }

  /**
   * Where the last configuration change was made: the latest entry's slot, or — for a base
   * restored with a change pending — the base's index (the change was at or before it), or
   * null when there is no change to wait for.
   */
  lastChangeSlot(): number | null {
    const last = this.entries[this.entries.length - 1];
    if (last !== undefined) return last.index;
    return this.base.outgoing.length > 0 ? this.baseChangeSlot : null;
  }

  /** The latest configuration entry at or before `index`, or the base's (the new half of a joint one: its old voters are the caller's to add). */
  private latestAt(index: number): Membership {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const entry = this.entries[i] as ConfigEntry;
      if (entry.index <= index) return entry.membership;
    }
    return this.baseSimple;
  }

  /**
   * What a snapshot at `index` must record so that a node restored from it knows the quorums
   * of every slot after `index`: the configuration in force for `index` + 1, joined with a
   * newer one still waiting for its α slots.
   */
  membershipAt(index: number): Membership {
    return joined(this.latestAt(index), this.configFor(index + 1));
  }

  /**
   * What the node acts on and shows: the latest configuration, joined with the one in force
   * for the first slot not yet chosen while that differs (old voters still vote).
   */
  current(commitIndex: number): Membership {
    return joined(this.latest(), this.configFor(commitIndex + 1));
  }

  /** A slot changed: a configuration entry there is recorded, one that was overwritten is forgotten. */
  onWrite(entry: LogEntry, previous: LogEntry | null): boolean {
    const wasConfig = previous !== null && previous.kind === "config";
    if (!wasConfig && entry.kind !== "config") return false;
    this.entries = this.entries.filter((c) => c.index !== entry.index);
    if (entry.kind === "config") {
      this.entries.push({ index: entry.index, membership: decodeMembership(entry.data) });
      this.entries.sort((a, b) => a.index - b.index);
    }
    return true;
  }

  /** The log was compacted through `index`: the configurations there fold into the base. */
  compact(index: number): void {
    if (index <= this.baseIndex) return;
    const base = this.membershipAt(index);
    // A change pending at `index` is the latest entry at or before it, or else the base's own.
    let change: ConfigEntry | undefined;
    for (const entry of this.entries) if (entry.index <= index) change = entry;
    if (change !== undefined) {
      this.baseChangeSlot = change.index;
      this.baseJointThrough = change.index + this.window - 1;
    }
    this.base = base;
    this.baseSimple = simpleHalf(base);
    this.baseIndex = index;
    this.entries = this.entries.filter((c) => c.index > index);
  }

  /** A snapshot replaced the log through its index. */
  restore(index: number, membership: Membership, kept: readonly LogEntry[]): void {
    this.base = membership;
    this.baseSimple = simpleHalf(membership);
    this.baseIndex = index;
    this.baseChangeSlot = index;
    this.baseJointThrough = index + this.window;
    this.entries = [];
    for (const entry of kept) if (entry.kind === "config") this.entries.push({ index: entry.index, membership: decodeMembership(entry.data) });
  }

  /** Every configuration that may govern a slot from `from` on, oldest first (for the members to talk to). */
  all(): Membership[] {
    return [this.base, ...this.entries.map((c) => c.membership)];
  }
}

/** A joint configuration's new half (a simple one is its own). */
function simpleHalf(m: Membership): Membership {
  return m.outgoing.length === 0 ? m : { ...m, outgoing: [] };
}

/**
 * `newer` joined with `older` while both may govern slots: majorities of both are needed.
 * Memoized, and the very same object when they do not differ, so callers can compare
 * configurations by identity.
 */
function joined(newer: Membership, older: Membership): Membership {
  if (newer === older) return newer;
  let byOlder = JOINED.get(newer);
  if (byOlder === undefined) {
    byOlder = new WeakMap();
    JOINED.set(newer, byOlder);
  }
  let result = byOlder.get(older);
  if (result === undefined) {
    result = join(newer, older);
    byOlder.set(older, result);
  }
  return result;
}

const JOINED = new WeakMap<Membership, WeakMap<Membership, Membership>>();

function join(newer: Membership, older: Membership): Membership {
  if (older.outgoing.length === 0 && sameVoters(newer.voters, older.voters)) return newer;
  if (older.outgoing.length > 0 && sameVoters(newer.voters, older.voters)) return older;
  // A joint `older` is a restored snapshot's pending change; `newer` (a later change a node
  // holds but has not seen chosen) is shown against that change's old voters.
  const oldVoters = older.outgoing.length > 0 ? older.outgoing : older.voters;
  const learners = newer.learners.filter((id) => !oldVoters.includes(id));
  return { ...newer, outgoing: [...oldVoters], learners, autoPromote: newer.autoPromote.filter((id) => learners.includes(id)), autoLeave: true };
}

function sameVoters(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}

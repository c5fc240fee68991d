import { assert } from "../common/assert.js";
import type { LogEntry, Membership, NodeId, Snapshot } from "../engine/contract.js";
import { isVoter } from "../engine/membership.js";
import { SnapshotReceiver } from "../raft/snapshot-receiver.js";
import { ballotNode, ballotOf, roundOf } from "./ballot.js";
import type { PaxosConfig } from "./config.js";
import { HOLES_PER_MESSAGE_MAX, type PaxosLog } from "./log.js";
import type { Accept, Heartbeat, PaxosMessage, Prepare, PromiseReply, SnapshotChunk } from "./messages.js";
import type { PaxosMutant } from "./mutants.js";

/** What the acceptor needs from the engine that owns it: functions made once, not per call. */
export interface AcceptorHost {
  /** A higher ballot is about to be promised: whatever this node did at a lower one ends, and it forgets its leader. */
  readonly superseded: () => void;
  /** A message from the owner of the promised ballot, which completed phase 1: this node follows it. */
  readonly follow: (leader: NodeId) => void;
  /** Whether this node still backs the leader it heard from, and so promises `from` nothing (see the engine's inLease). */
  readonly inLease: (from: NodeId, transfer: boolean) => boolean;
  /** This node promised a candidate its ballot: its election countdown starts over. */
  readonly promisedCandidate: () => void;
  /** The configuration in force (governing the slot after the chosen prefix). */
  readonly current: () => Membership;
  /** Writes an accepted slot into this node's log, keeping the configuration history in step. */
  readonly write: (entry: LogEntry) => void;
  /** Slots through `index` are chosen (the engine moves its commit index and what depends on it). */
  readonly commitTo: (index: number) => void;
  /** Replaces every slot through a leader's snapshot by it (its configuration absent: the one known at its index). */
  readonly install: (snapshot: Snapshot) => void;
  readonly send: (to: NodeId, message: PaxosMessage) => void;
  readonly sendAfterPersist: (to: NodeId, message: PaxosMessage) => void;
}

/**
 * Every node's acceptor and learner (Paxos Made Simple, sections 2.2 and 2.3): its promise,
 * the prefix of slots it holds at that ballot, its answers to prepares and accepts, and what
 * it learns is chosen — from a leader's chosen prefix, or a leader's snapshot.
 *
 * Rules: promise a ballot only above the one promised; accept a slot only at a ballot at
 * least the one promised (a leader's message above it raises the promise: its sender
 * completed phase 1 there); persist both before answering (promises and acceptances leave
 * after the write). Slots are independent: slot 9 may be accepted before slot 8, leaving a
 * hole; the prefix is where the holes start.
 *
 * The acceptor owns `promised` (which, on a leader or candidate, is its own ballot: it
 * promises to itself when it campaigns) and the highest ballot heard of, from which the
 * next round is drawn. The engine owns the log and the roles; the host tells it when a
 * promise ends what it was doing.
 */
export class Acceptor {
  /** The highest ballot promised (and, on a leader or candidate, its own). */
  private promisedBallot: number;
  /** The highest ballot heard of, for choosing the next round. */
  private maxBallotSeen = 0;
  /** Every slot in (commit, prefix] is accepted at `promised`: what this acceptor holds of its leader's proposals. */
  private prefixSlot: number;
  /** A leader's snapshot arriving chunk by chunk: Raft's receiver, a transfer keyed by the leader's ballot where Raft's is by its term. */
  private readonly receiver = new SnapshotReceiver();

  constructor(
    promised: number,
    private readonly log: PaxosLog,
    private readonly config: PaxosConfig,
    private readonly mutant: PaxosMutant | null,
    private readonly host: AcceptorHost,
  ) {
    this.promisedBallot = promised;
    this.prefixSlot = log.commitIndex;
  }

  get promised(): number {
    return this.promisedBallot;
  }

  get prefix(): number {
    return this.prefixSlot;
  }

  noteBallot(ballot: number): void {
    if (ballot > this.maxBallotSeen) this.maxBallotSeen = ballot;
  }

  /** This node's ballot in the round after every ballot it promised or heard of. */
  nextBallot(selfId: NodeId): number {
    return ballotOf(Math.max(roundOf(this.promisedBallot), roundOf(this.maxBallotSeen)) + 1, selfId);
  }

  /** A candidate promises its own `ballot` to itself (its prepares carry the promise, made durable first). */
  promiseOwn(ballot: number): void {
    this.promisedBallot = ballot;
    this.prefixSlot = this.log.commitIndex;
  }

  /** Slots through `index` are chosen: they belong to the prefix, whatever ballot holds them. */
  chosenThrough(index: number): void {
    if (this.prefixSlot < index) this.prefixSlot = index;
  }

  /**
   * The checks every message from a leader (accept, heartbeat, snapshot) passes: it must be
   * the ballot's owner; below the promise it is refused (a nack tells the deposed leader);
   * above it, the sender completed phase 1 at its ballot, so the promise rises to it and this
   * node follows it.
   */
  fromLeader(from: NodeId, ballot: number): boolean {
    if (ballotNode(ballot) !== from) return false;
    if (ballot < this.promisedBallot) {
      if (this.mutant === "accept-below-promise") return true;
      this.host.send(from, { type: "nack", ballot, promised: this.promisedBallot, probe: false, behind: false });
      return false;
    }
    if (ballot > this.promisedBallot) this.promise(ballot);
    this.host.follow(from);
    return true;
  }

  /** Raises the promise (the caller makes sure it is higher): whatever this node was doing at a lower ballot ends. */
  private promise(ballot: number): void {
    assert(ballot > this.promisedBallot, `promise ${ballot} not above ${this.promisedBallot}`);
    this.host.superseded();
    this.promisedBallot = ballot;
    this.noteBallot(ballot);
    this.prefixSlot = this.log.commitIndex;
  }

  // ---- phase 1 ----

  prepare(from: NodeId, m: Prepare): void {
    if (ballotNode(m.ballot) !== from) return;
    this.noteBallot(m.ballot);
    if (m.probe) {
      const behind = m.from <= this.log.snapshotIndexValue || this.replaced(from, m.from);
      const grant = m.ballot > this.promisedBallot && !this.host.inLease(from, m.transfer === true) && !behind;
      if (grant) this.host.send(from, { type: "promise", ballot: m.ballot, probe: true, from: m.from, through: m.from - 1, complete: true, entries: [], commit: this.log.commitIndex });
      else this.host.send(from, { type: "nack", ballot: m.ballot, promised: this.promisedBallot, probe: true, behind });
      return;
    }
    if (m.ballot < this.promisedBallot) {
      this.host.send(from, { type: "nack", ballot: m.ballot, promised: this.promisedBallot, probe: false, behind: false });
      return;
    }
    if (m.ballot > this.promisedBallot && this.host.inLease(from, m.transfer === true)) return;
    if (m.from <= this.log.snapshotIndexValue || this.replaced(from, m.from)) {
      // It asks about slots this node compacted (it cannot learn them here), or leads a
      // configuration that was replaced: it should not lead.
      this.host.send(from, { type: "nack", ballot: m.ballot, promised: this.promisedBallot, probe: false, behind: true });
      return;
    }
    if (m.ballot > this.promisedBallot) {
      this.promise(m.ballot);
      this.host.promisedCandidate();
    }
    // Pages are bounded by bytes only: a report of thousands of small slots (no-ops) must not
    // take thousands of round trips, or the candidate's election timer runs out first.
    const page = this.log.acceptedPage(m.from, Number.POSITIVE_INFINITY, this.config.bytesPerMessageMax);
    const reply: PromiseReply = { type: "promise", ballot: m.ballot, probe: false, from: m.from, through: page.through, complete: page.complete, entries: page.entries, commit: this.log.commitIndex };
    this.answer(from, reply);
  }

  /**
   * Whether `candidate`, running phase 1 from slot `from`, leads a configuration that was
   * replaced: it asks about slots this acceptor knows are chosen, and no configuration this
   * acceptor knows for the slots after them counts it as a voter. A node restarted from
   * before its removal campaigns in the configuration it remembers, and nodes removed with
   * it (no voters either, so heard from by no leader) would promise it: phase 1 in that
   * configuration is sound Paxos, but it governs only chosen slots, so such a leader never
   * gets past them. It kept the removed nodes following it and its clients waiting for
   * their timeouts (simulator seed 5507). Refusing a promise is always safe; a voter of the
   * configuration in force is never refused here, however far behind.
   */
  private replaced(candidate: NodeId, from: number): boolean {
    return from <= this.log.commitIndex && !isVoter(this.host.current(), candidate);
  }

  /** A promise or an acceptance: it may leave only once what it vouches for is durable. */
  private answer(to: NodeId, message: PaxosMessage): void {
    if (this.mutant === "answer-before-durable") this.host.send(to, message);
    else this.host.sendAfterPersist(to, message);
  }

  // ---- phase 2 (the caller checked fromLeader) ----

  accept(from: NodeId, m: Accept): void {
    if (m.ballot < this.promisedBallot) return this.acceptBelowPromise(from, m);
    let last = this.prefixSlot;
    for (const entry of m.entries) {
      last = entry.index;
      if (entry.index <= this.log.commitIndex) continue;
      // A slot too far past this log is left (HOLES_PER_MESSAGE_MAX); the answer's prefix
      // sends the leader back to the first slot this node lacks.
      if (entry.index > this.log.lastIndex + HOLES_PER_MESSAGE_MAX + 1) continue;
      const previous = this.log.entry(entry.index);
      if (previous !== null && previous.term === entry.term) continue;
      this.host.write(entry);
    }
    this.learn(m.commit);
    this.answer(from, { type: "accepted", ballot: m.ballot, index: this.prefixSlot, last: Math.max(last, this.prefixSlot) });
  }

  /**
   * The mutant "accept-below-promise" (ScyllaDB #6139): a slot is accepted at a ballot below
   * the promise when that ballot is not below the one already accepted there.
   */
  private acceptBelowPromise(from: NodeId, m: Accept): void {
    let last = 0;
    for (const entry of m.entries) {
      last = entry.index;
      if (entry.index <= this.log.commitIndex) continue;
      const previous = this.log.entry(entry.index);
      if (previous !== null && previous.term > entry.term) continue;
      this.host.write(entry);
    }
    let index = this.log.commitIndex;
    while (index < this.log.lastIndex && this.log.term(index + 1) === m.ballot) index++;
    this.answer(from, { type: "accepted", ballot: m.ballot, index, last: Math.max(last, index) });
  }

  heartbeat(from: NodeId, m: Heartbeat): void {
    this.learn(m.commit);
    this.host.send(from, { type: "heartbeat-response", ballot: m.ballot, readRound: m.readRound, index: Math.min(this.prefixSlot, this.log.durableThrough) });
  }

  // ---- learning ----

  /** Extends the prefix of slots accepted at the promised ballot. */
  private advancePrefix(): void {
    if (this.prefixSlot < this.log.commitIndex) this.prefixSlot = this.log.commitIndex;
    const any = this.mutant === "learn-any-ballot";
    while (this.prefixSlot < this.log.lastIndex) {
      const term = this.log.term(this.prefixSlot + 1) as number;
      if (term === this.promisedBallot || (any && term > 0)) this.prefixSlot++;
      else break;
    }
  }

  /**
   * The leader says slots through `commit` are chosen: those this acceptor holds at the
   * leader's ballot are the chosen values (a ballot proposes one value per slot, and this
   * leader proposes only chosen ones below its chosen prefix).
   */
  learn(commit: number): void {
    this.advancePrefix();
    const target = Math.min(commit, this.prefixSlot);
    if (target > this.log.commitIndex) this.host.commitTo(target);
  }

  /**
   * A chunk of a leader's snapshot (the caller checked fromLeader). A snapshot the chosen
   * prefix already covers is answered at once; the others are assembled chunk by chunk,
   * each chunk answered with the bytes held, and installed whole: every slot through it is
   * chosen, and the answer tells the leader the prefix that follows.
   */
  snapshotChunk(from: NodeId, m: SnapshotChunk): void {
    if (m.index <= this.log.commitIndex) {
      this.receiver.abandon();
      this.advancePrefix();
      this.answer(from, { type: "accepted", ballot: m.ballot, index: this.prefixSlot, last: this.prefixSlot });
      return;
    }
    const { ballot, ...chunk } = m;
    const received = this.receiver.receive({ ...chunk, term: ballot });
    if (received === null) return;
    if (typeof received === "number") {
      this.host.send(from, { type: "snapshot-response", ballot, index: m.index, received });
      return;
    }
    this.host.install(received);
    this.prefixSlot = received.index;
    this.advancePrefix();
    this.answer(from, { type: "accepted", ballot, index: this.prefixSlot, last: this.prefixSlot });
  }
}

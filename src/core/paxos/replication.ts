import { assert } from "../common/assert.js";
import type { CompactionFloor, LogEntry, Membership, NodeId, ReplicationProgress, Snapshot } from "../engine/contract.js";
import { hasMajority, majority, majorityGroups } from "../engine/membership.js";
import type { PaxosConfig } from "./config.js";
import { entryBytes, type PaxosLog } from "./log.js";
import type { Accept, Accepted, HeartbeatResponse, PaxosMessage, SnapshotChunk, SnapshotChunkResponse } from "./messages.js";
import { Progress } from "./progress.js";

/** A follower whose snapshot chunk went unanswered this many times in a row no longer holds compaction back. */
const SNAPSHOT_RESENDS_HOLDING = 4;

/** What the leader's replication needs from the engine that owns it: functions made once, not per call. */
export interface ReplicationHost {
  /** The ballot this node leads at: every accept, heartbeat and snapshot chunk carries it. */
  readonly ballot: () => number;
  /** Every slot through here holds this leader's proposal or a chosen value: what there is to send. */
  readonly written: () => number;
  /** The latest snapshot, for an acceptor that needs slots compacted away. */
  readonly snapshot: () => Snapshot | null;
  readonly send: (to: NodeId, message: PaxosMessage) => void;
  /** A heartbeat's answer moved an acceptor's match: the chosen prefix may move with it. */
  readonly matchAdvanced: () => void;
}

/**
 * A leader's phase 2 toward the other acceptors: what it knows of each (its `Progress`), the
 * accepts, heartbeats and snapshot chunks it sends them, and the bookkeeping of their
 * answers — streaming a caught-up acceptor up to its in-flight window, probing one whose
 * prefix at this ballot is unknown, and sending one that lacks compacted slots the
 * snapshot, a chunk at a time. The engine decides who is tracked (the members of its
 * configurations), when to send, and what the answers mean for the chosen prefix; this
 * class answers the quorum questions asked of the acceptors' state (the highest slot a
 * majority holds, the lease, CheckQuorum).
 *
 * The map is kept for the engine's life, cleared when it leads anew; it holds an entry for
 * this node too, whose match is what the leader itself has written.
 */
export class Replication {
  private readonly progress = new Map<NodeId, Progress>();

  constructor(
    private readonly selfId: NodeId,
    private readonly config: PaxosConfig,
    private readonly log: PaxosLog,
    private readonly host: ReplicationHost,
  ) {}

  /** What the leader knows of `id`, while it is tracked. */
  get(id: NodeId): Progress | undefined {
    return this.progress.get(id);
  }

  /** The tracked members, this node among them. */
  members(): IterableIterator<NodeId> {
    return this.progress.keys();
  }

  clear(): void {
    this.progress.clear();
  }

  /**
   * Starts tracking every member of `wanted` not tracked yet, from the next slot to write,
   * and drops the others once told that they hold every slot through `removal` (the end of
   * the change that removed them) and those are chosen — a last heartbeat tells them — or,
   * with `dropSilent`, when silent this round.
   */
  sync(wanted: ReadonlySet<NodeId>, removal: number, dropSilent: boolean): void {
    const written = this.host.written();
    for (const peer of wanted) {
      if (this.progress.has(peer)) continue;
      const pr = new Progress(written + 1, this.config.inflightMessagesMax, this.config.inflightBytesMax);
      if (peer === this.selfId) pr.match = written;
      pr.recentActive = true;
      this.progress.set(peer, pr);
    }
    for (const [peer, pr] of [...this.progress]) {
      if (wanted.has(peer)) continue;
      const told = pr.match >= removal && this.log.commitIndex >= removal;
      if (!told && !(dropSilent && !pr.recentActive)) continue;
      if (told) this.host.send(peer, { type: "heartbeat", ballot: this.host.ballot(), commit: this.log.commitIndex, readRound: 0 });
      this.progress.delete(peer);
    }
  }

  // ---- sending ----

  /** Sends `to` the next slots it lacks, if its window allows; returns whether something was sent. */
  sendAccept(to: NodeId): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined) return false;
    if (pr.state === "snapshot") return this.sendSnapshotChunk(to, pr);
    if (pr.paused) return false;
    if (pr.next <= this.log.snapshotIndexValue) return this.sendSnapshotChunk(to, pr);
    const written = this.host.written();
    if (pr.next > written) return false;
    const slice = this.log.slice(pr.next, written, this.config.entriesPerMessageMax, this.config.bytesPerMessageMax);
    // Chosen slots this leader holds from before its ballot are sent at its ballot too: a
    // chosen value is the only one any ballot may propose there.
    const ballot = this.host.ballot();
    const entries = slice.map((entry) => (entry.term === ballot ? entry : { ...entry, term: ballot }));
    const last = entries[entries.length - 1] as LogEntry;
    const message: Accept = { type: "accept", ballot, entries, commit: this.log.commitIndex };
    this.host.send(to, message);
    pr.sentCommit = Math.max(pr.sentCommit, this.log.commitIndex);
    if (pr.state === "replicate") {
      pr.next = last.index + 1;
      pr.addInflight(last.index, entries.reduce((sum, entry) => sum + entryBytes(entry), 0));
    } else {
      pr.probeSent = true;
      pr.probeThrough = last.index;
    }
    return true;
  }

  /** Sends every acceptor what it lacks, filling each pipeline up to its in-flight window, and tells idle ones the chosen prefix. */
  broadcastAccept(): void {
    for (const peer of this.progress.keys()) {
      if (peer === this.selfId) continue;
      while (this.sendAccept(peer) && (this.progress.get(peer) as Progress).state === "replicate") {
        // keep the pipeline full up to the in-flight window
      }
      this.sendCommitNews(peer);
    }
  }

  /** Keeps sending `from` slots while it streams and is still tracked as `pr` (an answer may have dropped it). */
  fillPipeline(from: NodeId, pr: Progress): void {
    while (this.progress.get(from) === pr && this.sendAccept(from) && pr.state === "replicate") {
      // keep the pipeline full
    }
  }

  /**
   * Tells an acceptor that holds every slot sent to it a new chosen prefix at once, as
   * Raft's empty append does: it applies them (and answers the writes it forwarded) a
   * message after they are chosen, not a heartbeat interval later. Busy acceptors learn it
   * with their next slots.
   */
  private sendCommitNews(to: NodeId): void {
    const pr = this.progress.get(to) as Progress;
    if (pr.state !== "replicate" || pr.inflightCount > 0 || pr.sentCommit >= this.log.commitIndex) return;
    this.host.send(to, { type: "heartbeat", ballot: this.host.ballot(), commit: this.log.commitIndex, readRound: 0 });
    pr.sentCommit = this.log.commitIndex;
  }

  /** A heartbeat to every other acceptor, carrying the chosen prefix and `readRound` (0: none). */
  broadcastHeartbeat(readRound: number): void {
    for (const [peer, pr] of this.progress) {
      if (peer === this.selfId) continue;
      this.host.send(peer, { type: "heartbeat", ballot: this.host.ballot(), commit: this.log.commitIndex, readRound });
      pr.sentCommit = Math.max(pr.sentCommit, this.log.commitIndex);
    }
  }

  private sendSnapshotChunk(to: NodeId, pr: Progress): boolean {
    if (pr.state !== "snapshot" || pr.snapshot === null) {
      const latest = this.host.snapshot();
      assert(latest !== null, "an acceptor needs a snapshot but the leader has none");
      pr.becomeSnapshot(latest);
    }
    const snapshot = pr.snapshot as Snapshot;
    if (pr.snapshotChunkInFlight) return false;
    const offset = Math.min(pr.snapshotAcked, snapshot.data.length);
    const chunk = snapshot.data.subarray(offset, Math.min(snapshot.data.length, offset + this.config.snapshotChunkBytes));
    const message: SnapshotChunk = { type: "snapshot", ballot: this.host.ballot(), index: snapshot.index, snapshotTerm: snapshot.term, size: snapshot.data.length, offset, chunk };
    this.host.send(to, snapshot.membership === undefined || offset !== 0 ? message : { ...message, membership: snapshot.membership });
    pr.snapshotChunkInFlight = true;
    pr.snapshotStallTicks = 0;
    return true;
  }

  /** A tick: a snapshot chunk unanswered for `snapshotResendTicks` is sent again. */
  resendStalledSnapshots(): void {
    for (const [peer, pr] of this.progress) {
      if (pr.state !== "snapshot" || !pr.snapshotChunkInFlight) continue;
      if (++pr.snapshotStallTicks < this.config.snapshotResendTicks) continue;
      pr.snapshotChunkInFlight = false;
      pr.snapshotResends++;
      this.sendAccept(peer);
    }
  }

  // ---- answers (the engine checked that they answer this leader's ballot) ----

  /** `from` accepted slots, or installed the snapshot: returns what is known of it now, or undefined when it is not tracked. */
  accepted(from: NodeId, m: Accepted): Progress | undefined {
    const pr = this.progress.get(from);
    if (pr === undefined) return undefined;
    pr.recentActive = true;
    if (pr.state === "snapshot") {
      // The acceptor installed the snapshot (or holds the slots already).
      pr.update(m.index);
      if (pr.match >= (pr.snapshot?.index ?? 0)) pr.becomeReplicate();
    } else {
      pr.rewindTo(m.index);
      pr.update(m.index);
      pr.freeTo(m.index);
      if (pr.state === "probe") {
        pr.probeSent = false;
        // Answered in full: stream from here. A hole remains: probe again from the match.
        if (m.index >= m.last) pr.becomeReplicate();
        else pr.next = pr.match + 1;
      }
    }
    return pr;
  }

  /**
   * `from` answered a heartbeat at tick `now`, reporting its prefix: its match follows
   * (the host told when it moves), a stalled or lost pipeline is probed again, and it is
   * sent what it lacks. Returns what is known of it, or undefined when it is not tracked.
   */
  heartbeatAnswered(from: NodeId, m: HeartbeatResponse, now: number): Progress | undefined {
    const pr = this.progress.get(from);
    if (pr === undefined) return undefined;
    pr.recentActive = true;
    pr.probeSent = false;
    // An idle acceptor that reports less than its match restarted and lost a chosen prefix
    // it had learned (see Progress.rewindTo), or — on a network that reorders — this answer
    // is older than the last: probe it from what it holds; at worst a few slots go again.
    if (pr.state === "replicate" && m.index < pr.match && pr.inflightCount === 0) pr.becomeProbe();
    pr.rewindTo(m.index);
    if (pr.update(m.index)) {
      pr.freeTo(m.index);
      this.host.matchAdvanced();
    }
    // Probing: go on from the prefix the acceptor reports (a new leader starts past it).
    if (pr.state === "probe") pr.next = pr.match + 1;
    // Checked once a heartbeat interval: the answers to commit news come in between, and an
    // accept sent a moment before one of them is not lost for being unanswered.
    if (now - pr.matchCheckedTick >= this.config.heartbeatTicks) {
      if (pr.state === "replicate" && pr.match < pr.next - 1 && pr.match === pr.matchAtLastHeartbeat) {
        // Slots were sent, and the acceptor's prefix has not moved in a heartbeat interval:
        // an accept was lost (or the acceptor restarted). Go back and fill from its prefix.
        pr.becomeProbe();
      }
      pr.matchAtLastHeartbeat = pr.match;
      pr.matchCheckedTick = now;
    }
    if (pr.match < this.host.written()) this.sendAccept(from);
    return pr;
  }

  /** `from` holds `m.received` bytes of the snapshot it is being sent: the next chunk goes. */
  snapshotAnswered(from: NodeId, m: SnapshotChunkResponse): void {
    const pr = this.progress.get(from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (pr.state !== "snapshot" || m.index !== pr.snapshot?.index) return;
    pr.snapshotAcked = m.received;
    pr.snapshotChunkInFlight = false;
    pr.snapshotStallTicks = 0;
    pr.snapshotResends = 0;
    this.sendAccept(from);
  }

  // ---- quorums ----

  /**
   * The highest slot a majority of every group of `cfg` holds: each group's majority-th
   * largest match, this node's being `ownThrough` (what it wrote and made durable).
   */
  quorumMatch(cfg: Membership, ownThrough: number): number {
    let agreed = Number.POSITIVE_INFINITY;
    for (const group of majorityGroups(cfg)) {
      const values = group.map((id) => (id === this.selfId ? ownThrough : (this.progress.get(id)?.match ?? 0)));
      values.sort((a, b) => b - a);
      agreed = Math.min(agreed, values[majority(group.length) - 1] as number);
    }
    return agreed;
  }

  /** The latest tick at which a majority of every group of `epoch` acknowledged this leader's heartbeats (its own: `now`). */
  leaseAcknowledgedAt(epoch: Membership, now: number): number {
    let acknowledgedAt = Number.POSITIVE_INFINITY;
    for (const group of majorityGroups(epoch)) {
      const ticks = group.map((id) => (id === this.selfId ? now : (this.progress.get(id)?.leaseAckTick ?? Number.NEGATIVE_INFINITY))).sort((a, b) => b - a);
      acknowledgedAt = Math.min(acknowledgedAt, ticks[majority(group.length) - 1] as number);
    }
    return acknowledgedAt;
  }

  /** CheckQuorum: whether a majority of `epoch` was heard from this round or the one before. */
  quorumRecentlyActive(epoch: Membership): boolean {
    return hasMajority(epoch, (id) => id === this.selfId || this.progress.get(id)?.recentActive === true);
  }

  /** Starts a CheckQuorum round: who was heard from is remembered as the round before. */
  startActivityRound(): void {
    for (const [peer, pr] of this.progress) {
      if (peer === this.selfId) continue;
      pr.activeRoundBefore = pr.recentActive;
      pr.recentActive = false;
    }
  }

  /** The candidate other than this node with the highest match (the first of equals), or null. */
  mostUpToDate(candidates: readonly NodeId[]): NodeId | null {
    let best: NodeId | null = null;
    let bestMatch = -1;
    for (const id of candidates) {
      if (id === this.selfId) continue;
      const match = this.progress.get(id)?.match ?? -1;
      if (match > bestMatch) {
        best = id;
        bestMatch = match;
      }
    }
    return best;
  }

  // ---- reports ----

  /** The slots the acceptors still need from the log (see Engine.compactionFloor). */
  compactionFloor(): CompactionFloor | null {
    let receiving: number | null = null;
    let replicating: number | null = null;
    for (const [peer, pr] of this.progress) {
      if (peer === this.selfId) continue;
      // A follower receiving a snapshot needs the entries after it; one replicating, those after its match.
      if (pr.state === "snapshot") {
        if (pr.snapshotResends < SNAPSHOT_RESENDS_HOLDING) receiving = Math.min(receiving ?? Infinity, pr.snapshot?.index ?? this.log.snapshotIndexValue);
      } else if (pr.recentActive || pr.activeRoundBefore) {
        replicating = Math.min(replicating ?? Infinity, pr.match);
      }
    }
    return receiving === null && replicating === null ? null : { receiving, replicating };
  }

  /** Every other acceptor's progress, by id (see Engine.replication). */
  report(): ReplicationProgress[] {
    const members: ReplicationProgress[] = [];
    for (const [id, pr] of this.progress) {
      if (id === this.selfId) continue;
      // One probe, or one snapshot chunk, is in flight at most outside the replicate state.
      const inflight = pr.state === "replicate" ? pr.inflightCount : pr.state === "probe" ? Number(pr.probeSent) : Number(pr.snapshotChunkInFlight);
      members.push({ id, match: pr.match, next: pr.next, state: pr.state, inflight, active: pr.recentActive || pr.activeRoundBefore });
    }
    return members.sort((a, b) => a.id - b.id);
  }
}

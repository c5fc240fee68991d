import { assert } from "../common/assert.js";
import type { CompactionFloor, Membership, NodeId, ReplicationProgress, Snapshot } from "../engine/contract.js";
import type { ConfigLog } from "./config-log.js";
import type { RaftConfig } from "./config.js";
import { entryBytes, type RaftLog } from "./log.js";
import { hasMajority, isMember, members } from "./membership.js";
import type { AppendResponse, RaftMessage, SnapshotChunk, SnapshotChunkResponse } from "./messages.js";
import { Progress } from "./progress.js";
import { QuorumValue } from "./quorum.js";

/** A follower whose snapshot chunk went unanswered this many times in a row no longer holds compaction back. */
const SNAPSHOT_RESENDS_HOLDING = 4;

/** What the replicator needs from the engine that owns it: its parts, and functions made once, not per call. */
export interface ReplicatorHost {
  readonly id: NodeId;
  readonly config: RaftConfig;
  readonly log: RaftLog;
  readonly configLog: ConfigLog;
  /** The engine's current term, which its messages carry. */
  readonly term: () => number;
  /** The configuration the engine acts on. */
  readonly membership: () => Membership;
  /** Whether the engine leads (only a leader says a last word to a member it stops tracking). */
  readonly leading: () => boolean;
  /** The engine's latest snapshot, sent to a follower that needs entries compacted away. */
  readonly snapshot: () => Snapshot | null;
  /** Ticks since the engine started, whatever its role (the leader's lease clock). */
  readonly now: () => number;
  /** Queues a message that may leave at once. */
  readonly send: (to: NodeId, message: RaftMessage) => void;
}

/** An append acknowledgement that moved a follower's match forward. */
export interface AppendAcknowledged {
  readonly pr: Progress;
  /** The follower's window was full before the acknowledgement freed it. */
  readonly wasPaused: boolean;
}

/**
 * A Raft leader's view of its followers and what it sends them (section 5.3, thesis 10.2,
 * etcd-io/raft's Progress tracker): a `Progress` per member it replicates to, the appends
 * it streams or probes with, the snapshot it sends in chunks to a follower that needs
 * entries compacted away (section 7), the heartbeats and what their answers reveal, and
 * what a quorum holds (quorum.ts). The engine decides what is committed, and when a
 * configuration or a leadership transfer changes who is tracked; this carries it out.
 *
 * The engine owns one for its life and clears it whenever it stops or starts leading.
 */
export class Replicator {
  /** Every member this leader replicates to, itself included, by id. Empty unless it leads. */
  readonly progress = new Map<NodeId, Progress>();
  private readonly quorum = new QuorumValue();

  constructor(private readonly host: ReplicatorHost) {}

  /** Forgets every follower: this node stops leading, or starts to (and then `sync`s). */
  clear(): void {
    this.progress.clear();
  }

  /** This leader's own progress: its log's match, counted toward the quorum once durable. */
  get own(): Progress {
    return this.progress.get(this.host.id) as Progress;
  }

  /**
   * A leader tracks every member; a new one starts probing at the end of the log. A node
   * that a configuration removes keeps receiving the log until that configuration has
   * committed and the node holds it — then it is told the commit index once more, and
   * learns that its removal is final, so it stops campaigning (see
   * Reconfiguration.mayCampaign) — or until it stays silent for an election timeout
   * (`dropSilent`).
   */
  sync(dropSilent = false): void {
    const { log, configLog } = this.host;
    const wanted = members(this.host.membership());
    const latestIndex = configLog.latestIndex;
    if (latestIndex > log.commitIndex) {
      for (const id of members(configLog.membershipAt(latestIndex - 1))) if (!wanted.includes(id)) wanted.push(id);
    }
    for (const peer of [...wanted, this.host.id]) {
      const joined = peer === this.host.id ? null : configLog.joinedAt(peer);
      const known = this.progress.get(peer);
      // Added again since it was tracked: what it acknowledged before counts for nothing.
      if (known !== undefined && (joined === null || joined <= known.addedAt)) continue;
      const pr = new Progress(log.lastIndex + 1, this.host.config.inflightMessagesMax, this.host.config.inflightBytesMax);
      pr.addedAt = joined ?? log.firstIndex - 1;
      if (peer === this.host.id) pr.match = log.lastIndex;
      pr.recentActive = true;
      this.progress.set(peer, pr);
    }
    const settled = latestIndex <= log.commitIndex;
    for (const [peer, pr] of [...this.progress]) {
      if (peer === this.host.id || wanted.includes(peer)) continue;
      const done = settled && pr.match >= latestIndex;
      if (!done && !(dropSilent && !pr.recentActive)) continue;
      this.progress.delete(peer);
      // A last word: the commit index, so a removed node that holds its removal learns that
      // it committed, and stops campaigning (see Reconfiguration.mayCampaign).
      if (this.host.leading()) this.host.send(peer, { type: "heartbeat", term: this.host.term(), commit: Math.min(pr.match, log.commitIndex), readRound: 0 });
    }
  }

  /** This leader still tracks members the configuration no longer has (removed ones, kept until they hold their removal). */
  tracksRemoved(): boolean {
    const current = this.host.membership();
    return this.progress.size > members(current).length + (isMember(current, this.host.id) ? 0 : 1);
  }

  /** Every election timeout: a new CheckQuorum round, in which every follower must be heard from again. */
  startActivityRound(): void {
    for (const [peer, pr] of this.progress) {
      if (peer === this.host.id) continue;
      pr.activeRoundBefore = pr.recentActive;
      pr.recentActive = false;
    }
  }

  /** Thesis 6.2: whether a quorum has been heard from this CheckQuorum round. */
  quorumRecentlyActive(): boolean {
    return hasMajority(this.host.membership(), (id) => id === this.host.id || this.progress.get(id)?.recentActive === true);
  }

  /** Every tick: a snapshot chunk unanswered for too long is sent again. */
  resendStalledSnapshots(): void {
    for (const [peer, pr] of this.progress) {
      if (pr.state !== "snapshot" || !pr.snapshotChunkInFlight) continue;
      if (++pr.snapshotStallTicks < this.host.config.snapshotResendTicks) continue;
      // The chunk or its answer was lost: resend from the last acknowledged offset.
      pr.snapshotChunkInFlight = false;
      pr.snapshotResends++;
      this.sendAppend(peer);
    }
  }

  /**
   * Quiescence's condition on the followers: every member this leader tracks holds its
   * whole log (match at the last index, nothing in flight, no snapshot being sent), so
   * nothing remains to send anyone.
   */
  followersCaughtUp(): boolean {
    const lastIndex = this.host.log.lastIndex;
    for (const [peer, pr] of this.progress) {
      if (peer === this.host.id) continue;
      if (pr.state !== "replicate" || pr.match !== lastIndex || pr.inflight.count > 0) return false;
    }
    return true;
  }

  /**
   * A leader goes quiet or wakes: what it knew of its followers' activity and of their
   * acknowledgements is forgotten. On waking, a new CheckQuorum round starts (a leader that
   * hears from no quorum within an election timeout of waking steps down), and no
   * acknowledgement from before counts toward a lease.
   */
  forgetAcknowledgements(): void {
    for (const [peer, pr] of this.progress) {
      if (peer === this.host.id) continue;
      pr.recentActive = false;
      pr.activeRoundBefore = false;
      pr.leaseAckTick = Number.NEGATIVE_INFINITY;
    }
  }

  /** The voter whose log matches this leader's furthest, or null when there is none but itself. */
  mostUpToDateFollower(): NodeId | null {
    let best: NodeId | null = null;
    let bestMatch = -1;
    for (const peer of this.host.membership().voters) {
      if (peer === this.host.id) continue;
      const match = (this.progress.get(peer) as Progress).match;
      if (match > bestMatch) {
        best = peer;
        bestMatch = match;
      }
    }
    return best;
  }

  /**
   * Takes a follower's answer to an append: a rejection sends it back to where its log may
   * match, an acknowledgement moves its match forward. Returns its progress when its match
   * moved (the engine then commits, and refills its pipeline with `fill`), else null.
   */
  appendAnswered(from: NodeId, message: AppendResponse): AppendAcknowledged | null {
    const log = this.host.log;
    const pr = this.progress.get(from);
    if (pr === undefined) return null;
    // An acknowledgement past this log's end answers no append this leader sent: a broken
    // peer's, dropped rather than trusted (its match would commit entries that do not exist).
    if (!message.reject && message.index > log.lastIndex) return null;
    pr.recentActive = true;
    if (message.reject && message.snapshotFrom !== undefined && message.snapshotFrom > 0) {
      this.wantsSnapshot(from, pr, message.snapshotFrom);
      return null;
    }
    if (message.reject) {
      if (pr.state === "snapshot") return null; // an answer to an append sent before the snapshot
      const next = message.hintTerm > 0 ? log.findConflictByTerm(message.hintIndex, message.hintTerm).index : message.hintIndex;
      if (message.hintIndex < pr.match && pr.match < pr.addedAt) {
        // It lacks an entry counted as matched, which an earlier replica of it acknowledged.
        pr.forgetMatch(Math.min(message.index, next + 1));
        this.sendAppend(from);
        return null;
      }
      if (pr.maybeDecreaseTo(message.index, next)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.sendAppend(from);
      }
      return null;
    }
    const wasPaused = pr.paused;
    if (pr.snapshotWanted > 0 && message.index >= pr.snapshotWanted) pr.snapshotWanted = 0;
    if (!pr.maybeUpdate(message.index)) return null;
    if (!isMember(this.host.membership(), from) && from !== this.host.id && pr.match >= this.host.configLog.latestIndex) {
      // A removed node that now holds its removal: let it go (if the removal committed).
      this.sync();
      if (this.progress.get(from) !== pr) return null;
    }
    if (pr.state === "probe") pr.becomeReplicate();
    else if (pr.state === "snapshot") {
      if (pr.match >= pr.pendingSnapshot) pr.becomeReplicate();
    } else pr.inflight.freeTo(message.index);
    return { pr, wasPaused };
  }

  /**
   * A follower takes no entries until it installs a snapshot at `from` or later
   * (EngineOptions.awaitSnapshot): it is sent the latest snapshot when that reaches `from`,
   * and otherwise nothing until the driver has captured one that does (`snapshotWanted`,
   * then `snapshotsChanged`). One being sent that is older is dropped.
   */
  private wantsSnapshot(to: NodeId, pr: Progress, from: number): void {
    if (pr.match >= from) {
      // An ask from before it installed one (delayed or duplicated): it holds that far already;
      if (pr.match >= pr.addedAt) return;
      // unless that match may be what an earlier replica of it acknowledged (Progress.addedAt).
      pr.forgetMatch(1);
    }
    pr.snapshotWanted = Math.max(pr.snapshotWanted, from);
    if (pr.state === "snapshot" && pr.pendingSnapshot >= pr.snapshotWanted) return;
    pr.becomeProbe();
    this.sendAppend(to);
  }

  /** The least snapshot index a follower waits for that the latest snapshot does not reach (0: none); see Engine.snapshotWanted. */
  snapshotWanted(): number {
    // A held snapshot reaches nothing: it cannot be sent until a full one replaces it.
    const snapshot = this.host.snapshot();
    const latest = snapshot === null || snapshot.held === true ? 0 : snapshot.index;
    let wanted = 0;
    for (const pr of this.progress.values()) if (pr.state !== "snapshot" && pr.snapshotWanted > latest) wanted = Math.max(wanted, pr.snapshotWanted);
    return wanted;
  }

  /** The leader has a new snapshot: followers waiting for one it reaches are sent it. */
  snapshotsChanged(): void {
    for (const [peer, pr] of this.progress) if (peer !== this.host.id && pr.snapshotWanted > 0 && pr.state !== "snapshot") this.sendAppend(peer);
  }

  /** Keeps the pipeline to a replicating follower full, up to its in-flight window. */
  fill(to: NodeId, pr: Progress): void {
    while (pr.state === "replicate" && this.sendAppend(to)) {
      // keep the pipeline full up to the in-flight window
    }
  }

  /**
   * Takes a follower's answer to a heartbeat: it is alive, its pipeline is checked, and it
   * is sent what it lacks. Returns its progress (for the read round the answer confirms),
   * or undefined when this leader does not track it.
   */
  heartbeatAnswered(from: NodeId): Progress | undefined {
    const pr = this.progress.get(from);
    if (pr === undefined) return undefined;
    pr.recentActive = true;
    pr.probeSent = false;
    const now = this.host.now();
    if (pr.state === "replicate" && pr.match < pr.sentAtLastHeartbeat && pr.tailProbeTick < now) {
      // An append that was already out at the previous heartbeat answer is still not
      // acknowledged. It may be slow (a follower's fsync), or lost — and if it was the last,
      // nothing else would reveal it. Ask about the tail with an empty append: the follower
      // accepts it if it holds everything sent, and rejects it (sending this follower back
      // to probe) if something is missing.
      // At most once a tick: read rounds bring extra heartbeat answers.
      pr.tailProbeTick = now;
      this.sendTailProbe(from, pr);
    }
    pr.sentAtLastHeartbeat = pr.next - 1;
    if (pr.match < this.host.log.lastIndex) this.sendAppend(from);
    return pr;
  }

  /** Sends the next append to `to` if its window allows; returns whether one was sent. */
  sendAppend(to: NodeId): boolean {
    const { log, config } = this.host;
    const pr = this.progress.get(to) as Progress;
    if (pr.state === "snapshot") return this.sendSnapshotChunk(to, pr);
    // A follower waiting for a snapshot takes no entries: it gets one once one reaches what it needs.
    if (pr.snapshotWanted > 0) return this.sendSnapshotChunk(to, pr);
    if (pr.paused) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = log.term(prevIndex);
    if (prevTerm === null) {
      // The follower needs entries compacted away: it gets the snapshot instead (section 7).
      assert(prevIndex < log.firstIndex, `no term for index ${prevIndex} inside the log`);
      return this.sendSnapshotChunk(to, pr);
    }
    const entries = pr.next <= log.lastIndex ? log.slice(pr.next, log.lastIndex, config.entriesPerMessageMax, config.bytesPerMessageMax) : [];
    // In replicate state an empty append is worth sending only to tell an idle follower a
    // new commit index (so it applies, and serves follower reads, without waiting for a
    // heartbeat).
    const commitNews = pr.inflight.count === 0 && pr.sentCommit < log.commitIndex;
    if (entries.length === 0 && pr.state === "replicate" && !commitNews) return false;
    this.host.send(to, { type: "append", term: this.host.term(), prevIndex, prevTerm, entries, commit: log.commitIndex });
    pr.sentCommit = Math.max(pr.sentCommit, log.commitIndex);
    const last = entries[entries.length - 1];
    if (pr.state === "replicate" && last !== undefined) {
      pr.next = last.index + 1;
      pr.inflight.add(last.index, entries.reduce((sum, entry) => sum + entryBytes(entry), 0));
    } else if (pr.state === "probe") pr.probeSent = true;
    return true;
  }

  private sendTailProbe(to: NodeId, pr: Progress): void {
    const log = this.host.log;
    const prevIndex = pr.next - 1;
    const prevTerm = log.term(prevIndex);
    if (prevTerm === null) {
      pr.becomeProbe(); // compacted meanwhile: the next append becomes a snapshot
      return;
    }
    this.host.send(to, { type: "append", term: this.host.term(), prevIndex, prevTerm, entries: [], commit: log.commitIndex });
    pr.sentCommit = Math.max(pr.sentCommit, log.commitIndex);
  }

  /** Sends the next chunk of the snapshot being sent, unless one is unanswered. */
  private sendSnapshotChunk(to: NodeId, pr: Progress): boolean {
    if (pr.state !== "snapshot" || pr.snapshot === null) {
      // A transfer sends the snapshot it started with to the end, even if the leader
      // compacts again meanwhile: restarting it on every compaction could starve a follower.
      const latest = this.host.snapshot();
      // One the follower asked for may not exist yet: the driver captures it (snapshotWanted).
      if (latest === null && pr.snapshotWanted > 0) return false;
      assert(latest !== null, "a follower needs a snapshot but the leader has none");
      // One that only names this node's state cannot be sent: the driver replaces it soon.
      if (latest.held === true) return false;
      if (latest.index < pr.snapshotWanted) return false;
      pr.becomeSnapshot(latest);
    }
    const snapshot = pr.snapshot as Snapshot;
    if (pr.snapshotChunkInFlight) return false;
    const offset = Math.min(pr.snapshotAcked, snapshot.data.length);
    const chunk = snapshot.data.subarray(offset, Math.min(snapshot.data.length, offset + this.host.config.snapshotChunkBytes));
    const message: SnapshotChunk = { type: "snapshot", term: this.host.term(), index: snapshot.index, snapshotTerm: snapshot.term, size: snapshot.data.length, offset, chunk };
    // The configuration goes with the first chunk only: the follower keeps it from there.
    this.host.send(to, snapshot.membership === undefined || offset !== 0 ? message : { ...message, membership: snapshot.membership });
    pr.snapshotChunkInFlight = true;
    pr.snapshotStallTicks = 0;
    return true;
  }

  /** Takes a follower's answer to a snapshot chunk, and sends it the next. */
  snapshotAnswered(from: NodeId, message: SnapshotChunkResponse): void {
    const pr = this.progress.get(from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (pr.state !== "snapshot" || message.index !== pr.pendingSnapshot) return;
    // The follower says where it stands (it may have restarted and lost earlier chunks).
    pr.snapshotAcked = message.received;
    pr.snapshotChunkInFlight = false;
    pr.snapshotStallTicks = 0;
    pr.snapshotResends = 0;
    this.sendAppend(from);
  }

  broadcastAppend(): void {
    for (const peer of this.progress.keys()) if (peer !== this.host.id) this.sendAppend(peer);
  }

  broadcastHeartbeat(readRound: number): void {
    const { log } = this.host;
    for (const [peer, pr] of this.progress) {
      if (peer === this.host.id) continue;
      this.host.send(peer, { type: "heartbeat", term: this.host.term(), commit: Math.min(pr.match, log.commitIndex), readRound });
    }
  }

  /** The last heartbeat before this leader goes quiet: it tells each follower the commit index, and to go quiet if its log ends there. */
  broadcastQuiesce(): void {
    const { log } = this.host;
    for (const [peer, pr] of this.progress) {
      if (peer === this.host.id) continue;
      this.host.send(peer, { type: "heartbeat", term: this.host.term(), commit: Math.min(pr.match, log.commitIndex), readRound: 0, quiesce: true });
    }
  }

  /**
   * The highest index a quorum holds durably: the leader's own log counts only as far as it
   * is durable, since its appends and heartbeats (with the commit index) leave while its
   * own write may still be under way.
   */
  quorumMatch(): number {
    return this.quorum.of(this.host.membership(), this.progress, this.durableMatch);
  }

  /** A peer's match, the leader's own only as far as it is durable (one function, not one per call: a hot path). */
  private readonly durableMatch = (peer: NodeId, pr: Progress): number => (peer === this.host.id ? Math.min(pr.match, this.host.log.durableIndex) : pr.match);

  /** The latest tick, by this leader's clock, at which it sent heartbeats a quorum acknowledged (its lease). */
  leaseAcknowledgedAt(): number {
    return this.quorum.of(this.host.membership(), this.progress, this.leaseAckTick);
  }

  /** When a peer last acknowledged a heartbeat, by this leader's clock; the leader itself, now. */
  private readonly leaseAckTick = (peer: NodeId, pr: Progress): number => (peer === this.host.id ? this.host.now() : pr.leaseAckTick);

  /** What compaction must keep for the followers this leader sends to (see the engine's compactionFloor). */
  compactionFloor(): CompactionFloor | null {
    let receiving: number | null = null;
    let replicating: number | null = null;
    for (const [peer, pr] of this.progress) {
      if (peer === this.host.id) continue;
      // A follower receiving a snapshot needs the entries after it; one replicating, those after its match.
      if (pr.state === "snapshot") {
        if (pr.snapshotResends < SNAPSHOT_RESENDS_HOLDING) receiving = Math.min(receiving ?? Infinity, pr.pendingSnapshot);
      } else if (pr.snapshotWanted > 0) {
        // It waits for a snapshot, not for entries: holding the log back would only keep it waiting.
      } else if (pr.recentActive || pr.activeRoundBefore) {
        replicating = Math.min(replicating ?? Infinity, pr.match);
      }
    }
    return receiving === null && replicating === null ? null : { receiving, replicating };
  }

  /** Where each follower stands, by id, for the engine's `replication()`. */
  report(): ReplicationProgress[] {
    const followers: ReplicationProgress[] = [];
    for (const [id, pr] of this.progress) {
      if (id === this.host.id) continue;
      // One probe, or one snapshot chunk, is in flight at most outside the replicate state.
      const inflight = pr.state === "replicate" ? pr.inflight.count : pr.state === "probe" ? Number(pr.probeSent) : Number(pr.snapshotChunkInFlight);
      followers.push({ id, match: pr.match, next: pr.next, state: pr.state, inflight, active: pr.recentActive || pr.activeRoundBefore });
    }
    return followers.sort((a, b) => a.id - b.id);
  }
}

import { assert } from "../common/assert.js";
import { InvalidInputError, NotLeaderError, NotMemberError, OverloadedError } from "../common/errors.js";
import { Prng } from "../common/prng.js";
import { forgottenElapsed } from "../engine/contract.js";
import type {
  Admission,
  CampaignTiming,
  CompactionFloor,
  Engine,
  EngineOptions,
  EngineStatus,
  LogEntry,
  Membership,
  MembershipChange,
  NodeId,
  Outbound,
  Ready,
  ReadOptions,
  ReadState,
  ReplicationProgress,
  Role,
  Snapshot,
} from "../engine/contract.js";
import { ConfigLog } from "./config-log.js";
import { RaftEngineHost } from "./engine-host.js";
import { DEFAULT_RAFT_CONFIG, leaseTicks, validateRaftConfig, type RaftConfig } from "./config.js";
import { Election } from "./election.js";
import { RaftLog } from "./log.js";
import { bootstrapMembership, hasMajority, isMember } from "./membership.js";
import type {
  AppendRequest,
  AppendResponse,
  HeartbeatResponse,
  RaftHardState,
  RaftMessage,
  SnapshotChunk,
  SnapshotChunkResponse,
  VoteRequest,
  VoteResponse,
} from "./messages.js";
import { Quiescence } from "./quiescence.js";
import { isSoleQuorum } from "./quorum.js";
import { ReadOnly } from "./read-only.js";
import { Reconfiguration } from "./reconfiguration.js";
import { Replicator } from "./replication.js";
import { LeadershipTransfer } from "./transfer.js";
import { RaftSnapshots } from "./snapshots.js";

const EMPTY = new Uint8Array(0);

/**
 * Raft as a pure state machine (Ongaro & Ousterhout; Ongaro's thesis), driven through the
 * engine contract. No I/O, no clock, no randomness but the injected seed.
 *
 * Durability rules: votes and append acknowledgements leave only after the Ready's writes
 * are durable (`messagesAfterPersist`); a candidate's vote requests too, since they carry
 * its vote for itself. The driver may take the next Ready while the last one's writes
 * flush (appends and heartbeats leave during the leader's own fdatasync), so a leader
 * counts its own entries toward commit only once they are durable (thesis 10.2.1): a
 * commit index it sends out is always on a quorum's disks. A leader's snapshot is handed
 * out alone: no Ready is outstanding when it is, and none follows until it is advanced.
 *
 * The engine owns its parts: the log (log.ts), the configurations in it (config-log.ts),
 * campaigns and votes (election.ts), a leader's followers and what it sends them — appends, snapshot chunks, heartbeats —
 * with what a quorum of them holds (replication.ts, over progress.ts and quorum.ts), a
 * leadership transfer and the proposals held meanwhile (transfer.ts), configuration
 * changes as a leader starts and completes them (reconfiguration.ts), the reads being
 * confirmed and the lease (read-only.ts), going quiet and waking (quiescence.ts), and its
 * snapshots: the latest, one being received, one awaited (snapshots.ts). The few rules a classic mistake breaks are protected methods
 * named for the rule (`mayGrantVote`, `commitsByCounting`, ...): the mutants of mutants.ts
 * are subclasses overriding one each.
 */
export class RaftEngine implements Engine<RaftMessage, RaftHardState> {
  readonly id: NodeId;
  protected readonly config: RaftConfig;
  /** The configuration at the snapshot's index (or the bootstrap one), and those after it in the log. */
  protected readonly configLog: ConfigLog;
  /** The configuration acted on: the latest in the log, committed or not (thesis 4.1). */
  protected current: Membership;
  /** This node alone is a majority of every group (a one-voter cluster). */
  private selfQuorum = false;
  private readonly prng: Prng;
  protected readonly log: RaftLog;

  private term: number;
  private vote: NodeId | null;
  private lead: NodeId | null = null;
  private role: Role = "follower";
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTicks = 0;
  /** Campaigns, the votes counted, and the answers to others' vote requests (section 5.2). */
  private readonly election: Election;
  /** The leader's followers: their progress, and the appends, snapshots and heartbeats sent them. */
  private readonly replicator: Replicator;
  private uncommittedBytes = 0;
  private broadcastPending = false;

  /** Ticks since this engine started, whatever its role (the leader's lease clock). */
  private tickCount = 0;
  /** Linearizable reads this leader is confirming, and its lease (thesis 6.4). */
  private readonly reads: ReadOnly;
  /**
   * With lease reads, a restarted node does not know whether it acknowledged a leader's
   * heartbeat just before it went down; it refuses votes for one election timeout as if it had.
   */
  private startupGuard: boolean;

  /** Quiescence (RaftConfig.quiesce): whether this engine is quiet, and when it goes quiet and wakes. */
  private readonly quiescence: Quiescence;

  /** Leadership transfer (thesis 3.10), and the proposals held while it is under way. */
  private readonly transfer: LeadershipTransfer;
  /** Configuration changes (thesis chapter 4): when one may start, and what follows its commit. */
  private readonly reconfiguration: Reconfiguration;

  /** Its snapshots: the latest, one installed for the driver, one being received, one awaited (snapshots.ts). */
  private readonly snapshots: RaftSnapshots;
  /** Its replica of this group was dropped here once, having applied this far: no vote until its commit index is back there (RaftHardState.forgot); 0 when not. */
  protected readonly forgot: number;

  private messages: Outbound<RaftMessage>[] = [];
  private messagesAfterPersist: Outbound<RaftMessage>[] = [];
  private readStates: ReadState[] = [];
  private savedHardState: RaftHardState;
  /**
   * Readies handed out and not yet advanced, oldest first. The driver may take the next
   * Ready while earlier ones are being made durable (their messages went out; their writes
   * are queued), and advances them in order — except around a snapshot from the leader,
   * which is handed out alone (see hasReady).
   */
  private outstanding: Ready<RaftMessage, RaftHardState>[] = [];

  constructor(options: EngineOptions<RaftHardState>, config: RaftConfig = DEFAULT_RAFT_CONFIG) {
    this.id = options.id;
    this.config = validateRaftConfig(config);
    assert(options.peers.length === 0 || options.peers.includes(options.id), `node ${options.id} is not among the bootstrap voters ${options.peers.join(",")}`);
    assert(new Set(options.peers).size === options.peers.length, "voter ids must be unique");
    this.prng = new Prng(options.seed);
    const hard = options.durable.hardState;
    this.term = hard?.term ?? 0;
    this.vote = hard?.vote ?? null;
    this.log = new RaftLog(options.durable, hard?.commit ?? 0, options.appliedIndex);
    const base = options.durable.snapshot?.membership ?? bootstrapMembership(options.peers);
    this.configLog = new ConfigLog(base, options.durable.entries);
    this.current = base;
    // One host lends the engine's parts to its helpers; each sees it through its own narrow interface.
    const host = new RaftEngineHost(this);
    this.snapshots = new RaftSnapshots(host, options, base);
    this.forgot = hard?.forgot ?? 0;
    this.replicator = new Replicator(host);
    this.transfer = new LeadershipTransfer(host, this.replicator);
    this.reconfiguration = new Reconfiguration(host, this.replicator, this.transfer);
    this.election = new Election(host);
    this.refreshMembership();
    this.savedHardState = { term: this.term, vote: this.vote, commit: this.log.commitIndex, ...(hard?.forgot === undefined ? {} : { forgot: hard.forgot }) };
    this.reads = new ReadOnly(this.id, this.config.electionTicks, leaseTicks(this.config), host);
    this.quiescence = new Quiescence(host, this.replicator, this.transfer, this.reads);
    this.startupGuard = this.config.leaseReads;
    this.resetElectionTimer();
  }

  // ---- inputs ----

  tick(): void {
    // A quiet engine counts no time at all, not even its lease clock: a driver may skip its
    // ticks altogether (that is the point), so nothing may depend on them (see quiescence.ts).
    if (this.quiescence.quiet) return;
    this.tickCount++;
    if (this.role === "leader") this.tickLeader();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) this.startupGuard = false;
    if (this.electionElapsed < this.randomizedElectionTicks) return;
    if (!this.mayCampaign()) {
      // A learner, a removed node, one that has not yet heard of any configuration and one
      // that waits for a snapshot to hold any state do not campaign. Their leader has been
      // silent for an election timeout: it is forgotten, and with it its lease, so they
      // answer the votes of whoever campaigns next.
      this.electionElapsed = this.randomizedElectionTicks;
      this.lead = null;
      return;
    }
    this.electionElapsed = 0;
    this.election.campaign(this.config.preVote);
  }

  /** Whether this node may stand for election: a member that may, and that holds a state to lead from (not one waiting for a snapshot). */
  private mayCampaign(): boolean {
    return this.snapshots.awaiting === 0 && this.reconfiguration.mayCampaign();
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    this.transfer.tick();
    if (this.role !== "leader") return; // a removed leader whose transfer failed stepped down
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum && !this.replicator.quorumRecentlyActive()) {
        // Section 6.2 of the thesis: a leader cut off from a quorum steps down, so clients
        // stop waiting on it and a PreVote elsewhere is not blocked by its lease.
        this.becomeFollower(this.term, null);
        return;
      }
      if (this.replicator.tracksRemoved()) this.replicator.sync(true);
      this.replicator.startActivityRound();
    }
    this.reconfiguration.autoPromote();
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      if (this.quiescence.quiesceIfIdle()) return;
      this.heartbeat();
    }
    this.replicator.resendStalledSnapshots();
  }

  step(from: NodeId, message: RaftMessage): void {
    this.quiescence.received(from, message);
    // A vote request from outside this node's configuration — a removed node, most likely —
    // whose log is behind this one's would be refused anyway: ignoring it keeps it from
    // forcing a new term on the cluster. One with a log as up to date is heard: it may be a
    // voter of a configuration this node has not caught up with yet. So is everything else:
    // a leader of such a configuration must be able to bring this node up to date.
    if (message.type === "vote" && !isMember(this.current, from)) {
      if (this.role === "leader") this.tellRemovedCommit(from, message);
      if (!this.log.isUpToDate(message.lastIndex, message.lastTerm)) {
        if (!message.preVote && message.term > this.term && this.lead === null && this.role !== "leader") this.adoptTermQuietly(message.term);
        return;
      }
    }
    if (message.term > this.term) {
      const fromLeader = message.type === "append" || message.type === "heartbeat" || message.type === "snapshot";
      const transferVote = message.type === "vote" && message.transfer === true;
      if (!fromLeader && !transferVote && (message.type === "vote" || this.role !== "leader")) {
        // Thesis 4.2.3: while a leader is known to be alive, do not let a disruptive
        // candidate (a removed or partitioned node) force a new term. Any higher term not
        // from a leader is ignored, not only a vote request: adopting it (say, from a late
        // pre-vote rejection) would forget the leader, and with it the promise behind the
        // leader's lease not to vote for another within an election timeout.
        const inLease = this.config.checkQuorum && (this.lead !== null || this.startupGuard) && this.electionElapsed < this.config.electionTicks;
        if (inLease) return;
      }
      const futureTermProbe = (message.type === "vote" && message.preVote) || (message.type === "vote-response" && message.preVote && message.granted);
      if (!futureTermProbe) {
        this.becomeFollower(message.term, fromLeader ? from : null);
      }
    } else if (message.term < this.term) {
      if (message.type === "append" || message.type === "heartbeat" || message.type === "snapshot") {
        // Tell a stale leader about the newer term so it steps down (with PreVote and
        // CheckQuorum it would otherwise never learn it).
        this.send(from, { type: "heartbeat-response", term: this.term, readRound: 0 });
        return;
      }
      if (message.type === "vote") {
        // Refused, with this node's term, so the candidate catches up to it: a candidate
        // whose term fell behind (it needs this node, which campaigned on its own with
        // PreVote off) would otherwise campaign in vain for ever.
        this.send(from, { type: "vote-response", term: this.term, preVote: message.preVote, granted: false });
        this.election.yieldToBetterLog(message);
        return;
      }
      if (!this.heardFromEarlierTerm(message)) return;
    }
    this.dispatch(from, message);
  }

  /**
   * Whether a message of an earlier term is still acted on. Section 5.1: a stale term means
   * the sender's view is outdated, and what it says (a vote, an acknowledgement of entries
   * this node's log may no longer hold) is dropped. A proposal is the exception: it claims
   * nothing about a term, it only carries data for whoever leads.
   */
  protected heardFromEarlierTerm(message: RaftMessage): boolean {
    return message.type === "propose";
  }

  private dispatch(from: NodeId, message: RaftMessage): void {
    switch (message.type) {
      case "vote":
        return this.election.voteRequested(from, message);
      case "vote-response":
        return this.election.voteAnswered(from, message);
      case "append":
        return this.handleAppend(from, message);
      case "append-response":
        return this.handleAppendResponse(from, message);
      case "heartbeat":
        this.followLeader(from);
        this.log.commitTo(Math.min(message.commit, this.log.lastIndex));
        this.commitLearned();
        if (message.quiesce === true) this.quiescence.askedToQuiesce(message.commit);
        this.send(from, { type: "heartbeat-response", term: this.term, readRound: message.readRound });
        return;
      case "heartbeat-response":
        return this.handleHeartbeatResponse(from, message);
      case "propose":
        // A proposal that reaches a non-leader, or one over the uncommitted bound, is dropped;
        // its client times out (the follower that forwarded it already said "accepted").
        // A proposal forwarded to a node that cannot append it now — it is handing
        // leadership over, or no longer leads (the sender's news is stale: an election or a
        // transfer is under way) — waits for the next leader rather than vanish, so its
        // client sees a pause, not a timeout. A proposal over the uncommitted bound is
        // dropped; its client times out.
        for (const data of message.data) {
          if (this.role === "leader" && this.transfer.target === null) this.appendIfAdmitted(data);
          else this.transfer.hold(data);
        }
        if (this.role === "follower" && this.lead !== null) this.transfer.releaseHeld();
        return;
      case "read-index":
        if (this.role === "leader") this.handleReadRequest(from, message.requestId, message.lease === true);
        return;
      case "read-index-response":
        this.readStates.push({ requestId: message.requestId, index: message.index });
        return;
      case "snapshot":
        return this.handleSnapshotChunk(from, message);
      case "snapshot-response":
        return this.handleSnapshotResponse(from, message);
      case "timeout-now":
        // The leader handed over: campaign at once, for real (a pre-vote would be refused by
        // voters that still hear from it), saying why so they grant despite its lease.
        if (this.role === "follower" && this.mayCampaign()) this.election.campaign(false, true);
        return;
    }
  }

  propose(data: Uint8Array): Admission {
    this.wake();
    if (this.role === "leader" && this.transfer.target !== null) {
      if (this.transfer.hold(data)) return { accepted: true };
      return { accepted: false, error: new OverloadedError(`${this.transfer.heldBytes} bytes of proposals wait for a leadership transfer; the limit is ${this.config.uncommittedBytesMax}`) };
    }
    if (this.role === "leader") {
      if (!this.admits(data)) {
        return { accepted: false, error: new OverloadedError(`${this.uncommittedBytes} uncommitted bytes; the limit is ${this.config.uncommittedBytesMax}`) };
      }
      this.appendProposal(data);
      return { accepted: true };
    }
    if (this.role === "follower" && this.lead !== null && isMember(this.current, this.id)) {
      this.send(this.lead, { type: "propose", term: this.term, data: [data] });
      return { accepted: true };
    }
    // A node outside the configuration (removed, or not yet joined) would never learn the
    // outcome: it gets no log. Its client is sent to the leader.
    if (this.role === "follower" && !isMember(this.current, this.id)) return { accepted: false, error: new NotMemberError(this.lead) };
    return { accepted: false, error: new NotLeaderError(this.lead) };
  }

  /** The uncommitted-log bound (one entry always fits, however large, so none is stuck). */
  private admits(data: Uint8Array): boolean {
    return this.uncommittedBytes === 0 || this.uncommittedBytes + data.length <= this.config.uncommittedBytesMax;
  }

  /** A leader appends a proposal that waited or was forwarded to it, unless it is over the bound (its client times out). */
  private appendIfAdmitted(data: Uint8Array): void {
    if (this.admits(data)) this.appendProposal(data);
  }

  readIndex(requestId: number, options?: ReadOptions): Admission {
    this.wake();
    const lease = options?.lease ?? this.config.leaseReads;
    if (this.role === "leader") {
      this.handleReadRequest(this.id, requestId, lease);
      return { accepted: true };
    }
    if (this.role === "follower" && this.lead !== null && isMember(this.current, this.id)) {
      this.send(this.lead, lease ? { type: "read-index", term: this.term, requestId, lease } : { type: "read-index", term: this.term, requestId });
      return { accepted: true };
    }
    if (this.role === "follower" && !isMember(this.current, this.id)) return { accepted: false, error: new NotMemberError(this.lead) };
    return { accepted: false, error: new NotLeaderError(this.lead) };
  }

  /**
   * Hands leadership to `to` (thesis 3.10), or with null to the voter whose log is most up
   * to date. Proposals are refused (TransferInProgressError) while the leader brings the
   * target's log up to its own and then tells it to campaign at once (timeout-now); the
   * transfer is abandoned after an election timeout. Transferring to itself is a no-op.
   */
  transferLeadership(to: NodeId | null): Admission {
    this.wake();
    if (this.role !== "leader") return { accepted: false, error: new NotLeaderError(this.lead) };
    const target = to ?? this.replicator.mostUpToDateFollower();
    if (target === null || target === this.id) return { accepted: true };
    if (!this.current.voters.includes(target)) {
      return { accepted: false, error: new InvalidInputError(`node ${target} is not a voting member; the voters are ${this.current.voters.join(", ")}`) };
    }
    this.transfer.start(target);
    return { accepted: true };
  }

  /**
   * A leader that tells a member to campaign (thesis 3.10) stops serving lease reads for the
   * rest of its term: that member campaigns with `transfer` set, and its voters grant it
   * without waiting out this leader's lease (thesis 6.4.1), so the lease no longer proves
   * that no other leader exists.
   */
  protected surrenderLease(): void {
    this.reads.giveLeaseAway();
  }

  /**
   * A follower drops its leader and that leader's lease, so it may grant votes at once
   * (etcd-io/raft's ForgetLeader), and campaigns as `campaign` says (Engine.forgetLeader).
   * For when the application knows the leader is gone; a no-op on a leader or candidate.
   */
  forgetLeader(campaign: CampaignTiming = "remaining"): void {
    this.wake();
    if (this.role !== "follower") return;
    this.lead = null;
    this.electionElapsed = forgottenElapsed(campaign, this.config.electionTicks, this.randomizedElectionTicks);
  }

  // ---- membership (thesis chapter 4) ----

  /**
   * Asks this leader to change the configuration (see `nextMembership` for which changes
   * are direct and which go through a joint configuration). Refused while an earlier change
   * has not committed, or before this leader has committed an entry of its term: a new
   * leader may otherwise have an uncommitted change of an old leader's in its log that it
   * does not know about (the single-server change bug of thesis 4.1 and its fix).
   */
  changeMembership(change: MembershipChange): Admission {
    this.wake();
    if (this.role !== "leader") return { accepted: false, error: new NotLeaderError(this.lead) };
    return this.reconfiguration.propose(change);
  }

  /**
   * The one-change-at-a-time rule (thesis 4.1 and 4.3): the index of the latest
   * configuration entry while it has not committed, which a new change must wait for; null
   * when the latest has committed. Two overlapping changes may leave two disjoint majorities.
   */
  protected uncommittedChangeIndex(): number | null {
    const latestIndex = this.configLog.latestIndex;
    return latestIndex > this.log.commitIndex ? latestIndex : null;
  }

  membership(): Membership {
    return this.current;
  }

  /** The configuration in force at `index` (at or after the snapshot's index). */
  membershipAt(index: number): Membership {
    return this.configLog.membershipAt(index);
  }

  /**
   * The configuration a server acts on (thesis 4.1): the latest in its log, committed or
   * not. Waiting for the commit would let a leader count a majority of a configuration its
   * log has already replaced.
   */
  protected configurationActedOn(): Membership {
    return this.configLog.latest;
  }

  /**
   * This node learned a higher commit index (a heartbeat, an append, a leader's own
   * commit). The configuration acted on does not depend on the commit index (thesis 4.1),
   * so there is nothing to recompute.
   */
  protected commitLearned(): void {}

  /**
   * Recomputes the configuration acted on (`configurationActedOn`) and, on a leader, the
   * followers it replicates to.
   */
  protected refreshMembership(): void {
    const latest = this.configurationActedOn();
    if (latest === this.current && this.replicator.progress.size > 0) return;
    this.current = latest;
    this.selfQuorum = isSoleQuorum(latest, this.id);
    if (this.role !== "leader") return;
    this.replicator.sync();
    this.transfer.targetLeft(latest.voters);
  }

  // ---- quiescence (RaftConfig.quiesce; CockroachDB's quiesced ranges) ----

  /** Whether this engine is quiet: it ignores ticks until something wakes it. */
  quiescent(): boolean {
    return this.quiescence.quiet;
  }

  /**
   * Wakes a quiet engine; a no-op on one awake (see Quiescence.wake). The node calls this
   * when it suspects the node of this engine's leader has failed (core/multi/liveness.ts),
   * since a quiet follower counts no election timeout.
   */
  wake(): void {
    this.quiescence.wake();
  }

  /**
   * Quiescence's rule on followers: every member holds this leader's whole log, with
   * nothing in flight. A follower left behind would stay behind (nothing is sent to a quiet
   * group), and one that went quiet behind its leader would stay quiet there.
   */
  protected followersHoldWholeLog(): boolean {
    return this.replicator.followersCaughtUp();
  }

  // ---- elections (section 5.2, thesis 9.6) ----

  /**
   * Stands for election (Election.campaign). Section 5.2: every election starts a fresh
   * randomized timeout, so candidates that collided once are unlikely to collide again.
   */
  protected stand(preVote: boolean): void {
    this.resetElectionTimer();
    if (preVote) {
      this.role = "precandidate";
      this.lead = null;
    } else {
      this.role = "candidate";
      this.term += 1;
      this.vote = this.id;
      this.lead = null;
    }
  }

  /**
   * Who a candidate asks for votes (thesis 4.3): every voter of both halves of a joint
   * configuration. Learners do not vote (thesis 4.2.1).
   */
  protected campaignPeers(): NodeId[] {
    return [...this.current.voters, ...this.current.outgoing.filter((id) => !this.current.voters.includes(id))];
  }

  /**
   * Whose votes elect (section 5.2, thesis 4.3): a majority of the voters of every group —
   * both halves of a joint configuration. A learner's vote counts toward none.
   */
  protected votesWin(votes: ReadonlyMap<NodeId, boolean>): boolean {
    return hasMajority(this.current, (id) => votes.get(id) === true);
  }

  /**
   * Figure 2's "votedFor is null or candidateId": one vote per term — again for the
   * candidate it already voted for, or a first one if it follows no leader (thesis 4.2.3:
   * a node that hears from a leader does not help unseat it). A pre-vote for a later term
   * binds nothing (thesis 9.6), so it is granted whatever this term's vote was.
   */
  protected mayGrantVote(from: NodeId, message: VoteRequest): boolean {
    return this.vote === from || (this.vote === null && this.lead === null) || (message.preVote && message.term > this.term);
  }

  /**
   * A granted vote leaves only once it is durable (Figure 2: persistent state is updated on
   * stable storage before responding): a node that crashed and forgot it could vote again
   * in the same term, and elect a second leader.
   */
  protected sendGrantedVote(to: NodeId, response: VoteResponse): void {
    this.sendAfterPersist(to, response);
  }

  /**
   * A vote request this node ignores (`step`: from outside its configuration, with a log
   * behind its own) still shows a term in use, and with no leader known this node takes it,
   * as a follower whose election timer runs on. Such a candidate may be a voter in the stale
   * configuration of a node whose vote this one needs, and take that vote, term after term,
   * in terms this one never heard of: its own campaigns then ask in terms already voted in,
   * and lose every round (simulator seed 464 of `--groups 8 --nodes 4 --replicas 3`, PreVote
   * off). Its timer is not reset, nor is a vote or a leader changed: only the term moves, as
   * any message of a later term would move it.
   */
  /**
   * A leader that let a removed node go told it the commit index once (Replicator.sync's
   * last word); if that was lost, the node never learns its removal committed, nor applies
   * the entries before it, a split among them (whose new range then lacks its replica: seed
   * 345 of `--groups 4 --splits 3 --nodes 5 --replicas 3`), and campaigns on. Its vote
   * request says where its log ends: where that matches this leader's log, the node is told
   * the commit index again, up to there, in this leader's term (when its own is no later).
   */
  private tellRemovedCommit(from: NodeId, message: VoteRequest): void {
    const itsTerm = message.preVote ? message.term - 1 : message.term;
    if (itsTerm > this.term || this.log.term(message.lastIndex) !== message.lastTerm) return;
    this.send(from, { type: "heartbeat", term: this.term, commit: Math.min(message.lastIndex, this.log.commitIndex), readRound: 0 });
  }

  private adoptTermQuietly(term: number): void {
    this.enterTerm(term);
    if (this.role !== "follower") this.leaveRole();
  }

  private becomeFollower(term: number, lead: NodeId | null): void {
    if (term !== this.term) this.enterTerm(term);
    this.quiescence.reset();
    this.leaveRole();
    this.lead = lead;
    this.resetElectionTimer();
  }

  /** A later term, with no vote cast in it yet. */
  private enterTerm(term: number): void {
    assert(term > this.term, `term went backwards: ${this.term} -> ${term}`);
    this.term = term;
    this.vote = null;
  }

  /** Whatever it led or campaigned for is over: it follows. */
  private leaveRole(): void {
    this.role = "follower";
    this.replicator.clear();
    this.reads.reset();
    this.transfer.forget();
    this.broadcastPending = false;
  }

  protected becomeLeader(): void {
    assert(this.role === "candidate", `only a candidate becomes leader, not a ${this.role}`);
    assert(!this.quiescence.quiet, "a quiet engine campaigned");
    this.role = "leader";
    this.lead = this.id;
    this.heartbeatElapsed = 0;
    this.electionElapsed = 0;
    this.replicator.clear();
    this.replicator.sync();
    this.reconfiguration.newTerm();
    this.uncommittedBytes = 0;
    this.reads.reset();
    this.transfer.forget();
    // Section 8 / 5.4.2: an empty entry of the new term lets the leader commit everything
    // before it, and tells it what is committed (needed before serving reads).
    this.appendEntry(EMPTY);
    this.transfer.releaseHeld();
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTicks = this.config.electionTicks + this.prng.int(0, this.config.electionTicks - 1);
  }

  private followLeader(leader: NodeId): void {
    if (this.role !== "follower") this.becomeFollower(this.term, leader);
    this.lead = leader;
    this.electionElapsed = 0;
    this.transfer.releaseHeld();
  }

  // ---- replication (section 5.3) ----

  private appendProposal(data: Uint8Array): void {
    this.uncommittedBytes += data.length;
    this.appendEntry(data);
  }

  private appendEntry(data: Uint8Array, membership: Membership | null = null): void {
    const index = this.log.lastIndex + 1;
    const entry: LogEntry = membership === null ? { index, term: this.term, data } : { index, term: this.term, data, kind: "config" };
    this.log.appendNew([entry]);
    this.replicator.own.maybeUpdate(entry.index);
    this.broadcastPending = true;
    if (membership !== null) {
      this.configLog.push({ index, term: this.term, membership });
      this.refreshMembership();
    }
    // With other voters, the leader's own append cannot move the quorum's match. Alone, it
    // commits what is durable (see advance): this entry only once the driver has written it.
    if (this.selfQuorum) this.maybeCommit();
  }

  private handleAppend(from: NodeId, message: AppendRequest): void {
    this.followLeader(from);
    if (this.snapshots.awaiting > 0) return this.snapshots.askFor(from, message.prevIndex);
    if (message.prevIndex < this.log.commitIndex) {
      this.sendAfterPersist(from, { type: "append-response", term: this.term, reject: false, index: this.log.commitIndex, hintIndex: 0, hintTerm: 0 });
      return;
    }
    const matched = this.appendFromLeader(message);
    if (matched !== null) {
      this.log.commitTo(Math.min(message.commit, matched));
      this.reconfiguration.reconcile(message.entries);
      this.sendAfterPersist(from, { type: "append-response", term: this.term, reject: false, index: matched, hintIndex: 0, hintTerm: 0 });
      return;
    }
    const hint = this.log.findConflictByTerm(Math.min(message.prevIndex, this.log.lastIndex), message.prevTerm);
    this.sendAfterPersist(from, { type: "append-response", term: this.term, reject: true, index: message.prevIndex, hintIndex: hint.index, hintTerm: hint.term });
  }

  /**
   * Figure 2, AppendEntries receiver, steps 2 to 4: the log must hold `prevIndex` at
   * `prevTerm`; an entry that conflicts with a new one is deleted with all that follow it,
   * and the new entries are appended. Returns the last index the leader's entries match,
   * or null when `prevIndex` does not match.
   */
  protected appendFromLeader(message: AppendRequest): number | null {
    return this.log.tryAppend(message.prevIndex, message.prevTerm, message.entries);
  }

  // ---- snapshots (section 7) ----

  private handleSnapshotChunk(from: NodeId, message: SnapshotChunk): void {
    this.followLeader(from);
    this.snapshots.receiveChunk(from, message);
  }

  /**
   * A snapshot through an index this node has already committed brings nothing (section
   * 7): installing it would discard committed entries after it, and move what is applied
   * backwards. It is answered like a stale append.
   */
  protected snapshotAlreadyCommitted(index: number): boolean {
    return index <= this.log.commitIndex;
  }

  /**
   * Figure 13, InstallSnapshot receiver, step 6: when the log holds the snapshot's last
   * entry, the entries after it are kept; only otherwise does the snapshot replace the log.
   */
  protected logHoldsSnapshot(snapshot: Snapshot): boolean {
    return this.log.matchTerm(snapshot.index, snapshot.term);
  }

  /**
   * The state machine has applied every entry through `index` and captured its state as
   * `data`, which the driver has made durable. The engine keeps it to send to followers that
   * fall behind, and discards its log through `index`. Returns the snapshot, or null when
   * the engine already holds one at or after `index`.
   */
  compact(index: number, data: Uint8Array): Snapshot | null {
    return this.snapshots.compact(index, data);
  }

  /**
   * A snapshot for followers that this node's log is not compacted behind (Engine.offerSnapshot):
   * at the log's start, a full capture of the held first state it only names; past it, one
   * taken while the driver keeps its log. Sendable now, the log unchanged.
   */
  offerSnapshot(index: number, data: Uint8Array): Snapshot | null {
    return this.snapshots.offer(index, data);
  }

  snapshotWanted(): number {
    return this.role === "leader" ? this.replicator.snapshotWanted() : 0;
  }

  compactionFloor(): CompactionFloor | null {
    if (this.role !== "leader") return null;
    return this.replicator.compactionFloor();
  }

  private handleAppendResponse(from: NodeId, message: AppendResponse): void {
    if (this.role !== "leader") return;
    const acknowledged = this.replicator.appendAnswered(from, message);
    if (acknowledged === null) return;
    const { pr, wasPaused } = acknowledged;
    this.transfer.caughtUp(from, pr);
    if (this.role !== "leader") return; // a removed leader that handed over stepped down
    if (this.maybeCommit()) {
      this.broadcastPending = true;
      // The commit may have settled a configuration: this leader removed itself and handed
      // over, or the sender was removed and is no longer tracked.
      if (this.role !== "leader" || this.replicator.progress.get(from) !== pr) return;
    } else if (wasPaused) this.replicator.sendAppend(from);
    this.replicator.fill(from, pr);
  }

  private handleHeartbeatResponse(from: NodeId, message: HeartbeatResponse): void {
    // A quiet leader drops the answers to its last heartbeat: they may not extend a lease
    // it gave up, nor send anyone appends.
    if (this.role !== "leader" || this.quiescence.quiet) return;
    const pr = this.replicator.heartbeatAnswered(from);
    if (pr === undefined) return;
    if (message.readRound > 0) {
      const sentAt = this.reads.sentAt(message.readRound);
      if (sentAt !== undefined && sentAt > pr.leaseAckTick) pr.leaseAckTick = sentAt;
      this.reads.acknowledge(from, message.readRound);
    }
  }

  private handleSnapshotResponse(from: NodeId, message: SnapshotChunkResponse): void {
    if (this.role !== "leader") return;
    this.replicator.snapshotAnswered(from, message);
  }

  /**
   * Advances the commit index to the highest index a quorum holds, when the commit rule
   * allows it (`commitsByCounting`).
   */
  private maybeCommit(): boolean {
    const quorumIndex = this.committableThrough(this.replicator.quorumMatch());
    if (quorumIndex <= this.log.commitIndex) return false;
    if (!this.commitsByCounting(quorumIndex)) return false;
    const previous = this.log.commitIndex;
    this.log.commitTo(quorumIndex);
    for (const entry of this.log.slice(previous + 1, quorumIndex)) {
      // Only proposals count toward the bound (appendProposal); configuration entries do not.
      if (entry.term === this.term && entry.kind !== "config") this.uncommittedBytes = Math.max(0, this.uncommittedBytes - entry.data.length);
    }
    if (this.log.term(previous) !== this.term && this.reads.hasReadsAwaitingTermCommit) {
      for (const read of this.reads.takeReadsAwaitingTermCommit()) this.handleReadRequest(read.from, read.requestId, read.lease);
    }
    this.reconfiguration.afterCommit();
    return true;
  }

  /**
   * What a quorum holds is what may commit (section 5.3), configuration entries included:
   * one commits like any other entry once a majority of the configuration it is appended
   * under holds it (thesis 4.1), whether or not anyone has applied it.
   */
  protected committableThrough(quorumIndex: number): number {
    return quorumIndex;
  }

  /**
   * The commit rule (section 5.4.2, Figure 8): a leader commits an entry by counting the
   * replicas that hold it only if the entry is of its own term. An entry of an earlier term
   * on a majority can still be overwritten by a leader that never saw it; it is committed
   * indirectly, with the first entry of this term after it.
   */
  protected commitsByCounting(index: number): boolean {
    return this.log.term(index) === this.term;
  }

  // ---- linearizable reads: ReadIndex (thesis 6.4) ----

  /**
   * A read asked of this leader, by itself or by a follower, answered with a read index
   * (thesis 6.4): the commit index (step 2), once this leader has committed an entry of its
   * term (step 1) and a quorum has confirmed that it still leads (step 3) — by a round of
   * heartbeats or, when the asker accepts it (`lease`) and the configuration allows leases,
   * by its lease (6.4.1).
   */
  protected handleReadRequest(from: NodeId, requestId: number, lease: boolean): void {
    if (this.log.term(this.log.commitIndex) !== this.term) {
      this.reads.awaitTermCommit({ requestId, from, lease });
      return;
    }
    if (lease && this.config.leaseReads && this.reads.leaseValid(this.tickCount)) {
      // Thesis 6.4.1: no other leader can exist before the lease runs out, so the commit
      // index is current without asking anyone.
      this.releaseRead(from, requestId, this.log.commitIndex);
      return;
    }
    if (this.selfQuorum) {
      this.releaseRead(from, requestId, this.log.commitIndex);
      return;
    }
    this.reads.awaitConfirmation(from, requestId, this.log.commitIndex, this.tickCount);
  }

  /** Answers a read with its read index: to this node's driver, or to the follower that forwarded it. */
  protected releaseRead(from: NodeId, requestId: number, index: number): void {
    if (from === this.id) this.readStates.push({ requestId, index });
    else this.send(from, { type: "read-index-response", term: this.term, requestId, index });
  }

  // ---- output ----

  /** A leader's heartbeat to every follower. With leases, every heartbeat opens a round, so each acknowledgement dates itself. */
  private heartbeat(): void {
    this.replicator.broadcastHeartbeat(this.config.leaseReads ? this.reads.newRound(this.tickCount) : this.reads.lastRound);
  }

  protected send(to: NodeId, message: RaftMessage): void {
    this.messages.push({ to, message });
  }

  private sendAfterPersist(to: NodeId, message: RaftMessage): void {
    this.messagesAfterPersist.push({ to, message });
  }

  private hardStateChanged(): boolean {
    const saved = this.savedHardState;
    return saved.term !== this.term || saved.vote !== this.vote || saved.commit !== this.log.commitIndex || (saved.forgot ?? 0) !== this.forgotOwed();
  }

  /** RaftHardState.forgot while it is owed (the commit index has not reached it), else 0. */
  protected forgotOwed(): number {
    return this.log.commitIndex < this.forgot ? this.forgot : 0;
  }

  hasReady(): boolean {
    // A leader's snapshot replaces the log: it is handed out only when nothing else is
    // outstanding, and nothing follows it until it is advanced.
    if (this.outstanding.length > 0 && (this.snapshots.toInstall !== null || (this.outstanding[this.outstanding.length - 1] as Ready<RaftMessage, RaftHardState>).snapshot !== null)) return false;
    return (
      this.broadcastPending ||
      this.reads.hasBatchedRound ||
      this.messages.length > 0 ||
      this.messagesAfterPersist.length > 0 ||
      this.readStates.length > 0 ||
      this.log.hasUnstable ||
      this.snapshots.toInstall !== null ||
      (this.log.hasCommittedToApply && this.snapshots.awaiting === 0) ||
      this.hardStateChanged()
    );
  }

  ready(): Ready<RaftMessage, RaftHardState> {
    assert(this.snapshots.toInstall === null || this.outstanding.length === 0, "a snapshot Ready while others are outstanding");
    const readRound = this.reads.takeBatchedRound();
    if (readRound !== 0) this.replicator.broadcastHeartbeat(readRound);
    if (this.broadcastPending) {
      this.broadcastPending = false;
      this.replicator.broadcastAppend();
    }
    const forgot = this.forgotOwed();
    const hardState = this.hardStateChanged() ? { term: this.term, vote: this.vote, commit: this.log.commitIndex, ...(forgot > 0 ? { forgot } : {}) } : null;
    // etcd's MustSync: a new term or vote, or entries, must be durable before what depends
    // on them leaves; a commit index alone need not be (it is learned again after a crash).
    const termOrVote = hardState !== null && (hardState.term !== this.savedHardState.term || hardState.vote !== this.savedHardState.vote);
    if (hardState !== null) this.savedHardState = hardState;
    // A node waiting for a snapshot holds no state its log's entries could apply to.
    const committedEntries = this.snapshots.awaiting > 0 ? [] : this.takeEntriesToApply();
    const entries = this.log.takeUnstable();
    const ready: Ready<RaftMessage, RaftHardState> = {
      hardState,
      entries,
      mustSync: termOrVote || entries.length > 0 || this.snapshots.toInstall !== null,
      snapshot: this.snapshots.toInstall,
      messages: this.messages,
      messagesAfterPersist: this.messagesAfterPersist,
      committedEntries,
      readStates: this.readStates,
    };
    this.messages = [];
    this.messagesAfterPersist = [];
    this.readStates = [];
    this.snapshots.toInstall = null;
    this.outstanding.push(ready);
    return ready;
  }

  /**
   * The entries the state machine may apply (Figure 2, rules for all servers: apply what is
   * committed, in order): the next committed ones not yet handed out, a bounded batch.
   */
  protected takeEntriesToApply(): LogEntry[] {
    return this.log.takeCommitted(this.config.applyEntriesPerReadyMax);
  }

  advance(ready: Ready<RaftMessage, RaftHardState>): void {
    assert(ready === this.outstanding[0], "advance() with a Ready that is not the oldest outstanding one");
    this.outstanding.shift();
    // Emptied, a new array: the old one keeps the room it grew to (152 bytes), an engine per range.
    if (this.outstanding.length === 0) this.outstanding = [];
    const last = ready.committedEntries[ready.committedEntries.length - 1];
    if (last !== undefined) this.log.appliedTo(last.index);
    this.log.stableTo(ready.entries);
    // The leader's own entries count toward the quorum once durable (thesis 10.2.1: it may
    // write in parallel with its followers, and commit without its own write if they are a
    // majority, but never count a write it has not made).
    if (this.role === "leader" && this.maybeCommit()) this.broadcastPending = true;
  }

  status(): EngineStatus {
    const learner = this.role === "follower" && this.current.learners.includes(this.id);
    return {
      id: this.id,
      role: learner ? "learner" : this.role,
      term: this.term,
      leader: this.lead,
      commitIndex: this.log.commitIndex,
      lastIndex: this.log.lastIndex,
      snapshotIndex: this.log.snapshotIndexValue,
    };
  }

  replication(): readonly ReplicationProgress[] | null {
    if (this.role !== "leader") return null;
    return this.replicator.report();
  }

  entryTerm(index: number): number | null {
    return this.log.term(index);
  }

  entry(index: number): LogEntry | null {
    if (index < this.log.firstIndex || index > this.log.lastIndex) return null;
    return this.log.slice(index, index)[0] ?? null;
  }
}

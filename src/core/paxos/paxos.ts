import { assert } from "../common/assert.js";
import { InvalidInputError, MembershipChangeInProgressError, NotLeaderError, NotMemberError, OverloadedError } from "../common/errors.js";
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
import { encodeMembership, hasMajority, isMember, isVoter, majorityGroups, members } from "../engine/membership.js";
import { ballotNode, PAXOS_NODE_ID_MAX } from "./ballot.js";
import { DEFAULT_PAXOS_CONFIG, leaseTicks, validatePaxosConfig, type PaxosConfig } from "./config.js";
import { bootstrapMembership, ConfigHistory, nextMembership } from "./configs.js";
import { isHole, PaxosLog } from "./log.js";
import type { Accepted, HeartbeatResponse, Nack, PaxosHardState, PaxosMessage, Prepare, PromiseReply, SnapshotChunkResponse } from "./messages.js";
import type { PaxosMutant } from "./mutants.js";
import { Phase1, Probe } from "./phase1.js";
import type { Progress } from "./progress.js";
import { Proposer } from "./proposer.js";
import { Replication } from "./replication.js";
import { Acceptor } from "./acceptor.js";
import { ReadOnly } from "../raft/read-only.js";

/**
 * Multi-Paxos as a pure state machine, driven through the engine contract: every node is an
 * acceptor, a learner, and — while it leads — the distinguished proposer of Lamport's "Paxos
 * Made Simple" (section 3), with the stable-leader shape of PhxPaxos and OmniPaxos: one
 * phase 1 covers every slot from the leader's first unchosen one on, then each new command
 * takes phase 2 alone, pipelined.
 *
 * Acceptor rules (section 2.2): promise a ballot only above the one promised; accept a slot
 * only at a ballot at least the one promised (accepting raises the promise); persist both
 * before answering (promises and acceptances are `messagesAfterPersist`). Slots are
 * independent: an acceptor may accept slot 9 before slot 8, leaving a hole.
 *
 * Proposer rules: phase 1 at ballot b for every slot from `from` on, answered by a majority
 * of the configuration governing `from`; then per slot the value accepted at the highest
 * ballot, a no-op where none was; a slot is chosen once a majority of its configuration
 * accepted it at b. Only the contiguous chosen prefix is applied.
 *
 * Configurations follow the α rule (see configs.ts); a leader leads one configuration (its
 * "epoch") at a time, and runs phase 1 again, at a new ballot, when its next slot is
 * governed by the next configuration.
 *
 * This class is the engine's core: the roles and their transitions (follower, precandidate,
 * candidate, leader), time, the dispatch of every message, the routing of proposals and
 * reads, leadership transfer, membership, compaction, and the Ready cycle. The protocol's
 * parts are units it owns, each in its own file:
 * - acceptor.ts: this node's acceptor and learner (promises, accepts, the prefix, learning
 *   the chosen prefix, a leader's snapshot);
 * - phase1.ts: the candidate's probe and its phase 1 tally;
 * - proposer.ts: the leader's log (which value in which slot, the α window, padding, the
 *   chosen prefix, the bound on uncommitted bytes);
 * - replication.ts: the leader's phase 2 toward the other acceptors (accepts, heartbeats,
 *   snapshot chunks, their answers, the quorum questions);
 * - Raft's ReadOnly (read-only.ts): the read-index queue and the lease.
 */
export class PaxosEngine implements Engine<PaxosMessage, PaxosHardState> {
  readonly id: NodeId;
  private readonly config: PaxosConfig;
  private readonly prng: Prng;
  private readonly mutant: PaxosMutant | null;
  private readonly log: PaxosLog;
  private readonly configs: ConfigHistory;
  /** configs.current(commit), recomputed when either changes. */
  private current: Membership;

  /** This node's acceptor and learner: its promise (on a leader or candidate, its own ballot), what it accepted and learned. */
  private readonly acceptor: Acceptor;
  private role: Role = "follower";
  private lead: NodeId | null = null;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTicks = 0;
  private tickCount = 0;
  /** With lease reads, a restarted node refuses promises for one election timeout (it may have acknowledged a lease). */
  private startupGuard: boolean;

  // ---- candidate ----
  /** The latest probe this node ran (a precandidate's). */
  private probe: Probe | null = null;
  private phase1: Phase1 | null = null;
  /** The candidate runs phase 1 again as a leader moving to the next configuration: it keeps its clients' proposals. */
  private renewing = false;

  // ---- leader ----
  /** Which value this leader writes in which slot (its epoch, the α window, the bound on uncommitted bytes), and which are chosen. */
  private readonly proposer: Proposer;
  /** What this leader knows of each acceptor, and its accepts, heartbeats and snapshot chunks to them. */
  private readonly acceptors: Replication;
  private broadcastPending = false;
  private transferTarget: NodeId | null = null;
  private transferElapsed = 0;
  /** Proposals held while no leader can take them here (a transfer, a new phase 1); bounded. */
  private heldProposals: Uint8Array[] = [];
  private heldProposalBytes = 0;
  /**
   * The node this one last handed leadership to, until it hears from a leader or runs phase
   * 1 itself: once it steps down, the proposals it holds and those still forwarded to it go
   * there. A leader that removed itself never hears from the next configuration's leader,
   * so without this they would wait on it for ever (and its clients' writes time out).
   */
  private handedTo: NodeId | null = null;

  // ---- reads ----
  /**
   * The read-index queue and the lease, Raft's (thesis 6.4): a Paxos leader's reads wait for
   * the values phase 1 recovered to be chosen (where Raft's wait for the term's first
   * commit), then for a majority of its epoch to confirm its ballot.
   */
  private readonly reads: ReadOnly;

  // ---- snapshots ----
  private snapshot: Snapshot | null;
  private snapshotToInstall: Snapshot | null = null;

  // ---- output ----
  private messages: Outbound<PaxosMessage>[] = [];
  private messagesAfterPersist: Outbound<PaxosMessage>[] = [];
  private readStates: ReadState[] = [];
  private savedHardState: PaxosHardState;
  /** Readies handed out and not yet advanced, oldest first (the driver may pipeline them). */
  private readonly outstanding: Ready<PaxosMessage, PaxosHardState>[] = [];

  constructor(options: EngineOptions<PaxosHardState>, config: PaxosConfig = DEFAULT_PAXOS_CONFIG, mutant: PaxosMutant | null = null) {
    this.id = options.id;
    assert(options.id > 0 && options.id <= PAXOS_NODE_ID_MAX, `Paxos node ids go up to ${PAXOS_NODE_ID_MAX}, got ${options.id}`);
    this.config = validatePaxosConfig(config);
    assert(options.peers.length === 0 || options.peers.includes(options.id), `node ${options.id} is not among the bootstrap voters ${options.peers.join(",")}`);
    assert(new Set(options.peers).size === options.peers.length, "voter ids must be unique");
    this.prng = new Prng(options.seed);
    this.mutant = mutant;
    const hard = options.durable.hardState;
    this.log = new PaxosLog(options.durable, hard?.commit ?? 0, options.appliedIndex);
    this.snapshot = options.durable.snapshot;
    const base = this.snapshot?.membership ?? bootstrapMembership(options.peers);
    if (this.snapshot !== null && this.snapshot.membership === undefined) this.snapshot = { ...this.snapshot, membership: base };
    this.configs = new ConfigHistory(this.config.windowSlots, base, this.snapshot?.index ?? 0);
    for (const entry of options.durable.entries) this.configs.onWrite(entry, null);
    // An accepted entry on disk proves a promise at least that high, even if the hard state
    // written with it was lost in a crash.
    this.acceptor = new Acceptor(Math.max(hard?.promised ?? 0, this.log.maxBallot()), this.log, this.config, mutant, {
      superseded: () => {
        if (this.role !== "follower") this.becomeFollower(null);
        this.lead = null;
      },
      follow: (leader) => this.followLeader(leader),
      inLease: (from, transfer) => this.inLease(from, transfer),
      promisedCandidate: () => {
        this.electionElapsed = 0;
      },
      current: () => this.current,
      write: (entry) => this.writeEntry(entry),
      commitTo: (index) => this.commitTo(index),
      install: (snapshot) => this.installSnapshot(snapshot),
      send: (to, message) => this.send(to, message),
      sendAfterPersist: (to, message) => this.sendAfterPersist(to, message),
    });
    this.current = this.configs.current(this.log.commitIndex);
    this.proposer = new Proposer(this.config, this.log, this.configs, {
      ballot: () => this.acceptor.promised,
      write: (entry) => this.writeEntry(entry),
    });
    this.acceptors = new Replication(this.id, this.config, this.log, {
      ballot: () => this.acceptor.promised,
      written: () => this.proposer.written,
      snapshot: () => this.snapshot,
      send: (to, message) => this.send(to, message),
      matchAdvanced: () => {
        if (this.maybeCommit()) this.broadcastPending = true;
      },
    });
    this.savedHardState = { promised: this.acceptor.promised, commit: this.log.commitIndex };
    this.reads = new ReadOnly(this.id, this.config.electionTicks, leaseTicks(this.config), {
      quorumConfirms: (acks) => hasMajority(this.proposer.epoch as Membership, (id) => acks.has(id)),
      leaseAcknowledgedAt: () => this.acceptors.leaseAcknowledgedAt(this.proposer.epoch as Membership, this.tickCount),
      release: (from, requestId, index) => this.releaseRead(from, requestId, index),
    });
    this.startupGuard = this.config.leaseReads;
    this.resetElectionTimer();
  }

  // ---- time ----

  tick(): void {
    this.tickCount++;
    if (this.role === "leader") this.tickLeader();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) this.startupGuard = false;
    if (this.electionElapsed < this.randomizedElectionTicks) return;
    if (!this.mayCampaign()) {
      // A learner, a removed node, one that knows no configuration yet: it forgets a silent
      // leader (and its lease) and waits to be brought up to date.
      this.electionElapsed = this.randomizedElectionTicks;
      this.lead = null;
      return;
    }
    this.electionElapsed = 0;
    this.campaign(this.config.probe && !this.renewing, false);
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.transferTarget !== null && ++this.transferElapsed >= this.config.electionTicks) {
      // The target did not take over within an election timeout: give up, and go on.
      this.transferTarget = null;
      this.handedTo = null;
      this.releaseHeldProposals();
      this.fillLog();
    }
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum && !this.acceptors.quorumRecentlyActive(this.proposer.epoch as Membership)) {
        // A leader cut off from a quorum steps down, so clients stop waiting on it.
        this.becomeFollower(null);
        return;
      }
      // Removed members that were silent this round are dropped before the round restarts.
      this.syncProgress(true);
      this.acceptors.startActivityRound();
    }
    this.maybeAutoPromote();
    this.maybeNextEpoch();
    if (this.role !== "leader") return;
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.acceptors.broadcastHeartbeat(this.config.leaseReads ? this.reads.newRound(this.tickCount) : this.reads.lastRound);
    }
    this.acceptors.resendStalledSnapshots();
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTicks = this.config.electionTicks + this.prng.int(0, this.config.electionTicks - 1);
  }

  // ---- messages ----

  step(from: NodeId, message: PaxosMessage): void {
    switch (message.type) {
      case "prepare":
        return this.acceptor.prepare(from, message);
      case "promise":
        return this.handlePromise(from, message);
      case "nack":
        return this.handleNack(from, message);
      case "accept":
      case "heartbeat":
      case "snapshot":
        if (!this.acceptor.fromLeader(from, message.ballot)) return;
        if (message.type === "accept") return this.acceptor.accept(from, message);
        if (message.type === "heartbeat") return this.acceptor.heartbeat(from, message);
        return this.acceptor.snapshotChunk(from, message);
      case "timeout-now":
        // The leader handed over: run phase 1 at once, saying why, so acceptors that still
        // hear from it promise all the same. Phase 1 starts after the leader's chosen prefix,
        // not one a lost heartbeat left behind: the leader may have compacted through it and
        // would refuse as "behind" — for ever when the leader was leaving the voters, so the
        // only other voters of the old configuration (simulator seed 75 reconfiguration: a
        // change to voters {3} left node 3 probing node 1 for the rest of the run).
        if (message.ballot !== this.acceptor.promised || from !== this.lead || this.role !== "follower") return;
        if (message.commit !== undefined) this.acceptor.learn(message.commit);
        if (this.mayCampaign()) this.campaign(false, true);
        return;
      case "accepted":
        return this.handleAccepted(from, message);
      case "heartbeat-response":
        return this.handleHeartbeatResponse(from, message);
      case "propose":
        for (const data of message.data) {
          if (this.role === "leader" && this.transferTarget === null) {
            if (this.proposer.admits(data)) this.proposer.enqueue(data);
          } else this.holdProposal(data);
        }
        if (this.role === "leader") this.fillLog();
        // Proposals from the node this one follows come from a leader that handed over and
        // stepped down: they wait here for the next leader rather than go back to it.
        else if (this.role === "follower" && from !== this.lead) this.releaseHeldProposals();
        return;
      case "read-index":
        if (this.role === "leader") this.handleReadRequest(from, message.requestId, message.lease === true);
        return;
      case "read-index-response":
        this.readStates.push({ requestId: message.requestId, index: message.index });
        return;
      case "snapshot-response":
        return this.handleSnapshotResponse(from, message);
    }
  }

  private followLeader(leader: NodeId): void {
    if (this.role !== "follower") this.becomeFollower(leader);
    this.lead = leader;
    this.handedTo = null;
    this.electionElapsed = 0;
    this.releaseHeldProposals();
  }

  /**
   * An acceptor that heard from a leader within an election timeout promises no one else:
   * a node that cannot hear the leader must not depose it (and the leader's lease rests on
   * it). Its own leader may prepare again (a new configuration), and a transfer is honoured.
   */
  private inLease(from: NodeId, transfer: boolean): boolean {
    if (!this.config.checkQuorum || transfer || from === this.lead) return false;
    return (this.lead !== null || this.startupGuard) && this.electionElapsed < this.config.electionTicks;
  }

  // ---- phase 1: candidate ----

  /** Whether this node may run phase 1: a voter of the configuration governing its first unchosen slot. */
  private mayCampaign(): boolean {
    return isVoter(this.configs.configFor(this.log.commitIndex + 1), this.id);
  }

  private campaign(probe: boolean, transfer: boolean): void {
    this.resetElectionTimer();
    this.handedTo = null;
    const epoch = this.configs.configFor(this.log.commitIndex + 1);
    const from = this.log.commitIndex + 1;
    const voters = [...new Set([...epoch.voters, ...epoch.outgoing])].filter((id) => id !== this.id);
    if (probe) {
      this.role = "precandidate";
      this.lead = null;
      const probe = new Probe(this.acceptor.nextBallot(this.id), this.id);
      this.probe = probe;
      if (probe.won(epoch)) return this.campaign(false, false);
      for (const peer of voters) this.send(peer, { type: "prepare", ballot: probe.ballot, from, probe: true });
      return;
    }
    const ballot = this.acceptor.nextBallot(this.id);
    if (this.role === "leader") this.leaveLeadership();
    this.role = "candidate";
    this.lead = null;
    this.acceptor.promiseOwn(ballot);
    this.phase1 = new Phase1(ballot, from, epoch, this.mutant === "skip-phase1");
    const own = from <= this.log.lastIndex ? this.log.acceptedPage(from, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY).entries : [];
    this.phase1.recordOwn(this.id, own, this.log.commitIndex);
    if (this.phase1.complete) return this.becomeLeader();
    // The prepares carry this node's promise to itself, which must be durable first.
    const prepare: Prepare = transfer ? { type: "prepare", ballot, from, probe: false, transfer } : { type: "prepare", ballot, from, probe: false };
    for (const peer of voters) this.sendAfterPersist(peer, prepare);
  }

  private handlePromise(from: NodeId, m: PromiseReply): void {
    if (m.probe) {
      if (this.role !== "precandidate" || m.ballot !== this.probe?.ballot) return;
      if (this.probe.grant(from, this.configs.configFor(this.log.commitIndex + 1))) this.campaign(false, false);
      return;
    }
    const phase1 = this.phase1;
    if (this.role !== "candidate" || phase1 === null) return;
    // A promise counts only toward the ballot it answers (MyPaxos #18 counted an older one).
    const mine = m.ballot === phase1.ballot || (this.mutant === "count-stale-promise" && ballotNode(m.ballot) === this.id && m.ballot < phase1.ballot);
    if (!mine) return;
    const page = this.mutant === "count-stale-promise" && m.ballot !== phase1.ballot ? { ...m, from: phase1.expected(from) } : m;
    if (!phase1.record(from, page)) return;
    // Phase 1 is making progress: a long report is not a reason to start over at a new ballot.
    this.electionElapsed = 0;
    if (!m.complete) this.send(from, { type: "prepare", ballot: phase1.ballot, from: m.through + 1, probe: false });
    if (phase1.complete) this.becomeLeader();
  }

  private handleNack(from: NodeId, m: Nack): void {
    this.acceptor.noteBallot(m.promised);
    if (m.probe) {
      if (this.role !== "precandidate" || m.ballot !== this.probe?.ballot) return;
      if (!this.probe.refuse(from, this.configs.configFor(this.log.commitIndex + 1))) this.becomeFollower(null);
      return;
    }
    if (m.ballot !== this.acceptor.promised || ballotNode(m.ballot) !== this.id) return;
    if (this.role === "candidate" && this.phase1 !== null) {
      this.phase1.refuse(from);
      if (m.promised > this.acceptor.promised || this.phase1.hopeless) this.becomeFollower(null);
      return;
    }
    // A leader that learns of a higher ballot stops proposing.
    if (this.role === "leader" && m.promised > this.acceptor.promised) this.becomeFollower(null);
  }

  private becomeLeader(): void {
    const phase1 = this.phase1 as Phase1;
    assert(this.role === "candidate" && phase1.ballot === this.acceptor.promised, "only a candidate at its ballot becomes leader");
    this.role = "leader";
    this.lead = this.id;
    this.phase1 = null;
    this.renewing = false;
    this.heartbeatElapsed = 0;
    this.electionElapsed = 0;
    this.transferTarget = null;
    this.reads.reset();
    this.proposer.start(phase1, this.mutant === "noop-fill-without-phase1");
    this.acceptors.clear();
    this.syncProgress();
    this.releaseHeldProposals();
    this.fillLog();
    this.broadcastPending = true;
    // The acceptors learn at once who leads (and start its lease), not a heartbeat later.
    this.acceptors.broadcastHeartbeat(this.config.leaseReads ? this.reads.newRound(this.tickCount) : this.reads.lastRound);
  }

  /**
   * Ends this node's leadership, keeping the proposals it has not written (they go to the
   * next leader, or back into its own log if it leads again): a deposed leader's clients see
   * a pause, not a refusal.
   */
  private leaveLeadership(): void {
    for (const data of this.proposer.stop()) this.holdProposal(data);
    this.acceptors.clear();
    this.reads.reset();
    this.transferTarget = null;
    this.broadcastPending = false;
  }

  private becomeFollower(lead: NodeId | null): void {
    if (this.role === "leader") this.leaveLeadership();
    this.role = "follower";
    this.lead = lead;
    this.phase1 = null;
    this.renewing = false;
    this.resetElectionTimer();
    // A leader that handed over and now learns of a higher ballot passes on what it holds.
    if (lead === null && this.handedTo !== null) this.releaseHeldProposals();
  }

  // ---- phase 2: leader ----

  /** Gives waiting values their slots (see Proposer.fill), while this node leads and hands over to no one. */
  private fillLog(): void {
    if (this.role !== "leader" || this.transferTarget !== null) return;
    if (!this.proposer.fill()) return;
    (this.acceptors.get(this.id) as Progress).update(this.proposer.written);
    this.broadcastPending = true;
    // A slot this leader just wrote needs other acceptors (or, alone, its own durable write:
    // see advance); only slots phase 1 found chosen can commit now.
    if (this.proposer.knownChosenThrough > this.log.commitIndex) this.maybeCommit();
  }

  /** Whether the padding after a configuration entry has a slot to fill now. */
  private canPad(): boolean {
    return this.role === "leader" && this.transferTarget === null && this.proposer.canPad();
  }

  /** Writes a slot of this node's log, keeping the configuration history in step. */
  private writeEntry(entry: LogEntry): void {
    const previous = this.log.entry(entry.index);
    this.log.write(entry);
    if (this.configs.onWrite(entry, previous)) this.refreshMembership();
  }

  private handleAccepted(from: NodeId, m: Accepted): void {
    if (this.role !== "leader" || m.ballot !== this.acceptor.promised) return;
    const pr = this.acceptors.accepted(from, m);
    if (pr === undefined) return;
    if (from === this.transferTarget && pr.match >= this.proposer.written) this.handOver(from);
    if (this.role !== "leader") return;
    if (this.maybeCommit()) this.broadcastPending = true;
    this.acceptors.fillPipeline(from, pr);
  }

  private handleHeartbeatResponse(from: NodeId, m: HeartbeatResponse): void {
    if (this.role !== "leader" || m.ballot !== this.acceptor.promised) return;
    const pr = this.acceptors.heartbeatAnswered(from, m, this.tickCount);
    if (pr === undefined) return;
    if (m.readRound > 0) {
      const sentAt = this.reads.sentAt(m.readRound);
      if (sentAt !== undefined && sentAt > pr.leaseAckTick) pr.leaseAckTick = sentAt;
      this.reads.acknowledge(from, m.readRound);
    }
  }

  /**
   * Advances the chosen prefix: slot x is chosen once a majority of every group of the
   * configuration governing x holds it at this ballot (or some acceptor reported it chosen
   * in phase 1). Configurations are constant over ranges of slots, so each range is one
   * quorum count.
   */
  private maybeCommit(): boolean {
    if (this.role !== "leader") return false;
    const before = this.log.commitIndex;
    // The leader's own acceptances count only once durable: the driver pipelines Readies,
    // so a chosen prefix announced now may leave before the leader's write of it lands
    // (a crash would then lose an acceptance a learner already relied on).
    const written = this.proposer.written;
    const own = this.mutant === "count-own-undurable" ? written : Math.min(written, this.log.durableThrough);
    const commit = this.proposer.chosenThrough((cfg) => this.acceptors.quorumMatch(cfg, own));
    if (commit <= before) return false;
    this.commitTo(commit);
    return true;
  }

  /** Moves the chosen prefix (this node's knowledge of it) and what depends on it. */
  private commitTo(index: number): void {
    const before = this.log.commitIndex;
    if (!this.log.commitTo(index)) return;
    this.acceptor.chosenThrough(index);
    this.proposer.chosen(index);
    this.refreshMembership();
    if (this.role !== "leader") return;
    const recoveredThrough = this.proposer.recoveredThrough;
    if (before < recoveredThrough && index >= recoveredThrough && this.reads.hasReadsAwaitingTermCommit) {
      for (const read of this.reads.takeReadsAwaitingTermCommit()) this.handleReadRequest(read.from, read.requestId, read.lease);
    }
    this.fillLog();
  }

  /**
   * A leader whose next slot is governed by another configuration — its own change took
   * effect — runs phase 1 again, at a new ballot, in that configuration, once every slot it
   * wrote in this one is chosen. A leader the new configuration does not count as a voter
   * hands over to one that it does, or steps down.
   */
  private maybeNextEpoch(): void {
    if (this.role !== "leader" || this.transferTarget !== null) return;
    const next = this.proposer.nextEpoch();
    if (next === null) return;
    // Members the change removed take no part in the next epoch: a last heartbeat at this
    // ballot tells them that every slot of this one is chosen, the change among them, so
    // they learn that they were removed (and answer as non-members) instead of waiting for
    // a leader that will not write to them again.
    const staying = new Set(members(next));
    for (const peer of this.acceptors.members()) {
      if (peer !== this.id && !staying.has(peer)) this.send(peer, { type: "heartbeat", ballot: this.acceptor.promised, commit: this.log.commitIndex, readRound: 0 });
    }
    if (isVoter(next, this.id)) {
      this.renewing = true;
      this.campaign(false, false);
      return;
    }
    const target = this.acceptors.mostUpToDate([...next.voters, ...next.outgoing]);
    if (target === null) this.becomeFollower(null);
    else this.startTransfer(target);
  }

  // ---- proposals and reads ----

  propose(data: Uint8Array): Admission {
    if (this.role === "leader" && this.transferTarget === null) {
      if (!this.proposer.admits(data)) return { accepted: false, error: new OverloadedError(`${this.proposer.uncommittedBytes} bytes of proposals are not chosen yet; the limit is ${this.config.uncommittedBytesMax}`) };
      this.proposer.enqueue(data);
      this.fillLog();
      return { accepted: true };
    }
    if ((this.role === "leader" && this.transferTarget !== null) || this.renewing) {
      if (this.holdProposal(data)) return { accepted: true };
      return { accepted: false, error: new OverloadedError(`${this.heldProposalBytes} bytes of proposals wait for a leader; the limit is ${this.config.uncommittedBytesMax}`) };
    }
    if (this.role === "follower" && this.lead !== null && isMember(this.current, this.id)) {
      this.send(this.lead, { type: "propose", ballot: this.acceptor.promised, data: [data] });
      return { accepted: true };
    }
    if (this.role === "follower" && !isMember(this.current, this.id)) return { accepted: false, error: new NotMemberError(this.lead) };
    return { accepted: false, error: new NotLeaderError(this.lead) };
  }

  private holdProposal(data: Uint8Array): boolean {
    if (this.heldProposalBytes > 0 && this.heldProposalBytes + data.length > this.config.uncommittedBytesMax) return false;
    this.heldProposals.push(data);
    this.heldProposalBytes += data.length;
    return true;
  }

  private releaseHeldProposals(): void {
    if (this.heldProposals.length === 0) return;
    if (this.role === "leader" && this.transferTarget === null) {
      const held = this.takeHeld();
      for (const data of held) if (this.proposer.admits(data)) this.proposer.enqueue(data);
    } else if (this.role === "follower" && (this.lead ?? this.handedTo) !== null) {
      this.send((this.lead ?? this.handedTo) as NodeId, { type: "propose", ballot: this.acceptor.promised, data: this.takeHeld() });
    }
  }

  private takeHeld(): Uint8Array[] {
    const held = this.heldProposals;
    this.heldProposals = [];
    this.heldProposalBytes = 0;
    return held;
  }

  readIndex(requestId: number, options?: ReadOptions): Admission {
    const lease = options?.lease ?? this.config.leaseReads;
    if (this.role === "leader") {
      this.handleReadRequest(this.id, requestId, lease);
      return { accepted: true };
    }
    if (this.role === "follower" && this.lead !== null && isMember(this.current, this.id)) {
      this.send(this.lead, lease ? { type: "read-index", ballot: this.acceptor.promised, requestId, lease } : { type: "read-index", ballot: this.acceptor.promised, requestId });
      return { accepted: true };
    }
    if (this.role === "follower" && !isMember(this.current, this.id)) return { accepted: false, error: new NotMemberError(this.lead) };
    return { accepted: false, error: new NotLeaderError(this.lead) };
  }

  /**
   * A read at the chosen prefix, safe once this leader has chosen everything phase 1
   * recovered (every value chosen before its ballot is then in the prefix) and a majority of
   * its configuration confirms, after the read arrived, that it still promises this ballot —
   * so no higher ballot has chosen anything yet. With a lease the confirmation is the
   * lease's.
   */
  private handleReadRequest(from: NodeId, requestId: number, lease: boolean): void {
    const index = this.log.commitIndex;
    if (this.mutant === "read-without-quorum") return this.releaseRead(from, requestId, index);
    if (index < this.proposer.recoveredThrough) {
      this.reads.awaitTermCommit({ requestId, from, lease });
      return;
    }
    const epoch = this.proposer.epoch as Membership;
    const selfQuorum = majorityGroups(epoch).every((group) => group.length === 1 && group[0] === this.id);
    if (selfQuorum || (lease && this.config.leaseReads && this.reads.leaseValid(this.tickCount))) return this.releaseRead(from, requestId, index);
    this.reads.awaitConfirmation(from, requestId, index, this.tickCount);
  }

  private releaseRead(from: NodeId, requestId: number, index: number): void {
    if (from === this.id) this.readStates.push({ requestId, index });
    else this.send(from, { type: "read-index-response", ballot: this.acceptor.promised, requestId, index });
  }

  // ---- leadership transfer ----

  transferLeadership(to: NodeId | null): Admission {
    if (this.role !== "leader") return { accepted: false, error: new NotLeaderError(this.lead) };
    const epoch = this.proposer.epoch as Membership;
    const voters = [...new Set([...epoch.voters, ...epoch.outgoing])];
    const target = to ?? this.acceptors.mostUpToDate(voters);
    if (target === null || target === this.id) return { accepted: true };
    if (!voters.includes(target)) return { accepted: false, error: new InvalidInputError(`node ${target} is not a voting member; the voters are ${voters.join(", ")}`) };
    this.startTransfer(target);
    return { accepted: true };
  }

  private startTransfer(target: NodeId): void {
    this.transferTarget = target;
    this.transferElapsed = 0;
    if (this.acceptors.get(target) === undefined) this.syncProgress();
    const pr = this.acceptors.get(target);
    if (pr !== undefined && pr.match >= this.proposer.written) this.handOver(target);
    else this.acceptors.sendAccept(target);
  }

  /** Tells the caught-up target to run phase 1 now; this leader's lease vouches for nothing from here. */
  private handOver(target: NodeId): void {
    this.reads.giveLeaseAway();
    this.handedTo = target;
    this.send(target, { type: "timeout-now", ballot: this.acceptor.promised, commit: this.log.commitIndex });
  }

  /** A follower forgets its leader and that leader's lease, and campaigns as `campaign` says (Engine.forgetLeader). */
  forgetLeader(campaign: CampaignTiming = "remaining"): void {
    if (this.role !== "follower") return;
    this.lead = null;
    this.electionElapsed = forgottenElapsed(campaign, this.config.electionTicks, this.randomizedElectionTicks);
  }

  // ---- membership ----

  /**
   * Asks this leader for a configuration change: voters and learners, at most one voter
   * added or removed (Paxos has no joint configurations here; each change is one entry).
   * Refused while the previous change has not both been chosen and had 2α slots to take
   * effect, or while the entry cannot be given a slot at once.
   */
  changeMembership(change: MembershipChange): Admission {
    if (this.role !== "leader") return { accepted: false, error: new NotLeaderError(this.lead) };
    if (this.transferTarget !== null) return { accepted: false, error: new MembershipChangeInProgressError("a leadership transfer is under way; retry when it ends") };
    const blocked = this.proposer.changeBlocked();
    if (blocked !== null) return { accepted: false, error: new MembershipChangeInProgressError(blocked) };
    let next: Membership;
    try {
      next = nextMembership(this.configs.latest(), change);
    } catch (error) {
      if (error instanceof InvalidInputError) return { accepted: false, error };
      throw error;
    }
    this.proposer.enqueueConfig(encodeMembership(next));
    this.fillLog();
    assert(this.log.lastIndex === this.proposer.written && this.configs.latestIndex() === this.proposer.written, "the configuration entry was not written at once");
    return { accepted: true };
  }

  membership(): Membership {
    return this.current;
  }

  membershipAt(index: number): Membership {
    return this.configs.membershipAt(index);
  }

  private refreshMembership(): void {
    const current = this.configs.current(this.log.commitIndex);
    if (current === this.current) return;
    this.current = current;
    if (this.role === "leader") this.syncProgress();
  }

  /**
   * A leader tracks every member of the current configuration (both halves while a change
   * waits for its slots) and of its epoch. A member no configuration names any more is
   * dropped once it holds every slot of the change that removed it and those are chosen —
   * told so in a last heartbeat, so it learns that it was removed — or when silent.
   */
  private syncProgress(dropSilent = false): void {
    const wanted = new Set([...members(this.current), ...(this.proposer.epoch === null ? [] : members(this.proposer.epoch))]);
    wanted.add(this.id);
    this.acceptors.sync(wanted, this.configs.latestIndex() + 2 * this.config.windowSlots - 1, dropSilent);
  }

  /** Promotes one caught-up learner marked for it, when no change is in flight. */
  private maybeAutoPromote(): void {
    const latest = this.configs.latest();
    if (latest.autoPromote.length === 0 || this.transferTarget !== null || this.proposer.changeBlocked() !== null) return;
    for (const id of latest.autoPromote) {
      const pr = this.acceptors.get(id);
      if (pr === undefined || pr.state !== "replicate" || !pr.recentActive) continue;
      if (pr.match + this.config.learnerLagEntriesMax < this.proposer.written) continue;
      const next: Membership = { ...latest, voters: [...latest.voters, id], learners: latest.learners.filter((x) => x !== id), autoPromote: latest.autoPromote.filter((x) => x !== id) };
      this.proposer.enqueueConfig(encodeMembership(next));
      this.fillLog();
      return;
    }
  }

  // ---- snapshots ----

  private handleSnapshotResponse(from: NodeId, m: SnapshotChunkResponse): void {
    if (this.role !== "leader" || m.ballot !== this.acceptor.promised) return;
    this.acceptors.snapshotAnswered(from, m);
  }

  /** Every slot through a leader's snapshot is chosen and replaced by it; what this acceptor accepted after it stays. */
  private installSnapshot(received: Snapshot): void {
    const snapshot = { ...received, membership: received.membership ?? this.configs.membershipAt(received.index) };
    this.log.restore(snapshot);
    const kept = this.log.lastIndex > snapshot.index ? this.log.slice(snapshot.index + 1, this.log.lastIndex) : [];
    this.configs.restore(snapshot.index, snapshot.membership, kept);
    this.snapshot = snapshot;
    this.snapshotToInstall = snapshot;
    this.current = this.configs.current(this.log.commitIndex);
  }

  compactionFloor(): CompactionFloor | null {
    return this.role === "leader" ? this.acceptors.compactionFloor() : null;
  }

  compact(index: number, data: Uint8Array): Snapshot | null {
    if (index <= this.log.snapshotIndexValue) return null;
    const term = this.log.term(index);
    assert(term !== null, `compaction at ${index}, beyond the log's end ${this.log.lastIndex}`);
    const membership = this.configs.membershipAt(index);
    this.log.compact(index);
    this.configs.compact(index);
    this.snapshot = { index, term, data, membership };
    this.refreshMembership();
    return this.snapshot;
  }

  // ---- output ----

  private send(to: NodeId, message: PaxosMessage): void {
    this.messages.push({ to, message });
  }

  private sendAfterPersist(to: NodeId, message: PaxosMessage): void {
    this.messagesAfterPersist.push({ to, message });
  }

  private hardStateChanged(): boolean {
    return this.savedHardState.promised !== this.acceptor.promised || this.savedHardState.commit !== this.log.commitIndex;
  }

  hasReady(): boolean {
    // A leader's snapshot replaces the log: it is handed out only when nothing else is
    // outstanding, and nothing follows it until it is advanced (as Raft's).
    const last = this.outstanding[this.outstanding.length - 1];
    if (last !== undefined && (this.snapshotToInstall !== null || last.snapshot !== null)) return false;
    return (
      this.broadcastPending ||
      this.reads.hasBatchedRound ||
      this.messages.length > 0 ||
      this.messagesAfterPersist.length > 0 ||
      this.readStates.length > 0 ||
      this.log.hasUnstable ||
      this.snapshotToInstall !== null ||
      this.log.hasCommittedToApply ||
      this.hardStateChanged() ||
      this.canPad() ||
      (this.mutant === "apply-unchosen" && this.unchosenToApply().length > 0)
    );
  }

  ready(): Ready<PaxosMessage, PaxosHardState> {
    assert(this.snapshotToInstall === null || this.outstanding.length === 0, "a snapshot Ready while others are outstanding");
    if (this.canPad()) this.fillLog();
    if (this.reads.hasBatchedRound) this.acceptors.broadcastHeartbeat(this.reads.takeBatchedRound());
    if (this.broadcastPending) {
      this.broadcastPending = false;
      this.acceptors.broadcastAccept();
    }
    const hardState = this.hardStateChanged() ? { promised: this.acceptor.promised, commit: this.log.commitIndex } : null;
    // A promise must be durable before it is relied on; a commit index alone need not be:
    // a node that forgets it after a crash learns it again from the leader (etcd's MustSync).
    const promiseChanged = hardState !== null && hardState.promised !== this.savedHardState.promised;
    if (hardState !== null) this.savedHardState = hardState;
    let committedEntries = this.log.takeCommitted(this.config.applyEntriesPerReadyMax);
    if (this.mutant === "apply-unchosen" && committedEntries.length === 0) {
      committedEntries = this.unchosenToApply();
      const last = committedEntries[committedEntries.length - 1];
      if (last !== undefined) this.log.applyingIndex = last.index;
    }
    const entries = this.log.takeUnstable();
    const ready: Ready<PaxosMessage, PaxosHardState> = {
      hardState,
      mustSync: promiseChanged || entries.length > 0 || this.snapshotToInstall !== null,
      entries,
      snapshot: this.snapshotToInstall,
      messages: this.messages,
      messagesAfterPersist: this.messagesAfterPersist,
      committedEntries,
      readStates: this.readStates,
    };
    this.messages = [];
    this.messagesAfterPersist = [];
    this.readStates = [];
    this.snapshotToInstall = null;
    this.outstanding.push(ready);
    return ready;
  }

  /** The mutant "apply-unchosen": accepted slots past the chosen prefix, up to the first hole. */
  private unchosenToApply(): LogEntry[] {
    const out: LogEntry[] = [];
    for (let index = Math.max(this.log.applyingIndex, this.log.commitIndex) + 1; index <= this.log.lastIndex && out.length < this.config.applyEntriesPerReadyMax; index++) {
      const entry = this.log.entry(index) as LogEntry;
      if (isHole(entry) || index !== this.log.applyingIndex + 1 + out.length) break;
      out.push(entry);
    }
    return out;
  }

  advance(ready: Ready<PaxosMessage, PaxosHardState>): void {
    assert(ready === this.outstanding[0], "advance() with a Ready that is not the oldest outstanding one");
    this.outstanding.shift();
    const last = ready.committedEntries[ready.committedEntries.length - 1];
    if (last !== undefined) this.log.appliedTo(last.index);
    this.log.stable(ready.entries);
    // The leader's own acceptances count once durable: it writes in parallel with the
    // other acceptors, and may be counted now.
    if (this.role === "leader" && this.maybeCommit()) this.broadcastPending = true;
  }

  status(): EngineStatus {
    const learner = this.role === "follower" && !isVoter(this.current, this.id) && this.current.learners.includes(this.id);
    return {
      id: this.id,
      role: learner ? "learner" : this.role,
      term: this.acceptor.promised,
      leader: this.lead,
      commitIndex: this.log.commitIndex,
      lastIndex: this.log.lastIndex,
      snapshotIndex: this.log.snapshotIndexValue,
    };
  }

  replication(): readonly ReplicationProgress[] | null {
    return this.role === "leader" ? this.acceptors.report() : null;
  }

  entryTerm(index: number): number | null {
    return this.log.term(index);
  }

  /** The entry at `index`, or null when not held (for the simulator's one-value-per-slot checker). */
  entry(index: number): LogEntry | null {
    return this.log.entry(index);
  }
}

import type { Membership, NodeId, Role, Snapshot } from "../engine/contract.js";
import type { ConfigLog } from "./config-log.js";
import type { RaftConfig } from "./config.js";
import type { ElectionHost } from "./election.js";
import type { RaftLog } from "./log.js";
import { encodeMembership, hasMajority } from "./membership.js";
import type { RaftMessage, VoteRequest, VoteResponse } from "./messages.js";
import type { QuiescenceHost } from "./quiescence.js";
import type { RaftEngine } from "./raft.js";
import type { ReadOnlyHost } from "./read-only.js";
import type { ReconfigurationHost } from "./reconfiguration.js";
import type { ReplicatorHost } from "./replication.js";
import type { SnapshotsHost } from "./snapshots.js";
import type { TransferHost } from "./transfer.js";

/**
 * The engine as its helpers see it (replication, transfer, reconfiguration, quiescence,
 * election, reads, snapshots). Its methods live on the prototype, not in closures made for each
 * engine: a node holds an engine per range, and thirty closures and the object holding
 * them cost about 2 KiB an engine, which at 10,000 ranges was 20 MB of a node's heap.
 * It reaches the engine's private state by bracket access (raft.ts makes one per engine),
 * which TypeScript allows and no caller of the engine sees; it adds no behaviour of its own.
 */
export class RaftEngineHost implements ReplicatorHost, TransferHost, ReconfigurationHost, QuiescenceHost, ElectionHost, ReadOnlyHost, SnapshotsHost {
  readonly id: NodeId;
  readonly config: RaftConfig;
  readonly log: RaftLog;
  readonly configLog: ConfigLog;

  constructor(private readonly engine: RaftEngine) {
    this.id = engine.id;
    this.config = engine["config"];
    this.log = engine["log"];
    this.configLog = engine["configLog"];
  }

  term(): number {
    return this.engine["term"];
  }
  membership(): Membership {
    return this.engine["current"];
  }
  leading(): boolean {
    return this.engine["role"] === "leader";
  }
  role(): Role {
    return this.engine["role"];
  }
  lead(): NodeId | null {
    return this.engine["lead"];
  }
  snapshot(): Snapshot | null {
    return this.engine["snapshots"].latest;
  }
  snapshotsChanged(): void {
    this.engine["replicator"].snapshotsChanged();
  }
  snapshotAlreadyCommitted(index: number): boolean {
    return this.engine["snapshotAlreadyCommitted"](index);
  }
  logHoldsSnapshot(snapshot: Snapshot): boolean {
    return this.engine["logHoldsSnapshot"](snapshot);
  }
  now(): number {
    return this.engine["tickCount"];
  }
  send(to: NodeId, message: RaftMessage): void {
    this.engine["send"](to, message);
  }
  sendAfterPersist(to: NodeId, message: RaftMessage): void {
    this.engine["sendAfterPersist"](to, message);
  }
  stepDown(): void {
    this.engine["becomeFollower"](this.engine["term"], null);
  }
  surrenderLease(): void {
    this.engine["surrenderLease"]();
  }
  removedFromCommittedConfig(): boolean {
    return this.engine["reconfiguration"].removedFromCommittedConfig();
  }
  appendProposal(data: Uint8Array): void {
    this.engine["appendIfAdmitted"](data);
  }
  appendConfig(next: Membership): void {
    this.engine["appendEntry"](encodeMembership(next), next);
  }
  uncommittedChangeIndex(): number | null {
    return this.engine["uncommittedChangeIndex"]();
  }
  commitLearned(): void {
    this.engine["commitLearned"]();
  }
  refreshMembership(): void {
    this.engine["refreshMembership"]();
  }
  broadcastPending(): boolean {
    return this.engine["broadcastPending"];
  }
  followersHoldWholeLog(): boolean {
    return this.engine["followersHoldWholeLog"]();
  }
  heartbeatAfresh(): void {
    this.engine["electionElapsed"] = 0;
    this.engine["heartbeatElapsed"] = 0;
    this.engine["heartbeat"]();
  }
  stand(preVote: boolean): void {
    this.engine["stand"](preVote);
  }
  voteFor(candidate: NodeId): void {
    this.engine["vote"] = candidate;
    this.engine["electionElapsed"] = 0;
  }
  resetElectionTimer(): void {
    this.engine["resetElectionTimer"]();
  }
  becomeLeader(): void {
    this.engine["becomeLeader"]();
  }
  abstains(): boolean {
    return this.engine["forgotOwed"]() > 0;
  }
  mayGrantVote(from: NodeId, message: VoteRequest): boolean {
    return this.engine["mayGrantVote"](from, message);
  }
  sendGrantedVote(to: NodeId, response: VoteResponse): void {
    this.engine["sendGrantedVote"](to, response);
  }
  campaignPeers(): NodeId[] {
    return this.engine["campaignPeers"]();
  }
  votesWin(votes: ReadonlyMap<NodeId, boolean>): boolean {
    return this.engine["votesWin"](votes);
  }
  quorumConfirms(acks: ReadonlySet<NodeId>): boolean {
    return hasMajority(this.engine["current"], (id) => acks.has(id));
  }
  leaseAcknowledgedAt(): number {
    return this.engine["replicator"].leaseAcknowledgedAt();
  }
  release(from: NodeId, requestId: number, index: number): void {
    this.engine["releaseRead"](from, requestId, index);
  }
}

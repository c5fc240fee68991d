/**
 * What a simulated node (node.ts) is built from and needs of the world around it: its
 * options, its host (the simulation), and a user's state machine when it runs one.
 */
import type { EngineFactory, LogEntry, NodeId } from "../core/engine/contract.js";
import type { KvMutant } from "../core/kv/mutants.js";
import type { KvStore, LeaseExpiry } from "../core/kv/store.js";
import type { TxnStoreMutant } from "../core/kv/store-txns.js";
import type { TxnCoordinatorMutant } from "../core/kv/txn-coordinator.js";
import type { GroupEnvelope, GroupId } from "../core/multi/group.js";
import type { RouterMutant } from "../core/multi/mutants.js";
import type { ReplicaMutant } from "../core/replica/mutants.js";
import type { EmbeddedApplied, EmbeddedReplica, ReplicatedStateMachine } from "../core/replica/embedded.js";
import type { LeaseResponse } from "./lease-workload.js";
import type { ClientResponse } from "./messages.js";
import type { SimNode } from "./node.js";
import type { SimQuiesceOptions } from "./node-liveness.js";
import type { SimNodePlacement } from "./node-placement.js";
import type { SimNodeSplitOptions } from "./node-splits.js";

/** What a simulated node needs from the world around it. */
export interface NodeHost<M> {
  /** Virtual time, in microseconds. */
  now(): number;
  after(delayMicros: number, action: () => void): void;
  sendToPeer(from: NodeId, to: NodeId, envelope: GroupEnvelope<M>): void;
  /** A node-level liveness ping (quiescence only), or with `answer` the answer to one. */
  sendPing(from: NodeId, to: NodeId, answer: boolean): void;
  sendToClient(from: NodeId, clientId: number, response: ClientResponse): void;
  /** Runs `action` on node `to`, over the link between the nodes (see Wire.overNodeLink). */
  overNodeLink(from: NodeId, to: NodeId, action: (node: SimNode<M>) => void, oneCopy?: boolean): void;
  /** Runs `action` after the disk's fsync latency (the nemesis may crash the node inside it). */
  afterFsync(node: SimNode<M>, action: () => void): void;
  /** An entry was applied by `group`'s replica; for a client's write, `output` is what the client would be told. */
  onApply(node: NodeId, entry: LogEntry, requestKey: string | null, output: string | null | boolean, group: GroupId): void;
  /** The status of `group`'s replica on `node` may have changed. */
  onStatus(node: SimNode<M>, group: GroupId): void;
  /**
   * The request keys of every write `group` applied at or before `index` (as the cluster
   * applied them): what a state machine restored from a snapshot at `index` holds.
   */
  requestsThrough(index: number, group: GroupId): Set<string>;
  trace(node: NodeId, text: string): void;
  /** Answers a lease client (sim/lease-workload.ts). */
  sendLeaseResponse(from: NodeId, clientId: number, response: LeaseResponse): void;
  /** A clock entry applied: its proposer's time, and the leases it expired. */
  onClockApplied(node: NodeId, entry: LogEntry, timeMs: number, expired: readonly LeaseExpiry[]): void;
  /** `node` dropped its replica of `group` (placement only): it left the group. */
  groupDropped(node: SimNode<M>, group: GroupId): void;
  /** `group`'s KV store of this incarnation was built (boot, restart): what the node's watches read. */
  kvStoreCreated(node: NodeId, kv: KvStore, group: GroupId): void;
}

/** What a simulated node is built from, besides its host and disk. */
export interface SimNodeOptions<M> {
  readonly id: NodeId;
  /** The bootstrap voters (empty for a node that joins later). */
  readonly peers: readonly NodeId[];
  readonly factory: EngineFactory<M, unknown>;
  /** Draws a fresh seed for each incarnation's engine. */
  readonly engineSeed: () => number;
  readonly tickMicros: number;
  /** How fast this node's clock runs: its ticks are `tickMicros * clockRate` of virtual time apart. */
  readonly clockRate: number;
  readonly requestTimeoutMicros: number;
  /** The engine's mutant, if any. */
  readonly mutant: string | null;
  /** The replica's mutant, if any. */
  readonly replicaMutant: ReplicaMutant | null;
  /** The KV layer's mutant, if any (core/kv/mutants.ts). */
  readonly kvMutant?: KvMutant | null;
  /** Take a snapshot and compact the log every this many applied entries (0: never). */
  readonly snapshotEveryEntries: number;
  /** Revisions of MVCC history the KV store keeps (0: all). */
  readonly historyRevisions?: number;
  /** A user's state machine to run instead of the KV store (`synod sim --state-machine`). */
  readonly application?: SimNodeApplication<M>;
  /**
   * How many consensus groups the node hosts a replica of (default 1): groups 0 .. n-1,
   * each over the same members, each owning the keys `groupOfKey` gives it.
   */
  readonly groups?: number;
  /** The router's mutant, if any (core/multi/mutants.ts). */
  readonly routerMutant?: RouterMutant | null;
  /** Every node of the run (the peers it pings, with quiescence). */
  readonly peerIds?: readonly NodeId[];
  /** With quiescence (`synod sim --quiesce`): the node-level liveness that wakes quiet groups. */
  readonly quiesce?: SimQuiesceOptions | null;
  /** Leaderships spread over the nodes by the production rule (`synod sim --balance-leaders`; leader-balancing.ts). */
  readonly balanceLeaders?: boolean;
  /**
   * Transactions across groups (`--workload txn | bank`): the node coordinates them and
   * recovers abandoned ones (txn-node.ts), with a mutant of the coordinator's or the store's, if any.
   */
  readonly txn?: { readonly mutant: TxnCoordinatorMutant | TxnStoreMutant | null } | null;
  /** Groups on some nodes only (`synod sim --replicas`; placement.ts); absent: every group on every node. */
  readonly placement?: SimNodePlacement | null;
  /** Ranges that split (`synod sim --splits`; node-splits.ts); absent: groups by the hash of the key. */
  readonly splits?: SimNodeSplitOptions | null;
}

/**
 * A user's state machine, as the nodes run it (see sim/app/harness.ts): each incarnation
 * gets a fresh one from `createStateMachine`, restored from its disk's snapshot; what it
 * applies and the requests it gets go to the application's harness.
 */
export interface SimNodeApplication<M> {
  createStateMachine(): ReplicatedStateMachine<unknown>;
  /** The client request a command answers, by its proposer and sequence; null for none. */
  requestOf(proposer: NodeId, sequence: number): string | null;
  /** Every entry node `node` applied, with what came of it and the request it answers (null: none). */
  applied(node: NodeId, entry: LogEntry, applied: EmbeddedApplied<unknown>, request: string | null): void;
  /** A client's request reached `node` (not paused, up). */
  handle(node: NodeId, replica: EmbeddedReplica<M, unknown, unknown>, request: unknown): void;
}

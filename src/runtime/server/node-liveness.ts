/**
 * Node-level liveness for quiet ranges (docs/sharding.md, core/multi/liveness.ts). On a
 * sharded node, idle ranges go quiet: no ticks, no heartbeats. A quiet follower would never
 * notice that its leader's node died, so the node watches its peers for all its ranges at
 * once: every few ticks it pings each peer (one small message per pair of nodes, on a group
 * id no range uses), and a peer whose answers stop for an election timeout is suspected:
 * every quiet range it leads is woken here, and elects as usual. Only an answer counts as
 * hearing a peer, so a peer whose messages arrive but that cannot be reached is suspected
 * too. A wrong suspicion costs a wake, never safety.
 *
 * A peer that restarted (it answers from a new process: each ping and answer carries the
 * sender's boot id) has replicas that do not know their leaders: its quiet ranges would each
 * learn theirs only when the
 * replica's own election timer fired, a batch at a time (start-order.ts). So, as CockroachDB
 * wakes the ranges a returning node shares, this node wakes the quiet ranges it leads that
 * the peer is a member of (each heartbeats, the peer's replica learns its leader, and the
 * range goes quiet again), and the quiet ranges here that still follow it (it leads nothing
 * any more: they elect as when it is suspected). At most RETURN_WAKES_PER_TICK a tick, so
 * thousands of ranges do not all wake in one turn. A wake costs a heartbeat round, never
 * safety (core/multi/liveness.ts). A peer heard again after a mere suspicion (a slow event
 * loop, a short partition) wakes nothing: under load suspicions come and go, and waking
 * every shared range on each would add to the load that caused them.
 *
 * A node of a version without this drops the pings (a group it does not host) and so looks
 * suspected: its quiet ranges are woken, and they simply stay awake. Its answers carry no
 * boot id, so its restarts are not seen.
 */
import { randomInt } from "node:crypto";
import type { NodeId } from "../../core/engine/contract.js";
import { GROUP_ID_MAX, type GroupId } from "../../core/multi/group.js";
import { isMember } from "../../core/engine/membership.js";
import { NodeLiveness } from "../../core/multi/liveness.js";
import type { Network } from "../../core/replica/contract.js";
import type { GroupReplica } from "./group-replica.js";

/** The group id liveness messages travel on: the highest, which no range is given. */
export const LIVENESS_GROUP: GroupId = GROUP_ID_MAX;
/** Ticks between two pings to each peer. */
export const PING_EVERY_TICKS = 5;
/**
 * Quiet ranges woken for a peer that restarted, at most, each tick (the start's batches are
 * 500 every 5 ticks). A wake costs a heartbeat and its answer; at 100 a tick, the 3,400
 * ranges a node led of 10,000 took 2 s and more of a restart.
 */
export const RETURN_WAKES_PER_TICK = 250;

/** `boot`: the sender's process, a random id drawn at its start (absent from a node of an earlier version). */
type LivenessMessage = { readonly type: "liveness-ping"; readonly boot?: number } | { readonly type: "liveness-pong"; readonly boot?: number };

function isLivenessMessage(message: unknown): message is LivenessMessage {
  const type = (message as { type?: unknown } | null)?.type;
  return type === "liveness-ping" || type === "liveness-pong";
}

export interface LivenessOptions {
  readonly self: NodeId;
  readonly peers: readonly NodeId[];
  readonly tickMs: number;
  /** A peer silent this many ticks is suspected: at least the longest election timeout. */
  readonly suspectAfterTicks: number;
  /** Where pings and answers go (the node's router, on LIVENESS_GROUP). */
  readonly network: Network<unknown>;
  /** The node's replicas, the quiet ones among them woken when their leader's node is suspected. */
  readonly replicas: () => readonly GroupReplica[];
  readonly log: (message: string, fields: object) => void;
  /** This process's boot id (absent: a random one). */
  readonly boot?: number;
}

export class PeerLiveness {
  private readonly liveness: NodeLiveness;
  private timer: NodeJS.Timeout | null = null;
  private ticks = 0;
  /** Quiet ranges woken because their leader's node was suspected. */
  wakes = 0;
  /** Quiet ranges woken because a peer restarted (see the module comment). */
  returnWakes = 0;
  /** This process's boot id, sent with every ping and answer. */
  private readonly boot: number;
  /** By peer: the boot id its last answer carried. */
  private readonly peerBoots = new Map<NodeId, number>();
  /** The ranges still to wake for peers that restarted, each with the peer. */
  private returnQueue: { readonly replica: GroupReplica; readonly peer: NodeId }[] = [];

  constructor(private readonly options: LivenessOptions) {
    this.liveness = new NodeLiveness({ self: options.self, peers: options.peers, suspectAfterTicks: options.suspectAfterTicks });
    this.boot = options.boot ?? randomInt(1, 2 ** 47);
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.options.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** A message on LIVENESS_GROUP from `from`: a ping is answered, an answer is hearing `from`. */
  receive(from: NodeId, message: unknown): void {
    if (!isLivenessMessage(message)) return;
    if (message.type === "liveness-ping") {
      this.options.network.send(from, { type: "liveness-pong", boot: this.boot });
      return;
    }
    if (!this.options.peers.includes(from) || from === this.options.self) return;
    const boot = typeof message.boot === "number" ? message.boot : undefined;
    const lastBoot = this.peerBoots.get(from);
    if (boot !== undefined) this.peerBoots.set(from, boot);
    this.liveness.heard(from);
    if (boot !== undefined && lastBoot !== undefined && boot !== lastBoot) this.peerRestarted(from);
  }

  /** Queues the quiet ranges to wake for `peer`, restarted (see the module comment). */
  private peerRestarted(peer: NodeId): void {
    const self = this.options.self;
    let queued = 0;
    for (const replica of this.options.replicas()) {
      if (replica.engine.quiescent?.() !== true) continue;
      const leader = replica.engine.status().leader;
      if (leader !== peer && !(leader === self && isMember(replica.membership(), peer))) continue;
      this.returnQueue.push({ replica, peer });
      queued++;
    }
    this.options.log("a peer restarted; waking the quiet ranges it shares with this node", { peer, ranges: queued });
  }

  /** Wakes the next queued ranges: a leader here heartbeats; a follower of the restarted peer elects. */
  private wakeReturned(): void {
    if (this.returnQueue.length === 0) return;
    const batch = this.returnQueue.slice(0, RETURN_WAKES_PER_TICK);
    this.returnQueue = this.returnQueue.slice(batch.length);
    for (const { replica, peer } of batch) {
      // Still quiet, and as it was: anything else has woken it already.
      if (replica.engine.quiescent?.() !== true) continue;
      const leader = replica.engine.status().leader;
      if (leader === this.options.self) replica.driver.heartbeat();
      else if (leader === peer) replica.driver.wake(this.liveness.campaignTiming(replica.group, replica.membership().voters, peer));
      else continue;
      this.returnWakes++;
    }
  }

  /** One tick: its timer calls it (tests too). */
  tick(): void {
    this.ticks++;
    // A suspected peer is pinged every tick: back from a restart, it is seen as such (and its
    // ranges woken) within a tick of its connection, not up to PING_EVERY_TICKS later.
    for (const peer of this.options.peers) {
      if (peer !== this.options.self && (this.ticks % PING_EVERY_TICKS === 0 || this.liveness.isSuspected(peer))) this.options.network.send(peer, { type: "liveness-ping", boot: this.boot });
    }
    for (const peer of this.liveness.tick()) this.options.log("a peer stopped answering; waking the quiet ranges it leads", { peer });
    this.wakeReturned();
    // Nothing is built while no peer is suspected: with thousands of ranges, a list of them
    // on every tick would be most of what an idle node does.
    const toWake = new Set(this.liveness.toWake(enginesOf(this.options.replicas)));
    if (toWake.size === 0) return;
    for (const replica of this.options.replicas()) {
      if (!toWake.has(replica.engine)) continue;
      this.wakes++;
      const leader = replica.engine.status().leader;
      replica.driver.wake(leader === null ? "remaining" : this.liveness.campaignTiming(replica.group, replica.membership().voters, leader));
    }
  }
}

/** The replicas' engines, listed only when iterated. */
function* enginesOf(replicas: () => readonly GroupReplica[]): Generator<GroupReplica["engine"]> {
  for (const replica of replicas()) yield replica.engine;
}

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
 * A node of a version without this drops the pings (a group it does not host) and so looks
 * suspected: its quiet ranges are woken, and they simply stay awake.
 */
import type { NodeId } from "../../core/engine/contract.js";
import { GROUP_ID_MAX, type GroupId } from "../../core/multi/group.js";
import { NodeLiveness } from "../../core/multi/liveness.js";
import type { Network } from "../../core/replica/contract.js";
import type { GroupReplica } from "./group-replica.js";

/** The group id liveness messages travel on: the highest, which no range is given. */
export const LIVENESS_GROUP: GroupId = GROUP_ID_MAX;
/** Ticks between two pings to each peer. */
export const PING_EVERY_TICKS = 5;

type LivenessMessage = { readonly type: "liveness-ping" } | { readonly type: "liveness-pong" };

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
}

export class PeerLiveness {
  private readonly liveness: NodeLiveness;
  private timer: NodeJS.Timeout | null = null;
  private ticks = 0;
  /** Quiet ranges woken because their leader's node was suspected. */
  wakes = 0;

  constructor(private readonly options: LivenessOptions) {
    this.liveness = new NodeLiveness({ self: options.self, peers: options.peers, suspectAfterTicks: options.suspectAfterTicks });
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
    if (message.type === "liveness-ping") this.options.network.send(from, { type: "liveness-pong" });
    else this.liveness.heard(from);
  }

  private tick(): void {
    this.ticks++;
    if (this.ticks % PING_EVERY_TICKS === 0) for (const peer of this.options.peers) if (peer !== this.options.self) this.options.network.send(peer, { type: "liveness-ping" });
    for (const peer of this.liveness.tick()) this.options.log("a peer stopped answering; waking the quiet ranges it leads", { peer });
    // Nothing is built while no peer is suspected: with thousands of ranges, a list of them
    // on every tick would be most of what an idle node does.
    const toWake = new Set(this.liveness.toWake(enginesOf(this.options.replicas)));
    if (toWake.size === 0) return;
    for (const replica of this.options.replicas()) {
      if (!toWake.has(replica.engine)) continue;
      this.wakes++;
      replica.driver.wake();
    }
  }
}

/** The replicas' engines, listed only when iterated. */
function* enginesOf(replicas: () => readonly GroupReplica[]): Generator<GroupReplica["engine"]> {
  for (const replica of replicas()) yield replica.engine;
}

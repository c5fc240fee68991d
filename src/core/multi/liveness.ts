/**
 * Node-level liveness for quiescence (Raft's `quiesce`, as CockroachDB pairs its quiesced
 * ranges with node liveness). A quiet follower counts no election timeout, so it would never
 * notice its leader's death by itself; the node does it for all of its groups at once: it
 * suspects a peer node it has heard nothing from for `suspectAfterTicks` ticks, and wakes
 * every quiet group whose leader is on that node. The woken group ticks again and elects as
 * usual. Pure: time is the ticks it is given, what it hears is what the node tells it.
 *
 * What counts as hearing a peer must prove the link works both ways, as a connection does:
 * a peer whose messages arrive but that cannot be reached (a one-way partition) must be
 * suspected, or its quiet followers here would wait on a leader that can never reach them.
 * In the simulator a node pings each peer every few ticks and hears it by its answer (one
 * ping and answer per node pair, however many groups: the cost quiet groups leave); in
 * production the transport's connection state can tell the same thing.
 *
 * A suspicion that is wrong costs a wake, not safety: the woken followers campaign, and a
 * leader that is alive wakes on their vote requests and heartbeats again (PreVote and
 * CheckQuorum keep it from being unseated while it is).
 */
import { assert } from "../common/assert.js";
import type { CampaignTiming, NodeId } from "../engine/contract.js";

export interface NodeLivenessOptions {
  readonly self: NodeId;
  readonly peers: readonly NodeId[];
  /** A peer silent for this many ticks is suspected; at least an election timeout. */
  readonly suspectAfterTicks: number;
}

/** What the wake-up needs of a group's engine (core/engine/contract.ts). */
export interface QuiescentEngine {
  quiescent?(): boolean;
  status(): { readonly leader: NodeId | null };
  membership?(): { readonly voters: readonly NodeId[] };
}

/**
 * When this node's follower of group `group` campaigns once the node knows the group's
 * leader's node is gone (`gone`: suspected, or restarted, its old process and its lease no
 * more): one voter of each group campaigns at once and the others after a whole election
 * timeout. Left to what remained of their timers, the followers woken together can stand
 * together and split the vote, again and again where a stalled event loop evened their
 * timers out (a node restarted among 10,000 ranges under load once set off 77 s of
 * elections, thousands of them candidacies). The one:
 * among the voters not gone, in id order, the one the group id picks, so the leaderships a
 * gone node held spread over the others. Nodes whose suspicions agree pick the same; where
 * they do not, two may campaign at once, as all did before. A node that is not a voter keeps
 * its timer (it does not campaign).
 */
export function campaignTiming(self: NodeId, group: number, voters: readonly NodeId[], gone: (id: NodeId) => boolean): CampaignTiming {
  const able = voters.filter((id) => !gone(id)).sort((a, b) => a - b);
  if (!able.includes(self)) return "remaining";
  return able[group % able.length] === self ? "now" : "full";
}

export const LIVENESS_MUTANTS = {
  "no-wake-on-leader-failure": "the node never suspects a silent peer, so a quiet group whose leader's node fails is never woken (--quiesce)",
  "woken-followers-campaign-together": "a quiet group's followers woken for their leader's failure all campaign within what is left of their timers, none first (--quiesce): slower elections, split votes",
} as const;

export type LivenessMutant = keyof typeof LIVENESS_MUTANTS;

export function isLivenessMutant(name: string): name is LivenessMutant {
  return Object.hasOwn(LIVENESS_MUTANTS, name);
}

export class NodeLiveness {
  private nowTicks = 0;
  /** By peer: the tick it was last heard from (its start counts as hearing it). */
  private readonly heardAt = new Map<NodeId, number>();
  private readonly suspected = new Set<NodeId>();

  constructor(private readonly options: NodeLivenessOptions) {
    assert(Number.isSafeInteger(options.suspectAfterTicks) && options.suspectAfterTicks > 0, `suspectAfterTicks must be a positive integer, got ${options.suspectAfterTicks}`);
    for (const peer of options.peers) if (peer !== options.self) this.heardAt.set(peer, 0);
  }

  /** Something arrived from `peer`: it is alive now. A node it does not know is ignored. */
  heard(peer: NodeId): void {
    if (!this.heardAt.has(peer)) return;
    this.heardAt.set(peer, this.nowTicks);
    this.suspected.delete(peer);
  }

  /** One tick passes; returns the peers suspected from this tick on (each once, until heard from again). */
  tick(): NodeId[] {
    this.nowTicks++;
    const newly: NodeId[] = [];
    for (const [peer, at] of this.heardAt) {
      if (this.nowTicks - at < this.options.suspectAfterTicks || this.suspected.has(peer)) continue;
      newly.push(peer);
    }
    const suspects = this.suspects(newly);
    for (const peer of suspects) this.suspected.add(peer);
    return suspects;
  }

  /** A hook for the mutant: which of the newly silent peers are suspected. */
  protected suspects(newly: NodeId[]): NodeId[] {
    return newly;
  }

  /** When this node's follower of `group` (of `voters`) campaigns, its leader `leader` gone (see `campaignTiming`). */
  campaignTiming(group: number, voters: readonly NodeId[], leader: NodeId): CampaignTiming {
    return campaignTiming(this.options.self, group, voters, (id) => id === leader || this.suspected.has(id));
  }

  isSuspected(peer: NodeId): boolean {
    return this.suspected.has(peer);
  }

  get anySuspected(): boolean {
    return this.suspected.size > 0;
  }

  /**
   * The engines to wake now: quiet ones whose leader is on a suspected node. Called every
   * tick while any peer is suspected, not only when one becomes so: a group may go quiet
   * (on a leader's last heartbeat delayed on the wire) after its leader's node was
   * suspected. The scan is over every group; with thousands, an index of quiet groups by
   * leader would replace it.
   */
  toWake<E extends QuiescentEngine>(engines: Iterable<E>): E[] {
    if (this.suspected.size === 0) return [];
    const woken: E[] = [];
    for (const engine of engines) {
      if (engine.quiescent?.() !== true) continue;
      const leader = engine.status().leader;
      if (leader !== null && this.suspected.has(leader)) woken.push(engine);
    }
    return woken;
  }
}

/** The mutant: a node that never suspects anyone. */
class NeverSuspects extends NodeLiveness {
  protected override suspects(): NodeId[] {
    return [];
  }
}

/** The mutant: every woken follower campaigns as its timer says, as before `campaignTiming`. */
class CampaignsTogether extends NodeLiveness {
  override campaignTiming(): CampaignTiming {
    return "remaining";
  }
}

/** Liveness, or with `mutant`, the broken variant of that name. */
export function createNodeLiveness(options: NodeLivenessOptions, mutant: LivenessMutant | null = null): NodeLiveness {
  if (mutant === "no-wake-on-leader-failure") return new NeverSuspects(options);
  if (mutant === "woken-followers-campaign-together") return new CampaignsTogether(options);
  return new NodeLiveness(options);
}

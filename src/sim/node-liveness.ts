/**
 * A simulated node's node-level liveness, beside quiet groups (`synod sim --quiesce`): the
 * production liveness (core/multi/liveness.ts) ticking with the node's clock, its pings
 * over the simulated links, and the quiet groups it wakes — with the counts of what
 * quiescence saved and what it cost, over every incarnation.
 */
import type { SimNodeTimers } from "./node-timers.js";
import type { CampaignTiming, NodeId } from "../core/engine/contract.js";
import type { GroupId } from "../core/multi/group.js";
import { createNodeLiveness, type LivenessMutant, type NodeLiveness, type QuiescentEngine } from "../core/multi/liveness.js";

/**
 * The node-level liveness a node runs beside quiet groups (core/multi/liveness.ts): a ping
 * to every peer every few ticks, and a peer silent for longer than an election timeout is
 * suspected, waking every quiet group it leads.
 */
export interface SimQuiesceOptions {
  readonly pingEveryTicks: number;
  readonly suspectAfterTicks: number;
  readonly livenessMutant: LivenessMutant | null;
}

/** Over a node's every incarnation: what quiescence saved, and what it cost. */
export interface QuiescenceCounts {
  /** Pings sent to peers. */
  readonly pings: number;
  /** Group-ticks: one per group hosted per tick of the liveness timer ... */
  readonly groupTicks: number;
  /** ... and those of them at which the group's replica here was quiet. */
  readonly quietGroupTicks: number;
  /** Quiet groups woken because their leader's node was suspected. */
  readonly wakes: number;
}

/** What the liveness needs of the node that runs it. */
export interface LivenessNode extends SimNodeTimers {
  /** Sends a liveness ping, or with `answer` the answer to one. */
  sendPing(to: NodeId, answer: boolean): void;
  /** This incarnation's replica of every group it hosts: its engine, and how to wake it. */
  replicas(): readonly { readonly group: GroupId; readonly replica: { readonly engine: QuiescentEngine; wake(leaderSuspected?: boolean, campaign?: CampaignTiming): void } }[];
}

/** One node's liveness over its incarnations: a fresh `NodeLiveness` for each, and the counts over all. */
export class SimNodeLiveness {
  /** This incarnation's node-level liveness. */
  private liveness: NodeLiveness | null = null;
  private readonly counts = { pings: 0, groupTicks: 0, quietGroupTicks: 0, wakes: 0 };

  constructor(
    private readonly options: SimQuiesceOptions,
    private readonly node: LivenessNode,
  ) {}

  /** Whether this incarnation's liveness suspects `peer` (false before it starts). */
  suspects(peer: NodeId): boolean {
    return this.liveness?.isSuspected(peer) ?? false;
  }

  /** Quiescence's counts over every incarnation. */
  get quiescenceCounts(): QuiescenceCounts {
    return { ...this.counts };
  }

  /**
   * Incarnation `incarnation` started: its liveness, ticking with the node's clock (a paused
   * process's does not tick, and sends no pings: its peers suspect it, as they would a
   * frozen process).
   */
  start(incarnation: number): void {
    const { options, node } = this;
    const peers = node.peerIds;
    const liveness = createNodeLiveness({ self: node.id, peers, suspectAfterTicks: options.suspectAfterTicks }, options.livenessMutant);
    this.liveness = liveness;
    const intervalMicros = node.tickIntervalMicros;
    let ticks = 0;
    const fire = (): void => {
      if (!node.alive(incarnation)) return;
      node.after(intervalMicros, fire);
      if (node.paused()) return;
      ticks++;
      if (ticks % options.pingEveryTicks === 0) {
        for (const peer of peers) {
          if (peer === node.id) continue;
          this.counts.pings++;
          node.sendPing(peer, false);
        }
      }
      liveness.tick();
      const replicas = node.replicas();
      for (const { replica } of replicas) {
        this.counts.groupTicks++;
        if (replica.engine.quiescent?.() === true) this.counts.quietGroupTicks++;
      }
      const toWake = new Set(liveness.toWake(replicas.map(({ replica }) => replica.engine)));
      for (const { group, replica } of replicas) {
        if (!toWake.has(replica.engine)) continue;
        this.counts.wakes++;
        const leader = replica.engine.status().leader;
        replica.wake(true, leader === null ? "remaining" : liveness.campaignTiming(group, replica.engine.membership?.().voters ?? [], leader));
      }
    };
    node.after(intervalMicros, fire);
  }

  /**
   * A liveness ping from `from` arrived (it is answered), or the answer to one of this
   * node's: only an answer counts as hearing `from`, since it proves the link works both
   * ways, as a connection does. A peer this node hears but cannot reach (a one-way
   * partition) is suspected: its quiet groups here could not reach it either. Runs in the
   * process, as an input.
   */
  hearPing(from: NodeId, answer: boolean): void {
    if (this.liveness === null) return;
    if (answer) this.liveness.heard(from);
    else {
      this.counts.pings++;
      this.node.sendPing(from, true);
    }
  }
}

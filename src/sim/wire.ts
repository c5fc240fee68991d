/**
 * The wire between a run's processes: peer messages cross node links (delayed, dropped,
 * duplicated, reordered as the link model says, cut by the partition, held by the nemesis,
 * or kept in order on a FIFO link), and client requests and answers cross client links.
 * network.ts models one link; this carries the run's packets over them on the scheduler.
 * Every draw is from the network stream, in the order the packets are sent.
 */
import type { Prng } from "../core/common/prng.js";
import type { NodeId } from "../core/engine/contract.js";
import { DEFAULT_GROUP, type GroupEnvelope, type GroupId } from "../core/multi/group.js";
import { packetDelays, Partition, RELIABLE_LINK, type LinkModel } from "./network.js";
import type { SimNode } from "./node.js";
import type { RunLog } from "./run-log.js";
import type { Scheduler } from "./scheduler.js";
import { entriesIn, type NodeCosts } from "./node-cost.js";

export interface WireOptions {
  readonly scheduler: Scheduler;
  /** The network stream: every delay, loss and duplicate is drawn from it. */
  readonly prng: Prng;
  readonly nodeIds: readonly NodeId[];
  /** The run's processes, by id (read as packets arrive). */
  readonly nodes: ReadonlyMap<NodeId, SimNode<unknown>>;
  readonly nodeLink: LinkModel;
  readonly clientLink: LinkModel;
  readonly log: RunLog;
  /** A peer message, as the protocol describes it. */
  readonly describeMessage: (message: unknown) => string;
  /** Count group 0's messages by kind and sender: the scenario reads them (`countsMessages`). */
  readonly countsMessages: boolean;
  /** A trace line about one group. */
  readonly groupText: (group: GroupId, text: string) => string;
  /** With --hot-groups: whether `group` gets no requests now (its messages are counted apart). */
  readonly idleGroup?: (group: GroupId) => boolean;
  /** With the per-node service-time model (node-cost.ts): each node serves its inputs one at a time. */
  readonly costs?: NodeCosts;
}

/** A link the nemesis holds: the packets kept on the wire until it releases them. */
export interface HeldLink {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly messages: GroupEnvelope<unknown>[];
}

export class Wire {
  readonly partition: Partition;
  /** Links the nemesis holds, by `linkKey`, in the order it took them. */
  private readonly heldLinks = new Map<number, HeldLink>();
  /** For FIFO links: when the last packet on each (from, to) link arrives. */
  private readonly lastArrival = new Map<number, number>();
  private nodeLink: LinkModel;
  private clientLink: LinkModel;
  /** Group 0's messages by kind (the description up to the term or ballot), when counted. */
  readonly messageKinds = new Map<string, number>();
  /** Who sent group 0's messages of each kind, when counted. */
  readonly messageSenders = new Map<string, Set<NodeId>>();
  messagesSent = 0;
  messagesDropped = 0;
  /** Node-level liveness pings (quiescence only), counted apart from the groups' messages. */
  pingsSent = 0;
  /** With --hot-groups: messages of groups that got no requests when they were sent. */
  idleGroupMessagesSent = 0;

  constructor(private readonly options: WireOptions) {
    this.partition = new Partition(options.nodeIds);
    this.nodeLink = options.nodeLink;
    this.clientLink = options.clientLink;
  }

  private now(): number {
    return this.options.scheduler.now;
  }

  sendToPeer(from: NodeId, to: NodeId, message: GroupEnvelope<unknown>): void {
    this.messagesSent++;
    if (this.options.idleGroup?.(message.group) === true) this.idleGroupMessagesSent++;
    // The scenarios count group 0's messages, the group they steer.
    if (this.options.countsMessages && message.group === DEFAULT_GROUP) {
      const text = this.options.describeMessage(message.message);
      // The kind is the description up to the term (Raft) or ballot (Paxos).
      const match = / (term|ballot)=/.exec(text);
      const end = match === null ? -1 : match.index;
      const kind = end < 0 ? text : text.slice(0, end);
      this.messageKinds.set(kind, (this.messageKinds.get(kind) ?? 0) + 1);
      let senders = this.messageSenders.get(kind);
      if (senders === undefined) this.messageSenders.set(kind, (senders = new Set()));
      senders.add(from);
    }
    if (this.partition.isBlocked(from, to)) {
      this.messagesDropped++;
      this.options.log.recordLost(from, to, message, "partition");
      return;
    }
    const delays = packetDelays(this.nodeLink, this.options.prng);
    if (delays.length === 0) {
      this.messagesDropped++;
      this.options.log.recordLost(from, to, message, "network");
    }
    const held = this.heldLinks.get(linkKey(from, to));
    if (held !== undefined) {
      if (delays.length > 0) held.messages.push(message);
      return;
    }
    if (this.nodeLink.fifo === true && delays.length > 0) {
      // One connection per direction: a packet never overtakes the one sent before it.
      const link = linkKey(from, to);
      const arrival = Math.max(this.now() + (delays[0] ?? 0), (this.lastArrival.get(link) ?? 0) + 1);
      this.lastArrival.set(link, arrival);
      delays.length = 0;
      delays.push(arrival - this.now());
    }
    for (const delay of delays) this.deliverAfter(delay, from, to, message);
  }

  private deliverAfter(delay: number, from: NodeId, to: NodeId, message: GroupEnvelope<unknown>): void {
    const log = this.options.log;
    const id = log.recordSend(delay, from, to, message);
    this.options.scheduler.after(delay, () => {
      const node = this.options.nodes.get(to);
      if (node === undefined || !node.up) {
        if (id !== null) log.replay?.add({ t: this.now(), e: "drop", id, why: "receiver down" });
        return;
      }
      // A partition also loses what was on the wire when it began.
      if (this.partition.isBlocked(from, to)) {
        if (id !== null) log.replay?.add({ t: this.now(), e: "drop", id, why: "partition" });
        return;
      }
      if (id !== null) log.replay?.add({ t: this.now(), e: "recv", id });
      log.line(`node ${to}`, () => `<- ${from}: ${this.options.groupText(message.group, this.options.describeMessage(message.message))}`);
      this.atNode(node, entriesIn(message.message), () => node.deliver(from, message));
    });
  }

  /**
   * A liveness ping or its answer between nodes (quiescence only): over the same link as
   * the groups' messages — cut by a partition, lost, delayed, duplicated as they are — but
   * not traced, and lost on a link the nemesis holds.
   */
  sendPing(from: NodeId, to: NodeId, answer: boolean): void {
    this.pingsSent++;
    if (this.partition.isBlocked(from, to) || this.isHeld(from, to)) return;
    for (const delay of packetDelays(this.nodeLink, this.options.prng)) {
      this.options.scheduler.after(delay, () => {
        const node = this.options.nodes.get(to);
        if (node === undefined || !node.up || this.partition.isBlocked(from, to)) return;
        this.atNode(node, 0, () => node.hearPing(from, answer));
      });
    }
  }

  /**
   * Runs `action` on node `to` for each copy of a packet from `from` that arrives: a node's
   * request to another (a phase of a transaction passed to a group's leader), over the same
   * link as the groups' messages — cut by a partition, lost, delayed, duplicated as they are.
   * `oneCopy`: a request production sends as one HTTP request over TCP (a client's request
   * forwarded to a node hosting its range), which is lost or delayed, never duplicated: a
   * copy refused ("no known leader") while another applies later would tell the client a
   * write that took effect failed.
   */
  overNodeLink(from: NodeId, to: NodeId, action: (node: SimNode<unknown>) => void, oneCopy = false): void {
    if (this.partition.isBlocked(from, to) || this.isHeld(from, to)) return;
    const delays = packetDelays(this.nodeLink, this.options.prng);
    for (const delay of oneCopy ? delays.slice(0, 1) : delays) {
      this.options.scheduler.after(delay, () => {
        const node = this.options.nodes.get(to);
        if (node === undefined || !node.up || this.partition.isBlocked(from, to)) return;
        this.atNode(node, 0, () => action(node));
      });
    }
  }

  /**
   * Runs `action`, an input of `node` carrying `entries` log entries: at once, or with the
   * service-time model once the node has served it (never if it crashed meanwhile).
   */
  atNode(node: SimNode<unknown> | undefined, entries: number, action: (node: SimNode<unknown>) => void): void {
    if (node === undefined) return;
    if (this.options.costs === undefined) action(node);
    else this.options.costs.serve(node, entries, () => action(node));
  }

  /** The service-time model, when the run has one. */
  get costs(): NodeCosts | undefined {
    return this.options.costs;
  }

  /** Runs `action` at the far end of a client link: once for each copy that arrives, never if the packet is lost. */
  overClientLink(action: () => void): void {
    for (const delay of packetDelays(this.clientLink, this.options.prng)) this.options.scheduler.after(delay, action);
  }

  /** One way over a client link, drawn from `prng`: for a connection that keeps its messages in order on top of it. */
  clientLinkDelayMicros(prng: Prng): number {
    return this.clientLink.delayMinMicros + Math.round(prng.exponential(this.clientLink.delayMeanMicros));
  }

  /** Whether packets get from `a` to `b` and back: no partition cuts them and the nemesis holds neither direction. */
  linked(a: NodeId, b: NodeId): boolean {
    return !this.partition.isBlocked(a, b) && !this.partition.isBlocked(b, a) && !this.isHeld(a, b) && !this.isHeld(b, a);
  }

  isHeld(from: NodeId, to: NodeId): boolean {
    return this.heldLinks.has(linkKey(from, to));
  }

  /** Keeps every packet `from` sends `to` on the wire from now on, until `takeHeld`. */
  hold(from: NodeId, to: NodeId): void {
    this.heldLinks.set(linkKey(from, to), { from, to, messages: [] });
  }

  /** The links held now, in the order they were taken. */
  heldPairs(): (readonly [NodeId, NodeId])[] {
    return [...this.heldLinks.values()].map((held) => [held.from, held.to] as const);
  }

  /** Stops holding the link, handing back what it held (undefined: it was not held); `deliverHeld` sends it on. */
  takeHeld(from: NodeId, to: NodeId): HeldLink | undefined {
    const held = this.heldLinks.get(linkKey(from, to));
    if (held !== undefined) this.heldLinks.delete(linkKey(from, to));
    return held;
  }

  /** Delivers a held link's packets, in the order sent. */
  deliverHeld(held: HeldLink): void {
    held.messages.forEach((message, i) => this.deliverAfter(1 + i, held.from, held.to, message));
  }

  /** From the heal on: every link reliable and in order, at the node links' own minimum delay. */
  makeReliable(): void {
    this.nodeLink = { ...RELIABLE_LINK, delayMinMicros: this.options.nodeLink.delayMinMicros };
    this.clientLink = this.nodeLink;
  }
}

function linkKey(from: NodeId, to: NodeId): number {
  return from * 65536 + to;
}

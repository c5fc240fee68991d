/**
 * The nemesis's hands: the context a scenario's nemesis and checks act through (see
 * scenario-kit.ts), and the faults it carries out — crashes (now, or armed to strike inside
 * the next fsync), restarts, pauses, partitions, held links — until the heal, which undoes
 * them all and makes the network reliable. Every random choice draws from the fault stream.
 * The scenarios decide what to do and when; this is how it is done to the run's processes.
 */
import type { Prng } from "../core/common/prng.js";
import type { EngineStatus, NodeId } from "../core/engine/contract.js";
import { DEFAULT_GROUP } from "../core/multi/group.js";
import { InvariantViolation } from "./check/violation.js";
import type { GroupWatch } from "./group-watch.js";
import type { SimNode } from "./node.js";
import type { SplitApplied } from "./node-splits.js";
import type { SimParams } from "./params.js";
import type { RunLog } from "./run-log.js";
import type { ScenarioContext } from "./scenario-kit.js";
import type { Scenario } from "./scenarios.js";
import type { Scheduler } from "./scheduler.js";
import type { Wire } from "./wire.js";

/** What the nemesis acts on and reports to. */
export interface NemesisWorld {
  readonly params: SimParams;
  readonly scenario: Scenario;
  readonly scheduler: Scheduler;
  /** The fault stream. */
  readonly prng: Prng;
  readonly nodes: ReadonlyMap<NodeId, SimNode<unknown>>;
  readonly wire: Wire;
  readonly log: RunLog;
  /** By group: what the run watches of each (group 0's is what the scenarios read). */
  readonly groups: readonly GroupWatch[];
  /** The leader of group 0 with the highest term among the live nodes. */
  currentLeader(): NodeId | null;
  /** Records what the world allows now (see opportunity.ts): after every fault. */
  observeWorld(): void;
  /** Node `id` crashed: the side workloads let go of what they held there. */
  nodeCrashed(id: NodeId): void;
}

export interface NemesisStats {
  readonly crashes: number;
  /** Crashes that caught writes not yet fsynced, and lost some of them. */
  readonly crashesLosingWrites: number;
  readonly faultsInjected: number;
  /** Nodes lost for good (`--replicas`: a machine that never comes back); absent when none was. */
  readonly nodesLost?: readonly NodeId[];
}

export class Nemesis {
  /** Set at the heal: from then on nothing fails, and nothing scheduled before fails late. */
  private healed = false;
  /** Nodes the nemesis will crash inside their next fsync. */
  private readonly crashArmed = new Set<NodeId>();
  private readonly statusWatchers: ((id: NodeId, status: EngineStatus) => void)[] = [];
  private readonly splitWatchers: ((split: SplitApplied) => void)[] = [];
  private crashes = 0;
  private crashesLosingWrites = 0;
  private faultsInjected = 0;
  /** Nodes lost for good: never restarted, not even by the heal. */
  private readonly lost: NodeId[] = [];
  /** When the fault phase ends and the heal comes. */
  private readonly healStartMicros: number;

  constructor(private readonly world: NemesisWorld) {
    this.healStartMicros = world.params.faultPhaseMicros;
  }

  private now(): number {
    return this.world.scheduler.now;
  }

  get stats(): NemesisStats {
    return { crashes: this.crashes, crashesLosingWrites: this.crashesLosingWrites, faultsInjected: this.faultsInjected, ...(this.lost.length === 0 ? {} : { nodesLost: [...this.lost] }) };
  }

  /** `node` began an fsync of `latencyMicros`: a crash armed for it strikes inside it. */
  fsyncStarted(node: SimNode<unknown>, latencyMicros: number): void {
    if (!this.crashArmed.delete(node.id)) return;
    // The armed crash strikes inside this fsync: after the Ready's `messages` left, before
    // the write is durable — the window persist-before-send exists for.
    const incarnation = node.incarnation;
    this.world.scheduler.after(this.world.prng.int(0, latencyMicros - 1), () => {
      // The heal may have come first: after it, nothing crashes (nothing would restart it).
      if (!this.healed && node.up && node.incarnation === incarnation) this.crashAndRestartLater(node, "during fsync");
    });
  }

  /** Group 0's status on node `id` may have changed: the scenario's watchers see it, until the heal. */
  statusChanged(id: NodeId, status: EngineStatus): void {
    for (const watcher of this.statusWatchers) watcher(id, status);
  }

  /** A node applied a split: the scenario's watchers see it, until the heal. */
  splitApplied(split: SplitApplied): void {
    if (!this.healed) for (const watcher of this.splitWatchers) watcher(split);
  }

  /** What the scenario's nemesis and checks may do and see. */
  context(): ScenarioContext {
    const { params, scenario, scheduler, prng, nodes, wire, log } = this.world;
    const node = (id: NodeId): SimNode<unknown> => {
      const found = nodes.get(id);
      if (found === undefined) throw new Error(`scenario ${scenario.name}: no node ${id}`);
      return found;
    };
    const group0 = (): GroupWatch => this.world.groups[DEFAULT_GROUP] as GroupWatch;
    return {
      params,
      prng,
      nodeIds: [...nodes.keys()],
      now: () => this.now(),
      during: (delay, action) => {
        if (this.now() + delay >= this.healStartMicros) return;
        scheduler.after(delay, () => {
          if (!this.healed) action();
        });
      },
      repeat: (mean, action) => {
        const next = (): void => {
          const delay = prng.exponential(mean);
          if (this.now() + delay >= this.healStartMicros) return;
          scheduler.after(delay, () => {
            if (this.healed) return;
            this.faultsInjected++;
            action();
            next();
          });
        };
        next();
      },
      leader: () => this.world.currentLeader(),
      isUp: (id) => node(id).up,
      status: (id) => (node(id).up ? node(id).engine.status() : null),
      crash: (id, restart = "later") => {
        const victim = node(id);
        if (!victim.up) return;
        if (restart === "later") this.crashAndRestartLater(victim, "now");
        else this.crash(victim, "now");
      },
      armCrash: (id) => {
        if (!node(id).up) return;
        this.crashArmed.add(id);
        log.note(`node ${id}`, "will crash during its next fsync");
      },
      restart: (id) => {
        if (!node(id).up && !this.lost.includes(id)) this.restart(node(id));
      },
      changeMembership: (from, change) => {
        const admission = node(from).changeMembership(change);
        if (admission === null) return false;
        const wanted = `voters ${change.voters.join(",")}${change.learners.length > 0 ? ` learners ${change.learners.join(",")}` : ""}${change.joint === true ? " (joint)" : ""}`;
        log.notableEvent(`node ${from}`, `asked for ${wanted}: ${admission.accepted ? "accepted" : `refused (${admission.error.message})`}`);
        return admission.accepted;
      },
      membership: (id) => (node(id).up ? (node(id).engine.membership?.() ?? null) : null),
      transferLeadership: (from, to) => {
        if (!node(from).up) return false;
        const accepted = node(from).transferLeadership(to);
        if (accepted) log.notableEvent(`node ${from}`, `asked to hand leadership to ${to === null ? "the most up-to-date member" : `node ${to}`}`);
        return accepted;
      },
      pause: (id, micros) => {
        const victim = node(id);
        if (!victim.up || victim.paused) return;
        victim.pause();
        log.recordNode(id, "paused");
        this.world.observeWorld();
        const pause = victim.pauses;
        log.notableEvent(`node ${id}`, "paused");
        scheduler.after(micros, () => {
          if (!this.healed && victim.pauses === pause) this.resume(victim);
        });
      },
      partition: (shape) => {
        wire.partition.apply(shape, prng, this.world.currentLeader());
        this.partitionChanged(`partition: ${wire.partition.description}`);
      },
      partitionGroups: (groups) => {
        wire.partition.applyGroups(groups);
        this.partitionChanged(`partition: ${wire.partition.description}`);
      },
      holdLink: (from, to) => {
        if (wire.isHeld(from, to)) return;
        wire.hold(from, to);
        this.world.observeWorld();
        log.notableEvent("nemesis", `holding packets ${from} -> ${to} on the wire`);
      },
      releaseLink: (from, to) => this.releaseLink(from, to),
      healPartition: () => {
        if (!wire.partition.active) return;
        wire.partition.heal();
        this.partitionChanged("partition healed");
      },
      isPartitioned: () => wire.partition.active,
      messagesByKind: () => {
        if (scenario.countsMessages !== true) throw new Error(`scenario ${scenario.name} reads message counts without countsMessages: true`);
        return wire.messageKinds;
      },
      messageSenders: (pattern) => {
        if (scenario.countsMessages !== true) throw new Error(`scenario ${scenario.name} reads message senders without countsMessages: true`);
        const senders = new Set<NodeId>();
        for (const [kind, from] of wire.messageSenders) if (pattern.test(kind)) for (const id of from) senders.add(id);
        return senders.size;
      },
      snapshotInstalls: (id) => node(id).snapshotsInstalled,
      servingWindows: () => group0().opportunities.servingWindows(this.now() + 1),
      connectedGroup: (from, to, among, minimum, including) => group0().opportunities.connectedGroup(from, to, among, minimum, including),
      configsCommitted: () => group0().configsCommitted,
      leaderTerms: () => group0().leaderTerms,
      entryTerm: (id, index) => (node(id).up ? node(id).engine.entryTerm(index) : null),
      onStatus: (watcher) => {
        this.statusWatchers.push((id, status) => {
          if (!this.healed) watcher(id, status);
        });
      },
      onSplitApplied: (watcher) => {
        this.splitWatchers.push(watcher);
      },
      fail: (message) => {
        throw new InvariantViolation(`scenario ${scenario.name}`, message);
      },
      note: (text) => log.notableEvent(`scenario`, text),
    };
  }

  /**
   * Loses node `id` for good, before the heal: it crashes and never comes back (its machine
   * is gone), so what it held survives only on the other nodes. Its groups must carry on
   * without it, and placement make its replicas again elsewhere (`--replicas`).
   */
  lose(id: NodeId): void {
    const victim = this.world.nodes.get(id);
    if (this.healed || victim === undefined || this.lost.includes(id)) return;
    this.lost.push(id);
    this.faultsInjected++;
    if (victim.up) this.crash(victim, "and LOST FOR GOOD (it never comes back)");
    else this.world.log.notableEvent(`node ${id}`, "LOST FOR GOOD while down (it never comes back)");
  }

  /** The partition changed: the replay draws it, the opportunity logs see it, the story tells it. */
  private partitionChanged(story: string): void {
    this.world.log.recordPartition(this.world.wire.partition);
    this.world.observeWorld();
    this.world.log.notableEvent("nemesis", story);
  }

  private crashAndRestartLater(node: SimNode<unknown>, when: string): void {
    this.crash(node, when);
    this.world.scheduler.after(this.world.prng.int(100_000, 3_000_000), () => {
      if (!this.healed && !node.up && !this.lost.includes(node.id)) this.restart(node);
    });
  }

  private crash(node: SimNode<unknown>, when: string): void {
    this.crashArmed.delete(node.id);
    node.crash();
    this.world.log.recordNode(node.id, "crashed");
    this.world.nodeCrashed(node.id);
    this.world.observeWorld();
    const outcome = node.disk.crash(this.world.prng);
    for (const g of this.world.groups) g.downDurable.delete(node.id);
    this.crashes++;
    if (outcome.lost > 0) this.crashesLosingWrites++;
    this.world.log.notableEvent(`node ${node.id}`, `CRASHED ${when} (${outcome.lost} unsynced write(s) lost${outcome.torn ? ", last surviving write torn" : ""})`);
  }

  private restart(node: SimNode<unknown>): void {
    for (const g of this.world.groups) {
      g.downDurable.delete(node.id);
      g.oneValuePerSlot.restarted(node.id);
    }
    this.world.log.replay?.forget(node.id);
    this.world.log.recordNode(node.id, "restarted");
    node.restart();
    this.world.observeWorld();
    this.world.log.notableEvent(`node ${node.id}`, `restarted (term ${node.engine.status().term}, last index ${node.engine.status().lastIndex})`);
  }

  private resume(node: SimNode<unknown>): void {
    if (!node.paused) return;
    this.world.log.notableEvent(`node ${node.id}`, "resumed");
    this.world.log.recordNode(node.id, "resumed");
    node.resume();
    this.world.observeWorld();
  }

  /** Delivers a held link's packets, in the order sent, and stops holding it. */
  private releaseLink(from: NodeId, to: NodeId): void {
    const held = this.world.wire.takeHeld(from, to);
    if (held === undefined) return;
    this.world.observeWorld();
    this.world.log.notableEvent("nemesis", `releasing ${held.messages.length} held packet(s) ${held.from} -> ${held.to}`);
    this.world.wire.deliverHeld(held);
  }

  /** The end of the fault phase: every held link released, every partition removed, every node up and running, the network reliable. */
  heal(): void {
    this.healed = true;
    for (const [from, to] of this.world.wire.heldPairs()) this.releaseLink(from, to);
    this.crashArmed.clear();
    this.world.wire.partition.heal();
    this.world.log.recordPartition(this.world.wire.partition);
    this.world.observeWorld();
    this.world.wire.makeReliable();
    for (const node of this.world.nodes.values()) {
      if (!node.up) {
        if (!this.lost.includes(node.id)) this.restart(node);
      } else if (node.paused) this.resume(node);
    }
    this.world.log.notableEvent("nemesis", "HEAL: partitions removed, crashed nodes restarted, paused nodes resumed, network reliable");
  }
}

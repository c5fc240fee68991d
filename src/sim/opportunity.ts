/**
 * What a run let the cluster do: the opportunities it offered for progress, measured from
 * the simulation's own state. A progress check ("a change committed", "leadership moved",
 * "a successor was elected") is fair only when the run gave the engine a chance; a check
 * that fails on bad luck is as misleading as one that cannot fail. So scenarios ask this
 * log whether the chance was there, and say which one in their failure message.
 *
 * Definitions, all in virtual microseconds:
 * - A node is *running* when it is up (not crashed) and not paused.
 * - Two nodes are *linked* when packets flow both ways between them: no partition cuts
 *   either direction and the nemesis holds neither link. A lossy link still counts: the
 *   engines retransmit.
 * - A *serving window* is a maximal interval during which one node L leads one term T
 *   (the highest term led by an up node), L is running, and for every majority group of
 *   the configuration L acts on (both halves of a joint one) a majority of the group is L
 *   itself or running and linked with L. Inside one, a correct engine can commit.
 * - A window is *settled* from the moment L's commit index holds an entry of term T: its
 *   followers have caught up, and a new entry needs one round of replication. How long
 *   catching up takes depends on how far behind they were (a follower back from a crash
 *   may need thousands of entries one message at a time), so checks that need a fresh
 *   commit count from the settling, and checks about commit itself from the window.
 */
import type { NodeId } from "../core/engine/contract.js";
import { formatTime } from "./history.js";

/** The world at one moment, as the simulation saw it. */
export interface WorldState {
  readonly running: (id: NodeId) => boolean;
  readonly linked: (a: NodeId, b: NodeId) => boolean;
  /** The leader of the highest term among up nodes, and the groups a majority of each must agree. */
  readonly leader: { readonly id: NodeId; readonly term: number; readonly groups: readonly (readonly NodeId[])[] } | null;
}

interface Frame {
  readonly atMicros: number;
  /** Bit i: node ids[i] running. */
  readonly running: number;
  /** Bit i*n+j: ids[i] linked to ids[j]. A bigint: 9 nodes need 81 bits, past a number's exact 53. */
  readonly linked: bigint;
  readonly leader: NodeId | null;
  readonly term: number;
  readonly serving: boolean;
}

export interface ServingWindow {
  readonly leader: NodeId;
  readonly term: number;
  readonly fromMicros: number;
  /** When it ended, or the time it was asked about if it had not. */
  readonly toMicros: number;
  /** Nodes running and linked with the leader for the whole window (the leader included). */
  readonly reachable: readonly NodeId[];
  /** When the leader's commit index first held an entry of its term, if it did by `toMicros`. */
  readonly settledMicros: number | null;
}

/** The most nodes tracked: `connectedGroup` tries every subset (512 for 9). */
const NODES_MAX = 9;

export class OpportunityLog {
  private readonly frames: Frame[] = [];
  private readonly index = new Map<NodeId, number>();
  /** By "leader:term": when that leader first committed an entry of its term. */
  private readonly settled = new Map<string, number>();

  constructor(private readonly ids: readonly NodeId[]) {
    if (ids.length > NODES_MAX) throw new Error(`the opportunity log tracks at most ${NODES_MAX} nodes, not ${ids.length}`);
    ids.forEach((id, i) => this.index.set(id, i));
  }

  /** Records the world at `atMicros` (times must not go back). Cheap when nothing changed. */
  observe(atMicros: number, world: WorldState): void {
    const n = this.ids.length;
    let running = 0;
    let linked = 0n;
    for (let i = 0; i < n; i++) {
      const a = this.ids[i] as NodeId;
      if (world.running(a)) running += 2 ** i;
      for (let j = 0; j < n; j++) if (i !== j && world.linked(a, this.ids[j] as NodeId)) linked |= 1n << BigInt(i * n + j);
    }
    const leader = world.leader;
    const serving = leader !== null && this.isServing(leader.id, leader.groups, running, linked);
    const frame: Frame = { atMicros, running, linked, leader: leader?.id ?? null, term: leader?.term ?? 0, serving };
    const last = this.frames[this.frames.length - 1];
    if (last !== undefined && last.running === running && last.linked === linked && last.leader === frame.leader && last.term === frame.term && last.serving === serving) return;
    if (last !== undefined && last.atMicros === atMicros) this.frames[this.frames.length - 1] = frame;
    else this.frames.push(frame);
  }

  /** Whether `leader` already committed an entry of `term` (only the first report counts). */
  isSettled(leader: NodeId, term: number): boolean {
    return this.settled.has(`${leader}:${term}`);
  }

  /** `leader`'s commit index holds an entry of its term `term` from `atMicros` on. */
  settle(leader: NodeId, term: number, atMicros: number): void {
    if (!this.isSettled(leader, term)) this.settled.set(`${leader}:${term}`, atMicros);
  }

  private bit(mask: number, i: number): boolean {
    return Math.floor(mask / 2 ** i) % 2 === 1;
  }

  private isRunning(frame: { readonly running: number }, id: NodeId): boolean {
    const i = this.index.get(id);
    return i !== undefined && this.bit(frame.running, i);
  }

  private isLinked(frame: { readonly linked: bigint }, a: NodeId, b: NodeId): boolean {
    const i = this.index.get(a);
    const j = this.index.get(b);
    const n = this.ids.length;
    return i !== undefined && j !== undefined && ((frame.linked >> BigInt(i * n + j)) & 1n) === 1n && ((frame.linked >> BigInt(j * n + i)) & 1n) === 1n;
  }

  private isServing(leader: NodeId, groups: readonly (readonly NodeId[])[], running: number, linked: bigint): boolean {
    const frame = { running, linked };
    if (!this.isRunning(frame, leader)) return false;
    return groups.every((group) => {
      const reached = group.filter((id) => id === leader || (this.isRunning(frame, id) && this.isLinked(frame, leader, id))).length;
      return reached >= Math.floor(group.length / 2) + 1;
    });
  }

  /** Every serving window that began before `untilMicros`, the last one cut off there. */
  servingWindows(untilMicros: number): ServingWindow[] {
    const windows: ServingWindow[] = [];
    let open: { leader: NodeId; term: number; fromMicros: number; reachable: NodeId[] } | null = null;
    const close = (atMicros: number): void => {
      if (open !== null && atMicros > open.fromMicros) {
        const settled = this.settled.get(`${open.leader}:${open.term}`);
        const settledMicros = settled === undefined || settled > atMicros ? null : Math.max(settled, open.fromMicros);
        windows.push({ ...open, toMicros: atMicros, settledMicros });
      }
      open = null;
    };
    for (const frame of this.frames) {
      if (frame.atMicros >= untilMicros) break;
      const current = open as { leader: NodeId; term: number; fromMicros: number; reachable: NodeId[] } | null;
      if (current !== null && (!frame.serving || frame.leader !== current.leader || frame.term !== current.term)) close(frame.atMicros);
      if (!frame.serving || frame.leader === null) continue;
      const leader = frame.leader;
      const reachable = this.ids.filter((id) => id === leader || (this.isRunning(frame, id) && this.isLinked(frame, leader, id)));
      if (open === null) open = { leader, term: frame.term, fromMicros: frame.atMicros, reachable };
      else open.reachable = open.reachable.filter((id) => reachable.includes(id));
    }
    close(untilMicros);
    return windows;
  }

  /**
   * Whether `node` was running and linked with a majority of `voters` (itself counting
   * when it is one) at some moment of [fromMicros, toMicros].
   */
  reachedMajority(node: NodeId, fromMicros: number, toMicros: number, voters: readonly NodeId[]): boolean {
    return this.framesDuring(fromMicros, toMicros).some((frame) => {
      if (!this.isRunning(frame, node)) return false;
      const reached = voters.filter((id) => id === node || (this.isRunning(frame, id) && this.isLinked(frame, node, id))).length;
      return reached * 2 > voters.length;
    });
  }

  /**
   * The largest set of `among` that holds every node of `including`, has at least `minimum`
   * members, and whose members were all running and linked with each other throughout
   * [fromMicros, toMicros] — a group that could elect one of its own and commit — or an
   * empty list when there is none.
   */
  connectedGroup(fromMicros: number, toMicros: number, among: readonly NodeId[], minimum: number, including: readonly NodeId[] = []): NodeId[] {
    const frames = this.framesDuring(fromMicros, toMicros);
    if (frames.length === 0) return [];
    const fits = (set: readonly NodeId[]): boolean =>
      frames.every((frame) => set.every((a) => this.isRunning(frame, a) && set.every((b) => a === b || this.isLinked(frame, a, b))));
    // Clusters are small (≤ 9 nodes): try every subset, keeping the largest that fits.
    let best: NodeId[] = [];
    for (let mask = 1; mask < 2 ** among.length; mask++) {
      const set = among.filter((_, i) => this.bit(mask, i));
      if (set.length < Math.max(minimum, best.length + 1) || !including.every((id) => set.includes(id))) continue;
      if (fits(set)) best = set;
    }
    return best;
  }

  /** The frames in force at some moment of [fromMicros, toMicros]. */
  private framesDuring(fromMicros: number, toMicros: number): Frame[] {
    const during: Frame[] = [];
    for (let i = 0; i < this.frames.length; i++) {
      const frame = this.frames[i] as Frame;
      const next = this.frames[i + 1];
      if (frame.atMicros > toMicros) break;
      if (next !== undefined && next.atMicros <= fromMicros) continue;
      during.push(frame);
    }
    return during;
  }
}

export function describeWindow(window: ServingWindow): string {
  return `node ${window.leader} led term ${window.term} with nodes ${window.reachable.join(",")} running and linked with it from ${formatTime(window.fromMicros)} to ${formatTime(window.toMicros)} (${formatTime(window.toMicros - window.fromMicros)})`;
}

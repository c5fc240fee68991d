/**
 * A run's side of ranges that split (`synod sim --splits N`; the nodes' side is
 * node-splits.ts): the key space is a RangeTable presplit into `--groups` ranges, as a
 * sharded node starts, and N splits happen during the fault phase, under every fault class
 * the nemesis has, each the production sequence a node runs on `POST /v1/shards/{id}/split`
 * (runtime/server/node-range-admin.ts `splitRange`): a range id from group 0's `range-id`
 * command, proposed through group 0's leader, then the `split` command proposed through the
 * parent's leader, which the node reaches over the link between the nodes.
 *
 * The clients route by views of the ranges they keep and refresh (range-view.ts). The
 * checkers read the ranges as they end:
 *
 * - Linearizability per key over the whole history: a key's history spans the range that
 *   owned it before a split and the one that owns it after (the KV model's keys are
 *   independent registers, so the check is per key whatever served it).
 * - No acknowledged write lost, per key against the range that owns the key at the end: every
 *   replica of it holding state must hold the write, either applied in that range itself or
 *   applied in an ancestor before the split that carried the key over (the child's first
 *   snapshot is its parent's state at the split).
 * - Liveness per range at the end: each must serve reads and writes after the heal.
 */
import type { NodeId } from "../core/engine/contract.js";
import { compareUtf8 } from "../core/common/utf8.js";
import type { Prng } from "../core/common/prng.js";
import type { KvResult } from "../core/kv/model.js";
import type { SplitMutant } from "../core/kv/split-mutants.js";
import { DEFAULT_GROUP, type GroupId } from "../core/multi/group.js";
import { RangeTable, spanHolds, type RangeDescriptor } from "../core/multi/ranges.js";
import type { SimNode } from "./node.js";
import type { SimNodeSplitOptions, SplitApplied } from "./node-splits.js";
import type { SimParams } from "./params.js";
import type { KeySpace } from "./workload.js";
import { ClientRangeView } from "./range-view.js";
import { checkSplitRun, type SplitCheckWorld } from "./split-checks.js";

/** Tries at one split (a range id, then the split) before the run gives it up. */
const SPLIT_TRIES_MAX = 20;
/** Between two tries at a split that found no leader, or failed. */
const SPLIT_RETRY_MICROS = 300_000;
/** How long a try waits for an answer, in client timeouts: a node's request times out after two (its answer is then an error); past three, the message or the node was lost. */
const ANSWER_WAIT_CLIENT_TIMEOUTS = 3;
/** The split-lag fault: how long a follower of the parent stalls as the split is proposed, at most. */
const SPLIT_LAG_MICROS_MAX = 600_000;

/** Groups a run with splits has room for: the first ranges, and twice the splits asked for (a range id whose split failed is not used again). */
export function splitSlots(ranges: number, splits: number): number {
  return ranges + 2 * splits;
}

export interface SplitRunWorld {
  readonly params: SimParams;
  /** The ranges the cluster starts with. */
  readonly ranges: number;
  readonly splits: number;
  readonly mutant: SplitMutant | null;
  readonly nodes: ReadonlyMap<NodeId, SimNode<unknown>>;
  readonly prng: Prng;
  now(): number;
  after(delayMicros: number, action: () => void): void;
  /** `group`'s leader with the highest term among the live nodes. */
  leaderOf(group: GroupId): NodeId | null;
  /** Runs `action` on node `to`, over the link between the nodes. */
  overNodeLink(from: NodeId, to: NodeId, action: (node: SimNode<unknown>) => void): void;
  /** Pauses node `id` for `micros` (the nemesis's hands: the split-lag fault). */
  pause(id: NodeId, micros: number): void;
  /** Request keys of every write `group` applied through `index`, in its own log. */
  ownRequestsThrough(index: number, group: GroupId): Set<string>;
  /** Node `split.node` applied a split (each node's apply of each split): the scenario may act on it. */
  splitApplied(split: SplitApplied): void;
  note(text: string): void;
}

export interface SplitStats {
  readonly asked: number;
  readonly done: number;
  /** Tries that failed (no leader, a timeout, a range id past the run's room). */
  readonly failedTries: number;
  readonly rangesAtEnd: number;
  /** Over every node: ranges hosted for a member's message (a missed split), and requests refused as a range mismatch. */
  readonly adoptions: number;
  readonly readMismatchesOnArrival: number;
  readonly readMismatchesAfterReadIndex: number;
  readonly writeMismatches: number;
}

export class SplitRun {
  readonly table: RangeTable;
  readonly slots: number;
  /** Every split, as the first node to apply it told, in that order. */
  private readonly applied: SplitApplied[] = [];
  private readonly childOf = new Map<GroupId, SplitApplied>();
  private readonly keyNames: readonly string[];
  private failedTries = 0;
  private stopped = false;

  constructor(private readonly world: SplitRunWorld) {
    this.table = RangeTable.presplit(world.ranges);
    this.slots = splitSlots(world.ranges, world.splits);
    this.keyNames = splitKeyNames(Math.max(2, world.params.keys) * (world.ranges + world.splits));
  }

  /** What each node is told. */
  nodeOptions(): SimNodeSplitOptions {
    return {
      table: this.table,
      mutant: this.world.mutant,
      applied: (split) => {
        this.recordSplit(split);
        this.world.splitApplied(split);
      },
    };
  }

  /** The clients' keys: spread over the key space, so every range holds some, and each split moves some. */
  keySpace(): KeySpace {
    const table = this.table;
    return { names: this.keyNames, groupOf: (key) => table.forKey(key).id };
  }

  /** A client's view of the ranges: the first table, refreshed from the nodes' refusals. */
  clientView(): ClientRangeView {
    return new ClientRangeView(this.table);
  }

  private recordSplit(split: SplitApplied): void {
    if (this.childOf.has(split.child)) return;
    this.childOf.set(split.child, split);
    this.applied.push(split);
    this.world.note(`range ${split.parent} split at ${JSON.stringify(split.at)} (index ${split.index}): range ${split.child} was born (first applied on node ${split.node})`);
  }

  /**
   * The request keys of every write a replica of `group` holds once it applied `index`: its
   * own log's through `index`, and for a range born of a split, its parent's through the
   * split (what its first snapshot holds), and so on up.
   */
  requestsThrough(index: number, group: GroupId): Set<string> {
    const held = this.world.ownRequestsThrough(index, group);
    const birth = this.childOf.get(group);
    if (birth !== undefined) for (const key of this.requestsThrough(birth.index, birth.parent)) held.add(key);
    return held;
  }

  /** The ranges as the splits applied so far leave them. */
  currentTable(): RangeTable {
    const ranges = new Map<GroupId, RangeDescriptor>(this.table.list().map((range) => [range.id, range]));
    for (const split of this.applied) {
      const parent = ranges.get(split.parent);
      if (parent === undefined) continue;
      ranges.set(split.parent, { ...parent, end: split.at, epoch: parent.epoch + 1 });
      ranges.set(split.child, { id: split.child, start: split.at, end: parent.end, epoch: parent.epoch + 1 });
    }
    return new RangeTable([...ranges.values()]);
  }

  /** Starts the splits: the first after a tenth of the fault phase, the others spread over its next six tenths. */
  start(): void {
    const { params, splits, prng } = this.world;
    const times = Array.from({ length: splits }, (_, i) => Math.round(params.faultPhaseMicros * (0.1 + (0.6 * i) / splits) + prng.int(0, 200_000)));
    const next = (i: number): void => {
      const at = times[i];
      if (at === undefined || this.stopped) return;
      this.world.after(Math.max(0, at - this.world.now()), () => this.trySplit(i, 1, () => next(i + 1)));
    };
    next(0);
  }

  /** Stops asking for splits (the heal is under way: what remains must settle). */
  stop(): void {
    this.stopped = true;
  }

  /** One try at split `i`: a range id from group 0's leader, then the split through the parent's. */
  private trySplit(i: number, tries: number, done: () => void): void {
    if (this.stopped) return;
    const retry = (why: string): void => {
      this.failedTries++;
      this.world.note(`split ${i + 1}, try ${tries}: ${why}`);
      if (tries >= SPLIT_TRIES_MAX) {
        this.world.note(`split ${i + 1} given up after ${tries} tries (${why})`);
        return done();
      }
      this.world.after(SPLIT_RETRY_MICROS, () => this.trySplit(i, tries + 1, done));
    };
    const choice = this.chooseSplit();
    if (choice === null) return done();
    const zero = this.world.leaderOf(DEFAULT_GROUP);
    const zeroNode = zero === null ? undefined : this.world.nodes.get(zero);
    if (zero === null || zeroNode === undefined || zeroNode.splitting === null) return retry("group 0 has no leader");
    let settled = false;
    const once = (action: () => void): void => {
      if (settled) return;
      settled = true;
      action();
    };
    const atLeast = Math.max(this.world.ranges, ...zeroNode.splitting.view().map((range) => range.id + 1));
    const proposed = zeroNode.runInProcess(() =>
      zeroNode.splitting?.propose(DEFAULT_GROUP, { op: "range-id", atLeast }, (outcome) =>
        once(() => {
          if (outcome instanceof Error || outcome.op !== "range-id") return retry(`no range id: ${describe(outcome)}`);
          if (outcome.id >= this.slots) {
            this.world.note(`split ${i + 1}: range id ${outcome.id} is past the run's ${this.slots} groups; no more splits`);
            this.stopped = true;
            return done();
          }
          this.proposeSplit(zero, choice, outcome.id, (result) => (result === null ? done() : retry(result)));
        }),
      ),
    );
    if (!proposed) return once(() => retry("group 0's leader is down"));
    // An answer lost with a node that crashed (its waiters die with it) is a failed try.
    this.world.after(this.world.params.clientTimeoutMicros * ANSWER_WAIT_CLIENT_TIMEOUTS, () => once(() => retry("no range id came back")));
  }

  /** The split itself, through the parent's leader: `finished` gets null once it applied, else why not. */
  private proposeSplit(from: NodeId, choice: { readonly parent: GroupId; readonly at: string }, child: GroupId, finished: (why: string | null) => void): void {
    // The heal came while group 0 handed out the id: no split after it (the id goes unused).
    if (this.stopped) return finished(null);
    const leader = this.world.leaderOf(choice.parent);
    if (leader === null) return finished(`range ${choice.parent} has no leader`);
    this.lagFollower(choice.parent, leader);
    let settled = false;
    const answer = (outcome: KvResult | Error): void => {
      if (settled) return;
      settled = true;
      if (!(outcome instanceof Error) && outcome.op === "split") return finished(null);
      finished(`range ${choice.parent} did not split: ${describe(outcome)}`);
    };
    this.world.overNodeLink(from, leader, (node) => node.runInProcess(() => node.splitting?.propose(choice.parent, { op: "split", at: choice.at, child }, answer)));
    // An answer lost on the way, or a node that crashed with it, is a failed try.
    this.world.after(this.world.params.clientTimeoutMicros * ANSWER_WAIT_CLIENT_TIMEOUTS, () => answer(new Error("no answer")));
  }

  /**
   * The split-lag fault (with pauses among the fault classes): a follower of the parent
   * stalls as the split is proposed, and wakes behind it, with the requests that reached it
   * meanwhile still to serve: a read of a moved key admitted there before the split applies
   * must not be answered from the parent once it has (tikv/tikv#14699).
   */
  private lagFollower(parent: GroupId, leader: NodeId): void {
    const { params, prng } = this.world;
    if (!params.faults.includes("pause")) return;
    const followers = [...this.world.nodes.values()].filter((node) => node.up && !node.paused && node.id !== leader && node.hosts(parent)).map((node) => node.id);
    if (followers.length === 0) return;
    const micros = prng.int(100_000, Math.min(SPLIT_LAG_MICROS_MAX, Math.round(params.clientTimeoutMicros * 0.6)));
    const follower = prng.pick(followers);
    this.world.note(`split-lag: node ${follower} (a follower of range ${parent}) stalls ${(micros / 1000).toFixed(0)}ms as the split is proposed`);
    this.world.pause(follower, micros);
  }

  /** A range to split and where: one with two client keys or more, cut at the middle one. */
  private chooseSplit(): { readonly parent: GroupId; readonly at: string } | null {
    const table = this.currentTable();
    const candidates = table.list().flatMap((range) => {
      const keys = this.keyNames.filter((key) => spanHolds(range, key)).sort(compareUtf8);
      return keys.length >= 2 ? [{ parent: range.id, at: keys[Math.floor(keys.length / 2)] as string }] : [];
    });
    return candidates.length === 0 ? null : this.world.prng.pick(candidates);
  }

  /** The end-of-run checks, over the ranges as the run ends (split-checks.ts). */
  finalChecks(world: Omit<SplitCheckWorld, "table">): void {
    checkSplitRun({ ...world, table: this.currentTable() });
  }

  stats(): SplitStats {
    const counts = { adoptions: 0, readMismatchesOnArrival: 0, readMismatchesAfterReadIndex: 0, writeMismatches: 0 };
    for (const node of this.world.nodes.values()) for (const name of Object.keys(counts) as (keyof typeof counts)[]) counts[name] += node.splitting?.counts[name] ?? 0;
    return { asked: this.world.splits, done: this.applied.length, failedTries: this.failedTries, rangesAtEnd: this.currentTable().size, ...counts };
  }
}

function describe(outcome: KvResult | Error): string {
  if (outcome instanceof Error) return outcome.message;
  return outcome.op === "rejected" ? outcome.reason : outcome.op;
}

/** `count` keys spread over the presplit boundaries' characters ('0' to 'z'), in key order. */
export function splitKeyNames(count: number): string[] {
  const first = 0x30;
  const radix = 0x7b - 0x30;
  return Array.from({ length: count }, (_, i) => `${String.fromCharCode(first + Math.floor(((i + 0.5) * radix) / count))}k${i}`);
}

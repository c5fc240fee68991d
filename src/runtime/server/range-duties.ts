/**
 * What a node of a sharded cluster does for its ranges on its own, on timers: spreading
 * leaderships over the nodes, moving each range it leads towards group 0's members, and
 * splitting ranges that outgrew `--split-keys` or run hotter than `--split-load`
 * (docs/sharding.md). Each look is cheap when there is nothing to do: at 10,000 ranges the
 * looks were most of what an idle node did, before they skipped what had not changed.
 */
import type { Logger } from "pino";
import type { Membership, NodeId } from "../../core/engine/contract.js";
import { splitRefusal } from "../../core/kv/split.js";
import { DEFAULT_GROUP, type GroupId } from "../../core/multi/group.js";
import { leadershipMoves } from "../../core/multi/leader-balance.js";
import { rangeMembershipChange } from "../../core/multi/range-members.js";
import type { NodeRanges } from "./node-ranges.js";

/** How often a node of a sharded cluster looks at who leads what (leader-balance.ts). */
export const LEADER_BALANCE_INTERVAL_MS = 1000;
/** The least time between two looks that moved leaderships, by one node: each move's election settles first. */
export const LEADER_MOVE_SPACING_MS = 3000;
/**
 * Leaderships one node hands over at one look, at most. A transfer is cheap (an append and
 * a `timeout-now`), and a node back from a restart leads none of its ranges: at 10,000
 * ranges on three nodes that is 3,300 moves, which one at a time took hours.
 */
export const LEADER_MOVES_PER_LOOK = 50;

/** How often a node of a sharded cluster looks for a range it leads that outgrew `--split-keys` or is hotter than `--split-load`. */
export const SPLIT_CHECK_INTERVAL_MS = 2000;

/** What splitting ranges by size needs from the node. */
export interface SizeSplitting {
  /** A range splits once it holds more than this many keys (0: never by its size). */
  readonly splitKeys: number;
  /** Whether ranges split by load (`--split-load`: each replica's LoadSplitter says where). */
  readonly splitLoad: boolean;
  /** The most ranges the cluster runs (config.ts RANGES_MAX). */
  readonly rangesMax: number;
  /** Splits range `id` at `key` (null: its middle key), as the node's `POST /v1/shards/{id}/split` does. */
  readonly split: (id: GroupId, key: string | null) => Promise<unknown>;
  readonly log: Logger;
}

/** How often a node looks for a range it leads whose members are not group 0's. */
export const MEMBERS_CHECK_INTERVAL_MS = 250;

/** What following group 0's members needs from the node. */
export interface MemberFollowing {
  /** Group 0's configuration: the cluster's members. */
  readonly cluster: () => Membership;
  /** Whether ranges are placed on some members only now (range-placement.ts), and so do not follow group 0's. */
  readonly placing: () => boolean;
  readonly log: Logger;
}

/** What spreading leaderships needs from the node. */
export interface LeaderBalancing {
  readonly self: NodeId;
  /** The voters this node reaches now, itself among them. */
  readonly live: () => readonly NodeId[];
  readonly log: Logger;
  /** A leadership this node handed over. */
  readonly moved?: (range: GroupId, to: NodeId) => void;
  /**
   * Where ranges are on some members only (range-placement.ts): every range's leader and
   * voters as the peers describe them; null: each range as this node's replica sees it.
   */
  readonly placed?: () => { readonly leaders: ReadonlyMap<GroupId, NodeId | null>; readonly voters: ReadonlyMap<GroupId, readonly NodeId[]> } | null;
}

export class RangeDuties {
  private balanceTimer: NodeJS.Timeout | null = null;
  private moving = false;
  private lastMoveMs = 0;
  /** The ranges' `changes` and the live nodes at the balancer's last look that found nothing to move (null: look again). */
  private balancedAt: { readonly changes: number; readonly live: string } | null = null;
  private splitTimer: NodeJS.Timeout | null = null;
  private splitting = false;
  private membersTimer: NodeJS.Timeout | null = null;
  private readonly changingMembers = new Set<GroupId>();
  /** Ranges last found with group 0's members, and the two configurations compared then. */
  private readonly membersFollowed = new Map<GroupId, { readonly wanted: Membership; readonly membership: Membership }>();

  constructor(private readonly ranges: NodeRanges) {
    ranges.onRemoved = (group) => this.membersFollowed.delete(group);
  }

  /**
   * On a sharded cluster: every LEADER_BALANCE_INTERVAL_MS, hands ranges this node leads to
   * the live nodes leading the fewest, while it leads more than one more (`leadershipMoves`):
   * up to LEADER_MOVES_PER_LOOK at once, the next look once they all ended and at least
   * LEADER_MOVE_SPACING_MS after.
   */
  balanceLeaders(balancing: LeaderBalancing): void {
    if (!this.ranges.sharded || this.balanceTimer !== null) return;
    this.balanceTimer = setInterval(() => this.balanceOnce(balancing), LEADER_BALANCE_INTERVAL_MS);
    this.balanceTimer.unref();
  }

  private balanceOnce({ self, live, log, moved, placed }: LeaderBalancing): void {
    if (this.moving || Date.now() - this.lastMoveMs < LEADER_MOVE_SPACING_MS) return;
    const view = placed?.() ?? null;
    const reachable = live();
    // Every range on this node: nothing to look at while no leadership changed, no range came
    // or went and the same nodes are live since a look that found nothing to move (a look
    // lists every range: at 10,000 of them, most of what an idle node did each second).
    const seen = view === null ? { changes: this.ranges.changes, live: reachable.join(",") } : null;
    if (seen !== null && this.balancedAt?.changes === seen.changes && this.balancedAt.live === seen.live) return;
    const leaders = view?.leaders ?? new Map(this.ranges.all().map((replica) => [replica.group, replica.engine.status().leader] as const));
    const moves = leadershipMoves({ self, live: reachable, leaders, ...(view === null ? {} : { voters: view.voters }) }, LEADER_MOVES_PER_LOOK);
    this.balancedAt = moves.length === 0 ? seen : null;
    const started = moves.flatMap((move) => {
      const replica = this.ranges.get(move.range);
      if (replica === undefined) return [];
      return [
        replica.driver
          .transferLeadership(move.to)
          .then(() => moved?.(move.range, move.to))
          .catch((error: unknown) => log.debug({ err: error, range: move.range, to: move.to }, "the leadership move did not happen; the next look decides again")),
      ];
    });
    if (started.length === 0) return;
    this.moving = true;
    this.lastMoveMs = Date.now();
    log.info({ moves: started.length, first: moves[0] }, "handing over a range's leadership (moves: how many at once) to spread them over the nodes");
    void Promise.allSettled(started).then(() => {
      this.moving = false;
      this.lastMoveMs = Date.now();
    });
  }

  /**
   * On a sharded cluster: every MEMBERS_CHECK_INTERVAL_MS, each range this node leads whose
   * members are not group 0's is moved one configuration change towards them
   * (`rangeMembershipChange`), one change in flight per range.
   */
  followMembers(following: MemberFollowing): void {
    if (!this.ranges.sharded || this.membersTimer !== null) return;
    this.membersTimer = setInterval(() => this.followOnce(following), MEMBERS_CHECK_INTERVAL_MS);
    this.membersTimer.unref();
  }

  private followOnce({ cluster, placing, log }: MemberFollowing): void {
    if (placing()) return;
    const wanted = cluster();
    for (const replica of this.ranges.all()) {
      if (replica.group === DEFAULT_GROUP || this.changingMembers.has(replica.group)) continue;
      // Found following these members before: nothing to look at until either changes (a
      // configuration is one object until it changes), which keeps a look at 10,000 ranges
      // cheap. Whether it follows them does not depend on who leads, so a range this node
      // follows is marked too (before, the two thirds of ranges led elsewhere were looked at
      // in full four times a second: the most an idle node at 10,000 ranges did).
      const membership = replica.membership();
      const checked = this.membersFollowed.get(replica.group);
      if (checked?.wanted === wanted && checked.membership === membership) continue;
      const change = rangeMembershipChange(wanted, membership);
      if (change === null) {
        this.membersFollowed.set(replica.group, { wanted, membership });
        continue;
      }
      if (replica.engine.status().role !== "leader") continue;
      this.changingMembers.add(replica.group);
      log.info({ range: replica.group, voters: change.voters, learners: change.learners }, "changing a range's members to the cluster's");
      replica.driver
        .changeMembership(change)
        .catch((error: unknown) => log.info({ err: error, range: replica.group }, "the range's members did not change; the next look decides again"))
        .finally(() => this.changingMembers.delete(replica.group));
    }
  }

  /** Whether every range this node hosts has group 0's members (as this node applied them). */
  followingMembers(cluster: Membership): boolean {
    return this.ranges.all().every((replica) => replica.group === DEFAULT_GROUP || rangeMembershipChange(cluster, replica.membership()) === null);
  }

  /**
   * On a sharded cluster with `splitKeys` above 0: every SPLIT_CHECK_INTERVAL_MS, the range
   * this node leads with the most keys, when over `splitKeys`, splits at its middle key.
   * One split at a time per node; none once the cluster runs `rangesMax` ranges.
   */
  splitBySize(splitting: SizeSplitting): void {
    if (!this.ranges.sharded || (splitting.splitKeys <= 0 && !splitting.splitLoad) || this.splitTimer !== null) return;
    this.splitTimer = setInterval(() => this.splitOnce(splitting), SPLIT_CHECK_INTERVAL_MS);
    this.splitTimer.unref();
  }

  private splitOnce({ splitKeys, rangesMax, split, log }: SizeSplitting): void {
    if (this.splitting || this.ranges.count >= rangesMax) return;
    const leading = this.ranges.all().filter((replica) => replica.engine.status().role === "leader" && this.ranges.holdsState(replica));
    const now = Date.now();
    // By load first: the hottest range that has been hot long enough, at the key that halves its writes.
    const hot = leading
      .map((replica) => {
        const span = replica.kv.backend.span ?? { start: "", end: null };
        return { replica, at: replica.load?.splitKey(now, (key) => splitRefusal(span, key) === null) ?? null, rate: replica.load?.rate(now) ?? 0 };
      })
      .filter((candidate) => candidate.at !== null)
      .sort((a, b) => b.rate - a.rate)[0];
    const grown = splitKeys <= 0 ? undefined : leading.filter((replica) => replica.kv.keys > splitKeys).sort((a, b) => b.kv.keys - a.kv.keys)[0];
    const chosen = hot === undefined ? (grown === undefined ? null : { replica: grown, at: null }) : { replica: hot.replica, at: hot.at };
    if (chosen === null) return;
    this.splitting = true;
    if (hot !== undefined) log.info({ range: hot.replica.group, writesPerSecond: hot.rate, at: hot.at }, "splitting a range hotter than --split-load at the key that halves its writes");
    else log.info({ range: chosen.replica.group, keys: chosen.replica.kv.keys, splitKeys }, "splitting a range that outgrew --split-keys");
    split(chosen.replica.group, chosen.at)
      .catch((error: unknown) => log.info({ err: error, range: chosen.replica.group }, "the range did not split; the next look decides again"))
      .finally(() => {
        this.splitting = false;
      });
  }


  stop(): void {
    if (this.splitTimer !== null) clearInterval(this.splitTimer);
    this.splitTimer = null;
    if (this.membersTimer !== null) clearInterval(this.membersTimer);
    this.membersTimer = null;
    if (this.balanceTimer !== null) clearInterval(this.balanceTimer);
    this.balanceTimer = null;
  }
}

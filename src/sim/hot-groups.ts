/**
 * The keys a run's clients use when nodes host several groups (`--groups`), and which of
 * those groups get requests when only a few at a time may (`--hot-groups`): the rest sit
 * idle, which is what quiescence saves on.
 */
import { groupOfKey, type GroupId } from "../core/multi/group.js";
import type { KeySpace } from "./workload.js";

/** With --hot-groups: how long the same few groups get every request. */
const HOT_GROUPS_ROTATE_MICROS = 1_000_000;

export interface HotGroupsOptions {
  /** Groups every node hosts. */
  readonly groups: number;
  /** Keys the clients use per group. */
  readonly keysPerGroup: number;
  /** How many groups get requests at a time in the fault phase (`--hot-groups`); absent: every group. */
  readonly hotGroups: number | undefined;
  /** When the fault phase ends: from then on every group serves again (each must, to pass liveness). */
  readonly healStartMicros: number;
  /** Virtual time now. */
  readonly now: () => number;
}

/** Which groups the clients use now, and the keys they draw from. */
export class HotGroups {
  constructor(private readonly options: HotGroupsOptions) {}

  /**
   * Whether the clients use `group`'s keys now — K groups at a time in the fault phase,
   * the next K each second; every group from the heal on.
   */
  isHot(group: GroupId): boolean {
    const { hotGroups: hot, groups, healStartMicros } = this.options;
    const now = this.options.now();
    if (hot === undefined || hot >= groups || now >= healStartMicros) return true;
    const first = (Math.floor(now / HOT_GROUPS_ROTATE_MICROS) * hot) % groups;
    return (group - first + groups) % groups < hot;
  }

  /**
   * The keys the clients use, with their groups: `keysPerGroup` of them per group, the
   * first names `k1, k2, ...` the fixed hash gives each group, so every group has work. Null
   * for one group: the clients draw `k1 .. k{keys}` as before groups existed.
   */
  keySpace(): KeySpace | null {
    const { groups, keysPerGroup, healStartMicros } = this.options;
    if (groups === 1) return null;
    const names: string[] = [];
    const perGroup = new Array<number>(groups).fill(0);
    for (let i = 1; names.length < groups * keysPerGroup; i++) {
      const group = groupOfKey(`k${i}`, groups);
      if ((perGroup[group] ?? 0) >= keysPerGroup) continue;
      perGroup[group] = (perGroup[group] ?? 0) + 1;
      names.push(`k${i}`);
    }
    const groupOf = (key: string): GroupId => groupOfKey(key, groups);
    const hot = this.options.hotGroups;
    if (hot === undefined || hot >= groups) return { names, groupOf };
    // A few groups at a time get the requests, the next few each second; the rest idle.
    // From the heal on every group serves again (each must, to pass liveness).
    const byGroup = Array.from({ length: groups }, (_, group) => names.filter((name) => groupOf(name) === group));
    const hotNames = (): readonly string[] => {
      const now = this.options.now();
      if (now >= healStartMicros) return names;
      const first = Math.floor(now / HOT_GROUPS_ROTATE_MICROS) * hot;
      return Array.from({ length: hot }, (_, i) => byGroup[(first + i) % groups] ?? []).flat();
    };
    return {
      get names(): readonly string[] {
        return hotNames();
      },
      groupOf,
    };
  }

  /**
   * The idle groups' cost, for the run's stats: the messages groups sent while they got no
   * requests (in the fault phase), and how many group-seconds that was. Null unless only
   * some groups get requests.
   */
  idleGroupsStats(idleGroupMessagesSent: number, faultPhaseMicros: number): { readonly messages: number; readonly groupSeconds: number } | null {
    const hot = this.options.hotGroups;
    if (hot === undefined || hot >= this.options.groups) return null;
    return { messages: idleGroupMessagesSent, groupSeconds: ((this.options.groups - hot) * faultPhaseMicros) / 1e6 };
  }
}

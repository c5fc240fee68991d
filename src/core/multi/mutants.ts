/**
 * Deliberately broken routing, so the simulator can prove its per-group checkers catch a
 * message that reaches the wrong group's replica. Production never builds one.
 */
import type { GroupId } from "./group.js";
import { GroupRouter, type GroupRouterOptions } from "./router.js";

export const ROUTER_MUTANTS = {
  "cross-group-delivery": "now and then hands a peer message to the replica of another group the node hosts (every 100th message, to the next group)",
} as const;

export type RouterMutant = keyof typeof ROUTER_MUTANTS;

export function isRouterMutant(name: string): name is RouterMutant {
  return Object.hasOwn(ROUTER_MUTANTS, name);
}

/** How often the mutant misroutes: deterministic, so a seed replays it exactly. */
const MISROUTE_EVERY = 100;

/** Every 100th message goes to the next hosted group (in id order) instead of its own. */
class CrossGroupRouter<M> extends GroupRouter<M> {
  private routed = 0;

  protected override target(group: GroupId): GroupId {
    this.routed++;
    if (this.routed % MISROUTE_EVERY !== 0) return group;
    const groups = this.groups;
    if (groups.length < 2) return group;
    const at = groups.indexOf(group);
    return groups[(at + 1) % groups.length] as GroupId;
  }
}

/** A router, or with `mutant`, the broken variant of that name. */
export function createRouter<M>(options: GroupRouterOptions<M>, mutant: RouterMutant | null = null): GroupRouter<M> {
  switch (mutant) {
    case null:
      return new GroupRouter(options);
    case "cross-group-delivery":
      return new CrossGroupRouter(options);
  }
}

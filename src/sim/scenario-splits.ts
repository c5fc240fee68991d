/**
 * The scenarios about ranges that split (`--splits`, sim/split-run.ts): asked for by name,
 * never drawn at random (they need splits to test anything). Part of the catalogue (scenarios.ts).
 */
import type { NodeId } from "../core/engine/contract.js";
import { withFaults, type Scenario, type ScenarioContext } from "./scenario-kit.js";

/**
 * Crashes a node right after it applies a split, one node at a time, and keeps it down 1.5
 * to 3 s: long enough for the leaders to compact past its logs. Its commit index may be
 * older on its disk than the split it applied (a commit index is saved without a sync of
 * its own), and its store is gone: its replica of the child is made again only if the
 * parent applies the split again from its log (core/multi/held-births.ts). Half the time it
 * crashes again soon after it restarts, while the child it made again may still start from
 * its held first state and the parent may have caught up past the split from its leader:
 * then no log here can make the child, and it must wait for its leader's snapshot.
 */
function splitCrashNemesis(ctx: ScenarioContext): void {
  let down: NodeId | null = null;
  const downFor = (): number => ctx.prng.int(1_500_000, 3_000_000);
  const restart = (node: NodeId, again: boolean): void => {
    ctx.restart(node);
    if (!again) {
      down = null;
      return;
    }
    ctx.during(ctx.prng.int(200_000, 1_500_000), () => {
      ctx.crash(node, "never");
      ctx.during(downFor(), () => restart(node, false));
    });
  };
  ctx.onSplitApplied(({ node }) => {
    if (down !== null || !ctx.prng.chance(0.5)) return;
    down = node;
    // After the apply, not inside it: the node's turn ends first, its saves not yet synced.
    ctx.during(0, () => ctx.crash(node, "never"));
    ctx.during(downFor(), () => restart(node, ctx.prng.chance(0.5)));
  });
}

export const SPLIT_SCENARIOS: readonly Scenario[] = [
  {
    name: "split-crash",
    description:
      "a node crashes the moment it applies a split (what it saved since its last fsync may be lost, its store is lost) and stays down while the others write on and compact past its log, then restarts: its replica of the split's child must be made again from the parent's log (--splits)",
    weight: 0,
    needsSplits: true,
    params: (p) => withFaults(p, ["crash"]),
    start: splitCrashNemesis,
  },
];

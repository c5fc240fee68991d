/**
 * Liveness after the heal: once the fault phase ends (every node restarted, resumed and
 * linked, the network reliable), the cluster must serve again. Checked only when the world
 * offered the chance: a majority of the nodes ran and were linked with each other over the
 * heal, which the opportunity log measures (opportunity.ts), as every progress check is.
 */
import type { NodeId } from "../../core/engine/contract.js";
import { formatTime, type Operation } from "../history.js";
import type { OpportunityLog } from "../opportunity.js";
import { InvariantViolation } from "./violation.js";

/** Served operations count from this long after the heal. */
const GRACE_MICROS = 2_000_000;

export interface LivenessCheck {
  /** The operations to judge: a group's, a range's, or the whole run's. */
  readonly served: readonly Operation[];
  readonly healStartMicros: number;
  readonly healEndMicros: number;
  /** Whether the workload reads at all (no read is then expected). */
  readonly reads: boolean;
  /** With `anyOperation`, one operation of either kind served is enough; else reads (when the workload reads) and writes. */
  readonly anyOperation: boolean;
  readonly opportunities: OpportunityLog;
  readonly nodeIds: readonly NodeId[];
  /** Where, for the message: "" or " in group G". */
  readonly where: string;
}

export function checkLiveness(check: LivenessCheck): void {
  const after = check.healStartMicros + GRACE_MICROS;
  const served = check.served.filter((op) => op.status === "ok" && op.return >= after);
  const reads = served.filter((op) => op.op === "get").length;
  const writes = served.length - reads;
  if (check.anyOperation ? served.length > 0 : (reads > 0 || !check.reads) && writes > 0) return;
  const ids = check.nodeIds;
  const linked = check.opportunities.connectedGroup(after, check.healEndMicros, ids, Math.floor(ids.length / 2) + 1);
  if (linked.length === 0) return;
  throw new InvariantViolation(
    "liveness",
    `no liveness${check.where}: after healing at ${formatTime(check.healStartMicros)} (plus ${formatTime(GRACE_MICROS)} grace) the cluster completed ${reads} read(s) and ${writes} write(s), though nodes ${linked.join(",")} were running and linked with each other from ${formatTime(after)} to ${formatTime(check.healEndMicros)}`,
  );
}

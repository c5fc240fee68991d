/**
 * The nemesis's fault schedule: one seed gives the same list of faults, each with its start,
 * its length and the nodes it hits, so a failing run is repeated by running its seed again.
 *
 * Faults come one at a time (each healed before the next starts), drawn from a shuffled deck
 * of every kind, so any run long enough for six faults has each kind at least once and a
 * short run still mixes partitions with process faults. A fault that should hit "the leader"
 * names the role, not a node: which node leads is only known when the fault starts, and the
 * runner prints the node it resolved.
 */
import { assert } from "../core/common/assert.js";
import { Prng } from "../core/common/prng.js";

export const FAULT_KINDS = ["isolate-leader", "split", "one-way", "bridge", "kill-restart", "pause-resume"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** A node by its id (1..n), or whichever node leads when the fault starts. */
export type Target = number | "leader";

export type Fault =
  /** The leader cut off from every other node, both ways; clients still reach it. */
  | { readonly kind: "isolate-leader"; readonly atMs: number; readonly durationMs: number }
  /** Two sides that cannot reach each other, both ways: a majority and a minority. */
  | { readonly kind: "split"; readonly atMs: number; readonly durationMs: number; readonly minority: readonly number[]; readonly majority: readonly number[] }
  /** `from` cannot send to `to`; `to` can still send to `from`. */
  | { readonly kind: "one-way"; readonly atMs: number; readonly durationMs: number; readonly from: Target; readonly to: number | "a follower" }
  /** Two halves that cannot reach each other, and one middle node that both reach. */
  | { readonly kind: "bridge"; readonly atMs: number; readonly durationMs: number; readonly left: readonly number[]; readonly middle: number; readonly right: readonly number[] }
  /** kill -9, then the same node started again (same data directory, same address). */
  | { readonly kind: "kill-restart"; readonly atMs: number; readonly durationMs: number; readonly target: Target }
  /** SIGSTOP, then SIGCONT: a process frozen mid-flight, with its sockets open. */
  | { readonly kind: "pause-resume"; readonly atMs: number; readonly durationMs: number; readonly target: Target };

export interface ScheduleOptions {
  readonly seed: number;
  /** From the first fault's start to the last one's heal. */
  readonly durationMs: number;
  /** 3 or 5. */
  readonly nodes: number;
}

/** Before the first fault: the cluster has elected a leader and clients are running. */
export const WARMUP_MS = 1000;
const FAULT_MS_MIN = 1500;
const FAULT_MS_MAX = 4000;
const GAP_MS_MIN = 500;
const GAP_MS_MAX = 1500;
/** A bound on the schedule's length whatever the duration (a fault is at least 2 s with its gap). */
const FAULTS_MAX = 10_000;

export function makeSchedule(options: ScheduleOptions): Fault[] {
  assert(options.nodes === 3 || options.nodes === 5, `the nemesis runs 3 or 5 nodes, not ${options.nodes}`);
  assert(Number.isSafeInteger(options.durationMs) && options.durationMs > 0, `durationMs must be a positive integer, got ${options.durationMs}`);
  const prng = new Prng(options.seed);
  const ids = Array.from({ length: options.nodes }, (_, i) => i + 1);
  const faults: Fault[] = [];
  let deck: FaultKind[] = [];
  let atMs = WARMUP_MS;
  while (faults.length < FAULTS_MAX && atMs + FAULT_MS_MIN <= WARMUP_MS + options.durationMs) {
    if (deck.length === 0) deck = prng.shuffle([...FAULT_KINDS]);
    const kind = deck.pop() as FaultKind;
    const durationMs = Math.min(prng.int(FAULT_MS_MIN, FAULT_MS_MAX), WARMUP_MS + options.durationMs - atMs);
    faults.push(drawFault(kind, atMs, durationMs, ids, prng));
    atMs += durationMs + prng.int(GAP_MS_MIN, GAP_MS_MAX);
  }
  return faults;
}

function drawFault(kind: FaultKind, atMs: number, durationMs: number, ids: readonly number[], prng: Prng): Fault {
  const target = (): Target => (prng.chance(0.5) ? "leader" : prng.pick(ids));
  switch (kind) {
    case "isolate-leader":
      return { kind, atMs, durationMs };
    case "split": {
      const shuffled = prng.shuffle([...ids]);
      const minoritySize = prng.int(1, Math.floor((ids.length - 1) / 2));
      return { kind, atMs, durationMs, minority: sorted(shuffled.slice(0, minoritySize)), majority: sorted(shuffled.slice(minoritySize)) };
    }
    case "one-way": {
      // Half the time the leader is the one that cannot send (its followers still talk to
      // it); otherwise two nodes drawn at random, which may or may not include the leader.
      if (prng.chance(0.5)) return { kind, atMs, durationMs, from: "leader", to: "a follower" };
      const [from, to] = prng.shuffle([...ids]) as [number, number];
      return { kind, atMs, durationMs, from, to };
    }
    case "bridge": {
      const shuffled = prng.shuffle([...ids]);
      const half = (ids.length - 1) / 2;
      return { kind, atMs, durationMs, middle: shuffled[0] as number, left: sorted(shuffled.slice(1, 1 + half)), right: sorted(shuffled.slice(1 + half)) };
    }
    case "kill-restart":
    case "pause-resume":
      return { kind, atMs, durationMs, target: target() };
  }
}

function sorted(ids: readonly number[]): number[] {
  return [...ids].sort((a, b) => a - b);
}

/** One line for a person: the fault as scheduled, before "the leader" is resolved. */
export function describeFault(fault: Fault): string {
  const set = (ids: readonly number[]): string => `{${ids.join(",")}}`;
  const who = (target: Target | "a follower"): string => (typeof target === "number" ? `node ${target}` : target);
  switch (fault.kind) {
    case "isolate-leader":
      return "isolate the leader";
    case "split":
      return `split minority ${set(fault.minority)} | majority ${set(fault.majority)}`;
    case "one-way":
      return `one-way: ${who(fault.from)} cannot send to ${who(fault.to)} (the other way still delivers)`;
    case "bridge":
      return `bridge ${set(fault.left)} <- ${fault.middle} -> ${set(fault.right)}`;
    case "kill-restart":
      return `kill -9 ${who(fault.target)}, restart`;
    case "pause-resume":
      return `SIGSTOP ${who(fault.target)}, SIGCONT`;
  }
}

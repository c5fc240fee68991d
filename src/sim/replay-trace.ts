/**
 * The structured trace of one run, for replaying it in the dashboard (docs/dashboard.md,
 * "Replay a simulation"): JSON lines, a header and then one event a line, each with the
 * virtual time it happened at. `synod sim --trace-out FILE.jsonl` writes it.
 *
 * The recorder only watches: it draws no random number and changes nothing the run reads, so
 * a run with it does exactly what the same seed does without it (the text trace, the checkers'
 * verdicts and `--json` stay as they were). This file imports nothing from Node or the
 * simulator, so the dashboard's page shares the types.
 */

/** The format's name and version, in every header: a page refuses a file it cannot read. */
export const REPLAY_FORMAT = "synod-sim-trace";
export const REPLAY_FORMAT_VERSION = 1;
/**
 * Events kept at most. A run sends some tens of thousands of messages; a file this size
 * (some tens of MB) still loads in a browser tab. Past it the recorder counts and keeps
 * nothing, and the header says where the file stops.
 */
export const REPLAY_EVENTS_MAX = 400_000;

/** What a replay draws, one line each; `t` is virtual time in microseconds. */
export type ReplayEvent =
  /** A peer message put on the wire: `id` is matched by its `recv` or `drop`; `due` is when it arrives. */
  | { readonly t: number; readonly e: "send"; readonly id: number; readonly from: number; readonly to: number; readonly kind: string; readonly term: string | null; readonly text: string; readonly due: number; readonly g?: number }
  /** A peer message that never got on the wire: cut by a partition, or lost by the network. */
  | { readonly t: number; readonly e: "lost"; readonly from: number; readonly to: number; readonly kind: string; readonly why: "partition" | "network"; readonly g?: number }
  | { readonly t: number; readonly e: "recv"; readonly id: number }
  /** A message on the wire that did not arrive: its receiver was down, or a partition began meanwhile. */
  | { readonly t: number; readonly e: "drop"; readonly id: number; readonly why: "receiver down" | "partition" }
  /** Group 0's replica on `node`: its role, term or ballot, leader and commit index, when one of them changed. */
  | { readonly t: number; readonly e: "state"; readonly node: number; readonly role: string; readonly term: number; readonly leader: number | null; readonly commit: number; readonly last: number }
  | { readonly t: number; readonly e: "node"; readonly node: number; readonly what: "crashed" | "restarted" | "paused" | "resumed" }
  /** The links cut now, each direction `[from, to]` (empty: healed). */
  | { readonly t: number; readonly e: "partition"; readonly cut: readonly (readonly [number, number])[]; readonly text: string }
  | { readonly t: number; readonly e: "op"; readonly client: number; readonly to: number; readonly text: string }
  | { readonly t: number; readonly e: "result"; readonly client: number; readonly status: string; readonly text: string }
  /** Anything else the text trace tells: faults, snapshots, configuration changes, other clients. */
  | { readonly t: number; readonly e: "note"; readonly actor: string; readonly text: string };

/** The run's outcome, as the checkers judged it. */
export interface ReplayVerdict {
  readonly passed: boolean;
  readonly checker: string | null;
  readonly message: string | null;
  /** When the failure was found (virtual µs), and how many events had been recorded by then. */
  readonly atMicros: number | null;
  readonly atEvent: number | null;
}

/** The first line of a trace. */
export interface ReplayHeader {
  readonly type: "header";
  readonly format: typeof REPLAY_FORMAT;
  readonly version: number;
  readonly seed: number;
  readonly protocol: string;
  readonly mutant: string | null;
  readonly scenario: string;
  readonly nodes: readonly number[];
  /** The parameters the seed derived, as `synod sim` prints them. */
  readonly params: readonly string[];
  readonly faultPhaseEndMicros: number;
  readonly endMicros: number;
  readonly verdict: ReplayVerdict;
  /** Events in the file, and in the run; when they differ the file stops at `cappedAtMicros`. */
  readonly events: number;
  readonly eventsInRun: number;
  readonly capped: boolean;
  readonly cappedAtMicros: number | null;
  readonly reproduce: string;
}

/** Keeps a run's events, up to a bound. */
export class ReplayRecorder {
  readonly events: ReplayEvent[] = [];
  private total = 0;
  private nextId = 1;
  private cappedAt: number | null = null;
  /** The last state recorded for each node, so only changes are recorded. */
  private readonly lastState = new Map<number, string>();

  constructor(private readonly eventsMax: number = REPLAY_EVENTS_MAX) {
    if (!Number.isSafeInteger(eventsMax) || eventsMax < 1) throw new Error(`a replay keeps at least one event, not ${eventsMax}`);
  }

  add(event: ReplayEvent): void {
    this.total++;
    if (this.events.length < this.eventsMax) this.events.push(event);
    else if (this.cappedAt === null) this.cappedAt = event.t;
  }

  /** A fresh id for a message put on the wire. */
  messageId(): number {
    return this.nextId++;
  }

  /** Records a node's state only when it differs from the last one recorded. */
  state(event: Extract<ReplayEvent, { e: "state" }>): void {
    const key = `${event.role}/${event.term}/${event.leader}/${event.commit}/${event.last}`;
    if (this.lastState.get(event.node) === key) return;
    this.lastState.set(event.node, key);
    this.add(event);
  }

  /** A restarted node starts from what its disk held: its next state is recorded whatever it is. */
  forget(node: number): void {
    this.lastState.delete(node);
  }

  get eventsInRun(): number {
    return this.total;
  }

  get cappedAtMicros(): number | null {
    return this.cappedAt;
  }
}

/** The kind of a message (its description up to the term or ballot) and that term or ballot. */
export function messageKind(text: string): { readonly kind: string; readonly term: string | null } {
  const match = / (term|ballot)=(\S+)/.exec(text);
  if (match === null) return { kind: text.split(" ")[0] ?? text, term: null };
  return { kind: text.slice(0, match.index), term: match[2] ?? null };
}

/** The whole file: the header line, then one line per event. */
export function formatReplayTrace(header: ReplayHeader, events: readonly ReplayEvent[]): string {
  const lines = [JSON.stringify(header)];
  for (const event of events) lines.push(JSON.stringify(event));
  return `${lines.join("\n")}\n`;
}

/**
 * Reading a replay (replay-trace.ts writes it) and asking it what the cluster looked like at
 * a moment: each node's role, term and commit index, the links cut, the messages on the wire.
 * The dashboard's Replay view draws these answers; pure, so a Node test checks them too.
 */
import { SynodError } from "../core/common/errors.js";
import { REPLAY_FORMAT, REPLAY_FORMAT_VERSION, type ReplayEvent, type ReplayHeader } from "./replay-trace.js";

/** A file that is not a replay this version can read: which line, and why. */
export class ReplayFormatError extends SynodError {
  constructor(message: string) {
    super("bad_replay", message);
    this.name = "ReplayFormatError";
  }
}

export interface ReplayNodeState {
  readonly id: number;
  /** "unknown" until the node's replica first reports. */
  readonly role: string;
  readonly term: number;
  readonly leader: number | null;
  readonly commit: number;
  readonly last: number;
  readonly up: boolean;
  readonly paused: boolean;
}

/** A peer message's whole life: sent, and arrived or dropped at `endAt`. */
export interface ReplayMessage {
  readonly id: number;
  readonly from: number;
  readonly to: number;
  readonly kind: string;
  readonly term: string | null;
  readonly text: string;
  readonly sentAt: number;
  readonly endAt: number;
  /** "wire": the file ends (or was capped) before it arrived. */
  readonly fate: "recv" | "drop" | "wire";
}

/** Events between two stored states: how far a question at a moment has to replay. */
const CHECKPOINT_EVERY = 1000;
/** Messages looked at, back from a moment, for the ones still on the wire then. */
const IN_FLIGHT_LOOKBACK = 20_000;

export interface Checkpoint {
  readonly nodes: readonly ReplayNodeState[];
  readonly cut: readonly (readonly [number, number])[];
}

export class Replay {
  /** Sorted by `sentAt` (the file's order). */
  readonly messages: readonly ReplayMessage[];
  private readonly messagePositions = new Map<number, number>();
  private readonly checkpoints: Checkpoint[] = [];

  private constructor(
    readonly header: ReplayHeader,
    readonly events: readonly ReplayEvent[],
  ) {
    this.messages = collectMessages(events);
    this.messages.forEach((message, position) => this.messagePositions.set(message.id, position));
    let state: Checkpoint = { nodes: header.nodes.map((id) => ({ id, role: "unknown", term: 0, leader: null, commit: 0, last: 0, up: true, paused: false })), cut: [] };
    for (let i = 0; i < events.length; i++) {
      if (i % CHECKPOINT_EVERY === 0) this.checkpoints.push(state);
      state = apply(state, events[i] as ReplayEvent);
    }
    if (events.length % CHECKPOINT_EVERY === 0) this.checkpoints.push(state);
  }

  /** Parses a replay file's text; a ReplayFormatError names the first line it cannot read. */
  static parse(text: string): Replay {
    const lines = text.split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    const header = parseLine(lines[0] ?? "", 1) as Partial<ReplayHeader>;
    if (header.type !== "header" || header.format !== REPLAY_FORMAT) throw new ReplayFormatError(`line 1 is not a ${REPLAY_FORMAT} header: write the file with synod sim --trace-out FILE.jsonl`);
    if (typeof header.version !== "number" || header.version > REPLAY_FORMAT_VERSION) throw new ReplayFormatError(`the replay is version ${String(header.version)}; this page reads version ${REPLAY_FORMAT_VERSION} and older`);
    if (!Array.isArray(header.nodes) || !header.nodes.every((id) => Number.isSafeInteger(id)) || typeof header.endMicros !== "number" || typeof header.verdict !== "object" || header.verdict === null) {
      throw new ReplayFormatError("line 1: the header lacks its nodes, end time or verdict");
    }
    const events: ReplayEvent[] = [];
    let last = 0;
    for (let i = 1; i < lines.length; i++) {
      const event = parseLine(lines[i] as string, i + 1) as Partial<ReplayEvent>;
      if (typeof event.t !== "number" || !Number.isFinite(event.t) || typeof event.e !== "string") throw new ReplayFormatError(`line ${i + 1}: an event has a time "t" and a kind "e"`);
      if (event.t < last) throw new ReplayFormatError(`line ${i + 1}: time ${event.t} comes before the line above's ${last}`);
      last = event.t;
      events.push(event as ReplayEvent);
    }
    return new Replay(header as ReplayHeader, events);
  }

  get endMicros(): number {
    return Math.max(this.header.endMicros, this.events[this.events.length - 1]?.t ?? 0);
  }

  /** How many events happened at or before `t`. */
  countAt(t: number): number {
    let low = 0;
    let high = this.events.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.events[middle] as ReplayEvent).t <= t) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The nodes and cut links after the first `count` events. */
  stateAfter(count: number): Checkpoint {
    const bounded = Math.max(0, Math.min(count, this.events.length));
    const base = Math.floor(bounded / CHECKPOINT_EVERY);
    let state = this.checkpoints[base] as Checkpoint;
    for (let i = base * CHECKPOINT_EVERY; i < bounded; i++) state = apply(state, this.events[i] as ReplayEvent);
    return state;
  }

  /** The messages on the wire at `t`, with how far along (0 to 1) each is; at most `max`, the latest sent first. */
  inFlight(t: number, max: number): { readonly message: ReplayMessage; readonly progress: number }[] {
    let low = 0;
    let high = this.messages.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.messages[middle] as ReplayMessage).sentAt <= t) low = middle + 1;
      else high = middle;
    }
    const found: { message: ReplayMessage; progress: number }[] = [];
    for (let i = low - 1; i >= 0 && i >= low - IN_FLIGHT_LOOKBACK && found.length < max; i--) {
      const message = this.messages[i] as ReplayMessage;
      if (message.endAt <= t) continue;
      const span = message.endAt - message.sentAt;
      found.push({ message, progress: span <= 0 ? 1 : (t - message.sentAt) / span });
    }
    return found;
  }

  /** The message with `id`, if the file has its sending. */
  message(id: number): ReplayMessage | undefined {
    const position = this.messagePositions.get(id);
    return position === undefined ? undefined : this.messages[position];
  }

  /** When the next event after `t` happens (the end, when none does). */
  nextEventAfter(t: number): number {
    const next = this.events[this.countAt(t)];
    return next === undefined ? this.endMicros : next.t;
  }
}

function parseLine(line: string, number: number): unknown {
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new ReplayFormatError(`line ${number} is not a JSON object`);
    return value;
  } catch (error) {
    if (error instanceof ReplayFormatError) throw error;
    throw new ReplayFormatError(`line ${number} is not JSON: ${(error as Error).message}`);
  }
}

function apply(state: Checkpoint, event: ReplayEvent): Checkpoint {
  const change = (id: number, update: (node: ReplayNodeState) => ReplayNodeState): Checkpoint => ({ ...state, nodes: state.nodes.map((node) => (node.id === id ? update(node) : node)) });
  switch (event.e) {
    case "state":
      return change(event.node, (node) => ({ ...node, role: event.role, term: event.term, leader: event.leader, commit: event.commit, last: event.last }));
    case "node":
      return change(event.node, (node) => ({
        ...node,
        up: event.what === "crashed" ? false : event.what === "restarted" ? true : node.up,
        paused: event.what === "paused",
        ...(event.what === "crashed" ? { role: "down" } : {}),
      }));
    case "partition":
      return { ...state, cut: Array.isArray(event.cut) ? event.cut : [] };
    default:
      return state;
  }
}

function collectMessages(events: readonly ReplayEvent[]): ReplayMessage[] {
  const byId = new Map<number, number>();
  const messages: ReplayMessage[] = [];
  for (const event of events) {
    if (event.e === "send") {
      byId.set(event.id, messages.length);
      messages.push({ id: event.id, from: event.from, to: event.to, kind: event.kind, term: event.term, text: event.text, sentAt: event.t, endAt: event.due, fate: "wire" });
    } else if (event.e === "recv" || event.e === "drop") {
      const position = byId.get(event.id);
      if (position === undefined) continue;
      const message = messages[position] as ReplayMessage;
      messages[position] = { ...message, endAt: event.t, fate: event.e };
    }
  }
  return messages;
}

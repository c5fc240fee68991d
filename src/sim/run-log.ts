/**
 * What a simulation run tells of itself, in three records: the trace (every event, a ring of
 * the last ones unless the whole run is asked for), the story (faults, crashes, restarts and
 * leadership changes only: what a failure report shows first), and, when asked for, the
 * replay (replay-trace.ts) the dashboard plays back. Watching only: no random draw, nothing
 * the run reads back, so a run is the same with or without the replay.
 */
import type { NodeId } from "../core/engine/contract.js";
import type { GroupEnvelope } from "../core/multi/group.js";
import type { Partition } from "./network.js";
import { messageKind, ReplayRecorder } from "./replay-trace.js";
import { Trace } from "./trace.js";

const TRACE_CAPACITY = 4000;
const FULL_TRACE_CAPACITY = 20_000_000;
const TRACE_TAIL_LINES = 25;
const NOTABLE_CAPACITY = 200;
const NOTABLE_TAIL_LINES = 40;

export interface RunLogOptions {
  /** Virtual time, in microseconds: every line is stamped with it. */
  readonly now: () => number;
  /** A peer message, as the protocol describes it. */
  readonly describeMessage: (message: unknown) => string;
  /** How many groups the nodes host: a message's group is named only when there are several. */
  readonly groups: number;
  /** Keep every trace line (slower; for reading one run). */
  readonly fullTrace: boolean;
  /** Record a replay of at most this many events (undefined: none, nothing spent on it). */
  readonly replayEventsMax: number | undefined;
}

export class RunLog {
  /** Every event: messages, client operations, faults. */
  private readonly traceLog: Trace;
  /** Faults, crashes, restarts and leadership changes only: the story of the run. */
  private readonly notable = new Trace(NOTABLE_CAPACITY);
  /** The events of a replay, when asked for (null: not recorded, nothing spent on it). */
  readonly replay: ReplayRecorder | null;
  private readonly now: () => number;

  constructor(private readonly options: RunLogOptions) {
    this.now = options.now;
    this.traceLog = new Trace(options.fullTrace ? FULL_TRACE_CAPACITY : TRACE_CAPACITY);
    this.replay = options.replayEventsMax === undefined ? null : new ReplayRecorder(options.replayEventsMax);
  }

  /** A line of the trace only (the replay records the event its own way, if at all). */
  line(actor: string, text: string | (() => string)): void {
    this.traceLog.add(this.now(), actor, text);
  }

  /** An event for the trace and the replay. */
  note(actor: string, text: string | (() => string)): void {
    this.traceLog.add(this.now(), actor, text);
    this.replay?.add({ t: this.now(), e: "note", actor, text: typeof text === "string" ? text : text() });
  }

  /** An event worth telling in a failure's story: it goes to both traces. */
  notableEvent(actor: string, text: string): void {
    this.traceLog.add(this.now(), actor, text);
    this.notable.add(this.now(), actor, text);
    this.replay?.add({ t: this.now(), e: "note", actor, text });
  }

  /** A peer message put on the wire for `delay`: its id, for its arrival (null: no replay recorded). */
  recordSend(delay: number, from: NodeId, to: NodeId, message: GroupEnvelope<unknown>): number | null {
    if (this.replay === null) return null;
    const id = this.replay.messageId();
    const text = this.options.describeMessage(message.message);
    const { kind, term } = messageKind(text);
    this.replay.add({ t: this.now(), e: "send", id, from, to, kind, term, text, due: this.now() + delay, ...(this.options.groups === 1 ? {} : { g: message.group }) });
    return id;
  }

  recordLost(from: NodeId, to: NodeId, message: GroupEnvelope<unknown>, why: "partition" | "network"): void {
    if (this.replay === null) return;
    const { kind } = messageKind(this.options.describeMessage(message.message));
    this.replay.add({ t: this.now(), e: "lost", from, to, kind, why, ...(this.options.groups === 1 ? {} : { g: message.group }) });
  }

  recordPartition(partition: Partition): void {
    this.replay?.add({ t: this.now(), e: "partition", cut: partition.cutLinks(), text: partition.description });
  }

  /** A node crashed, restarted, paused or resumed. */
  recordNode(node: NodeId, what: "crashed" | "restarted" | "paused" | "resumed"): void {
    this.replay?.add({ t: this.now(), e: "node", node, what });
  }

  /** The last lines of the trace, for a person reading a failure. */
  traceTail(): string[] {
    return this.traceLog.tail(TRACE_TAIL_LINES);
  }

  /** The last lines of the story: the faults, crashes and leadership changes before a failure. */
  notableTail(): string[] {
    return this.notable.tail(NOTABLE_TAIL_LINES);
  }

  /** With `fullTrace`: every line of the run. Otherwise empty. */
  fullTrace(): string[] {
    return this.options.fullTrace ? this.traceLog.tail(FULL_TRACE_CAPACITY) : [];
  }
}

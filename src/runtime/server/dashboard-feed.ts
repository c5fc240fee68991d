/**
 * What the live dashboard shows of a node, and the Server-Sent Events stream that carries
 * it (`GET /v1/dashboard/stream`, docs/dashboard.md).
 *
 * The node samples itself every `intervalMs` (500 ms), whether or not anyone watches: WAL
 * fsync latency, HTTP request rate and latency, and the messages per second on each peer
 * link (from the transport's counters). The last `samplesMax` samples are kept, so a page
 * that connects (or moves here when the node it watched died) draws the last minutes at
 * once. Discrete events — an election, a new leader, a membership change, a snapshot, a
 * fault injected — are kept too (the last `eventsMax`) and pushed the moment they happen.
 *
 * While at least one stream is open, and only then, the node also asks every other member
 * for its `GET /v1/status` (public, cheap) on each sample, so one stream shows the whole
 * cluster: every node's role, term, commit and applied index, and, from the leader's
 * status, each follower's replication progress. A member that does not answer within
 * `memberTimeoutMs` is shown as unreachable, which is what a page needs to see a node die.
 * A member's status carries its links' cumulative counters (`links`, publicLinkCounters):
 * the feed turns two consecutive answers into that member's messages per second on each
 * link, as it does for its own node from the transport, so the page shows every node's links.
 *
 * Stream protocol: first `event: history` (`{node, intervalMs, samples, events}`), then
 * `event: state` every interval (`{atMs, node, status, links, sample, members, faults}`) and
 * `event: event` for each discrete event as it happens (its `id:` is the node's event
 * sequence number). A client that reads too slowly misses state frames (each replaces the
 * last, so nothing is lost in meaning); one that falls more than `streamBufferBytesMax`
 * behind is cut, and reconnects to a fresh history.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { assert } from "../../core/common/assert.js";
import type { ClusterControl } from "./cluster-control.js";
import type { FaultInjector } from "./fault-injection.js";

/** A peer link's counters, as the transport keeps them (cumulative). */
export interface LinkCounters {
  readonly connected: boolean;
  readonly inboundConnected: boolean;
  readonly framesSent: number;
  readonly framesReceived: number;
  readonly framesDropped: number;
}

/** A peer link's messages per second over the last interval (or the last two polls of a member). */
export interface LinkRates {
  readonly peer: number;
  readonly connected: boolean;
  readonly inboundConnected: boolean;
  readonly sentPerSecond: number;
  readonly receivedPerSecond: number;
  readonly droppedPerSecond: number;
}

/**
 * The link counters `GET /v1/status` shows (`links`), by peer: counts and whether the
 * connections are up, nothing else of the transport (no addresses, no queues), so they are
 * as safe to show anyone as the commit index beside them.
 */
export function publicLinkCounters(stats: ReadonlyMap<number, LinkCounters>): ({ readonly peer: number } & LinkCounters)[] {
  return [...stats]
    .sort(([a], [b]) => a - b)
    .map(([peer, s]) => ({ peer, connected: s.connected, inboundConnected: s.inboundConnected, framesSent: s.framesSent, framesReceived: s.framesReceived, framesDropped: s.framesDropped }));
}

/**
 * The link counters in a member's `GET /v1/status` answer, by peer; null when it has none (a
 * node of an older version) or they are not what publicLinkCounters writes.
 */
export function linkCountersOf(status: unknown): Map<number, LinkCounters> | null {
  const links = (status as { links?: unknown } | null)?.links;
  if (!Array.isArray(links) || links.length > LINKS_MAX) return null;
  const counters = new Map<number, LinkCounters>();
  for (const link of links as unknown[]) {
    if (typeof link !== "object" || link === null) return null;
    const { peer, connected, inboundConnected, framesSent, framesReceived, framesDropped } = link as Record<string, unknown>;
    if (!isCount(peer) || typeof connected !== "boolean" || typeof inboundConnected !== "boolean" || !isCount(framesSent) || !isCount(framesReceived) || !isCount(framesDropped)) return null;
    counters.set(peer, { connected, inboundConnected, framesSent, framesReceived, framesDropped });
  }
  return counters;
}

/**
 * Each link's messages per second between two readings of its counters `seconds` apart,
 * sorted by peer. A counter that went down belongs to a link made anew (or a node
 * restarted): it counts from zero.
 */
export function linkRates(current: ReadonlyMap<number, LinkCounters>, before: ReadonlyMap<number, LinkCounters>, seconds: number): LinkRates[] {
  assert(seconds > 0, `rates need a positive interval, got ${seconds} s`);
  return [...current]
    .sort(([a], [b]) => a - b)
    .map(([peer, counters]) => {
      const previous = before.get(peer);
      const perSecond = (pick: (c: LinkCounters) => number): number => {
        const earlier = previous === undefined || pick(previous) > pick(counters) ? 0 : pick(previous);
        return round((pick(counters) - earlier) / seconds);
      };
      return { peer, connected: counters.connected, inboundConnected: counters.inboundConnected, sentPerSecond: perSecond((c) => c.framesSent), receivedPerSecond: perSecond((c) => c.framesReceived), droppedPerSecond: perSecond((c) => c.framesDropped) };
    });
}

/** Peers a member's status may list; more is not a status this node wrote. */
const LINKS_MAX = 1024;

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** What the feed reads from its node. */
export interface DashboardSource {
  readonly nodeId: number;
  /** The node's `GET /v1/status` body. */
  status(): object;
  /** The peer transport's counters, by peer id. */
  links(): ReadonlyMap<number, LinkCounters>;
  /** The members of the configuration with their HTTP URLs (null: not known yet). */
  members(): readonly { readonly id: number; readonly http: string | null }[];
}

/** What the dashboard's buttons act on, beside the HTTP API's own routes. */
export interface DashboardActions {
  readonly faults: FaultInjector;
  /** The supervisor of a local cluster (`synod cluster`), or null. */
  readonly control: ClusterControl | null;
}

export interface DashboardFeedOptions {
  readonly intervalMs: number;
  readonly samplesMax: number;
  readonly eventsMax: number;
  readonly streamsMax: number;
  readonly memberTimeoutMs: number;
  readonly streamBufferBytesMax: number;
}

export const DEFAULT_DASHBOARD_FEED_OPTIONS: Readonly<DashboardFeedOptions> = Object.freeze({
  intervalMs: 500,
  // Five minutes of charts.
  samplesMax: 600,
  eventsMax: 200,
  streamsMax: 32,
  memberTimeoutMs: 400,
  streamBufferBytesMax: 1024 * 1024,
});

/** One interval's measurements; rates are per second, durations in milliseconds. */
export interface DashboardSample {
  readonly atMs: number;
  readonly fsyncs: number;
  readonly fsyncMsAvg: number | null;
  readonly fsyncMsMax: number | null;
  readonly requestsPerSecond: number;
  readonly requestErrorsPerSecond: number;
  readonly requestMsAvg: number | null;
  readonly requestMsMax: number | null;
  readonly messagesSentPerSecond: number;
  readonly messagesReceivedPerSecond: number;
}

export type DashboardEventKind = "election" | "leader" | "leadership-moved" | "range-born" | "replica-added" | "replica-removed" | "range-left" | "membership" | "snapshot" | "snapshot-installed" | "fault" | "started";

export interface DashboardEvent {
  readonly seq: number;
  readonly atMs: number;
  /** The node that saw it. */
  readonly node: number;
  readonly kind: DashboardEventKind;
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

/** A member as the last poll found it. */
interface MemberView {
  readonly id: number;
  readonly http: string | null;
  readonly reachable: boolean;
  readonly status: object | null;
  /** Its links' rates since the poll before; null until two polls in a row answered with counters. */
  readonly links: readonly LinkRates[] | null;
  readonly error: string | null;
  readonly checkedAtMs: number;
}

/** A member's link counters as a poll found them, and when (performance.now()). */
interface CountersSeen {
  readonly atMs: number;
  readonly counters: ReadonlyMap<number, LinkCounters>;
}

/** Running totals over the current interval. */
class Window {
  count = 0;
  errors = 0;
  sumMs = 0;
  maxMs = 0;

  add(ms: number, error = false): void {
    this.count++;
    if (error) this.errors++;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  reset(): void {
    this.count = this.errors = this.sumMs = this.maxMs = 0;
  }
}

/** Requests of these routes are not counted: the dashboard's own traffic would be all a quiet cluster shows. */
const UNCOUNTED_ROUTES = new Set(["/v1/dashboard/stream", "/dashboard", "/dashboard/{asset}"]);

export class DashboardFeed {
  private readonly options: DashboardFeedOptions;
  private readonly samples: DashboardSample[] = [];
  private readonly events: DashboardEvent[] = [];
  private readonly streams = new Set<ServerResponse>();
  private readonly fsync = new Window();
  private readonly requests = new Window();
  private lastLinks = new Map<number, LinkCounters>();
  private lastSampleMs = performance.now();
  private links: readonly LinkRates[] = [];
  private memberViews = new Map<number, MemberView>();
  private memberCounters = new Map<number, CountersSeen>();
  private polling = false;
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly source: DashboardSource,
    readonly actions: DashboardActions,
    options: Partial<DashboardFeedOptions> = {},
  ) {
    this.options = { ...DEFAULT_DASHBOARD_FEED_OPTIONS, ...options };
    for (const [name, value] of Object.entries(this.options)) assert(Number.isSafeInteger(value) && value > 0, `dashboard option ${name} must be a positive integer, got ${value}`);
    assert(this.options.memberTimeoutMs < this.options.intervalMs * 4, "a member poll must end within a few intervals, or polls pile up behind a dead member");
  }

  /** Starts sampling; the timer does not keep the process alive. */
  start(): void {
    if (this.timer !== null) return;
    this.lastSampleMs = performance.now();
    this.lastLinks = new Map(this.source.links());
    this.timer = setInterval(() => this.sample(), this.options.intervalMs);
    this.timer.unref();
  }

  /** Stops sampling and ends every stream. Idempotent. */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const stream of this.streams) stream.end();
    this.streams.clear();
  }

  get nodeId(): number {
    return this.source.nodeId;
  }

  /** A member's HTTP URL as this node knows it, or null. */
  memberHttp(id: number): string | null {
    return this.source.members().find((member) => member.id === id)?.http ?? null;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** A write-ahead log sync took `ms`. */
  observeFsync(ms: number): void {
    this.fsync.add(ms);
  }

  /** An HTTP request to `route` ended with `status` after `seconds`. */
  observeRequest(route: string, status: number, seconds: number): void {
    if (UNCOUNTED_ROUTES.has(route)) return;
    this.requests.add(seconds * 1000, status >= 500);
  }

  /** Records a discrete event and pushes it to every stream at once. */
  record(kind: DashboardEventKind, message: string, fields: Record<string, unknown> = {}): void {
    const event: DashboardEvent = { seq: ++this.seq, atMs: Date.now(), node: this.source.nodeId, kind, message, fields };
    this.events.push(event);
    if (this.events.length > this.options.eventsMax) this.events.shift();
    this.broadcast(`id: ${event.seq}\nevent: event\ndata: ${JSON.stringify(event)}\n\n`, true);
  }

  /**
   * Serves one stream on `response` (the caller checked access). Refuses (false) past
   * `streamsMax` streams, writing nothing: the caller answers 503.
   */
  serve(request: IncomingMessage, response: ServerResponse): boolean {
    if (this.streams.size >= this.options.streamsMax) return false;
    response.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no" });
    if (request.method === "HEAD") {
      response.end();
      return true;
    }
    this.streams.add(response);
    response.on("close", () => this.streams.delete(response));
    const history = { node: this.source.nodeId, intervalMs: this.options.intervalMs, samples: this.samples, events: this.events };
    response.write(`retry: 1000\nevent: history\ndata: ${JSON.stringify(history)}\n\n`);
    response.write(this.stateMessage());
    if (this.memberViews.size === 0) void this.pollMembers();
    return true;
  }

  /** The newest state frame, as `event: state` carries it. */
  state(): object {
    const latest = this.samples[this.samples.length - 1] ?? null;
    return { atMs: Date.now(), node: this.source.nodeId, status: this.source.status(), links: this.links, sample: latest, members: this.membersNow(), faults: this.actions.faults.view(), cluster: { local: this.actions.control !== null, faultInjection: this.actions.faults.allowed } };
  }

  /** Takes one interval's sample and, when anyone watches, sends the state and polls the members. */
  sample(): void {
    const nowMs = performance.now();
    const seconds = Math.max(0.001, (nowMs - this.lastSampleMs) / 1000);
    this.lastSampleMs = nowMs;
    const current = this.source.links();
    const links = linkRates(current, this.lastLinks, seconds);
    const sent = links.reduce((sum, link) => sum + link.sentPerSecond, 0);
    const received = links.reduce((sum, link) => sum + link.receivedPerSecond, 0);
    this.lastLinks = new Map(current);
    this.links = links;
    const sample: DashboardSample = {
      atMs: Date.now(),
      fsyncs: this.fsync.count,
      fsyncMsAvg: this.fsync.count === 0 ? null : round(this.fsync.sumMs / this.fsync.count),
      fsyncMsMax: this.fsync.count === 0 ? null : round(this.fsync.maxMs),
      requestsPerSecond: round(this.requests.count / seconds),
      requestErrorsPerSecond: round(this.requests.errors / seconds),
      requestMsAvg: this.requests.count === 0 ? null : round(this.requests.sumMs / this.requests.count),
      requestMsMax: this.requests.count === 0 ? null : round(this.requests.maxMs),
      messagesSentPerSecond: round(sent),
      messagesReceivedPerSecond: round(received),
    };
    this.fsync.reset();
    this.requests.reset();
    this.samples.push(sample);
    if (this.samples.length > this.options.samplesMax) this.samples.shift();
    if (this.streams.size === 0) return;
    this.broadcast(this.stateMessage(), false);
    void this.pollMembers();
  }

  private stateMessage(): string {
    return `event: state\ndata: ${JSON.stringify(this.state())}\n\n`;
  }

  /** Every member, this node from its own status and the others as last polled. */
  private membersNow(): MemberView[] {
    const nowMs = Date.now();
    return this.source.members().map((member) => {
      if (member.id === this.source.nodeId) return { id: member.id, http: member.http, reachable: true, status: this.source.status(), links: this.links, error: null, checkedAtMs: nowMs };
      return this.memberViews.get(member.id) ?? { id: member.id, http: member.http, reachable: false, status: null, links: null, error: "not asked yet", checkedAtMs: nowMs };
    });
  }

  /** Asks every other member for its status; one poll at a time. */
  private async pollMembers(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const others = this.source.members().filter((member) => member.id !== this.source.nodeId);
      const views = await Promise.all(others.map((member) => this.pollMember(member.id, member.http)));
      this.memberViews = new Map(views.map((view) => [view.id, view]));
      for (const id of this.memberCounters.keys()) if (!this.memberViews.has(id)) this.memberCounters.delete(id);
    } finally {
      this.polling = false;
    }
  }

  private async pollMember(id: number, http: string | null): Promise<MemberView> {
    const unreachable = (error: string): MemberView => {
      // Its counters from before a gap would make the first rates after it an average over the gap.
      this.memberCounters.delete(id);
      return { id, http, reachable: false, status: null, links: null, error, checkedAtMs: Date.now() };
    };
    if (http === null) return unreachable("its HTTP address is not known yet");
    try {
      const answer = await fetch(`${http}/v1/status`, { signal: AbortSignal.timeout(this.options.memberTimeoutMs) });
      if (!answer.ok) return unreachable(`GET /v1/status answered ${answer.status}`);
      const status = (await answer.json()) as object;
      return { id, http, reachable: true, status, links: this.memberLinkRates(id, status), error: null, checkedAtMs: Date.now() };
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code;
      return unreachable(error instanceof Error && error.name === "TimeoutError" ? `no answer within ${this.options.memberTimeoutMs} ms` : (cause ?? (error as Error).message));
    }
  }

  /**
   * A member's link rates from the counters in its status and those of the poll before; null
   * for the first poll, after a gap (no stream was open, or the member did not answer), or
   * from a member whose status has no counters.
   */
  private memberLinkRates(id: number, status: object): LinkRates[] | null {
    const counters = linkCountersOf(status);
    const nowMs = performance.now();
    const before = this.memberCounters.get(id);
    if (counters === null) {
      this.memberCounters.delete(id);
      return null;
    }
    this.memberCounters.set(id, { atMs: nowMs, counters });
    if (before === undefined || nowMs - before.atMs > this.options.intervalMs * 4 || nowMs <= before.atMs) return null;
    return linkRates(counters, before.counters, (nowMs - before.atMs) / 1000);
  }

  /**
   * Writes `message` to every stream. A stream whose client reads too slowly skips state
   * frames, and is cut once more than `streamBufferBytesMax` wait (events included).
   */
  private broadcast(message: string, important: boolean): void {
    for (const stream of this.streams) {
      if (stream.writableLength > this.options.streamBufferBytesMax) {
        stream.destroy();
        this.streams.delete(stream);
        continue;
      }
      if (!important && stream.writableNeedDrain) continue;
      stream.write(message);
    }
  }
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

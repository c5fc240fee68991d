/**
 * The page's connection to a node: `GET /v1/dashboard/stream` read with fetch (not
 * EventSource, which cannot send the Authorization header a cluster with auth needs), parsed
 * by the SDK's incremental SSE parser.
 *
 * Following: when the stream ends or fails, the page retries the node it was loaded from a
 * few times (a restart is quick); when that node stays down, it moves to another member that
 * answered in the last state frame — the leader first — by loading that member's
 * `/dashboard`. The token travels in the URL's fragment, which the browser never sends to a
 * server, and the page removes it from the address bar at once.
 */
import { SseParser } from "../client/sse.js";

export interface MemberFrame {
  readonly id: number;
  readonly http: string | null;
  readonly reachable: boolean;
  readonly error: string | null;
  readonly status: NodeStatus | null;
  /** Its links' messages per second; null until the streaming node has polled it twice in a row. */
  readonly links: readonly LinkFrame[] | null;
}

export interface ReplicationFrame {
  readonly id: number;
  readonly match: number;
  readonly next: number;
  readonly state: "probe" | "replicate" | "snapshot";
  readonly inflight: number;
  readonly active: boolean;
}

export interface NodeStatus {
  readonly id: number;
  readonly role: string;
  readonly term: number;
  readonly ballot?: { readonly round: number; readonly node: number };
  readonly leader: number | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly consensus: string;
  readonly clusterId: string;
  readonly members: readonly { readonly id: number; readonly peer: string; readonly http: string | null; readonly role: string }[];
  readonly replication?: readonly ReplicationFrame[];
  /** Cumulative counters by peer (absent from nodes older than the dashboard's per-node links). */
  readonly links?: readonly { readonly peer: number }[];
}

export interface Sample {
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

export interface LinkFrame {
  readonly peer: number;
  readonly connected: boolean;
  readonly inboundConnected: boolean;
  readonly sentPerSecond: number;
  readonly receivedPerSecond: number;
  readonly droppedPerSecond: number;
}

export interface StateFrame {
  readonly atMs: number;
  readonly node: number;
  readonly status: NodeStatus;
  readonly links: readonly LinkFrame[];
  readonly sample: Sample | null;
  readonly members: readonly MemberFrame[];
  readonly faults: Faults | null;
  readonly cluster: { readonly local: boolean; readonly faultInjection: boolean };
}

export interface Faults {
  readonly isolate: boolean;
  readonly dropRate: number;
  readonly untilMs: number;
}

export interface ClusterEvent {
  readonly seq: number;
  readonly atMs: number;
  readonly node: number;
  readonly kind: string;
  readonly message: string;
}

export interface History {
  readonly node: number;
  readonly intervalMs: number;
  readonly samples: readonly Sample[];
  readonly events: readonly ClusterEvent[];
}

export interface StreamHandlers {
  history(history: History): void;
  state(frame: StateFrame): void;
  event(event: ClusterEvent): void;
  /** The connection's state, for the header. */
  connection(text: string, ok: boolean): void;
  /** The node answered 401 or 403: the token is missing, wrong or expired. */
  unauthorized(message: string): void;
}

/** Attempts on the node the page came from before moving to another member. */
const RETRIES_BEFORE_MOVING = 3;
const RETRY_DELAY_MS = 500;
const EVENT_BYTES_MAX = 8 * 1024 * 1024;

export class NodeStream {
  private stopped = false;
  private failures = 0;
  private lastFrame: StateFrame | null = null;

  constructor(
    private readonly token: () => string | null,
    private readonly handlers: StreamHandlers,
  ) {}

  start(): void {
    void this.run();
  }

  stop(): void {
    this.stopped = true;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.readOnce();
        this.failures++;
      } catch (error) {
        if (error instanceof Unauthorized) return this.handlers.unauthorized(error.message);
        this.failures++;
      }
      if (this.stopped) return;
      if (this.failures >= RETRIES_BEFORE_MOVING && this.moveToAnotherMember()) return;
      this.handlers.connection(`lost ${location.host}; retrying (${this.failures})`, false);
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
    }
  }

  private async readOnce(): Promise<void> {
    const token = this.token();
    const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
    const answer = await fetch("/v1/dashboard/stream", { headers, cache: "no-store" });
    if (answer.status === 401 || answer.status === 403) {
      const body = (await answer.json().catch(() => ({}))) as { message?: string };
      throw new Unauthorized(body.message ?? `HTTP ${answer.status}`);
    }
    if (!answer.ok || answer.body === null) throw new Error(`HTTP ${answer.status}`);
    const parser = new SseParser(EVENT_BYTES_MAX);
    const reader = answer.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done || this.stopped) return;
      for (const event of parser.push(value)) {
        const data = JSON.parse(event.data) as unknown;
        if (event.event === "history") {
          this.failures = 0;
          this.handlers.connection(`live from node ${(data as History).node} (${location.host})`, true);
          this.handlers.history(data as History);
        } else if (event.event === "state") {
          this.lastFrame = data as StateFrame;
          this.handlers.state(this.lastFrame);
        } else if (event.event === "event") {
          this.handlers.event(data as ClusterEvent);
        }
      }
    }
  }

  /** Loads the dashboard of a member that answered lately (the leader first); false when none did. */
  private moveToAnotherMember(): boolean {
    const members = (this.lastFrame?.members ?? []).filter((m) => m.reachable && m.http !== null && m.id !== this.lastFrame?.node);
    members.sort((a, b) => Number(b.status?.role === "leader") - Number(a.status?.role === "leader"));
    const next = members[0];
    if (next === undefined || next.http === null) return false;
    this.stopped = true;
    const token = this.token();
    this.handlers.connection(`node ${this.lastFrame?.node} is gone; moving to node ${next.id}`, false);
    location.href = `${next.http}/dashboard${token === null ? "" : `#token=${encodeURIComponent(token)}`}`;
    return true;
  }
}

class Unauthorized extends Error {}

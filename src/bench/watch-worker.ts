// The watchers of the watch benchmark, in a worker thread of their own so that reading
// their streams does not delay the writer's answers (whose timing is measured) in the main
// thread. Each watcher is one raw `GET /v1/watch?prefix=...` stream over its own
// connection, to the nodes in turn; messages are counted and timed, not decoded: the
// revision is the SSE `id:`. A watcher that is cut (a `canceled` event: slow_watcher, or a
// broken connection) reconnects with `Last-Event-ID`, as the SDK's watch does, and is
// counted. Nothing here asserts: it reports what arrived.
//
// Messages from the main thread: `{ type: "reset" }` starts a phase (forgets what arrived);
// `{ type: "report", acked: [revision, ackedAtMs][] }` asks for the phase's numbers, each
// change timed from its write's acknowledgement; `{ type: "stop" }` closes every stream.
import { request, type ClientRequest, type IncomingMessage } from "node:http";
import { parentPort, workerData } from "node:worker_threads";
import { LatencyHistogram } from "./histogram.js";
import { sharedNowMs } from "./probe-writer.js";

export interface WatchWorkerData {
  readonly endpoints: readonly string[];
  readonly watchers: number;
  readonly prefix: string;
}

export interface WatchPhaseReport {
  /** Changes delivered to all watchers in the phase. */
  readonly events: number;
  /** Of those, changes whose write's acknowledgement was not in the report (not timed). */
  readonly untimed: number;
  /** Delivered before the writer had the write's answer (timed as 0). */
  readonly beforeAck: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** When the first and last change of the phase arrived (shared clock, ms). */
  readonly firstAtMs: number;
  readonly lastAtMs: number;
  /** Streams cut by their node (`canceled`), and streams opened again, in the phase. */
  readonly canceled: number;
  readonly reconnects: number;
}

export type WatchWorkerMessage = { readonly type: "ready" } | { readonly type: "report"; readonly report: WatchPhaseReport };

const RECONNECT_PAUSE_MS = 100;

const data = workerData as WatchWorkerData;
/** Revision -> when each watcher received it (shared clock, ms). */
let arrivals = new Map<number, number[]>();
let counters = { canceled: 0, reconnects: 0 };
let ready = 0;
let stopping = false;
const open = new Set<ClientRequest>();

/** One watcher: a stream, and another from where it stopped whenever it ends. */
function watch(endpoint: string, lastEventId: string | null, first: boolean): void {
  if (stopping) return;
  const url = new URL(`/v1/watch?prefix=${encodeURIComponent(data.prefix)}`, endpoint);
  const headers: Record<string, string> = { accept: "text/event-stream", ...(lastEventId === null ? {} : { "last-event-id": lastEventId }) };
  let last = lastEventId;
  let announced = !first;
  let ended = false;
  const again = (): void => {
    if (ended) return;
    ended = true;
    open.delete(call);
    if (stopping) return;
    counters.reconnects++;
    setTimeout(() => watch(endpoint, last, !announced), RECONNECT_PAUSE_MS);
  };
  const call = request(url, { headers, agent: false }, (response: IncomingMessage) => {
    let buffer = "";
    response.setEncoding("utf8");
    response.on("data", (chunk: string) => {
      buffer += chunk;
      for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const parsed = parseBlock(block);
        if (parsed.id !== null) last = parsed.id;
        if (parsed.event === "created" && !announced) {
          announced = true;
          if (++ready === data.watchers) parentPort?.postMessage({ type: "ready" } satisfies WatchWorkerMessage);
        } else if (parsed.event === "canceled") counters.canceled++;
        else if (parsed.event === "message" && parsed.id !== null) arrived(Number.parseInt(parsed.id, 10), parsed.changes);
      }
    });
    // "close" comes whether the stream ended or broke.
    response.on("close", again);
    response.on("error", () => undefined);
  });
  call.on("error", again);
  open.add(call);
  call.end();
}

function parseBlock(block: string): { event: string; id: string | null; changes: number } {
  let event = "message";
  let id: string | null = null;
  let changes = 0;
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) event = line.slice(7);
    else if (line.startsWith("id: ")) id = line.slice(4);
    else if (line.startsWith("data: ")) for (let at = line.indexOf('"type":'); at !== -1; at = line.indexOf('"type":', at + 1)) changes++;
  }
  return { event, id, changes };
}

function arrived(revision: number, changes: number): void {
  const atMs = sharedNowMs();
  let list = arrivals.get(revision);
  if (list === undefined) arrivals.set(revision, (list = []));
  for (let i = 0; i < changes; i++) list.push(atMs);
}

function report(acked: ReadonlyMap<number, number>): WatchPhaseReport {
  const histogram = new LatencyHistogram();
  let events = 0;
  let untimed = 0;
  let beforeAck = 0;
  let firstAtMs = Number.POSITIVE_INFINITY;
  let lastAtMs = 0;
  for (const [revision, times] of arrivals) {
    const ackedAtMs = acked.get(revision);
    for (const atMs of times) {
      events++;
      firstAtMs = Math.min(firstAtMs, atMs);
      lastAtMs = Math.max(lastAtMs, atMs);
      if (ackedAtMs === undefined) untimed++;
      else {
        if (atMs < ackedAtMs) beforeAck++;
        histogram.record(Math.max(0, Math.round((atMs - ackedAtMs) * 1000)));
      }
    }
  }
  return {
    events,
    untimed,
    beforeAck,
    latencyMs: { p50: histogram.percentile(50) / 1000, p99: histogram.percentile(99) / 1000, max: histogram.max / 1000 },
    firstAtMs,
    lastAtMs,
    ...counters,
  };
}

parentPort?.on("message", (message: { type: string; acked?: [number, number][] }) => {
  if (message.type === "reset") {
    arrivals = new Map();
    counters = { canceled: 0, reconnects: 0 };
  } else if (message.type === "report") {
    parentPort?.postMessage({ type: "report", report: report(new Map(message.acked ?? [])) } satisfies WatchWorkerMessage);
  } else if (message.type === "stop") {
    stopping = true;
    for (const call of open) call.destroy();
    parentPort?.close();
  }
});

for (let i = 0; i < data.watchers; i++) watch(data.endpoints[i % data.endpoints.length] as string, null, true);

// The writer of the watch and lease benchmarks: puts to one node (the leader), either a
// closed loop of `concurrency` requests or a fixed rate, bounded by a count and a duration.
// It records each acknowledged write's revision with the moment its answer arrived (on the
// clock every thread and process of the machine shares, `performance.timeOrigin + now`), so
// watchers elsewhere can time each change from the write's acknowledgement to its delivery.
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";
import { LatencyHistogram } from "./histogram.js";

export interface WriterOptions {
  /** The node written to (the leader), e.g. `http://127.0.0.1:7001`. */
  readonly url: string;
  /** Keys are `${prefix}${n % keys}`. */
  readonly prefix: string;
  readonly keys: number;
  readonly valueBytes: number;
  /** Stop starting writes after this long... */
  readonly durationMs: number;
  /** ...or after this many, whichever comes first. */
  readonly writesMax: number;
  /** A closed loop of this many writes outstanding, or (with `ratePerSecond`) at most this many. */
  readonly concurrency: number;
  /** Writes started per second, evenly spaced; absent: as fast as the closed loop goes. */
  readonly ratePerSecond?: number;
}

export interface WriterResult {
  readonly writes: number;
  readonly errors: number;
  readonly seconds: number;
  readonly writesPerSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** Revision -> when its acknowledgement arrived (ms on the shared clock). */
  readonly ackedAtMs: ReadonlyMap<number, number>;
}

const REQUEST_TIMEOUT_MS = 10_000;
/** A failed write is followed by this pause, so a closed loop does not spin on refusals. */
const FAILURE_PAUSE_MS = 10;

/** Now, in ms, on a clock that worker threads and other processes of this machine share. */
export function sharedNowMs(): number {
  return performance.timeOrigin + performance.now();
}

export async function runWriter(options: WriterOptions): Promise<WriterResult> {
  const pool = new Pool(options.url, { connections: options.concurrency, pipelining: 1 });
  const value = Buffer.alloc(options.valueBytes, "v");
  const histogram = new LatencyHistogram();
  const ackedAtMs = new Map<number, number>();
  let started = 0;
  let errors = 0;
  const startMs = performance.now();
  const deadlineMs = startMs + options.durationMs;
  const more = (): boolean => started < options.writesMax && performance.now() < deadlineMs;

  const writeOnce = async (): Promise<void> => {
    const n = started++;
    const sentMs = performance.now();
    try {
      const response = await pool.request({ method: "PUT", path: `/v1/kv/${options.prefix}${n % options.keys}`, body: value, headers: { "content-type": "application/octet-stream" }, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
      const body = (await response.body.json()) as { revision?: number };
      if (response.statusCode !== 200 || typeof body.revision !== "number") throw new Error(`HTTP ${response.statusCode}`);
      const answeredMs = performance.now();
      ackedAtMs.set(body.revision, performance.timeOrigin + answeredMs);
      histogram.record(Math.round((answeredMs - sentMs) * 1000));
    } catch {
      errors++;
      await sleep(FAILURE_PAUSE_MS);
    }
  };

  if (options.ratePerSecond === undefined) {
    await Promise.all(Array.from({ length: options.concurrency }, async () => {
      while (more()) await writeOnce();
    }));
  } else {
    const intervalMs = 1000 / options.ratePerSecond;
    const inFlight = new Set<Promise<void>>();
    for (let i = 0; more(); i++) {
      const dueMs = startMs + i * intervalMs;
      const waitMs = dueMs - performance.now();
      if (waitMs > 0) await sleep(waitMs);
      if (inFlight.size >= options.concurrency) await Promise.race(inFlight);
      const write = writeOnce().finally(() => inFlight.delete(write));
      inFlight.add(write);
    }
    await Promise.all(inFlight);
  }
  const seconds = (performance.now() - startMs) / 1000;
  await pool.close();
  return {
    writes: histogram.count,
    errors,
    seconds,
    writesPerSecond: histogram.count / seconds,
    latencyMs: { p50: histogram.percentile(50) / 1000, p99: histogram.percentile(99) / 1000, max: histogram.max / 1000 },
    ackedAtMs,
  };
}

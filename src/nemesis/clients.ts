/**
 * The nemesis's clients: concurrent loops that read, write and delete a few shared keys
 * through every node and record each operation with its call and return time, in the history
 * format the simulator's linearizability checker reads (src/sim/history.ts). Besides the shared
 * keys, each client writes keys of its own, each once (`u/<client>/<n>`): a write to such a key
 * that was acknowledged must be in the final read, whatever happened in between.
 *
 * What an answer says about a write: 200 it happened; a refusal the API documents as "nothing
 * was applied" (503 no_leader, no_quorum, not_member, overloaded) or a refused connection, it
 * did not; anything else (a timeout, a reset connection, a 5xx) leaves it unknown, so the
 * checker may place it anywhere after its call, or nowhere.
 */
import { performance } from "node:perf_hooks";
import { Prng } from "../core/common/prng.js";
import type { Operation, OpStatus } from "../sim/history.js";

export const SHARED_KEYS = ["k0", "k1", "k2", "k3", "k4", "k5"];
export const UNIQUE_PREFIX = "u/";

export const nowMicros = (): number => Math.round(performance.now() * 1000);

/** 503 errors after which the node has applied nothing (docs/http-api.md). */
const NOTHING_APPLIED = new Set(["no_leader", "no_quorum", "not_member", "overloaded"]);

export interface ClientOptions {
  readonly clients: number;
  /** The nodes' HTTP URLs, by id - 1. */
  readonly urls: readonly string[];
  /** A request not answered by then is abandoned (unknown). */
  readonly timeoutMs: number;
  readonly seed: number;
}

export class Workload {
  readonly history: Operation[] = [];
  private stopping = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly options: ClientOptions) {}

  start(): void {
    const seeds = new Prng(this.options.seed ^ 0x636c69);
    this.loops = Array.from({ length: this.options.clients }, (_, i) => this.loop(i + 1, seeds.fork()));
  }

  /** Stops issuing operations; resolves once every operation in flight has its outcome. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  private async loop(client: number, prng: Prng): Promise<void> {
    let counter = 0;
    while (!this.stopping) {
      counter++;
      const url = this.options.urls[(client + counter) % this.options.urls.length] as string;
      const draw = prng.float();
      let op: Operation;
      if (draw < 0.15) op = await operate({ client, url, op: "put", key: `${UNIQUE_PREFIX}${client}/${counter}`, value: `c${client}-${counter}`, timeoutMs: this.options.timeoutMs });
      else {
        const key = prng.pick(SHARED_KEYS);
        const kind = draw < 0.55 ? "get" : draw < 0.93 ? "put" : "delete";
        op = await operate({ client, url, op: kind, key, value: `c${client}-${counter}`, timeoutMs: this.options.timeoutMs });
      }
      this.history.push(op);
      // A node that refused at once (no leader yet, connection refused): don't spin on it.
      if (op.status === "fail") await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

interface Request {
  readonly client: number;
  readonly url: string;
  readonly op: "get" | "put" | "delete";
  readonly key: string;
  readonly value: string;
  readonly timeoutMs: number;
}

export async function operate(request: Request): Promise<Operation> {
  const { client, op, key, value } = request;
  const call = nowMicros();
  const base = { client, op, key, call, ...(op === "put" ? { value } : {}) };
  try {
    const response = await fetch(`${request.url}/v1/kv/${key}${op === "get" ? "?consistency=linearizable" : ""}`, {
      method: op === "get" ? "GET" : op === "put" ? "PUT" : "DELETE",
      ...(op === "put" ? { body: value } : {}),
      signal: AbortSignal.timeout(request.timeoutMs),
    });
    const text = await response.text();
    const returned = nowMicros();
    const body = parseObject(text);
    if (response.status === 200) return { ...base, output: op === "get" ? (body["value"] as string) : null, return: returned, status: "ok" };
    if (op === "get" && response.status === 404 && body["error"] === "key_not_found") return { ...base, output: null, return: returned, status: "ok" };
    const nothingApplied = (response.status === 503 && NOTHING_APPLIED.has(String(body["error"]))) || (response.status >= 400 && response.status < 500);
    return { ...base, output: null, return: returned, status: nothingApplied ? "fail" : "unknown" };
  } catch (error) {
    return { ...base, output: null, return: nowMicros(), status: failureStatus(error) };
  }
}

/** Refused before anything was sent: the request cannot have reached a node. */
function failureStatus(error: unknown): OpStatus {
  const cause = (error as { cause?: { code?: string } }).cause;
  return cause?.code === "ECONNREFUSED" ? "fail" : "unknown";
}

function parseObject(text: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Every key's value from a range read of the whole store, page by page at one revision; null if a page failed. */
export async function readAll(url: string, consistency: "linearizable" | "stale", timeoutMs: number): Promise<Map<string, string> | null> {
  const values = new Map<string, string>();
  let revision: number | null = null;
  let after: string | null = null;
  for (let page = 0; page < 10_000; page++) {
    const query = new URLSearchParams({ limit: "1000", consistency });
    if (after !== null) query.set("after", after);
    if (revision !== null) query.set("revision", String(revision));
    try {
      const response = await fetch(`${url}/v1/kv?${query.toString()}`, { signal: AbortSignal.timeout(timeoutMs) });
      if (response.status !== 200) return null;
      const body = (await response.json()) as { kvs: { key: string; value: string }[]; more: boolean; revision: number };
      for (const kv of body.kvs) values.set(kv.key, kv.value);
      revision = body.revision;
      if (!body.more || body.kvs.length === 0) return values;
      after = (body.kvs[body.kvs.length - 1] as { key: string }).key;
    } catch {
      return null;
    }
  }
  return null;
}

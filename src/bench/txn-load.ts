// Non-interactive transfers over `POST /v1/txn` on a `--shards 4` cluster, for
// txn2pc.bench.ts: which keys fall in which range, one transfer as one request (compares on
// both balances, both puts; the failure branch reads both, so a client whose belief was stale
// learns the balances from the same answer), and the nodes' view of their ranges. Requests go
// through undici Pools directly (as kv-load.ts), one exchange each, no retries: a benchmark
// counts what the cluster answered.
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";

/**
 * A first character in each range of `--shards 4` (cut at "B", "U" and "h"; ranges 0 to 3),
 * so a key `${RANGE_CHARS[r]}-...` lies in range r.
 */
export const RANGE_CHARS = ["0", "K", "a", "x"] as const;
export const RANGES = RANGE_CHARS.length;
const RANGES_WAIT_MS = 30_000;
const SHARDS_TIMEOUT_MS = 1_000;
/** One request's answer, at most (a node answers 503 timeout after its 5 s request timeout). */
export const REQUEST_TIMEOUT_MS = 10_000;
const JSON_HEADERS = { "content-type": "application/json" };

/** A key of range `range` (0..3) named by `name`. */
export function keyIn(range: number, name: string): string {
  return `${RANGE_CHARS[range % RANGES]}-${name}`;
}

/** The range a key made by `keyIn` lies in. */
export function rangeOfKey(key: string): number {
  return RANGE_CHARS.indexOf(key[0] as (typeof RANGE_CHARS)[number]);
}

export interface ShardView {
  readonly id: number;
  readonly leader: number | null;
  readonly leaderHttp: string | null;
  /** Transactions across ranges prepared in this range and not resolved yet (this node's replica). */
  readonly intents?: number;
}

/** `GET /v1/shards` of one node; null when it does not answer. */
export async function shardsOf(endpoint: string): Promise<ShardView[] | null> {
  try {
    const response = await fetch(`${endpoint}/v1/shards`, { signal: AbortSignal.timeout(SHARDS_TIMEOUT_MS) });
    if (response.status !== 200) return null;
    return ((await response.json()) as { shards: ShardView[] }).shards;
  } catch {
    return null;
  }
}

/** Waits (at most 30 s) until every range has a leader, and returns the ranges as `endpoint` sees them. */
export async function rangesLed(endpoint: string): Promise<ShardView[]> {
  const deadlineMs = performance.now() + RANGES_WAIT_MS;
  while (performance.now() < deadlineMs) {
    const shards = await shardsOf(endpoint);
    if (shards !== null && shards.length === RANGES && shards.every((shard) => shard.leaderHttp !== null)) return shards;
    await sleep(100);
  }
  throw new Error(`the ranges had no leaders within ${RANGES_WAIT_MS / 1000} s (a --shards ${RANGES} cluster is needed)`);
}

/** What one transfer's request came to. */
export type TransferOutcome =
  | { readonly kind: "committed" }
  /** The compares failed (the client's belief was stale): `balances` are the keys' values now. */
  | { readonly kind: "failed-compare"; readonly balances: readonly [number, number] }
  /** An error answer (`txn_aborted`, `txn_locked`, `timeout`, ...) or no answer (`connection`). */
  | { readonly kind: "error"; readonly code: string; readonly message: string };

/** Undici pools by origin, one per node, each with up to `connections` keep-alive connections. */
export class Pools {
  private readonly pools = new Map<string, Pool>();
  constructor(private readonly connections: number) {}

  get(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, { connections: this.connections, pipelining: 1 });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.destroy()));
    this.pools.clear();
  }
}

/**
 * Moves 1 from `from` to `to`, believing their balances are `believed`: one `POST /v1/txn`
 * whose compares check both balances, whose success branch writes both, and whose failure
 * branch reads both.
 */
export async function transfer(pool: Pool, from: string, to: string, believed: readonly [number, number]): Promise<TransferOutcome> {
  const [fromBalance, toBalance] = believed;
  const body = JSON.stringify({
    compare: [
      { key: from, target: "value", op: "=", value: String(fromBalance) },
      { key: to, target: "value", op: "=", value: String(toBalance) },
    ],
    success: [
      { op: "put", key: from, value: String(fromBalance - 1) },
      { op: "put", key: to, value: String(toBalance + 1) },
    ],
    failure: [
      { op: "get", key: from },
      { op: "get", key: to },
    ],
  });
  try {
    const response = await pool.request({ method: "POST", path: "/v1/txn", body, headers: JSON_HEADERS, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
    const text = await response.body.text();
    if (response.statusCode !== 200) return { kind: "error", code: errorCode(text, response.statusCode), message: text.slice(0, 300) };
    const answer = JSON.parse(text) as { succeeded: boolean; results: { kv?: { value?: string } | null }[] };
    if (answer.succeeded) return { kind: "committed" };
    const balance = (i: number): number => Number(answer.results[i]?.kv?.value ?? Number.NaN);
    return { kind: "failed-compare", balances: [balance(0), balance(1)] };
  } catch {
    return { kind: "error", code: "connection", message: "" };
  }
}

/** A plain linearizable `GET /v1/kv/{key}`: the value, or the error's code. A read of a key a transaction holds waits until it is resolved (up to the node's request timeout). */
export async function readKey(pool: Pool, key: string): Promise<{ value: string | null } | { code: string }> {
  try {
    const response = await pool.request({ method: "GET", path: `/v1/kv/${encodeURIComponent(key)}`, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
    const text = await response.body.text();
    if (response.statusCode === 404) return { value: null };
    if (response.statusCode !== 200) return { code: errorCode(text, response.statusCode) };
    return { value: (JSON.parse(text) as { value?: string }).value ?? null };
  } catch {
    return { code: "connection" };
  }
}

/** Sets each key to `value` (plain puts), a 503 (a leadership moving) tried again for at most 20 s; throws if one is refused. */
export async function putAll(pool: Pool, keys: readonly string[], value: number): Promise<void> {
  for (const key of keys) {
    const deadlineMs = performance.now() + 20_000;
    for (;;) {
      const response = await pool.request({ method: "PUT", path: `/v1/kv/${encodeURIComponent(key)}`, body: String(value), headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
      const text = await response.body.text();
      if (response.statusCode === 200) break;
      if (response.statusCode !== 503 || performance.now() > deadlineMs) throw new Error(`PUT ${key}: ${response.statusCode} ${text}`);
      await sleep(50);
    }
  }
}

/** The sum of the keys' balances, read one by one (retrying errors for at most 20 s); NaN if a key has no number. */
export async function sumOf(pool: Pool, keys: readonly string[]): Promise<number> {
  let sum = 0;
  for (const key of keys) {
    const deadlineMs = performance.now() + 20_000;
    for (;;) {
      const read = await readKey(pool, key);
      if ("value" in read) {
        sum += Number(read.value ?? Number.NaN);
        break;
      }
      if (performance.now() > deadlineMs) throw new Error(`GET ${key}: ${read.code}`);
      await sleep(50);
    }
  }
  return sum;
}

function errorCode(text: string, status: number): string {
  try {
    const code = (JSON.parse(text) as { error?: unknown }).error;
    return typeof code === "string" ? code : `http_${status}`;
  } catch {
    return `http_${status}`;
  }
}

/**
 * A flood of writes against a real node process (limits.ts): past --max-inflight-requests
 * the node answers 503 `overloaded` with Retry-After at once, fails nothing otherwise, its
 * memory stays under a stated bound while the flood lasts, and it serves normally after.
 *
 * The flood: FLOOD_CONNECTIONS connections each keeping a 64 KiB PUT outstanding, at most
 * FLOOD_REQUESTS requests and FLOOD_MS milliseconds. Measured on the development machine
 * (2 shared cores): with the bound of 64, about 80-90% are shed and the node's anonymous
 * memory (RssAnon) peaks 110-180 MiB above where it started, and up to ~360 MiB in a run
 * where the collector falls behind (the transient copies of the ~1,000 bodies admitted, seen
 * in two CI runs); without the bound (every request admitted), it peaks about 1 GiB above,
 * as the node takes every 64 KiB body and proposal in at once. The stated bound sits
 * between the two.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { Pool } from "undici";
import { ProcessCluster, request } from "./process-cluster.test-util.js";

const INFLIGHT_MAX = 64;
const FLOOD_CONNECTIONS = 600;
const FLOOD_REQUESTS = 6000;
const FLOOD_MS = 15_000;
const VALUE_BYTES = 64 * 1024;
/** How far the node's anonymous memory may grow during the flood. */
const MEMORY_GROWTH_MAX_MIB = 512;

/** The process's anonymous resident memory (heap, buffers: not mapped files such as LMDB's), in MiB. */
function anonymousMib(pid: number): number {
  const match = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(match !== null, "RssAnon in /proc/PID/status");
  return Number(match[1]) / 1024;
}

describe("a flood of requests against a real node", { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    // A short log and history: what the node keeps of the writes that did go through stays small.
    cluster = await ProcessCluster.start({ size: 1, flags: ["--max-inflight-requests", String(INFLIGHT_MAX), "--snapshot-entries", "1000", "--history-revisions", "200"] });
    await cluster.waitForLeader();
  });
  after(async () => cluster.close());

  test("is shed with 503 overloaded before memory grows; nothing else fails, and the node serves after", async () => {
    const url = cluster.node(1).http;
    const pid = cluster.node(1).process?.pid as number;
    const startMib = anonymousMib(pid);
    let peakMib = startMib;
    const sampler = setInterval(() => (peakMib = Math.max(peakMib, anonymousMib(pid))), 50);
    const pool = new Pool(url, { connections: FLOOD_CONNECTIONS, pipelining: 1 });
    const value = Buffer.alloc(VALUE_BYTES, 0x61);
    const outcomes = new Map<string, number>();
    let next = 0;
    const startedMs = Date.now();
    const worker = async (): Promise<void> => {
      while (next < FLOOD_REQUESTS && Date.now() - startedMs < FLOOD_MS) {
        const i = next++;
        let outcome: string;
        try {
          const answer = await pool.request({ method: "PUT", path: `/v1/kv/flood-${i % 100}`, body: value });
          const text = await answer.body.text();
          outcome = answer.statusCode === 200 ? "200" : `${answer.statusCode} ${(JSON.parse(text) as { error: string }).error} retry-after=${String(answer.headers["retry-after"])}`;
        } catch (error) {
          outcome = `failed: ${String(error)}`;
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    };
    try {
      await Promise.all(Array.from({ length: FLOOD_CONNECTIONS }, worker));
    } finally {
      clearInterval(sampler);
      await pool.close();
    }
    const elapsedMs = Date.now() - startedMs;
    const summary = `${next} requests in ${elapsedMs} ms: ${JSON.stringify(Object.fromEntries(outcomes))}; anonymous memory ${startMib.toFixed(0)} MiB before, peak ${peakMib.toFixed(0)} MiB`;
    console.log(summary);
    const shed = outcomes.get("503 overloaded retry-after=1") ?? 0;
    assert.ok(shed > 0, `some requests are shed: ${summary}`);
    assert.ok((outcomes.get("200") ?? 0) > 0, `some go through: ${summary}`);
    assert.equal(shed + (outcomes.get("200") ?? 0), next, `nothing fails but for 503 overloaded: ${summary}`);
    assert.ok(peakMib - startMib < MEMORY_GROWTH_MAX_MIB, `memory grew by at most ${MEMORY_GROWTH_MAX_MIB} MiB: ${summary}`);

    const write = await request("PUT", `${url}/v1/kv/after-flood`, "calm");
    assert.equal(write.status, 200, write.text);
    assert.equal((await request("GET", `${url}/v1/kv/after-flood`)).body["value"], "calm");
    const metrics = await request("GET", `${url}/metrics`);
    const counted = /^synod_http_requests_shed_total\{reason="requests"\} (\d+)$/m.exec(metrics.text);
    assert.equal(Number(counted?.[1]), shed, "the shed requests are counted");
  });
});

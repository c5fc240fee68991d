/**
 * The real cluster's history, judged by the same linearizability checker the simulator
 * uses: concurrent clients write, delete and read a few keys through every node while the
 * leader is killed with SIGKILL and later restarted. Every answer a client got must be
 * explained by one order of the operations, each placed between its call and its return.
 */
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { after, before, describe, test } from "node:test";
import { checkLinearizability } from "../../sim/check/linearizability.js";
import type { Operation, OpStatus } from "../../sim/history.js";
import { ProcessCluster, sleep, CONSENSUS_UNDER_TEST } from "./process-cluster.test-util.js";

const CLIENTS = 6;
const KEYS = ["a", "b", "c", "d"];
const RUN_MS = 7000;
const REQUEST_TIMEOUT_MS = 3000;

const nowMicros = (): number => Math.round(performance.now() * 1000);

/** What a failed request tells: certainly not applied ("fail"), or nothing ("unknown"). */
function failureStatus(error: unknown): OpStatus {
  const cause = (error as { cause?: { code?: string } }).cause;
  // Refused before anything was sent: the request cannot have reached a node.
  return cause?.code === "ECONNREFUSED" ? "fail" : "unknown";
}

async function operate(client: number, url: string, op: "get" | "put" | "delete", key: string, value: string): Promise<Operation> {
  const call = nowMicros();
  const base = { client, op, key, call };
  try {
    const response = await fetch(`${url}/v1/kv/${key}${op === "get" ? "?consistency=linearizable" : ""}`, {
      method: op === "get" ? "GET" : op === "put" ? "PUT" : "DELETE",
      ...(op === "put" ? { body: value } : {}),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const body = (await response.json()) as Record<string, unknown>;
    const returned = nowMicros();
    const written = op === "put" ? { value } : {};
    if (response.status === 200) return { ...base, ...written, output: op === "get" ? (body["value"] as string) : null, return: returned, status: "ok" };
    if (op === "get" && response.status === 404) return { ...base, output: null, return: returned, status: "ok" };
    // Refused before proposing (no leader, overloaded): not applied. A timeout: unknown.
    const refused = response.status === 503 && (body["error"] === "no_leader" || body["error"] === "overloaded");
    return { ...base, ...written, output: null, return: returned, status: refused ? "fail" : "unknown" };
  } catch (error) {
    return { ...base, ...(op === "put" ? { value } : {}), output: null, return: nowMicros(), status: failureStatus(error) };
  }
}

for (const consensus of CONSENSUS_UNDER_TEST) {
  describe(`linearizability of a real cluster through a leader crash (${consensus})`, { timeout: 90_000 }, () => {
    let cluster: ProcessCluster;
    before(async () => {
      cluster = await ProcessCluster.start({ consensus, size: 3 });
      await cluster.waitForLeader();
    });
    after(async () => cluster.close());

    test("every answer fits one linear order, while the leader is killed and restarted", async () => {
      const history: Operation[] = [];
      const started = Date.now();
      const running = () => Date.now() - started < RUN_MS;
      const clients = Array.from({ length: CLIENTS }, async (_, i) => {
        const client = i + 1;
        let counter = 0;
        while (running()) {
          counter++;
          const node = cluster.nodes[(client + counter) % cluster.nodes.length];
          const key = KEYS[(client * 7 + counter * 3) % KEYS.length] as string;
          const draw = (client * 13 + counter * 5) % 10;
          const op = draw < 5 ? "get" : draw < 9 ? "put" : "delete";
          history.push(await operate(client, (node as { http: string }).http, op, key, `c${client}-${counter}`));
        }
      });
      let killedAtMicros = Number.POSITIVE_INFINITY;
      const nemesis = (async () => {
        await sleep(2000);
        const leader = await cluster.waitForLeader();
        killedAtMicros = nowMicros();
        await cluster.kill(leader);
        await sleep(2500);
        cluster.startNode(leader);
      })();
      await Promise.all([...clients, nemesis]);

      const ok = history.filter((op) => op.status === "ok");
      const okWritesAfterCrash = ok.filter((op) => op.op !== "get" && op.call > killedAtMicros);
      assert.ok(ok.length > 300, `enough completed operations to mean something: ${ok.length} of ${history.length}`);
      assert.ok(okWritesAfterCrash.length > 20, `writes went on after the crash: ${okWritesAfterCrash.length}`);
      const result = checkLinearizability(history);
      assert.equal(result.verdict, "linearizable", result.verdict === "linearizable" ? "" : result.explanation);
    });
  });
}

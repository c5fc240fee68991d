/**
 * Exactly-once writes through the SDK on a real cluster: a Client writes distinct keys with
 * 16 calls in flight, the leader is killed with SIGKILL mid-load, and the Client keeps
 * writing through the election and for 2 s after it. Every acknowledged write must be
 * there, and every key must be at version 1: a write the Client sent again (its answer lost
 * with the leader) and applied twice would be at version 2. The Client's own counters must
 * show that writes were in fact sent again after an attempt that may have been applied, or
 * the test would prove nothing. So the Client is given only the two followers: each write
 * goes through one, which passes it to the leader and answers once it applied; when the
 * leader dies, writes it had already replicated are committed by the next leader while
 * their first attempts time out, and the Client sends them again.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "../../client/client.js";
import { CONSENSUS_FOR_ENGINE_AGNOSTIC, ProcessCluster, sleep } from "./process-cluster.test-util.js";

const CONCURRENCY = 16;
const WRITES_MAX = 100_000;
const PREFIX = "eo/";

/** Every key under `prefix` and its version (a key written twice is at 2), page by page. */
async function versionsUnder(client: Client, prefix: string): Promise<Map<string, number>> {
  const versions = new Map<string, number>();
  for (let after: string | undefined; ; ) {
    const page = await client.range(prefix, { limit: 1000, ...(after === undefined ? {} : { after }) });
    for (const kv of page.kvs) versions.set(kv.key, kv.version);
    if (!page.more || page.kvs.length === 0) return versions;
    after = page.kvs.at(-1)?.key;
  }
}

for (const consensus of CONSENSUS_FOR_ENGINE_AGNOSTIC) {
  describe(`exactly-once writes through the SDK across a leader crash (${consensus})`, { timeout: 60_000 }, () => {
    let cluster: ProcessCluster;
    let client: Client;
    let leader = 0;
    before(async () => {
      cluster = await ProcessCluster.start({ consensus, size: 3 });
      leader = await cluster.waitForLeader();
      client = new Client({
        endpoints: cluster.nodes.filter((node) => node.id !== leader).map((node) => node.http),
        concurrency: CONCURRENCY,
        healthCheckIntervalMs: 100,
        // Retry through the election (about 0.5 to 1 s): many attempts, short pauses, a budget
        // that covers 16 writes retrying at once, and attempts cut at 1 s, since a follower
        // holds a write it forwarded to the dead leader until the node's 5 s request timeout.
        attemptTimeoutMs: 1_000,
        retry: { attemptsMax: 40, backoffMsBase: 20, backoffMsMax: 200, retryTokensMax: 2_000 },
        seed: 5,
      });
    });
    after(async () => {
      await client.close();
      await cluster.close();
    });

    test("kill -9 the leader mid-load: every acknowledged write is present and no key was applied twice", async (t) => {
      const acknowledged = new Set<string>();
      const failures = new Map<string, number>();
      let next = 0;
      let stop = false;
      const worker = async (): Promise<void> => {
        while (!stop && next < WRITES_MAX) {
          const key = `${PREFIX}${String(next++).padStart(6, "0")}`;
          try {
            await client.put(key, key);
            acknowledged.add(key);
          } catch (error) {
            const name = error instanceof Error ? `${error.name}:${(error as { code?: string }).code ?? ""}` : String(error);
            failures.set(name, (failures.get(name) ?? 0) + 1);
          }
        }
      };
      const workers = Array.from({ length: CONCURRENCY }, worker);

      assert.equal(await cluster.waitForLeader(), leader, "the leader has not changed since the client was made");
      await sleep(600);
      const beforeKill = client.stats();
      assert.ok(beforeKill.inFlight > 0, "writes are in flight when the leader dies");
      await cluster.kill(leader);
      const survivors = cluster.nodes.map((node) => node.id).filter((id) => id !== leader);
      const newLeader = await cluster.waitForLeader(10_000, survivors);
      await sleep(2_000);
      stop = true;
      await Promise.all(workers);

      const stats = client.stats();
      const versions = await versionsUnder(client, PREFIX);
      const missing = [...acknowledged].filter((key) => !versions.has(key));
      const appliedTwice = [...versions].filter(([, version]) => version !== 1);
      t.diagnostic(
        `writes started ${next}, acknowledged ${acknowledged.size}, failed ${JSON.stringify(Object.fromEntries(failures))}; ` +
          `keys present ${versions.size}; calls retried ${stats.callsRetried}, retries ${stats.retries} (${stats.retriesMaybeApplied} after an attempt that may have applied), denied ${stats.retriesDenied}, ` +
          `outcome unknown ${stats.outcomeUnknown}; sessions opened ${stats.sessionsOpened}, expired ${stats.sessionsExpired}; leader ${leader} -> ${newLeader}`,
      );
      assert.deepEqual(missing, [], "every acknowledged write is present");
      assert.deepEqual(appliedTwice, [], "every key is at version 1");
      // Writes caught by the crash are sent again (the next test makes sure some of those
      // had in fact been applied: here the leader's own copies may have died with it).
      assert.ok(stats.callsRetried > 0, "writes were retried across the crash (else the test proves nothing)");
      assert.ok(acknowledged.size > 100, `writes went on after the crash (${acknowledged.size} acknowledged)`);
      assert.ok(stats.lanes <= CONCURRENCY);
    });

    test("kill -9 the node the writes go through: the leader commits what it forwarded, and each resent write applies once", async (t) => {
      // Back to three nodes: the one killed above restarts and catches up.
      cluster.startNode(leader);
      const current = await cluster.waitForLeader(10_000);
      const [entry, other] = cluster.nodes.map((node) => node.id).filter((id) => id !== current) as [number, number];
      // Writes go through the first follower (the second is there to resend to): when it dies,
      // the writes it had passed to the leader are committed anyway, with their answers lost.
      const through = new Client({
        endpoints: [cluster.node(entry).http, cluster.node(other).http],
        strategy: "weighted",
        weights: { [cluster.node(entry).http]: 1000, [cluster.node(other).http]: 1 },
        concurrency: CONCURRENCY,
        healthCheckIntervalMs: 100,
        // The writes must go through `entry`: a client following the member list would learn
        // the leader's address and write to it directly.
        membersIntervalMs: 0,
        attemptTimeoutMs: 1_000,
        retry: { attemptsMax: 40, backoffMsBase: 20, backoffMsMax: 200, retryTokensMax: 2_000 },
        seed: 6,
      });
      try {
        const prefix = "eo2/";
        const acknowledged = new Set<string>();
        let next = 0;
        let stop = false;
        const workers = Array.from({ length: CONCURRENCY }, async () => {
          while (!stop && next < WRITES_MAX) {
            const key = `${prefix}${String(next++).padStart(6, "0")}`;
            await through.put(key, key).then(
              () => acknowledged.add(key),
              () => undefined,
            );
          }
        });
        await sleep(600);
        await cluster.kill(entry);
        await sleep(1_500);
        stop = true;
        await Promise.all(workers);
        const stats = through.stats();
        const versions = await versionsUnder(through, prefix);
        t.diagnostic(`writes ${next}, acknowledged ${acknowledged.size}; resent after an attempt that may have applied: ${stats.retriesMaybeApplied}; outcome unknown ${stats.outcomeUnknown}`);
        assert.deepEqual([...acknowledged].filter((key) => !versions.has(key)), [], "every acknowledged write is present");
        assert.deepEqual([...versions].filter(([, version]) => version !== 1), [], "every key is at version 1");
        assert.ok(stats.retriesMaybeApplied > 0, "writes were sent again after attempts that may have been applied");
      } finally {
        await through.close();
      }
    });
  });
}

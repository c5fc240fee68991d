/**
 * Transactions across ranges on a cluster of real processes (three `synod node`s with
 * `--shards 4`): a bank whose accounts live in every range, moved between by transfers
 * (compare both balances, write both) through the SDK from several clients at once, while
 * the node they were sent to is killed with SIGKILL. The total never changes, every
 * transfer acknowledged is in the balances, and nothing stays locked once the coordinators
 * that vanished were recovered.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "../../client/client.js";
import { HttpApiError } from "../../client/errors.js";
import { ProcessCluster, request, sleep } from "./process-cluster.test-util.js";

/** Accounts in each of the four ranges (cut at "B", "U" and "h"). */
const ACCOUNTS = ["0-ann", "1-bob", "K-cy", "L-dee", "a-eve", "b-fay", "x-gus", "y-hal"];
const START = 100;

const text = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString("utf8");

describe("transactions across ranges (--shards 4)", { timeout: 120_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 3, flags: ["--shards", "4"] });
    await cluster.waitForRangeLeaders(4);
  });
  after(async () => cluster.close());

  test("a transfer between two ranges is one atomic step: both or neither, through HTTP and the SDK", async () => {
    const http = cluster.node(2).http;
    for (const account of ACCOUNTS) assert.equal((await request("PUT", `${http}/v1/kv/${account}`, String(START))).status, 200);
    const body = {
      compare: [
        { key: "0-ann", target: "value", op: "=", value: "100" },
        { key: "x-gus", target: "value", op: "=", value: "100" },
      ],
      success: [
        { op: "put", key: "0-ann", value: "90" },
        { op: "put", key: "x-gus", value: "110" },
        { op: "get", key: "a-eve" },
      ],
      failure: [{ op: "get", key: "0-ann" }],
    };
    const answer = await request("POST", `${http}/v1/txn`, JSON.stringify(body), { "content-type": "application/json" });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body["succeeded"], true);
    assert.equal((answer.body["ranges"] as unknown[]).length, 3, "the transaction touched three ranges");
    assert.equal(((answer.body["results"] as { kv?: { value?: string } }[])[2]?.kv?.value), "100", "a get in another range reads its value");
    for (const [key, value] of [["0-ann", "90"], ["x-gus", "110"]]) assert.equal((await request("GET", `${cluster.node(3).http}/v1/kv/${key}`)).body["value"], value);
    // The same compares fail now: the failure branch, in every range, changes nothing.
    const again = await request("POST", `${http}/v1/txn`, JSON.stringify(body), { "content-type": "application/json" });
    assert.equal(again.body["succeeded"], false);
    const client = new Client({ endpoints: cluster.nodes.map((node) => node.http), healthCheckIntervalMs: 0 });
    try {
      const back = await client.txn({ compare: [{ key: "0-ann", target: "value", op: "=", value: "90" }], success: [{ op: "put", key: "0-ann", value: "100" }, { op: "put", key: "x-gus", value: "100" }] });
      assert.equal(back.succeeded, true, "the SDK sends one across ranges outside its sessions");
    } finally {
      await client.close();
    }
  });

  test("bank under load, with the node coordinating half the transfers killed: the total holds, and nothing stays locked", async (t) => {
    const victim = 3;
    const survivors = [1, 2];
    const client = new Client({ endpoints: survivors.map((id) => cluster.node(id).http), healthCheckIntervalMs: 0 });
    const stats = { committed: 0, aborted: 0, failedCompare: 0, unknown: 0, inFlightAtKill: 0 };
    let killed = false;
    let running = true;
    /** One transfer: through the SDK, or (`direct`) posted to the victim, which coordinates it. */
    const transferOnce = async (x: number, direct: boolean): Promise<void> => {
      const from = ACCOUNTS[x % ACCOUNTS.length] as string;
      const to = ACCOUNTS[(x >> 8) % ACCOUNTS.length] as string;
      if (from === to) return;
      const [a, b] = await Promise.all([client.get(from), client.get(to)]);
      const [fromBalance, toBalance] = [Number(text(a?.value)), Number(text(b?.value))];
      const amount = 1 + (x % 5);
      const txn = {
        compare: [
          { key: from, target: "value" as const, op: "=" as const, value: String(fromBalance) },
          { key: to, target: "value" as const, op: "=" as const, value: String(toBalance) },
        ],
        success: [
          { op: "put" as const, key: from, value: String(fromBalance - amount) },
          { op: "put" as const, key: to, value: String(toBalance + amount) },
        ],
      };
      if (!direct) {
        const answer = await client.txn(txn);
        if (answer.succeeded) stats.committed++;
        else stats.failedCompare++;
        return;
      }
      const answer = await request("POST", `${cluster.node(victim).http}/v1/txn`, JSON.stringify(txn), { "content-type": "application/json" });
      if (answer.status === 200) {
        if (answer.body["succeeded"] === true) stats.committed++;
        else stats.failedCompare++;
      } else if (answer.body["error"] === "txn_aborted" || answer.body["error"] === "txn_locked") stats.aborted++;
      else throw new Error(answer.text);
    };
    const transferLoop = async (seed: number, direct: boolean): Promise<void> => {
      let x = seed;
      for (let i = 0; running && i < 20_000; i++) {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        try {
          await transferOnce(x, direct);
        } catch (error) {
          if (error instanceof HttpApiError && (error.code === "txn_aborted" || error.code === "txn_locked")) stats.aborted++;
          else if (killed && direct) {
            // The coordinator is gone mid-transfer: what it prepared is left to the recovery.
            stats.inFlightAtKill++;
            return;
          } else stats.unknown++;
          await sleep(10);
        }
      }
    };
    const loops = [transferLoop(1, true), transferLoop(2, true), transferLoop(3, false), transferLoop(4, false)];
    await sleep(1500);
    killed = true;
    await cluster.kill(victim);
    await sleep(2500);
    running = false;
    await Promise.all(loops);
    await client.close();
    t.diagnostic(`transfers: ${JSON.stringify(stats)}`);
    assert.ok(stats.committed > 20, "transfers went through");
    assert.equal(stats.inFlightAtKill, 2, "both of the victim's clients were sending when it was killed");

    // The vanished coordinator's transactions are resolved by the survivors (after 3 s), then the total is what it was.
    const reader = new Client({ endpoints: survivors.map((id) => cluster.node(id).http), healthCheckIntervalMs: 0 });
    try {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const shards = await cluster.shards(survivors[0] as number);
        if (shards !== null && shards.every((s) => s.intents === 0)) break;
        if (Date.now() > deadline) assert.fail(`intents left: ${JSON.stringify(shards)}`);
        await sleep(200);
      }
      const recovered = survivors.map((id) => (cluster.node(id).output.match(/whose coordinator vanished/g) ?? []).length);
      t.diagnostic(`intents of the killed coordinator resolved by the survivors: ${recovered.join(" + ")}`);
      let total = 0;
      for (const account of ACCOUNTS) total += Number(text((await reader.get(account))?.value));
      assert.equal(total, START * ACCOUNTS.length, "money is neither made nor lost");
    } finally {
      await reader.close();
    }
    cluster.startNode(victim);
  });
});

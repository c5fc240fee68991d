/**
 * `client.transaction` on a cluster of real processes (three `synod node`s with `--shards
 * 4`): a bank whose accounts lie in every range, four clients (each its own Client) moving
 * money between them with interactive transactions (read two balances, write both unless
 * the payer has too little), conflicting often. Afterwards one transaction reads every
 * account: the total is what it was, no balance went below zero, and each balance is the
 * starting one plus exactly the transfers the clients saw commit. Without the compares
 * that validate the reads, concurrent transfers overwrite each other and money appears or
 * vanishes (the brief's mutant; see the report of the branch that added this).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { accountKeys, openAccounts, readBalances, summarize, transferLoop } from "../../bench/bank.js";
import { Client } from "../../client/client.js";
import { ProcessCluster } from "./process-cluster.test-util.js";

const START = 100;
const CLIENTS = 4;
const ACCOUNTS = accountKeys(8);

describe("interactive transactions across ranges (--shards 4)", { timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  const clients: Client[] = [];
  const client = (): Client => {
    const made = new Client({ endpoints: cluster.nodes.map((node) => node.http), healthCheckIntervalMs: 0 });
    clients.push(made);
    return made;
  };
  before(async () => {
    cluster = await ProcessCluster.start({ size: 3, flags: ["--shards", "4"] });
    await cluster.waitForRangeLeaders(4);
  });
  after(async () => {
    for (const made of clients) await made.close();
    await cluster.close();
  });

  test("a bank under concurrent transfers: the total holds, no balance goes negative, every committed transfer is in the balances", async (t) => {
    const admin = client();
    await openAccounts(admin, ACCOUNTS, START);
    const options = { accounts: ACCOUNTS, transfersPerClient: 30, durationMsMax: 12_000, retries: 30, seed: 1 };
    const tallies = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => transferLoop(client(), options, i)));
    const summary = summarize(tallies);
    t.diagnostic(`transfers: ${JSON.stringify(summary)}`);
    assert.deepEqual(tallies.flatMap((tally) => tally.errors), [], "no transfer failed but by a conflict");
    assert.ok(summary.committed >= 20, `transfers committed (${summary.committed})`);
    assert.ok(summary.runs > summary.committed + summary.declined, "the clients conflicted, and ran their transfers again");

    const balances = await readBalances(admin, ACCOUNTS);
    const total = [...balances.values()].reduce((sum, balance) => sum + balance, 0);
    assert.equal(total, START * ACCOUNTS.length, `money is neither made nor lost: ${JSON.stringify([...balances])}`);
    for (const [account, balance] of balances) assert.ok(balance >= 0, `${account} went to ${balance}`);
    // With no outcome unknown, each balance is exactly the start plus the committed transfers.
    if (summary.unknown === 0) {
      for (const account of ACCOUNTS) {
        const expected = START + tallies.reduce((sum, tally) => sum + (tally.ledger.get(account) ?? 0), 0);
        assert.equal(balances.get(account), expected, `${account}: the clients' committed transfers, and nothing else`);
      }
    }
  });
});

/**
 * A bank under kill -9 (issue 18): three real `synod node`s with `--shards 4`, accounts in
 * every range, clients moving money with `client.transaction` (two-phase commit whenever a
 * transfer crosses ranges), auditors reading every account in one transaction, and a killer
 * that kill -9's the leader of each range in turn (the ranges that anchor transactions'
 * records among them) every few seconds and restarts it. Judged:
 *
 * - every audit (a read of all accounts in one transaction, validated or under locks) sums
 *   to the starting total, and no balance is negative;
 * - once the faults stop, no intent is left in any range (the coordinators that died were
 *   recovered), and the balances sum to the total;
 * - each balance is the start plus exactly the transfers the clients saw commit and some
 *   set of those whose outcome is unknown (each applied whole or not at all); a transfer
 *   that failed otherwise was certainly not applied.
 *
 * `npm run nemesis:bank` runs it for a minute (src/nemesis/bank-main.ts);
 * src/nemesis/bank.test.ts runs a short one in `npm test`. No namespaces or root needed.
 */
import { accountKeys, openAccounts, readBalances, summarize, transferLoop, type ClientTally } from "../bench/bank.js";
import { Client } from "../client/client.js";
import { HttpApiError, TransactionConflictError } from "../client/errors.js";
import { ProcessCluster, sleep } from "../runtime/server/process-cluster.test-util.js";

export interface BankRunOptions {
  readonly durationMs: number;
  /** A kill every this often (the killed node restarts after `downMs`). */
  readonly killEveryMs: number;
  readonly downMs: number;
  readonly clients: number;
  readonly accounts: number;
  readonly seed: number;
  readonly log?: (line: string) => void;
}

export interface BankRunReport {
  readonly violations: readonly string[];
  readonly transfers: ReturnType<typeof summarize>;
  /** Audits that read every account in one transaction (each checked), those a transfer's locks or writes made read again, and those the faults failed. */
  readonly audits: number;
  readonly auditsConflicted: number;
  readonly auditsFailed: number;
  /** Each kill: the node, the range it led. */
  readonly kills: readonly { readonly node: number; readonly range: number }[];
  /** From the end of the faults until no range held an intent. */
  readonly settleMs: number;
  readonly transferErrors: readonly string[];
}

const START = 100;

const text = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString("utf8");

/** Transfers of unknown outcome searched at most (every subset of them is tried). */
const MAYBE_SEARCHED_MAX = 16;

/** Whether some subset of `maybe`, applied on top of `committed`, gives exactly `balances`. */
function explained(balances: ReadonlyMap<string, number>, committed: ReadonlyMap<string, number>, maybe: readonly { readonly from: string; readonly to: string; readonly amount: number }[]): boolean {
  for (let set = 0; set < 2 ** maybe.length; set++) {
    const moved = new Map(committed);
    maybe.forEach((transfer, i) => {
      if ((set & (1 << i)) === 0) return;
      moved.set(transfer.from, (moved.get(transfer.from) ?? 0) - transfer.amount);
      moved.set(transfer.to, (moved.get(transfer.to) ?? 0) + transfer.amount);
    });
    if ([...moved].every(([account, balance]) => balances.get(account) === balance)) return true;
  }
  return false;
}

export async function runBankUnderKills(options: BankRunOptions): Promise<BankRunReport> {
  const log = options.log ?? (() => undefined);
  const accounts = accountKeys(options.accounts);
  const total = START * accounts.length;
  const violations: string[] = [];
  const cluster = await ProcessCluster.start({ size: 3, flags: ["--shards", "4"] });
  const clients: Client[] = [];
  const client = (): Client => {
    const made = new Client({ endpoints: cluster.nodes.map((node) => node.http), healthCheckIntervalMs: 0 });
    clients.push(made);
    return made;
  };
  try {
    await cluster.waitForRangeLeaders(4);
    const admin = client();
    await openAccounts(admin, accounts, START);
    const check = (balances: readonly number[], where: string): void => {
      const sum = balances.reduce((a, b) => a + b, 0);
      if (sum !== total || balances.some((balance) => balance < 0)) violations.push(`${where}: balances ${balances.join(", ")} sum to ${sum}, not ${total}, or one is negative`);
    };

    let faulting = true;
    const audit = { done: 0, conflicted: 0, failed: 0 };
    const auditor = async (reader: Client, direct: boolean): Promise<void> => {
      while (faulting) {
        try {
          if (direct) {
            // One transaction of gets: under every range's lock at once, one moment's balances.
            const answer = await reader.txn({ success: accounts.map((key) => ({ op: "get" as const, key })) });
            // A range that did not answer its part in time (its leader killed) has its gets
            // `forgotten`: their values are not known, and kv null does not mean absent.
            if (answer.results.some((result) => result.op === "get" && result.forgotten)) {
              audit.failed++;
              await sleep(200);
              continue;
            }
            check(answer.results.map((result) => (result.op === "get" ? Number(text(result.kv?.value)) : Number.NaN)), "a read of every account in one transaction");
          } else check([...(await readBalances(reader, accounts)).values()], "an interactive transaction reading every account");
          audit.done++;
        } catch (error) {
          // A transfer held an account (or changed one under the reads): read again at once.
          if (error instanceof TransactionConflictError || (error instanceof HttpApiError && error.code === "txn_aborted")) {
            audit.conflicted++;
            continue;
          }
          audit.failed++;
        }
        await sleep(200);
      }
    };
    const kills: { node: number; range: number }[] = [];
    const killer = async (): Promise<void> => {
      for (let round = 0; faulting; round++) {
        // A kill every killEveryMs, from one kill to the next (the node is down downMs of it).
        await sleep(Math.max(0, options.killEveryMs - options.downMs));
        if (!faulting) return;
        const up = cluster.nodes.find((node) => node.process !== null)?.id ?? 1;
        const view = await cluster.shards(up);
        const target = view?.[round % (view?.length ?? 1)];
        if (target === undefined || target.leader === null) continue;
        kills.push({ node: target.leader, range: target.id });
        log(`kill -9 node ${target.leader}, the leader of range ${target.id}`);
        await cluster.kill(target.leader);
        await sleep(options.downMs);
        cluster.startNode(target.leader);
      }
    };
    const transferOptions = { accounts, transfersPerClient: 1_000_000, durationMsMax: options.durationMs, retries: 30, seed: options.seed };
    const transfers = Promise.all(Array.from({ length: options.clients }, (_, i) => transferLoop(client(), transferOptions, i)));
    const auditors = [auditor(client(), true), auditor(client(), false)];
    const killing = killer();
    const tallies: ClientTally[] = await transfers;
    faulting = false;
    await Promise.all([...auditors, killing]);
    for (const node of cluster.nodes) if (node.process === null) cluster.startNode(node.id);

    // Healed: every range's intents resolved (by the coordinators, or by the recovery of the ones that died).
    const healedAt = Date.now();
    await waitFor(async () => {
      const views = await Promise.all(cluster.nodes.map((node) => cluster.shards(node.id)));
      return views.every((view) => view !== null && view.every((shard) => shard.intents === 0 && shard.leader !== null));
    }, 30_000, "intents were left in a range after the faults stopped");
    const settleMs = Date.now() - healedAt;
    const balances = await readBalances(admin, accounts);
    check([...balances.values()], "the balances once healed");
    const summary = summarize(tallies);
    // A transfer that failed otherwise was not applied (its reads failed, or its commit was
    // refused); one whose outcome is unknown was applied whole or not at all: some set of
    // those, added to the committed ones, must give every balance.
    const committed = new Map(accounts.map((account) => [account, START + tallies.reduce((sum, tally) => sum + (tally.ledger.get(account) ?? 0), 0)]));
    const maybe = tallies.flatMap((tally) => tally.maybe);
    if (maybe.length <= MAYBE_SEARCHED_MAX && !explained(balances, committed, maybe)) {
      for (const account of accounts) {
        if (balances.get(account) !== committed.get(account)) violations.push(`${account} holds ${balances.get(account)}, not ${committed.get(account)}: the start plus the transfers the clients saw commit${maybe.length === 0 ? "" : `, with no set of the ${maybe.length} whose outcome is unknown making up the difference`}`);
      }
    }
    return { violations, transfers: summary, audits: audit.done, auditsConflicted: audit.conflicted, auditsFailed: audit.failed, kills, settleMs, transferErrors: tallies.flatMap((tally) => tally.errors) };
  } finally {
    for (const made of clients) await made.close();
    await cluster.close();
  }
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number, failure: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(failure);
    await sleep(100);
  }
}

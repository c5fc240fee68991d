// A bank over `client.transaction`: accounts spread over a sharded cluster's ranges, and
// clients moving money between them (read two balances, write both, unless the payer has
// too little). Each client keeps a ledger of the transfers that committed, so a reader can
// check, besides the total, that every one of them is in the balances and nothing else is.
// Used by src/runtime/server/txn-interactive.test.ts (which asserts) and txn.bench.ts
// (which measures). Pure client code: the cluster is the caller's.
import type { Client } from "../client/client.js";
import { Prng } from "../core/common/prng.js";
import { TimeoutError, TransactionConflictError } from "../client/errors.js";

/**
 * First characters that put accounts in each range of `--shards 4` (cut at "B", "U" and
 * "h"): two per range, so a transfer between neighbours in the list may stay in one range
 * or cross two.
 */
const RANGE_SPREAD = ["0", "A", "K", "T", "a", "g", "x", "z"];

/** `count` account keys, in every range of a `--shards 4` cluster in turn. */
export function accountKeys(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${RANGE_SPREAD[i % RANGE_SPREAD.length]}-acct-${i}`);
}

export interface BankOptions {
  readonly accounts: readonly string[];
  /** Transfers each client makes, at most (between two different accounts). */
  readonly transfersPerClient: number;
  /** Clients stop starting transfers after this long. */
  readonly durationMsMax: number;
  /** Runs of a transfer's function before it gives up (TransactionConflictError). */
  readonly retries: number;
  readonly seed: number;
}

export interface ClientTally {
  /** Transfers that committed (money moved), and those the payer's balance declined (read-only, validated). */
  committed: number;
  declined: number;
  /** Runs of the transfer functions, over all transfers that ended (committed, declined or gave up). */
  runs: number;
  /** Transfers that gave up after `retries` (nothing written). */
  gaveUp: number;
  /** Commits whose outcome is unknown (may or may not be in the balances), and other errors. */
  unknown: number;
  errors: string[];
  /** Each account's change by this client's committed transfers. */
  readonly ledger: Map<string, number>;
  /** The transfers whose outcome is unknown: each is in the balances, or not at all. */
  readonly maybe: { readonly from: string; readonly to: string; readonly amount: number }[];
}

const text = (bytes: Uint8Array | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString("utf8");

/** Sets every account to `start` in one transaction. */
export async function openAccounts(client: Client, accounts: readonly string[], start: number): Promise<void> {
  await client.transaction(async (tx) => {
    for (const account of accounts) tx.put(account, String(start));
  });
}

/** Every account's balance, read in one transaction (its reads validated together). */
export async function readBalances(client: Client, accounts: readonly string[]): Promise<Map<string, number>> {
  const { value } = await client.transaction(async (tx) => {
    const kvs = await Promise.all(accounts.map((account) => tx.get(account)));
    return new Map(accounts.map((account, i) => [account, Number(text(kvs[i]?.value))]));
  });
  return value;
}

/** One client's transfers, one at a time, between accounts drawn from a seeded sequence. */
export async function transferLoop(client: Client, options: BankOptions, clientIndex: number): Promise<ClientTally> {
  const tally: ClientTally = { committed: 0, declined: 0, runs: 0, gaveUp: 0, unknown: 0, errors: [], ledger: new Map(), maybe: [] };
  const deadlineMs = Date.now() + options.durationMsMax;
  const prng = new Prng(options.seed * 1000 + clientIndex);
  const count = options.accounts.length;
  for (let i = 0; i < options.transfersPerClient && Date.now() < deadlineMs; i++) {
    const fromIndex = prng.int(0, count - 1);
    // Any other account: a transfer always moves between two.
    const from = options.accounts[fromIndex] as string;
    const to = options.accounts[(fromIndex + prng.int(1, count - 1)) % count] as string;
    const amount = prng.int(1, 20);
    try {
      const result = await client.transaction(async (tx) => {
        const [payer, payee] = await Promise.all([tx.get(from), tx.get(to)]);
        const [fromBalance, toBalance] = [Number(text(payer?.value)), Number(text(payee?.value))];
        if (fromBalance < amount) return false;
        tx.put(from, String(fromBalance - amount));
        tx.put(to, String(toBalance + amount));
        return true;
      }, { retries: options.retries });
      tally.runs += result.attempts;
      if (!result.value) {
        tally.declined++;
        continue;
      }
      tally.committed++;
      tally.ledger.set(from, (tally.ledger.get(from) ?? 0) - amount);
      tally.ledger.set(to, (tally.ledger.get(to) ?? 0) + amount);
    } catch (error) {
      if (error instanceof TransactionConflictError) {
        tally.gaveUp++;
        tally.runs += error.attempts;
      } else if (error instanceof TimeoutError && error.outcomeUnknown) {
        tally.unknown++;
        tally.maybe.push({ from, to, amount });
      }
      else tally.errors.push(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    }
  }
  return tally;
}

/** Totals over the clients' tallies, and the conflict rate: the share of runs that did not end the transfer. */
export function summarize(tallies: readonly ClientTally[]): { committed: number; declined: number; gaveUp: number; unknown: number; errors: number; runs: number; runsPerTransfer: number; conflictRate: number } {
  const sum = (field: "committed" | "declined" | "gaveUp" | "unknown" | "runs"): number => tallies.reduce((total, tally) => total + tally[field], 0);
  const ended = sum("committed") + sum("declined");
  const runs = sum("runs");
  const conflicts = runs - ended;
  return {
    committed: sum("committed"),
    declined: sum("declined"),
    gaveUp: sum("gaveUp"),
    unknown: sum("unknown"),
    errors: tallies.reduce((total, tally) => total + tally.errors.length, 0),
    runs,
    runsPerTransfer: ended === 0 ? Number.NaN : runs / ended,
    conflictRate: runs === 0 ? 0 : conflicts / runs,
  };
}

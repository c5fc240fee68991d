// The bank under kill -9 (src/nemesis/bank.ts), short: 11 s of transfers by interactive
// transactions across four ranges of three real nodes, the leaders of the ranges killed in
// turn every 3.5 s (the leader of each of the four ranges once at least, in CI six kills
// of 15 s showed it). `npm run nemesis:bank` runs it for a minute.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runBankUnderKills } from "./bank.js";

describe("a bank under kill -9 of the ranges' leaders", { timeout: 120_000 }, () => {
  test("every read of all accounts sums to the total, no intent is left once healed, and every committed transfer is in the balances", async (t) => {
    const report = await runBankUnderKills({ durationMs: 11_000, killEveryMs: 3_500, downMs: 1_500, clients: 4, accounts: 8, seed: 1, log: (line) => t.diagnostic(line) });
    t.diagnostic(`${JSON.stringify(report.transfers)}; ${report.audits} audits (${report.auditsConflicted} read again after a conflict, ${report.auditsFailed} failed); settled in ${report.settleMs} ms; errors: ${report.transferErrors.slice(0, 3).join(" | ")}`);
    assert.deepEqual(report.violations, []);
    assert.ok(report.kills.length >= 3, `only ${report.kills.length} kills`);
    assert.ok(report.transfers.committed > 30, `only ${report.transfers.committed} transfers committed`);
    // Audits contend with the transfers for the accounts' locks and are often read again: a few checked is the point.
    assert.ok(report.audits >= 5, `only ${report.audits} audits`);
  });
});

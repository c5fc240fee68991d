/**
 * A short run of every fuzz target (`npm run fuzz` runs them long): a fixed seed, so a
 * failure here replays with the command it prints. The counts keep the file near 15 s on a
 * small machine.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { fuzzCommands } from "./commands.js";
import { formatReport, mutate, type FuzzReport } from "./harness.js";
import { fuzzHttp } from "./http.js";
import { fuzzPeer } from "./peer.js";
import { fuzzStorage } from "./storage.js";

const SEED = 19;

function assertClean(report: FuzzReport, runs: number): void {
  assert.equal(report.failure, null, formatReport(report));
  assert.ok(report.inputs >= runs, `${report.inputs} inputs of ${runs}`);
}

/** Outcomes whose label starts with `prefix`, summed. */
function counted(report: FuzzReport, prefix: string): number {
  return [...report.outcomes].filter(([kind]) => kind.startsWith(prefix)).reduce((sum, [, count]) => sum + count, 0);
}

test("the state machine's decoders: typed errors or values that re-encode, over 20,000 inputs", () => {
  const report = fuzzCommands({ runs: 20_000, seed: SEED });
  assertClean(report, 20_000);
  // The mutations reach past the first checks: some inputs decode, of every kind.
  for (const decoder of ["command", "membership", "log-record", "kv-snapshot", "backup"]) {
    assert.ok(counted(report, `${decoder} accepted`) > 0 && counted(report, `${decoder} refused`) > 0, `${decoder}: ${formatReport(report)}`);
  }
});

test("the peer path, frames to engines: typed errors, and no engine stops on a validated message", () => {
  const report = fuzzPeer({ runs: 3_000, seed: SEED });
  assertClean(report, 3_000);
  for (const engine of ["raft", "paxos"]) assert.ok(counted(report, `${engine} message accepted`) > 100, formatReport(report));
  assert.ok(counted(report, "raft as leader") > 0 && counted(report, "paxos as leader") > 0, "inputs reach leaders too");
  assert.ok(counted(report, "heartbeat batch accepted") > 0 && counted(report, "heartbeat batch refused: InvalidInputError") > 0, `heartbeat batches, good and broken: ${formatReport(report)}`);
});

test("the log store over damaged files: a prefix of what was written, or a refusal naming file and offset", async () => {
  const report = await fuzzStorage({ runs: 1_000, seed: SEED });
  assertClean(report, 1_000);
  assert.ok(counted(report, "refused: WalCorruptionError") > 0 && counted(report, "recovered:") > 0, formatReport(report));
});

test("the HTTP API of a real node: 4xx with JSON errors or 2xx, and the node serves afterwards", { timeout: 120_000 }, async () => {
  const report = await fuzzHttp({ runs: 150, seed: SEED });
  assertClean(report, 150);
  assert.ok(counted(report, "2") > 0 && counted(report, "4") > 0, formatReport(report));
});

test("mutations wrap positions and never grow a truncation", () => {
  const bytes = Uint8Array.from([1, 2, 3, 4]);
  assert.deepEqual(mutate(bytes, { kind: "truncate", at: 6 }), Uint8Array.from([1]));
  assert.deepEqual(mutate(bytes, { kind: "flip", at: 5, bit: 0 }), Uint8Array.from([1, 3, 3, 4]));
  assert.deepEqual(mutate(new Uint8Array(0), { kind: "flip", at: 3, bit: 1 }), new Uint8Array(0));
});

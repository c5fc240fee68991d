// The `synod` command as a user runs it: real processes, real exit codes, real output.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseHistory } from "../sim/history.js";

const bin = fileURLToPath(new URL("../../bin/synod.js", import.meta.url));

function synod(...args: string[]): { code: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

const lastLine = (text: string): string => text.trim().split("\n").pop() ?? "";

describe("synod sim", () => {
  test("a passing run ends with 'N passed, 0 failed' and exits 0", () => {
    const run = synod("sim", "--protocol", "single", "--seeds", "4", "--seed", "1");
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.equal(lastLine(run.stdout), "4 passed, 0 failed");
  });

  test("a failing run exits 1 and prints a command that reproduces each failure", () => {
    const run = synod("sim", "--protocol", "async-primary", "--seeds", "4", "--seed", "1");
    assert.equal(run.code, 1);
    assert.match(lastLine(run.stdout), /^\d+ passed, [1-4] failed$/);
    const reproduce = /reproduce: npx synod sim (--protocol async-primary --seed (\d+))/.exec(run.stdout);
    assert.ok(reproduce !== null, run.stdout);
    const firstFail = /FAIL seed \d+: ([a-z-]+)/.exec(run.stdout)?.[1];
    // Running that command replays the same failure.
    const again = synod("sim", ...(reproduce[1] as string).split(" "));
    assert.equal(again.code, 1);
    assert.equal(lastLine(again.stdout), "0 passed, 1 failed");
    assert.equal(/FAIL seed \d+: ([a-z-]+)/.exec(again.stdout)?.[1], firstFail);
  });

  test("--json prints a machine-readable report", () => {
    const run = synod("sim", "--protocol", "single", "--seeds", "2", "--seed", "10", "--json");
    assert.equal(run.code, 0);
    const report = JSON.parse(run.stdout) as { passed: number; failed: number; results: { seed: number; passed: boolean }[] };
    assert.equal(report.passed, 2);
    assert.deepEqual(report.results.map((r) => r.seed), [10, 11]);
    assert.equal(lastLine(run.stderr), "2 passed, 0 failed");
  });

  test("--history-out writes the documented format, which synod check reads", () => {
    const dir = mkdtempSync(join(tmpdir(), "synod-cli-"));
    try {
      const file = join(dir, "history.json");
      const run = synod("sim", "--protocol", "async-primary", "--seed", "1", "--faults", "crash", "--history-out", file);
      assert.equal(run.code, 1);
      const history = parseHistory(JSON.parse(readFileSync(file, "utf8")));
      assert.ok(history.length > 100);
      const check = synod("check", file);
      assert.equal(check.code, 1, check.stdout + check.stderr);
      assert.match(check.stdout, /not linearizable/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("bad input gets a clear message and exit code 2", () => {
    const unknownProtocol = synod("sim", "--protocol", "nope", "--seeds", "1");
    assert.equal(unknownProtocol.code, 2);
    assert.match(unknownProtocol.stderr, /nope/);
    const badFaults = synod("sim", "--protocol", "single", "--faults", "meteor");
    assert.equal(badFaults.code, 2);
    assert.match(badFaults.stderr, /unknown fault class "meteor"/);
    const badSeeds = synod("sim", "--protocol", "single", "--seeds", "-3");
    assert.equal(badSeeds.code, 2);
    const missingFile = synod("check", "/no/such/file.json");
    assert.equal(missingFile.code, 2);
    assert.match(missingFile.stderr, /cannot read/);
  });

  test("--list-mutants lists each protocol's mutants", () => {
    const run = synod("sim", "--list-mutants");
    assert.equal(run.code, 0);
    assert.match(run.stdout, /single\s+skip-persist/);
  });

  test("--list-mutants --protocol paxos lists the Paxos mutants alone, one name a line", () => {
    const run = synod("sim", "--list-mutants", "--protocol", "paxos");
    assert.equal(run.code, 0, run.stderr);
    const names = run.stdout.trimEnd().split("\n");
    assert.ok(names.length >= 6, run.stdout);
    assert.ok(names.includes("accept-below-promise") && names.includes("count-stale-promise"), run.stdout);
    for (const name of names) assert.match(name, /^[a-z0-9-]+$/, "a bare name");
    assert.ok(!names.includes("vote-twice") && !names.includes("send-before-persist"), "no other protocol's");
  });

  test("--help works on every command", () => {
    for (const command of [[], ["sim"], ["check"], ["demo"], ["protocols"]]) {
      const run = synod(...command, "--help");
      assert.equal(run.code, 0, command.join(" "));
      assert.match(run.stdout, /Usage: synod/);
    }
  });
});

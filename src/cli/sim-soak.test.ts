// `npm run sim:soak`: which engines it runs, what it prints, how it fails.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { EngineFactory } from "../core/engine/contract.js";
import { correctEngines, PROTOCOLS } from "../sim/protocols.js";
import { describeSoak, formatWall } from "./sim-soak.js";

const soakScript = fileURLToPath(new URL("./sim-soak.js", import.meta.url));

function soak(...args: string[]): { code: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [soakScript, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

describe("sim:soak", () => {
  test("runs every engine that claims to be correct: Raft, Paxos, and any engine registered later, never the controls", () => {
    assert.deepEqual(correctEngines(), ["raft", "paxos"]);
    const raft = PROTOCOLS.get("raft") as EngineFactory<unknown, unknown>;
    const withAnother = new Map([...PROTOCOLS, ["another", { ...raft, name: "another" }]]);
    assert.deepEqual(correctEngines(withAnother), ["raft", "paxos", "another"]);
  });

  test("npm run sim:soak builds and runs the soak", () => {
    const scripts = (JSON.parse(readFileSync(fileURLToPath(new URL("../../package.json", import.meta.url)), "utf8")) as { scripts: Record<string, string> }).scripts;
    assert.match(scripts["sim:soak"] ?? "", /npm run build && node dist\/cli\/sim-soak\.js/);
  });

  test("prints N passed, M failed per engine with the wall time, and exits 0 when all pass", () => {
    const run = soak("--seeds", "2", "--seed", "1", "--workers", "1");
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^synod sim:soak: seeds 1\.\.2 of raft, paxos, 1 worker\(s\)$/m);
    assert.match(run.stdout, /^soak of 2 seeds from 1, wall time \d+ s:$/m);
    assert.match(run.stdout, /^ {2}raft: 2 passed, 0 failed in \d+ s \([\d,]+ s of cluster time, \d+ client operations\)$/m);
    assert.match(run.stdout, /^ {2}paxos: 2 passed, 0 failed in \d+ s \([\d,]+ s of cluster time, \d+ client operations\)$/m);
  });

  test("a failing seed is named with the command that reproduces it, and the soak exits 1", () => {
    // A broken engine asked for by name, to see the failure path (the default never runs it).
    const run = soak("--engines", "async-primary", "--seeds", "2", "--seed", "1", "--workers", "1");
    assert.equal(run.code, 1);
    assert.match(run.stdout, /FAIL seed 2: /);
    assert.match(run.stdout, /reproduce: npx synod sim --protocol async-primary --seed 2$/m);
    assert.match(run.stdout, /^ {2}async-primary: 1 passed, 1 failed in /m);
  });

  test("an unknown engine or a bad count is refused with a message", () => {
    const unknown = soak("--engines", "paxos-9");
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown engine "paxos-9"; the simulator knows raft, paxos, single, async-primary/);
    const bad = soak("--seeds", "0");
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--seeds must be an integer from 1/);
  });

  test("figures read as docs/simulator.md records them", () => {
    assert.equal(formatWall(1_044_000), "17 min 24 s");
    assert.equal(formatWall(4_400), "4 s");
    assert.equal(
      describeSoak("raft", { passed: 10_000, failed: 0, clusterSeconds: 189_483.2, operations: 28_812_345 }, 1_044_000),
      "raft: 10000 passed, 0 failed in 17 min 24 s (189,483 s of cluster time, 28.8 M client operations)",
    );
  });
});

// @ts-check
/**
 * The lock service's state machine in the simulator, as its users run it (`synod sim
 * --state-machine`): the correct one passing, the forgetful one caught. Apart from
 * lock-service.test.js, which starts real processes: this only computes, so npm test runs
 * it beside other such files rather than alone.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
// The synod command of the package this example is built on.
const synodBin = fileURLToPath(new URL("../bin/synod.js", import.meta.resolve("synod")));

/**
 * @param {string[]} args
 * @returns {Promise<{ code: number | null, output: string }>}
 */
function synod(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [synodBin, ...args], { stdio: ["ignore", "pipe", "pipe"], cwd: join(here, "..", "..") });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.on("exit", (code) => resolve({ code, output }));
  });
}

describe("the lock service in the simulator", { timeout: 300_000 }, () => {
  test("the lock state machine passes 10 seeds of every fault", async () => {
    const { code, output } = await synod(["sim", "--state-machine", "examples/lock-service/sim.js", "--seeds", "10", "--seed", "1", "--workers", "2"]);
    assert.equal(code, 0, output);
    assert.match(output, /10 passed, 0 failed/);
  });

  test("the forgetful one is caught, with the command that reproduces the failure", async () => {
    const { code, output } = await synod(["sim", "--state-machine", "examples/lock-service/sim-broken.js", "--seeds", "4", "--seed", "3", "--workers", "2"]);
    assert.equal(code, 1, output);
    const reproduce = /reproduce: npx synod (sim --protocol raft --state-machine examples\/lock-service\/sim-broken\.js --seed 3)\n/.exec(output);
    assert.ok(reproduce !== null, output);
    const again = await synod(/** @type {string} */ (reproduce[1]).split(" "));
    assert.equal(again.code, 1);
    assert.match(again.output, /FAIL seed 3: (determinism|linearizability)/);
  });
});

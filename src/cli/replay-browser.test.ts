/**
 * The dashboard's Replay view in a real browser, with no cluster: `synod sim --seed S --open`
 * (a real process) writes a replay and serves it with the page; the page loads it by itself
 * from its fragment, or from the file input (a failing mutant's replay, written by the same
 * simulator), plays it to its end at high speed and shows the verdict.
 *
 * Needs Chromium (Debian: apt-get install chromium); skipped, saying so, where none is found.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "puppeteer-core";
import type { EngineFactory } from "../core/engine/contract.js";
import { PROTOCOLS } from "../sim/protocols.js";
import { replayFileText } from "../sim/replay-file.js";
import { REPLAY_EVENTS_MAX, type ReplayHeader } from "../sim/replay-trace.js";
import { runSimulation } from "../sim/simulation.js";
import { sleep, within } from "../runtime/server/process-cluster.test-util.js";
import { launchChromium, skipWithoutChromium } from "./browser.test-util.js";

const SYNOD_BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "synod.js");
const skip = skipWithoutChromium("the replay's browser test");

/** The file input's handle (the Node build has no DOM types to name it by). */
type FileInput = { uploadFile(...paths: string[]): Promise<void> };

const PASSING_SEED = 500;
const FAILING = { seed: 8, mutant: "apply-before-commit" } as const;

/** Waits until the page's player says the replay reached its end; returns what it shows then. */
async function playToEnd(page: Page, timeoutMs: number): Promise<{ at: number; end: number }> {
  await page.select("#replay-speed", "1000");
  await page.click("#replay-play");
  await page.waitForSelector('.replay-player[data-ended="true"]', { timeout: timeoutMs });
  return page.$eval(".replay-player", (player) => ({ at: Number(player.getAttribute("data-at")), end: Number(player.getAttribute("data-end")) }));
}

/** The Replay view with nothing loaded (a fresh document: a changed fragment alone would not reload it). */
async function openEmpty(page: Page, url: string): Promise<void> {
  await page.goto("about:blank");
  await page.goto(new URL("/dashboard#replay", url).href, { waitUntil: "load" });
}

describe("the dashboard's Replay view in Chromium, with no cluster", { skip, timeout: 90_000 }, () => {
  let sim: ChildProcess | null = null;
  let output = "";
  let browser: Browser | null = null;
  let page: Page;
  let root = "";
  let url = "";
  const passingPath = (): string => join(root, "passing.jsonl");

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "synod-replay-"));
    sim = spawn(process.execPath, [SYNOD_BIN, "sim", "--protocol", "raft", "--seed", String(PASSING_SEED), "--workers", "1", "--trace-out", passingPath(), "--open"], { stdio: ["ignore", "pipe", "pipe"] });
    sim.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    sim.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    const deadline = Date.now() + 30_000;
    let match: RegExpExecArray | null = null;
    while ((match = /Replay: (http:\/\/127\.0\.0\.1:\d+\/dashboard#replay=\S+)/.exec(output)) === null) {
      if (Date.now() > deadline || sim.exitCode !== null) throw new Error(`synod sim --open did not print the replay's address:\n${output}`);
      await sleep(50);
    }
    url = match[1] as string;
    ({ browser, page } = await launchChromium());
  });

  after(async () => {
    await browser?.close();
    if (sim !== null && sim.exitCode === null) {
      const exited = new Promise((resolve) => sim?.once("exit", resolve));
      sim.kill("SIGTERM");
      await within(exited, 5000, () => null);
      if (sim.exitCode === null) sim.kill("SIGKILL");
    }
    rmSync(root, { recursive: true, force: true });
  });

  test("synod sim --open: the page loads the run's replay by itself and plays it to its end; the verdict says passed", async () => {
    const header = JSON.parse(readFileSync(passingPath(), "utf8").split("\n")[0] as string) as ReplayHeader;
    assert.equal(header.verdict.passed, true);
    await page.goto(url, { waitUntil: "load" });
    await page.waitForSelector(".replay-player", { timeout: 10_000 });
    assert.equal(await page.$eval(".replay-player", (p) => p.getAttribute("data-ended")), "false");
    const shown = await playToEnd(page, 20_000);
    assert.equal(shown.at, shown.end);
    assert.equal(shown.end, header.endMicros);
    assert.equal(await page.$eval(".verdict", (v) => v.getAttribute("data-passed")), "true");
    assert.match(await page.$eval(".verdict", (v) => v.textContent ?? ""), new RegExp(`PASSED.*seed ${PASSING_SEED}`));
    const roles = await page.$$eval(".replay-node", (nodes) => nodes.map((node) => node.getAttribute("data-role")));
    assert.equal(roles.length, header.nodes.length);
    assert.equal(roles.filter((role) => role === "leader").length >= 1, true, `the last moment shows a leader: ${roles.join(",")}`);
    assert.equal(await page.$("#tab-live.active"), null, "the live view is not mounted");
  });

  test("a failing mutant's replay, chosen in the file input: step moves event by event, play reaches the end, the verdict names the checker and the failure is marked", async () => {
    const factory = PROTOCOLS.get("raft") as EngineFactory<unknown, unknown>;
    const failing = runSimulation({ protocol: factory, seed: FAILING.seed, mutant: FAILING.mutant, replayEventsMax: REPLAY_EVENTS_MAX });
    assert.notEqual(failing.failure, null, `the mutant ${FAILING.mutant} passed seed ${FAILING.seed}`);
    const path = join(root, "failing.jsonl");
    writeFileSync(path, replayFileText(failing));
    await openEmpty(page, url);
    const input = (await page.waitForSelector("#replay-file", { timeout: 10_000 })) as unknown as FileInput;
    await input.uploadFile(path);
    await page.waitForSelector('.verdict[data-passed="false"]', { timeout: 10_000 });
    assert.match(await page.$eval(".verdict", (v) => v.textContent ?? ""), new RegExp(`FAILED: ${failing.failure?.checker}`));
    assert.ok((await page.$(".timeline .failure")) !== null, "the failure is marked on the timeline");
    await page.click("#replay-step");
    await page.click("#replay-step");
    const stepped = await page.$eval("#replay-at", (at) => at.textContent ?? "");
    assert.match(await page.$eval(".replay-time", (t) => t.textContent ?? ""), /event [1-9]\d* of/);
    assert.notEqual(stepped, "0.000 ms");
    const shown = await playToEnd(page, 20_000);
    assert.equal(shown.at, shown.end);
    assert.equal(shown.end, failing.stats.virtualMicros);
    assert.match(await page.$eval(".replay-event.failure-here", (e) => e.textContent ?? ""), new RegExp(`FAILED ${failing.failure?.checker}`), "the event list ends with the checker's failure");
  });

  test("a file that is not a replay: the page says why, and plays nothing", async () => {
    const path = join(root, "not-a-replay.jsonl");
    writeFileSync(path, "seed=1 scenario=mixed\n");
    await openEmpty(page, url);
    const input = (await page.waitForSelector("#replay-file", { timeout: 10_000 })) as unknown as FileInput;
    await input.uploadFile(path);
    await page.waitForSelector(".replay-error", { timeout: 10_000 });
    assert.match(await page.$eval(".replay-error", (e) => e.textContent ?? ""), /not-a-replay\.jsonl: line 1 is not JSON/);
    assert.equal(await page.$(".replay-player"), null);
  });
});

/**
 * The dashboard in a real browser against a real local cluster (`synod cluster`, three node
 * processes): the page shows three nodes and one leader, and every node's links carrying
 * messages (not only the links of the node it streams from); its kill button on the leader shows
 * a new leader within 3 s and its restart button brings the node back; when the node the page
 * streams from is killed, the page moves to another member and keeps showing the cluster.
 *
 * Needs Chromium (Debian: apt-get install chromium); skipped, saying so, where none is found.
 * SYNOD_DASHBOARD_SCREENSHOT=docs/dashboard.png writes the screenshot the README shows.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "puppeteer-core";
import { freePortRange, request, sleep, within } from "../runtime/server/process-cluster.test-util.js";
import { launchChromium, skipWithoutChromium } from "./browser.test-util.js";

const SYNOD_BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "synod.js");
const skip = skipWithoutChromium("the dashboard's browser tests");


/** The role each node's card shows, by node id. */
async function roles(page: Page): Promise<Record<string, string>> {
  return page.$$eval(".node", (cards) => Object.fromEntries(cards.map((card) => [card.getAttribute("data-node") ?? "?", card.getAttribute("data-role") ?? "?"])));
}

/** Polls the page until `predicate` holds for the cards' roles; returns them and the time it took. */
async function waitForRoles(page: Page, predicate: (roles: Record<string, string>) => boolean, timeoutMs: number): Promise<{ roles: Record<string, string>; ms: number }> {
  const startedMs = Date.now();
  let seen: Record<string, string> = {};
  while (Date.now() - startedMs < timeoutMs) {
    seen = await roles(page).catch(() => ({}));
    if (predicate(seen)) return { roles: seen, ms: Date.now() - startedMs };
    await sleep(50);
  }
  throw new Error(`the page did not show that within ${timeoutMs} ms; it shows ${JSON.stringify(seen)}`);
}

/** The link rows the page shows: "node-peer" to messages sent per second. */
async function linkRows(page: Page): Promise<Record<string, number>> {
  return page.$$eval("[data-link]", (rows) => Object.fromEntries(rows.map((row) => [row.getAttribute("data-link") ?? "?", Number(row.getAttribute("data-sent"))])));
}

const leaderOf = (shown: Record<string, string>): string[] => Object.entries(shown).filter(([, role]) => role === "leader").map(([id]) => id);

describe("the dashboard in Chromium, on a local cluster", { skip, timeout: 90_000 }, () => {
  let cluster: ChildProcess | null = null;
  let output = "";
  let browser: Browser | null = null;
  let page: Page;
  let root = "";
  let base = 0;
  const url = (id: number): string => `http://127.0.0.1:${base + id - 1}`;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "synod-dashboard-"));
    // HTTP on base..base+3 and peers on base+4..base+7: room for the node the page adds.
    base = await freePortRange(8);
    cluster = spawn(process.execPath, [SYNOD_BIN, "cluster", "--base-port", String(base), "--peer-base-port", String(base + 4), "--data-dir", root, "--allow-fault-injection"], { stdio: ["ignore", "pipe", "pipe"] });
    cluster.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    cluster.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    const deadline = Date.now() + 30_000;
    while (!output.includes("Dashboard: ")) {
      if (Date.now() > deadline || cluster.exitCode !== null) throw new Error(`synod cluster did not report a leader:\n${output}`);
      await sleep(50);
    }
    assert.match(output, new RegExp(`Dashboard: http://127\\.0\\.0\\.1:${base}/dashboard`), "synod cluster prints the dashboard's address");
    ({ browser, page } = await launchChromium());
  });

  after(async () => {
    await browser?.close();
    if (cluster !== null && cluster.exitCode === null) {
      const exited = new Promise((resolve) => cluster?.once("exit", resolve));
      cluster.kill("SIGTERM");
      await within(exited, 15_000, () => null);
      if (cluster.exitCode === null) cluster.kill("SIGKILL");
    }
    rmSync(root, { recursive: true, force: true });
  });

  test("the page shows three nodes, one leader and every node's link rates; the leader's kill button shows a new leader within 3 s; restart brings it back", async () => {
    const status = await request("GET", `${url(1)}/v1/status`);
    const leader = status.body["leader"] as number;
    // The page streams from a node that is not the leader, so killing the leader does not move it.
    const watcher = [1, 2, 3].find((id) => id !== leader) as number;
    await page.goto(`${url(watcher)}/dashboard`, { waitUntil: "load" });
    const shown = await waitForRoles(page, (r) => Object.keys(r).length === 3 && leaderOf(r).length === 1, 5000);
    assert.deepEqual(leaderOf(shown.roles), [String(leader)]);
    for (let i = 0; i < 30; i++) assert.equal((await request("PUT", `${url(watcher)}/v1/kv/browser-${i}`, "v")).status, 200);
    // Every node's links, not only those of the node streamed from: the leader's to each follower carry messages.
    const followers = [1, 2, 3].filter((id) => id !== leader);
    let links: Record<string, number> = {};
    for (const deadline = Date.now() + 3000; Date.now() < deadline; await sleep(100)) {
      links = await linkRows(page);
      if (Object.keys(links).length === 6 && followers.every((id) => (links[`${leader}-${id}`] ?? 0) > 0 && (links[`${id}-${leader}`] ?? 0) > 0)) break;
    }
    assert.deepEqual(Object.keys(links).sort(), ["1-2", "1-3", "2-1", "2-3", "3-1", "3-2"], "a row for each link of each node");
    assert.ok(followers.every((id) => (links[`${leader}-${id}`] ?? 0) > 0 && (links[`${id}-${leader}`] ?? 0) > 0), `the leader's links carry messages both ways: ${JSON.stringify(links)}`);
    const screenshot = process.env["SYNOD_DASHBOARD_SCREENSHOT"];
    if (screenshot !== undefined && screenshot !== "") {
      await sleep(1500);
      await page.screenshot({ path: screenshot as `${string}.png`, fullPage: true });
    }

    await page.click(`.node[data-node="${leader}"] [data-action="kill"]`);
    const failover = await waitForRoles(page, (r) => r[String(leader)] === "down" && leaderOf(r).length === 1, 3000);
    assert.notEqual(leaderOf(failover.roles)[0], String(leader));
    process.stdout.write(`# the page showed node ${leaderOf(failover.roles)[0]} leading ${failover.ms} ms after the kill button on node ${leader}\n`);

    await page.waitForSelector(`.node[data-node="${leader}"] [data-action="restart"]`, { timeout: 2000 });
    await page.click(`.node[data-node="${leader}"] [data-action="restart"]`);
    await waitForRoles(page, (r) => r[String(leader)] === "follower", 10_000);
  });

  test("when the node the page streams from dies, the page moves to another member and still shows the cluster", async () => {
    const streaming = await page.$eval(".node .here", (badge) => badge.closest(".node")?.getAttribute("data-node") ?? "");
    assert.notEqual(streaming, "");
    await page.click(`.node[data-node="${streaming}"] [data-action="kill"]`);
    const streamingPort = String(base + Number(streaming) - 1);
    const deadline = Date.now() + 8000;
    while (new URL(page.url()).port === streamingPort && Date.now() < deadline) await sleep(50);
    const shown = await waitForRoles(page, (r) => Object.keys(r).length === 3 && r[streaming] === "down" && leaderOf(r).length === 1, 8000);
    assert.equal(shown.roles[streaming], "down");
    assert.notEqual(new URL(page.url()).port, String(base + Number(streaming) - 1), "the page moved to another node");
    await page.click(`.node[data-node="${streaming}"] [data-action="restart"]`);
    await waitForRoles(page, (r) => r[streaming] === "follower", 10_000);
  });

  test("the add button starts a fourth node that joins: the page shows it following the leader", async () => {
    await page.click('[data-action="add"]');
    const shown = await waitForRoles(page, (r) => r["4"] === "follower" && leaderOf(r).length === 1, 20_000);
    process.stdout.write(`# the page showed node 4 following ${shown.ms} ms after the add button\n`);
    assert.match(output, /node 4 .*added from the dashboard/);
    const members = await request("GET", `${url(1)}/v1/members`);
    assert.deepEqual((members.body["members"] as { id: number }[]).map((m) => m.id).sort(), [1, 2, 3, 4]);
  });

  test("the isolate button cuts the leader off: another node leads, and the page says so", async () => {
    const before = await waitForRoles(page, (r) => leaderOf(r).length === 1, 5000);
    const leader = leaderOf(before.roles)[0] as string;
    await page.click(`.node[data-node="${leader}"] [data-action="isolate"]`);
    const after = await waitForRoles(page, (r) => leaderOf(r).length >= 1 && !leaderOf(r).includes(leader), 5000);
    assert.ok(!leaderOf(after.roles).includes(leader));
  });
});

/**
 * The dashboard's login form in a real browser, against three real `synod node` processes
 * with auth enabled as docs/security.md does it (a user root holding the role root, then
 * `synod auth enable`): the page asks for a user and shows nothing of the cluster; a wrong
 * password is refused with the node's message on the form, and nothing more is shown; the
 * right one shows the three nodes and their one leader.
 *
 * Needs Chromium (Debian: apt-get install chromium); skipped, saying so, where none is found.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Browser, Page } from "puppeteer-core";
import { ProcessCluster, request, runSynod, sleep } from "../runtime/server/process-cluster.test-util.js";
import { launchChromium, skipWithoutChromium } from "./browser.test-util.js";

const skip = skipWithoutChromium("the dashboard's login test");

const ROOT_PASSWORD = "rootpw";

/** What the page shows of the cluster: each node card's role by node id, and the header's cluster line. */
async function shown(page: Page): Promise<{ roles: Record<string, string>; cluster: string | null }> {
  const roles = await page.$$eval(".node", (cards) => Object.fromEntries(cards.map((card) => [card.getAttribute("data-node") ?? "?", card.getAttribute("data-role") ?? "?"])));
  const cluster = await page.$eval(".cluster", (line) => line.textContent).catch(() => null);
  return { roles, cluster };
}

/** Replaces an input's text by typing, as a user would (the form's fields are Preact-controlled). */
async function typeInto(page: Page, selector: string, text: string): Promise<void> {
  await page.click(selector, { count: 3 });
  await page.keyboard.press("Backspace");
  await page.type(selector, text);
}

describe("the dashboard's login form in Chromium, on a cluster with auth enabled", { skip, timeout: 60_000 }, () => {
  let cluster: ProcessCluster;
  let browser: Browser | null = null;
  let page: Page;

  before(async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    await cluster.waitForLeader();
    const endpoints = cluster.nodes.map((node) => node.http).join(",");
    for (const args of [["user", "add", "root", "--password", ROOT_PASSWORD], ["user", "grant", "root", "root"], ["auth", "enable"]]) {
      const run = await runSynod([...args, "--endpoints", endpoints], 20_000);
      assert.equal(run.code, 0, `synod ${args.join(" ")}: ${run.output}`);
    }
    assert.equal((await request("GET", `${cluster.node(1).http}/v1/auth/status`)).body["enabled"], true);
    ({ browser, page } = await launchChromium());
  });

  after(async () => {
    await browser?.close();
    await cluster.close();
  });

  test("asks for a user and shows nothing of the cluster; a wrong password says so; the right one shows three nodes and one leader", async () => {
    await page.goto(`${cluster.node(1).http}/dashboard`, { waitUntil: "load" });
    await page.waitForSelector("form.login", { timeout: 5000 });
    // Give a page that would stream anyway time to draw what it got.
    await sleep(1000);
    assert.deepEqual(await shown(page), { roles: {}, cluster: null }, "no node, leader or cluster id before signing in");

    await typeInto(page, 'form.login input[name="user"]', "root");
    await typeInto(page, 'form.login input[name="password"]', "not-the-password");
    await page.click('form.login button[type="submit"]');
    const error = await page.waitForSelector("form.login .error", { timeout: 5000 });
    assert.match((await error?.evaluate((element) => element.textContent)) ?? "", /wrong name or password/);
    assert.deepEqual(await shown(page), { roles: {}, cluster: null }, "still nothing of the cluster after a refused password");

    await typeInto(page, 'form.login input[name="password"]', ROOT_PASSWORD);
    const signedInAtMs = Date.now();
    await page.click('form.login button[type="submit"]');
    let seen = await shown(page);
    for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(50)) {
      seen = await shown(page);
      // The other members show as down until the node's first poll of their status answers.
      const roles = Object.values(seen.roles);
      if (roles.length === 3 && roles.filter((role) => role === "leader").length === 1 && roles.every((role) => role === "leader" || role === "follower")) break;
    }
    const leader = await cluster.waitForLeader();
    assert.deepEqual(seen.roles, Object.fromEntries([1, 2, 3].map((id) => [String(id), id === leader ? "leader" : "follower"])), "three nodes, one leader");
    assert.match(seen.cluster ?? "", new RegExp(`3 members · leader\\s*node ${leader}`));
    assert.equal(await page.$("form.login"), null, "the form is gone");
    process.stdout.write(`# the page showed the cluster ${Date.now() - signedInAtMs} ms after signing in\n`);
  });
});

/**
 * Chromium for the browser tests (the dashboard, its login form, the replay view), in one
 * place: where it is looked for, the `skip` a test's describe gets where there is none, and
 * how it is started. puppeteer-core drives the Chromium installed on the machine and
 * downloads none, so a machine without one skips these tests, saying why, instead of failing.
 */
import { existsSync } from "node:fs";
import type { Browser, Page } from "puppeteer-core";

/** Where Chromium is looked for, in order: `CHROMIUM_PATH` if set, then where Debian and others install it. */
export const CHROMIUM_PATHS: readonly string[] = [process.env["CHROMIUM_PATH"], "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].filter((path): path is string => path !== undefined && path !== "");

/** The first of CHROMIUM_PATHS that exists, or null. */
export const chromiumPath: string | null = CHROMIUM_PATHS.find((path) => existsSync(path)) ?? null;

/**
 * A describe's `skip` option: false where Chromium was found, else a message naming `what`
 * is skipped, where Chromium was looked for, and how to get it.
 */
export function skipWithoutChromium(what: string): string | false {
  if (chromiumPath !== null) return false;
  return `no Chromium found (looked in ${CHROMIUM_PATHS.join(", ")}); install it (apt-get install chromium) or set CHROMIUM_PATH to run ${what}`;
}

/**
 * Starts headless Chromium and opens one page, 1280×900. `--no-sandbox` because tests run
 * as root in containers, where Chromium's sandbox cannot start; `--disable-dev-shm-usage`
 * because a container's /dev/shm is often too small for it. The caller closes the browser
 * (in its `after`, so a failed test leaves no Chromium behind).
 */
export async function launchChromium(): Promise<{ browser: Browser; page: Page }> {
  if (chromiumPath === null) throw new Error(`launchChromium without Chromium: the test should have been skipped (${String(skipWithoutChromium("it"))})`);
  const puppeteer = await import("puppeteer-core");
  const browser = await puppeteer.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    return { browser, page };
  } catch (error) {
    await browser.close();
    throw error;
  }
}

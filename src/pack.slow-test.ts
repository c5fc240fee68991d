/**
 * `npm run test:pack`: the package as a user gets it. `npm pack` makes the tarball (a clean
 * build: `prepack` empties dist/), which is installed into a directory outside the
 * repository; then `npx synod --help`, `npx synod node` and `npx synod cluster` run from
 * the installation, and serve; and the container image's runtime stage is rebuilt without
 * a container engine and runs the image's command. Slow (a build and an `npm install` of the dependencies,
 * about a minute), so it is not part of `npm test`.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
const NPX = process.platform === "win32" ? "npx.cmd" : "npx";

describe("the npm package", { timeout: 600_000 }, () => {
  let dir: string;
  let tarball: string;
  let files: string[];
  const children: ChildProcess[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "synod-pack-"));
    const packed = JSON.parse(execFileSync(NPM, ["pack", "--json", "--pack-destination", dir], { cwd: REPO, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] })) as { filename: string; files: { path: string }[] }[];
    const [only] = packed;
    assert.ok(only !== undefined);
    tarball = join(dir, only.filename);
    files = only.files.map((file) => file.path);
    const app = join(dir, "app");
    execFileSync("mkdir", ["-p", app]);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "synod-pack-check", private: true }));
    execFileSync(NPM, ["install", "--no-audit", "--no-fund", tarball], { cwd: app, stdio: ["ignore", "inherit", "inherit"] });
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  test("the tarball holds the command and the compiled library, not the tests or the sources", () => {
    for (const needed of ["bin/synod.js", "dist/cli/main.js", "dist/index.js", "dist/index.d.ts", "dist/cli/sim-worker.js", "package.json", "README.md"]) assert.ok(files.includes(needed), `${needed} is packed`);
    assert.deepEqual(files.filter((path) => /\.(test|test-util|slow-test)\.|\.map$|^src\//.test(path)), []);
  });

  test("npx synod --help runs from the installation, outside the repository", () => {
    // "--" keeps npx from taking --help for itself.
    const help = execFileSync(NPX, ["--no", "--", "synod", "--help"], { cwd: join(dir, "app"), encoding: "utf8" });
    for (const command of ["node", "cluster", "snapshot", "put", "get"]) assert.match(help, new RegExp(`^  ${command}\\b`, "m"));
  });

  test("the installed synod node starts a node that serves writes and reads", async () => {
    const [http, peer] = await freePorts(2);
    const node = spawnSynod(["node", "--id", "1", "--http", `127.0.0.1:${http}`, "--peer", `127.0.0.1:${peer}`, "--data-dir", join(dir, "node-data"), "--log-level", "warn"]);
    children.push(node.child);
    const url = `http://127.0.0.1:${http}`;
    await until(async () => (await fetchJson(`${url}/v1/status`))?.["leader"] === 1, 20_000, () => node.output());
    const put = await fetch(`${url}/v1/kv/packed`, { method: "PUT", body: "yes" });
    assert.equal(put.status, 200);
    assert.equal((await fetchJson(`${url}/v1/kv/packed`))?.["value"], "yes");
    node.child.kill("SIGTERM");
    assert.equal(await exitCode(node.child), 0, node.output());
  });

  test("the installed synod cluster starts three nodes and elects a leader; Ctrl-C stops them", async () => {
    const httpBase = await consecutiveFreePorts(3);
    const peerBase = await consecutiveFreePorts(3);
    const cluster = spawnSynod(["cluster", "--base-port", String(httpBase), "--peer-base-port", String(peerBase), "--data-dir", join(dir, "cluster-data")]);
    children.push(cluster.child);
    await until(async () => /node \d leads \(term \d+\)/.test(cluster.output()), 30_000, () => cluster.output());
    assert.equal((await fetch(`http://127.0.0.1:${httpBase + 1}/v1/kv/missing`)).status, 404);
    cluster.child.kill("SIGINT");
    assert.equal(await exitCode(cluster.child), 0, cluster.output());
    assert.match(cluster.output(), /stopped\./);
  });

  test("the container image's runtime stage: the tarball with production dependencies only runs the image's command", async () => {
    // What the Dockerfile's second stage does, without a container engine: the packed
    // files, the lockfile, `npm ci --omit=dev --ignore-scripts`, then ENTRYPOINT + CMD.
    const image = join(dir, "image");
    execFileSync("mkdir", ["-p", image]);
    execFileSync("tar", ["-xzf", tarball, "-C", image, "--strip-components=1"]);
    copyFileSync(join(REPO, "package-lock.json"), join(image, "package-lock.json"));
    execFileSync(NPM, ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], { cwd: image, stdio: ["ignore", "inherit", "inherit"] });
    assert.equal(existsSync(join(image, "node_modules", "typescript")), false, "no development dependency is installed");
    const dockerfile = readFileSync(join(REPO, "Dockerfile"), "utf8");
    const command = JSON.parse(/^CMD (.+)$/m.exec(dockerfile)?.[1] ?? "[]") as string[];
    const [http, peer] = await freePorts(2);
    // The image's ports and volume, moved to free ports and a temporary directory.
    const args = command.map((arg) =>
      arg === "0.0.0.0:7001" ? `0.0.0.0:${http}` : arg === "http://127.0.0.1:7001" ? `http://127.0.0.1:${http}` : arg === "0.0.0.0:7101" ? `0.0.0.0:${peer}` : arg === "/var/lib/synod" ? join(dir, "image-data") : arg,
    );
    assert.equal(args.filter((arg, i) => arg !== command[i]).length, 4, `the CMD still uses the ports and volume this test moves: ${command.join(" ")}`);
    const child = spawn(process.execPath, [join(image, "bin", "synod.js"), ...args], { cwd: image, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NODE_ENV: "production" } });
    children.push(child);
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    const url = `http://127.0.0.1:${http}`;
    await until(async () => (await fetchJson(`${url}/v1/status`))?.["leader"] === 1, 20_000, () => output);
    assert.equal((await fetch(`${url}/v1/kv/in-image`, { method: "PUT", body: "yes" })).status, 200);
    child.kill("SIGTERM");
    assert.equal(await exitCode(child), 0, output);
  });

  /**
   * The installed `synod` (what `npx synod` runs: node_modules/.bin/synod) with ARGS, its
   * output collected. Started directly rather than through npx, which does not pass a
   * signal on to the command it runs: the test stops the node the way a user's Ctrl-C does.
   */
  function spawnSynod(args: readonly string[]): { child: ChildProcess; output: () => string } {
    const child = spawn(join(dir, "app", "node_modules", ".bin", "synod"), args, { cwd: join(dir, "app"), stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    return { child, output: () => output };
  }
});

async function fetchJson(url: string): Promise<Record<string, unknown> | null> {
  try {
    return (await (await fetch(url, { signal: AbortSignal.timeout(1000) })).json()) as Record<string, unknown>;
  } catch {
    return null;
  }
}

async function until(condition: () => Promise<boolean>, timeoutMs: number, context: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`not within ${timeoutMs} ms:\n${context().slice(-3000)}`);
}

function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

function listen(port: number): Promise<import("node:net").Server | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(null));
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

async function freePorts(count: number): Promise<number[]> {
  const servers = (await Promise.all(Array.from({ length: count }, () => listen(0)))) as import("node:net").Server[];
  const ports = servers.map((server) => (server.address() as import("node:net").AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** The first of `count` consecutive free loopback ports (`synod cluster` numbers its nodes' ports from a base). */
async function consecutiveFreePorts(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const [base] = await freePorts(1);
    if (base === undefined || base + count > 65_000) continue;
    const servers = await Promise.all(Array.from({ length: count }, (_, i) => listen(base + i)));
    await Promise.all(servers.map((server) => (server === null ? null : new Promise((resolve) => server.close(resolve)))));
    if (servers.every((server) => server !== null)) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/**
 * Examples in the docs that a user pastes, run as pasted against a real cluster (only the
 * ports changed), and references in the docs that must lead somewhere.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePortRange, ProcessCluster } from "./process-cluster.test-util.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

function read(relativePath: string): string {
  return readFileSync(join(ROOT, relativePath), "utf8");
}

/** The `sh` blocks of a Markdown text, in order. */
function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1] as string);
}

/**
 * Runs `script` with bash, stopping at the first failing command (unless `errexit` is false:
 * for examples with a command that is ended on purpose, like `curl --max-time`); its exit
 * code and stdout.
 */
function bash(script: string, cwd: string, errexit = true): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("bash", [...(errexit ? ["-e"] : []), "-o", "pipefail", "-c", script], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * The README's and docs' examples written for `npm start`'s three nodes (or two of them), on
 * one cluster of three: starting one for each group of examples cost a couple of seconds
 * each. The lease example goes first: it lists every lease, and the lock examples below make
 * some.
 */
describe("examples for npm start's cluster, on one three-node cluster", { timeout: 210_000 }, () => {
  let cluster: ProcessCluster;
  before(async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    await cluster.waitForLeader();
  });
  after(async () => {
    await cluster.close();
  });

  describe("the README's lease example, pasted", { timeout: 90_000 }, () => {
    test("grants, attaches two keys, shows and renews the lease, and after it lapses the keys are gone; the SDK's lease revokes its key", async () => {
      const blocks = shellBlocks(read("README.md"));
      const cli = blocks.find((text) => text.includes("synod lease grant"));
      const sdk = blocks.find((text) => text.includes("client.lease("));
      assert.ok(cli !== undefined && sdk !== undefined, "the examples are there");
      const ports = (text: string): string => [1, 2, 3].reduce((script, id) => script.replaceAll(`http://127.0.0.1:700${id}`, cluster.node(id).http), text);
      const endpoints = `export SYNOD_ENDPOINTS=${cluster.nodes.map((node) => node.http).join(",")}\n`;
      // node bin/synod.js is npx synod without npx's start-up time (seconds on a loaded machine).
      const run = await bash(endpoints + ports(cli).replaceAll("npx synod", "node bin/synod.js"), ROOT);
      assert.equal(run.code, 0, run.stderr + run.stdout);
      const lines = run.stdout.split("\n");
      assert.match(lines.find((line) => line.startsWith("id=")) ?? "", /^id=\d+ ttl=10s remaining=\d+\.\ds keys=2$/, run.stdout);
      assert.ok(lines.includes("service/web/a") && lines.includes("service/web/b"), run.stdout);
      assert.match(run.stdout, /\{"id":\d+,"ttlSeconds":10\}/, "the keep-alive's answer");
      assert.ok(run.stdout.trimEnd().endsWith("ttl=10s remaining=" + run.stdout.trimEnd().split("remaining=").at(-1)), `nothing after the lease list: the keys are gone\n${run.stdout}`);
      const node = await bash(ports(sdk), ROOT);
      assert.equal(node.code, 0, node.stderr);
      assert.match(node.stdout, /\[ 'service\/web\/c' \]/);
      assert.equal((await fetch(`${cluster.node(1).http}/v1/kv/service/web/c`)).status, 404, "revoked with its lease");
    });
  });

  describe("docs/http-api.md's client session example, pasted", { timeout: 60_000 }, () => {
    test("opens a session, and the write sent twice to two nodes applies once", async () => {
      const block = shellBlocks(read("docs/http-api.md")).find((text) => text.includes("/v1/sessions") && text.includes("x-synod-sequence"));
      assert.ok(block !== undefined, "the example is there");
      // The example's nodes are npm start's; the test cluster's ports are free ones.
      const script = block.replaceAll("http://127.0.0.1:7001", cluster.node(1).http).replaceAll("http://127.0.0.1:7002", cluster.node(2).http);
      const { code, stdout, stderr } = await bash(script, ROOT);
      assert.equal(code, 0, stderr);
      // echo ends its line; curl's answers have no newline of their own.
      const [session, answers] = stdout.split("\n");
      assert.match(session ?? "", /^\d+$/, `the id the registration answered:\n${stdout}`);
      const [first, second, ...rest] = answers?.match(/\{[^}]*\}/g) ?? [];
      assert.match(first ?? "", /^\{"revision":\d+\}$/, stdout);
      assert.equal(second, first, "the same write, applied once, gets the first answer");
      assert.deepEqual(rest, []);
    });
  });

  describe("the README's watch examples, docs/recipes.md's lock and election examples and docs/client.md's transaction, pasted", { timeout: 120_000 }, () => {
    /** `script` on the test cluster: its ports for npm start's, and the local bin for npx's start-up time (seconds on a loaded machine). */
    let onCluster: (script: string) => string;
    before(() => {
      const endpoints = `export SYNOD_ENDPOINTS=${cluster.nodes.map((node) => node.http).join(",")}\n`;
      onCluster = (script) => endpoints + [1, 2, 3].reduce((text, id) => text.replaceAll(`http://127.0.0.1:700${id}`, cluster.node(id).http), script).replaceAll("npx synod", "node bin/synod.js");
    });

    test("the README's history example: a read at a revision, a replayed watch (curl and synod watch), a compaction", async () => {
      const block = shellBlocks(read("README.md")).find((text) => text.includes("--from-revision $R"));
      assert.ok(block !== undefined, "the example is there");
      // Its curl watch is ended by --max-time on purpose (exit code 28): every line runs.
      const run = await bash(onCluster(block), ROOT, false);
      const R = Number(/"revision":(\d+),"createRevision"/.exec(run.stdout)?.[1]);
      assert.ok(R > 0, run.stdout + run.stderr);
      assert.match(run.stdout, new RegExp(`\\{"key":"config/color","value":"blue","revision":${R},`), "curl reads blue at revision R");
      // curl's answer ends without a newline, so synod's line follows it on the same line.
      assert.match(run.stdout, /\}blue$/m, "synod get --revision reads blue");
      assert.match(run.stdout, new RegExp(`^id: ${R}\ndata: .*"value":"blue"`, "m"), "the curl watch replays blue at R...");
      assert.match(run.stdout, new RegExp(`^id: ${R + 1}\ndata: .*"value":"red"`, "m"), "...and red after it");
      assert.match(run.stdout, new RegExp(`^\\{"type":"put","key":"config/color","value":"red","revision":${R + 1},`, "m"), "synod watch --json prints the changes");
      assert.match(run.stdout, new RegExp(`^OK compactRevision=${R} revision=${R + 1}$`, "m"));
    });

    test("the README's client.watch example prints the put and the delete", async () => {
      const block = shellBlocks(read("README.md")).find((text) => text.includes("client.watch("));
      assert.ok(block !== undefined, "the example is there");
      const run = await bash(onCluster(block), ROOT);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^put config\/color green (\d+)\ndelete config\/color {2}\d+\n$/);
    });

    test("docs/client.md's interactive transaction example: two transfers at once on the same accounts, then a read-only total", async () => {
      const block = shellBlocks(read("docs/client.md")).find((text) => text.includes("client.transaction("));
      assert.ok(block !== undefined, "the example is there");
      const run = await bash(onCluster(block), ROOT);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^true in \d+ run\(s\), true in \d+ run\(s\)\n80 70 150\n$/);
    });

    test("docs/recipes.md: the fenced write, synod lock twice (one after the other, growing tokens) and the election", async () => {
      const [fenced, locks, election] = shellBlocks(read("docs/recipes.md"));
      if (!(fenced?.includes("lock.token") && locks?.includes("synod lock") && election?.includes("client.campaign"))) return assert.fail("the examples are there, in this order");
      const fencedRun = await bash(onCluster(fenced), ROOT);
      assert.match(fencedRun.stdout, /^written with token \d+\n$/, fencedRun.stderr);
      const startedMs = Date.now();
      const lockRun = await bash(onCluster(locks), ROOT);
      const tokens = [...lockRun.stdout.matchAll(/^backing up with token (\d+)$/gm)].map((match) => Number(match[1]));
      assert.equal(tokens.length, 2, lockRun.stdout + lockRun.stderr);
      assert.ok((tokens[1] as number) > (tokens[0] as number), `tokens ${tokens.join(", ")}`);
      assert.ok(Date.now() - startedMs >= 4000, "two holds of 2 s, one after the other");
      const electionRun = await bash(onCluster(election), ROOT);
      assert.equal(electionRun.stdout, "leader: none\nleader: 10.0.0.7:8080\nleader: 10.0.0.8:8080\nleader: none\n", electionRun.stderr);
    });
  });
});

describe("references in the docs", () => {
  test("every roadmap step the docs cite is on the README's roadmap", () => {
    const readme = read("README.md");
    const roadmap = readme.slice(readme.indexOf("## Roadmap"));
    const steps = [...roadmap.matchAll(/^(\d+)\. /gm)].map((match) => Number(match[1]));
    assert.ok(steps.length > 0, "the README has a roadmap");
    const texts = ["README.md", ...readdirSync(join(ROOT, "docs")).filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`)];
    for (const path of texts) {
      for (const match of read(path).matchAll(/roadmap step (\d+)/gi)) {
        assert.ok(steps.includes(Number(match[1])), `${path} cites roadmap step ${match[1]}, which the README's roadmap (steps ${steps.join(", ")}) does not have`);
      }
    }
  });
});

describe("docs/operations.md's backup of a sharded cluster, pasted", { timeout: 90_000 }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "synod-docs-sharded-"));
    mkdirSync(join(dir, "bin"));
    symlinkSync(join(ROOT, "bin", "synod.js"), join(dir, "bin", "synod"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("saves a split --shards 2 cluster, restores it into three directories, and the new cluster serves its keys in the same ranges", async () => {
    const block = shellBlocks(read("docs/operations.md")).find((text) => text.includes("synod snapshot save sharded.snap"));
    assert.ok(block !== undefined, "the example is there");
    // npm start's ports are free ones here; the clusters it starts in the background are stopped however the script ends.
    const http = await freePortRange(3);
    const peer = await freePortRange(3);
    const script = [1, 2, 3]
      .reduce((text, id) => text.replaceAll(`127.0.0.1:710${id}`, `127.0.0.1:${peer + id - 1}`).replaceAll(`127.0.0.1:700${id}`, `127.0.0.1:${http + id - 1}`), block)
      .replaceAll("synod cluster --shards 2", `synod cluster --shards 2 --base-port ${http} --peer-base-port ${peer}`);
    const preamble = `trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\nexport PATH=${join(dir, "bin")}:$PATH SYNOD_ENDPOINTS=${[0, 1, 2].map((i) => `http://127.0.0.1:${http + i}`).join(",")}\n`;
    const { code, stdout, stderr } = await bash(preamble + script, dir);
    assert.equal(code, 0, stderr + stdout);
    assert.match(stdout, /saved sharded\.snap: 3 ranges, 3 keys, /);
    assert.match(stdout, /range 2 {2}\["x", end\) {2}1 key, revision \d+, index \d+ \(term \d+\), epoch 2/);
    assert.match(stdout, /restored sharded\.snap into restored-sharded\/node-3: 3 ranges, 3 keys/);
    assert.match(stdout, /^2 +"x" +\(end\) +2 /m, "the restored cluster has the range born of the split");
    // The clusters print to the same output; the last command's answer is a line of its own.
    assert.ok(stdout.split("\n").includes("yellow"), stdout);
  });
});

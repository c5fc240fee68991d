// `synod lease ...` and `synod put --lease` as a user runs them: real processes against a
// node's HTTP API in this process (a real KvStore, without consensus), so output and exit
// codes are the real ones.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KvStore } from "../core/kv/store.js";
import { ALL_REACHED, fakeService, READY, type Fault } from "../runtime/server/fake-service.test-util.js";
import { NotLeaderError } from "../core/common/errors.js";
import { createHttpApi } from "../runtime/server/http-api.js";

const bin = fileURLToPath(new URL("../../bin/synod.js", import.meta.url));

function synod(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe("synod lease", () => {
  let server: Server;
  let url: string;
  let store: KvStore;
  const fault: Fault = { refuse: null, quorum: ALL_REACHED, readiness: READY };
  before(async () => {
    store = new KvStore();
    server = createHttpApi(fakeService(store, fault, []), { requestBodyBytesMax: 1024 * 1024 });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test("grant, put --lease, keepalive --once, get, list, revoke: each prints what it did; a gone lease is exit code 1", async () => {
    const granted = await synod(["lease", "grant", "30", "--endpoints", url]);
    assert.equal(granted.code, 0, granted.stderr);
    const id = Number(/^OK id=(\d+) ttl=30s\n$/.exec(granted.stdout)?.[1]);
    assert.ok(id > 0, granted.stdout);
    const put = await synod(["put", "svc/a", "up", "--lease", String(id), "--endpoints", url]);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(store.leaseOf("svc/a"), id);
    const renewed = await synod(["lease", "keepalive", String(id), "--once", "--endpoints", url]);
    assert.equal(renewed.stdout, `OK id=${id} ttl=30s\n`);
    const shown = await synod(["lease", "get", String(id), "--endpoints", url]);
    assert.match(shown.stdout, new RegExp(`^id=${id} ttl=30s remaining=30\\.0s keys=1\\nsvc/a\\n$`));
    const listed = await synod(["lease", "list", "--json", "--endpoints", url]);
    assert.deepEqual(JSON.parse(listed.stdout.trim()), { id, ttlSeconds: 30, remainingMs: 30_000 });
    const revoked = await synod(["lease", "revoke", String(id), "--endpoints", url]);
    assert.equal(revoked.stdout, `OK deleted=1 revision=${store.currentRevision}\n`);
    assert.equal(store.get("svc/a"), undefined);
    for (const args of [["lease", "revoke", String(id)], ["lease", "keepalive", String(id)], ["lease", "get", String(id)], ["put", "k", "v", "--lease", String(id)]]) {
      const gone = await synod([...args, "--endpoints", url]);
      assert.equal(gone.code, 1, `${args.join(" ")}: ${gone.stderr}`);
      assert.match(gone.stderr, new RegExp(`lease ${id} does not exist`));
    }
  });

  test("synod lock: two commands under one lock never overlap, the second gets a higher fencing token, and the command's exit code is synod's", async () => {
    const log = join(mkdtempSync(join(tmpdir(), "synod-lock-")), "log");
    const script = `echo start $SYNOD_LOCK_TOKEN >> ${log}; sleep 0.6; echo end $SYNOD_LOCK_TOKEN >> ${log}; exit 7`;
    const runs = await Promise.all([synod(["lock", "locks/job", "--endpoints", url, "--", "sh", "-c", script]), synod(["lock", "locks/job", "--endpoints", url, "--", "sh", "-c", script])]);
    for (const run of runs) assert.equal(run.code, 7, run.stderr);
    const lines = readFileSync(log, "utf8").trim().split("\n").map((line) => line.split(" "));
    assert.deepEqual(lines.map(([what]) => what), ["start", "end", "start", "end"], "one after the other, never both at once");
    const [first, second] = [Number(lines[0]?.[1]), Number(lines[2]?.[1])];
    assert.equal(lines[1]?.[1], String(first));
    assert.ok(first > 0 && second > first, `tokens ${first} then ${second}`);
    assert.deepEqual(store.range("locks/job/", 10), [], "released");
  });

  test("synod lock rides out an election: requests answered 503 no_leader for 2 s are sent again until one is taken", async () => {
    // Two seconds: longer than a failover with the node's defaults (an election timeout of at
    // most 1 s and a round), and than the six quick tries a one-shot command makes.
    fault.refuse = new NotLeaderError(null);
    const healed = setTimeout(() => (fault.refuse = null), 2000);
    try {
      const run = await synod(["lock", "locks/election", "--endpoints", url, "--", "sh", "-c", "echo token $SYNOD_LOCK_TOKEN"]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^token \d+\n$/);
    } finally {
      clearTimeout(healed);
      fault.refuse = null;
    }
    assert.deepEqual(store.range("locks/election/", 10), [], "released");
  });

  test("synod elect: leads, prints LEADER with its token, and resigns on SIGINT", async () => {
    const child = spawn(process.execPath, [bin, "elect", "elect/cli", "me:1", "--endpoints", url], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const deadline = Date.now() + 15_000;
    while (!stdout.includes("LEADER") && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.match(stdout, /^LEADER token=\d+ key=elect\/cli\/\d+\n$/);
    assert.equal(new TextDecoder().decode(store.range("elect/cli/", 10)[0]?.value), "me:1");
    child.kill("SIGINT");
    assert.equal(await exited, 0);
    assert.deepEqual(store.range("elect/cli/", 10), [], "resigned");
  });

  test("a bad ttl or id is a usage error (exit code 2)", async () => {
    for (const args of [["lease", "grant", "0"], ["lease", "revoke", "x"], ["put", "k", "v", "--lease", "0"]]) {
      const refused = await synod([...args, "--endpoints", url]);
      assert.equal(refused.code, 2, `${args.join(" ")}: ${refused.stdout}${refused.stderr}`);
    }
  });
});

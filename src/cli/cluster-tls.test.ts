// `synod cluster --tls` end to end, with real processes: HTTPS for clients with the
// cluster's own CA, mutual TLS between the nodes (they elect a leader and replicate over it),
// a plain-text client told to use HTTPS, a client that does not trust the CA refused, the
// CLI with --cacert, failover after kill -9 of the leader, and a renewed certificate served
// after SIGHUP without a restart.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { connect as connectTls } from "node:tls";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Agent, fetch as undiciFetch } from "undici";
import { freePortRange, freePorts, runSynodApart, sleep } from "../runtime/server/process-cluster.test-util.js";
import { openLocalCa } from "../runtime/tls/local-ca.js";

const SYNOD_BIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "synod.js");

const run = runSynodApart;

describe("synod cluster --tls", { timeout: 300_000 }, () => {
  let dir: string;
  let cluster: ChildProcess;
  let output = "";
  let urls: string[] = [];
  let ca: string;
  let trusting: Agent;

  const call = async (method: string, url: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> => {
    const response = await undiciFetch(url, { method, dispatcher: trusting, signal: AbortSignal.timeout(8000), ...(body === undefined ? {} : { body }) });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  };
  const leader = async (): Promise<number> => {
    for (let i = 0; i < 200; i++) {
      for (const url of urls) {
        try {
          const status = await call("GET", `${url}/v1/status`);
          const id = status.json["leader"];
          if (typeof id === "number" && status.json["role"] === "leader") return id;
        } catch {
          // That node is down or still starting.
        }
      }
      await sleep(100);
    }
    assert.fail(`no leader; cluster output:\n${output}`);
  };
  const pidOf = (id: number): number => {
    const match = new RegExp(`node ${id} .* pid (\\d+)`).exec(output);
    assert.ok(match !== null, output);
    return Number(match[1]);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "synod-cluster-tls-"));
    const base = await freePortRange(3);
    const peerBase = await freePortRange(3);
    cluster = spawn(process.execPath, [SYNOD_BIN, "cluster", "--tls", "--data-dir", dir, "--base-port", String(base), "--peer-base-port", String(peerBase), "--log-level", "warn"], { stdio: ["ignore", "pipe", "pipe"] });
    cluster.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    cluster.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 120_000;
    while (!/leads \(term/.test(output)) {
      if (Date.now() > deadline || cluster.exitCode !== null) assert.fail(`no leader reported:\n${output}`);
      await sleep(100);
    }
    urls = [0, 1, 2].map((i) => `https://127.0.0.1:${(base as number) + i}`);
    ca = readFileSync(join(dir, "tls", "ca.pem"), "utf8");
    trusting = new Agent({ connect: { ca } });
  });
  after(async () => {
    cluster.kill("SIGTERM");
    await new Promise((resolve) => (cluster.exitCode !== null ? resolve(null) : cluster.once("exit", resolve)));
    await trusting.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("it says where the CA is and how to curl with it", () => {
    assert.match(output, /TLS: made a CA in .*tls\/ca\.pem/);
    assert.match(output, /curl --cacert .*ca\.pem -X PUT --data-binary world https:\/\/127\.0\.0\.1:\d+\/v1\/kv\/hello/);
  });

  test("writes and reads over HTTPS on every node, replicated between the nodes over mutual TLS", async () => {
    const put = await call("PUT", `${urls[0]}/v1/kv/tls-key`, "over-tls");
    assert.equal(put.status, 200, JSON.stringify(put.json));
    for (const url of urls) {
      const got = await call("GET", `${url}/v1/kv/tls-key`);
      assert.equal(got.status, 200, JSON.stringify(got.json));
      assert.equal(got.json["value"], "over-tls");
    }
    const status = await call("GET", `${urls[1]}/v1/status`);
    assert.ok(String(status.json["leaderHttp"]).startsWith("https://"), "members advertise https:// addresses");
  });

  test("a plain-HTTP client is told to use HTTPS; a client that does not trust the CA gets no answer", async () => {
    const plain = await fetch(`${(urls[0] as string).replace("https://", "http://")}/v1/kv/tls-key`);
    assert.equal(plain.status, 400);
    const body = (await plain.json()) as Record<string, unknown>;
    assert.equal(body["error"], "tls_required");
    assert.match(String(body["message"]), /HTTPS only/);
    await assert.rejects(fetch(`${urls[0]}/v1/kv/tls-key`), (error: Error) => /SELF_SIGNED_CERT_IN_CHAIN|certificate/i.test(String((error.cause as Error | undefined)?.message ?? error.message) + String((error.cause as { code?: string } | undefined)?.code)));
  });

  test("the CLI with --cacert; without it, a failure that names the certificate", async () => {
    const caFile = join(dir, "tls", "ca.pem");
    const put = await run(["put", "cli-tls", "yes", "--endpoints", urls.join(","), "--cacert", caFile]);
    assert.equal(put.code, 0, put.stderr);
    const get = await run(["get", "cli-tls", "--endpoints", urls.join(","), "--cacert", caFile]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, "yes\n");
    const untrusted = await run(["get", "cli-tls", "--endpoints", urls[0] as string]);
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.stderr, /SELF_SIGNED_CERT_IN_CHAIN|certificate/i);
  });

  test("synod proxy and synod bench with --cacert, in front of the HTTPS nodes", async () => {
    const [port] = await freePorts(1);
    const proxy = spawn(process.execPath, [SYNOD_BIN, "proxy", "--listen", `127.0.0.1:${port}`, "--endpoints", urls.join(","), "--cacert", join(dir, "tls", "ca.pem")], { stdio: ["ignore", "pipe", "pipe"] });
    let said = "";
    proxy.stdout?.on("data", (chunk: Buffer) => (said += chunk.toString()));
    proxy.stderr?.on("data", (chunk: Buffer) => (said += chunk.toString()));
    try {
      for (let i = 0; i < 100 && !said.includes("synod proxy on"); i++) await sleep(100);
      assert.match(said, /synod proxy on/);
      let put: Response | null = null;
      for (let i = 0; i < 50 && put?.status !== 200; i++) {
        put = await fetch(`http://127.0.0.1:${port}/v1/kv/via-proxy`, { method: "PUT", body: "tls-upstream" }).catch(() => null);
        if (put?.status !== 200) await sleep(100);
      }
      assert.equal(put?.status, 200, said);
      const got = await fetch(`http://127.0.0.1:${port}/v1/kv/via-proxy?raw=true`);
      assert.equal(await got.text(), "tls-upstream");
      assert.match(got.headers.get("x-synod-upstream") ?? "", /^https:/);
    } finally {
      proxy.kill("SIGKILL");
    }
    const bench = await run(["bench", "--endpoints", urls.join(","), "--cacert", join(dir, "tls", "ca.pem"), "--duration", "1s", "--max-ops", "200", "--concurrency", "4", "--json"]);
    assert.equal(bench.code, 0, bench.stderr);
    const result = JSON.parse(bench.stdout) as { ops: number; errors?: number };
    assert.ok(result.ops > 0, bench.stdout);
  });

  test("auth over TLS: enabled, it refuses strangers (401) and serves a user by its role", async () => {
    const tlsArgs = ["--endpoints", urls.join(","), "--cacert", join(dir, "tls", "ca.pem")];
    const synod = async (...args: string[]): Promise<void> => {
      const result = await run([...args, ...tlsArgs]);
      assert.equal(result.code, 0, `synod ${args.join(" ")}: ${result.stderr}`);
    };
    await synod("user", "add", "root", "--password", "rootpw");
    await synod("user", "grant", "root", "root");
    await synod("role", "add", "tls-reader");
    await synod("role", "grant", "tls-reader", "--prefix", "cli-", "--read");
    await synod("user", "add", "reader", "--password", "readerpw");
    await synod("user", "grant", "reader", "tls-reader");
    await synod("auth", "enable");
    try {
      assert.equal((await call("GET", `${urls[0]}/v1/kv/cli-tls`)).status, 401);
      const read = await run(["get", "cli-tls", "--user", "reader:readerpw", ...tlsArgs]);
      assert.deepEqual([read.code, read.stdout], [0, "yes\n"], read.stderr);
      const write = await run(["put", "cli-tls", "no", "--user", "reader:readerpw", ...tlsArgs]);
      assert.equal(write.code, 2, "a write without the permission is refused");
      assert.match(write.stderr, /permission_denied/);
    } finally {
      await synod("auth", "disable", "--user", "root:rootpw");
    }
  });

  test("kill -9 of the leader: a new one is elected over TLS and writes go on", async () => {
    const old = await leader();
    process.kill(pidOf(old), "SIGKILL");
    const survivors = urls.filter((_, i) => i + 1 !== old);
    let written = false;
    for (let i = 0; i < 100 && !written; i++) {
      try {
        const put = await call("PUT", `${survivors[i % survivors.length]}/v1/kv/after-kill`, "still");
        written = put.status === 200;
      } catch {
        // A request caught in the election: try again.
      }
      if (!written) await sleep(200);
    }
    assert.ok(written, `no write accepted after the leader was killed:\n${output}`);
    const got = await call("GET", `${survivors[0]}/v1/kv/after-kill`);
    assert.equal(got.json["value"], "still");
  });

  test("SIGHUP: a renewed certificate is served to new connections without a restart", async () => {
    const id = [1, 2, 3].find((n) => output.includes(`node ${n} `) && !new RegExp(`node ${n} \\(pid`).test(output)) ?? 1;
    const port = Number(new URL(urls[id - 1] as string).port);
    const serialOf = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = connectTls({ host: "127.0.0.1", port, ca, servername: "localhost" }, () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.destroy();
        });
        socket.on("error", reject);
      });
    const before = await serialOf();
    openLocalCa(join(dir, "tls")).issueNode(id, ["127.0.0.1"]);
    process.kill(pidOf(id), "SIGHUP");
    let after = before;
    for (let i = 0; i < 50 && after === before; i++) {
      await sleep(100);
      after = await serialOf();
    }
    assert.notEqual(after, before, "the node serves the renewed certificate");
    const got = await call("GET", `${urls[id - 1]}/v1/kv/tls-key`);
    assert.equal(got.status, 200, "and still answers");
  });

  test("SIGTERM: the nodes stop by themselves, their clients' keep-alive connections cut, well within the 10 s grace before SIGKILL", async () => {
    // A keep-alive connection to every running node, open as SIGTERM arrives.
    for (const url of urls) await call("GET", `${url}/v1/status`).catch(() => null);
    const startedMs = Date.now();
    cluster.kill("SIGTERM");
    await new Promise((resolve) => (cluster.exitCode !== null ? resolve(null) : cluster.once("exit", resolve)));
    const ms = Date.now() - startedMs;
    assert.ok(ms < 6_000, `synod cluster took ${ms} ms to stop:\n${output}`);
  });
});

// `synod put | get | del | status | bench` as a user runs them: real processes against fake
// nodes (src/client/fake-node.test-util.ts) in this process, so output and exit codes are
// the real ones. The spawn is asynchronous: the fake nodes must keep answering meanwhile.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { fakeNodes, refusingEndpoint } from "../client/fake-node.test-util.js";

const bin = fileURLToPath(new URL("../../bin/synod.js", import.meta.url));

function synod(args: string[], stdin = ""): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env["SYNOD_ENDPOINTS"];
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["pipe", "pipe", "pipe"], timeout: 30_000, env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

const fake = fakeNodes();


describe("synod put, get, del", () => {
  test("a value written is read back, as text, raw bytes or JSON, and deleted", async () => {
    const leader = await fake({ id: 1 });
    const endpoints = ["--endpoints", leader.url];
    const put = await synod(["put", "dir/greeting", "hello", ...endpoints]);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(put.stdout, "OK revision=2\n");
    assert.equal((await synod(["get", "dir/greeting", ...endpoints])).stdout, "hello\n");
    assert.equal((await synod(["get", "dir/greeting", "--raw", ...endpoints])).stdout, "hello");
    const json = JSON.parse((await synod(["get", "dir/greeting", "--json", "--consistency", "stale", ...endpoints])).stdout) as Record<string, unknown>;
    assert.deepEqual(json, { key: "dir/greeting", value: "hello", revision: 2, createRevision: 2, version: 1 });
    const del = await synod(["del", "dir/greeting", ...endpoints]);
    assert.equal(del.stdout, "OK deleted=1 revision=3\n");
    const absent = await synod(["get", "dir/greeting", ...endpoints]);
    assert.equal(absent.code, 1);
    assert.equal(absent.stdout, "");
    assert.equal(absent.stderr, 'synod: key "dir/greeting" not found\n');
  });

  test("put - reads the value from stdin; a failed compare-and-set exits 1", async () => {
    const leader = await fake({ id: 1 });
    const endpoints = ["--endpoints", leader.url];
    assert.equal((await synod(["put", "config", "-", "--json", ...endpoints], "line 1\nline 2\n")).stdout, '{"revision":2}\n');
    assert.equal(leader.store.get("config")?.value.toString(), "line 1\nline 2\n");
    const stale = await synod(["put", "config", "new", "--prev-revision", "1", ...endpoints]);
    assert.equal(stale.code, 1);
    assert.match(stale.stderr, /^synod: compare failed: .*revision 2.*\n$/);
    assert.equal(leader.store.get("config")?.value.toString(), "line 1\nline 2\n");
  });

  test("an unreachable cluster exits 3 with one line naming the endpoints; no leader anywhere exits 3 too", async () => {
    const down = await refusingEndpoint();
    const run = await synod(["put", "k", "v", "--endpoints", down]);
    assert.equal(run.code, 3);
    assert.equal(run.stderr, `synod: cannot connect to ${down} (ECONNREFUSED); is the cluster running? (npm start)\n`);
    const electing = await fake({ id: 1, failWith: { status: 503, code: "no_leader" } });
    const noLeader = await synod(["get", "k", "--endpoints", `${down},${electing.url}`]);
    assert.equal(noLeader.code, 3);
    assert.match(noLeader.stderr, /^synod: no_leader: /);
  });

  test("usage errors exit 2; --help shows examples and exits 0", async () => {
    const badEndpoint = await synod(["get", "k", "--endpoints", "localhost:7001"]);
    assert.equal(badEndpoint.code, 2);
    assert.match(badEndpoint.stderr, /"localhost:7001" is not a node URL/);
    const badConsistency = await synod(["get", "k", "--consistency", "eventual"]);
    assert.equal(badConsistency.code, 2);
    assert.match(badConsistency.stderr, /eventual/);
    assert.equal((await synod(["get", "k", "--raw", "--json"])).code, 2);
    assert.equal((await synod(["put", "k"])).code, 2);
    const help = await synod(["put", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /write a value under a key/);
    assert.match(help.stdout, /Examples:/);
  });
});

describe("synod status", () => {
  test("a table row per endpoint, unreachable ones marked; exit 0 while any answers, 3 when none does", async () => {
    const leader = await fake({ id: 1 });
    const down = await refusingEndpoint();
    const run = await synod(["status", "--endpoints", `${leader.url},${down}`]);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split("\n");
    assert.match(lines[0] ?? "", /^endpoint\s+id\s+role\s+term\s+leader\s+commit\s+applied$/);
    assert.match(lines[1] ?? "", new RegExp(`^${leader.url}\\s+1\\s+leader\\s+2\\s+1\\s+1\\s+1$`));
    assert.match(lines[2] ?? "", new RegExp(`^${down}\\s+-\\s+unreachable \\(ECONNREFUSED\\)$`));
    assert.equal(lines[3], "1 of 2 endpoints answered");
    const json = JSON.parse((await synod(["status", "--json", "--endpoints", `${leader.url},${down}`])).stdout) as { endpoint: string; status?: { role: string }; error?: { code: string } }[];
    assert.equal(json[0]?.status?.role, "leader");
    assert.equal(json[1]?.error?.code, "connection_failed");
    assert.equal((await synod(["status", "--endpoints", down])).code, 3);
  });
});

describe("synod bench", () => {
  test("--json reports throughput and latencies; every request goes to the leader the status names", async () => {
    const leader = await fake({ id: 1 });
    const follower = await fake({ id: 2, role: "follower", leaderHttp: leader.url });
    const run = await synod(["bench", "--endpoints", `${follower.url},${leader.url}`, "--duration", "300ms", "--concurrency", "4", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as { ops: number; seconds: number; opsPerSecond: number; latencyMs: Record<string, number>; errors: Record<string, number> };
    assert.ok(result.ops > 10, run.stdout);
    assert.deepEqual(result.errors, {});
    assert.deepEqual(Object.keys(result.latencyMs).sort(), ["max", "mean", "p50", "p90", "p99"]);
    assert.ok(result.latencyMs["p50"]! <= result.latencyMs["p99"]! && result.latencyMs["p99"]! <= result.latencyMs["max"]!);
    assert.equal(follower.requests.size, 0);
    assert.equal(leader.requests.get("PUT"), result.ops);
  });

  test("the text line, an error breakdown, and exit 1 when every request failed", async () => {
    const overloaded = await fake({ id: 1, failWith: { status: 503, code: "overloaded" } });
    // Bounded by count, not by time: a busy machine sends fewer requests in a short window.
    const run = await synod(["bench", "--endpoints", overloaded.url, "--duration", "30s", "--concurrency", "2", "--max-ops", "50"]);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /^put: 0 ops in \d+\.\d s = 0\.0 ops\/s \| latency ms p50 0\.00 p90 0\.00 p99 0\.00 max 0\.00 \| errors 50\nerrors by code: overloaded 50\n$/);
    assert.match(run.stderr, /every request failed/);
  });
});

// `synod put | get | del | status | bench` as a user runs them: real processes against fake
// nodes (src/client/fake-node.test-util.ts) in this process, so output and exit codes are
// the real ones. The spawn is asynchronous: the fake nodes must keep answering meanwhile.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

describe("synod get --prefix, ls, del --prefix, txn", () => {
  function fill(node: { store: Map<string, { value: Buffer; revision: number; createRevision: number; version: number }> }, keys: readonly string[]): void {
    for (const [i, key] of keys.entries()) node.store.set(key, { value: Buffer.from(`v-${key}`), revision: i + 2, createRevision: i + 2, version: 1 });
  }

  test("get --prefix reads page after page over after (2,500 keys: 3 pages), --limit stops early and says more; ls lists the keys only", async () => {
    const leader = await fake({ id: 1 });
    const keys = Array.from({ length: 2500 }, (_, i) => `p/${String(i).padStart(4, "0")}`);
    fill(leader, [...keys, "other"]);
    const endpoints = ["--endpoints", leader.url];
    const all = await synod(["get", "--prefix", "p/", "--json", ...endpoints]);
    assert.equal(all.code, 0, all.stderr);
    const range = JSON.parse(all.stdout) as { kvs: { key: string; value: string }[]; more: boolean; revision: number };
    assert.deepEqual(range.kvs.map((kv) => kv.key), keys);
    assert.equal(range.kvs[2499]?.value, "v-p/2499");
    assert.equal(range.more, false);
    const pages = leader.seen.filter((request) => request.path === "/v1/kv").map((request) => new URLSearchParams(request.url.split("?")[1]));
    assert.deepEqual(pages.map((query) => [query.get("limit"), query.get("after")]), [["1000", null], ["1000", "p/0999"], ["1000", "p/1999"]]);
    const text = await synod(["get", "--prefix", "p/", "--limit", "2", ...endpoints]);
    assert.equal(text.stdout, "p/0000\nv-p/0000\np/0001\nv-p/0001\n");
    const limited = JSON.parse((await synod(["get", "--prefix", "p/", "--limit", "1001", "--json", ...endpoints])).stdout) as { kvs: unknown[]; more: boolean };
    assert.deepEqual([limited.kvs.length, limited.more], [1001, true]);
    const ls = await synod(["ls", "p/00", ...endpoints]);
    assert.equal(ls.stdout, `${keys.slice(0, 100).join("\n")}\n`);
    assert.deepEqual(JSON.parse((await synod(["ls", "--limit", "3", "--json", ...endpoints])).stdout), { keys: ["other", "p/0000", "p/0001"].sort(), more: true, revision: 1 });
    const both = await synod(["get", "k", "--prefix", "p/", ...endpoints]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give a key, or --prefix, not both/);
    assert.equal((await synod(["get", ...endpoints])).code, 2);
  });

  test("del --prefix deletes the range in one request and reports how many", async () => {
    const leader = await fake({ id: 1 });
    fill(leader, ["tmp/a", "tmp/b", "tmp/c", "keep"]);
    const run = await synod(["del", "--prefix", "tmp/", "--endpoints", leader.url]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "OK deleted=3 revision=2\n");
    assert.deepEqual([...leader.store.keys()], ["keep"]);
    assert.deepEqual(leader.seen.map((request) => `${request.method} ${request.url}`), ["DELETE /v1/kv/tmp/?prefix=true"]);
    assert.equal((await synod(["del", "--prefix", "tmp/", "--json", "--endpoints", leader.url])).stdout, '{"deleted":0,"revision":2}\n');
    assert.equal((await synod(["del", "--prefix", "", "--endpoints", leader.url])).code, 2);
  });

  test("txn reads its JSON from --file or stdin; a compare that does not hold exits 1; bad JSON exits 2 before anything is sent", async () => {
    const leader = await fake({ id: 1 });
    const endpoints = ["--endpoints", leader.url];
    const txn = { compare: [{ key: "lock", target: "version", op: "=", value: 0 }], success: [{ op: "put", key: "lock", value: "me" }, { op: "get", key: "lock" }], failure: [{ op: "get", key: "lock" }, { op: "delete", key: "lock" }] };
    const dir = mkdtempSync(join(tmpdir(), "synod-txn-"));
    try {
      const file = join(dir, "txn.json");
      writeFileSync(file, JSON.stringify(txn));
      const first = await synod(["txn", "--file", file, ...endpoints]);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stdout, "SUCCEEDED revision=2\nput lock revision=2\nget lock: me\n");
      const second = await synod(["txn", "--json", ...endpoints], JSON.stringify(txn));
      assert.equal(second.code, 1, second.stderr);
      const answer = JSON.parse(second.stdout) as { succeeded: boolean; results: unknown[] };
      assert.equal(answer.succeeded, false);
      assert.deepEqual(answer.results, [{ op: "get", kv: { key: "lock", value: "me", revision: 2, createRevision: 2, version: 1 }, forgotten: false }, { op: "delete", deleted: 1, revision: 3 }]);
      const seen = leader.seen.length;
      writeFileSync(file, "{not json");
      const bad = await synod(["txn", "--file", file, ...endpoints]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /^synod: the transaction in .*txn\.json is not JSON/);
      assert.match((await synod(["txn", ...endpoints], "[1,2]")).stderr, /must be a JSON object/);
      assert.match((await synod(["txn", "--file", join(dir, "absent.json"), ...endpoints])).stderr, /cannot read .*absent\.json/);
      assert.equal(leader.seen.length, seen, "nothing sent");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("keys that are not UTF-8 on the command line", () => {
  /** `synod ARGS` through a shell, so `printf` can put raw bytes into the arguments. */
  function shell(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn("/bin/sh", ["-c", script], { stdio: ["ignore", "pipe", "pipe"], timeout: 30_000, env: { ...process.env, SYNOD: `${process.execPath} ${bin}` } });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  }

  test("a key, prefix or value holding bytes that are not UTF-8 is refused with one line and exit 2, and nothing is sent (it would arrive as U+FFFD and collide)", async () => {
    const leader = await fake({ id: 1 });
    for (const args of [`put "$(printf 'bad\\377key')" v`, `get "$(printf 'bad\\377key')"`, `del "$(printf 'bad\\377key')"`, `ls "$(printf '\\377')"`, `get --prefix "$(printf '\\300')"`, `put k "$(printf 'v\\377')"`]) {
      const run = await shell(`$SYNOD ${args} --endpoints ${leader.url}`);
      assert.equal(run.code, 2, `${args}: ${run.stdout}${run.stderr}`);
      assert.match(run.stderr, /^synod: the (key|prefix|value) holds U\+FFFD \(at character \d\): the command line gave bytes that are not UTF-8, which arrive as U\+FFFD, so two different keys would become one; give the (key|prefix|value) as UTF-8 text/);
      assert.equal(run.stderr.split("\n").length, 2, "one line");
    }
    assert.match((await shell(`$SYNOD put k "$(printf 'v\\377')" --endpoints ${leader.url}`)).stderr, /or pass other bytes on stdin: synod put KEY - < FILE/);
    assert.equal(leader.seen.length, 0);
    // The same bytes as a value on stdin are stored exactly.
    const stdin = await shell(`printf 'v\\377' | $SYNOD put k - --endpoints ${leader.url}`);
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.deepEqual([...(leader.store.get("k")?.value ?? [])], [0x76, 0xff]);
  });
});

describe("synod status", () => {
  test("the configuration as the leader lists it: each member's role and state, a member the endpoints do not name asked too, a removed node apart; exit 0", async () => {
    const down = await refusingEndpoint();
    const follower = await fake({ id: 2, role: "follower", term: 4 });
    const leader = await fake({ id: 1, term: 4 });
    const removed = await fake({ id: 9, role: "follower", term: 3 });
    const members = [
      { id: 1, peer: "127.0.0.1:7101", http: leader.url, role: "voter" },
      { id: 2, peer: "127.0.0.1:7102", http: follower.url, role: "voter" },
      { id: 3, peer: "127.0.0.1:7103", http: down, role: "learner" },
    ];
    leader.options = { ...leader.options, members };
    const run = await synod(["status", "--endpoints", `${removed.url},${leader.url}`]);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trimEnd().split("\n");
    assert.equal(lines[0], `leader: node 1 at ${leader.url}, term 4`);
    assert.equal(lines[1], "members, as the leader lists it:");
    assert.match(lines[2] ?? "", /^id\s+role\s+state\s+term\s+commit\s+applied\s+http$/);
    assert.match(lines[3] ?? "", new RegExp(`^1\\s+voter\\s+leader\\s+4\\s+1\\s+1\\s+${leader.url}$`));
    assert.match(lines[4] ?? "", new RegExp(`^2\\s+voter\\s+follower\\s+4\\s+1\\s+1\\s+${follower.url}$`));
    assert.match(lines[5] ?? "", new RegExp(`^3\\s+learner\\s+unreachable \\(ECONNREFUSED\\)\\s+-\\s+-\\s+-\\s+${down}$`));
    assert.equal(lines[6], "endpoints whose node is not a member (removed, or not added yet):");
    assert.equal(lines[7], `  ${removed.url}  node 9, follower, term 3`);
    assert.equal(lines[8], "3 members, 2 answering");
    const json = JSON.parse((await synod(["status", "--json", "--endpoints", `${removed.url},${leader.url}`])).stdout) as {
      leader: { id: number; http: string; term: number };
      configurationFrom: { kind: string; id: number };
      members: { id: number; role: string; status?: { role: string }; error?: { code: string } }[];
      notMembers: { endpoint: string; status: { id: number } }[];
    };
    assert.deepEqual(json.leader, { id: 1, http: leader.url, term: 4 });
    assert.deepEqual(json.configurationFrom, { kind: "leader", id: 1 });
    assert.deepEqual(json.members.map((member) => [member.id, member.role, member.status?.role ?? member.error?.code]), [[1, "voter", "leader"], [2, "voter", "follower"], [3, "learner", "connection_failed"]]);
    assert.deepEqual(json.notMembers.map((probe) => [probe.endpoint, probe.status.id]), [[removed.url, 9]]);
  });

  test("without a leader: the most recent term's view, and exit 3; nothing answering: exit 3 with a hint", async () => {
    const members = [{ id: 1, peer: "127.0.0.1:7101", http: null, role: "voter" }];
    const older = await fake({ id: 1, role: "follower", leaderHttp: null, term: 6, members: [...members, { id: 2, peer: "127.0.0.1:7102", http: null, role: "voter" }] });
    const newer = await fake({ id: 2, role: "candidate", leaderHttp: null, term: 7, members });
    const run = await synod(["status", "--endpoints", `${older.url},${newer.url}`]);
    assert.equal(run.code, 3, run.stdout + run.stderr);
    assert.match(run.stdout, /^no leader is known: no quorum of the members answers, or an election is under way\nmembers, as node 2 saw it in term 7 \(no leader to confirm it\):\n/);
    assert.match(run.stdout, new RegExp(`\\n1\\s+voter\\s+follower\\s+6\\s+1\\s+1\\s+${older.url}\\n`));
    assert.doesNotMatch(run.stdout, /\n2\s+voter/, "node 2's own view lists only node 1");
    const down = await refusingEndpoint();
    const nothing = await synod(["status", "--endpoints", down]);
    assert.equal(nothing.code, 3);
    assert.match(nothing.stdout, /no node answered with the configuration; is the cluster running\? \(npm start\)/);
    assert.match(nothing.stdout, new RegExp(`${down}  unreachable \\(ECONNREFUSED\\)`));
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
    assert.match(run.stdout, /^put: 0 ops in \d+\.\d s = 0\.0 ops\/s \| latency ms p50 0\.00 p90 0\.00 p99 0\.00 max 0\.00 \| errors 50\nerrors by code: overloaded 50\nlongest time without an acknowledged write: \d+ ms \(from 0\.0 s to \d+\.\d s\)\n$/);
    assert.match(run.stderr, /every request failed/);
  });
});

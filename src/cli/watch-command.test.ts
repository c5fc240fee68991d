// `synod watch`, `synod compact` and `synod get --revision` as a user runs them: real
// processes against a node's HTTP API in this process (a real KvStore and watch hub, without
// consensus), so output and exit codes are the real ones.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { KvStore } from "../core/kv/store.js";
import { ALL_REACHED, fakeService, READY } from "../runtime/server/fake-service.test-util.js";
import { createHttpApi } from "../runtime/server/http-api.js";
import { request, sleep } from "../runtime/server/process-cluster.test-util.js";

const bin = fileURLToPath(new URL("../../bin/synod.js", import.meta.url));

/** Runs `synod ARGS`, calling `meanwhile` once it started; its exit code and output. */
function synod(args: string[], meanwhile: () => Promise<void> = async () => {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    void meanwhile();
  });
}

describe("synod watch, compact, get --revision", () => {
  let server: Server;
  let url: string;
  let store: KvStore;
  const put = async (key: string, value: string): Promise<number> => (await request("PUT", `${url}/v1/kv/${encodeURIComponent(key)}`, value)).body["revision"] as number;
  before(async () => {
    store = new KvStore();
    server = createHttpApi(fakeService(store, { refuse: null, quorum: ALL_REACHED, readiness: READY }, []), { requestBodyBytesMax: 4 * 1024 * 1024 });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test("watch prints one line per change, from a past revision on, then the changes as they come; --json the API's events", async () => {
    const first = await put("w/a", "hello");
    await put("w/b", "bytes");
    const text = await synod(["watch", "w/", "--prefix", "--from-revision", String(first), "--prev-value", "--count", "3", "--endpoints", url], async () => {
      await sleep(1500);
      await put("w/a", "again");
    });
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stdout, [`PUT w/a "hello" revision=${first}`, `PUT w/b "bytes" revision=${first + 1}`, `PUT w/a "again" revision=${first + 2} prev="hello"`, ""].join("\n"));
    const json = await synod(["watch", "w/a", "--from-revision", String(first), "--count", "2", "--json", "--endpoints", url]);
    assert.deepEqual(
      json.stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as unknown),
      [
        { type: "put", key: "w/a", value: "hello", revision: first, createRevision: first, version: 1 },
        { type: "put", key: "w/a", value: "again", revision: first + 2, createRevision: first, version: 2 },
      ],
    );
  });

  test("get --revision reads the past; compact drops it; a watch from below the compaction point exits 1 saying so", async () => {
    const first = await put("h/k", "one");
    await put("h/k", "two");
    const past = await synod(["get", "h/k", "--revision", String(first), "--endpoints", url]);
    assert.deepEqual([past.code, past.stdout], [0, "one\n"]);
    const compacted = await synod(["compact", String(first + 1), "--endpoints", url]);
    assert.deepEqual([compacted.code, compacted.stdout], [0, `OK compactRevision=${first + 1} revision=${store.currentRevision}\n`]);
    const gone = await synod(["get", "h/k", "--revision", String(first), "--endpoints", url]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /compacted: revision \d+ is compacted/);
    const watch = await synod(["watch", "h/", "--prefix", "--from-revision", String(first), "--endpoints", url]);
    assert.equal(watch.code, 1);
    assert.match(watch.stderr, /compacted/);
    const future = await synod(["compact", String(store.currentRevision + 5), "--endpoints", url]);
    assert.equal(future.code, 2);
    assert.match(future.stderr, /future_revision/);
  });
});

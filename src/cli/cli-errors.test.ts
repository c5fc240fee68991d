/**
 * What a user sees when the CLI cannot do its job because of the machine, not a bug: one
 * line that says what and what to do, a non-zero exit, no stack trace. And `| head`: a
 * reader that leaves ends the output quietly, as it ends a Unix tool's.
 */
import assert from "node:assert/strict";
import { spawn, type SpawnOptions } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePorts } from "../runtime/server/process-cluster.test-util.js";
import { EXIT_CLOSED_PIPE } from "./main.js";

const SYNOD_BIN = fileURLToPath(new URL("../../bin/synod.js", import.meta.url));
/** The user nobody: a process of root's that must meet permissions runs as it (root writes through any mode bits). */
const NOBODY = 65534;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function synod(args: readonly string[], options: SpawnOptions = {}, timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SYNOD_BIN, ...args], { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** One line on stderr, and no stack trace anywhere. */
function assertOneLine(run: Run, pattern: RegExp): void {
  assert.notEqual(run.code, 0, "a failure exits non-zero");
  assert.equal(run.stderr.trimEnd().split("\n").length, 1, `one line on stderr:\n${run.stderr}`);
  assert.match(run.stderr, pattern);
  assert.doesNotMatch(run.stdout + run.stderr, /\n\s+at |"stack"/, `no stack trace:\n${run.stdout}${run.stderr}`);
}

describe("a --data-dir the node cannot use", { timeout: 60_000 }, () => {
  let root = "";
  let file = "";
  let ports: number[] = [];
  before(async () => {
    root = mkdtempSync(join(tmpdir(), "synod-cli-errors-"));
    file = join(root, "a-file");
    writeFileSync(file, "not a directory\n");
    ports = await freePorts(4);
  });
  after(() => {
    chmodSync(root, 0o700);
    rmSync(root, { recursive: true, force: true });
  });

  const node = (dataDir: string): string[] => ["node", "--id", "1", "--http", `127.0.0.1:${ports[0]}`, "--peer", `127.0.0.1:${ports[1]}`, "--data-dir", dataDir];
  const cluster = (dataDir: string): string[] => ["cluster", "--nodes", "1", "--base-port", String(ports[2]), "--peer-base-port", String(ports[3]), "--data-dir", dataDir];

  test("a file (EEXIST), or a path under a file (ENOTDIR): one line naming the file", async () => {
    assertOneLine(await synod(node(file)), new RegExp(`^synod node 1: cannot start: --data-dir ${file} cannot be a directory: ${file} is a file\\. Choose another --data-dir`));
    assertOneLine(await synod(node(join(file, "sub"))), new RegExp(`cannot be a directory: ${file} is a file`));
    assertOneLine(await synod(cluster(file)), new RegExp(`^synod cluster: --data-dir .*a-file cannot be a directory: .*a-file is a file`));
    assertOneLine(await synod(cluster(join(file, "sub"))), /^synod cluster: --data-dir .* cannot be a directory: .*a-file is a file/);
  });

  test("a directory the user may not write in (EACCES): one line", async () => {
    // Mode bits do not stop root: as root, the commands run as nobody, for whom the
    // directory (root's, mode 0o500) is closed, as it is to its owner when not root.
    const asRoot = process.getuid?.() === 0;
    const readOnly = join(root, "read-only");
    mkdirSync(readOnly);
    chmodSync(readOnly, 0o500);
    chmodSync(root, 0o755);
    const options: SpawnOptions = asRoot ? { uid: NOBODY, gid: NOBODY, cwd: tmpdir() } : {};
    assertOneLine(await synod(node(readOnly), options), /^synod node 1: cannot start: cannot write in --data-dir .*read-only \(permission denied on .*\): run as a user who may write there, or choose another --data-dir/);
    assertOneLine(await synod(node(join(readOnly, "sub")), options), /^synod node 1: cannot start: cannot write in --data-dir .*read-only\/sub \(permission denied/);
    assertOneLine(await synod(cluster(join(readOnly, "data")), options), /^synod cluster: cannot write in --data-dir .*read-only\/data \(permission denied/);
  });

  test("a file the CLI cannot write (sim --history-out in a missing directory): one line", async () => {
    const run = await synod(["sim", "--protocol", "single", "--seeds", "1", "--seed", "1", "--workers", "1", "--history-out", join(root, "missing", "history.json")]);
    assertOneLine(run, /^synod: cannot open .*missing\/history\.json \(no such file or directory\)\n$/);
  });
});

describe("output to a reader that left (| head)", () => {
  test("ends quietly with the status of a process killed by SIGPIPE", async () => {
    for (const args of [["scenarios"], ["sim", "--list-mutants"]]) {
      const child = spawn(process.execPath, [SYNOD_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
      // The reader is gone before the first write, as `head` is once it has its lines.
      child.stdout.destroy();
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
      const code = await new Promise<number | null>((resolve) => child.once("exit", (exitCode) => resolve(exitCode)));
      assert.equal(stderr, "", `nothing on stderr for synod ${args.join(" ")}`);
      assert.equal(code, EXIT_CLOSED_PIPE);
    }
  });
});

describe("--replicas where it cannot place ranges", { timeout: 30_000 }, () => {
  test("without --shards, or on Paxos: one line that says why, and the node does not start", async () => {
    const root = mkdtempSync(join(tmpdir(), "synod-cli-replicas-"));
    try {
      const [http, peer] = await freePorts(2);
      const node = ["node", "--id", "1", "--http", `127.0.0.1:${http}`, "--peer", `127.0.0.1:${peer}`, "--data-dir", join(root, "n")];
      assertOneLine(await synod([...node, "--replicas", "3"]), /--replicas .* needs --shards 2 or more/);
      assertOneLine(await synod([...node, "--shards", "2", "--consensus", "paxos", "--replicas", "3"]), /--replicas places ranges on some members only on a Raft cluster/);
      // A usage error: the flag's line, then where to read the usage (exit 2).
      const usage = await synod([...node, "--shards", "2", "--replicas", "9"]);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /--replicas must be an integer from 0 to 7/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("synod shards move", () => {
  test("takes --leader N, or --from F --to T: anything else is a usage error naming both", async () => {
    for (const args of [["shards", "move", "3"], ["shards", "move", "3", "--leader", "2", "--from", "1"], ["shards", "move", "3", "--to", "4"]]) {
      const run = await synod(args);
      assert.equal(run.code, 2, `synod ${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, /--leader N|--from F and --to T/);
    }
  });
});

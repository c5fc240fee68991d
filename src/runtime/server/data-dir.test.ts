import assert from "node:assert/strict";
import { test } from "node:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkIdentity, DATA_LAYOUT, dataDirFailure, readIdentity, StartupError } from "./data-dir.js";

/** An error as Node's fs module makes one. */
function fsError(code: string, path?: string): Error {
  return Object.assign(new Error(`${code}: failed`), { code, syscall: "open", ...(path === undefined ? {} : { path }) });
}

test("a file system error on the data directory, in it or on the way to it is one line; any other error is not the directory's", () => {
  for (const path of ["/srv/data", "/srv/data/wal/0001", "/srv"]) {
    const failure = dataDirFailure(fsError("EACCES", path), "/srv/data");
    assert.ok(failure instanceof StartupError, path);
    assert.match(failure.message, /^cannot write in --data-dir \/srv\/data \(permission denied on /);
  }
  assert.equal(dataDirFailure(fsError("EACCES", "/srv/data-other/x"), "/srv/data"), null, "a sibling that shares a prefix");
  assert.equal(dataDirFailure(fsError("EACCES"), "/srv/data"), null, "no path: a port, say");
  assert.equal(dataDirFailure(fsError("EACCES", "/etc/ssl/key.pem"), "/srv/data"), null);
  assert.equal(dataDirFailure(new Error("a bug"), "/srv/data"), null);
  assert.match(dataDirFailure(fsError("EROFS", "/srv/data/node.json"), "/srv/data")?.message ?? "", /read-only file system/);
});

test("a data directory records its consensus protocol, and refuses the other one with what to do", () => {
  const dir = mkdtempSync(join(tmpdir(), "synod-identity-"));
  try {
    const raft = { clusterId: "c1", nodeId: 1, consensus: "raft", joined: false };
    checkIdentity(dir, raft);
    mkdirSync(join(dir, DATA_LAYOUT.wal));
    assert.equal(readIdentity(dir)?.consensus, "raft");
    assert.equal(checkIdentity(dir, raft).consensus, "raft");
    assert.throws(
      () => checkIdentity(dir, { ...raft, consensus: "paxos" }),
      (error: unknown) => error instanceof StartupError && /holds a raft log, and this node was started with --consensus paxos: start it with --consensus raft, or give it an empty --data-dir/.test(error.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a directory written before the protocol was recorded is Raft's", () => {
  const dir = mkdtempSync(join(tmpdir(), "synod-identity-"));
  try {
    writeFileSync(join(dir, DATA_LAYOUT.identity), `${JSON.stringify({ clusterId: "c1", nodeId: 2, joined: false, format: 1 })}\n`);
    assert.equal(readIdentity(dir)?.consensus, "raft");
    assert.throws(() => checkIdentity(dir, { clusterId: "c1", nodeId: 2, consensus: "paxos", joined: false }), /holds a raft log/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { dataDirFailure, StartupError } from "./data-dir.js";

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

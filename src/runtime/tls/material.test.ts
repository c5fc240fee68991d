import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { openLocalCa, type LocalCa } from "./local-ca.js";
import { certificateNodeId, loadTlsMaterial, TlsConfigError, TlsSource } from "./material.js";

describe("TLS material is checked before a node starts, and a wrong file is named with what to do", { timeout: 120_000 }, () => {
  let dir: string;
  let ca: LocalCa;
  let other: LocalCa;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "synod-tls-material-"));
    ca = openLocalCa(join(dir, "ca"));
    ca.ensureNode(1, ["db1.example"]);
    ca.ensureNode(2, []);
    other = openLocalCa(join(dir, "other"));
    other.ensureNode(1, []);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const refused = (fn: () => unknown, pattern: RegExp): void => assert.throws(fn, (error: unknown) => error instanceof TlsConfigError && pattern.test(error.message));

  test("a node's own certificate, key and CA load, and name the node", () => {
    const material = loadTlsMaterial(ca.nodeFiles(1), { nodeId: 1 });
    assert.equal(material.nodeId, 1);
    assert.match(material.cert, /BEGIN CERTIFICATE/);
  });

  test("a certificate another CA signed", () => {
    refused(() => loadTlsMaterial({ ...other.nodeFiles(1), caFile: ca.caFile }), /is not signed by the CA in --tls-ca .*ca\.pem: issue it from that CA/);
  });

  test("a key that is not the certificate's", () => {
    refused(() => loadTlsMaterial({ ...ca.nodeFiles(1), keyFile: ca.nodeFiles(2).keyFile }), /--tls-key .*node-2-key\.pem is not the key of the certificate/);
  });

  test("another node's certificate", () => {
    refused(() => loadTlsMaterial(ca.nodeFiles(2), { nodeId: 1 }), /names node 2, but this is node 1: give node 1 its own certificate/);
  });

  test("a missing file, and a file that is not PEM", () => {
    refused(() => loadTlsMaterial({ ...ca.nodeFiles(1), certFile: join(dir, "nope.pem") }), /--tls-cert .*nope\.pem: cannot read a certificate \(ENOENT\)/);
    const junk = join(dir, "junk.pem");
    writeFileSync(junk, "hello");
    refused(() => loadTlsMaterial({ ...ca.nodeFiles(1), caFile: junk }), /--tls-ca .*junk\.pem is not PEM/);
  });

  test("an expired certificate", () => {
    refused(() => loadTlsMaterial(ca.nodeFiles(1), { nowMs: Date.now() + 5000 * 86_400_000 }), /expired on .*: issue a new one/);
  });

  test("a reload that fails keeps the material in use; one that passes takes the new", () => {
    const files = { certFile: join(dir, "copy.pem"), keyFile: join(dir, "copy-key.pem"), caFile: ca.caFile };
    copyFileSync(ca.nodeFiles(1).certFile, files.certFile);
    copyFileSync(ca.nodeFiles(1).keyFile, files.keyFile);
    const source = new TlsSource(files, { nodeId: 1 });
    const first = source.current.serial;
    writeFileSync(files.keyFile, "not a key");
    const refusal = source.reload();
    assert.ok(refusal instanceof TlsConfigError, "the broken key is refused");
    assert.equal(source.current.serial, first, "and the old material stays");
    const renewed = ca.issueNode(1, []);
    copyFileSync(renewed.certFile, files.certFile);
    copyFileSync(renewed.keyFile, files.keyFile);
    const heard: string[] = [];
    source.onReload((material) => heard.push(material.serial));
    assert.equal(source.reload(), null);
    assert.notEqual(source.current.serial, first);
    assert.deepEqual(heard, [source.current.serial]);
  });

  test("the node id is read from the URI subject alternative name only", () => {
    assert.equal(certificateNodeId("DNS:localhost, URI:urn:synod:node:7"), 7);
    assert.equal(certificateNodeId("DNS:urn:synod:node:7"), null);
    assert.equal(certificateNodeId("URI:urn:synod:node:7, URI:urn:synod:node:8"), null);
    assert.equal(certificateNodeId(undefined), null);
  });
});

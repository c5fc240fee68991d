/**
 * A certificate authority of the cluster's own, kept in a directory: what `synod cluster
 * --tls` makes for a local cluster and `synod tls` makes for real ones.
 *
 *   <dir>/ca.pem              the CA's certificate: give it to clients (curl --cacert)
 *   <dir>/ca-key.pem          the CA's key (mode 0600): keep it off the nodes in production
 *   <dir>/node-<id>.pem       node <id>'s certificate, naming urn:synod:node:<id> and its hosts
 *   <dir>/node-<id>-key.pem   its key (mode 0600)
 *   <dir>/client.pem, client-key.pem   a client certificate of the same CA
 *
 * Keys are RSA 2048 made by node:crypto; certificates are built and signed with node-forge
 * (node:crypto parses X.509 but cannot issue it). Files already there are kept, so a
 * restarted cluster keeps its CA and clients keep trusting it; a node certificate missing
 * is issued from the CA that is there.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import forge from "node-forge";
import { nodeUri, TlsConfigError, type TlsFiles } from "./material.js";

const DAY_MS = 86_400_000;
/** A local CA outlives the clusters made with it; node and client certificates are renewed with `synod tls issue`. */
const CA_VALID_DAYS = 3650;
const LEAF_VALID_DAYS = 825;
const RSA_BITS = 2048;

interface KeyPair {
  readonly keyPem: string;
  readonly publicKey: forge.pki.PublicKey;
  readonly privateKey: forge.pki.rsa.PrivateKey;
}

function newKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: RSA_BITS,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return { keyPem: privateKey, publicKey: forge.pki.publicKeyFromPem(publicKey), privateKey: forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey };
}

/** A positive serial number of 16 random bytes, as RFC 5280 asks (unique per CA). */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return bytes.toString("hex");
}

function validity(certificate: forge.pki.Certificate, days: number): void {
  // An hour back, so a peer whose clock is a little behind accepts it at once.
  certificate.validity.notBefore = new Date(Date.now() - 3_600_000);
  certificate.validity.notAfter = new Date(Date.now() + days * DAY_MS);
}

/** Writes `text` whole or not at all; keys readable by their owner alone. */
function writeFile(path: string, text: string, secret: boolean): void {
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, text, { mode: secret ? 0o600 : 0o644 });
  if (secret) chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}

export interface LocalCa {
  readonly dir: string;
  readonly caFile: string;
  /** The files of node `id` (issued by `ensureNode`). */
  nodeFiles(id: number): TlsFiles;
  /** The files of the client certificate (issued by `ensureClient`). */
  clientFiles(): TlsFiles;
  /** Issues node `id`'s certificate for `hosts` (names and IP addresses) unless it exists. */
  ensureNode(id: number, hosts: readonly string[]): TlsFiles;
  /** Issues node `id`'s certificate for `hosts` again, replacing the one there. */
  issueNode(id: number, hosts: readonly string[]): TlsFiles;
  ensureClient(): TlsFiles;
}

/** Opens the CA in `dir`, making it first if `dir` holds none. */
export function openLocalCa(dir: string): LocalCa {
  mkdirSync(dir, { recursive: true });
  const caFile = join(dir, "ca.pem");
  const caKeyFile = join(dir, "ca-key.pem");
  if (!existsSync(caFile) || !existsSync(caKeyFile)) {
    if (existsSync(caFile) !== existsSync(caKeyFile)) {
      throw new TlsConfigError(`${dir} holds ${existsSync(caFile) ? "ca.pem without ca-key.pem" : "ca-key.pem without ca.pem"}: restore the missing file, or remove the directory's CA files to make a new CA (clients must then trust the new ca.pem)`);
    }
    makeCa(caFile, caKeyFile);
  }
  let caCertificate: forge.pki.Certificate;
  let caKey: forge.pki.rsa.PrivateKey;
  try {
    caCertificate = forge.pki.certificateFromPem(readFileSync(caFile, "utf8"));
    caKey = forge.pki.privateKeyFromPem(readFileSync(caKeyFile, "utf8")) as forge.pki.rsa.PrivateKey;
  } catch (error) {
    throw new TlsConfigError(`${dir}: ca.pem or ca-key.pem is unreadable (${(error as Error).message}); restore them, or remove both to make a new CA`, { cause: error });
  }
  const issue = (name: string, altNames: object[], certFile: string, keyFile: string): void => {
    const keys = newKeyPair();
    const certificate = forge.pki.createCertificate();
    certificate.publicKey = keys.publicKey;
    certificate.serialNumber = serial();
    validity(certificate, LEAF_VALID_DAYS);
    certificate.setSubject([{ name: "commonName", value: name }]);
    certificate.setIssuer(caCertificate.subject.attributes);
    certificate.setExtensions([
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true, clientAuth: true },
      ...(altNames.length === 0 ? [] : [{ name: "subjectAltName", altNames }]),
      { name: "authorityKeyIdentifier", keyIdentifier: caCertificate.generateSubjectKeyIdentifier().getBytes() },
    ]);
    certificate.sign(caKey, forge.md.sha256.create());
    writeFile(keyFile, keys.keyPem, true);
    writeFile(certFile, forge.pki.certificateToPem(certificate), false);
  };
  const nodeFiles = (id: number): TlsFiles => ({ certFile: join(dir, `node-${id}.pem`), keyFile: join(dir, `node-${id}-key.pem`), caFile });
  const clientFiles = (): TlsFiles => ({ certFile: join(dir, "client.pem"), keyFile: join(dir, "client-key.pem"), caFile });
  const issueNode = (id: number, hosts: readonly string[]): TlsFiles => {
    const files = nodeFiles(id);
    const names = [...new Set(["localhost", "127.0.0.1", ...hosts])];
    const altNames = [...names.map((host) => (isIP(host) === 0 ? { type: 2, value: host } : { type: 7, ip: host })), { type: 6, value: nodeUri(id) }];
    issue(`synod node ${id}`, altNames, files.certFile, files.keyFile);
    return files;
  };
  return {
    dir,
    caFile,
    nodeFiles,
    clientFiles,
    issueNode,
    ensureNode: (id, hosts) => {
      const files = nodeFiles(id);
      return existsSync(files.certFile) && existsSync(files.keyFile) ? files : issueNode(id, hosts);
    },
    ensureClient: () => {
      const files = clientFiles();
      if (!existsSync(files.certFile) || !existsSync(files.keyFile)) issue("synod client", [], files.certFile, files.keyFile);
      return files;
    },
  };
}

function makeCa(caFile: string, caKeyFile: string): void {
  const keys = newKeyPair();
  const certificate = forge.pki.createCertificate();
  certificate.publicKey = keys.publicKey;
  certificate.serialNumber = serial();
  validity(certificate, CA_VALID_DAYS);
  const subject = [
    { name: "commonName", value: "synod local CA" },
    { name: "organizationName", value: `synod ${randomBytes(4).toString("hex")}` },
  ];
  certificate.setSubject(subject);
  certificate.setIssuer(subject);
  certificate.setExtensions([
    { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  certificate.sign(keys.privateKey, forge.md.sha256.create());
  writeFile(caKeyFile, keys.keyPem, true);
  writeFile(caFile, forge.pki.certificateToPem(certificate), false);
}

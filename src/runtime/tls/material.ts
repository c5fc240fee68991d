/**
 * A node's TLS material: its certificate and key, and the cluster's CA, read from PEM files
 * and checked before anything listens, so a wrong file is a refusal to start that names the
 * file and says what to do, never a handshake that fails later with an OpenSSL code.
 *
 * Identity. A node's certificate names its node id in a URI subject alternative name,
 * `urn:synod:node:<id>` (what `synod cluster --tls` and `synod tls` issue). Between peers the
 * id is what is checked, not the host name: a peer is whoever holds a certificate of the
 * cluster's CA naming the id it claims in its hello, wherever it connects from. Clients check
 * the host name as usual (the issued certificates name `localhost`, 127.0.0.1 and the hosts
 * asked for).
 *
 * Reloading. `TlsSource` re-reads the files on `reload()` (a node calls it on SIGHUP): new
 * material is checked the same way and takes effect for connections made after it; if it
 * fails the check, the old material stays and the error is returned for the log.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { SynodError } from "../../core/common/errors.js";

/** Where a node's TLS material lives (`--tls-cert`, `--tls-key`, `--tls-ca`). */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** PEM text, as node:tls takes it. */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  /** The node id the certificate names (`urn:synod:node:<id>`), or null for none. */
  readonly nodeId: number | null;
  /** The certificate's serial number, hex (for logs: which certificate is in use). */
  readonly serial: string;
  /** When the certificate expires, ms since the epoch. */
  readonly validToMs: number;
}

/** TLS files that cannot be used, with the file and what to do. */
export class TlsConfigError extends SynodError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("tls_config", message, options);
    this.name = "TlsConfigError";
  }
}

const NODE_URI = /^urn:synod:node:(\d{1,15})$/;

/** The URI that names node `id` in a certificate. */
export function nodeUri(id: number): string {
  return `urn:synod:node:${id}`;
}

/**
 * The node id a certificate names, from its subject alternative names (as node:tls or
 * X509Certificate print them: `DNS:localhost, URI:urn:synod:node:3`), or null. A
 * certificate naming two different ids names none.
 */
export function certificateNodeId(subjectAltName: string | undefined): number | null {
  if (subjectAltName === undefined) return null;
  let found: number | null = null;
  for (const part of subjectAltName.split(",")) {
    const entry = part.trim();
    if (!entry.startsWith("URI:")) continue;
    const match = NODE_URI.exec(entry.slice(4));
    if (match === null) continue;
    const id = Number(match[1]);
    if (found !== null && found !== id) return null;
    found = id;
  }
  return found;
}

function readPem(file: string, flag: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new TlsConfigError(`${flag} ${file}: cannot read ${what} (${code ?? (error as Error).message}); give the path of a PEM file`, { cause: error });
  }
  if (!text.includes("-----BEGIN ")) throw new TlsConfigError(`${flag} ${file} is not PEM (no "-----BEGIN" line); give ${what} in PEM form`);
  return text;
}

function parseCertificate(pem: string, flag: string, file: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new TlsConfigError(`${flag} ${file} holds no readable certificate (${(error as Error).message})`, { cause: error });
  }
}

/**
 * Reads and checks `files`: the certificate and the CA parse, the certificate is signed by
 * the CA, is valid now, and matches the key; with `nodeId`, the certificate names that node.
 * Throws TlsConfigError naming the file and what to do.
 */
export function loadTlsMaterial(files: TlsFiles, expect: { readonly nodeId?: number; readonly nowMs?: number } = {}): TlsMaterial {
  const cert = readPem(files.certFile, "--tls-cert", "a certificate");
  const key = readPem(files.keyFile, "--tls-key", "a private key");
  const ca = readPem(files.caFile, "--tls-ca", "the cluster's CA certificate");
  const certificate = parseCertificate(cert, "--tls-cert", files.certFile);
  const authority = parseCertificate(ca, "--tls-ca", files.caFile);
  if (!certificate.verify(authority.publicKey)) {
    throw new TlsConfigError(`--tls-cert ${files.certFile} is not signed by the CA in --tls-ca ${files.caFile}: issue it from that CA, or give the CA that issued it`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new TlsConfigError(`--tls-key ${files.keyFile} holds no readable private key (${(error as Error).message}); an encrypted key is not supported`, { cause: error });
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new TlsConfigError(`--tls-key ${files.keyFile} is not the key of the certificate in --tls-cert ${files.certFile}: give the key it was issued for`);
  }
  const nowMs = expect.nowMs ?? Date.now();
  const validFromMs = Date.parse(certificate.validFrom);
  const validToMs = Date.parse(certificate.validTo);
  if (nowMs < validFromMs) throw new TlsConfigError(`--tls-cert ${files.certFile} is not valid before ${certificate.validFrom}: check this machine's clock, or issue a certificate valid now`);
  if (nowMs > validToMs) throw new TlsConfigError(`--tls-cert ${files.certFile} expired on ${certificate.validTo}: issue a new one (synod tls issue)`);
  const nodeId = certificateNodeId(certificate.subjectAltName);
  if (expect.nodeId !== undefined && nodeId !== expect.nodeId) {
    const named = nodeId === null ? `names no node (no ${nodeUri(expect.nodeId)} subject alternative name)` : `names node ${nodeId}`;
    throw new TlsConfigError(`--tls-cert ${files.certFile} ${named}, but this is node ${expect.nodeId}: give node ${expect.nodeId} its own certificate`);
  }
  return { cert, key, ca, nodeId, serial: certificate.serialNumber, validToMs };
}

/** The material in use, re-read on request; listeners hear of each successful reload. */
export class TlsSource {
  private material: TlsMaterial;
  private readonly listeners: ((material: TlsMaterial) => void)[] = [];

  constructor(
    readonly files: TlsFiles,
    private readonly expect: { readonly nodeId?: number } = {},
  ) {
    this.material = loadTlsMaterial(files, expect);
  }

  get current(): TlsMaterial {
    return this.material;
  }

  onReload(listener: (material: TlsMaterial) => void): void {
    this.listeners.push(listener);
  }

  /** Re-reads the files; returns null when the new material is in use, or why the old one stays. */
  reload(): TlsConfigError | null {
    let next: TlsMaterial;
    try {
      next = loadTlsMaterial(this.files, this.expect);
    } catch (error) {
      if (error instanceof TlsConfigError) return error;
      throw error;
    }
    this.material = next;
    for (const listener of this.listeners) listener(next);
    return null;
  }
}

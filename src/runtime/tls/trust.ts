/**
 * What this process trusts when it makes HTTPS requests with `fetch` (a node's requests to
 * other members, the CLI's to a cluster): the cluster's CA, and the certificate it presents
 * when asked for one. It sets undici's global dispatcher, which Node's own `fetch` uses, so
 * every request of the process trusts that CA and no other: right for a node or a CLI talking
 * to one cluster, wrong for a library embedded in a program of its own (the SDK takes its
 * TLS options per client instead).
 */
import { Agent, setGlobalDispatcher } from "undici";

export interface FetchTrust {
  /** PEM: the CA certificates to trust (only these). */
  readonly ca: string;
  /** PEM: a certificate and key to present to servers that ask for one. */
  readonly cert?: string;
  readonly key?: string;
}

export function trustForFetch(trust: FetchTrust): void {
  const connect = { ca: trust.ca, ...(trust.cert === undefined || trust.key === undefined ? {} : { cert: trust.cert, key: trust.key }) };
  setGlobalDispatcher(new Agent({ connect }));
}

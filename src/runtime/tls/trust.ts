/**
 * What this process trusts when it makes HTTPS requests with `fetch` (a node's requests to
 * other members, the CLI's to a cluster): the cluster's CA, and the certificate it presents
 * when asked for one. It sets undici's global dispatcher, which Node's own `fetch` uses, so
 * every request of the process trusts that CA and no other: right for a node or a CLI talking
 * to one cluster, wrong for a library embedded in a program of its own (the SDK takes its
 * TLS options per client instead).
 */
import { createRequire } from "node:module";
import type { Dispatcher } from "undici";

/**
 * undici, loaded when first needed: most processes never call trustForFetch (a node without
 * TLS), and loading undici costs about 0.1 s of CPU, paid by every `synod node` a cluster starts.
 */
const load = createRequire(import.meta.url);
const undici = (): typeof import("undici") => load("undici") as typeof import("undici");

/** The agent trustForFetch made, once it has been called. */
let trusted: Dispatcher | null = null;
/** undici's own agent for this process's undici requests, without TLS. */
let untrusted: Dispatcher | null = null;

export interface FetchTrust {
  /** PEM: the CA certificates to trust (only these). */
  readonly ca: string;
  /** PEM: a certificate and key to present to servers that ask for one. */
  readonly cert?: string;
  readonly key?: string;
}

export function trustForFetch(trust: FetchTrust): void {
  const connect = { ca: trust.ca, ...(trust.cert === undefined || trust.key === undefined ? {} : { cert: trust.cert, key: trust.key }) };
  const { Agent, setGlobalDispatcher } = undici();
  trusted = new Agent({ connect });
  setGlobalDispatcher(trusted);
}

/**
 * The dispatcher for the requests this process makes with undici itself (range-forward.ts):
 * the agent trusting the cluster's CA once trustForFetch was called, else one of undici's own.
 * Named, not left to undici's global dispatcher: undici now loads after the process's first
 * fetch may have installed Node's built-in (older) undici agent as the global one.
 */
export function undiciDispatcher(): Dispatcher {
  return trusted ?? (untrusted ??= new (undici().Agent)());
}

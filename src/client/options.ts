// What a Client is configured with: the options of the client (ClientOptions) and of each
// call, their defaults and limits, and how the client's options are checked and turned into
// what its parts take (an Authorization header, the router's endpoint list). Options are
// user input: a bad one is an InvalidInputError, never an assertion.
import { InvalidInputError } from "../core/common/errors.js";
import type { BalancerOptions } from "../core/balance/balancer.js";
import type { Strategy } from "../core/balance/endpoint.js";
import type { BackoffOptions, RetryBudgetOptions } from "../core/balance/retry.js";
import { normalizeEndpoint, type Consistency } from "./api.js";
import type { Lease } from "./lease.js";
import type { RouterEndpointConfig } from "./router.js";
import type { ClientTls } from "./transport.js";

/** How failed attempts are retried: an attempt limit, the pause between attempts, and the client-wide budget (docs/balance.md, "Retries"). */
export interface RetryOptions extends Partial<BackoffOptions>, Partial<RetryBudgetOptions> {
  /** Attempts per call, the first included, 1..100; default 10. 1 turns retries off. */
  readonly attemptsMax?: number;
}

export interface ClientOptions {
  /** The cluster's nodes: URLs such as `http://127.0.0.1:7001`, or `{ url, weight }`; at least one, distinct. */
  readonly endpoints: readonly (string | RouterEndpointConfig)[];
  /** How reads that need not reach the leader (and writes while no leader is known) are spread; default `p2c`. */
  readonly strategy?: Strategy;
  /** Weights by endpoint URL (positive integers, default 1); a weight given in `endpoints` wins. */
  readonly weights?: Readonly<Record<string, number>>;
  /** The default consistency of reads; default `linearizable`. */
  readonly consistency?: Consistency;
  /** How long a call may take, waiting in the queue, backing off and in flight; 1 ms..24 h, default 10,000 ms. */
  readonly timeoutMs?: number;
  /**
   * How long one attempt that is safe to retry (a read, a write in a session) may wait for
   * its answer before the client tries another node; 1 ms..24 h, default 2,000 ms. A write
   * outside a session gets the whole of the call's time: giving up on it early would only
   * leave its outcome unknown.
   */
  readonly attemptTimeoutMs?: number;
  /** Calls in flight at most, 1..100,000; default 64. Also the most session lanes. */
  readonly concurrency?: number;
  /** Calls waiting for a slot at most, 0..10,000,000; default 10,000. Further calls reject at once with QueueFullError. */
  readonly queueMax?: number;
  /** Exactly-once writes through client sessions (docs/http-api.md); default true. */
  readonly sessions?: boolean;
  readonly retry?: RetryOptions;
  /** Active health checks' interval in ms; default 1,000; 0 turns them off. */
  readonly healthCheckIntervalMs?: number;
  /** How long a health check may take; default 500 ms. */
  readonly healthCheckTimeoutMs?: number;
  /**
   * Follow the cluster's membership: every this many ms, and soon after a node fails or
   * answers `not_member`, ask `GET /v1/members` and route to the voters it lists (the
   * `endpoints` are then seeds, asked again when no member answers); default 10,000; 0 keeps
   * the endpoints as given.
   */
  readonly membersIntervalMs?: number;
  /** Health, ejection, panic and slow start tuning (docs/balance.md). */
  readonly balancer?: BalancerOptions;
  /** Seeds the balancer's and the backoff's randomness; default random. */
  readonly seed?: number;
  /** For https:// endpoints: the CA to trust (a `synod cluster --tls` cluster's `tls/ca.pem`) and a client certificate. */
  readonly tls?: ClientTls;
  /**
   * Credentials for a cluster with auth enabled (docs/security.md): a user and password
   * (sent as HTTP Basic; the node checks the password once and caches it), or a token from
   * `POST /v1/auth/authenticate`.
   */
  readonly auth?: { readonly user: string; readonly password: string } | { readonly token: string };
  /** How long connecting to a node may take; default 3,000 ms. */
  readonly connectTimeoutMs?: number;
  /** Keep-alive connections per endpoint, 1..1024; default `concurrency`, at most 1024. */
  readonly connectionsPerEndpoint?: number;
  /** The largest answer accepted, in bytes; default 64 MiB (a full range page of large values). */
  readonly responseBytesMax?: number;
}

/** What every call takes. */
export interface CallOptions {
  /** Aborts the call wherever it is (queued, backing off, in flight): it rejects with AbortedError. */
  readonly signal?: AbortSignal;
  /** This call's timeout instead of the client's `timeoutMs`. */
  readonly timeoutMs?: number;
}

export interface DeleteOptions extends CallOptions {
  /** Delete every key that starts with `key` (a non-empty prefix), atomically, as one revision. */
  readonly prefix?: boolean;
}

export interface PutOptions extends CallOptions {
  /** Compare-and-set: write only if the key's revision is this (0: only if it does not exist); else CompareFailedError. */
  readonly prevRevision?: number;
  /**
   * Attach the key to this lease (a `Lease`, or a lease's id): it is deleted when the lease
   * expires or is revoked. Without it the key is attached to none. @throws LeaseNotFoundError
   * when the lease does not exist (nothing is written).
   */
  readonly lease?: Lease | number;
}

/** `Client.leases`'s options. */
export interface LeaseListOptions extends CallOptions {
  readonly consistency?: Consistency;
  /** At most this many, 1..1000; default 100. */
  readonly limit?: number;
  /** Only leases with ids above this one, for paging. */
  readonly after?: number;
}

export interface ReadOptions extends CallOptions {
  readonly consistency?: Consistency;
  /**
   * Read as the store was at this revision (>= 1) rather than now. Rejects with
   * CompactedError below the cluster's compaction point, and with an HttpApiError
   * `future_revision` past the revision of the node that answers.
   */
  readonly revision?: number;
}

export interface DeleteOptions extends CallOptions {
  /** Delete every key that starts with the key given (a range delete, one atomic write). */
  readonly prefix?: boolean;
}

export interface RangeOptions extends ReadOptions {
  /** At most this many keys, 1..1000 (the node's cap); default the node's, 100. */
  readonly limit?: number;
  /** Start after this key, for paging (the last key of the previous page). */
  readonly after?: string;
}

/** The defaults and limits of the options above (their doc comments give the same numbers). */
export const TIMEOUT_MS_DEFAULT = 10_000;
export const ATTEMPT_TIMEOUT_MS_DEFAULT = 2_000;
export const TIMEOUT_MS_MAX = 24 * 3600 * 1000;
export const CONCURRENCY_DEFAULT = 64;
export const CONCURRENCY_MAX = 100_000;
export const QUEUE_MAX_DEFAULT = 10_000;
export const QUEUE_MAX_LIMIT = 10_000_000;
export const ATTEMPTS_MAX_DEFAULT = 10;
export const ATTEMPTS_MAX_LIMIT = 100;
export const CONNECT_TIMEOUT_MS_DEFAULT = 3_000;
export const CONNECTIONS_PER_ENDPOINT_MAX = 1024;
export const RESPONSE_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

/** The router's endpoint list: `endpoints`, each with its weight (one given in `endpoints` wins over `weights`). */
export function endpointConfigs(options: ClientOptions): RouterEndpointConfig[] {
  const weights = new Map<string, number>();
  for (const [url, weight] of Object.entries(options.weights ?? {})) weights.set(normalizeEndpoint(url), weight);
  return options.endpoints.map((endpoint) => {
    const config = typeof endpoint === "string" ? { url: endpoint } : endpoint;
    const weight = config.weight ?? weights.get(normalizeEndpoint(config.url));
    return weight === undefined ? { url: config.url } : { url: config.url, weight };
  });
}

/** `value`, or `fallback` when it is not given. @throws InvalidInputError naming the option when it is not an integer from `min` to `max`. */
export function integerOption(value: number | undefined, fallback: number, name: string, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new InvalidInputError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  return value;
}

/** The balance module asserts its options (configuration bugs); a client's options are user input, so they become InvalidInputError. */
export function resolveRetryOption<T>(resolve: () => T): T {
  try {
    return resolve();
  } catch (error) {
    throw new InvalidInputError(`retry: ${(error as Error).message}`, { cause: error });
  }
}

/** The Authorization header `auth` makes (Basic, or Bearer for a token); undefined without it. @throws InvalidInputError for malformed credentials. */
export function authorizationOf(auth: ClientOptions["auth"]): string | undefined {
  if (auth === undefined) return undefined;
  if ("token" in auth) {
    if (typeof auth.token !== "string" || auth.token === "") throw new InvalidInputError("auth.token must be a token from POST /v1/auth/authenticate");
    return `Bearer ${auth.token}`;
  }
  if (typeof auth.user !== "string" || auth.user === "" || auth.user.includes(":") || typeof auth.password !== "string") throw new InvalidInputError("auth is { user, password } (a user name without ':') or { token }");
  return `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString("base64")}`;
}

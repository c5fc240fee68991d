// The client SDK: `import { Client } from "synod"`: its methods, each a request to the
// cluster (or a lease, lock, election or watch built on them), and the parts it makes from
// its options. How a call is carried out is call-runner.ts: routed through a ClusterRouter
// (writes and linearizable reads to the leader, other reads spread by the balancer), bounded
// in flight and waiting, retried with full-jitter backoff under a retry budget, and made
// exactly-once with client sessions. The options, with their defaults, limits and checks,
// are options.ts. docs/client.md describes it for users.
import { randomInt } from "node:crypto";
import { performance } from "node:perf_hooks";
import { Prng } from "../core/common/prng.js";
import { InvalidInputError } from "../core/common/errors.js";
import { backoffMs, resolveBackoffOptions, RetryBudget, type BackoffOptions } from "../core/balance/retry.js";
import { Admission } from "./admission.js";
import {
  decodeCompactAnswer,
  decodeLeaseAnswer,
  decodeLeaseInfoAnswer,
  decodeLeaseListAnswer,
  decodeRevokeAnswer,
  errorBodyCode,
  type LeaseInfo,
  decodeDeleteAnswer,
  decodeGetAnswer,
  decodeMembersAnswer,
  decodePutAnswer,
  decodeRangeAnswer,
  decodeStatusAnswer,
  decodeTxnAnswer,
  checkWellFormed,
  encodeKeyPath,
  encodeTxnRequest,
  isKeyNotFound,
  normalizeEndpoint,
  withQuery,
  type Consistency,
  type KeyValue,
  type MembersView,
  type NodeStatus,
  type RangeResult,
  type TxnRequest,
  type TxnResponse,
} from "./api.js";
import { CallRunner } from "./call-runner.js";
import { ClientClosedError, HttpApiError } from "./errors.js";
import {
  ATTEMPT_TIMEOUT_MS_DEFAULT,
  ATTEMPTS_MAX_DEFAULT,
  ATTEMPTS_MAX_LIMIT,
  authorizationOf,
  CONCURRENCY_DEFAULT,
  CONCURRENCY_MAX,
  CONNECT_TIMEOUT_MS_DEFAULT,
  CONNECTIONS_PER_ENDPOINT_MAX,
  endpointConfigs,
  integerOption,
  QUEUE_MAX_DEFAULT,
  QUEUE_MAX_LIMIT,
  resolveRetryOption,
  RESPONSE_BYTES_MAX_DEFAULT,
  TIMEOUT_MS_DEFAULT,
  TIMEOUT_MS_MAX,
  type CallOptions,
  type ClientOptions,
  type DeleteOptions,
  type LeaseListOptions,
  type PutOptions,
  type RangeOptions,
  type ReadOptions,
} from "./options.js";
import { ClusterRouter, type RouterStats } from "./router.js";
import { SessionLanes } from "./sessions.js";
import { HttpTransport, type TransportRequest } from "./transport.js";
import { Watch, type WatchOptions } from "./watch.js";
import { Lease } from "./lease.js";
import { acquireLock, type Lock, type LockOptions } from "./lock.js";
import { campaign, electionLeader, observe, type ElectionLeader, type Leadership } from "./election.js";
import { runTransaction, type Transaction, type TransactionOptions, type TransactionResult } from "./transaction.js";

// The options are the SDK's too, importable from here as before they had a file of their own;
// so is the bound on reopening sessions, which the call runner keeps.
export type { CallOptions, ClientOptions, DeleteOptions, LeaseListOptions, PutOptions, RangeOptions, ReadOptions, RetryOptions } from "./options.js";
export { SESSION_REOPENS_MAX } from "./call-runner.js";

export interface CasResult {
  /** Whether the compare held and the value was written. */
  readonly succeeded: boolean;
  /** The store's revision after the transaction (the write's, when it succeeded). */
  readonly revision: number;
}

export interface ClientStats {
  readonly router: RouterStats;
  /** Calls holding a slot, and waiting for one. */
  readonly inFlight: number;
  readonly queued: number;
  /** Calls finished, whatever their outcome. */
  readonly calls: number;
  /** Attempts after the first, over all calls; and calls that made at least one. */
  readonly retries: number;
  readonly callsRetried: number;
  /** Retries the budget refused (the call then failed with its last error). */
  readonly retriesDenied: number;
  /**
   * Retries of a write in a session after an attempt that may have been applied (its answer
   * was lost): the ones the session's deduplication exists for.
   */
  readonly retriesMaybeApplied: number;
  /** Writes that ended with their outcome unknown (they may or may not have been applied). */
  readonly outcomeUnknown: number;
  /** Session lanes made (at most `concurrency`), sessions opened, and 410s answered by opening a new one. */
  readonly lanes: number;
  readonly sessionsOpened: number;
  readonly sessionsExpired: number;
  /** Writes answered 409 range_mismatch, after which the client read the cluster's ranges (a sharded cluster). */
  readonly rangeRefreshes: number;
}

const OCTET_STREAM = Object.freeze({ "content-type": "application/octet-stream" });
const JSON_BODY = Object.freeze({ "content-type": "application/json" });

/**
 * A client of a synod cluster. One per process is usual; it keeps connections, health and
 * sessions for all its calls. Every method rejects with a typed error (src/client/errors.ts):
 *
 * - answers: CompareFailedError (409), SequenceSupersededError (409, a session misused),
 *   HttpApiError (other 4xx/5xx: bad input, too large), InvalidInputError (a key or option
 *   refused before sending);
 * - the cluster unavailable after the retries: NoQuorumError (503 no_quorum, no_leader), NotMemberError,
 *   UnavailableError (overloaded), ConnectionError, TimeoutError;
 * - the client's bounds: QueueFullError (at once), TimeoutError (the call's `timeoutMs`),
 *   AbortedError (the call's signal), ClientClosedError, SessionExpiredError (410 again
 *   and again, which a healthy cluster does not do).
 *
 * A write that may have been applied but got no answer it could read rejects with
 * `outcomeUnknown` true (a TimeoutError, AbortedError or ClientClosedError); any other
 * rejection of a write means it was not applied. With sessions (the default) such a write was retried with the same
 * session and sequence, so it is applied at most once whatever happened.
 */
export class Client {
  /** The endpoints' normalized URLs, in the order given. */
  readonly endpoints: readonly string[];
  private readonly router: ClusterRouter;
  private readonly transport: HttpTransport;
  /** Carries out every call but a watch's: slots, sessions, attempts and retries. */
  private readonly runner: CallRunner;
  private readonly prng: Prng;
  private readonly backoff: BackoffOptions;
  private readonly consistency: Consistency;
  private readonly watches = new Set<Watch>();
  /** Leases this client keeps alive. */
  private readonly heldLeases = new Set<Lease>();
  private readonly connectTimeoutMs: number;
  /** The Authorization header `options.auth` makes, sent with every request. */
  private readonly authorization: string | undefined;
  private readonly responseBytesMax: number;
  /** Of calls that do not say theirs (the call runner keeps it too; a transaction spans several calls). */
  private readonly timeoutMs: number;
  private closing: Promise<void> | null = null;

  /** @throws InvalidInputError for a bad endpoint or an option out of range. */
  constructor(options: ClientOptions) {
    const concurrency = integerOption(options.concurrency, CONCURRENCY_DEFAULT, "concurrency", 1, CONCURRENCY_MAX);
    const admission = new Admission(concurrency, integerOption(options.queueMax, QUEUE_MAX_DEFAULT, "queueMax", 0, QUEUE_MAX_LIMIT));
    const timeoutMs = integerOption(options.timeoutMs, TIMEOUT_MS_DEFAULT, "timeoutMs", 1, TIMEOUT_MS_MAX);
    this.timeoutMs = timeoutMs;
    const attemptTimeoutMs = integerOption(options.attemptTimeoutMs, ATTEMPT_TIMEOUT_MS_DEFAULT, "attemptTimeoutMs", 1, TIMEOUT_MS_MAX);
    const attemptsMax = integerOption(options.retry?.attemptsMax, ATTEMPTS_MAX_DEFAULT, "retry.attemptsMax", 1, ATTEMPTS_MAX_LIMIT);
    this.consistency = options.consistency ?? "linearizable";
    this.backoff = resolveRetryOption(() => resolveBackoffOptions(options.retry ?? {}));
    const seed = options.seed ?? randomInt(0, 2 ** 47);
    this.prng = new Prng(seed);
    const budget = resolveRetryOption(() => new RetryBudget(performance.now(), options.retry ?? {}));
    const lanes = options.sessions === false ? null : new SessionLanes(concurrency);
    this.authorization = authorizationOf(options.auth);
    this.connectTimeoutMs = integerOption(options.connectTimeoutMs, CONNECT_TIMEOUT_MS_DEFAULT, "connectTimeoutMs", 1, TIMEOUT_MS_MAX);
    this.responseBytesMax = integerOption(options.responseBytesMax, RESPONSE_BYTES_MAX_DEFAULT, "responseBytesMax", 1, Number.MAX_SAFE_INTEGER);
    this.transport = new HttpTransport({
      connectionsPerEndpoint: integerOption(options.connectionsPerEndpoint, Math.min(concurrency, CONNECTIONS_PER_ENDPOINT_MAX), "connectionsPerEndpoint", 1, CONNECTIONS_PER_ENDPOINT_MAX),
      connectTimeoutMs: this.connectTimeoutMs,
      // Only a backstop: each attempt's own signal ends it sooner, and a call may have a longer timeoutMs than the client's.
      answerTimeoutMs: TIMEOUT_MS_MAX,
      responseBytesMax: this.responseBytesMax,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      ...(this.authorization === undefined ? {} : { authorization: this.authorization }),
    });
    this.router = new ClusterRouter({
      ...(this.authorization === undefined ? {} : { authorization: this.authorization }),
      endpoints: endpointConfigs(options),
      ...(options.strategy === undefined ? {} : { strategy: options.strategy }),
      ...(options.balancer === undefined ? {} : { balancer: options.balancer }),
      ...(options.healthCheckIntervalMs === undefined ? {} : { healthCheckIntervalMs: options.healthCheckIntervalMs }),
      ...(options.healthCheckTimeoutMs === undefined ? {} : { healthCheckTimeoutMs: options.healthCheckTimeoutMs }),
      ...(options.membersIntervalMs === undefined ? {} : { membersIntervalMs: options.membersIntervalMs }),
      seed: seed + 1,
      fetchStatus: (url, signal) => this.fetchStatus(url, signal),
      fetchMembers: (url, signal) => this.fetchMembers(url, signal),
    });
    this.endpoints = this.router.endpoints().map((endpoint) => endpoint.url);
    this.runner = new CallRunner({
      router: this.router,
      transport: this.transport,
      admission,
      lanes,
      budget,
      prng: this.prng,
      backoff: this.backoff,
      attemptsMax,
      consistency: this.consistency,
      timeoutMs,
      attemptTimeoutMs,
      closed: () => this.closing !== null,
    });
    this.router.start();
  }

  /**
   * Writes `value` (bytes, or text as UTF-8) under `key`; with `prevRevision` only if the key
   * is at that revision (0: absent). @throws CompareFailedError when that compare fails.
   */
  async put(key: string, value: Uint8Array | string, options: PutOptions = {}): Promise<{ revision: number }> {
    const query = new URLSearchParams();
    if (options.prevRevision !== undefined) {
      if (!Number.isSafeInteger(options.prevRevision) || options.prevRevision < 0) throw new InvalidInputError(`prevRevision must be a non-negative integer, got ${options.prevRevision}`);
      query.set("prevRevision", String(options.prevRevision));
    }
    if (options.lease !== undefined) query.set("lease", String(leaseIdOf(options.lease)));
    if (typeof value === "string") checkWellFormed(value, "a value given as text");
    const body = typeof value === "string" ? Buffer.from(value, "utf8") : value;
    const request: TransportRequest = { method: "PUT", path: withQuery(`/v1/kv/${encodeKeyPath(key)}`, query), body, headers: OCTET_STREAM };
    return this.runner.writeAndDecode({ kind: "write", what: `PUT ${key}`, request, key, rangeKey: key }, options, decodePutAnswer);
  }

  /** Reads `key` (as it was at `options.revision`, if given); null when it does not (or did not) exist. */
  async get(key: string, options: ReadOptions = {}): Promise<KeyValue | null> {
    const consistency = options.consistency ?? this.consistency;
    const path = `/v1/kv/${encodeKeyPath(key)}?consistency=${consistency}${revisionQuery(options.revision)}`;
    return decodeGetAnswer(await this.runner.call({ kind: "read", what: `GET ${key}`, request: { method: "GET", path }, consistency, key, accept: isKeyNotFound }, options));
  }

  /**
   * Deletes `key`; `deleted` is 0 when it did not exist. With `prefix: true`, every key
   * starting with `key` (which must not be empty), atomically: `deleted` counts them, and
   * `revision` is the one they were deleted at (the store's, unchanged, when none matched).
   */
  async delete(key: string, options: DeleteOptions = {}): Promise<{ deleted: number; revision: number }> {
    const prefix = options.prefix === true;
    const request: TransportRequest = { method: "DELETE", path: `/v1/kv/${encodeKeyPath(key)}${prefix ? "?prefix=true" : ""}` };
    return this.runner.writeAndDecode({ kind: "write", what: `DELETE ${key}${prefix ? " (every key under it)" : ""}`, request, key, rangeKey: key }, options, decodeDeleteAnswer);
  }

  /**
   * Compare-and-swap by value: writes `value` only if the key's value is `expected` (null:
   * only if the key does not exist). One `POST /v1/txn` (a value compare, or a version-0
   * compare for null), so it is atomic and, in a session, exactly-once. Values are text
   * (UTF-8) or bytes. A failed compare is a result (`succeeded` false), not an error.
   */
  async cas(key: string, expected: string | Uint8Array | null, value: string | Uint8Array, options: CallOptions = {}): Promise<CasResult> {
    encodeKeyPath(key);
    const compare = expected === null ? { key, target: "version" as const, op: "=" as const, value: 0 } : { key, target: "value" as const, op: "=" as const, value: expected };
    const answer = await this.txn({ compare: [compare], success: [{ op: "put", key, value }] }, options);
    return { succeeded: answer.succeeded, revision: answer.revision };
  }

  /** Keys starting with `prefix` ("" for all), in byte order, after `after`, at most `limit`. */
  async range(prefix: string, options: RangeOptions = {}): Promise<RangeResult> {
    const consistency = options.consistency ?? this.consistency;
    checkWellFormed(prefix, "the prefix");
    if (options.after !== undefined) checkWellFormed(options.after, "after");
    const query = new URLSearchParams();
    if (prefix !== "") query.set("prefix", prefix);
    if (options.limit !== undefined) {
      if (!Number.isSafeInteger(options.limit) || options.limit < 1 || options.limit > 1000) throw new InvalidInputError(`limit must be an integer from 1 to 1000, got ${options.limit}`);
      query.set("limit", String(options.limit));
    }
    if (options.after !== undefined) query.set("after", options.after);
    query.set("consistency", consistency);
    if (options.revision !== undefined) query.set("revision", revisionQuery(options.revision).slice("&revision=".length));
    const request: TransportRequest = { method: "GET", path: withQuery("/v1/kv", query) };
    return decodeRangeAnswer(await this.runner.call({ kind: "read", what: `range ${JSON.stringify(prefix)}`, request, consistency, key: prefix }, options));
  }

  /**
   * An atomic transaction (docs/http-api.md, `POST /v1/txn`): `success` if every compare
   * holds, else `failure`. A write (in a session). Each result names its `op`.
   */
  async txn(request: TxnRequest, options: CallOptions = {}): Promise<TxnResponse> {
    checkTxnText(request);
    const body = encodeTxnRequest(request);
    // In the session of its first key's range. One over several ranges of a sharded cluster is
    // refused in a session (cross_range): it goes again outside any, as a two-phase commit
    // whose outcome its anchor range records once; not sent a third time, as it is not
    // exactly-once outside a session.
    const first = request.compare?.[0]?.key ?? request.success?.[0]?.key ?? request.failure?.[0]?.key;
    const ranged = first === undefined ? {} : { rangeKey: first };
    const call = { kind: "write", what: "txn", request: { method: "POST", path: "/v1/txn", body, headers: JSON_BODY }, ...ranged } as const;
    try {
      return await this.runner.writeAndDecode(call, options, decodeTxnAnswer);
    } catch (error) {
      if (!(error instanceof HttpApiError) || error.code !== "cross_range" || !error.message.includes("not part of a client session")) throw error;
      return this.runner.writeAndDecode({ ...call, inSession: false, retrySafe: false }, options, decodeTxnAnswer);
    }
  }

  /**
   * An interactive transaction (transaction.ts; docs/client.md, "Interactive transactions"):
   * `fn` reads keys with `tx.get` (linearizably; repeatable; its own writes seen) and
   * buffers writes with `tx.put` and `tx.delete`; when it returns, one `txn` commits the
   * writes if every key read is unchanged. Else `fn` runs again, from scratch, up to
   * `retries` times (default 10), so it must have no side effects. Strictly serializable,
   * read-only transactions included (several reads are validated by a compares-only `txn`).
   * Resolves with fn's value, the commit's revision (null when nothing was sent) and the
   * runs it took. Rejects with TransactionConflictError when every run conflicted; with
   * fn's own error when its reads held (nothing written); with a call's error otherwise (a
   * commit's with `outcomeUnknown` when it may have been applied: it is not sent again).
   */
  async transaction<T>(fn: (tx: Transaction) => Promise<T>, options: TransactionOptions = {}): Promise<TransactionResult<T>> {
    if (this.closing !== null) throw new ClientClosedError();
    const host = {
      get: (key: string, read: ReadOptions) => this.get(key, read),
      txn: (request: TxnRequest, call: CallOptions) => this.txn(request, call),
      backoffMs: (retry: number) => backoffMs(retry, this.prng, this.backoff),
      timeoutMs: this.timeoutMs,
    };
    return runTransaction(host, fn, options);
  }

  /**
   * `POST /v1/compact`: drops the history below `revision` (reads at, and watches from, older
   * revisions are refused from then on). Idempotent: an older point changes nothing. Rejects
   * with an HttpApiError `future_revision` past the cluster's revision.
   */
  async compact(revision: number, options: CallOptions = {}): Promise<{ compactRevision: number; revision: number }> {
    if (!Number.isSafeInteger(revision) || revision < 1) throw new InvalidInputError(`a compaction's revision must be a positive integer, got ${revision}`);
    const request: TransportRequest = { method: "POST", path: "/v1/compact", body: JSON.stringify({ revision }), headers: JSON_BODY };
    // A compaction applied twice is one compaction: safe to send again, no session needed.
    return this.runner.writeAndDecode({ kind: "write", what: `compact ${revision}`, request, retrySafe: true, inSession: false }, options, decodeCompactAnswer);
  }

  /**
   * Watches `key` (or with `prefix`, every key under it) for changes: an async iterator of
   * every change, once, in revision order, from now or from `fromRevision`. It reconnects by
   * itself, to any node, after a failure, resuming after the last change it delivered; it
   * ends (no error) on `close()`, `return()` (a `break` out of `for await`), the signal or the
   * client's close; it rejects with CompactedError when the changes it still had to deliver
   * were compacted, and with HttpApiError for a request the nodes refuse (400).
   * @throws InvalidInputError for a key or option refused before anything is sent.
   */
  watch(key: string, options: WatchOptions = {}): Watch {
    if (this.closing !== null) throw new ClientClosedError();
    const watch = new Watch(
      key,
      options,
      {
        pick: (watched, avoid) => this.router.pickForRead("stale", watched, avoid),
        reportFailure: (id) => this.router.reportFailure(id),
        reportSuccess: (id) => this.router.reportSuccess(id),
        backoffMs: (attempt) => backoffMs(attempt, this.prng, this.backoff),
        connectTimeoutMs: this.connectTimeoutMs,
        ...(this.authorization === undefined ? {} : { authorization: this.authorization }),
        eventBytesMax: this.responseBytesMax,
      },
      (closed) => this.watches.delete(closed),
    );
    this.watches.add(watch);
    return watch;
  }

  /**
   * Grants a lease of `ttlSeconds` (1 to 31536000) and keeps it alive in the background, at
   * a third of its time to live, through node failures and failovers, until `revoke()`,
   * `release()` or the client's close. Its `lost` promise (and `onLost`) says when it is
   * gone or may be: the cluster said it no longer exists, or no keep-alive was acknowledged
   * within its time to live. Attach keys with `put(key, value, { lease })`.
   */
  async lease(ttlSeconds: number, options: CallOptions = {}): Promise<Lease> {
    const sentAtMs = performance.now();
    const granted = await this.grantLease(ttlSeconds, options);
    if (this.closing !== null) throw new ClientClosedError();
    const lease = new Lease(granted.id, granted.ttlSeconds, sentAtMs, {
      keepAlive: (id, timeoutMs, signal) => this.keepAliveLease(id, { timeoutMs: Math.min(timeoutMs, TIMEOUT_MS_MAX), signal }),
      revoke: (id) => this.revokeLease(id),
    }, (ended) => this.heldLeases.delete(ended));
    this.heldLeases.add(lease);
    return lease;
  }

  /**
   * Acquires the lock `name` (a key prefix, like `locks/db`): resolves once this caller holds
   * it, in the order callers asked, with a fencing token (`lock.token`) above every earlier
   * holder's. Held under a lease kept alive in the background (`ttlSeconds`, default 10), or
   * under `options.lease`; `lock.lost` says when that lease is gone. See docs/recipes.md.
   */
  async lock(name: string, options: LockOptions = {}): Promise<Lock> {
    return acquireLock(this, name, options);
  }

  /**
   * Campaigns in the election `name` (a key prefix) with `value`: resolves once this
   * candidate leads, in the order candidates campaigned (see docs/recipes.md).
   */
  async campaign(name: string, value: string, options: Omit<LockOptions, "value"> = {}): Promise<Leadership> {
    return campaign(this, name, value, options);
  }

  /** The leader of the election `name` now (its key, value and token), or null. */
  async electionLeader(name: string): Promise<ElectionLeader | null> {
    return electionLeader(this, name);
  }

  /** Each change of the election's leader or its value, from the current one on (null: none leads). */
  observe(name: string, options: { readonly signal?: AbortSignal } = {}): AsyncGenerator<ElectionLeader | null> {
    return observe(this, name, options.signal);
  }

  /** `POST /v1/leases`: grants a lease (once, in a session, however often the call is retried); no keep-alives. */
  async grantLease(ttlSeconds: number, options: CallOptions = {}): Promise<{ id: number; ttlSeconds: number }> {
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 31_536_000) throw new InvalidInputError(`a lease's ttlSeconds is an integer from 1 to 31536000, got ${ttlSeconds}`);
    const request: TransportRequest = { method: "POST", path: "/v1/leases", body: JSON.stringify({ ttlSeconds }), headers: JSON_BODY };
    return this.runner.writeAndDecode({ kind: "write", what: `grant a lease of ${ttlSeconds} s`, request }, options, decodeLeaseAnswer);
  }

  /** `POST /v1/leases/{id}/keepalive`: renews it once. @throws LeaseNotFoundError when it is gone. */
  async keepAliveLease(id: number, options: CallOptions = {}): Promise<{ id: number; ttlSeconds: number }> {
    const request: TransportRequest = { method: "POST", path: `/v1/leases/${leaseIdOf(id)}/keepalive` };
    // A keep-alive applied twice renews twice: safe to send again, no session needed.
    return this.runner.writeAndDecode({ kind: "write", what: `keep lease ${id} alive`, request, retrySafe: true, inSession: false }, options, decodeLeaseAnswer);
  }

  /** `DELETE /v1/leases/{id}`: revokes it, deleting its keys in one revision. @throws LeaseNotFoundError when it is gone. */
  async revokeLease(id: number, options: CallOptions = {}): Promise<{ deleted: number; revision: number }> {
    const request: TransportRequest = { method: "DELETE", path: `/v1/leases/${leaseIdOf(id)}` };
    return this.runner.writeAndDecode({ kind: "write", what: `revoke lease ${id}`, request }, options, decodeRevokeAnswer);
  }

  /** `GET /v1/leases/{id}`: its time to live, how long it lives yet, its keys; null when it does not exist. */
  async leaseInfo(id: number, options: ReadOptions = {}): Promise<LeaseInfo | null> {
    const consistency = options.consistency ?? this.consistency;
    const request: TransportRequest = { method: "GET", path: `/v1/leases/${leaseIdOf(id)}?consistency=${consistency}` };
    const response = await this.runner.call({ kind: "read", what: `GET lease ${id}`, request, consistency, accept: (answer) => answer.status === 404 && errorBodyCode(answer) === "lease_not_found" }, options);
    return response.status === 404 ? null : decodeLeaseInfoAnswer(response);
  }

  /** `GET /v1/leases`: the cluster's leases by increasing id, a page at a time (`after` the last id). */
  async leases(options: LeaseListOptions = {}): Promise<{ leases: LeaseInfo[]; more: boolean }> {
    const consistency = options.consistency ?? this.consistency;
    const query = new URLSearchParams({ consistency });
    if (options.limit !== undefined) query.set("limit", String(options.limit));
    if (options.after !== undefined) query.set("after", String(options.after));
    const request: TransportRequest = { method: "GET", path: withQuery("/v1/leases", query) };
    return decodeLeaseListAnswer(await this.runner.call({ kind: "read", what: "list leases", request, consistency }, options));
  }

  /**
   * `GET /v1/status` of `endpoint` only (any http(s) origin; one attempt), or without it of
   * the endpoint the balancer picks (retried on others).
   */
  async status(endpoint?: string, options: CallOptions = {}): Promise<NodeStatus> {
    const request: TransportRequest = { method: "GET", path: "/v1/status" };
    const fixed = endpoint === undefined ? {} : { endpoint: normalizeEndpoint(endpoint) };
    return decodeStatusAnswer(await this.runner.call({ kind: "read", what: "status", request, consistency: "stale", ...fixed }, options));
  }

  /**
   * `GET /v1/members`: the configuration, each member's id, addresses and role. Asked of the
   * leader (a linearizable read, retried on other nodes), or of `endpoint` only (one
   * attempt; a node that is not a member answers NotMemberError).
   */
  async members(endpoint?: string, options: CallOptions = {}): Promise<MembersView> {
    const request: TransportRequest = { method: "GET", path: "/v1/members" };
    const fixed = endpoint === undefined ? {} : { endpoint: normalizeEndpoint(endpoint) };
    return decodeMembersAnswer(await this.runner.call({ kind: "read", what: "members", request, consistency: "linearizable", ...fixed }, options));
  }

  /** Counters, the router's view (health, the leader) and the session lanes; allocates. */
  stats(): ClientStats {
    return { router: this.router.stats(), ...this.runner.stats() };
  }

  /**
   * Closes the client: calls waiting in the queue reject at once, calls in flight are
   * aborted (ClientClosedError, `outcomeUnknown` for a write that was sent), health checks
   * stop and connections close. Later calls reject with ClientClosedError. Idempotent:
   * every call returns the same promise.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    for (const watch of [...this.watches]) watch.close();
    for (const lease of [...this.heldLeases]) lease.fail("closed", `lease ${lease.id}: the client was closed, so no one keeps it alive; it expires within its time to live`);
    this.runner.endAll();
    await this.router.close();
    // Let the aborted calls settle before their connections go.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await this.transport.close();
  }

  /** The router's member list, over the client's own connections: null for an error answer. */
  private async fetchMembers(url: string, signal: AbortSignal): Promise<MembersView | null> {
    const response = await this.transport.send(url, { method: "GET", path: "/v1/members" }, signal);
    return response.status === 200 ? decodeMembersAnswer(response) : null;
  }

  /** The router's health check, over the client's own connections. */
  private async fetchStatus(url: string, signal: AbortSignal): Promise<{ ok: boolean; status?: NodeStatus }> {
    const response = await this.transport.send(url, { method: "GET", path: "/v1/status" }, signal);
    if (response.status !== 200) return { ok: false };
    return { ok: true, status: decodeStatusAnswer(response) };
  }
}

/** Every key and text value of a transaction must have a UTF-8 form (see `checkWellFormed`). */
function checkTxnText(request: TxnRequest): void {
  // The request may come from JSON (`synod txn`): its shape is the node's to judge (a 400).
  const parts: readonly unknown[] = [request.compare, request.success, request.failure];
  for (const part of parts) {
    if (!Array.isArray(part)) continue;
    for (const item of part as unknown[]) {
      if (typeof item !== "object" || item === null) continue;
      const { key, value } = item as { key?: unknown; value?: unknown };
      if (typeof key === "string") checkWellFormed(key, "a transaction's key");
      if (typeof value === "string") checkWellFormed(value, "a transaction's value");
    }
  }
}

/** `&revision=N` for a read at a revision, "" for none. @throws InvalidInputError for a revision that is not a positive integer. */
function revisionQuery(revision: number | undefined): string {
  if (revision === undefined) return "";
  if (!Number.isSafeInteger(revision) || revision < 1) throw new InvalidInputError(`revision must be a positive integer, got ${revision}`);
  return `&revision=${revision}`;
}

/** A lease's id, from a `Lease` or as given. @throws InvalidInputError for one that is not a positive integer. */
function leaseIdOf(lease: Lease | number): number {
  const id = typeof lease === "number" ? lease : lease.id;
  if (!Number.isSafeInteger(id) || id < 1) throw new InvalidInputError(`a lease id is a positive integer, got ${id}`);
  return id;
}

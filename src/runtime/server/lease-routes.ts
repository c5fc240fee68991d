/**
 * The lease routes of the HTTP API (docs/http-api.md, "Leases"): grant, keep alive, revoke,
 * look up and list, every change through the log.
 */
import { LEASE_LIMITS, LeaseNotFoundError } from "../../core/kv/store.js";
import { consistencyOf, HttpError, integerParameter, readBody, sendJson, unexpectedResult, type RouteContext } from "./http-api.js";
import { clientRequestOf, RANGE_LIMIT_DEFAULT, RANGE_LIMIT_MAX } from "./kv-routes.js";
import type { LeaseView } from "./lease-view.js";

/** `POST /v1/leases {"ttlSeconds": N}`: through the log; the lease's id is the grant's log index. */
export async function serveGrant(c: RouteContext): Promise<void> {
  const ttlSeconds = parseTtlSeconds(await readBody(c.request, 4096, "a lease grant"));
  const result = await c.service.write({ op: "lease-grant", ttlMs: ttlSeconds * 1000 }, clientRequestOf(c.request));
  if (result.op !== "lease-grant") throw unexpectedResult(result);
  sendJson(c.response, 200, { id: result.id, ttlSeconds: result.ttlMs / 1000 });
}

export function parseTtlSeconds(body: Uint8Array): number {
  const shape = `a lease grant is JSON: {"ttlSeconds": N}, N an integer from ${LEASE_LIMITS.ttlMsMin / 1000} to ${LEASE_LIMITS.ttlMsMax / 1000}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw new HttpError(400, "invalid_input", shape);
  }
  const ttl = typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>)["ttlSeconds"] : undefined;
  if (typeof ttl !== "number" || !Number.isSafeInteger(ttl) || ttl * 1000 < LEASE_LIMITS.ttlMsMin || ttl * 1000 > LEASE_LIMITS.ttlMsMax) throw new HttpError(400, "invalid_input", shape);
  return ttl;
}

/** `POST /v1/leases/{id}/keepalive`: through the log, so a keep-alive the leader acknowledged survives a failover. */
export async function serveKeepalive(c: RouteContext): Promise<void> {
  const result = await c.service.write({ op: "lease-keepalive", lease: c.memberId }, clientRequestOf(c.request));
  if (result.op !== "lease-keepalive") throw unexpectedResult(result);
  sendJson(c.response, 200, { id: result.id, ttlSeconds: result.ttlMs / 1000 });
}

/** `DELETE /v1/leases/{id}`: revokes it, deleting its keys in one revision. */
export async function serveRevoke(c: RouteContext): Promise<void> {
  if (c.guard.enabled) {
    // Revoking deletes the lease's keys: the caller must be allowed to write every one.
    const lease = c.service.lease(c.memberId, LEASE_KEYS_SHOWN_MAX);
    if (lease?.moreKeys === true) await c.guard.admin("revoke a lease with more than 1000 keys");
    for (const key of lease?.keys ?? []) await c.guard.write(key);
  }
  const result = await c.service.write({ op: "lease-revoke", lease: c.memberId }, clientRequestOf(c.request));
  if (result.op !== "lease-revoke") throw unexpectedResult(result);
  sendJson(c.response, 200, { id: result.id, deleted: result.deleted, revision: result.revision });
}

/** `GET /v1/leases/{id}`: its time to live, how long it lives yet, and its keys. */
export async function serveLease(c: RouteContext): Promise<void> {
  await c.service.read(consistencyOf(c.query));
  const lease = c.service.lease(c.memberId, LEASE_KEYS_SHOWN_MAX);
  if (lease === undefined) throw leaseNotFound(c.memberId);
  // Only the keys the caller may read are listed.
  const keys: string[] = [];
  for (const key of lease.keys) if (await c.guard.mayRead(key)) keys.push(key);
  sendJson(c.response, 200, leaseJson({ ...lease, keys }, true));
}

/** `GET /v1/leases?limit=N&after=ID`: the leases by increasing id, a page at a time. */
export async function serveLeaseList(c: RouteContext): Promise<void> {
  const limit = integerParameter(c.query, "limit", 1, RANGE_LIMIT_MAX) ?? RANGE_LIMIT_DEFAULT;
  const after = integerParameter(c.query, "after", 0) ?? 0;
  await c.service.read(consistencyOf(c.query));
  const { leases, more } = c.service.leases(limit, after);
  sendJson(c.response, 200, { leases: leases.map((lease) => leaseJson(lease, false)), more });
}

export function leaseJson(lease: LeaseView, withKeys: boolean): object {
  const times = { id: lease.id, ttlSeconds: lease.ttlMs / 1000, remainingMs: lease.remainingMs };
  return withKeys ? { ...times, keys: lease.keys, moreKeys: lease.moreKeys } : times;
}

export function parseLeaseId(text: string): number {
  const id = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(id) || id <= 0) throw new HttpError(400, "invalid_input", `a lease id is a positive integer (from POST /v1/leases), got ${JSON.stringify(text)}`);
  return id;
}

export function leaseNotFound(id: number): HttpError {
  const error = new LeaseNotFoundError(id);
  return new HttpError(404, error.code, error.message, {}, { id });
}

/** Keys `GET /v1/leases/{id}` lists at most (`moreKeys` says there are more). */
export const LEASE_KEYS_SHOWN_MAX = 1000;

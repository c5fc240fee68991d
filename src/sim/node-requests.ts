/**
 * What a simulated node does with its clients' requests, over its KV layer: a KV client's
 * reads and writes (workload.ts), and those of the side workloads (side-workloads.ts) — a
 * lease client's writes in its session, and a lock client's writes and reads with
 * client.lock's recipe, served by group 0. Answers go back over the client link; a write
 * whose outcome is unknown gets none. Also whether a replica took a node's own request
 * (a configuration change, a leadership transfer) at once: admissionOf.
 */
import { NotLeaderError, type SynodError } from "../core/common/errors.js";
import { utf8Decode, utf8Encode } from "../core/common/utf8.js";
import type { KvOperation, KvReplica } from "../core/kv/kv-replica.js";
import type { Applied } from "../core/kv/model.js";
import { SELF_ASSIGNED_SESSIONS_FROM } from "../core/kv/store.js";
import type { Admission } from "../core/engine/contract.js";
import type { Waiter } from "../core/replica/contract.js";
import { RequestTimeoutError, WriteOutcomeUnknownError } from "../core/replica/errors.js";
import type { Replica } from "../core/replica/replica.js";
import type { LeaseRequest, LeaseResponse } from "./lease-workload.js";
import type { ClientRequest, ClientResponse } from "./messages.js";
import type { LockRequest, LockResponse, LockResult } from "./lock-workload.js";

/**
 * A KV client's request, served by the replica of its key's group (`replica`, and its KV
 * layer, looked up by `layer` when used): `respond` carries the outcome back over the
 * client link, or the refusal of a request that certainly took no effect (refuseKvRequest).
 */
export function serveKvRequest<M>(layer: () => KvReplica<M, unknown>, replica: Replica<M, unknown, unknown>, request: ClientRequest, respond: (response: ClientResponse) => void): void {
  const answer = (output: string | null | boolean): void => respond({ type: "client-response", sequence: request.sequence, outcome: "ok", output });
  const refuse = (error: Error): void => refuseKvRequest(request, error, respond);
  if (request.op === "get") {
    // The engine's configured default: a lease read where the seed's tuning allows leases.
    replica.read({}, {
      resolve: () => {
        const record = layer().kv.get(request.key);
        answer(record === undefined ? null : utf8Decode(record.value));
      },
      reject: refuse,
    });
    return;
  }
  // Simulated clients number themselves from 1; their sessions are self-assigned (created
  // on first use) in the store, so they live in that id range.
  const client = { clientId: SELF_ASSIGNED_SESSIONS_FROM + request.clientId, sequence: request.sequence };
  const waiter: Waiter<Applied["result"]> = {
    resolve: (result) => {
      // A request superseded by a newer one of its client gets no answer (it timed out there).
      if (result.op === "rejected" || result.op === "superseded") return;
      answer(result.op === "cas" ? result.succeeded : null);
    },
    reject: refuse,
  };
  layer().write(toOperation(request), client, waiter);
}

/**
 * Tells a KV client its request failed — only when it certainly took no effect. A write
 * that timed out may still apply: its client, which has long given up, hears nothing.
 */
export function refuseKvRequest(request: ClientRequest, error: Error, respond: (response: ClientResponse) => void): void {
  if (error instanceof RequestTimeoutError || error instanceof WriteOutcomeUnknownError) return;
  const leaderHint = error instanceof NotLeaderError ? error.leaderHint : null;
  respond({ type: "client-response", sequence: request.sequence, outcome: "refused", reason: error.message, leaderHint });
}

/** A KV client's write as the KV layer's operation. */
export function toOperation(request: ClientRequest): KvOperation {
  switch (request.op) {
    case "put":
      return { op: "put", key: request.key, value: utf8Encode(request.value ?? "") };
    case "delete":
      return { op: "delete", key: request.key };
    case "cas":
      return { op: "cas-value", key: request.key, expected: utf8Encode(request.expected ?? ""), value: utf8Encode(request.value ?? "") };
    case "get":
      throw new Error("a get is not a command");
  }
}

/** A lease client's request (sim/lease-workload.ts): a write in the client's session, answered through `respond`. */
export function serveLeaseRequest<M>(layer: KvReplica<M, unknown>, request: LeaseRequest, respond: (response: LeaseResponse) => void): void {
  const client = { clientId: SELF_ASSIGNED_SESSIONS_FROM + request.clientId, sequence: request.sequence };
  const answer = (output: number | boolean): void => respond({ type: "lease-response", sequence: request.sequence, outcome: "ok", output });
  const waiter: Waiter<Applied["result"]> = {
    resolve: (result) => {
      if (result.op === "lease-grant") answer(result.id);
      else if (result.op === "put" || result.op === "lease-keepalive" || result.op === "lease-not-found") answer(result.op !== "lease-not-found");
    },
    reject: (error) => {
      if (error instanceof RequestTimeoutError || error instanceof WriteOutcomeUnknownError) return;
      const leaderHint = error instanceof NotLeaderError ? error.leaderHint : null;
      respond({ type: "lease-response", sequence: request.sequence, outcome: "refused", leaderHint });
    },
  };
  const operation: KvOperation =
    request.op === "grant" ? { op: "lease-grant", ttlMs: request.ttlMs } : request.op === "put" ? { op: "put", key: request.key, value: utf8Encode("held"), lease: request.lease } : { op: "lease-keepalive", lease: request.lease };
  layer.write(operation, client, waiter);
}

/**
 * A lock client's request (sim/lock-workload.ts): a write in its session, or a
 * linearizable read of the lock's contenders (through `replica`, the layer's). `reply`
 * carries the answer back over the client link; a write whose outcome is unknown gets none.
 */
export function serveLockRequest<M>(layer: KvReplica<M, unknown>, replica: Replica<M, unknown, unknown>, request: LockRequest, reply: (response: LockResponse) => void): void {
  const ok = (result: LockResult): void => reply({ type: "lock-response", sequence: request.sequence, outcome: "ok", result });
  const refuse = (error: Error): void => {
    if (error instanceof RequestTimeoutError || error instanceof WriteOutcomeUnknownError) return;
    reply({ type: "lock-response", sequence: request.sequence, outcome: "refused", leaderHint: error instanceof NotLeaderError ? error.leaderHint : null });
  };
  if (request.op === "read") {
    replica.read({}, {
      resolve: () => ok({ op: "read", contenders: layer.kv.range(request.prefix, Number.MAX_SAFE_INTEGER).map((record) => ({ key: record.key, createRevision: record.createRevision })), revision: layer.kv.currentRevision }),
      reject: refuse,
    });
    return;
  }
  const operation: KvOperation =
    request.op === "grant" ? { op: "lease-grant", ttlMs: request.ttlMs }
    : request.op === "keepalive" ? { op: "lease-keepalive", lease: request.lease }
    : request.op === "revoke" ? { op: "lease-revoke", lease: request.lease }
    : { op: "txn", compares: [{ key: request.key, target: "createRevision", op: "=", value: 0 }], success: [{ op: "put", key: request.key, value: utf8Encode(`lock client ${request.sessionId}`), lease: request.lease }], failure: [{ op: "get", key: request.key }] };
  layer.write(operation, { clientId: SELF_ASSIGNED_SESSIONS_FROM + request.sessionId, sequence: request.sequence }, {
    resolve: (result) => {
      if (result.op === "lease-grant") return ok({ op: "grant", lease: result.id });
      if (result.op === "lease-keepalive" || result.op === "lease-revoke" || (result.op === "lease-not-found" && request.op !== "create")) return ok({ op: request.op === "revoke" ? "revoke" : "keepalive", found: result.op !== "lease-not-found" });
      if (result.op === "lease-not-found") return ok({ op: "create", token: null });
      if (result.op !== "txn") return; // superseded, or a duplicate whose first answer went out
      if (result.succeeded) return ok({ op: "create", token: result.revision });
      const got = result.results[0];
      if (got?.op === "get") ok({ op: "create", token: got.record?.createRevision ?? null });
    },
    reject: refuse,
  });
}

/**
 * Whether a replica took a request at once: the replica refuses synchronously (the engine's
 * refusal), else the request waits, and how it ends is not this caller's concern.
 */
export function admissionOf<T>(ask: (waiter: Waiter<T>) => void): Admission {
  let refusal: Error | null = null;
  let asking = true;
  ask({
    resolve: () => undefined,
    reject: (error) => {
      if (asking) refusal = error;
    },
  });
  asking = false;
  const refused: Error | null = refusal;
  // Every refusal a replica makes at once is a SynodError (the engine's, or its own).
  return refused === null ? { accepted: true } : { accepted: false, error: refused as SynodError };
}

/**
 * The key-value routes of the HTTP API (docs/http-api.md): keys and ranges, transactions,
 * compaction and watches. The table that maps paths to them, access rules and errors are in
 * http-api.ts.
 */
import { isUtf8 } from "node:buffer";
import type { IncomingMessage, ServerResponse } from "node:http";
import { limits } from "../../core/common/limits.js";
import { FutureRevisionError, SELF_ASSIGNED_SESSIONS_FROM, type KvRecord } from "../../core/kv/store.js";
import type { ClientRequest, KvOperation } from "./driver.js";
import { consistencyOf, FORWARDED_HEADER, flagParameter, HttpError, integerParameter, RANGE_HEADER, readBody, SEQUENCE_HEADER, SESSION_HEADER, sendJson, TooLargeError, unexpectedResult, type KvService, type RouteContext } from "./http-api.js";
import { DEFAULT_GROUP, GROUP_ID_MAX, type GroupId } from "../../core/multi/group.js";
import { listAcross, servesHere, oneRangeOf, prefixRangeOf, RangeMismatchError, RangeNotFoundError, rangeNotFound, rangeOf, rangeTableOf, replicaOf, txnKeys, type RangeService } from "./range-routing.js";
import { parseTxnRequest, txnResultJson } from "./txn-json.js";
import { forwardRequest } from "./range-forward.js";
import { parseEventId, type WatchRequest } from "./watch.js";

export const RANGE_LIMIT_DEFAULT = 100;
export const RANGE_LIMIT_MAX = 1000;

export async function serveTxn(c: RouteContext): Promise<void> {
  const type = c.request.headers["content-type"] ?? "";
  if (!type.startsWith("application/json")) throw new HttpError(415, "unsupported_media_type", "a transaction is a JSON body: send Content-Type: application/json");
  const client = clientRequestOf(c.request);
  const body = await readBody(c.request, c.options.requestBodyBytesMax, "a transaction");
  const txn = parseTxnRequest(body);
  await c.guard.txn(txn);
  // Ranges this node does not host: the transaction goes to a node that hosts all of them;
  // with none (its ranges share no node), a transaction across ranges is coordinated here,
  // its phases for the ranges this node lacks written through nodes that have them.
  if (c.service.rangeHosts !== undefined && c.request.headers[FORWARDED_HEADER] === undefined) {
    const table = rangeTableOf(c.service);
    const ranges = [...new Set(txnKeys(txn).map((key) => table.forKey(key).id))];
    const lacking = ranges.some((id) => !servesHere(c.service, id));
    if (lacking && (ranges.length === 1 || c.service.rangeHosts(ranges).length > 0)) return forwardRequest(c.service, c.request, c.response, ranges, c.options.requestBodyBytesMax, body);
  }
  const crossRange = c.service.crossRangeTxn;
  if (crossRange !== undefined && crossRange.spans(txn)) {
    // Two-phase commit over the ranges (cross-range-txn.ts); not part of a client session,
    // whose exactly-once answers are per range.
    if (client !== null) throw new HttpError(400, "cross_range", "a transaction across ranges is not part of a client session: send it without x-synod-session (its outcome is recorded once, in its anchor range)");
    const result = await crossRange.run(txn);
    sendJson(c.response, 200, { ...txnResultJson({ op: "txn", succeeded: result.succeeded, revision: result.ranges[0]?.revision ?? 0, results: result.results }), txn: result.txn, ranges: result.ranges });
    return;
  }
  const range = oneRangeOf(c.service, txnKeys(txn), "a transaction", namedRangeOf(c.request));
  const result = await range.write(txn, client);
  if (result.op !== "txn") throw unexpectedResult(result);
  sendJson(c.response, 200, txnResultJson(result));
}

/**
 * `POST /v1/compact {"revision": N}`: through the log, like a write; 400 for a revision the
 * store has not reached. Revisions are per range: a sharded cluster's compaction names its
 * range (`?range=ID`).
 */
export async function serveCompact(c: RouteContext): Promise<void> {
  const revision = parseCompactRevision(await readBody(c.request, 4096, "a compaction request"));
  const result = await rangeByParameter(c).write({ op: "compact", revision }, clientRequestOf(c.request));
  if (result.op !== "compact") throw unexpectedResult(result);
  if (!result.compacted) throw new FutureRevisionError(revision, result.revision);
  sendJson(c.response, 200, { compactRevision: result.compactRevision, revision: result.revision });
}

export function parseCompactRevision(body: Uint8Array): number {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw new HttpError(400, "invalid_input", 'a compaction request is JSON: {"revision": N}');
  }
  const revision = typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>)["revision"] : undefined;
  if (typeof revision !== "number" || !Number.isSafeInteger(revision) || revision < 1) throw new HttpError(400, "invalid_input", 'a compaction request is {"revision": N}, N a positive integer: the oldest revision to keep');
  return revision;
}

/**
 * `GET /v1/watch?key=K` or `?prefix=P`: a Server-Sent Events stream (watch.ts). It starts
 * at `Last-Event-ID` (a reconnection) if given, else at `fromRevision`, else after the
 * node's revision; with `linearizable`, only once the node has applied a read index, so
 * "now" is no older than any write acknowledged before the request.
 */
export async function serveWatch(c: RouteContext): Promise<void> {
  const watch = parseWatchRequest(c.query, c.request.headers["last-event-id"]);
  // Revisions, and so the stream's positions, are per range: a watch stays within one.
  const range = watch.prefix ? prefixRangeOf(c.service, watch.key, "a watch of a prefix") : rangeOf(c.service, watch.key);
  await range.read(flagParameter(c.query, "linearizable") ? "linearizable" : "stale");
  const start = watch.start ?? { revision: range.revision() + 1, skip: 0 };
  if (c.request.method === "HEAD") {
    c.response.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" });
    c.response.end();
    return;
  }
  range.watches.serve({ ...watch, start }, c.response);
}

export function parseWatchRequest(query: URLSearchParams, lastEventId: string | string[] | undefined): Omit<WatchRequest, "start"> & { readonly start: WatchRequest["start"] | null } {
  const key = query.get("key");
  const prefix = query.get("prefix");
  if ((key === null) === (prefix === null)) throw new HttpError(400, "invalid_input", 'a watch names ?key=K or ?prefix=P (?prefix= for every key), one of the two');
  if (key === "") throw new HttpError(400, "invalid_input", "?key is empty: name a key, or watch ?prefix=P");
  const watched = key ?? (prefix as string);
  const bytes = Buffer.byteLength(watched, "utf8");
  if (bytes > limits.keyBytesMax) throw new TooLargeError(`the watched ${key === null ? "prefix" : "key"} is ${bytes} bytes; the limit is ${limits.keyBytesMax}`);
  const fromRevision = integerParameter(query, "fromRevision", 1);
  let start: WatchRequest["start"] | null = fromRevision === null ? null : { revision: fromRevision, skip: 0 };
  if (typeof lastEventId === "string" && lastEventId !== "") {
    start = parseEventId(lastEventId);
    if (start === null) throw new HttpError(400, "invalid_input", `Last-Event-ID must be an id this stream sent (R or R:n), not ${JSON.stringify(lastEventId)}`);
  }
  return { key: watched, prefix: key === null, prevValue: flagParameter(query, "prevValue"), start };
}

export async function getKey(service: KvService, key: string, query: URLSearchParams, response: ServerResponse): Promise<void> {
  // A split that applies while the read waits moves the key to another range: read it there.
  for (let attempt = 0; ; attempt++) {
    try {
      return await getKeyIn(rangeOf(service, key), key, query, response);
    } catch (error) {
      if (!(error instanceof RangeMismatchError) || attempt >= 3) throw error;
    }
  }
}

async function getKeyIn(service: RangeService, key: string, query: URLSearchParams, response: ServerResponse): Promise<void> {
  const revision = integerParameter(query, "revision", 1);
  await service.read(consistencyOf(query));
  if (revision === null) await service.unlocked([key]);
  const record = revision === null ? service.get(key) : service.getAt(key, revision);
  if (record === undefined) throw new HttpError(404, "key_not_found", `key ${JSON.stringify(key)} does not exist${revision === null ? "" : ` at revision ${revision}`}`);
  if (flagParameter(query, "raw")) {
    response.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": record.value.length,
      "x-synod-revision": record.modRevision,
      "x-synod-create-revision": record.createRevision,
    });
    response.end(record.value);
    return;
  }
  sendJson(response, 200, recordJson(record));
}

/**
 * The client session a write names (`x-synod-session` and `x-synod-sequence`), or null.
 * Sessions are the ones `POST /v1/sessions` hands out; the self-assigned range is the nodes'.
 */
export function clientRequestOf(request: IncomingMessage): ClientRequest | null {
  const session = request.headers[SESSION_HEADER];
  const sequence = request.headers[SEQUENCE_HEADER];
  if (session === undefined && sequence === undefined) return null;
  const parse = (text: string | string[] | undefined, name: string, below: number): number => {
    const value = typeof text === "string" && /^[0-9]{1,16}$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(value) || value < 1 || value >= below) throw new HttpError(400, "invalid_input", `${name} must be an integer in [1, ${below}), given together with ${name === SESSION_HEADER ? SEQUENCE_HEADER : SESSION_HEADER}`);
    return value;
  };
  return { clientId: parse(session, SESSION_HEADER, SELF_ASSIGNED_SESSIONS_FROM), sequence: parse(sequence, SEQUENCE_HEADER, Number.MAX_SAFE_INTEGER) };
}

export async function putKey(ranged: KvService, key: string, query: URLSearchParams, client: ClientRequest | null, named: GroupId | null, value: Uint8Array, response: ServerResponse): Promise<void> {
  const service = rangeOf(ranged, key, named);
  const prevRevision = integerParameter(query, "prevRevision", 0);
  const lease = integerParameter(query, "lease", 1);
  const leased = lease === null ? {} : { lease };
  const operation: KvOperation = prevRevision === null ? { op: "put", key, value, ...leased } : { op: "cas-revision", key, expectedRevision: prevRevision, value, ...leased };
  const result = await service.write(operation, client);
  if (result.op === "put") return sendJson(response, 200, { revision: result.revision });
  if (result.op === "cas") {
    if (result.succeeded) return sendJson(response, 200, { revision: result.revision });
    const current = service.get(key);
    return sendJson(response, 409, {
      error: "compare_failed",
      message: `the key's revision is ${current?.modRevision ?? 0} (0: absent), not ${prevRevision}`,
      revision: result.revision,
    });
  }
  throw unexpectedResult(result);
}

/** One key, or with `prefix` every key starting with `key` (a range delete: one entry, atomic). */
export async function deleteKey(ranged: KvService, key: string, prefix: boolean, client: ClientRequest | null, named: GroupId | null, response: ServerResponse): Promise<void> {
  const service = prefix ? prefixRangeOf(ranged, key, "a prefix delete", named) : rangeOf(ranged, key, named);
  const result = await service.write(prefix ? { op: "delete-prefix", prefix: key } : { op: "delete", key }, client);
  if (result.op === "delete" || result.op === "delete-prefix") return sendJson(response, 200, { deleted: result.deleted, revision: result.revision });
  throw unexpectedResult(result);
}

export async function rangeKeys(service: KvService, query: URLSearchParams, response: ServerResponse, credentials?: string): Promise<void> {
  const limit = integerParameter(query, "limit", 1, RANGE_LIMIT_MAX) ?? RANGE_LIMIT_DEFAULT;
  const prefix = query.get("prefix") ?? "";
  const after = query.get("after");
  const revision = integerParameter(query, "revision", 1);
  const only = integerParameter(query, "range", 0, GROUP_ID_MAX);
  if (only !== null) {
    // One range's keys (what a node lists of a range it hosts for a listing on another node).
    if (revision !== null) throw new HttpError(400, "invalid_input", "a listing names a range or a revision, not both");
    const descriptor = rangeTableOf(service).get(only);
    if (descriptor === undefined) throw rangeNotFound(rangeTableOf(service), only);
    const replica = replicaOf(service, descriptor);
    await replica.read(consistencyOf(query));
    const { records, more } = replica.range(prefix, limit, after);
    const span = replica.span();
    return sendJson(response, 200, { kvs: records.map(recordJson), more, revision: replica.revision(), range: { id: only, start: span.start, end: span.end } });
  }
  if (revision !== null) {
    // A revision is one range's: a listing at a revision stays within that range.
    const range = prefixRangeOf(service, prefix, "a listing at a revision");
    await range.read(consistencyOf(query));
    const { records, more } = range.rangeAt(prefix, limit, after, revision);
    return sendJson(response, 200, { kvs: records.map(recordJson), more, revision });
  }
  const page = await listAcross(service, prefix, limit, after, consistencyOf(query), credentials);
  const revisions = page.ranges.length > 1 ? { ranges: page.ranges } : {};
  // `revision` is the first range's read; a listing over several names each range's too.
  const first = page.ranges[0]?.revision ?? rangeOf(service, prefix).revision();
  sendJson(response, 200, { kvs: page.records.map(recordJson), more: page.more, revision: first, ...revisions });
}

/**
 * The range a write's client names with `x-synod-range`: where it opened the session it
 * writes in (range 0 when it names none, where `POST /v1/sessions` opens them by default).
 * Null for a write outside a client session. A write whose key is in another range is
 * refused with `range_mismatch`, so a client that does not know the ranges learns it must.
 */
export function namedRangeOf(request: IncomingMessage): GroupId | null {
  const header = request.headers[RANGE_HEADER];
  if (header === undefined) return request.headers[SESSION_HEADER] === undefined ? null : DEFAULT_GROUP;
  const value = typeof header === "string" && /^[0-9]{1,10}$/.test(header) ? Number(header) : NaN;
  if (!Number.isSafeInteger(value) || value > GROUP_ID_MAX) throw new HttpError(400, "invalid_input", `${RANGE_HEADER} must be a range id, an integer in [0, ${GROUP_ID_MAX}]`);
  return value;
}

/**
 * `?range=ID`'s range (the first when absent on a cluster that is not sharded; required on
 * one that is). `learned`: the id is one a client learned from the cluster (a session's
 * range), so one this node has not heard of may be newer than its view (a 503 to retry),
 * where an id a person typed is a 404.
 */
export function rangeByParameter(c: RouteContext, learned = false): RangeService {
  const table = rangeTableOf(c.service);
  const id = integerParameter(c.query, "range", 0, GROUP_ID_MAX);
  if (id === null) {
    if (table.size > 1) throw new HttpError(400, "invalid_input", "this cluster is sharded: name the range with ?range=ID (GET /v1/shards lists them)");
    return c.service;
  }
  const range = table.get(id);
  if (range === undefined) throw learned ? rangeNotFound(table, id) : new RangeNotFoundError(id, false);
  return replicaOf(c.service, range);
}

export function recordJson(record: KvRecord): object {
  const bytes = Buffer.from(record.value.buffer, record.value.byteOffset, record.value.length);
  const revisions = { revision: record.modRevision, createRevision: record.createRevision, version: record.version };
  if (isUtf8(bytes)) return { key: record.key, value: bytes.toString("utf8"), ...revisions };
  return { key: record.key, value: bytes.toString("base64"), encoding: "base64", ...revisions };
}

/**
 * Requests for ranges this node does not host (docs/sharding.md, "Placement"). Where ranges
 * are on some members only (`--replicas`), any node still takes any request: one whose key
 * (or prefix, or transaction) is in ranges this node does not host is sent on, as it came,
 * to a node that hosts them (the range's leader first, as the directory describes it), and
 * that node's answer, a watch's stream included, is passed back. A forwarded request is
 * marked, and is never forwarded again: a node that turns out not to host the range either
 * (the directory was a moment stale) answers 503 `range_not_hosted`, which the SDK retries.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { once } from "node:events";
import { createRequire } from "node:module";
import type { Dispatcher } from "undici";
import type { GroupId } from "../../core/multi/group.js";
import { FORWARDED_HEADER, HttpError, readBody, type KvService } from "./http-api.js";
import type { KvRecord } from "../../core/kv/model.js";
import type { RangeDescriptor } from "../../core/multi/ranges.js";
import { undiciDispatcher } from "../tls/trust.js";
import { rangeTableOf, servesHere, type ListingSource, type RemoteListing } from "./range-routing.js";

/**
 * undici's request, loaded at the first request sent on: loading undici costs about 0.1 s of
 * CPU, which every `synod node` would pay at start, most of them (every range on every
 * member) never forwarding anything.
 */
const load = createRequire(import.meta.url);
const undici = (): typeof import("undici") => load("undici") as typeof import("undici");

/** Headers that belong to one connection, not to the request or answer passed on. */
const HOP_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade", "proxy-connection", "te", "trailer"]);

/** How long a node to forward to may take to answer (a watch's stream then goes on as long as the client stays). */
const FORWARD_ANSWER_MS = 10_000;

/** Connection errors that mean the request never left this node. */
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "UND_ERR_CONNECT_TIMEOUT", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "ENOTFOUND"]);

function surelyNotSent(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  return NOT_SENT_CODES.has(String(code)) || NOT_SENT_CODES.has(String(cause));
}

/** Routes that name their range with `?range=ID`. */
const RANGE_PARAMETER_ROUTES = new Set(["/v1/sessions", "/v1/compact", "/v1/leader/transfer"]);

/**
 * The range a request on a key, a listing or watch within one range, or a request naming
 * its range (a session, a compaction, a leadership transfer, a split) is for, when this
 * node does not host it (so the request is forwarded); null when it is served here.
 */
export function unhostedRangeOf(service: KvService, route: string, key: string, query: URLSearchParams, pathId: number): GroupId | null {
  if (service.rangeHosts === undefined || service.ranges === undefined) return null;
  const table = rangeTableOf(service);
  let ranges: GroupId[];
  if (route === "/v1/kv/{key}") ranges = [table.forKey(key).id];
  else if (route === "/v1/shards/{id}/split" || route === "/v1/shards/{id}/move") ranges = table.get(pathId) === undefined ? [] : [pathId];
  else if (RANGE_PARAMETER_ROUTES.has(route)) {
    const named = Number(query.get("range") ?? "0");
    ranges = table.get(named) === undefined ? [] : [named];
  }
  else if (route === "/v1/kv" && query.get("range") !== null) {
    const named = Number(query.get("range"));
    ranges = table.get(named) === undefined ? [] : [named];
  } else if (route === "/v1/kv") {
    const prefix = query.get("prefix") ?? "";
    const spanned = table.forPrefix(prefix, query.get("after"));
    ranges = spanned.length === 0 ? [table.forKey(prefix).id] : spanned.map((range) => range.id);
  } else if (route === "/v1/watch") {
    const prefix = query.get("prefix");
    ranges = prefix !== null ? table.forPrefix(prefix).map((range) => range.id) : [table.forKey(query.get("key") ?? "").id];
  } else return null;
  // Over several ranges: served here, and refused with 503 for those this node lacks.
  if (ranges.length !== 1) return null;
  const range = ranges[0] as GroupId;
  return servesHere(service, range) ? null : range;
}

/**
 * Sends `request` (its body already read into `body`, or still to read) to the first of
 * `hosts` that answers, and passes the answer back. 503 `range_not_hosted` when none does.
 */
export async function forwardRequest(service: KvService, request: IncomingMessage, response: ServerResponse, ranges: readonly GroupId[], bodyBytesMax: number, body: Uint8Array | null = null, answerMs = FORWARD_ANSWER_MS): Promise<void> {
  const hosts = service.rangeHosts?.(ranges) ?? [];
  const method = request.method ?? "GET";
  const payload = body ?? (method === "GET" || method === "HEAD" ? null : await readBody(request, bodyBytesMax, "a request"));
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || HOP_HEADERS.has(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  headers[FORWARDED_HEADER] = "range";
  let clientGone = false;
  let attempt: AbortController | null = null;
  response.once("close", () => {
    clientGone = true;
    attempt?.abort();
  });
  let lastError: unknown = null;
  for (const host of hosts) {
    // Aborted if the client goes, or the node does not answer in time; once it answers, a
    // stream (a watch) goes on for as long as the client stays. undici's request, not fetch:
    // no WHATWG streams on the way, which cost a loaded node most of its throughput.
    const controller = new AbortController();
    attempt = controller;
    const timer = setTimeout(() => controller.abort(), answerMs);
    let upstream: Dispatcher.ResponseData;
    try {
      upstream = await undici().request(`${host}${request.url ?? "/"}`, { method: method as Dispatcher.HttpMethod, headers, body: payload, signal: controller.signal, dispatcher: undiciDispatcher() });
    } catch (error) {
      if (clientGone) return;
      lastError = error;
      // A write the node may have received is not sent to another: it could apply twice. Its
      // outcome is unknown (a client's session write is safe to send again; it applies once).
      if (method !== "GET" && method !== "HEAD" && !surelyNotSent(error)) {
        throw new HttpError(503, "timeout", `forwarded to ${host}, which did not answer (${String(error)}); the write may or may not have been applied (check before retrying a non-idempotent write)`, { "retry-after": "1" });
      }
      continue;
    } finally {
      clearTimeout(timer);
    }
    const answerHeaders: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(upstream.headers)) if (value !== undefined && !HOP_HEADERS.has(name)) answerHeaders[name] = value;
    service.forwarded?.();
    response.writeHead(upstream.statusCode, answerHeaders);
    response.flushHeaders();
    try {
      for await (const chunk of upstream.body) {
        if (!response.write(chunk)) await once(response, "drain");
      }
    } catch {
      // The node answering, or the client, went away mid-answer: the client sees the end.
      upstream.body.destroy();
    }
    response.end();
    return;
  }
  throw new HttpError(
    503,
    "range_not_hosted",
    `this node hosts no replica of range ${ranges.join(", ")}, and ${hosts.length === 0 ? "knows no node that does yet" : `no node hosting it answered (${String(lastError)})`}; retry shortly (GET /v1/shards lists the ranges)`,
    { "retry-after": "1" },
    { ranges },
  );
}

/**
 * Range `range`'s part of a listing, asked of a node that hosts it (`GET /v1/kv?range=ID`,
 * at the listing's consistency, up to the listing's limit): the first of `hosts` that
 * answers. A node that answers with an error other than not hosting the range (a 401, a
 * 400) has its error passed on; none answering is 503 `range_not_hosted`.
 */
export function remoteListing(hosts: () => readonly string[], range: RangeDescriptor, listing: RemoteListing, timeoutMs: number): ListingSource {
  let page: { readonly records: KvRecord[]; readonly more: boolean; readonly revision: number; readonly span: { readonly start: string; readonly end: string | null } } | null = null;
  return {
    read: async (consistency) => {
      const query = new URLSearchParams({ prefix: listing.prefix, limit: String(listing.limit), range: String(range.id), consistency });
      if (listing.after !== null) query.set("after", listing.after);
      const headers: Record<string, string> = { [FORWARDED_HEADER]: "range", ...(listing.credentials === undefined ? {} : { authorization: listing.credentials }) };
      let lastError: unknown = null;
      for (const host of hosts()) {
        let status: number;
        let body: ListingAnswer;
        try {
          const response = await undici().request(`${host}/v1/kv?${query.toString()}`, { headers, signal: AbortSignal.timeout(timeoutMs), dispatcher: undiciDispatcher() });
          status = response.statusCode;
          body = (await response.body.json()) as ListingAnswer;
        } catch (error) {
          lastError = error;
          continue;
        }
        if (status >= 500) {
          lastError = new Error(`${host} answered ${status} ${body.error ?? ""}`);
          continue;
        }
        if (status >= 300) throw new HttpError(status, body.error ?? "remote_error", body.message ?? `the node listing range ${range.id} answered ${status}`);
        page = { records: (body.kvs ?? []).map(recordOf), more: body.more === true, revision: body.revision ?? 0, span: body.range ?? { start: range.start, end: range.end } };
        return;
      }
      throw new HttpError(503, "range_not_hosted", `no node hosting range ${range.id} answered its part of the listing (${String(lastError)}); retry shortly`, { "retry-after": "1" }, { range });
    },
    span: () => page?.span ?? { start: range.start, end: range.end },
    range: (_prefix, limit) => ({ records: (page?.records ?? []).slice(0, limit), more: (page?.records.length ?? 0) > limit || page?.more === true }),
    revision: () => page?.revision ?? 0,
  };
}

/** A listing's answer, as `GET /v1/kv?range=ID` gives it. */
interface ListingAnswer {
  readonly kvs?: readonly { readonly key: string; readonly value: string; readonly encoding?: string; readonly revision: number; readonly createRevision: number; readonly version: number }[];
  readonly more?: boolean;
  readonly revision?: number;
  readonly range?: { readonly start: string; readonly end: string | null };
  readonly error?: string;
  readonly message?: string;
}

function recordOf(json: NonNullable<ListingAnswer["kvs"]>[number]): KvRecord {
  const value = json.encoding === "base64" ? Buffer.from(json.value, "base64") : Buffer.from(json.value, "utf8");
  return { key: json.key, value: new Uint8Array(value.buffer, value.byteOffset, value.length), createRevision: json.createRevision, modRevision: json.revision, version: json.version };
}

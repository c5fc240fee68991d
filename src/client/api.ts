// The HTTP API's shapes and their codec (docs/http-api.md): the records, requests and answers
// as TypeScript types, and the functions that turn a node's raw answer into them or into a
// typed error. No I/O; the transport and the clients build on it.
import { InvalidInputError } from "../core/common/errors.js";
import { CompactedError, CompareFailedError, HttpApiError, LeaseNotFoundError, NoQuorumError, NotMemberError, RangeMismatchError, SequenceSupersededError, SessionExpiredError, TimeoutError, UnavailableError } from "./errors.js";
import { RangeTable } from "../core/multi/ranges.js";
import type { IncomingHttpHeaders } from "node:http";

export type Consistency = "linearizable" | "lease" | "stale";

export const CONSISTENCIES: readonly Consistency[] = ["linearizable", "lease", "stale"];

/** One key's record as the store holds it. */
export interface KeyValue {
  readonly key: string;
  /** The value's bytes, decoded from the API's UTF-8 text or base64. */
  readonly value: Uint8Array;
  /** The key's last modification. */
  readonly revision: number;
  /** The key's creation. */
  readonly createRevision: number;
  /** Changes since creation (1 after the first put). */
  readonly version: number;
}

export interface RangeResult {
  readonly kvs: readonly KeyValue[];
  /** True when more keys match than were returned; page on with `after` = the last key. */
  readonly more: boolean;
  /** The store's revision the range was read at. */
  readonly revision: number;
}

export type CompareOperator = "=" | "!=" | "<" | ">";
/**
 * One compare of a transaction: the key's value (text as UTF-8, or bytes), or one of its
 * revisions or its version. A missing key has revisions and version 0 and no value.
 */
export type TxnCompare =
  | { readonly key: string; readonly target: "value"; readonly op: CompareOperator; readonly value: string | Uint8Array }
  | { readonly key: string; readonly target: "revision" | "createRevision" | "version"; readonly op: CompareOperator; readonly value: number };
/** One operation of a transaction's branch; a put's value is text (UTF-8) or bytes. */
export type TxnOperation =
  /** `lease`: attach the key to that lease (see `Client.lease`); without it, to none. */
  | { readonly op: "put"; readonly key: string; readonly value: string | Uint8Array; readonly lease?: number }
  | { readonly op: "get"; readonly key: string }
  | { readonly op: "delete"; readonly key: string };
export interface TxnRequest {
  readonly compare?: readonly TxnCompare[];
  readonly success?: readonly TxnOperation[];
  readonly failure?: readonly TxnOperation[];
}
/**
 * One operation's result, in request order, told apart by `op`: a put's revision; a get's
 * record (null: absent); a delete's count (0 or 1) and the transaction's revision. A get's
 * `forgotten` is true in the answer to a retried transaction (the cluster keeps what a
 * transaction wrote, not what it read), and in the answer to a transaction across ranges one
 * of whose ranges did not answer its part in time (the outcome is recorded; that range's
 * reads are not known): `kv` null then says nothing, so read the key again.
 */
export type TxnResult =
  | { readonly op: "put"; readonly revision: number }
  | { readonly op: "get"; readonly kv: KeyValue | null; readonly forgotten: boolean }
  | { readonly op: "delete"; readonly deleted: number; readonly revision: number };
export interface TxnResponse {
  readonly succeeded: boolean;
  readonly revision: number;
  readonly results: readonly TxnResult[];
}

/** A member of the cluster's configuration, as `GET /v1/members` and `/v1/status` list it. */
export interface MemberInfo {
  readonly id: number;
  /** Where it listens for its peers, `HOST:PORT`. */
  readonly peer: string;
  /** Its HTTP API's URL; null when the cluster does not know it (added without one, and never connected). */
  readonly http: string | null;
  /** `voter`, `learner` (receives the log, does not vote) or `leaving` (a voter of the outgoing half of a joint configuration). */
  readonly role: string;
}

/** `GET /v1/members`: the configuration as the node asked knows it (through the leader, unless asked `stale`). */
export interface MembersView {
  readonly members: readonly MemberInfo[];
  /** True while a joint configuration is in force (a change of several voters at once). */
  readonly joint: boolean;
}

/** `GET /v1/status`; fields the API adds later are kept as they came. */
export interface NodeStatus {
  readonly id: number;
  readonly role: string;
  readonly term: number;
  /** The leader this node believes in, or null during an election. */
  readonly leader: number | null;
  /** The leader's HTTP endpoint, or null when no leader is known. */
  readonly leaderHttp: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly members: readonly MemberInfo[];
  readonly [field: string]: unknown;
}

/** A node's raw answer. */
export interface ApiResponse {
  readonly endpoint: string;
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Uint8Array;
}

export function isKeyNotFound(response: ApiResponse): boolean {
  return response.status === 404 && errorBodyCode(response) === "key_not_found";
}

/** The typed error for an error answer (status >= 400). */
export function errorFor(response: ApiResponse): Error {
  const body = parseJson(response.body);
  const fields = typeof body === "object" && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  const code = typeof fields["error"] === "string" ? fields["error"] : `http_${response.status}`;
  const detail = typeof fields["message"] === "string" ? fields["message"] : new TextDecoder().decode(response.body.subarray(0, 200)) || `HTTP ${response.status}`;
  const message = `${code}: ${detail}`;
  const endpoint = response.endpoint;
  if (response.status === 409 && code === "compare_failed") {
    const revision = fields["revision"];
    return new CompareFailedError({ message, endpoint, revision: typeof revision === "number" ? revision : null });
  }
  if (response.status === 410 && code === "session_expired") return new SessionExpiredError({ message, endpoint });
  if (response.status === 409 && code === "range_mismatch") return new RangeMismatchError({ message, endpoint, range: rangeField(fields["range"]) });
  if (response.status === 404 && code === "lease_not_found") return new LeaseNotFoundError({ message, endpoint, id: typeof fields["id"] === "number" ? fields["id"] : null });
  if (response.status === 410 && code === "compacted") {
    const compactRevision = fields["compactRevision"];
    return new CompactedError({ message, endpoint, compactRevision: typeof compactRevision === "number" ? compactRevision : null });
  }
  if (response.status === 409 && code === "sequence_superseded") {
    const number = (name: string): number | null => (typeof fields[name] === "number" ? (fields[name] as number) : null);
    return new SequenceSupersededError({ message, endpoint, session: number("session"), sequence: number("sequence"), latestSequence: number("latestSequence") });
  }
  if (response.status === 503) {
    const retryAfterMs = parseRetryAfterMs(response.headers["retry-after"]);
    if (code === "no_leader" || code === "no_quorum") {
      const unreachable = Array.isArray(fields["unreachable"]) ? (fields["unreachable"] as unknown[]).filter((id): id is number => typeof id === "number") : [];
      return new NoQuorumError({ message, endpoint, retryAfterMs, code, unreachable });
    }
    if (code === "not_member") return new NotMemberError({ message, endpoint, retryAfterMs });
    if (code === "timeout") return new TimeoutError({ message, endpoint, status: 503, retryAfterMs });
    return new UnavailableError({ code, message, endpoint, retryAfterMs });
  }
  return new HttpApiError({ status: response.status, code, message, endpoint });
}

export function errorBodyCode(response: ApiResponse): string | null {
  return errorCodeOf(response.body);
}

/** The `error` code of an error answer's JSON body, or null when it has none. */
export function errorCodeOf(bytes: Uint8Array): string | null {
  const body = parseJson(bytes);
  return typeof body === "object" && body !== null && typeof (body as { error?: unknown }).error === "string" ? (body as { error: string }).error : null;
}

/** `Retry-After` as delta-seconds or an HTTP date, in milliseconds from now; null when absent or unreadable. */
export function parseRetryAfterMs(header: string | string[] | undefined, nowMs: number = Date.now()): number | null {
  const text = Array.isArray(header) ? header[0] : header;
  if (text === undefined || text.trim() === "") return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(text)) return Math.round(Number(text) * 1000);
  const dateMs = Date.parse(text);
  return Number.isNaN(dateMs) ? null : Math.max(0, dateMs - nowMs);
}

/**
 * The key as a URL path: each `/`-separated segment percent-encoded, so `a/b` stays `a/b`
 * and the node, which percent-decodes the rest of the path, sees the same key. `.` and `..`
 * segments are encoded too, so no URL resolution on the way turns them into path steps.
 * @throws InvalidInputError for an empty key or one that is not well-formed UTF-16.
 */
export function encodeKeyPath(key: string): string {
  if (key.length === 0) throw new InvalidInputError("a key must not be empty");
  checkWellFormed(key, "a key");
  return key
    .split("/")
    .map((segment) => (segment === "." ? "%2E" : segment === ".." ? "%2E%2E" : encodeURIComponent(segment)))
    .join("/");
}

/** A lone surrogate: a UTF-16 code unit of a pair without its other half (in `u` mode a whole pair is one code point, so it does not match). */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Refuses text that is not well-formed UTF-16 before it is sent. Such text has no UTF-8
 * form: `encodeURIComponent` throws on it, and `URLSearchParams`, `Buffer.from` and the
 * node would silently turn each lone surrogate into U+FFFD, so two different keys (or
 * values) would become one.
 * @throws InvalidInputError naming `what` ("a key", "the prefix", ...).
 */
export function checkWellFormed(text: string, what: string): void {
  const match = LONE_SURROGATE.exec(text);
  if (match === null) return;
  const unit = text.charCodeAt(match.index).toString(16).toUpperCase();
  throw new InvalidInputError(`${what} must be well-formed text: it holds a lone surrogate (U+${unit} at index ${match.index}), which has no UTF-8 form`);
}

/** A record as the API's JSON shows it: UTF-8 text, or base64 with `"encoding":"base64"`. */
export function keyValueToJson(kv: KeyValue): Record<string, unknown> {
  const text = decodeUtf8Strict(kv.value);
  return {
    key: kv.key,
    value: text ?? Buffer.from(kv.value).toString("base64"),
    ...(text === null ? { encoding: "base64" } : {}),
    revision: kv.revision,
    createRevision: kv.createRevision,
    version: kv.version,
  };
}

/** The text, or null when the bytes are not valid UTF-8. */
export function decodeUtf8Strict(bytes: Uint8Array): string | null {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
}

export function normalizeEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch (error) {
    throw new InvalidInputError(`endpoint "${endpoint}" is not a URL (expected e.g. http://127.0.0.1:7001)`, { cause: error });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new InvalidInputError(`endpoint "${endpoint}" must be http:// or https://`);
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "") throw new InvalidInputError(`endpoint "${endpoint}" must be an origin, without a path`);
  return url.origin;
}

export function withQuery(path: string, query: URLSearchParams): string {
  const text = query.toString();
  return text === "" ? path : `${path}?${text}`;
}

export function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  } catch {
    return undefined;
  }
}

export function invalidResponse(response: ApiResponse, why: string): HttpApiError {
  return new HttpApiError({ status: response.status, code: "invalid_response", message: `invalid_response: ${response.endpoint} answered something the API does not define (${why})`, endpoint: response.endpoint });
}

export function jsonObject(response: ApiResponse): Record<string, unknown> {
  const body = parseJson(response.body);
  if (body === undefined) throw invalidResponse(response, "the body is not JSON");
  return asObject(body, response);
}

export function asObject(value: unknown, response: ApiResponse): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidResponse(response, "expected a JSON object");
  return value as Record<string, unknown>;
}

export function numberField(body: Record<string, unknown>, name: string, response: ApiResponse): number {
  const value = body[name];
  if (typeof value !== "number" || !Number.isSafeInteger(value)) throw invalidResponse(response, `${name} is not an integer`);
  return value;
}

export function decodeKeyValue(body: Record<string, unknown>, response: ApiResponse): KeyValue {
  const key = body["key"];
  const value = body["value"];
  if (typeof key !== "string" || typeof value !== "string") throw invalidResponse(response, "a record needs a key and a value");
  const bytes = body["encoding"] === "base64" ? new Uint8Array(Buffer.from(value, "base64")) : new Uint8Array(Buffer.from(value, "utf8"));
  return {
    key,
    value: bytes,
    revision: numberField(body, "revision", response),
    createRevision: numberField(body, "createRevision", response),
    version: numberField(body, "version", response),
  };
}

/**
 * One result of a transaction, by its `op`. Nodes of before `op` answered without it (and a
 * delete without a revision): those are read by their fields, a delete taking the
 * transaction's revision, so a client keeps working across an upgrade.
 */
export function decodeTxnResult(body: Record<string, unknown>, txnRevision: number, response: ApiResponse): TxnResult {
  const op = body["op"] ?? ("kv" in body ? "get" : "deleted" in body ? "delete" : "put");
  switch (op) {
    case "get":
      return { op: "get", kv: body["kv"] === null ? null : decodeKeyValue(asObject(body["kv"], response), response), forgotten: body["forgotten"] === true };
    case "delete":
      return { op: "delete", deleted: numberField(body, "deleted", response), revision: body["revision"] === undefined && body["op"] === undefined ? txnRevision : numberField(body, "revision", response) };
    case "put":
      return { op: "put", revision: numberField(body, "revision", response) };
    default:
      throw invalidResponse(response, `a transaction result's op is ${JSON.stringify(op)}`);
  }
}

/**
 * A transaction as the API's JSON: values that are bytes go as base64, with `"encoding":
 * "base64"`. Every other field goes as it is, so the node refuses one it does not know (a
 * caller's `prefix` on a delete is refused, not silently dropped).
 */
export function encodeTxnRequest(request: TxnRequest): string {
  return JSON.stringify(request, (_name, value: unknown) => {
    if (typeof value !== "object" || value === null || !("value" in value)) return value;
    const bytes = (value as { value: unknown }).value;
    if (!(bytes instanceof Uint8Array)) return value;
    return { ...value, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"), encoding: "base64" };
  });
}

export function decodeStatus(body: Record<string, unknown>, response: ApiResponse): NodeStatus {
  const nullableNumber = (name: string): number | null => (body[name] === null || body[name] === undefined ? null : numberField(body, name, response));
  const leaderHttp = body["leaderHttp"];
  if (typeof body["role"] !== "string") throw invalidResponse(response, "role is not a string");
  const members = body["members"] === undefined ? [] : decodeMembers(body["members"], response);
  return {
    ...body,
    id: numberField(body, "id", response),
    role: body["role"],
    term: numberField(body, "term", response),
    leader: nullableNumber("leader"),
    leaderHttp: typeof leaderHttp === "string" && leaderHttp !== "" ? leaderHttp : null,
    commitIndex: numberField(body, "commitIndex", response),
    appliedIndex: numberField(body, "appliedIndex", response),
    members,
  };
}

/** A list of members; @throws HttpApiError `invalid_response` when it is not one. */
export function decodeMembers(value: unknown, response: ApiResponse): MemberInfo[] {
  if (!Array.isArray(value)) throw invalidResponse(response, "members is not an array");
  return value.map((item: unknown) => {
    const member = asObject(item, response);
    const { peer, http, role } = member;
    if (typeof peer !== "string" || (http !== null && http !== undefined && typeof http !== "string")) throw invalidResponse(response, "a member needs a peer address and an HTTP URL or null");
    return { id: numberField(member, "id", response), peer, http: typeof http === "string" && http !== "" ? http : null, role: typeof role === "string" ? role : "voter" };
  });
}

/** `GET /v1/members`'s answer. */
export function decodeMembersAnswer(response: ApiResponse): MembersView {
  const body = jsonObject(response);
  return { members: decodeMembers(body["members"], response), joint: body["joint"] === true };
}

/** `PUT /v1/kv/{key}`'s answer. */
export function decodePutAnswer(response: ApiResponse): { revision: number } {
  return { revision: numberField(jsonObject(response), "revision", response) };
}

/** `DELETE /v1/kv/{key}`'s answer. */
export function decodeDeleteAnswer(response: ApiResponse): { deleted: number; revision: number } {
  const body = jsonObject(response);
  return { deleted: numberField(body, "deleted", response), revision: numberField(body, "revision", response) };
}

/** `GET /v1/kv/{key}`'s answer: the record, or null for 404 `key_not_found`. */
export function decodeGetAnswer(response: ApiResponse): KeyValue | null {
  if (isKeyNotFound(response)) return null;
  return decodeKeyValue(jsonObject(response), response);
}

/** `GET /v1/kv?prefix=...`'s answer. */
export function decodeRangeAnswer(response: ApiResponse): RangeResult {
  const body = jsonObject(response);
  const kvs = body["kvs"];
  if (!Array.isArray(kvs)) throw invalidResponse(response, "kvs is not an array");
  return { kvs: kvs.map((kv: unknown) => decodeKeyValue(asObject(kv, response), response)), more: body["more"] === true, revision: numberField(body, "revision", response) };
}

/** `POST /v1/txn`'s answer. */
export function decodeTxnAnswer(response: ApiResponse): TxnResponse {
  const body = jsonObject(response);
  const results = body["results"];
  if (typeof body["succeeded"] !== "boolean" || !Array.isArray(results)) throw invalidResponse(response, "expected succeeded and results");
  const revision = numberField(body, "revision", response);
  return { succeeded: body["succeeded"], revision, results: results.map((result: unknown) => decodeTxnResult(asObject(result, response), revision, response)) };
}

/** `GET /v1/status`'s answer. */
export function decodeStatusAnswer(response: ApiResponse): NodeStatus {
  return decodeStatus(jsonObject(response), response);
}

/** `POST /v1/compact`'s answer. */
export function decodeCompactAnswer(response: ApiResponse): { compactRevision: number; revision: number } {
  const body = jsonObject(response);
  return { compactRevision: numberField(body, "compactRevision", response), revision: numberField(body, "revision", response) };
}

/** `POST /v1/leases` and `POST /v1/leases/{id}/keepalive`'s answer. */
export function decodeLeaseAnswer(response: ApiResponse): { id: number; ttlSeconds: number } {
  const body = jsonObject(response);
  return { id: numberField(body, "id", response), ttlSeconds: numberField(body, "ttlSeconds", response) };
}

/** `DELETE /v1/leases/{id}`'s answer. */
export function decodeRevokeAnswer(response: ApiResponse): { deleted: number; revision: number } {
  const body = jsonObject(response);
  return { deleted: numberField(body, "deleted", response), revision: numberField(body, "revision", response) };
}

/** A lease as `GET /v1/leases/{id}` tells it (`keys` empty, `moreKeys` false in a list). */
export interface LeaseInfo {
  readonly id: number;
  readonly ttlSeconds: number;
  /** How long it lives yet without a keep-alive, by the answering node's clock. */
  readonly remainingMs: number;
  readonly keys: readonly string[];
  readonly moreKeys: boolean;
}

function leaseInfoOf(value: unknown, response: ApiResponse): LeaseInfo {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidResponse(response, "a lease is not an object");
  const body = value as Record<string, unknown>;
  const keys = Array.isArray(body["keys"]) ? (body["keys"] as unknown[]).filter((key): key is string => typeof key === "string") : [];
  return { id: numberField(body, "id", response), ttlSeconds: numberField(body, "ttlSeconds", response), remainingMs: numberField(body, "remainingMs", response), keys, moreKeys: body["moreKeys"] === true };
}

/** `GET /v1/leases/{id}`'s answer. */
export function decodeLeaseInfoAnswer(response: ApiResponse): LeaseInfo {
  return leaseInfoOf(jsonObject(response), response);
}

/** `GET /v1/leases`'s answer. */
export function decodeLeaseListAnswer(response: ApiResponse): { leases: LeaseInfo[]; more: boolean } {
  const body = jsonObject(response);
  if (!Array.isArray(body["leases"])) throw invalidResponse(response, "leases is not a list");
  return { leases: (body["leases"] as unknown[]).map((lease) => leaseInfoOf(lease, response)), more: body["more"] === true };
}

/** `POST /v1/sessions`'s answer: the session's id (a positive safe integer). */
export function decodeSessionAnswer(response: ApiResponse): { session: number; ttlMs: number } {
  const body = jsonObject(response);
  const session = numberField(body, "session", response);
  if (session < 1) throw invalidResponse(response, "session is not a positive integer");
  return { session, ttlMs: numberField(body, "ttlMs", response) };
}

/** A range descriptor in an answer, or null when it is not one. */
function rangeField(value: unknown): RangeMismatchError["range"] {
  if (typeof value !== "object" || value === null) return null;
  const range = value as Record<string, unknown>;
  const { id, start, end, epoch } = range;
  if (typeof id !== "number" || typeof start !== "string" || (end !== null && typeof end !== "string") || typeof epoch !== "number") return null;
  return { id, start, end, epoch };
}

/** Each range's leader's URL, as `GET /v1/shards` names it (`leaderHttp`); ranges without one known are left out. */
export function decodeRangeLeaders(response: ApiResponse): Map<number, string> {
  const leaders = new Map<number, string>();
  if (response.status !== 200) return leaders;
  const shards = jsonObject(response)["shards"];
  if (!Array.isArray(shards)) return leaders;
  for (const shard of shards as unknown[]) {
    const { id, leaderHttp } = (shard ?? {}) as Record<string, unknown>;
    if (typeof id === "number" && typeof leaderHttp === "string" && leaderHttp !== "") leaders.set(id, leaderHttp);
  }
  return leaders;
}

/** `GET /v1/shards`'s answer: the cluster's ranges (a node without the route has one, over every key). */
export function decodeShardsAnswer(response: ApiResponse): RangeTable {
  if (response.status === 404) return RangeTable.single();
  const body = jsonObject(response);
  const shards = body["shards"];
  if (!Array.isArray(shards)) throw invalidResponse(response, "shards is not a list");
  const ranges = shards.map((shard: unknown) => {
    const range = rangeField(shard);
    if (range === null) throw invalidResponse(response, "a shard is not a range descriptor");
    return range;
  });
  try {
    return new RangeTable(ranges);
  } catch (error) {
    throw invalidResponse(response, `the ranges do not cover the key space once (${(error as Error).message})`);
  }
}

/**
 * The v1 HTTP API (docs/http-api.md) on Node's own `http` server. The routes are few and
 * fixed, so they are matched by hand: a router library would add a dependency and a lookup
 * per request on the hottest path of the node for six prefixes.
 *
 * Every failure is a JSON `{"error", "message"}` with the status that says who must act, and
 * nothing a client sends can throw past `handle`: bad input is a 4xx, an unexpected error a
 * 500 with the detail in the node's log.
 */
import { isUtf8 } from "node:buffer";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { InvalidInputError, MembershipChangeInProgressError, NotLeaderError, NotMemberError, OverloadedError, SynodError } from "../../core/common/errors.js";
import { limits } from "../../core/common/limits.js";
import { SELF_ASSIGNED_SESSIONS_FROM, SESSION_LIMITS, type KvRecord, type KvResult } from "../../core/kv/store.js";
import {
  LeaderChangedError,
  RequestTimeoutError,
  StoppedError,
  TooManyRequestsError,
  TransferOvertakenError,
  TransferTimeoutError,
  WriteOutcomeUnknownError,
  type ClientRequest,
  type KvOperation,
  type ReadConsistency,
} from "./driver.js";
import { checkBackupQuery, sendBackup, type Backup } from "./backup.js";
import { parseTxnRequest, txnResultJson } from "./txn-json.js";

/** What the HTTP layer needs from the node. */
export interface KvService {
  /** A write in the node's session, or in the client's (`client`). */
  write(operation: KvOperation, client?: ClientRequest | null): Promise<KvResult>;
  /** Opens a client session; resolves with its id. */
  register(): Promise<number>;
  /** Resolves when the local state machine may serve a read at `consistency`. */
  read(consistency: ReadConsistency): Promise<void>;
  get(key: string): KvRecord | undefined;
  range(prefix: string, limit: number, after: string | null): { readonly records: readonly KvRecord[]; readonly more: boolean };
  revision(): number;
  status(): object;
  members(): object;
  /** Changes the membership, through the leader wherever it is asked; answers once the change is in force. */
  changeMembers(request: MemberRequest, forwarded: boolean): Promise<{ readonly status: number; readonly body: object }>;
  /** Hands leadership to `to` (null: the leader's pick), through the leader wherever it is asked. */
  transferLeadership(to: number | null, forwarded: boolean): Promise<{ readonly status: number; readonly body: object }>;
  /** A backup of the state machine (`GET /v1/snapshot`); at or after every acknowledged write unless `stale`. */
  backup(consistency: ReadConsistency): Promise<Backup>;
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;
  observeRequest(route: string, status: number, seconds: number): void;
  logError(error: unknown, what: string): void;
}

/** A membership change as asked over HTTP. */
export type MemberRequest =
  | { readonly op: "add"; readonly id: number; readonly peer: string; readonly http: string | null; readonly learner: boolean; readonly autoPromote: boolean }
  | { readonly op: "remove"; readonly id: number }
  | { readonly op: "promote"; readonly id: number };

export interface HttpApiOptions {
  readonly requestBodyBytesMax: number;
}

/** A 413: the request is larger than a limit. */
export class TooLargeError extends SynodError {
  constructor(message: string) {
    super("too_large", message);
    this.name = "TooLargeError";
  }
}

export class HttpError extends SynodError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(code, message);
    this.name = "HttpError";
  }
}

/** Marks a request one node passed to the leader on a client's behalf (it is not passed on again). */
export const FORWARDED_HEADER = "x-synod-forwarded";
/** A write's client session (from `POST /v1/sessions`) and its sequence number in it; both or neither. */
export const SESSION_HEADER = "x-synod-session";
export const SEQUENCE_HEADER = "x-synod-sequence";
/** The most of an unwanted request body read (and dropped) to deliver an early answer. */
const DISCARD_BYTES_MAX = 64 * 1024 * 1024;
const RANGE_LIMIT_DEFAULT = 100;
const RANGE_LIMIT_MAX = 1000;
const KV_PREFIX = "/v1/kv/";

export function createHttpApi(service: KvService, options: HttpApiOptions): Server {
  const server = createServer((request, response) => {
    const startedMs = performance.now();
    let route = "unknown";
    response.on("finish", () => service.observeRequest(route, response.statusCode, (performance.now() - startedMs) / 1000));
    handle(service, options, request, response, (name) => (route = name)).catch((error: unknown) => {
      // handle() answers every error itself; this is only for a failure while answering.
      service.logError(error, "HTTP handler failed");
      if (!response.headersSent) sendError(response, new HttpError(500, "internal", "internal error; see the node's log"));
      else response.destroy();
    });
  });
  // Keep-alive connections from load balancers and benchmarks stay open between requests.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  return server;
}

async function handle(service: KvService, options: HttpApiOptions, request: IncomingMessage, response: ServerResponse, setRoute: (route: string) => void): Promise<void> {
  const url = request.url ?? "/";
  const question = url.indexOf("?");
  const path = question === -1 ? url : url.slice(0, question);
  const query = new URLSearchParams(question === -1 ? "" : url.slice(question + 1));
  const method = request.method ?? "GET";
  try {
    if (path.startsWith(KV_PREFIX)) {
      setRoute("/v1/kv/{key}");
      const key = decodeKey(path.slice(KV_PREFIX.length));
      if (method === "GET" || method === "HEAD") return await getKey(service, key, query, response);
      if (method === "PUT") return await putKey(service, key, query, clientRequestOf(request), await readBody(request, limits.valueBytesMax, "a value"), response);
      if (method === "DELETE") return await deleteKey(service, key, query, clientRequestOf(request), response);
      throw methodNotAllowed("GET, PUT, DELETE");
    }
    switch (path) {
      case "/v1/kv":
        setRoute("/v1/kv");
        if (method !== "GET") throw methodNotAllowed("GET");
        return await rangeKeys(service, query, response);
      case "/v1/txn": {
        setRoute("/v1/txn");
        if (method !== "POST") throw methodNotAllowed("POST");
        const type = request.headers["content-type"] ?? "";
        if (!type.startsWith("application/json")) throw new HttpError(415, "unsupported_media_type", "a transaction is a JSON body: send Content-Type: application/json");
        const client = clientRequestOf(request);
        const body = await readBody(request, options.requestBodyBytesMax, "a transaction");
        const result = await service.write(parseTxnRequest(body), client);
        if (result.op !== "txn") throw unexpectedResult(result);
        return sendJson(response, 200, txnResultJson(result));
      }
      case "/v1/sessions":
        setRoute("/v1/sessions");
        if (method !== "POST") throw methodNotAllowed("POST");
        return sendJson(response, 200, { session: await service.register(), ttlMs: SESSION_LIMITS.ttlMs });
      case "/v1/status":
        setRoute("/v1/status");
        if (method !== "GET") throw methodNotAllowed("GET");
        return sendJson(response, 200, service.status());
      case "/v1/members":
        setRoute("/v1/members");
        if (method === "GET") {
          // Linearizable by default, as a read: a removed or partitioned node's view may be
          // stale (`?consistency=stale` asks for it anyway).
          await service.read(consistencyOf(query));
          return sendJson(response, 200, service.members());
        }
        if (method !== "POST") throw methodNotAllowed("GET, POST");
        return await answerMembers(service, parseAddMember(await readBody(request, 4096, "a member")), request, response);
      case "/v1/leader/transfer": {
        setRoute("/v1/leader/transfer");
        if (method !== "POST") throw methodNotAllowed("POST");
        const target = parseTransferTarget(await readBody(request, 4096, "a transfer request"));
        const answer = await service.transferLeadership(target, request.headers[FORWARDED_HEADER] !== undefined);
        return sendJson(response, answer.status, answer.body);
      }
      case "/v1/snapshot":
        setRoute("/v1/snapshot");
        if (method !== "GET") throw methodNotAllowed("GET");
        checkBackupQuery(query);
        return await sendBackup(await service.backup(consistencyOf(query)), response);
      case "/metrics": {
        setRoute("/metrics");
        if (method !== "GET") throw methodNotAllowed("GET");
        const metrics = await service.metrics();
        response.writeHead(200, { "content-type": metrics.contentType });
        response.end(metrics.body);
        return;
      }
    }
    if (path.startsWith("/v1/members/")) {
      const rest = path.slice("/v1/members/".length);
      const promote = rest.endsWith("/promote");
      setRoute(promote ? "/v1/members/{id}/promote" : "/v1/members/{id}");
      const id = parseMemberId(promote ? rest.slice(0, -"/promote".length) : rest);
      if (promote) {
        if (method !== "POST") throw methodNotAllowed("POST");
        return await answerMembers(service, { op: "promote", id }, request, response);
      }
      if (method !== "DELETE") throw methodNotAllowed("DELETE");
      return await answerMembers(service, { op: "remove", id }, request, response);
    }
    throw new HttpError(404, "not_found", `no route ${method} ${path}; see docs/http-api.md`);
  } catch (error) {
    if (!request.complete) discardBody(request);
    sendError(response, toHttpError(error, service));
  }
}

/**
 * A body left unread by an early answer (a 413 on its Content-Length, say) is read and
 * dropped, so the client, still sending, gets the answer rather than a reset, and the
 * connection stays usable. Past DISCARD_BYTES_MAX the connection is cut instead.
 */
function discardBody(request: IncomingMessage): void {
  let discarded = 0;
  request.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DISCARD_BYTES_MAX) request.socket.destroy();
  });
  request.on("error", () => undefined);
  request.resume();
}

/** `{"to": ID}`, `{}` or an empty body (the leader picks). */
async function answerMembers(service: KvService, change: MemberRequest, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const answer = await service.changeMembers(change, request.headers[FORWARDED_HEADER] !== undefined);
  sendJson(response, answer.status, answer.body);
}

function parseMemberId(text: string): number {
  const id = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(id) || id <= 0) throw new HttpError(400, "invalid_input", `a member id is a positive integer, got ${JSON.stringify(text)}`);
  return id;
}

const ADD_MEMBER_SHAPE = '{"id": ID, "peer": "HOST:PORT", "http": "http://HOST:PORT", "learner": true|false}';

function parseAddMember(body: Uint8Array): MemberRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw new HttpError(400, "invalid_input", `a new member is JSON: ${ADD_MEMBER_SHAPE}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new HttpError(400, "invalid_input", `a new member is ${ADD_MEMBER_SHAPE}`);
  const { id, peer, http, learner, promote } = parsed as Record<string, unknown>;
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id <= 0) throw new HttpError(400, "invalid_input", "id must be a positive integer");
  if (typeof peer !== "string" || peer.length === 0) throw new HttpError(400, "invalid_input", "peer must be the new member's HOST:PORT for peer traffic");
  if (http !== undefined && http !== null && (typeof http !== "string" || !/^https?:\/\//.test(http))) throw new HttpError(400, "invalid_input", "http must be the new member's HTTP URL, like http://HOST:PORT");
  if (learner !== undefined && typeof learner !== "boolean") throw new HttpError(400, "invalid_input", "learner must be true or false");
  if (promote !== undefined && promote !== "auto" && promote !== "manual") throw new HttpError(400, "invalid_input", 'promote must be "auto" (once caught up) or "manual"');
  const asLearner = learner === true;
  return { op: "add", id, peer, http: typeof http === "string" ? http : null, learner: asLearner, autoPromote: asLearner && promote === "auto" };
}

function parseTransferTarget(body: Uint8Array): number | null {
  if (body.length === 0) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw new HttpError(400, "invalid_input", 'a transfer request is JSON: {"to": ID}, or {} to let the leader choose');
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new HttpError(400, "invalid_input", 'a transfer request is {"to": ID}');
  const to = (parsed as Record<string, unknown>)["to"];
  if (to === undefined || to === null) return null;
  if (typeof to !== "number" || !Number.isSafeInteger(to) || to <= 0) throw new HttpError(400, "invalid_input", "to must be a member's id, a positive integer");
  return to;
}

function decodeKey(encoded: string): string {
  let key: string;
  try {
    key = decodeURIComponent(encoded);
  } catch {
    throw new HttpError(400, "invalid_input", "the key is not valid percent-encoded UTF-8");
  }
  if (key.length === 0) throw new HttpError(400, "invalid_input", "the key is empty: use /v1/kv/{key}, or GET /v1/kv?prefix= for a range");
  const bytes = Buffer.byteLength(key, "utf8");
  if (bytes > limits.keyBytesMax) throw new TooLargeError(`the key is ${bytes} bytes; the limit is ${limits.keyBytesMax}`);
  return key;
}

function consistencyOf(query: URLSearchParams): ReadConsistency {
  const value = query.get("consistency") ?? "linearizable";
  if (value === "linearizable" || value === "lease" || value === "stale") return value;
  throw new HttpError(400, "invalid_input", `consistency must be linearizable, lease or stale, not ${JSON.stringify(value)}`);
}

function integerParameter(query: URLSearchParams, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | null {
  const text = query.get(name);
  if (text === null) return null;
  const value = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new HttpError(400, "invalid_input", `${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`);
  }
  return value;
}

async function getKey(service: KvService, key: string, query: URLSearchParams, response: ServerResponse): Promise<void> {
  await service.read(consistencyOf(query));
  const record = service.get(key);
  if (record === undefined) throw new HttpError(404, "key_not_found", `key ${JSON.stringify(key)} does not exist`);
  if (query.has("raw")) {
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
function clientRequestOf(request: IncomingMessage): ClientRequest | null {
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

async function putKey(service: KvService, key: string, query: URLSearchParams, client: ClientRequest | null, value: Uint8Array, response: ServerResponse): Promise<void> {
  const prevRevision = integerParameter(query, "prevRevision", 0);
  const operation: KvOperation = prevRevision === null ? { op: "put", key, value } : { op: "cas-revision", key, expectedRevision: prevRevision, value };
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

async function deleteKey(service: KvService, key: string, query: URLSearchParams, client: ClientRequest | null, response: ServerResponse): Promise<void> {
  if (query.has("prevRevision")) throw new HttpError(400, "invalid_input", "a conditional delete is a transaction: POST /v1/txn with a compare on the key's revision");
  const result = await service.write({ op: "delete", key }, client);
  if (result.op === "delete") return sendJson(response, 200, { deleted: result.deleted, revision: result.revision });
  throw unexpectedResult(result);
}

async function rangeKeys(service: KvService, query: URLSearchParams, response: ServerResponse): Promise<void> {
  const limit = integerParameter(query, "limit", 1, RANGE_LIMIT_MAX) ?? RANGE_LIMIT_DEFAULT;
  const prefix = query.get("prefix") ?? "";
  const after = query.get("after");
  await service.read(consistencyOf(query));
  const { records, more } = service.range(prefix, limit, after);
  sendJson(response, 200, { kvs: records.map(recordJson), more, revision: service.revision() });
}

export function recordJson(record: KvRecord): object {
  const bytes = Buffer.from(record.value.buffer, record.value.byteOffset, record.value.length);
  const revisions = { revision: record.modRevision, createRevision: record.createRevision, version: record.version };
  if (isUtf8(bytes)) return { key: record.key, value: bytes.toString("utf8"), ...revisions };
  return { key: record.key, value: bytes.toString("base64"), encoding: "base64", ...revisions };
}

/** Reads the body, refusing (413) past `bytesMax`; `Content-Length` is checked before reading. */
function readBody(request: IncomingMessage, bytesMax: number, what: string): Promise<Uint8Array> {
  const declared = Number(request.headers["content-length"] ?? "0");
  if (declared > bytesMax) return Promise.reject(new TooLargeError(`${what} of ${declared} bytes is over the limit of ${bytesMax}`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    request.on("data", (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > bytesMax) {
        failed = true;
        reject(new TooLargeError(`${what} is over the limit of ${bytesMax} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    request.on("end", () => {
      if (!failed) resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    });
    request.on("error", (error) => {
      if (failed) return;
      failed = true;
      reject(new HttpError(400, "invalid_input", `the request body could not be read: ${error.message}`));
    });
  });
}

function methodNotAllowed(allow: string): HttpError {
  return new HttpError(405, "method_not_allowed", `this route takes ${allow}`, { allow });
}

function unexpectedResult(result: KvResult): Error {
  if (result.op === "session-expired") {
    return new HttpError(410, "session_expired", `session ${result.clientId} expired or was never opened; nothing was applied: open a new one (POST /v1/sessions) and retry`);
  }
  if (result.op === "rejected") return new HttpError(503, "overloaded", `the write was not applied: ${result.reason}; retry`, { "retry-after": "1" });
  return new Error(`unexpected result ${result.op}`);
}

function toHttpError(error: unknown, service: KvService): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof TooLargeError) return new HttpError(413, error.code, error.message);
  if (error instanceof InvalidInputError) return new HttpError(400, error.code, error.message);
  if (error instanceof NotMemberError) return new HttpError(503, error.code, error.message);
  if (error instanceof NotLeaderError || error instanceof LeaderChangedError || error instanceof StoppedError) {
    return new HttpError(503, "no_leader", error instanceof NotLeaderError ? "no leader is known: an election is under way; retry shortly" : error.message, { "retry-after": "1" });
  }
  if (error instanceof OverloadedError || error instanceof TooManyRequestsError) return new HttpError(503, "overloaded", error.message, { "retry-after": "1" });
  if (error instanceof TransferOvertakenError) return new HttpError(503, error.code, error.message, { "retry-after": "1" });
  if (error instanceof MembershipChangeInProgressError) return new HttpError(409, error.code, error.message, { "retry-after": "1" });
  if (error instanceof RequestTimeoutError || error instanceof WriteOutcomeUnknownError || error instanceof TransferTimeoutError) return new HttpError(503, error.code, error.message, { "retry-after": "1" });
  service.logError(error, "request failed unexpectedly");
  return new HttpError(500, "internal", "internal error; see the node's log");
}

function sendError(response: ServerResponse, error: HttpError): void {
  for (const [name, value] of Object.entries(error.headers)) response.setHeader(name, value);
  sendJson(response, error.status, { error: error.code, message: error.message });
}

function sendJson(response: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

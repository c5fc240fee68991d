/**
 * The v1 HTTP API (docs/http-api.md) on Node's own `http` server. The routes are few and
 * fixed, so they are matched by hand: a router library would add a dependency and a lookup
 * per request on the hottest path of the node for six prefixes.
 *
 * Every failure is a JSON `{"error", "message"}` with the status that says who must act, and
 * nothing a client sends can throw past `handle`: bad input is a 4xx, an unexpected error a
 * 500 with the detail in the node's log.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from "node:http";
import type { Server as HttpsServer } from "node:https";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import { limits } from "../../core/common/limits.js";
import { SESSION_LIMITS } from "../../core/kv/store.js";
import type { ReadConsistency } from "./driver.js";
import { HttpError, toHttpError, TooLargeError } from "./http-errors.js";
import { sendBackup, type Backup } from "./backup.js";
import type { AuthState } from "../../core/kv/auth.js";
import {
  DEFAULT_AUTH_OPTIONS,
  Guard,
  serveAuthEnable,
  serveAuthenticate,
  serveAuthStatus,
  serveRole,
  serveRolePermission,
  serveRoles,
  serveUser,
  serveUserRole,
  serveUsers,
  type AuthOptions,
} from "./auth-http.js";
import { API_SERVER_OPTIONS, applyReceiveDeadlines, DEFAULT_CLIENT_LIMITS, type ClientLimits } from "./limits.js";
import { clientRequestOf, deleteKey, getKey, namedRangeOf, putKey, rangeByParameter, rangeKeys, serveCompact, serveTxn, serveWatch } from "./kv-routes.js";
import { parseLeaseId, serveGrant, serveKeepalive, serveLease, serveLeaseList, serveRevoke } from "./lease-routes.js";
import type { RangedService } from "./range-routing.js";
import type { CrossRangeResult } from "./cross-range-txn.js";
import type { TxnCommand } from "../../core/kv/command.js";
import type { DashboardFeed } from "./dashboard-feed.js";
import { serveMove, serveSplit, type SplitAnswer } from "./shard-routes.js";
import { MOVE_CATCH_UP_MS } from "./range-placement.js";
import { forwardRequest, unhostedRangeOf } from "./range-forward.js";
import type { GroupId } from "../../core/multi/group.js";
import { serveClusterAction, serveDashboardAsset, serveDashboardStream, serveFaults, serveInjectFault } from "./dashboard-http.js";

/**
 * What the HTTP layer needs from the node. Its own `RangeService` members are the first
 * range's (group 0: client sessions by default, leases, the auth state's writes); requests
 * on keys go to the range that owns the key (range-routing.ts).
 */
export interface KvService extends RangedService {
  status(): object;
  /** `GET /v1/shards`: every range's descriptor and this node's view of its group (leader, term, its own role). */
  shards(): object;
  members(): object;
  /** Changes the membership, through the leader wherever it is asked (with the caller's `credentials`); answers once the change is in force. */
  changeMembers(request: MemberRequest, forwarded: boolean, credentials?: string): Promise<{ readonly status: number; readonly body: object }>;
  /** Hands leadership to `to` (null: the leader's pick), through the leader wherever it is asked. */
  transferLeadership(to: number | null, forwarded: boolean, credentials?: string, range?: number | null): Promise<{ readonly status: number; readonly body: object }>;
  /** `POST /v1/shards/{id}/move`: a sharded Raft cluster's (absent elsewhere). */
  readonly moveReplica?: (range: GroupId, request: { readonly from: number; readonly to: number }, forwarded: boolean, credentials?: string) => Promise<{ readonly status: number; readonly body: object }>;
  /**
   * Splits range `range` at `key` (null: its middle key) and answers once this node hosts
   * both halves; absent where ranges do not split (a cluster not sharded, or Paxos).
   */
  split?(range: number, key: string | null): Promise<SplitAnswer>;
  /**
   * Where ranges are on some members only: the HTTP addresses of the nodes hosting every one
   * of `ranges` (the first range's leader first), to forward a request to (range-forward.ts).
   * Absent: every node hosts every range.
   */
  rangeHosts?(ranges: readonly GroupId[]): readonly string[];
  /** A request was sent on to another node (range-forward.ts). */
  forwarded?(): void;
  /** Transactions across ranges (cross-range-txn.ts); absent where there are none (one range, or Paxos). */
  readonly crossRangeTxn?: {
    spans(txn: Pick<TxnCommand, "compares" | "success" | "failure">): boolean;
    run(txn: Pick<TxnCommand, "compares" | "success" | "failure">): Promise<CrossRangeResult>;
  };
  /** Users, roles and whether auth is enabled, as this node applied them. */
  auth(): AuthState;
  /** A backup of the state machine (`GET /v1/snapshot`); at or after every acknowledged write unless `stale`. */
  backup(consistency: ReadConsistency): Promise<Backup>;
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;
  /** Which voters this node reaches now, to say why there is no leader. */
  quorum(): QuorumView;
  /** `GET /readyz`: whether this node should be sent requests. */
  readiness(): Readiness;
  observeRequest(route: string, status: number, seconds: number): void;
  logError(error: unknown, what: string): void;
  /** The live dashboard's view of this node (absent: no dashboard). */
  readonly dashboard?: DashboardFeed;
}

/** The voters of this node's configuration (both sides of a joint one) and those it reaches now, itself included. */
export interface QuorumView {
  readonly voters: readonly number[];
  readonly reachable: readonly number[];
  /** Whether the reachable voters make a majority (of each side, in a joint configuration). */
  readonly quorum: boolean;
}

/** The checks of `GET /readyz`, in order; ready when every one is ok. */
export interface Readiness {
  readonly checks: readonly { readonly name: string; readonly ok: boolean; readonly detail: string }[];
}

/** A membership change as asked over HTTP. */
export type MemberRequest =
  | { readonly op: "add"; readonly id: number; readonly peer: string; readonly http: string | null; readonly learner: boolean; readonly autoPromote: boolean }
  | { readonly op: "remove"; readonly id: number }
  | { readonly op: "promote"; readonly id: number };

export interface HttpApiOptions {
  readonly requestBodyBytesMax: number;
  /** Token lifetime and who reads /metrics (DEFAULT_AUTH_OPTIONS when absent). */
  readonly auth?: AuthOptions;
}

export { HttpError, noLeaderError, TooLargeError, unexpectedResult } from "./http-errors.js";

/** Marks a request one node passed to the leader on a client's behalf (it is not passed on again). */
export const FORWARDED_HEADER = "x-synod-forwarded";
/** A write's client session (from `POST /v1/sessions`) and its sequence number in it; both or neither. */
export const SESSION_HEADER = "x-synod-session";
export const SEQUENCE_HEADER = "x-synod-sequence";
/** The range a write's client session is in (`POST /v1/sessions?range=ID`): a write of a key in another range is refused. */
export const RANGE_HEADER = "x-synod-range";
/** The most of an unwanted request body read (and dropped) to deliver an early answer. */
const DISCARD_BYTES_MAX = 64 * 1024 * 1024;
const KV_PREFIX = "/v1/kv/";
const MEMBERS_PREFIX = "/v1/members/";
const SHARDS_PREFIX = "/v1/shards/";
const LEASES_PREFIX = "/v1/leases/";
const AUTH_USERS_PREFIX = "/v1/auth/users/";
const AUTH_ROLES_PREFIX = "/v1/auth/roles/";
const DASHBOARD_PREFIX = "/dashboard/";
/**
 * How far the applied index may trail the commit index for `GET /readyz`: a node applies
 * what commits within a Ready or two (a few hundred entries under load), so more means it is
 * replaying a backlog.
 */
export const READY_APPLIED_LAG_MAX = 1000;
/** Query parameters some route will take later, refused now with why rather than ignored. */
const NOT_YET: Readonly<Record<string, string>> = {
  ttl: 'a key lives for a time by being attached to a lease: grant one (POST /v1/leases {"ttlSeconds": N}) and PUT the key with ?lease=ID',
};

export function createHttpApi(service: KvService, options: HttpApiOptions): Server {
  const server = createServer(API_SERVER_OPTIONS, httpApiHandler(service, options));
  configureApiServer(server);
  return server;
}

/**
 * Keep-alive connections from load balancers and benchmarks stay open between requests; a
 * request must arrive within the deadlines of limits.ts (a slow client is answered 408).
 * A request Node's HTTP parser refuses (a bad method, header or Content-Length) is answered
 * with a JSON error like every other refusal, not Node's bare 400 (found by `npm run fuzz`).
 */
export function configureApiServer(server: Server | HttpsServer, limits: ClientLimits = DEFAULT_CLIENT_LIMITS): void {
  applyReceiveDeadlines(server, limits);
  server.on("clientError", answerClientError);
}

const CLIENT_ERROR_STATUS: Readonly<Record<string, readonly [number, string]>> = {
  HPE_HEADER_OVERFLOW: [431, "too_large"],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "request_timeout"],
};

function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  // Nothing can be written to a connection the client reset or that is already closing, nor
  // into the middle of an answer already begun (a body still arriving after an early 413).
  const answering = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
  if (error.code === "ECONNRESET" || !socket.writable || answering?.headersSent === true) return void socket.destroy();
  const [status, code] = CLIENT_ERROR_STATUS[error.code ?? ""] ?? [400, "invalid_input"];
  const message =
    status === 408
      ? "the request did not arrive in time (headers within --headers-timeout-ms, the whole request within --receive-timeout-ms); the connection is closed"
      : `the request is not valid HTTP/1.1 (${error.code ?? "parse error"}: ${error.message}); see docs/http-api.md`;
  const body = JSON.stringify({ error: code, message });
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/** The API's request handler, for an HTTP or an HTTPS server. */
export function httpApiHandler(service: KvService, options: HttpApiOptions): RequestListener {
  return (request, response) => {
    const startedMs = performance.now();
    let route = "unknown";
    response.on("finish", () => service.observeRequest(route, response.statusCode, (performance.now() - startedMs) / 1000));
    handle(service, options, request, response, (name) => (route = name)).catch((error: unknown) => {
      // handle() answers every error itself; this is only for a failure while answering.
      service.logError(error, "HTTP handler failed");
      if (!response.headersSent) sendError(response, new HttpError(500, "internal", "internal error; see the node's log"));
      else response.destroy();
    });
  };
}

/** What a route's handler gets: the request, its parsed query, and the path's key or member id. */
export interface RouteContext {
  readonly service: KvService;
  readonly options: HttpApiOptions;
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  readonly query: URLSearchParams;
  /** `/v1/kv/{key}`'s key, percent-decoded; "" elsewhere. */
  readonly key: string;
  /** `/v1/members/{id}`'s id, `/v1/leases/{id}`'s or `/v1/shards/{id}/split`'s (`/move`'s); 0 elsewhere. */
  readonly memberId: number;
  /** What the caller may do (auth-http.ts). */
  readonly guard: Guard;
  readonly auth: AuthOptions;
}

interface Route {
  /** The query parameters the route takes; any other is refused. */
  readonly query: readonly string[];
  /** Parameters refused with a message of their own (what to do instead). */
  readonly refused?: Readonly<Record<string, string>>;
  /**
   * Who may call it: anyone, any user, an admin, or what the check says (a permission on the
   * path's key, say); "handler": `serve` checks (the auth routes: what they need depends on
   * the auth state). Routes whose permission depends on the body check inside `serve` too.
   */
  readonly access: "public" | "user" | "admin" | "handler" | ((context: RouteContext) => Promise<void>);
  readonly serve: (context: RouteContext) => Promise<void> | void;
}

/**
 * Every route: its methods, and for each the query parameters it takes and its handler
 * (docs/http-api.md has the same table). HEAD is served as GET wherever GET is.
 */
const ROUTES: Readonly<Record<string, Readonly<Record<string, Route>>>> = {
  "/v1/kv/{key}": {
    GET: { query: ["consistency", "raw", "revision"], access: (c) => c.guard.read(c.key), serve: (c) => getKey(c.service, c.key, c.query, c.response) },
    PUT: { query: ["prevRevision", "lease"], access: (c) => c.guard.write(c.key), serve: async (c) => putKey(c.service, c.key, c.query, clientRequestOf(c.request), namedRangeOf(c.request), await readBody(c.request, limits.valueBytesMax, "a value"), c.response) },
    DELETE: {
      query: ["prefix"],
      refused: { prevRevision: "a conditional delete is a transaction: POST /v1/txn with a compare on the key's revision" },
      access: (c) => c.guard.write(c.key),
      serve: (c) => deleteKey(c.service, c.key, flagParameter(c.query, "prefix"), clientRequestOf(c.request), namedRangeOf(c.request), c.response),
    },
  },
  "/v1/kv": { GET: { query: ["prefix", "limit", "after", "consistency", "revision", "range"], access: (c) => c.guard.read(c.query.get("prefix") ?? ""), serve: (c) => rangeKeys(c.service, c.query, c.response, c.request.headers.authorization) } },
  "/v1/txn": { POST: { query: [], access: "user", serve: serveTxn } },
  "/v1/compact": { POST: { query: ["range"], access: "admin", serve: serveCompact } },
  "/v1/watch": { GET: { query: ["key", "prefix", "fromRevision", "prevValue", "linearizable"], access: (c) => c.guard.read(c.query.get("key") ?? c.query.get("prefix") ?? ""), serve: serveWatch } },
  "/v1/leases": {
    POST: { query: [], access: "user", serve: serveGrant },
    GET: { query: ["limit", "after", "consistency"], access: "user", serve: serveLeaseList },
  },
  "/v1/leases/{id}": {
    GET: { query: ["consistency"], access: "user", serve: serveLease },
    DELETE: { query: [], access: "user", serve: serveRevoke },
  },
  "/v1/leases/{id}/keepalive": { POST: { query: [], access: "user", serve: serveKeepalive } },
  "/v1/sessions": { POST: { query: ["range"], access: "user", serve: serveOpenSession } },
  // Open, as etcd's status and member list: no keys or values, and what joining nodes,
  // health checks and `synod status` read before they hold credentials.
  "/v1/status": { GET: { query: [], access: "public", serve: (c) => sendJson(c.response, 200, c.service.status()) } },
  "/v1/shards": { GET: { query: [], access: "user", serve: (c) => sendJson(c.response, 200, c.service.shards()) } },
  "/v1/shards/{id}/split": { POST: { query: [], access: "admin", serve: serveSplit } },
  "/v1/shards/{id}/move": { POST: { query: [], access: "admin", serve: serveMove } },
  "/v1/members": {
    // Linearizable by default, as a read: a partitioned node's view may be stale
    // (`?consistency=stale` asks for it anyway); a removed node answers not_member.
    GET: { query: ["consistency"], access: "public", serve: async (c) => (await c.service.read(consistencyOf(c.query)), sendJson(c.response, 200, c.service.members())) },
    POST: { query: [], access: "admin", serve: async (c) => answerMembers(c, parseAddMember(await readBody(c.request, 4096, "a member"))) },
  },
  "/v1/members/{id}": { DELETE: { query: [], access: "admin", serve: (c) => answerMembers(c, { op: "remove", id: c.memberId }) } },
  "/v1/members/{id}/promote": { POST: { query: [], access: "admin", serve: (c) => answerMembers(c, { op: "promote", id: c.memberId }) } },
  "/v1/leader/transfer": { POST: { query: ["range"], access: "admin", serve: serveTransfer } },
  "/metrics": { GET: { query: [], access: (c) => c.guard.metrics(), serve: serveMetrics } },
  "/healthz": { GET: { query: [], access: "public", serve: (c) => sendJson(c.response, 200, { ok: true }) } },
  "/readyz": { GET: { query: [], access: "public", serve: (c) => sendReadiness(c.response, c.service.readiness()) } },
  "/v1/snapshot": { GET: { query: ["consistency"], access: "admin", serve: async (c) => sendBackup(await c.service.backup(consistencyOf(c.query)), c.response) } },
  // The page holds no data (it reads the stream, with the user's token): open like /healthz.
  "/dashboard": { GET: { query: [], access: "public", serve: (c) => serveDashboardAsset("index.html", c.request, c.response) } },
  "/dashboard/{asset}": { GET: { query: [], access: "public", serve: (c) => serveDashboardAsset(c.key, c.request, c.response) } },
  "/v1/dashboard/stream": { GET: { query: [], access: "user", serve: (c) => serveDashboardStream(c.service.dashboard, c.request, c.response) } },
  "/v1/debug/faults": {
    GET: { query: [], access: "user", serve: (c) => serveFaults(c.service.dashboard, c.response) },
    POST: { query: [], access: "admin", serve: async (c) => serveInjectFault(c.service.dashboard, await readBody(c.request, 4096, "a fault request"), c.response, c.request.headers[FORWARDED_HEADER] !== undefined, c.guard.credentials) },
  },
  "/v1/debug/cluster": { POST: { query: [], access: "admin", serve: async (c) => serveClusterAction(c.service.dashboard, await readBody(c.request, 4096, "a cluster action"), c.response) } },
  "/v1/auth/authenticate": { POST: { query: [], access: "public", serve: serveAuthenticate } },
  "/v1/auth/status": { GET: { query: [], access: "public", serve: serveAuthStatus } },
  "/v1/auth/enable": { POST: { query: [], access: "handler", serve: (c) => serveAuthEnable(c, true) } },
  "/v1/auth/disable": { POST: { query: [], access: "handler", serve: (c) => serveAuthEnable(c, false) } },
  "/v1/auth/users": { GET: { query: [], access: "handler", serve: serveUsers } },
  "/v1/auth/users/{name}": {
    GET: { query: [], access: "handler", serve: (c) => serveUser(c, "GET") },
    PUT: { query: [], access: "handler", serve: (c) => serveUser(c, "PUT") },
    DELETE: { query: [], access: "handler", serve: (c) => serveUser(c, "DELETE") },
  },
  "/v1/auth/users/{name}/grant": { POST: { query: [], access: "handler", serve: (c) => serveUserRole(c, true) } },
  "/v1/auth/users/{name}/revoke": { POST: { query: [], access: "handler", serve: (c) => serveUserRole(c, false) } },
  "/v1/auth/roles": { GET: { query: [], access: "handler", serve: serveRoles } },
  "/v1/auth/roles/{name}": {
    GET: { query: [], access: "handler", serve: (c) => serveRole(c, "GET") },
    PUT: { query: [], access: "handler", serve: (c) => serveRole(c, "PUT") },
    DELETE: { query: [], access: "handler", serve: (c) => serveRole(c, "DELETE") },
  },
  "/v1/auth/roles/{name}/grant": { POST: { query: [], access: "handler", serve: (c) => serveRolePermission(c, true) } },
  "/v1/auth/roles/{name}/revoke": { POST: { query: [], access: "handler", serve: (c) => serveRolePermission(c, false) } },
};

/** Every route's methods and the query parameters each takes (docs/http-api.md lists the same; a test compares them). */
export function routeQueryParameters(): Record<string, readonly string[]> {
  const table: Record<string, readonly string[]> = {};
  for (const [path, methods] of Object.entries(ROUTES)) for (const [method, route] of Object.entries(methods)) table[`${method} ${path}`] = route.query;
  return table;
}

async function handle(service: KvService, options: HttpApiOptions, request: IncomingMessage, response: ServerResponse, setRoute: (route: string) => void): Promise<void> {
  const url = request.url ?? "/";
  const question = url.indexOf("?");
  const path = question === -1 ? url : url.slice(0, question);
  const query = new URLSearchParams(question === -1 ? "" : url.slice(question + 1));
  const method = request.method ?? "GET";
  try {
    const { name, key, memberId } = matchPath(path, method);
    setRoute(name);
    const methods = ROUTES[name] as Readonly<Record<string, Route>>;
    const route = methods[method] ?? (method === "HEAD" ? methods["GET"] : undefined);
    if (route === undefined) throw methodNotAllowed(Object.keys(methods).flatMap((allowed) => (allowed === "GET" ? ["GET", "HEAD"] : [allowed])).join(", "));
    checkQuery(query, `${method === "HEAD" ? "GET" : method} ${name}`, route);
    const auth = options.auth ?? DEFAULT_AUTH_OPTIONS;
    const context: RouteContext = { service, options, request, response, query, key, memberId, guard: new Guard(service, request, auth), auth };
    // The auth routes check inside (what they need depends on the state: nothing before auth is enabled).
    if (route.access === "user") await context.guard.user();
    else if (route.access === "admin") await context.guard.admin();
    else if (route.access !== "public" && route.access !== "handler") await route.access(context);
    // A key, listing or watch of a range this node does not host goes to a node that does.
    const unhosted = request.headers[FORWARDED_HEADER] === undefined ? unhostedRangeOf(service, name, key, query, memberId) : null;
    // A replica move answers once its new replica caught up: it may take longer than a request.
    const answerMs = name === "/v1/shards/{id}/move" ? MOVE_CATCH_UP_MS + 10_000 : undefined;
    if (unhosted !== null) await forwardRequest(service, request, response, [unhosted], options.requestBodyBytesMax, null, answerMs);
    else await route.serve(context);
  } catch (error) {
    if (!request.complete) discardBody(request);
    sendError(response, toHttpError(error, service));
  }
}

/** The route a path names (a key of ROUTES), with its key or member id; 404 for none, 400 for a bad key or id. */
function matchPath(path: string, method: string): { readonly name: string; readonly key: string; readonly memberId: number } {
  if (path.startsWith(KV_PREFIX)) return { name: "/v1/kv/{key}", key: decodeKey(path.slice(KV_PREFIX.length)), memberId: 0 };
  if (path.startsWith(MEMBERS_PREFIX)) {
    const rest = path.slice(MEMBERS_PREFIX.length);
    const promote = rest.endsWith("/promote");
    return { name: promote ? "/v1/members/{id}/promote" : "/v1/members/{id}", key: "", memberId: parseMemberId(promote ? rest.slice(0, -"/promote".length) : rest) };
  }
  if (path.startsWith(AUTH_USERS_PREFIX) || path.startsWith(AUTH_ROLES_PREFIX)) {
    const users = path.startsWith(AUTH_USERS_PREFIX);
    const rest = path.slice((users ? AUTH_USERS_PREFIX : AUTH_ROLES_PREFIX).length);
    const action = /\/(grant|revoke)$/.exec(rest)?.[1];
    const name = decodeKey(action === undefined ? rest : rest.slice(0, -action.length - 1));
    return { name: `/v1/auth/${users ? "users" : "roles"}/{name}${action === undefined ? "" : `/${action}`}`, key: name, memberId: 0 };
  }
  if (path.startsWith(LEASES_PREFIX)) {
    const rest = path.slice(LEASES_PREFIX.length);
    const keepalive = rest.endsWith("/keepalive");
    return { name: keepalive ? "/v1/leases/{id}/keepalive" : "/v1/leases/{id}", key: "", memberId: parseLeaseId(keepalive ? rest.slice(0, -"/keepalive".length) : rest) };
  }
  for (const action of ["split", "move"]) {
    if (!path.startsWith(SHARDS_PREFIX) || !path.endsWith(`/${action}`)) continue;
    const text = path.slice(SHARDS_PREFIX.length, -`/${action}`.length);
    const id = /^\d{1,10}$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(id)) throw new HttpError(400, "invalid_input", `a range id is an integer, got ${JSON.stringify(text)}`);
    return { name: `/v1/shards/{id}/${action}`, key: "", memberId: id };
  }
  if (path.startsWith(DASHBOARD_PREFIX)) return { name: "/dashboard/{asset}", key: path.slice(DASHBOARD_PREFIX.length) || "index.html", memberId: 0 };
  if (Object.hasOwn(ROUTES, path) && !path.includes("{")) return { name: path, key: "", memberId: 0 };
  throw new HttpError(404, "not_found", `no route ${method} ${path}; see docs/http-api.md`);
}

/** `POST /v1/sessions[?range=ID]`: a client session, in the range named (sessions are per range; the first by default). */
async function serveOpenSession(c: RouteContext): Promise<void> {
  const id = c.query.has("range") ? integerParameter(c.query, "range", 0) : null;
  const range = id === null ? c.service : rangeByParameter(c, true);
  sendJson(c.response, 200, { session: await range.register(), ttlMs: SESSION_LIMITS.ttlMs, range: id ?? 0 });
}

async function serveTransfer(c: RouteContext): Promise<void> {
  const target = parseTransferTarget(await readBody(c.request, 4096, "a transfer request"));
  const range = integerParameter(c.query, "range", 0);
  const answer = await c.service.transferLeadership(target, c.request.headers[FORWARDED_HEADER] !== undefined, c.guard.credentials, range);
  sendJson(c.response, answer.status, answer.body);
}

async function serveMetrics(c: RouteContext): Promise<void> {
  const metrics = await c.service.metrics();
  c.response.writeHead(200, { "content-type": metrics.contentType });
  c.response.end(metrics.body);
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
async function answerMembers(c: RouteContext, change: MemberRequest): Promise<void> {
  const answer = await c.service.changeMembers(change, c.request.headers[FORWARDED_HEADER] !== undefined, c.guard.credentials);
  sendJson(c.response, answer.status, answer.body);
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

/**
 * A request body that is a JSON object; null for an empty body. 400 `invalid_input` with
 * `notJson` for one that does not parse, `notObject` for any other JSON value.
 */
export function jsonObjectBody(body: Uint8Array, notJson: string, notObject: string): Record<string, unknown> | null {
  if (body.length === 0) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw new HttpError(400, "invalid_input", notJson);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new HttpError(400, "invalid_input", notObject);
  return parsed as Record<string, unknown>;
}

function parseTransferTarget(body: Uint8Array): number | null {
  const parsed = jsonObjectBody(body, 'a transfer request is JSON: {"to": ID}, or {} to let the leader choose', 'a transfer request is {"to": ID}');
  if (parsed === null) return null;
  const to = parsed["to"];
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
  if (key.length === 0) throw new HttpError(400, "invalid_input", "the key is empty: use /v1/kv/{key}; a range is GET /v1/kv?prefix=P, a range delete DELETE /v1/kv/{prefix}?prefix with a non-empty prefix");
  const bytes = Buffer.byteLength(key, "utf8");
  if (bytes > limits.keyBytesMax) throw new TooLargeError(`the key is ${bytes} bytes; the limit is ${limits.keyBytesMax}`);
  return key;
}

/**
 * Refuses (400) a query parameter the route does not take, naming it and the ones it takes,
 * and one given twice: an ignored typo (`?prevrevision=3`) would turn a compare-and-set into
 * an unconditional write.
 */
function checkQuery(query: URLSearchParams, routeName: string, route: Route): void {
  const names = [...new Set(query.keys())];
  const unknown = names.filter((name) => !route.query.includes(name));
  for (const name of unknown) {
    const why = route.refused?.[name] ?? NOT_YET[name];
    if (why !== undefined) throw new HttpError(400, "invalid_input", `${routeName}: ?${name}: ${why}`);
  }
  if (unknown.length > 0) {
    const takes = route.query.length === 0 ? "takes no query parameters" : `takes ${route.query.join(", ")}`;
    throw new HttpError(400, "invalid_input", `unknown query parameter${unknown.length === 1 ? "" : "s"} ${unknown.join(", ")}: ${routeName} ${takes} (names are case-sensitive)`);
  }
  const repeated = names.find((name) => query.getAll(name).length > 1);
  if (repeated !== undefined) throw new HttpError(400, "invalid_input", `${repeated} is given ${query.getAll(repeated).length} times; give it once`);
}

/** A flag: absent or `false` is false; present without a value, or `true`, is true; anything else is refused. */
export function flagParameter(query: URLSearchParams, name: string): boolean {
  const value = query.get(name);
  if (value === null || value === "false") return false;
  if (value === "" || value === "true") return true;
  throw new HttpError(400, "invalid_input", `${name} is a flag: give it without a value, or as ${name}=true or ${name}=false, not ${JSON.stringify(value)}`);
}

export function consistencyOf(query: URLSearchParams): ReadConsistency {
  const value = query.get("consistency") ?? "linearizable";
  if (value === "linearizable" || value === "lease" || value === "stale") return value;
  throw new HttpError(400, "invalid_input", `consistency must be linearizable, lease or stale, not ${JSON.stringify(value)}`);
}

export function integerParameter(query: URLSearchParams, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | null {
  const text = query.get(name);
  if (text === null) return null;
  const value = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new HttpError(400, "invalid_input", `${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(text)}`);
  }
  return value;
}

/** Reads the body, refusing (413) past `bytesMax`; `Content-Length` is checked before reading. */
export function readBody(request: IncomingMessage, bytesMax: number, what: string): Promise<Uint8Array> {
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

/** 200 when every check passes, else 503 `not_ready` naming the ones that failed; both list every check. */
function sendReadiness(response: ServerResponse, readiness: Readiness): void {
  const checks = Object.fromEntries(readiness.checks.map((check) => [check.name, { ok: check.ok, detail: check.detail }]));
  const failed = readiness.checks.filter((check) => !check.ok);
  if (failed.length === 0) return sendJson(response, 200, { ready: true, checks });
  const message = `not ready: ${failed.map((check) => `${check.name} (${check.detail})`).join("; ")}`;
  sendJson(response, 503, { error: "not_ready", message, ready: false, failed: failed.map((check) => check.name), checks });
}

function sendError(response: ServerResponse, error: HttpError): void {
  for (const [name, value] of Object.entries(error.headers)) response.setHeader(name, value);
  sendJson(response, error.status, { ...error.fields, error: error.code, message: error.message });
}

export function sendJson(response: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

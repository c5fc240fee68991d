/**
 * Authentication and authorization for the HTTP API (docs/security.md, "Users and roles").
 *
 * Each request gets a `Guard`: routes ask it for what they need (a user, read or write on a
 * key or prefix, admin) and it answers 401 `unauthenticated` without valid credentials and
 * 403 `permission_denied` without the permission. While auth is disabled every check passes,
 * as in etcd. Credentials are a bearer token (`POST /v1/auth/authenticate`) or HTTP Basic
 * (checked with scrypt once, then cached for the token lifetime). The state checked is the
 * node's applied auth state: a node a moment behind may not know a user just added yet.
 */
import type { IncomingMessage } from "node:http";
import { InvalidInputError } from "../../core/common/errors.js";
import { checkName, describeAuthOutcome, isAdmin, mayAccess, roleView, ROOT, rootRoleView, userView, type Access, type AuthChange, type AuthState, type User } from "../../core/kv/auth.js";
import type { TxnCommand } from "../../core/kv/command.js";
import { checkPassword, hashPassword, issueToken, newSecret, PasswordCache, verifyToken } from "./auth-tokens.js";
import { HttpError, readBody, sendJson, type KvService } from "./http-api.js";

/** Who may read `/metrics`: anyone (the default, as etcd), any user, or admins. */
export type MetricsAccess = "open" | "user" | "admin";

export interface AuthOptions {
  readonly tokenTtlMs: number;
  readonly metrics: MetricsAccess;
}

export const DEFAULT_AUTH_OPTIONS: AuthOptions = { tokenTtlMs: 10 * 60_000, metrics: "open" };

const CHALLENGE = { "www-authenticate": 'Bearer realm="synod", Basic realm="synod"' };
const caches = new WeakMap<object, PasswordCache>();

function unauthenticated(message: string): HttpError {
  return new HttpError(401, "unauthenticated", message, CHALLENGE);
}

function denied(user: User, what: string): HttpError {
  return new HttpError(403, "permission_denied", `user ${user.name} has no permission to ${what}; an admin grants it with synod role grant`);
}

/** What one request may do; checks authenticate on first use. */
export class Guard {
  private principal: Promise<User> | null = null;

  constructor(
    private readonly service: KvService,
    private readonly request: IncomingMessage,
    private readonly options: AuthOptions,
  ) {}

  get enabled(): boolean {
    return this.service.auth().enabled;
  }

  /** The authenticated user; null while auth is disabled. */
  async user(): Promise<User | null> {
    if (!this.enabled) return null;
    this.principal ??= authenticate(this.service, this.request, this.options);
    return this.principal;
  }

  async access(access: Access, prefix: string, what = `${access} keys starting with ${JSON.stringify(prefix)}`): Promise<void> {
    const user = await this.user();
    if (user !== null && !mayAccess(this.service.auth(), user, access, prefix)) throw denied(user, what);
  }

  read(key: string): Promise<void> {
    return this.access("read", key);
  }

  write(key: string): Promise<void> {
    return this.access("write", key);
  }

  async admin(what = "administer the cluster"): Promise<void> {
    const user = await this.user();
    if (user !== null && !isAdmin(this.service.auth(), user)) throw denied(user, `${what} (an admin permission)`);
  }

  /** Whether the user may read `key` (for filtering a list); true while auth is disabled. */
  async mayRead(key: string): Promise<boolean> {
    const user = await this.user();
    return user === null || mayAccess(this.service.auth(), user, "read", key);
  }

  /** A transaction reads its compares' and gets' keys and writes its puts' and deletes'. */
  async txn(command: Omit<TxnCommand, "request">): Promise<void> {
    for (const compare of command.compares) await this.read(compare.key);
    for (const operation of [...command.success, ...command.failure]) await (operation.op === "get" ? this.read(operation.key) : this.write(operation.key));
  }

  async metrics(): Promise<void> {
    if (this.options.metrics === "open") return;
    if (this.options.metrics === "user") await this.user();
    else await this.admin("read the metrics");
  }

  /** The caller's credentials, to pass on with a request forwarded to the leader. */
  get credentials(): string | undefined {
    return this.request.headers.authorization;
  }
}

async function authenticate(service: KvService, request: IncomingMessage, options: AuthOptions): Promise<User> {
  const header = request.headers.authorization;
  if (header === undefined) throw unauthenticated("auth is enabled: send a token (Authorization: Bearer, from POST /v1/auth/authenticate) or a user and password (curl -u name:password)");
  const [scheme, value] = [header.slice(0, header.indexOf(" ")).toLowerCase(), header.slice(header.indexOf(" ") + 1).trim()];
  const state = service.auth();
  if (scheme === "bearer") {
    const user = verifyToken(state, value, Date.now());
    if (typeof user === "string") throw unauthenticated(user);
    return user;
  }
  if (scheme === "basic") {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) throw unauthenticated("Basic credentials are base64 of name:password");
    return passwordUser(service, state, decoded.slice(0, colon), decoded.slice(colon + 1), options);
  }
  throw unauthenticated("the Authorization header's scheme is neither Bearer nor Basic");
}

async function passwordUser(service: KvService, state: AuthState, name: string, password: string, options: AuthOptions): Promise<User> {
  const user = state.users.get(name);
  const cache = caches.get(service) ?? new PasswordCache(options.tokenTtlMs);
  caches.set(service, cache);
  const nowMs = Date.now();
  if (user !== undefined && cache.has(user, password, nowMs)) return user;
  // A name that does not exist costs the same check, so timing does not say which names do.
  const ok = await checkPassword(password, user?.password ?? DUMMY);
  if (user === undefined || !ok) throw unauthenticated("wrong name or password");
  cache.add(user, password, nowMs);
  return user;
}

const DUMMY = { cost: 15, salt: new Uint8Array(16), hash: new Uint8Array(32) };

// ---- the auth routes ----

interface AuthRouteContext {
  readonly service: KvService;
  readonly request: IncomingMessage;
  readonly response: import("node:http").ServerResponse;
  /** The user or role the path names ("" for none). */
  readonly key: string;
  readonly guard: Guard;
  readonly auth: AuthOptions;
}

async function jsonBody(request: IncomingMessage, what: string): Promise<Record<string, unknown>> {
  const body = await readBody(request, 64 * 1024, what);
  let parsed: unknown;
  try {
    parsed = body.length === 0 ? {} : JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw new HttpError(400, "invalid_input", `${what} is a JSON object`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new HttpError(400, "invalid_input", `${what} is a JSON object`);
  return parsed as Record<string, unknown>;
}

function stringField(body: Record<string, unknown>, field: string, what: string): string {
  const value = body[field];
  if (typeof value !== "string") throw new HttpError(400, "invalid_input", `${what} needs "${field}", a string`);
  return value;
}

function password(body: Record<string, unknown>): string {
  const value = stringField(body, "password", "a user");
  if (value.length < 1 || value.length > 1024) throw new HttpError(400, "invalid_input", "a password is 1 to 1024 characters");
  return value;
}

/** Proposes `change` through the log; answers 200 with `body`, or 409/404 with why it changed nothing. */
async function change(c: AuthRouteContext, change: AuthChange, body: object = {}): Promise<void> {
  const result = await c.service.write({ op: "auth", change });
  if (result.op !== "auth") throw new Error(`an auth change applied as ${result.op}`);
  if (result.outcome === "ok") return sendJson(c.response, 200, { ...body, authRevision: result.authRevision });
  const status = result.outcome.endsWith("not-found") ? 404 : 409;
  throw new HttpError(status, result.outcome.replaceAll("-", "_"), describeAuthOutcome(result.outcome, change));
}

function named(c: AuthRouteContext, what: "user" | "role"): string {
  try {
    return checkName(c.key, what);
  } catch (error) {
    if (error instanceof InvalidInputError) throw new HttpError(400, "invalid_input", error.message);
    throw error;
  }
}

export async function serveAuthenticate(c: AuthRouteContext): Promise<void> {
  const body = await jsonBody(c.request, "an authentication");
  const state = c.service.auth();
  if (!state.enabled) throw new HttpError(409, "auth_disabled", "auth is not enabled on this cluster: no token is needed (synod auth enable turns it on)");
  const user = await passwordUser(c.service, state, stringField(body, "name", "an authentication"), stringField(body, "password", "an authentication"), c.auth);
  const { token, expiresAtMs } = issueToken(state, user, Date.now(), c.auth.tokenTtlMs);
  sendJson(c.response, 200, { token, expiresAt: new Date(expiresAtMs).toISOString(), ttlSeconds: c.auth.tokenTtlMs / 1000 });
}

export function serveAuthStatus(c: AuthRouteContext): void {
  const state = c.service.auth();
  sendJson(c.response, 200, { enabled: state.enabled, authRevision: state.revision });
}

export async function serveAuthEnable(c: AuthRouteContext, enable: boolean): Promise<void> {
  await c.guard.admin("turn auth on or off");
  await change(c, enable ? { kind: "enable", secret: newSecret() } : { kind: "disable" }, { enabled: enable });
}

export async function serveUsers(c: AuthRouteContext): Promise<void> {
  await c.guard.admin("list users");
  sendJson(c.response, 200, { users: [...c.service.auth().users.values()].map(userView) });
}

export async function serveUser(c: AuthRouteContext, method: string): Promise<void> {
  const name = named(c, "user");
  const self = (await c.guard.user())?.name === name;
  if (!(method === "GET" && self)) await c.guard.admin("manage users");
  if (method === "GET") {
    const user = c.service.auth().users.get(name);
    if (user === undefined) throw new HttpError(404, "user_not_found", `no user ${name}`);
    return sendJson(c.response, 200, userView(user));
  }
  if (method === "DELETE") return change(c, { kind: "user-delete", name });
  const body = await jsonBody(c.request, "a user");
  const hash = await hashPassword(password(body));
  const exists = c.service.auth().users.has(name);
  return change(c, exists ? { kind: "user-password", name, password: hash } : { kind: "user-add", name, password: hash }, { name, created: !exists });
}

export async function serveUserRole(c: AuthRouteContext, grant: boolean): Promise<void> {
  const name = named(c, "user");
  await c.guard.admin("grant roles");
  const role = stringField(await jsonBody(c.request, "a grant"), "role", "a grant");
  try {
    checkName(role, "role");
  } catch (error) {
    throw new HttpError(400, "invalid_input", (error as Error).message);
  }
  return change(c, { kind: grant ? "user-grant" : "user-revoke", name, role });
}

export async function serveRoles(c: AuthRouteContext): Promise<void> {
  await c.guard.admin("list roles");
  sendJson(c.response, 200, { roles: [rootRoleView(), ...[...c.service.auth().roles.values()].map(roleView)] });
}

export async function serveRole(c: AuthRouteContext, method: string): Promise<void> {
  const name = named(c, "role");
  await c.guard.admin("manage roles");
  if (method === "GET") {
    const role = c.service.auth().roles.get(name);
    if (role === undefined && name !== ROOT) throw new HttpError(404, "role_not_found", `no role ${name}`);
    return sendJson(c.response, 200, role === undefined ? rootRoleView() : roleView(role));
  }
  if (method === "DELETE") return change(c, { kind: "role-delete", name });
  return change(c, { kind: "role-add", name }, { name });
}

/** `{"prefix": P, "read": bool, "write": bool}` grants (or with "revoke" removes) a permission; `{"admin": bool}` sets admin. */
export async function serveRolePermission(c: AuthRouteContext, grant: boolean): Promise<void> {
  const name = named(c, "role");
  await c.guard.admin("change roles");
  const body = await jsonBody(c.request, "a permission");
  if ("admin" in body) {
    if (typeof body["admin"] !== "boolean") throw new HttpError(400, "invalid_input", '"admin" is true or false');
    return change(c, { kind: "role-admin", name, admin: grant && body["admin"] });
  }
  const prefix = stringField(body, "prefix", "a permission");
  if (!grant) return change(c, { kind: "role-revoke", name, prefix });
  const read = body["read"] ?? false;
  const write = body["write"] ?? false;
  if (typeof read !== "boolean" || typeof write !== "boolean" || (!read && !write)) throw new HttpError(400, "invalid_input", 'a permission is {"prefix": "...", "read": true, "write": true} with read, write or both true');
  return change(c, { kind: "role-grant", name, permission: { prefix, read, write } });
}

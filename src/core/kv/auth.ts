import { ByteReader, compareBytes } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { limits } from "../common/limits.js";
import { utf8Decode, utf8Encode } from "../common/utf8.js";

/**
 * Users, roles and permissions (etcd's RBAC), as replicated state: every change is a command
 * in the log (`auth` in command.ts) that every replica applies the same way, and the state
 * travels in snapshots. This module is pure: the state, its changes, their byte formats and
 * the permission checks. Password hashing and tokens, which need a clock and randomness,
 * are the runtime's (src/runtime/server/auth-tokens.ts); what they decide goes into the
 * commands as values (a hash, a secret), so applying stays deterministic.
 *
 * - A role holds permissions on key prefixes (read, write, or both) and may hold `admin`:
 *   membership, compaction, leader transfer, backups and auth itself. The role `root` is
 *   built in: admin, and read and write on every key; it cannot be changed or deleted.
 * - A user has a password (its hash) and roles. A user's `generation` changes whenever its
 *   password does (and a user deleted and added again gets a new one), so tokens issued
 *   before stop working.
 * - Auth is enabled only while a user `root` holds the role `root` (as etcd requires), so an
 *   enabled cluster always has someone who can administer it; that user cannot lose the
 *   role or be deleted while auth is on.
 */

export const ROOT = "root";

export interface Permission {
  /** Keys starting with this ("" for every key). */
  readonly prefix: string;
  readonly read: boolean;
  readonly write: boolean;
}

export interface Role {
  readonly name: string;
  readonly admin: boolean;
  /** By prefix, in UTF-8 byte order, one per prefix. */
  readonly permissions: readonly Permission[];
}

/** A memory-hard hash of a password: scrypt with N = 2^cost, r = 8, p = 1. */
export interface PasswordHash {
  readonly cost: number;
  readonly salt: Uint8Array;
  readonly hash: Uint8Array;
}

export interface User {
  readonly name: string;
  readonly password: PasswordHash;
  /** Sorted, one each. */
  readonly roles: readonly string[];
  /** The auth revision at which its password was last set: tokens name it. */
  readonly generation: number;
}

export interface AuthState {
  readonly enabled: boolean;
  /** Moves on every change applied (refused ones included: nothing else reads it). */
  readonly revision: number;
  /** The key tokens are signed with: chosen by the node that proposed the last enable; empty before. */
  readonly secret: Uint8Array;
  readonly users: ReadonlyMap<string, User>;
  readonly roles: ReadonlyMap<string, Role>;
}

export const EMPTY_AUTH: AuthState = Object.freeze({ enabled: false, revision: 0, secret: new Uint8Array(0), users: new Map(), roles: new Map() });

export const AUTH_LIMITS = Object.freeze({ usersMax: 1000, rolesMax: 1000, permissionsPerRoleMax: 100, rolesPerUserMax: 32, nameLengthMax: 64, secretBytes: 32, saltBytes: 16, hashBytes: 32, costMin: 10, costMax: 20 });

/** A change of the auth state, as a command carries it. */
export type AuthChange =
  | { readonly kind: "enable"; readonly secret: Uint8Array }
  | { readonly kind: "disable" }
  | { readonly kind: "user-add"; readonly name: string; readonly password: PasswordHash }
  | { readonly kind: "user-delete"; readonly name: string }
  | { readonly kind: "user-password"; readonly name: string; readonly password: PasswordHash }
  | { readonly kind: "user-grant"; readonly name: string; readonly role: string }
  | { readonly kind: "user-revoke"; readonly name: string; readonly role: string }
  | { readonly kind: "role-add"; readonly name: string }
  | { readonly kind: "role-delete"; readonly name: string }
  | { readonly kind: "role-grant"; readonly name: string; readonly permission: Permission }
  | { readonly kind: "role-revoke"; readonly name: string; readonly prefix: string }
  | { readonly kind: "role-admin"; readonly name: string; readonly admin: boolean };

const KINDS = ["enable", "disable", "user-add", "user-delete", "user-password", "user-grant", "user-revoke", "role-add", "role-delete", "role-grant", "role-revoke", "role-admin"] as const;

/** How an auth change applied: "ok", or why it changed nothing. */
export const AUTH_OUTCOMES = ["ok", "user-exists", "user-not-found", "role-exists", "role-not-found", "root-required", "root-protected", "limit", "not-granted"] as const;
export type AuthOutcome = (typeof AUTH_OUTCOMES)[number];

/** Whether `name` may name a user or a role: 1 to 64 of A-Z a-z 0-9 _ . @ -. */
export function checkName(name: unknown, what: "user" | "role"): string {
  if (typeof name !== "string" || name.length < 1 || name.length > AUTH_LIMITS.nameLengthMax || !/^[A-Za-z0-9_.@-]+$/.test(name)) {
    throw new InvalidInputError(`a ${what} name is 1 to ${AUTH_LIMITS.nameLengthMax} of A-Z a-z 0-9 _ . @ -`);
  }
  return name;
}

function checkPrefix(prefix: string): string {
  if (utf8Encode(prefix).length > limits.keyBytesMax) throw new InvalidInputError(`a permission's prefix is at most ${limits.keyBytesMax} bytes`);
  return prefix;
}

function checkHash(password: PasswordHash): PasswordHash {
  if (!Number.isInteger(password.cost) || password.cost < AUTH_LIMITS.costMin || password.cost > AUTH_LIMITS.costMax) throw new InvalidInputError(`a password hash's cost is ${AUTH_LIMITS.costMin} to ${AUTH_LIMITS.costMax}`);
  if (password.salt.length !== AUTH_LIMITS.saltBytes || password.hash.length !== AUTH_LIMITS.hashBytes) throw new InvalidInputError("a password hash has a bad salt or hash length");
  return password;
}

/** A writer that grows: auth changes and states are small and rare, so measuring first is not worth it. */
class PartsWriter {
  private readonly parts: Uint8Array[] = [];

  u8(value: number): void {
    this.parts.push(Uint8Array.of(value));
  }

  u32(value: number): void {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, value);
    this.parts.push(out);
  }

  f64(value: number): void {
    const out = new Uint8Array(8);
    new DataView(out.buffer).setFloat64(0, value);
    this.parts.push(out);
  }

  raw(bytes: Uint8Array): void {
    this.parts.push(bytes);
  }

  bytes(bytes: Uint8Array): void {
    this.u32(bytes.length);
    this.raw(bytes);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.parts.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

// ---- the change's byte format: u8 kind | fields, strings as u32 length | UTF-8 ----

export function encodeAuthChange(change: AuthChange): Uint8Array {
  const writer = new PartsWriter();
  writer.u8(KINDS.indexOf(change.kind));
  switch (change.kind) {
    case "enable":
      if (change.secret.length !== AUTH_LIMITS.secretBytes) throw new InvalidInputError(`an enable carries a ${AUTH_LIMITS.secretBytes}-byte secret`);
      writer.raw(change.secret);
      break;
    case "disable":
      break;
    case "user-add":
    case "user-password":
      writer.bytes(utf8Encode(checkName(change.name, "user")));
      writeHash(writer, checkHash(change.password));
      break;
    case "user-delete":
      writer.bytes(utf8Encode(checkName(change.name, "user")));
      break;
    case "user-grant":
    case "user-revoke":
      writer.bytes(utf8Encode(checkName(change.name, "user")));
      writer.bytes(utf8Encode(checkName(change.role, "role")));
      break;
    case "role-add":
    case "role-delete":
      writer.bytes(utf8Encode(checkName(change.name, "role")));
      break;
    case "role-grant":
      writer.bytes(utf8Encode(checkName(change.name, "role")));
      writer.bytes(utf8Encode(checkPrefix(change.permission.prefix)));
      if (!change.permission.read && !change.permission.write) throw new InvalidInputError("a permission grants read, write, or both");
      writer.u8((change.permission.read ? 1 : 0) | (change.permission.write ? 2 : 0));
      break;
    case "role-revoke":
      writer.bytes(utf8Encode(checkName(change.name, "role")));
      writer.bytes(utf8Encode(checkPrefix(change.prefix)));
      break;
    case "role-admin":
      writer.bytes(utf8Encode(checkName(change.name, "role")));
      writer.u8(change.admin ? 1 : 0);
      break;
  }
  return writer.finish();
}

/** Reads what `encodeAuthChange` wrote; anything else is an InvalidInputError. */
export function decodeAuthChange(reader: ByteReader): AuthChange {
  const kind = KINDS[reader.u8()];
  const name = (what: "user" | "role"): string => checkName(readString(reader), what);
  switch (kind) {
    case "enable":
      return { kind, secret: reader.raw(AUTH_LIMITS.secretBytes).slice() };
    case "disable":
      return { kind };
    case "user-add":
    case "user-password":
      return { kind, name: name("user"), password: readHash(reader) };
    case "user-delete":
      return { kind, name: name("user") };
    case "user-grant":
    case "user-revoke":
      return { kind, name: name("user"), role: name("role") };
    case "role-add":
    case "role-delete":
      return { kind, name: name("role") };
    case "role-grant": {
      const role = name("role");
      const prefix = checkPrefix(readString(reader));
      const bits = reader.u8();
      if (bits < 1 || bits > 3) throw new InvalidInputError("a permission grants read, write, or both");
      return { kind, name: role, permission: { prefix, read: (bits & 1) !== 0, write: (bits & 2) !== 0 } };
    }
    case "role-revoke":
      return { kind, name: name("role"), prefix: checkPrefix(readString(reader)) };
    case "role-admin": {
      const role = name("role");
      const flag = reader.u8();
      if (flag > 1) throw new InvalidInputError("a role's admin flag is 0 or 1");
      return { kind, name: role, admin: flag === 1 };
    }
    default:
      throw new InvalidInputError("unknown auth change");
  }
}

function readString(reader: ByteReader): string {
  const bytes = reader.bytes(limits.keyBytesMax);
  const text = utf8Decode(bytes);
  if (compareBytes(utf8Encode(text), bytes) !== 0) throw new InvalidInputError("a name or prefix is not valid UTF-8");
  return text;
}

function writeHash(writer: PartsWriter, password: PasswordHash): void {
  writer.u8(password.cost);
  writer.raw(password.salt);
  writer.raw(password.hash);
}

function readHash(reader: ByteReader): PasswordHash {
  const cost = reader.u8();
  return checkHash({ cost, salt: reader.raw(AUTH_LIMITS.saltBytes).slice(), hash: reader.raw(AUTH_LIMITS.hashBytes).slice() });
}

// ---- applying a change ----

/** The state after `change`, and how it went; a refused change leaves the state as it was but its revision. */
export function applyAuthChange(state: AuthState, change: AuthChange): { readonly state: AuthState; readonly outcome: AuthOutcome } {
  const revision = state.revision + 1;
  const refused = (outcome: AuthOutcome): { state: AuthState; outcome: AuthOutcome } => ({ state: { ...state, revision }, outcome });
  const users = new Map(state.users);
  const roles = new Map(state.roles);
  const done = (next: Partial<AuthState> = {}): { state: AuthState; outcome: AuthOutcome } => ({ state: { ...state, users, roles, ...next, revision }, outcome: "ok" });
  const roleExists = (name: string): boolean => name === ROOT || roles.has(name);
  switch (change.kind) {
    case "enable": {
      if (!(users.get(ROOT)?.roles.includes(ROOT) ?? false)) return refused("root-required");
      return done({ enabled: true, secret: change.secret });
    }
    case "disable":
      return done({ enabled: false });
    case "user-add":
      if (users.has(change.name)) return refused("user-exists");
      if (users.size >= AUTH_LIMITS.usersMax) return refused("limit");
      users.set(change.name, { name: change.name, password: change.password, roles: [], generation: revision });
      return done();
    case "user-delete":
      if (!users.has(change.name)) return refused("user-not-found");
      if (state.enabled && change.name === ROOT) return refused("root-protected");
      users.delete(change.name);
      return done();
    case "user-password": {
      const user = users.get(change.name);
      if (user === undefined) return refused("user-not-found");
      users.set(change.name, { ...user, password: change.password, generation: revision });
      return done();
    }
    case "user-grant": {
      const user = users.get(change.name);
      if (user === undefined) return refused("user-not-found");
      if (!roleExists(change.role)) return refused("role-not-found");
      if (user.roles.includes(change.role)) return done();
      if (user.roles.length >= AUTH_LIMITS.rolesPerUserMax) return refused("limit");
      users.set(change.name, { ...user, roles: [...user.roles, change.role].sort() });
      return done();
    }
    case "user-revoke": {
      const user = users.get(change.name);
      if (user === undefined) return refused("user-not-found");
      if (!user.roles.includes(change.role)) return refused("not-granted");
      if (state.enabled && change.name === ROOT && change.role === ROOT) return refused("root-protected");
      users.set(change.name, { ...user, roles: user.roles.filter((role) => role !== change.role) });
      return done();
    }
    case "role-add":
      if (roleExists(change.name)) return refused("role-exists");
      if (roles.size >= AUTH_LIMITS.rolesMax) return refused("limit");
      roles.set(change.name, { name: change.name, admin: false, permissions: [] });
      return done();
    case "role-delete":
      if (change.name === ROOT) return refused("root-protected");
      if (!roles.has(change.name)) return refused("role-not-found");
      roles.delete(change.name);
      for (const [name, user] of users) if (user.roles.includes(change.name)) users.set(name, { ...user, roles: user.roles.filter((role) => role !== change.name) });
      return done();
    case "role-grant":
    case "role-revoke":
    case "role-admin": {
      if (change.name === ROOT) return refused("root-protected");
      const role = roles.get(change.name);
      if (role === undefined) return refused("role-not-found");
      if (change.kind === "role-admin") {
        roles.set(change.name, { ...role, admin: change.admin });
        return done();
      }
      const prefix = change.kind === "role-grant" ? change.permission.prefix : change.prefix;
      const others = role.permissions.filter((permission) => permission.prefix !== prefix);
      if (change.kind === "role-revoke") {
        if (others.length === role.permissions.length) return refused("not-granted");
        roles.set(change.name, { ...role, permissions: others });
        return done();
      }
      if (others.length >= AUTH_LIMITS.permissionsPerRoleMax) return refused("limit");
      const permissions = [...others, change.permission].sort((a, b) => compareBytes(utf8Encode(a.prefix), utf8Encode(b.prefix)));
      roles.set(change.name, { ...role, permissions });
      return done();
    }
  }
}

/** What an outcome means, for an error message. */
export function describeAuthOutcome(outcome: AuthOutcome, change: AuthChange): string {
  const name = "name" in change ? change.name : "";
  switch (outcome) {
    case "ok":
      return "done";
    case "user-exists":
      return `user ${name} exists already`;
    case "user-not-found":
      return `no user ${name}`;
    case "role-exists":
      return `role ${name} exists already`;
    case "role-not-found":
      return `no role ${change.kind === "user-grant" ? change.role : name}`;
    case "root-required":
      return "auth can be enabled only once a user root exists and holds the role root: synod user add root, then synod user grant root root";
    case "root-protected":
      return "the role root cannot be changed or deleted, nor the user root lose it or be deleted while auth is enabled";
    case "limit":
      return `over a limit of the auth state (${AUTH_LIMITS.usersMax} users, ${AUTH_LIMITS.rolesMax} roles, ${AUTH_LIMITS.permissionsPerRoleMax} permissions per role, ${AUTH_LIMITS.rolesPerUserMax} roles per user)`;
    case "not-granted":
      return change.kind === "user-revoke" ? `user ${name} does not hold role ${change.role}` : `role ${name} holds no permission on that prefix`;
  }
}

// ---- the state's byte format (in snapshots and in the LMDB backend) ----
//   u8 enabled | f64 revision | u32 secretLength | secret
//   | u32 userCount | (string name | hash | f64 generation | u32 roleCount | string role...)...
//   | u32 roleCount | (string name | u8 admin | u32 permissionCount | (string prefix | u8 bits)...)...
// users and roles by name (UTF-8 byte order), so equal states give equal bytes.

export function encodeAuthState(state: AuthState): Uint8Array {
  const writer = new PartsWriter();
  writer.u8(state.enabled ? 1 : 0);
  writer.f64(state.revision);
  writer.bytes(state.secret);
  const users = [...state.users.values()].sort((a, b) => compareBytes(utf8Encode(a.name), utf8Encode(b.name)));
  writer.u32(users.length);
  for (const user of users) {
    writer.bytes(utf8Encode(user.name));
    writeHash(writer, user.password);
    writer.f64(user.generation);
    writer.u32(user.roles.length);
    for (const role of user.roles) writer.bytes(utf8Encode(role));
  }
  const roles = [...state.roles.values()].sort((a, b) => compareBytes(utf8Encode(a.name), utf8Encode(b.name)));
  writer.u32(roles.length);
  for (const role of roles) {
    writer.bytes(utf8Encode(role.name));
    writer.u8(role.admin ? 1 : 0);
    writer.u32(role.permissions.length);
    for (const permission of role.permissions) {
      writer.bytes(utf8Encode(permission.prefix));
      writer.u8((permission.read ? 1 : 0) | (permission.write ? 2 : 0));
    }
  }
  return writer.finish();
}

/** Reads what `encodeAuthState` wrote, validating it as a snapshot from a peer must be. */
export function decodeAuthState(reader: ByteReader): AuthState {
  const enabledFlag = reader.u8();
  if (enabledFlag > 1) throw new InvalidInputError("the auth state's enabled flag is 0 or 1");
  const revision = reader.safeInteger();
  const secret = reader.bytes(AUTH_LIMITS.secretBytes).slice();
  if (secret.length !== 0 && secret.length !== AUTH_LIMITS.secretBytes) throw new InvalidInputError("the auth state's secret has a bad length");
  const userCount = reader.u32();
  if (userCount > AUTH_LIMITS.usersMax) throw new InvalidInputError("the auth state holds too many users");
  const users = new Map<string, User>();
  let previous = "";
  for (let i = 0; i < userCount; i++) {
    const name = checkName(readString(reader), "user");
    if (i > 0 && compareBytes(utf8Encode(previous), utf8Encode(name)) >= 0) throw new InvalidInputError("the auth state's users are out of order or repeated");
    previous = name;
    const password = readHash(reader);
    const generation = reader.safeInteger();
    const roleCount = reader.u32();
    if (roleCount > AUTH_LIMITS.rolesPerUserMax) throw new InvalidInputError("a user of the auth state holds too many roles");
    const roles: string[] = [];
    for (let j = 0; j < roleCount; j++) roles.push(checkName(readString(reader), "role"));
    if (roles.some((role, j) => j > 0 && (roles[j - 1] as string) >= role)) throw new InvalidInputError("a user's roles are out of order or repeated");
    users.set(name, { name, password, roles, generation });
  }
  const roleCount = reader.u32();
  if (roleCount > AUTH_LIMITS.rolesMax) throw new InvalidInputError("the auth state holds too many roles");
  const roles = new Map<string, Role>();
  for (let i = 0; i < roleCount; i++) {
    const name = checkName(readString(reader), "role");
    if (name === ROOT || roles.has(name) || (i > 0 && compareBytes(utf8Encode(previous), utf8Encode(name)) >= 0)) throw new InvalidInputError("the auth state's roles are out of order, repeated, or root");
    previous = name;
    const adminFlag = reader.u8();
    if (adminFlag > 1) throw new InvalidInputError("a role's admin flag is 0 or 1");
    const count = reader.u32();
    if (count > AUTH_LIMITS.permissionsPerRoleMax) throw new InvalidInputError("a role of the auth state holds too many permissions");
    const permissions: Permission[] = [];
    for (let j = 0; j < count; j++) {
      const prefix = checkPrefix(readString(reader));
      const bits = reader.u8();
      if (bits < 1 || bits > 3) throw new InvalidInputError("a permission grants read, write, or both");
      if (j > 0 && compareBytes(utf8Encode((permissions[j - 1] as Permission).prefix), utf8Encode(prefix)) >= 0) throw new InvalidInputError("a role's permissions are out of order or repeated");
      permissions.push({ prefix, read: (bits & 1) !== 0, write: (bits & 2) !== 0 });
    }
    roles.set(name, { name, admin: adminFlag === 1, permissions });
  }
  return { enabled: enabledFlag === 1, revision, secret, users, roles };
}

// ---- permission checks ----

export type Access = "read" | "write";

/** The roles `user` holds, the built-in root included. */
function rolesOf(state: AuthState, user: User): Role[] {
  return user.roles.flatMap((name) => (name === ROOT ? [ROOT_ROLE] : (state.roles.get(name) ?? [])));
}

const ROOT_ROLE: Role = Object.freeze({ name: ROOT, admin: true, permissions: [{ prefix: "", read: true, write: true }] });

/**
 * Whether `user` may `access` every key starting with `prefix` (a single key is the range of
 * the keys starting with it, so a permission on a key's prefix covers the key): some role of
 * its grants that access on a prefix of `prefix`. Key prefixes compare as UTF-8 bytes, which
 * for well-formed strings is the same as comparing code units' starts.
 */
export function mayAccess(state: AuthState, user: User, access: Access, prefix: string): boolean {
  for (const role of rolesOf(state, user)) {
    for (const permission of role.permissions) {
      if ((access === "read" ? permission.read : permission.write) && prefix.startsWith(permission.prefix)) return true;
    }
  }
  return false;
}

export function isAdmin(state: AuthState, user: User): boolean {
  return rolesOf(state, user).some((role) => role.admin);
}

/** A user as the API shows it: no hash. */
export function userView(user: User): object {
  return { name: user.name, roles: user.roles };
}

export function roleView(role: Role): object {
  return { name: role.name, admin: role.admin, permissions: role.permissions.map((p) => ({ prefix: p.prefix, read: p.read, write: p.write })) };
}

export function rootRoleView(): object {
  return roleView(ROOT_ROLE);
}

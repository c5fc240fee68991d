/**
 * Passwords and tokens for the auth state of src/core/kv/auth.ts: what needs randomness, a
 * clock and CPU, and so stays out of the replicated state machine.
 *
 * - Passwords are hashed with scrypt (memory-hard: N = 2^15, r = 8, p = 1, 32 MiB and about
 *   a tenth of a second per hash), with a random salt, on the node that takes the request;
 *   the hash goes into the log, never the password.
 * - A token is `sy1.<payload>.<signature>`: the payload names the user, its generation and
 *   an expiry; the signature is an HMAC-SHA256 under the cluster's secret (chosen when auth
 *   was enabled, replicated). Any node verifies a token without asking another. A token
 *   stops working when it expires, when its user's password changes or the user is
 *   deleted (the generation moves), and when auth is enabled again (a new secret).
 */
import { createHash, createHmac, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { OverloadedError } from "../../core/common/errors.js";
import { AUTH_LIMITS, type AuthState, type PasswordHash, type User } from "../../core/kv/auth.js";

const COST = 15;
const R = 8;
const MAXMEM = 128 * R * 2 ** AUTH_LIMITS.costMax + 1024 * 1024;
/** Password checks waiting for a thread: more are refused (503) rather than queued without bound. */
const CHECKS_IN_FLIGHT_MAX = 16;
let checksInFlight = 0;

function derive(password: string, salt: Uint8Array, cost: number): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, AUTH_LIMITS.hashBytes, { N: 2 ** cost, r: R, p: 1, maxmem: MAXMEM }, (error, key) => (error === null ? resolve(key) : reject(error))));
}

export async function hashPassword(password: string): Promise<PasswordHash> {
  const salt = randomBytes(AUTH_LIMITS.saltBytes);
  return { cost: COST, salt, hash: await derive(password, salt, COST) };
}

/** Whether `password` is the one `stored` was made from; refuses (OverloadedError) beyond CHECKS_IN_FLIGHT_MAX at once. */
export async function checkPassword(password: string, stored: PasswordHash): Promise<boolean> {
  if (checksInFlight >= CHECKS_IN_FLIGHT_MAX) throw new OverloadedError(`${CHECKS_IN_FLIGHT_MAX} password checks are under way on this node; retry, or authenticate once and use the token`);
  checksInFlight++;
  try {
    const hash = await derive(password, stored.salt, stored.cost);
    return timingSafeEqual(hash, stored.hash);
  } finally {
    checksInFlight--;
  }
}

export function newSecret(): Uint8Array {
  return randomBytes(AUTH_LIMITS.secretBytes);
}

const TOKEN_PREFIX = "sy1.";

function sign(secret: Uint8Array, payload: string): string {
  return createHmac("sha256", secret).update(TOKEN_PREFIX + payload).digest("base64url");
}

export function issueToken(state: AuthState, user: User, nowMs: number, ttlMs: number): { readonly token: string; readonly expiresAtMs: number } {
  const expiresAtMs = nowMs + ttlMs;
  const payload = Buffer.from(JSON.stringify({ u: user.name, g: user.generation, e: expiresAtMs })).toString("base64url");
  return { token: `${TOKEN_PREFIX}${payload}.${sign(state.secret, payload)}`, expiresAtMs };
}

/** The user a token names, if it is valid now under `state`; otherwise why not. */
export function verifyToken(state: AuthState, token: string, nowMs: number): User | string {
  if (!token.startsWith(TOKEN_PREFIX) || state.secret.length === 0) return "not a synod token";
  const [payload, signature, extra] = token.slice(TOKEN_PREFIX.length).split(".");
  if (payload === undefined || signature === undefined || extra !== undefined) return "not a synod token";
  const expected = Buffer.from(sign(state.secret, payload));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return "the token's signature does not match this cluster's (auth was enabled again since, or it is not from this cluster)";
  let claims: { u?: unknown; g?: unknown; e?: unknown };
  try {
    claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as typeof claims;
  } catch {
    return "not a synod token";
  }
  if (typeof claims.e !== "number" || claims.e <= nowMs) return "the token expired: authenticate again";
  const user = typeof claims.u === "string" ? state.users.get(claims.u) : undefined;
  if (user === undefined || user.generation !== claims.g) return "the token's user was deleted or changed its password: authenticate again";
  return user;
}

/**
 * Recently checked name and password pairs (HTTP Basic), so a client sending its password on
 * every request costs one scrypt per token lifetime, not one per request. Keyed by a hash of
 * the pair; an entry holds for its user's generation only.
 */
export class PasswordCache {
  private readonly entries = new Map<string, { readonly generation: number; readonly untilMs: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly size = 10_000,
  ) {}

  private key(name: string, password: string): string {
    return createHash("sha256").update(name).update("\0").update(password).digest("base64");
  }

  has(user: User, password: string, nowMs: number): boolean {
    const entry = this.entries.get(this.key(user.name, password));
    return entry !== undefined && entry.generation === user.generation && entry.untilMs > nowMs;
  }

  add(user: User, password: string, nowMs: number): void {
    if (this.entries.size >= this.size) this.entries.clear();
    this.entries.set(this.key(user.name, password), { generation: user.generation, untilMs: nowMs + this.ttlMs });
  }
}

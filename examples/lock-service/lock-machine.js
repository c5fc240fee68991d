// @ts-check
/**
 * The lock service's state machine: named locks, each held by at most one owner, with a
 * fencing token per grant. It is what every member of the cluster applies, in log order,
 * so it is deterministic: no clock, no randomness, no I/O — everything it needs is in the
 * commands.
 *
 * Commands are JSON (bytes on the wire):
 *   { "op": "acquire", "lock": "orders", "owner": "worker-7" }
 *       -> { "ok": true, "token": 12 }            granted; 12 is the fencing token
 *       -> { "ok": false, "holder": "worker-3" }  held by someone else (or by the caller)
 *   { "op": "release", "lock": "orders", "owner": "worker-7", "token": 12 }
 *       -> { "ok": true } | { "ok": false }       only the holder, with its token, releases
 *
 * Fencing tokens: each grant of a lock gets the next number of that lock's counter, which
 * never goes back (a release keeps it). A holder passes its token to whatever it guards
 * (a database, a file store), which refuses a token lower than the highest it has seen: a
 * holder that paused, lost its lock and woke up cannot do harm with its old token.
 */

/**
 * @typedef {{ op: "acquire", lock: string, owner: string }
 *   | { op: "release", lock: string, owner: string, token: number }} LockCommand
 * @typedef {{ ok: true, token: number } | { ok: false, holder: string } | { ok: true } | { ok: false }} LockResult
 * @typedef {{ owner: string, token: number }} Holder
 * @typedef {import("synod").ReplicatedStateMachine<LockResult>} LockStateMachine
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** @param {LockCommand} command */
export function encodeCommand(command) {
  return encoder.encode(JSON.stringify(command));
}

/**
 * Decodes a command; null for bytes that are not one (applied as a no-op, the same way on
 * every member, so a bad command can never make the members disagree).
 * @param {Uint8Array} data
 * @returns {LockCommand | null}
 */
export function decodeCommand(data) {
  let value;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const { op, lock, owner, token } = value;
  if (typeof lock !== "string" || typeof owner !== "string") return null;
  if (op === "acquire") return { op, lock, owner };
  if (op === "release" && Number.isSafeInteger(token)) return { op, lock, owner, token };
  return null;
}

/** @implements {LockStateMachine} */
export class LockMachine {
  constructor() {
    /** @type {Map<string, Holder>} who holds each held lock */
    this.holders = new Map();
    /** @type {Map<string, number>} the last token granted, per lock ever granted */
    this.tokens = new Map();
  }

  /**
   * @param {readonly import("synod").Command[]} commands
   * @returns {LockResult[]}
   */
  apply(commands) {
    return commands.map(({ data }) => {
      const command = decodeCommand(data);
      if (command === null) return { ok: false };
      return command.op === "acquire" ? this.acquire(command.lock, command.owner) : this.release(command.lock, command.owner, command.token);
    });
  }

  /**
   * @param {string} lock
   * @param {string} owner
   * @returns {LockResult}
   */
  acquire(lock, owner) {
    const holder = this.holders.get(lock);
    if (holder !== undefined) return { ok: false, holder: holder.owner };
    const token = (this.tokens.get(lock) ?? 0) + 1;
    this.tokens.set(lock, token);
    this.holders.set(lock, { owner, token });
    return { ok: true, token };
  }

  /**
   * @param {string} lock
   * @param {string} owner
   * @param {number} token
   * @returns {LockResult}
   */
  release(lock, owner, token) {
    const holder = this.holders.get(lock);
    if (holder === undefined || holder.owner !== owner || holder.token !== token) return { ok: false };
    this.holders.delete(lock);
    return { ok: true };
  }

  /**
   * Who holds `lock`, as this member's state says (read it after `node.read()`).
   * @param {string} lock
   * @returns {Holder | null}
   */
  holder(lock) {
    return this.holders.get(lock) ?? null;
  }

  snapshot() {
    return encoder.encode(JSON.stringify({ holders: [...this.holders], tokens: [...this.tokens] }));
  }

  /** @param {Uint8Array} snapshot */
  restore(snapshot) {
    const { holders, tokens } = JSON.parse(decoder.decode(snapshot));
    this.holders = new Map(holders);
    this.tokens = new Map(tokens);
  }
}

/**
 * A deliberately broken lock service, for the simulator to catch: its snapshot keeps the
 * token counters but forgets who holds each lock. A member rebuilt from a snapshot (after a
 * restart, or when it installs the leader's) then grants a lock someone still holds — two
 * holders at once. Nothing shows while no member restores, which is why it needs crashes
 * and snapshots to be found.
 */
export class ForgetfulLockMachine extends LockMachine {
  /**
   * @override
   * @param {Uint8Array} snapshot
   */
  restore(snapshot) {
    super.restore(snapshot);
    this.holders = new Map();
  }
}

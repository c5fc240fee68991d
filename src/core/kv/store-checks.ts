/**
 * The checks a client's write passes in the KV state machine's apply (store.ts) before it
 * runs: its session's (`checkSession`: a retry of a write the session already made answers
 * as it did; a session the store does not hold expired), and the locks of transactions
 * across ranges (`refuseLocked`: a write to a key a transaction holds is refused).
 *
 * These are functions of what they need (the backend, the sessions, the intents and the
 * store's clock); the store calls them from its apply, in that order, around its span check.
 */
import type { KvBackend } from "./backend.js";
import type { KvCommand, RequestId } from "./command.js";
import type { KvIntents } from "./intents.js";
import { NO_SESSION, SELF_ASSIGNED_SESSIONS_FROM, type KvResult, type KvSession } from "./model.js";
import type { KvSessions } from "./sessions.js";
import { lockedBy } from "./store-txns.js";

/** A write's session as the apply finds it, and the answer it gets instead of running, if any. */
export interface SessionCheck {
  /** The client's session (undefined: none yet, or the write is in no session). */
  readonly session: KvSession | undefined;
  /** The write's answer without running it (an expired session, a retry), or null: it runs. */
  readonly answer: { readonly result: KvResult; readonly duplicate: boolean } | null;
}

/**
 * A retry of a write this session already made answers as it did, even once a split
 * moved its key away or a transaction holds it: it must not be applied a second time.
 */
export function checkSession(backend: KvBackend, request: RequestId): SessionCheck {
  const { clientId, sequence } = request;
  let session: KvSession | undefined;
  if (clientId !== NO_SESSION) {
    session = backend.getSession(clientId);
    if (session === undefined && clientId < SELF_ASSIGNED_SESSIONS_FROM) return { session, answer: { result: { op: "session-expired", clientId }, duplicate: false } };
    if (session !== undefined && sequence <= session.sequence) {
      const result: KvResult = sequence === session.sequence ? session.result : { op: "superseded", clientId, sequence, latestSequence: session.sequence };
      return { session, answer: { result, duplicate: true } };
    }
  }
  return { session, answer: null };
}

/**
 * The refusal of a write (`command`, in `session`) to a key a transaction across ranges holds
 * locked (store-txns.ts), or undefined: no lock stands in its way. A refusal kept in the
 * session is stamped with the store's clock, `clockMs`.
 */
export function refuseLocked(intents: KvIntents, sessions: KvSessions, clockMs: number, command: KvCommand & { readonly request: RequestId }, session: KvSession | undefined): KvResult | undefined {
  const locked = intents.inFlight === 0 ? undefined : lockedBy(intents, command);
  if (locked === undefined) return undefined;
  const { clientId, sequence } = command.request;
  const result: KvResult = { op: "txn-locked", key: locked.key, txn: locked.txn };
  // A client's session leaves the refusal out, so the client's retry of the same sequence
  // goes ahead once the key is free. A node's own session (and a simulated client's) never
  // sends a sequence again: its refusal is kept, so a late copy of the same proposal (a
  // duplicated forward, a re-proposal) is a duplicate, not a write its proposer was told
  // did not happen. (Kept as a refusal: the session keeps results of a few kinds.)
  if (clientId >= SELF_ASSIGNED_SESSIONS_FROM) sessions.record(session, { clientId, sequence, result: { op: "rejected", reason: `key ${JSON.stringify(locked.key)} was held by transaction ${locked.txn}` }, lastActiveMs: clockMs });
  return result;
}

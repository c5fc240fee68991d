/**
 * A session's value as the store keeps it: its last sequence and the result the client is
 * answered again with when it retries (exactly-once, src/core/kv/store.ts). One encoding,
 * used by snapshots (snapshot.ts, the sessions section) and by the LMDB backend's sessions
 * database alike; reading refuses any bytes a writer could not have written, so the encoding
 * is canonical.
 */
import { assert } from "../common/assert.js";
import type { ByteReader, ByteWriter } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { limits } from "../common/limits.js";
import { AUTH_OUTCOMES } from "./auth.js";
import type { KvResult, KvSession, TxnOperationResult } from "./model.js";

/** How many bytes `writeSessionValue` writes. */
export function sessionValueBytes(session: KvSession): number {
  return 8 + sessionResultBytes(session.result) + 8;
}

/** A session without its client id (the LMDB backend's value, and a snapshot's session after the id): f64 sequence | result | f64 lastActiveMs. */
export function writeSessionValue(writer: ByteWriter, session: KvSession): void {
  writer.f64(session.sequence);
  writeSessionResult(writer, session.result);
  writer.f64(session.lastActiveMs ?? 0);
}

/** Reads what `writeSessionValue` wrote; `withTime` false reads the older form without `lastActiveMs`. */
export function readSessionValue(reader: ByteReader, clientId: number, withTime: boolean): KvSession {
  const sequence = reader.safeInteger();
  const result = readSessionResult(reader);
  return withTime ? { clientId, sequence, result, lastActiveMs: reader.safeInteger() } : { clientId, sequence, result };
}

const RESULT_KINDS = ["put", "delete", "cas", "noop", "rejected", "txn", "delete-prefix", "compact", "lease-grant", "lease-keepalive", "lease-revoke", "lease-not-found", "auth"] as const;
/** Result kinds without a revision. */
const REVISIONLESS: ReadonlySet<string> = new Set(["noop", "rejected", "lease-grant", "lease-keepalive", "lease-not-found", "auth"]);
/** A transaction operation's result in one byte; a get's record is not kept (see "get-forgotten"). */
const TXN_RESULT_CODES = { put: 0, deleted0: 1, deleted1: 2, get: 3 } as const;

export function sessionResultBytes(result: KvResult): number {
  return 10 + (result.op === "txn" ? 4 + result.results.length : result.op === "delete-prefix" || result.op === "compact" || result.op === "lease-not-found" || result.op === "auth" ? 8 : result.op.startsWith("lease-") ? 16 : 0);
}

export function writeSessionResult(writer: ByteWriter, result: KvResult): void {
  const kind = RESULT_KINDS.indexOf(result.op as (typeof RESULT_KINDS)[number]);
  assert(kind >= 0, `a ${result.op} result is never kept in a session`);
  writer.u8(kind);
  const flag =
    result.op === "delete" ? result.deleted : result.op === "cas" || result.op === "txn" ? (result.succeeded ? 1 : 0) : result.op === "compact" ? (result.compacted ? 1 : 0) : result.op === "auth" ? AUTH_OUTCOMES.indexOf(result.outcome) : 0;
  writer.u8(flag);
  writer.f64("revision" in result ? result.revision : 0);
  if (result.op === "delete-prefix") writer.f64(result.deleted);
  if (result.op === "compact") writer.f64(result.compactRevision);
  if (result.op === "lease-grant" || result.op === "lease-keepalive") {
    writer.f64(result.id);
    writer.f64(result.ttlMs);
  }
  if (result.op === "lease-revoke") {
    writer.f64(result.id);
    writer.f64(result.deleted);
  }
  if (result.op === "lease-not-found") writer.f64(result.id);
  if (result.op === "auth") writer.f64(result.authRevision);
  if (result.op !== "txn") return;
  writer.u32(result.results.length);
  for (const operation of result.results) {
    if (operation.op === "put") writer.u8(TXN_RESULT_CODES.put);
    else if (operation.op === "delete") writer.u8(operation.deleted === 1 ? TXN_RESULT_CODES.deleted1 : TXN_RESULT_CODES.deleted0);
    else writer.u8(TXN_RESULT_CODES.get);
  }
}

/** Reads what `writeSessionResult` wrote, refusing any other bytes (so encoding is canonical). */
export function readSessionResult(reader: ByteReader): KvResult {
  const kind = RESULT_KINDS[reader.u8()];
  const flag = reader.u8();
  const revision = reader.safeInteger();
  if (kind === "auth") {
    const outcome = AUTH_OUTCOMES[flag];
    if (outcome === undefined || revision !== 0) throw new InvalidInputError("KV session result has a bad auth outcome");
    return { op: "auth", outcome, authRevision: reader.safeInteger() };
  }
  if (flag > 1 || (flag === 1 && (kind === "put" || kind === "noop" || kind === "rejected"))) throw new InvalidInputError("KV session result has a bad flag");
  if (revision !== 0 && kind !== undefined && REVISIONLESS.has(kind)) throw new InvalidInputError("KV session result has a revision it cannot have");
  if (flag !== 0 && kind !== undefined && kind.startsWith("lease-")) throw new InvalidInputError("KV session result has a bad flag");
  switch (kind) {
    case "put":
      return { op: "put", revision };
    case "delete":
      return { op: "delete", deleted: flag as 0 | 1, revision };
    case "cas":
      return { op: "cas", succeeded: flag === 1, revision };
    case "noop":
      return { op: "noop" };
    case "rejected":
      return { op: "rejected", reason: "superseded by a newer request from the same client" };
    case "txn":
      return { op: "txn", succeeded: flag === 1, revision, results: readTxnResults(reader, revision) };
    case "delete-prefix":
      if (flag !== 0) throw new InvalidInputError("KV session result has a bad flag");
      return { op: "delete-prefix", deleted: reader.safeInteger(), revision };
    case "compact": {
      const compactRevision = reader.safeInteger();
      if (compactRevision > revision) throw new InvalidInputError("KV session result has a compaction point past its revision");
      return { op: "compact", compacted: flag === 1, compactRevision, revision };
    }
    case "lease-grant":
    case "lease-keepalive":
      return { op: kind, id: reader.safeInteger(), ttlMs: reader.safeInteger() };
    case "lease-revoke":
      return { op: kind, id: reader.safeInteger(), deleted: reader.safeInteger(), revision };
    case "lease-not-found":
      return { op: kind, id: reader.safeInteger() };
    default:
      throw new InvalidInputError("KV session result has an unknown kind");
  }
}

function readTxnResults(reader: ByteReader, revision: number): TxnOperationResult[] {
  const count = reader.u32();
  if (count > limits.txnOpsPerBranchMax) throw new InvalidInputError("KV session result has too many transaction results");
  const results: TxnOperationResult[] = [];
  for (let i = 0; i < count; i++) {
    const code = reader.u8();
    if (code === TXN_RESULT_CODES.put) results.push({ op: "put", revision });
    else if (code === TXN_RESULT_CODES.deleted0 || code === TXN_RESULT_CODES.deleted1) results.push({ op: "delete", deleted: code === TXN_RESULT_CODES.deleted1 ? 1 : 0 });
    else if (code === TXN_RESULT_CODES.get) results.push({ op: "get-forgotten" });
    else throw new InvalidInputError("KV session result has an unknown transaction result");
  }
  return results;
}

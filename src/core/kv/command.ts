import { assert } from "../common/assert.js";
import { ByteReader, ByteWriter } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { limits } from "../common/limits.js";
import { toWellFormed, utf8Decode, utf8Encode } from "../common/utf8.js";
import { GROUP_ID_MAX, isGroupId } from "../multi/group.js";
import { decodeAuthChange, encodeAuthChange, type AuthChange } from "./auth.js";
import { LEASE_LIMITS } from "./model.js";

/**
 * The KV state machine's commands and their byte format: the format written into the log,
 * so it is versioned and decoded defensively (a bad command is refused, never applied).
 *
 *   u8 version (2) | u8 op | f64 clientId | f64 sequence | f64 timeMs | u32 keyLength | key bytes | op body
 *   put:             u32 valueLength | value
 *   delete:          (nothing)
 *   cas-value:       u8 expectedPresent | [u32 expectedLength | expected] | u32 valueLength | value
 *   cas-revision:    f64 expectedModRevision | u32 valueLength | value
 *   delete-prefix:   (nothing; the key is the prefix, non-empty)
 *
 * A put, cas-value or cas-revision that attaches its key to a lease ends with `f64 lease`
 * (a positive id); without it, the key is attached to none (so commands written before
 * there were leases read as they were).
 *
 * except a transaction, which has no key of its own after the request:
 *
 *   txn:   u8 version (2) | u8 op (4) | f64 clientId | f64 sequence | f64 timeMs
 *          | u32 compareCount | compare... | u32 successCount | operation... | u32 failureCount | operation...
 *   compare:    u8 target | u8 operator | u32 keyLength | key | (value target: u32 length | bytes, else: f64)
 *   operation:  u8 kind (0 put, 1 delete, 2 get, 3 put with a lease) | u32 keyLength | key
 *               | (put: u32 valueLength | value; put with a lease: u32 valueLength | value | f64 lease)
 *
 * and a session registration, which has nothing after the request:
 *
 *   register:  u8 version (2) | u8 op (5) | f64 clientId | f64 sequence | f64 timeMs
 *   clock:     u8 version (2) | u8 op (6) | f64 clientId | f64 sequence | f64 timeMs | [u8 1: a new leader's]
 *
 * and a compaction, which has only its revision:
 *
 *   compact:   u8 version (2) | u8 op (8) | f64 clientId | f64 sequence | f64 timeMs | f64 revision
 *
 * and the lease commands, which have one number each:
 *
 *   lease-grant:      u8 version (2) | u8 op (9) | request | f64 ttlMs
 *   lease-keepalive:  u8 version (2) | u8 op (10) | request | f64 lease
 *   lease-revoke:     u8 version (2) | u8 op (11) | request | f64 lease
 *
 * and an auth change, in the format of src/core/kv/auth.ts:
 *
 *   auth:             u8 version (2) | u8 op (12) | request | auth change
 *
 * and the range commands of a sharded node (src/core/kv/split.ts):
 *
 *   range-id:         u8 version (2) | u8 op (13) | request | f64 atLeast
 *   split:            u8 version (2) | u8 op (14) | request | u32 keyLength | key | f64 child
 *
 * and the phases of a transaction across ranges (src/core/kv/intents.ts):
 *
 *   txn-prepare:      u8 version (2) | u8 op (15) | request | a txn's body (compares, success, failure)
 *                     | u32 length | txn id | f64 anchor
 *   txn-decide:       u8 version (2) | u8 op (16) | request | u32 length | txn id | u8 outcome
 *   txn-resolve:      u8 version (2) | u8 op (17) | request | u32 length | txn id | u8 outcome
 *
 * `clientId` and `sequence` name the request, so the node that took it can answer the
 * client when the entry applies, and so retried writes can be recognised. `timeMs` is the
 * proposing node's wall clock; only a clock command's moves the state machine's clock for
 * expiring sessions and leases (see KvStore), the same on every replica because it is in the
 * log; a lease command's time only makes its lease live longer, never expires anything.
 * Version 1 (no `timeMs`) is still read, as time 0.
 */
export type KvCommand =
  /** `lease`: attach the key to that lease (absent: to none, detaching it from any it had). */
  | { readonly op: "put"; readonly request: RequestId; readonly key: string; readonly value: Uint8Array; readonly lease?: number }
  | { readonly op: "delete"; readonly request: RequestId; readonly key: string }
  /**
   * Deletes every key that starts with `prefix` (non-empty), atomically, as one revision
   * (none if no key matched). Its cost grows with the keys it deletes: it applies in one
   * backend transaction, like every command.
   */
  | { readonly op: "delete-prefix"; readonly request: RequestId; readonly prefix: string }
  | {
      readonly op: "cas-value";
      readonly request: RequestId;
      readonly key: string;
      /** The value the key must hold, or null for "must not exist". */
      readonly expected: Uint8Array | null;
      readonly value: Uint8Array;
      readonly lease?: number;
    }
  | {
      readonly op: "cas-revision";
      readonly request: RequestId;
      readonly key: string;
      /** The key's modification revision must equal this; 0 means "must not exist". */
      readonly expectedRevision: number;
      readonly value: Uint8Array;
      readonly lease?: number;
    }
  | TxnCommand
  /**
   * Opens a client session; its id is the index of this entry (see KvStore). `request` is
   * the proposer's, to match the answer to its caller; it is not deduplicated.
   */
  | { readonly op: "register"; readonly request: RequestId }
  /**
   * Moves the store's clock to `request.timeMs`: proposed by the leader every few seconds
   * with its wall clock (see KvStore). Other commands' times do not move the clock.
   */
  | {
      readonly op: "clock";
      readonly request: RequestId;
      /**
       * Proposed by a leader that has not yet had one of its clock entries applied: every
       * lease is first extended to live its full time to live from this clock (etcd's rule),
       * so a failover never expires a lease whose holder could not reach a leader meanwhile.
       */
      readonly newLeader?: boolean;
    }
  /**
   * Moves the store's compaction point up to `revision` (src/core/kv/history.ts): reads and
   * watches below it are refused from then on. A revision at or below the compaction point
   * changes nothing; one past the store's revision changes nothing either (the result says so).
   */
  | { readonly op: "compact"; readonly request: RequestId; readonly revision: number }
  /**
   * Grants a lease living `ttlMs` (LEASE_LIMITS) from its grant; its id is this entry's
   * index. Refused ("rejected") when the store holds LEASE_LIMITS.leasesMax leases.
   */
  | { readonly op: "lease-grant"; readonly request: RequestId; readonly ttlMs: number }
  /** Renews a lease: it lives its time to live from now ("lease-not-found" if it is gone). */
  | { readonly op: "lease-keepalive"; readonly request: RequestId; readonly lease: number }
  /** Revokes a lease, deleting its keys in one revision ("lease-not-found" if it is gone). */
  | { readonly op: "lease-revoke"; readonly request: RequestId; readonly lease: number }
  /** Changes users, roles or whether auth is enabled (src/core/kv/auth.ts). */
  | { readonly op: "auth"; readonly request: RequestId; readonly change: AuthChange }
  /**
   * Hands out a range id (group 0's store does, for splits): the larger of `atLeast` and the
   * store's next one, which then moves past it. Not deduplicated: a retry gets another id.
   */
  | { readonly op: "range-id"; readonly request: RequestId; readonly atLeast: number }
  /**
   * Splits the store's range at `at` (src/core/kv/split.ts): it keeps the keys before, and
   * range `child` (an id from `range-id`) is born with the keys from `at` on. Refused
   * ("rejected") when `at` is not strictly inside the range. Not deduplicated: a retry of
   * one that split finds `at` at the range's end, and is refused.
   */
  | { readonly op: "split"; readonly request: RequestId; readonly at: string; readonly child: number }
  | TxnPrepareCommand
  /**
   * Records transaction `txn`'s outcome in its anchor range (src/core/kv/intents.ts): the
   * first outcome recorded stands, and the result says which it is.
   */
  | { readonly op: "txn-decide"; readonly request: RequestId; readonly txn: string; readonly outcome: TxnOutcome }
  /** Ends transaction `txn`'s part in this range: applies its branch for `outcome` (none for "abort") and releases its keys. */
  | { readonly op: "txn-resolve"; readonly request: RequestId; readonly txn: string; readonly outcome: TxnOutcome };

/** How a transaction across ranges ended: its success branch, its failure branch, or nothing. */
export type TxnOutcome = "success" | "failure" | "abort";
export const TXN_OUTCOMES: readonly TxnOutcome[] = ["success", "failure", "abort"];

/**
 * Phase one of a transaction across ranges (src/core/kv/intents.ts) in one of its ranges:
 * the compares and both branches' operations on this range's keys. Every key is locked for
 * `txn` until it resolves, and the result says whether this range's compares hold.
 */
export interface TxnPrepareCommand {
  readonly op: "txn-prepare";
  readonly request: RequestId;
  /** The transaction's id: at most TXN_ID_BYTES_MAX bytes, unique. */
  readonly txn: string;
  /** The range holding the transaction's record (its outcome). */
  readonly anchor: number;
  readonly compares: readonly TxnCompare[];
  readonly success: readonly TxnOperation[];
  readonly failure: readonly TxnOperation[];
}

/** The longest transaction id. */
export const TXN_ID_BYTES_MAX = 64;

/**
 * A transaction (etcd's Txn): if every compare holds, the `success` operations run, else the
 * `failure` ones; atomically, as one revision. The store applies it as follows.
 *
 * - Every compare is evaluated against the state before the transaction.
 * - A missing key has version, createRevision and modRevision 0, so `version = 0` tests
 *   "does not exist" and `createRevision > 0` "exists". A compare on the *value* of a missing
 *   key is false for "=", "<" and ">" and true for "!=" (there is no value to equal or order).
 *   Values compare as byte strings, lexicographically, a prefix first.
 * - The chosen branch's operations run in order; a get sees the writes before it.
 *   All writes get one new revision (the store's revision grows by one if the branch put a
 *   key or deleted an existing one, else not at all).
 * - A branch may write (put or delete) each key at most once, as in etcd, so a key's
 *   version grows by at most one per revision. A branch may get any key any number of times.
 * - At most `limits.txnComparesMax` compares and `limits.txnOpsPerBranchMax` operations per
 *   branch; the encoded command must fit `limits.commandBytesMax`.
 */
export interface TxnCommand {
  readonly op: "txn";
  readonly request: RequestId;
  readonly compares: readonly TxnCompare[];
  readonly success: readonly TxnOperation[];
  readonly failure: readonly TxnOperation[];
}

export type TxnCompareOperator = "=" | "!=" | "<" | ">";
export type TxnNumberTarget = "modRevision" | "createRevision" | "version";

/** One compare of a transaction; see `TxnCommand` for what it means on a missing key. */
export type TxnCompare =
  | { readonly key: string; readonly target: "value"; readonly op: TxnCompareOperator; readonly value: Uint8Array }
  /** `value` is a safe non-negative integer. */
  | { readonly key: string; readonly target: TxnNumberTarget; readonly op: TxnCompareOperator; readonly value: number };

/** One operation of a transaction's branch. */
export type TxnOperation =
  /** `lease`: as a put command's. */
  | { readonly op: "put"; readonly key: string; readonly value: Uint8Array; readonly lease?: number }
  | { readonly op: "delete"; readonly key: string }
  | { readonly op: "get"; readonly key: string };

export interface RequestId {
  readonly clientId: number;
  readonly sequence: number;
  /** The proposer's wall clock, in ms since the epoch; absent (0) in version 1 commands. */
  readonly timeMs?: number;
}

const VERSION = 2;
const OPS = ["put", "delete", "cas-value", "cas-revision", "txn", "register", "clock", "delete-prefix", "compact", "lease-grant", "lease-keepalive", "lease-revoke", "auth", "range-id", "split", "txn-prepare", "txn-decide", "txn-resolve"] as const;
const LEASE_OPS: ReadonlySet<Op> = new Set(["lease-grant", "lease-keepalive", "lease-revoke"]);
type Op = (typeof OPS)[number];
const COMPARE_TARGETS = ["value", "modRevision", "createRevision", "version"] as const;
const COMPARE_OPERATORS = ["=", "!=", "<", ">"] as const;
const TXN_OPERATIONS = ["put", "delete", "get", "put-lease"] as const;
/** version, op, clientId, sequence, timeMs. */
const HEADER_BYTES = 2 + 8 + 8 + 8;

/**
 * Encodes a command for the log. Throws InvalidInputError for what a client could send
 * wrongly: an empty or oversized key or value, a transaction over its limits or writing a
 * key twice in one branch.
 */
export function encodeCommand(command: KvCommand): Uint8Array {
  if (command.op === "txn" || command.op === "txn-prepare") return encodeTxn(command);
  if (command.op === "txn-decide" || command.op === "txn-resolve") {
    const txn = encodeTxnId(command.txn);
    const writer = new ByteWriter(HEADER_BYTES + 4 + txn.length + 1);
    writeHeader(writer, command.op, command.request);
    writer.bytes(txn);
    writer.u8(TXN_OUTCOMES.indexOf(command.outcome));
    return writer.finish(`${command.op} command`);
  }
  if (command.op === "register" || command.op === "clock") {
    const newLeader = command.op === "clock" && command.newLeader === true;
    const writer = new ByteWriter(HEADER_BYTES + (newLeader ? 1 : 0));
    writeHeader(writer, command.op, command.request);
    if (newLeader) writer.u8(1);
    return writer.finish(`${command.op} command`);
  }
  if (command.op === "lease-grant" || command.op === "lease-keepalive" || command.op === "lease-revoke") {
    const number = command.op === "lease-grant" ? checkTtl(command.ttlMs) : checkLeaseId(command.lease);
    const writer = new ByteWriter(HEADER_BYTES + 8);
    writeHeader(writer, command.op, command.request);
    writer.f64(number);
    return writer.finish(`${command.op} command`);
  }
  if (command.op === "auth") {
    const change = encodeAuthChange(command.change);
    const writer = new ByteWriter(HEADER_BYTES + change.length);
    writeHeader(writer, command.op, command.request);
    writer.raw(change);
    return writer.finish("auth command");
  }
  if (command.op === "range-id" || command.op === "split") return encodeRangeCommand(command);
  if (command.op === "compact") {
    if (!Number.isSafeInteger(command.revision) || command.revision < 1) throw new InvalidInputError(`a compaction's revision must be a positive integer, got ${command.revision}`);
    const writer = new ByteWriter(HEADER_BYTES + 8);
    writeHeader(writer, command.op, command.request);
    writer.f64(command.revision);
    return writer.finish("compact command");
  }
  const key = utf8Encode(command.op === "delete-prefix" ? command.prefix : command.key);
  if (key.length === 0) throw new InvalidInputError(command.op === "delete-prefix" ? "the prefix of a range delete must not be empty" : "key must not be empty");
  if (key.length > limits.keyBytesMax) throw new InvalidInputError(`key is ${key.length} bytes; the limit is ${limits.keyBytesMax}`);
  const parts: Uint8Array[] = [];
  const lease = "lease" in command && command.lease !== undefined ? checkLeaseId(command.lease) : 0;
  let size = HEADER_BYTES + 4 + key.length + (lease === 0 ? 0 : 8);
  const addBytes = (bytes: Uint8Array): void => {
    if (bytes.length > limits.valueBytesMax) {
      throw new InvalidInputError(`value is ${bytes.length} bytes; the limit is ${limits.valueBytesMax}`);
    }
    parts.push(bytes);
    size += 4 + bytes.length;
  };
  let expectedPresent = 0;
  switch (command.op) {
    case "put":
      addBytes(command.value);
      break;
    case "delete":
    case "delete-prefix":
      break;
    case "cas-value":
      size += 1;
      if (command.expected !== null) {
        expectedPresent = 1;
        addBytes(command.expected);
      }
      addBytes(command.value);
      break;
    case "cas-revision":
      assert(Number.isSafeInteger(command.expectedRevision) && command.expectedRevision >= 0, "expected revision must be a non-negative integer");
      size += 8;
      addBytes(command.value);
      break;
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = VERSION;
  out[1] = OPS.indexOf(command.op);
  view.setFloat64(2, command.request.clientId);
  view.setFloat64(10, command.request.sequence);
  view.setFloat64(18, timeOf(command.request));
  view.setUint32(HEADER_BYTES, key.length);
  out.set(key, HEADER_BYTES + 4);
  let at = HEADER_BYTES + 4 + key.length;
  if (command.op === "cas-value") out[at++] = expectedPresent;
  if (command.op === "cas-revision") {
    view.setFloat64(at, command.expectedRevision);
    at += 8;
  }
  for (const part of parts) {
    view.setUint32(at, part.length);
    out.set(part, at + 4);
    at += 4 + part.length;
  }
  if (lease !== 0) {
    view.setFloat64(at, lease);
    at += 8;
  }
  assert(at === size, "command size mismatch");
  return out;
}

/** Decodes a command; throws InvalidInputError (never an assertion) on malformed bytes. */
export function decodeCommand(bytes: Uint8Array): KvCommand {
  const reader = new ByteReader(bytes, "command");
  const version = reader.u8();
  if (version !== 1 && version !== VERSION) throw new InvalidInputError(`unknown command version ${version}`);
  const op: Op | undefined = OPS[reader.u8()];
  if (op === undefined || (version === 1 && (op === "register" || op === "clock" || op === "delete-prefix" || op === "compact" || op === "auth" || op === "range-id" || op === "split" || op.startsWith("txn-") || LEASE_OPS.has(op)))) throw new InvalidInputError("unknown command op");
  const ids = { clientId: reader.safeInteger(), sequence: reader.safeInteger() };
  // Canonical: a time of 0 (unknown) decodes as no time, as version 1 does.
  const timeMs = version === 1 ? 0 : reader.safeInteger();
  const request: RequestId = timeMs === 0 ? ids : { ...ids, timeMs };
  if (op === "txn" || op === "txn-prepare") return decodeTxn(bytes, reader, request, op);
  if (op === "txn-decide" || op === "txn-resolve") {
    const txn = decodeTxnId(reader);
    const outcome = TXN_OUTCOMES[reader.u8()];
    if (outcome === undefined) throw new InvalidInputError("unknown transaction outcome");
    reader.expectEnd();
    return { op, request, txn, outcome };
  }
  if (op === "register") {
    reader.expectEnd();
    return { op, request };
  }
  if (op === "clock") {
    if (reader.atEnd) return { op, request };
    // Canonical: the flag is written only when set.
    if (reader.u8() !== 1) throw new InvalidInputError("bad new-leader flag of a clock command");
    reader.expectEnd();
    return { op, request, newLeader: true };
  }
  if (op === "lease-grant" || op === "lease-keepalive" || op === "lease-revoke") {
    const number = reader.safeInteger();
    reader.expectEnd();
    if (op === "lease-grant") return { op, request, ttlMs: decodedTtl(number) };
    return { op, request, lease: decodedLeaseId(number) };
  }
  if (op === "auth") {
    const change = decodeAuthChange(reader);
    reader.expectEnd();
    return { op, request, change };
  }
  if (op === "range-id") {
    const atLeast = reader.safeInteger();
    reader.expectEnd();
    if (!isGroupId(atLeast)) throw new InvalidInputError("a range-id command's least id is not a group id");
    return { op, request, atLeast };
  }
  if (op === "split") {
    const keyBytes = reader.bytes(limits.keyBytesMax);
    const at = utf8Decode(keyBytes);
    if (keyBytes.length === 0 || toWellFormed(at) !== at) throw new InvalidInputError("a split's key must be a non-empty well-formed string");
    const child = reader.safeInteger();
    reader.expectEnd();
    if (!isGroupId(child)) throw new InvalidInputError("a split's child is not a group id");
    return { op, request, at, child };
  }
  if (op === "compact") {
    const revision = reader.safeInteger();
    if (revision < 1) throw new InvalidInputError("a compaction's revision must be positive");
    reader.expectEnd();
    return { op, request, revision };
  }
  const keyBytes = reader.bytes(limits.keyBytesMax);
  if (keyBytes.length === 0) throw new InvalidInputError("empty key");
  const key = utf8Decode(keyBytes);
  let command: KvCommand;
  switch (op) {
    case "put":
      command = withLease({ op, request, key, value: reader.bytes(limits.valueBytesMax) }, reader);
      break;
    case "delete":
      command = { op, request, key };
      break;
    case "delete-prefix":
      command = { op, request, prefix: key };
      break;
    case "cas-value": {
      const present = reader.u8();
      if (present > 1) throw new InvalidInputError("bad expected-present flag");
      const expected = present === 1 ? reader.bytes(limits.valueBytesMax) : null;
      command = withLease({ op, request, key, expected, value: reader.bytes(limits.valueBytesMax) }, reader);
      break;
    }
    case "cas-revision": {
      const expectedRevision = reader.safeInteger();
      command = withLease({ op, request, key, expectedRevision, value: reader.bytes(limits.valueBytesMax) }, reader);
      break;
    }
  }
  reader.expectEnd();
  return command;
}

function encodeTxn(command: TxnCommand | TxnPrepareCommand): Uint8Array {
  checkTxnShape(command);
  const trailer = command.op === "txn-prepare" ? encodeTxnId(command.txn) : null;
  if (command.op === "txn-prepare" && !isGroupId(command.anchor)) throw new InvalidInputError(`a transaction's anchor is a range id, got ${command.anchor}`);
  const compares = command.compares.map((compare) => ({ compare, key: encodeKey(compare.key) }));
  const branches = [command.success, command.failure].map((operations) => operations.map((operation) => ({ operation, key: encodeKey(operation.key) })));
  let size = HEADER_BYTES + 4 + 4 + 4 + (trailer === null ? 0 : 4 + trailer.length + 8);
  for (const { compare, key } of compares) {
    size += 2 + 4 + key.length + (compare.target === "value" ? 4 + checkValue(compare.value).length : 8);
    if (compare.target !== "value" && !(Number.isSafeInteger(compare.value) && compare.value >= 0)) {
      throw new InvalidInputError(`a ${compare.target} compare needs a non-negative integer, got ${compare.value}`);
    }
  }
  for (const branch of branches) for (const { operation, key } of branch) size += 1 + 4 + key.length + (operation.op === "put" ? 4 + checkValue(operation.value).length + (operation.lease === undefined ? 0 : 8) : 0);
  if (size > limits.commandBytesMax) throw new InvalidInputError(`transaction is ${size} bytes encoded; the limit is ${limits.commandBytesMax}`);
  const writer = new ByteWriter(size);
  writeHeader(writer, command.op, command.request);
  writer.u32(compares.length);
  for (const { compare, key } of compares) {
    writer.u8(COMPARE_TARGETS.indexOf(compare.target));
    writer.u8(COMPARE_OPERATORS.indexOf(compare.op));
    writer.bytes(key);
    if (compare.target === "value") writer.bytes(compare.value);
    else writer.f64(compare.value);
  }
  for (const branch of branches) {
    writer.u32(branch.length);
    for (const { operation, key } of branch) {
      const leased = operation.op === "put" && operation.lease !== undefined;
      writer.u8(TXN_OPERATIONS.indexOf(leased ? "put-lease" : operation.op));
      writer.bytes(key);
      if (operation.op === "put") writer.bytes(operation.value);
      if (operation.op === "put" && operation.lease !== undefined) writer.f64(checkLeaseId(operation.lease));
    }
  }
  if (command.op === "txn-prepare" && trailer !== null) {
    writer.bytes(trailer);
    writer.f64(command.anchor);
  }
  return writer.finish("transaction command");
}

function encodeTxnId(txn: string): Uint8Array {
  const bytes = utf8Encode(toWellFormed(txn));
  if (bytes.length === 0 || bytes.length > TXN_ID_BYTES_MAX) throw new InvalidInputError(`a transaction id is 1 to ${TXN_ID_BYTES_MAX} bytes, got ${bytes.length}`);
  return bytes;
}

function decodeTxnId(reader: ByteReader): string {
  const bytes = reader.bytes(TXN_ID_BYTES_MAX);
  const txn = utf8Decode(bytes);
  if (bytes.length === 0 || toWellFormed(txn) !== txn) throw new InvalidInputError("a transaction id is a non-empty well-formed string");
  return txn;
}

function writeHeader(writer: ByteWriter, op: Op, request: RequestId): void {
  writer.u8(VERSION);
  writer.u8(OPS.indexOf(op));
  writer.f64(request.clientId);
  writer.f64(request.sequence);
  writer.f64(timeOf(request));
}

function timeOf(request: RequestId): number {
  const timeMs = request.timeMs ?? 0;
  assert(Number.isSafeInteger(timeMs) && timeMs >= 0, "a command's time must be a non-negative integer of milliseconds");
  return timeMs;
}

/** The limits and rules a transaction obeys whether it is being encoded or was decoded. */
function checkTxnShape(command: TxnCommand | TxnPrepareCommand): void {
  assert(Number.isSafeInteger(command.request.clientId) && Number.isSafeInteger(command.request.sequence), "request ids must be safe integers");
  if (command.compares.length > limits.txnComparesMax) {
    throw new InvalidInputError(`transaction has ${command.compares.length} compares; the limit is ${limits.txnComparesMax}`);
  }
  for (const [name, operations] of [["success", command.success], ["failure", command.failure]] as const) {
    if (operations.length > limits.txnOpsPerBranchMax) {
      throw new InvalidInputError(`transaction's ${name} branch has ${operations.length} operations; the limit is ${limits.txnOpsPerBranchMax}`);
    }
    const written = new Set<string>();
    for (const operation of operations) {
      if (operation.op === "get") continue;
      const key = toWellFormed(operation.key);
      if (written.has(key)) throw new InvalidInputError(`transaction's ${name} branch writes the key ${JSON.stringify(key)} more than once`);
      written.add(key);
    }
  }
}

function encodeKey(key: string): Uint8Array {
  const bytes = utf8Encode(key);
  if (bytes.length === 0) throw new InvalidInputError("key must not be empty");
  if (bytes.length > limits.keyBytesMax) throw new InvalidInputError(`key is ${bytes.length} bytes; the limit is ${limits.keyBytesMax}`);
  return bytes;
}

function checkValue(value: Uint8Array): Uint8Array {
  if (value.length > limits.valueBytesMax) throw new InvalidInputError(`value is ${value.length} bytes; the limit is ${limits.valueBytesMax}`);
  return value;
}

function decodeTxn(bytes: Uint8Array, reader: ByteReader, request: RequestId, op: "txn" | "txn-prepare"): TxnCommand | TxnPrepareCommand {
  if (bytes.length > limits.commandBytesMax) throw new InvalidInputError(`transaction is ${bytes.length} bytes; the limit is ${limits.commandBytesMax}`);
  const compareCount = reader.u32();
  if (compareCount > limits.txnComparesMax) throw new InvalidInputError(`transaction has ${compareCount} compares; the limit is ${limits.txnComparesMax}`);
  const compares: TxnCompare[] = [];
  for (let i = 0; i < compareCount; i++) compares.push(decodeCompare(reader));
  const success = decodeBranch(reader);
  const failure = decodeBranch(reader);
  if (op === "txn-prepare") {
    const txn = decodeTxnId(reader);
    const anchor = reader.safeInteger();
    reader.expectEnd();
    if (!isGroupId(anchor)) throw new InvalidInputError("a transaction's anchor is not a range id");
    const prepare: TxnPrepareCommand = { op, request, txn, anchor, compares, success, failure };
    checkTxnShape(prepare);
    return prepare;
  }
  reader.expectEnd();
  const command: TxnCommand = { op: "txn", request, compares, success, failure };
  checkTxnShape(command);
  return command;
}

function decodeCompare(reader: ByteReader): TxnCompare {
  const target = COMPARE_TARGETS[reader.u8()];
  if (target === undefined) throw new InvalidInputError("unknown compare target");
  const op = COMPARE_OPERATORS[reader.u8()];
  if (op === undefined) throw new InvalidInputError("unknown compare operator");
  const key = decodeKey(reader);
  if (target === "value") return { key, target, op, value: reader.bytes(limits.valueBytesMax) };
  return { key, target, op, value: reader.safeInteger() };
}

function decodeBranch(reader: ByteReader): TxnOperation[] {
  const count = reader.u32();
  if (count > limits.txnOpsPerBranchMax) throw new InvalidInputError(`transaction branch has ${count} operations; the limit is ${limits.txnOpsPerBranchMax}`);
  const operations: TxnOperation[] = [];
  for (let i = 0; i < count; i++) {
    const op = TXN_OPERATIONS[reader.u8()];
    if (op === undefined) throw new InvalidInputError("unknown transaction operation");
    const key = decodeKey(reader);
    if (op === "put-lease") operations.push({ op: "put", key, value: reader.bytes(limits.valueBytesMax), lease: decodedLeaseId(reader.safeInteger()) });
    else operations.push(op === "put" ? { op, key, value: reader.bytes(limits.valueBytesMax) } : { op, key });
  }
  return operations;
}

function decodeKey(reader: ByteReader): string {
  const bytes = reader.bytes(limits.keyBytesMax);
  if (bytes.length === 0) throw new InvalidInputError("empty key");
  return utf8Decode(bytes);
}

/** A lease id a client gave: a positive safe integer (InvalidInputError otherwise). */
function checkLeaseId(lease: number): number {
  if (!Number.isSafeInteger(lease) || lease < 1) throw new InvalidInputError(`a lease id is a positive integer, got ${lease}`);
  return lease;
}

function checkTtl(ttlMs: number): number {
  if (!Number.isSafeInteger(ttlMs) || ttlMs < LEASE_LIMITS.ttlMsMin || ttlMs > LEASE_LIMITS.ttlMsMax) {
    throw new InvalidInputError(`a lease's time to live is ${LEASE_LIMITS.ttlMsMin / 1000} s to ${LEASE_LIMITS.ttlMsMax / 1000} s, got ${ttlMs / 1000} s`);
  }
  return ttlMs;
}

function decodedLeaseId(lease: number): number {
  if (lease < 1) throw new InvalidInputError("a lease id must be positive");
  return lease;
}

function decodedTtl(ttlMs: number): number {
  if (ttlMs < LEASE_LIMITS.ttlMsMin || ttlMs > LEASE_LIMITS.ttlMsMax) throw new InvalidInputError("a lease's time to live is out of bounds");
  return ttlMs;
}

/** A put-like command with the lease that ends it, if any. */
function withLease<C extends { readonly op: "put" | "cas-value" | "cas-revision" }>(command: C, reader: ByteReader): C {
  if (reader.atEnd) return command;
  return { ...command, lease: decodedLeaseId(reader.safeInteger()) };
}

function encodeRangeCommand(command: Extract<KvCommand, { readonly op: "range-id" | "split" }>): Uint8Array {
  if (command.op === "range-id") {
    if (!isGroupId(command.atLeast)) throw new InvalidInputError(`a range id is an integer from 0 to ${GROUP_ID_MAX}, got ${command.atLeast}`);
    const writer = new ByteWriter(HEADER_BYTES + 8);
    writeHeader(writer, command.op, command.request);
    writer.f64(command.atLeast);
    return writer.finish("range-id command");
  }
  const at = utf8Encode(toWellFormed(command.at));
  if (at.length === 0 || at.length > limits.keyBytesMax) throw new InvalidInputError(`a split's key is 1 to ${limits.keyBytesMax} bytes, got ${at.length}`);
  if (!isGroupId(command.child)) throw new InvalidInputError(`a range id is an integer from 0 to ${GROUP_ID_MAX}, got ${command.child}`);
  const writer = new ByteWriter(HEADER_BYTES + 4 + at.length + 8);
  writeHeader(writer, command.op, command.request);
  writer.bytes(at);
  writer.f64(command.child);
  return writer.finish("split command");
}

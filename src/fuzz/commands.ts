/**
 * Fuzzes the decoders of what the state machine and the log store apply: the KV command
 * (`decodeCommand`, then `KvStore.apply`), the configuration entry (`decodeMembership`),
 * the WAL's log record (`decodeLogRecord`), the KV snapshot (`KvStore.restore`) and the
 * backup file of either format, one range or sharded (`readBackupFile`, for `synod snapshot
 * restore`; mutated files are also signed again, as a hostile file would be, so that the
 * header parser behind the checksum is reached).
 *
 * Inputs: random bytes, and valid encodings with bit flips, truncations, insertions and
 * edge-value overwrites. Allowed outcomes: a value, or the decoder's typed error. Beyond
 * "no untyped throw" the oracles are:
 * - an accepted command re-encodes, and decodes again to the same command (the decoder
 *   never accepts what the encoder would refuse);
 * - applying any bytes as a log entry never throws (a bad command is a "rejected" result);
 * - a refused snapshot leaves the store exactly as it was (restore is one transaction).
 */
import { AUTH_LIMITS, type AuthChange } from "../core/kv/auth.js";
import { deepStrictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { decodeCommand, encodeCommand, type KvCommand, type RequestId, type TxnCompare, type TxnOperation } from "../core/kv/command.js";
import { decodeMembership, encodeMembership } from "../core/engine/membership.js";
import type { Membership } from "../core/engine/contract.js";
import { KvStore } from "../core/kv/store.js";
import { LEASE_LIMITS } from "../core/kv/model.js";
import { decodeGroupLogRecord, encodeLogRecord, LogRecordDecodeError, type LogRecord } from "../runtime/storage/log-record.js";
import { BACKUP_DIGEST_BYTES, backupFilePieces, encodeBackupPrefix, readBackupFile, type AnyBackupHeader, type RangeBackupHeader } from "../runtime/storage/backup-file.js";
import { bytesToDecode, classify, FuzzFinding, runFuzz, type FuzzReport, type FuzzRun, type Outcomes } from "./harness.js";

const key = fc.oneof(fc.constantFrom("a", "b", "ключ", "😀", "a/b"), fc.string({ minLength: 1, maxLength: 12, unit: "binary" }));
const value = fc.uint8Array({ maxLength: 24 });
const id = fc.oneof(fc.nat({ max: 100 }), fc.constant(2 ** 53 - 1), fc.nat());
const positiveId = id.map((n) => Math.max(1, n));
const request: fc.Arbitrary<RequestId> = fc
  .tuple(id, id, fc.oneof(fc.constant(0), fc.nat()))
  .map(([clientId, sequence, timeMs]) => (timeMs === 0 ? { clientId, sequence } : { clientId, sequence, timeMs }));
const lease = fc.option(positiveId, { nil: undefined });
const operator = fc.constantFrom("=" as const, "!=" as const, "<" as const, ">" as const);

const compare: fc.Arbitrary<TxnCompare> = fc.oneof(
  fc.record({ key, target: fc.constant("value" as const), op: operator, value }),
  fc.record({ key, target: fc.constantFrom("modRevision" as const, "createRevision" as const, "version" as const), op: operator, value: id }),
);
const operation: fc.Arbitrary<TxnOperation> = fc.oneof(
  fc.record({ op: fc.constant("put" as const), key, value, lease }).map(({ lease: l, ...rest }) => (l === undefined ? rest : { ...rest, lease: l })),
  fc.record({ op: fc.constantFrom("delete" as const, "get" as const), key }),
);
/** A branch writes each key once at most (a rule of transactions); gets are free. */
const branch = fc.array(operation, { maxLength: 4 }).map((operations) => {
  const written = new Set<string>();
  return operations.filter((o) => o.op === "get" || (!written.has(o.key) && written.add(o.key) !== undefined));
});

function withLease<C extends object>(command: C, l: number | undefined): C {
  return l === undefined ? command : { ...command, lease: l };
}

const authName = fc.stringMatching(/^[A-Za-z0-9_.@-]{1,12}$/);
const passwordHash = fc.record({ cost: fc.integer({ min: AUTH_LIMITS.costMin, max: AUTH_LIMITS.costMax }), salt: fc.uint8Array({ minLength: 16, maxLength: 16 }), hash: fc.uint8Array({ minLength: 32, maxLength: 32 }) });
/** Every kind of auth change (src/core/kv/auth.ts), valid by construction. */
const authChange: fc.Arbitrary<AuthChange> = fc.oneof(
  fc.uint8Array({ minLength: 32, maxLength: 32 }).map((secret): AuthChange => ({ kind: "enable", secret })),
  fc.constant<AuthChange>({ kind: "disable" }),
  fc.tuple(authName, passwordHash, fc.boolean()).map(([name, password, add]): AuthChange => ({ kind: add ? "user-add" : "user-password", name, password })),
  fc.tuple(authName, authName, fc.constantFrom("user-grant" as const, "user-revoke" as const)).map(([name, role, kind]): AuthChange => ({ kind, name, role })),
  fc.tuple(authName, fc.constantFrom("user-delete" as const, "role-add" as const, "role-delete" as const)).map(([name, kind]): AuthChange => ({ kind, name })),
  fc.tuple(authName, key, fc.constantFrom([true, false], [false, true], [true, true])).map(([name, prefix, [read, write]]): AuthChange => ({ kind: "role-grant", name, permission: { prefix, read, write } })),
  fc.tuple(authName, key).map(([name, prefix]): AuthChange => ({ kind: "role-revoke", name, prefix })),
  fc.tuple(authName, fc.boolean()).map(([name, admin]): AuthChange => ({ kind: "role-admin", name, admin })),
);

/** Every kind of command, valid by construction. */
export const commandArbitrary: fc.Arbitrary<KvCommand> = fc.oneof(
  fc.tuple(request, key, value, lease).map(([r, k, v, l]): KvCommand => withLease({ op: "put", request: r, key: k, value: v }, l)),
  fc.tuple(request, key).map(([r, k]): KvCommand => ({ op: "delete", request: r, key: k })),
  fc.tuple(request, key).map(([r, k]): KvCommand => ({ op: "delete-prefix", request: r, prefix: k })),
  fc.tuple(request, key, fc.option(value), value, lease).map(([r, k, e, v, l]): KvCommand => withLease({ op: "cas-value", request: r, key: k, expected: e, value: v }, l)),
  fc.tuple(request, key, id, value, lease).map(([r, k, e, v, l]): KvCommand => withLease({ op: "cas-revision", request: r, key: k, expectedRevision: e, value: v }, l)),
  fc.tuple(request, fc.array(compare, { maxLength: 3 }), branch, branch).map(([r, c, s, f]): KvCommand => ({ op: "txn", request: r, compares: c, success: s, failure: f })),
  request.map((r): KvCommand => ({ op: "register", request: r })),
  fc.tuple(request, fc.boolean()).map(([r, n]): KvCommand => (n ? { op: "clock", request: r, newLeader: true } : { op: "clock", request: r })),
  fc.tuple(request, positiveId).map(([r, revision]): KvCommand => ({ op: "compact", request: r, revision })),
  fc.tuple(request, fc.integer({ min: LEASE_LIMITS.ttlMsMin, max: LEASE_LIMITS.ttlMsMax })).map(([r, ttlMs]): KvCommand => ({ op: "lease-grant", request: r, ttlMs })),
  fc.tuple(request, positiveId, fc.boolean()).map(([r, l, keep]): KvCommand => ({ op: keep ? "lease-keepalive" : "lease-revoke", request: r, lease: l })),
  fc.tuple(request, authChange).map(([r, change]): KvCommand => ({ op: "auth", request: r, change })),
);

const nodeIds = fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { maxLength: 5 });
const membershipArbitrary: fc.Arbitrary<Membership> = fc
  .tuple(nodeIds, nodeIds, fc.boolean(), fc.uint8Array({ maxLength: 16 }))
  .map(([voters, others, autoLeave, context]) => {
    const learners = others.filter((n) => !voters.includes(n));
    return { voters, outgoing: [], learners, autoPromote: learners.slice(0, 1), autoLeave, context };
  });

const entry = fc.record({ index: fc.integer({ min: 1, max: 1000 }), term: fc.nat({ max: 50 }), data: value });
const entries = fc.array(entry, { maxLength: 4 }).map((list) => list.map((e, i) => ({ ...e, index: (list[0]?.index ?? 1) + i })));
const logRecordArbitrary: fc.Arbitrary<LogRecord> = fc.oneof(
  value.map((hardState): LogRecord => ({ kind: "hard-state", hardState })),
  entries.map((list): LogRecord => ({ kind: "entries", entries: list })),
  entries.map((list): LogRecord => ({ kind: "checkpoint-entries", entries: list })),
  fc.tuple(fc.option(fc.record({ index: fc.integer({ min: 1, max: 1000 }), term: fc.nat({ max: 50 }), kind: fc.constantFrom("installed" as const, "own" as const) })), fc.boolean()).map(([snapshot, sweep]): LogRecord => ({ kind: "checkpoint-begin", snapshot, sweep })),
  fc.tuple(fc.nat({ max: 100 }), fc.option(value)).map(([entryCount, hardState]): LogRecord => ({ kind: "checkpoint-end", entryCount, hardState })),
  fc.constant<LogRecord>({ kind: "sweep-begin" }),
  fc.nat({ max: 1000 }).map((groupCount): LogRecord => ({ kind: "sweep-end", groupCount })),
  fc.record({ index: fc.integer({ min: 1, max: 1000 }), term: fc.nat({ max: 50 }) }).map(({ index, term }): LogRecord => ({ kind: "compact", index, term })),
  fc.constant<LogRecord>({ kind: "drop" }),
);

/** Commands a store accepts and keeps (puts, leases, sessions), for building snapshots. */
function snapshotOf(commands: readonly KvCommand[]): Uint8Array {
  const store = new KvStore();
  let index = 0;
  store.apply(++index, encodeCommand({ op: "register", request: { clientId: 0, sequence: 0 } }));
  for (const command of commands) store.apply(++index, encodeCommand(command));
  return store.snapshot();
}
const snapshotArbitrary = fc.array(commandArbitrary, { maxLength: 8 }).map(snapshotOf);

/** A backup file of one range (format 1), or of a sharded cluster of two ranges (format 2). */
const backupArbitrary = fc
  .tuple(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 1, max: 100 }), fc.nat({ max: 9 }), fc.boolean())
  .map(([data, index, nodeId, sharded]) => {
    const origin = { clusterId: "fuzz", nodeId, takenAt: "2026-01-01T00:00:00Z", synodVersion: "0.1.0" };
    const cut = data.length >> 1;
    const range = (id: number, start: string, end: string | null, dataBytes: number): RangeBackupHeader => ({ id, start, end, epoch: 1, index, term: 1, revision: index, keys: 0, dataBytes, voters: [1, 2, 3] });
    const header: AnyBackupHeader = sharded
      ? { shards: 2, ranges: [range(0, "", "U", cut), range(1, "U", null, data.length - cut)], keys: 0, dataBytes: data.length, ...origin }
      : { index, term: 1, revision: index, keys: 0, dataBytes: data.length, voters: [1, 2, 3], ...origin };
    return Uint8Array.from([...backupFilePieces(encodeBackupPrefix(header), data, 16)].flatMap((piece) => [...piece]));
  });

/** A backup file with its SHA-256 computed again over what precedes it. */
function signedAgain(bytes: Uint8Array): Uint8Array {
  if (bytes.length < BACKUP_DIGEST_BYTES) return bytes;
  const body = bytes.subarray(0, bytes.length - BACKUP_DIGEST_BYTES);
  return Uint8Array.from([...body, ...createHash("sha256").update(body).digest()]);
}

type Input =
  | { readonly decoder: "backup"; readonly bytes: Uint8Array }
  | { readonly decoder: "command"; readonly bytes: Uint8Array }
  | { readonly decoder: "membership"; readonly bytes: Uint8Array }
  | { readonly decoder: "log-record"; readonly bytes: Uint8Array }
  | { readonly decoder: "kv-snapshot"; readonly bytes: Uint8Array };

const inputArbitrary: fc.Arbitrary<Input> = fc.oneof(
  { weight: 6, arbitrary: bytesToDecode(commandArbitrary.map(encodeCommand)).map((bytes): Input => ({ decoder: "command", bytes })) },
  { weight: 2, arbitrary: bytesToDecode(membershipArbitrary.map(encodeMembership)).map((bytes): Input => ({ decoder: "membership", bytes })) },
  { weight: 2, arbitrary: bytesToDecode(fc.tuple(logRecordArbitrary, fc.oneof(fc.constant(0), fc.nat({ max: 2 ** 32 - 1 }))).map(([record, group]) => encodeLogRecord(record, group))).map((bytes): Input => ({ decoder: "log-record", bytes })) },
  { weight: 1, arbitrary: bytesToDecode(snapshotArbitrary, 512).map((bytes): Input => ({ decoder: "kv-snapshot", bytes })) },
  { weight: 1, arbitrary: fc.tuple(bytesToDecode(backupArbitrary), fc.boolean()).map(([bytes, sign]): Input => ({ decoder: "backup", bytes: sign ? signedAgain(bytes) : bytes })) },
);

function checkBackup(bytes: Uint8Array, outcomes: Outcomes): void {
  const backup = classify(outcomes, "backup", () => readBackupFile(bytes, "the backup"));
  if (backup !== undefined && backup.data.length !== backup.header.dataBytes) throw new FuzzFinding(`a backup accepted with ${backup.data.length} bytes of data, where its header declares ${backup.header.dataBytes}`);
  const partBytes = backup?.parts.reduce((sum, part) => sum + part.length, 0);
  if (backup !== undefined && partBytes !== backup.data.length) throw new FuzzFinding(`a backup accepted whose ranges hold ${String(partBytes)} bytes of its ${backup.data.length}`);
}

/** The store bad entries are applied to; replaced now and then so that it stays small. */
class ApplyTarget {
  private store = new KvStore();
  private index = 0;

  apply(bytes: Uint8Array): void {
    if (this.index >= 5000) {
      this.store = new KvStore();
      this.index = 0;
    }
    // Applying never throws for bad bytes: they become a "rejected" result on every replica.
    this.store.apply(++this.index, bytes);
  }
}

function checkCommand(bytes: Uint8Array, outcomes: Outcomes, target: ApplyTarget): void {
  const command = classify(outcomes, "command", () => decodeCommand(bytes));
  if (command !== undefined) {
    let again: KvCommand;
    try {
      again = decodeCommand(encodeCommand(command));
    } catch (error) {
      throw new FuzzFinding(`an accepted command does not re-encode: ${String(error)}`);
    }
    deepStrictEqual(again, command, "an accepted command decodes differently once re-encoded");
  }
  try {
    target.apply(bytes);
  } catch (error) {
    throw new FuzzFinding(`applying the bytes as a log entry threw ${String(error)}`);
  }
}

function checkMembership(bytes: Uint8Array, outcomes: Outcomes): void {
  const membership = classify(outcomes, "membership", () => decodeMembership(bytes));
  if (membership !== undefined) deepStrictEqual(decodeMembership(encodeMembership(membership)), membership, "an accepted configuration decodes differently once re-encoded");
}

function checkLogRecord(bytes: Uint8Array, outcomes: Outcomes): void {
  const decoded = classify(outcomes, "log-record", () => decodeGroupLogRecord(bytes), [LogRecordDecodeError]);
  if (decoded !== undefined) {
    const { record, group } = decodeGroupLogRecord(encodeLogRecord(decoded.record, decoded.group));
    deepStrictEqual({ record, group }, { record: decoded.record, group: decoded.group }, "an accepted log record decodes differently once re-encoded");
  }
}

/** A store holding a little state, to check that a refused restore leaves it whole. */
function storeWithState(): KvStore {
  const store = new KvStore();
  store.apply(1, encodeCommand({ op: "put", request: { clientId: 0, sequence: 0 }, key: "kept", value: new Uint8Array([1, 2, 3]) }));
  return store;
}

function checkSnapshot(bytes: Uint8Array, outcomes: Outcomes): void {
  const store = storeWithState();
  const before = store.snapshot();
  const restored = classify(outcomes, "kv-snapshot", () => {
    store.restore(bytes);
    return true;
  });
  if (restored === undefined) deepStrictEqual(store.snapshot(), before, "a refused snapshot changed the store");
  else store.snapshot(); // what was restored can be read back whole
}

export function fuzzCommands(options: FuzzRun): FuzzReport {
  const target = new ApplyTarget();
  return runFuzz(
    "commands",
    inputArbitrary,
    (input, outcomes) => {
      switch (input.decoder) {
        case "command":
          return checkCommand(input.bytes, outcomes, target);
        case "membership":
          return checkMembership(input.bytes, outcomes);
        case "log-record":
          return checkLogRecord(input.bytes, outcomes);
        case "kv-snapshot":
          return checkSnapshot(input.bytes, outcomes);
        case "backup":
          return checkBackup(input.bytes, outcomes);
      }
    },
    options,
  );
}

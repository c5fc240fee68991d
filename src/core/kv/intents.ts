/**
 * Transactions across ranges, in one range's state machine (issue 18; docs/transactions.md):
 * two-phase commit, each phase a command in the log of the range it concerns.
 *
 * 1. `txn-prepare`, in every range the transaction touches: its keys there (compared, read
 *    or written, in either branch) are locked for it, its operations on them kept as an
 *    *intent*, and the result says whether this range's compares hold. A key locked by
 *    another transaction refuses the prepare (`txn-locked`): the transaction aborts, and
 *    nothing waits on a lock, so two transactions never deadlock.
 * 2. `txn-decide`, in the transaction's anchor range: its outcome, "success" (every range's
 *    compares held), "failure" (one did not), or "abort" (a range refused, or the
 *    coordinator vanished). The first outcome recorded stands: a recovery that proposes
 *    "abort" for a transaction already decided learns the real outcome instead.
 * 3. `txn-resolve`, in every range: the intent's branch for the outcome is applied, as one
 *    revision of the range, and its keys are released.
 *
 * While a key is locked, every other command writing it is refused (`txn-locked`, nothing
 * applied, nothing kept in the session: the client retries), and a read of it waits for the
 * lock to go (the node's business), so a reader never sees half of a transaction.
 *
 * The backend holds the intents as one value (`KvBackend` `readTxnState`/`writeTxnState`,
 * bounded by INTENTS_MAX intents per range), written whenever one comes or goes, and each
 * outcome as an entry of its own (`txnRecords`/`writeTxnRecord`), kept RECORD_TTL_MS by the
 * store's clock: the anchor's decision, and in every range the outcome it resolved, against
 * late prepares. A snapshot carries both as one section (`joinTxnState`).
 */
import { emptyMap, writable } from "../common/empty.js";
import { ByteReader, ByteWriter } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { utf8Decode, utf8Encode } from "../common/utf8.js";
import type { KvBackend } from "./backend.js";
import { decodeCommand, encodeCommand, TXN_OUTCOMES, type TxnCompare, type TxnOperation, type TxnOutcome, type TxnPrepareCommand } from "./command.js";
import type { KvResult } from "./model.js";

/** The most transactions in flight (prepared, not resolved) in one range; more are refused. */
export const INTENTS_MAX = 1000;
/** How long an anchor keeps a transaction's outcome (by the store's clock), for late prepares and recoveries. */
export const RECORD_TTL_MS = 10 * 60 * 1000;

/** One transaction's part in this range, between its prepare and its resolve. */
export interface Intent {
  readonly txn: string;
  readonly anchor: number;
  readonly compares: readonly TxnCompare[];
  readonly success: readonly TxnOperation[];
  readonly failure: readonly TxnOperation[];
  /** The store's clock when it was prepared. */
  readonly preparedMs: number;
}

/** Every key a transaction's part touches: compared, read or written. */
export function intentKeys(part: Pick<Intent, "compares" | "success" | "failure">): string[] {
  return [...new Set([...part.compares.map((c) => c.key), ...part.success.map((o) => o.key), ...part.failure.map((o) => o.key)])];
}

const STATE_VERSION = 1;
const NO_REQUEST = { clientId: 0, sequence: 0 };

export class KvIntents {
  // The shared empty map while this range has none (most ranges, most of the time: one
  // Map each would be four per range held for nothing; see core/common/empty.ts).
  private intents = emptyMap<string, Intent>();
  private locks = emptyMap<string, string>();
  private records = emptyMap<string, TxnRecord>();
  /** Moves whenever the state changes: a phase that leaves it as it was repeated one applied before. */
  private changes = 0;
  /** Each intent's bytes in the state (see `encodeTxnState`), kept so a save encodes only what changed. */
  private intentBytes = emptyMap<string, Uint8Array>();
  /** The stored state still holds records (written before each had an entry of its own): the next save moves them out. */
  private recordsInState = false;

  constructor(private readonly backend: KvBackend) {
    this.reload();
  }

  /** Reads the state again from the backend (after a restore, or a transaction that rolled back). */
  reload(): void {
    const bytes = this.backend.readTxnState();
    this.intents = emptyMap();
    this.locks = emptyMap();
    this.records = emptyMap();
    this.intentBytes = emptyMap();
    this.recordsInState = false;
    if (bytes !== undefined) {
      const decoded = decodeTxnState(bytes);
      for (const intent of decoded.intents) this.add(intent);
      for (const [txn, record] of decoded.records) {
        this.records = writable(this.records);
        this.records.set(txn, record);
      }
      this.recordsInState = decoded.records.size > 0;
    }
    for (const [txn, record] of this.backend.txnRecords()) {
      this.records = writable(this.records);
      this.records.set(txn, decodeTxnRecord(record));
    }
  }

  /** A count that moves whenever the state changes (see `changes`). */
  get version(): number {
    return this.changes;
  }

  /** Whether this range holds any transaction's outcome. */
  get hasRecords(): boolean {
    return this.records.size > 0;
  }

  get inFlight(): number {
    return this.intents.size;
  }

  /** The transaction holding `key`, if one does. */
  lockOf(key: string): string | undefined {
    return this.locks.get(key);
  }

  /** The first of `keys` locked by a transaction other than `txn`, with its holder. */
  lockedAmong(keys: readonly string[], txn: string | null = null): { readonly key: string; readonly txn: string } | undefined {
    if (this.locks.size === 0) return undefined;
    for (const key of keys) {
      const holder = this.locks.get(key);
      if (holder !== undefined && holder !== txn) return { key, txn: holder };
    }
    return undefined;
  }

  /** A key starting with `prefix` that a transaction holds locked, with its holder. */
  lockedWithPrefix(prefix: string): { readonly key: string; readonly txn: string } | undefined {
    for (const [key, txn] of this.locks) if (key.startsWith(prefix)) return { key, txn };
    return undefined;
  }

  /** Every intent, by transaction id (for the node's recovery of transactions whose coordinator vanished). */
  list(): readonly Intent[] {
    return [...this.intents.values()];
  }

  /**
   * Phase one here (see the module comment); `holds` evaluates one of this range's compares;
   * `keys` are the keys to lock (every key the part touches; fewer only in a mutant). A
   * prepare of a transaction already prepared answers as the first did (a retry).
   */
  prepare(command: TxnPrepareCommand, holds: (compare: TxnCompare) => boolean, clockMs: number, keys: readonly string[] = intentKeys(command)): KvResult {
    const decided = this.records.get(command.txn);
    if (decided !== undefined) return { op: "rejected", reason: `transaction ${command.txn} was decided already (${decided.outcome})` };
    const existing = this.intents.get(command.txn);
    if (existing === undefined) {
      const locked = this.lockedAmong(keys, command.txn);
      if (locked !== undefined) return { op: "txn-locked", key: locked.key, txn: locked.txn };
      if (this.intents.size >= INTENTS_MAX) return { op: "rejected", reason: `this range has ${INTENTS_MAX} transactions in flight; retry shortly` };
      const { txn, anchor, compares, success, failure } = command;
      this.add({ txn, anchor, compares, success, failure, preparedMs: clockMs }, keys);
      this.saveIntents();
    }
    const intent = this.intents.get(command.txn) as Intent;
    return { op: "txn-prepare", txn: command.txn, holds: intent.compares.every(holds) };
  }

  /** Phase two, in the anchor: the first outcome recorded stands. */
  decide(txn: string, outcome: TxnOutcome, clockMs: number): KvResult {
    const recorded = this.records.get(txn);
    if (recorded !== undefined) return { op: "txn-decide", txn, outcome: recorded.outcome };
    this.setRecord(txn, { outcome, atMs: clockMs });
    return { op: "txn-decide", txn, outcome };
  }

  /**
   * Phase three: the intent of `txn`, removed with its locks (undefined if there is none:
   * resolved already, or never prepared here). The outcome is kept as a record, so a prepare
   * of `txn` that arrives late (a retry, a duplicated message) is refused rather than locking
   * its keys again for a transaction that is over — worse, a recovery would ask the anchor
   * for that intent's outcome and apply a committed branch a second time. The record is kept
   * as long as the anchor keeps its own (RECORD_TTL_MS, and it starts later), so a prepare
   * late enough to find neither is resolved as aborted: nothing applied twice.
   */
  take(txn: string, outcome: TxnOutcome, clockMs: number): Intent | undefined {
    if (!this.records.has(txn)) this.setRecord(txn, { outcome, atMs: clockMs });
    const intent = this.intents.get(txn);
    if (intent === undefined) return undefined;
    this.intents.delete(txn);
    this.intentBytes.delete(txn);
    for (const key of intentKeys(intent)) if (this.locks.get(key) === txn) this.locks.delete(key);
    if (this.intents.size === 0) {
      this.intents = emptyMap();
      this.intentBytes = emptyMap();
      if (this.locks.size === 0) this.locks = emptyMap();
    }
    this.saveIntents();
    return intent;
  }

  /** Forgets the outcomes recorded before `clockMs - RECORD_TTL_MS`. */
  expireRecords(clockMs: number): void {
    for (const [txn, record] of this.records) {
      if (record.atMs + RECORD_TTL_MS > clockMs) continue;
      this.records.delete(txn);
      this.backend.writeTxnRecord(txn, undefined);
      this.changes += 1;
    }
    if (this.records.size === 0) this.records = emptyMap();
  }

  /** Keeps `intent`, its `keys` locked (every key it touches, but under a mutant's prepare). */
  private add(intent: Intent, keys: readonly string[] = intentKeys(intent)): void {
    this.intents = writable(this.intents);
    this.intentBytes = writable(this.intentBytes);
    this.locks = writable(this.locks);
    this.intents.set(intent.txn, intent);
    this.intentBytes.set(intent.txn, intentChunk(intent));
    for (const key of keys) this.locks.set(key, intent.txn);
  }

  /** Keeps an outcome, as an entry of its own in the backend (writing it costs what one record costs). */
  private setRecord(txn: string, record: TxnRecord): void {
    this.records = writable(this.records);
    this.records.set(txn, record);
    if (this.recordsInState) this.saveIntents();
    this.backend.writeTxnRecord(txn, encodeTxnRecord(record));
    this.changes += 1;
  }

  /** Writes the intents (bounded by INTENTS_MAX), with the same bytes as `encodeTxnState` with no records, from each intent's kept bytes. */
  private saveIntents(): void {
    this.changes += 1;
    if (this.recordsInState) {
      // Written before records had entries of their own: they move out of the state now.
      this.recordsInState = false;
      for (const [txn, record] of this.records) this.backend.writeTxnRecord(txn, encodeTxnRecord(record));
    }
    this.backend.writeTxnState(joinState(this.intentBytes, new Map()));
  }
}

/** An outcome a range keeps: the anchor's decision, or what the range resolved. */
export interface TxnRecord {
  readonly outcome: TxnOutcome;
  /** The store's clock when it was recorded. */
  readonly atMs: number;
}

/** A record as a backend keeps it, by transaction id: u8 outcome | f64 atMs. */
export function encodeTxnRecord(record: TxnRecord): Uint8Array {
  const writer = new ByteWriter(1 + 8);
  writer.u8(TXN_OUTCOMES.indexOf(record.outcome));
  writer.f64(record.atMs);
  return writer.finish("transaction record");
}

export function decodeTxnRecord(bytes: Uint8Array): TxnRecord {
  const reader = new ByteReader(bytes, "transaction record");
  const outcome = TXN_OUTCOMES[reader.u8()];
  if (outcome === undefined) throw new InvalidInputError("a transaction record holds an unknown outcome");
  const atMs = reader.safeInteger();
  reader.expectEnd();
  return { outcome, atMs };
}

/**
 * The whole state as a snapshot carries it (`encodeTxnState`): the stored state's intents
 * (and records, if it still holds some) with every record the backend keeps; undefined when
 * neither was ever written, so a store that never ran such a transaction has no section.
 */
export function joinTxnState(state: Uint8Array | undefined, records: Iterable<readonly [string, Uint8Array]>): Uint8Array | undefined {
  const kept = [...records];
  if (state === undefined && kept.length === 0) return undefined;
  const decoded = state === undefined ? { intents: [], records: new Map<string, TxnRecord>() } : decodeTxnState(state);
  // A state written before records had entries of their own may hold some: the entries win.
  const entries = new Map([...decoded.records].map(([txn, record]) => [txn, encodeTxnRecord(record)] as const));
  for (const [txn, bytes] of kept) {
    decodeTxnRecord(bytes); // checked: copied into the state as it is
    entries.set(txn, bytes);
  }
  return joinState(new Map(decoded.intents.map((intent) => [intent.txn, intentChunk(intent)])), entries);
}

/** A snapshot's state as a backend keeps it: the intents as the state, each record as an entry of its own. */
export function splitTxnState(state: Uint8Array): { readonly state: Uint8Array; readonly records: readonly (readonly [string, Uint8Array])[] } {
  const decoded = decodeTxnState(state);
  return { state: encodeTxnState(decoded.intents, new Map()), records: [...decoded.records].map(([txn, record]) => [txn, encodeTxnRecord(record)] as const) };
}

/**
 * The state's bytes: u8 version (1) | u32 intentCount | (u32 length | the intent as a
 * txn-prepare command | f64 preparedMs)... | u32 recordCount | (u32 length | txn id | u8
 * outcome | f64 atMs)... — intents and records by transaction id, so equal states give
 * equal bytes on every replica.
 */
export function encodeTxnState(intents: readonly Intent[], records: ReadonlyMap<string, TxnRecord>): Uint8Array {
  return joinState(new Map(intents.map((intent) => [intent.txn, intentChunk(intent)])), new Map([...records].map(([txn, record]) => [txn, encodeTxnRecord(record)])));
}

/** One intent in the state: u32 length | the intent as a txn-prepare command | f64 preparedMs. */
function intentChunk(intent: Intent): Uint8Array {
  const bytes = encodeCommand({ op: "txn-prepare", request: NO_REQUEST, ...intent });
  const writer = new ByteWriter(4 + bytes.length + 8);
  writer.bytes(bytes);
  writer.f64(intent.preparedMs);
  return writer.finish("transaction intent");
}

/**
 * The state from its intents' chunks and its records' entries (`encodeTxnRecord`: a
 * record in the state is its id's length and bytes, then its entry), each kind in
 * transaction id order.
 */
function joinState(intents: ReadonlyMap<string, Uint8Array>, records: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const intentChunks = [...intents.keys()].sort().map((txn) => intents.get(txn) as Uint8Array);
  const recordEntries = [...records.keys()].sort().map((txn) => ({ id: utf8Encode(txn), entry: records.get(txn) as Uint8Array }));
  let size = 1 + 4 + 4;
  for (const chunk of intentChunks) size += chunk.length;
  for (const { id, entry } of recordEntries) size += 4 + id.length + entry.length;
  const writer = new ByteWriter(size);
  writer.u8(STATE_VERSION);
  writer.u32(intentChunks.length);
  for (const chunk of intentChunks) writer.raw(chunk);
  writer.u32(recordEntries.length);
  for (const { id, entry } of recordEntries) {
    writer.bytes(id);
    writer.raw(entry);
  }
  return writer.finish("transaction state");
}

export function decodeTxnState(bytes: Uint8Array): { intents: Intent[]; records: Map<string, { outcome: TxnOutcome; atMs: number }> } {
  const reader = new ByteReader(bytes, "transaction state");
  if (reader.u8() !== STATE_VERSION) throw new InvalidInputError("unknown transaction state version");
  const intents: Intent[] = [];
  const intentCount = reader.u32();
  for (let i = 0; i < intentCount; i++) {
    const command = decodeCommand(reader.bytes(bytes.length));
    if (command.op !== "txn-prepare") throw new InvalidInputError("the transaction state holds an intent that is not a prepare");
    const { txn, anchor, compares, success, failure } = command;
    intents.push({ txn, anchor, compares, success, failure, preparedMs: reader.safeInteger() });
  }
  const records = new Map<string, { outcome: TxnOutcome; atMs: number }>();
  const recordCount = reader.u32();
  for (let i = 0; i < recordCount; i++) {
    const txn = utf8Decode(reader.bytes(256));
    const outcome = TXN_OUTCOMES[reader.u8()];
    if (outcome === undefined) throw new InvalidInputError("the transaction state holds an unknown outcome");
    records.set(txn, { outcome, atMs: reader.safeInteger() });
  }
  reader.expectEnd();
  return { intents, records };
}

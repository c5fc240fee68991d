import { assert, assertIndex } from "../common/assert.js";
import { bytesEqual, compareBytes } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { toWellFormed } from "../common/utf8.js";
import { MemoryKvBackend, type KvBackend } from "./backend.js";
import { decodeCommand, type KvCommand, type TxnCommand, type TxnCompare, type TxnCompareOperator } from "./command.js";
import { NO_SESSION, SELF_ASSIGNED_SESSIONS_FROM, SESSION_LIMITS, type Applied, type SessionLimits, type KvRecord, type KvResult, type KvSession, type TxnOperationResult } from "./model.js";
import { decodeSnapshot, encodeSnapshot } from "./snapshot.js";

export { bytesEqual } from "../common/bytes.js";
export { NO_SESSION, SELF_ASSIGNED_SESSIONS_FROM, SESSION_LIMITS, type Applied, type SessionLimits, type KvMeta, type KvRecord, type KvResult, type KvSession, type TxnOperationResult } from "./model.js";

/** One committed log entry, as the state machine applies it. */
export interface KvEntry {
  readonly index: number;
  readonly data: Uint8Array;
  /** "config": the consensus engine's own entry, which the store only moves past. */
  readonly kind?: "config";
}

const NO_OP = new Uint8Array(0);
/** A range delete reads and deletes the keys it matches this many at a time. */
const DELETE_PAGE_RECORDS = 1000;

/**
 * The replicated KV state machine: deterministic. Every node applies the same entries in
 * the same order and ends in the same state; `snapshot()` is byte-identical on every node at
 * the same applied index, whichever backend holds the state.
 *
 * The state lives in a `KvBackend` (memory by default; LMDB in the runtime). Each apply
 * is one backend transaction that writes the data, the sessions and the applied index
 * together, so a store reopened after a crash is exactly at some applied index and the node
 * replays the log only after it. The store caches the applied index and revision in memory;
 * a transaction that throws restores them with the backend's state.
 *
 * Client sessions (Raft dissertation 6.3) make retried writes apply once. A client
 * registers (a `register` command; the session's id is the index of that entry), then
 * numbers its writes 1, 2, ... with one in flight per session; a command whose sequence is
 * not above the session's last is a duplicate, answered with the last result and applied
 * no more. Sessions expire by the store's **clock**, the latest time of the `clock` entries
 * applied, which the leader proposes every few seconds with its wall clock (only the
 * leader's: one node with a clock hours fast must not expire every session by taking one
 * write): every replica has the same clock at the same index, so every replica expires the
 * same sessions at the same entry. When the clock is first set, the sessions opened before
 * are stamped with it, so they get a full lifetime. Whenever the
 * clock crosses a multiple of `SESSION_LIMITS.sweepIntervalMs`, sessions unused for
 * `ttlMs` are dropped; opening one beyond `sessionsMax` drops the least recently used 1%. A
 * command for a registered-range id the store does not hold gets "session-expired" and
 * changes nothing, so its client can register again and retry without a double apply.
 * (A leader's clock that is off moves the expiry by as much; leaders change rarely.)
 */
export class KvStore {
  private appliedIndex: number;
  private revision: number;
  private clockMs: number;
  /** How many sessions the backend holds (derived from it at open). */
  private sessionCount: number;
  /** How many keys the backend holds (derived from it at open, then kept as keys come and go). */
  private keyCount: number;

  /**
   * A store over `backend`, at the applied index and revision the backend holds.
   * `sessionLimits` is for tests: every replica of a cluster must use the same, the default.
   */
  constructor(
    readonly backend: KvBackend = new MemoryKvBackend(),
    private readonly sessionLimits: SessionLimits = SESSION_LIMITS,
  ) {
    const meta = backend.readMeta();
    assertIndex(meta.appliedIndex, "stored applied index");
    assertIndex(meta.revision, "stored revision");
    this.appliedIndex = meta.appliedIndex;
    this.revision = meta.revision;
    this.clockMs = meta.clockMs ?? 0;
    this.sessionCount = countOf(backend.allSessions());
    this.keyCount = backend.recordCount();
  }

  /** Opens the state a backend holds (the same as `new KvStore(backend)`, named for reading). */
  static open(backend: KvBackend): KvStore {
    return new KvStore(backend);
  }

  /**
   * A store holding the snapshot's state, in `backend` (memory by default), which loses
   * whatever it held. Throws InvalidInputError if the snapshot is malformed.
   */
  static restore(bytes: Uint8Array, backend: KvBackend = new MemoryKvBackend(), sessionLimits: SessionLimits = SESSION_LIMITS): KvStore {
    const store = new KvStore(backend, sessionLimits);
    store.restore(bytes);
    return store;
  }

  get applied(): number {
    return this.appliedIndex;
  }

  get currentRevision(): number {
    return this.revision;
  }

  /** The store's clock (see the class comment), in ms since the epoch. */
  get clock(): number {
    return this.clockMs;
  }

  /** How many client sessions the store holds. */
  get sessions(): number {
    return this.sessionCount;
  }

  /** How many keys the store holds. */
  get keys(): number {
    return this.keyCount;
  }

  get(key: string): KvRecord | undefined {
    return this.backend.getRecord(toWellFormed(key));
  }

  /**
   * At most `limit` records whose keys start with `prefix`, in the UTF-8 byte order of their
   * keys; with `after`, only keys after that one (the last key of the previous page).
   */
  range(prefix: string, limit: number, options: { readonly after?: string } = {}): KvRecord[] {
    assertIndex(limit, "range limit");
    const query = options.after === undefined ? { prefix: toWellFormed(prefix), limit } : { prefix: toWellFormed(prefix), limit, after: toWellFormed(options.after) };
    return this.backend.rangeRecords(query);
  }

  /**
   * Applies the entry at `index` (which must follow the last applied one). An empty entry
   * is a no-op; a command that does not decode is skipped with a "rejected" result rather
   * than stopping the node, since every replica sees the same bytes and skips alike.
   */
  apply(index: number, data: Uint8Array): Applied {
    return this.inTransaction(() => this.applyOne(index, data));
  }

  /**
   * Applies consecutive entries in one backend transaction, writing the applied index and
   * revision once at its end: all of them take effect, or (if anything throws, e.g. an
   * index out of order, which is a programming error) none.
   */
  applyBatch(entries: readonly KvEntry[]): Applied[] {
    if (entries.length === 0) return [];
    return this.inTransaction(() => entries.map((entry) => this.applyOne(entry.index, entry.kind === "config" ? NO_OP : entry.data)));
  }

  /**
   * Replaces the whole state with the snapshot's, in one backend transaction. Throws
   * InvalidInputError if the snapshot is malformed, and then nothing changed.
   */
  restore(bytes: Uint8Array): void {
    const backend = this.backend;
    const meta = backend.transaction(() => {
      backend.clear();
      const restored = decodeSnapshot(bytes, { record: (record) => backend.putRecord(record), session: (session) => backend.putSession(session) });
      backend.writeMeta(restored);
      return restored;
    });
    this.appliedIndex = meta.appliedIndex;
    this.revision = meta.revision;
    this.clockMs = meta.clockMs ?? 0;
    this.sessionCount = countOf(backend.allSessions());
    this.keyCount = backend.recordCount();
  }

  /** A deterministic snapshot: keys in UTF-8 byte order, so equal states give equal bytes. */
  snapshot(): Uint8Array {
    const meta = { appliedIndex: this.appliedIndex, revision: this.revision, clockMs: this.clockMs };
    return encodeSnapshot(meta, [...this.backend.allRecords()], [...this.backend.allSessions()]);
  }

  /** Runs `fn` in one backend transaction that ends by writing the meta; undoes the caches if it throws. */
  private inTransaction<T>(fn: () => T): T {
    const appliedIndex = this.appliedIndex;
    const revision = this.revision;
    const clockMs = this.clockMs;
    const sessionCount = this.sessionCount;
    const keyCount = this.keyCount;
    try {
      return this.backend.transaction(() => {
        const result = fn();
        this.backend.writeMeta({ appliedIndex: this.appliedIndex, revision: this.revision, clockMs: this.clockMs });
        return result;
      });
    } catch (error) {
      this.appliedIndex = appliedIndex;
      this.revision = revision;
      this.clockMs = clockMs;
      this.sessionCount = sessionCount;
      this.keyCount = keyCount;
      throw error;
    }
  }

  private applyOne(index: number, data: Uint8Array): Applied {
    assertIndex(index, "applied index");
    assert(index === this.appliedIndex + 1, `apply out of order: ${index} after ${this.appliedIndex}`);
    this.appliedIndex = index;
    if (data.length === 0) return { request: null, result: { op: "noop" }, duplicate: false };
    let command: KvCommand;
    try {
      command = decodeCommand(data);
    } catch (error) {
      if (error instanceof InvalidInputError) return { request: null, result: { op: "rejected", reason: error.message }, duplicate: false };
      throw error;
    }
    if (command.op === "clock") {
      this.advanceClock(command.request.timeMs ?? 0);
      return { request: command.request, result: { op: "noop" }, duplicate: false };
    }
    if (command.op === "register") return { request: command.request, result: this.register(index), duplicate: false };
    const { clientId, sequence } = command.request;
    let session: KvSession | undefined;
    if (clientId !== NO_SESSION) {
      session = this.backend.getSession(clientId);
      if (session === undefined && clientId < SELF_ASSIGNED_SESSIONS_FROM) return { request: command.request, result: { op: "session-expired", clientId }, duplicate: false };
      if (session !== undefined && sequence <= session.sequence) {
        const result: KvResult = sequence === session.sequence ? session.result : { op: "superseded", clientId, sequence, latestSequence: session.sequence };
        return { request: command.request, result, duplicate: true };
      }
    }
    const result = this.execute(command);
    if (clientId !== NO_SESSION) {
      const next = { clientId, sequence, result: forSession(result), lastActiveMs: this.clockMs };
      if (session === undefined) this.openSession(next);
      else this.backend.putSession(next);
    }
    return { request: command.request, result, duplicate: false };
  }

  /** Opens a session whose id is the index of its registration (unique: indexes are never reused). */
  private register(index: number): KvResult {
    assert(index < SELF_ASSIGNED_SESSIONS_FROM, "log indexes stay below the self-assigned session ids");
    this.openSession({ clientId: index, sequence: 0, result: { op: "noop" }, lastActiveMs: this.clockMs });
    return { op: "session", clientId: index };
  }

  /** Adds a session the store does not hold, making room first. */
  private openSession(session: KvSession): void {
    this.makeRoomForSession();
    this.backend.putSession(session);
    this.sessionCount++;
  }

  /** Moves the clock forward to `timeMs` (never back), sweeping expired sessions when it crosses a sweep boundary. */
  private advanceClock(timeMs: number): void {
    if (timeMs <= this.clockMs) return;
    const before = this.clockMs;
    this.clockMs = timeMs;
    if (before === 0) {
      // The first time: sessions opened while the clock was unset start their lifetime now.
      for (const session of [...this.backend.allSessions()]) this.backend.putSession({ ...session, lastActiveMs: timeMs });
      return;
    }
    const interval = this.sessionLimits.sweepIntervalMs;
    if (Math.floor(timeMs / interval) > Math.floor(before / interval)) this.sweepSessions();
  }

  private sweepSessions(): void {
    const expired: number[] = [];
    for (const session of this.backend.allSessions()) {
      if ((session.lastActiveMs ?? 0) + this.sessionLimits.ttlMs <= this.clockMs) expired.push(session.clientId);
    }
    for (const clientId of expired) this.backend.deleteSession(clientId);
    this.sessionCount -= expired.length;
  }

  /**
   * At `sessionsMax`, drops the least recently used sessions (the lowest ids among equals):
   * 1% of them at once, so a stream of registrations at capacity costs one scan of the
   * sessions per hundred registrations rather than one each.
   */
  private makeRoomForSession(): void {
    if (this.sessionCount < this.sessionLimits.sessionsMax) return;
    const evicted = Math.max(1, Math.floor(this.sessionLimits.sessionsMax / 100));
    const byAge = [...this.backend.allSessions()].map((session) => ({ clientId: session.clientId, lastActiveMs: session.lastActiveMs ?? 0 }));
    // allSessions is in client-id order and the sort is stable: equal ages keep it.
    byAge.sort((a, b) => a.lastActiveMs - b.lastActiveMs);
    for (const { clientId } of byAge.slice(0, evicted)) this.backend.deleteSession(clientId);
    this.sessionCount -= Math.min(evicted, byAge.length);
  }

  private execute(command: Exclude<KvCommand, { readonly op: "register" | "clock" }>): KvResult {
    if (command.op === "txn") return this.executeTxn(command);
    if (command.op === "delete-prefix") return this.deletePrefix(command.prefix);
    const current = this.backend.getRecord(command.key);
    switch (command.op) {
      case "put":
        return { op: "put", revision: this.write(command.key, command.value, current, ++this.revision) };
      case "delete":
        if (current === undefined) return { op: "delete", deleted: 0, revision: this.revision };
        this.backend.deleteRecord(command.key);
        this.keyCount--;
        return { op: "delete", deleted: 1, revision: ++this.revision };
      case "cas-value": {
        const matches = command.expected === null ? current === undefined : current !== undefined && bytesEqual(current.value, command.expected);
        if (!matches) return { op: "cas", succeeded: false, revision: this.revision };
        return { op: "cas", succeeded: true, revision: this.write(command.key, command.value, current, ++this.revision) };
      }
      case "cas-revision": {
        const actual = current === undefined ? 0 : current.modRevision;
        if (actual !== command.expectedRevision) return { op: "cas", succeeded: false, revision: this.revision };
        return { op: "cas", succeeded: true, revision: this.write(command.key, command.value, current, ++this.revision) };
      }
    }
  }

  /** See `TxnCommand` for the semantics: compares first, then one branch, one revision. */
  private executeTxn(command: TxnCommand): KvResult {
    const succeeded = command.compares.every((compare) => compareHolds(compare, this.backend.getRecord(compare.key)));
    const revision = this.revision + 1;
    let wrote = false;
    const results = (succeeded ? command.success : command.failure).map((operation): TxnOperationResult => {
      const current = this.backend.getRecord(operation.key);
      switch (operation.op) {
        case "get":
          return { op: "get", record: current ?? null };
        case "put":
          wrote = true;
          this.write(operation.key, operation.value, current, revision);
          return { op: "put", revision };
        case "delete":
          if (current === undefined) return { op: "delete", deleted: 0 };
          wrote = true;
          this.backend.deleteRecord(operation.key);
          this.keyCount--;
          return { op: "delete", deleted: 1 };
      }
    });
    if (wrote) this.revision = revision;
    return { op: "txn", succeeded, revision: this.revision, results };
  }

  /**
   * Deletes every key under `prefix`, a page at a time (reads in a backend transaction see
   * its deletes, so each page is the next keys left), as one new revision if any matched.
   * Each round deletes a full page or ends the loop.
   */
  private deletePrefix(prefix: string): KvResult {
    let deleted = 0;
    for (;;) {
      const page = this.backend.rangeRecords({ prefix, limit: DELETE_PAGE_RECORDS });
      for (const record of page) this.backend.deleteRecord(record.key);
      deleted += page.length;
      if (page.length < DELETE_PAGE_RECORDS) break;
    }
    this.keyCount -= deleted;
    if (deleted === 0) return { op: "delete-prefix", deleted, revision: this.revision };
    return { op: "delete-prefix", deleted, revision: ++this.revision };
  }

  private write(key: string, value: Uint8Array, current: KvRecord | undefined, revision: number): number {
    if (current === undefined) this.keyCount++;
    this.backend.putRecord({
      key,
      value,
      createRevision: current === undefined ? revision : current.createRevision,
      modRevision: revision,
      version: current === undefined ? 1 : current.version + 1,
    });
    return revision;
  }
}

/** A missing key has revisions and version 0 and no value; see `TxnCommand`. */
function compareHolds(compare: TxnCompare, record: KvRecord | undefined): boolean {
  if (compare.target === "value") {
    if (record === undefined) return compare.op === "!=";
    return operatorHolds(compare.op, compareBytes(record.value, compare.value));
  }
  const actual = record === undefined ? 0 : record[compare.target];
  return operatorHolds(compare.op, actual - compare.value);
}

/** Whether `actual OP expected` holds, given the sign of `actual - expected`. */
function operatorHolds(operator: TxnCompareOperator, difference: number): boolean {
  switch (operator) {
    case "=":
      return difference === 0;
    case "!=":
      return difference !== 0;
    case "<":
      return difference < 0;
    case ">":
      return difference > 0;
  }
}

function countOf(items: Iterable<unknown>): number {
  let count = 0;
  for (const _ of items) count++;
  return count;
}

/** What a session keeps of a result: a transaction's get results lose their records. */
function forSession(result: KvResult): KvResult {
  if (result.op !== "txn" || !result.results.some((operation) => operation.op === "get")) return result;
  return { ...result, results: result.results.map((operation) => (operation.op === "get" ? { op: "get-forgotten" } : operation)) };
}

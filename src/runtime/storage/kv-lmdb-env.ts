/**
 * One LMDB environment holding the state machines of many consensus groups (ranges), as
 * docs/sharding.md decides: a node hosts thousands of ranges, and an environment per group
 * would cap it at a few dozen. Each group's `KvBackend` (`LmdbKvBackend`, kv-lmdb.ts) is
 * handed out by `group(id, span)`.
 *
 * The ranges' user keys never overlap, so records are stored once, keyed by the user key,
 * whichever group owns them: a group sees only the records in its span, `[start, end)` in
 * UTF-8 byte order, and a split is a change of spans (`LmdbKvBackend.setSpan`) with no
 * record copied. Everything else is the group's own and sits under its prefix.
 *
 * Layout. Group 0's keys are exactly where an environment of one group (today's
 * single-group store, kv-lmdb.ts's module comment) has them, so a data directory written
 * before there were groups opens as group 0, over the whole key space. Every other group's
 * own keys are group 0's layout with the group's prefix, `0x10 | u32 group id`, in front
 * (kv-lmdb-group-keys.ts):
 *
 *   main database     0x00, 0x00 0x61, 0x00 0x74,          group 0's meta, auth and transaction state,
 *                     0x02 | f64 client                     sessions
 *                     0x01 | UTF-8 key                      every group's records
 *   "history"         0x01.. 0x03..                          group 0's history (kv-lmdb-history.ts)
 *                     0x10 | u32 group | 0x01.. 0x03..       group g's history
 *   "leases"          0x01.. 0x03..                          group 0's leases (kv-lmdb-leases.ts)
 *                     0x10 | u32 group | 0x01.. 0x03..       group g's leases
 *   "groups"          0x01 | u32 group                       the registry: every group's span and record count (kv-lmdb-groups.ts)
 *                     0x10 | u32 group | 0x00, 0x00 0x61, 0x00 0x74, 0x02 | f64 client
 *                                                           group g's meta, auth and transaction state, sessions
 *
 * A database from before there were groups has no registry: it is group 0's, over the whole
 * key space, and is registered as such when the environment opens.
 *
 * Durability and trust are the environment's, as they were the single store's (kv-lmdb.ts,
 * "Durability"): one marker file, one boot id. An environment that cannot be trusted is
 * started empty, every group with it; the caller rebuilds each group it hosts from that
 * group's snapshot and log.
 *
 * Writes: one LMDB write transaction at a time, a group's `transaction`; a group's
 * transaction inside another group's is a programming error (an assertion).
 */
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, rmSync } from "node:fs";
import { join } from "node:path";
import { open, type RootDatabase } from "lmdb";
import { assert } from "../../core/common/assert.js";
import { assertGroupId, type GroupId } from "../../core/multi/group.js";
import { removeLeftoverTempFiles } from "./atomic-file.js";
import { LmdbKvBackend, type LmdbGroupHost } from "./kv-lmdb.js";
import type { LmdbDatabase } from "./kv-lmdb-history.js";
import { describeSpan, GroupRegistry, KvGroupSpanError, sameSpan, spanBounds, WHOLE_KEY_SPACE, type KvSpan } from "./kv-lmdb-groups.js";
import { distrust, readBootId, readMarker, removeMarker, writeMarker } from "./kv-lmdb-marker.js";

const HISTORY_DATABASE = "history";
const LEASES_DATABASE = "leases";
const GROUPS_DATABASE = "groups";
/** Main-database keys below this are group 0's meta, auth state, records and sessions. */
const NAMED_DATABASES_FROM = 0x03;
const DATA_FILE = "data.mdb";
const LOCK_FILE = "lock.mdb";

export interface LmdbKvEnvironmentOptions {
  /** A directory (created if missing) for data.mdb, lock.mdb and the marker file. Only this environment uses it. */
  readonly path: string;
  /** Where opening reports that it did not trust the database and started afresh. */
  readonly log?: (message: string) => void;
  /** The kernel's boot id; tests inject one to simulate a reboot. Defaults to `readBootId`. */
  readonly bootId?: () => string;
}

/** The databases of an environment, as its groups' backends use them. */
export interface LmdbDatabases {
  readonly main: RootDatabase<Buffer, Buffer>;
  readonly history: LmdbDatabase;
  readonly leases: LmdbDatabase;
  readonly groups: LmdbDatabase;
}

export class LmdbKvEnvironment implements LmdbGroupHost {
  /**
   * False if the database on disk could not be trusted (kv-lmdb.ts, "Durability") and was
   * replaced by an empty one: the caller restores each group from its snapshot and log.
   */
  readonly trusted: boolean;
  /** Why the database was not trusted; null when it was. */
  readonly reason: string | null;
  readonly registry: GroupRegistry;
  private readonly handles = new Map<GroupId, LmdbKvBackend>();
  /** The group whose write transaction is running, if one is. */
  private writing: GroupId | null = null;
  private closed = false;

  private constructor(
    readonly path: string,
    readonly databases: LmdbDatabases,
    private readonly bootId: string,
    /** data.mdb, opened read-only to fsync it. */
    private readonly dataFd: number,
    reason: string | null,
    readonly log: ((message: string) => void) | undefined,
  ) {
    this.trusted = reason === null;
    this.reason = reason;
    this.registry = new GroupRegistry(databases.groups, path);
  }

  /**
   * Opens (or creates) the environment at `options.path`, starting it empty if it cannot be
   * trusted. Throws what LMDB or the file system throws if the directory cannot be used.
   */
  static open(options: LmdbKvEnvironmentOptions): LmdbKvEnvironment {
    const { path } = options;
    mkdirSync(path, { recursive: true });
    removeLeftoverTempFiles(path);
    const bootId = (options.bootId ?? readBootId)();
    const reason = distrust(readMarker(path), existsSync(join(path, DATA_FILE)), bootId);
    if (reason !== null) {
      options.log?.(`not trusting the KV store in ${path}: ${reason}; starting it empty, to be rebuilt from the snapshot and the log`);
      removeDatabaseFiles(path);
    }
    // Dirty first and durably, so a machine crash from here on is noticed at the next open.
    writeMarker(path, { state: "dirty", bootId });
    const main = open<Buffer, Buffer>({
      path,
      // A directory, even if its name has a dot (lmdb-js would take it for a file name).
      noSubdir: false,
      // Our own byte layouts for keys and values: keys sort by their bytes (UTF-8 order),
      // and nothing is decoded into objects we did not ask for.
      keyEncoding: "binary",
      encoding: "binary",
      // See kv-lmdb.ts, "Durability": the log is the durable record, `flush()` syncs on demand.
      noSync: true,
      // lmdb-js's object cache would hold values a second time in JS memory, and it cannot
      // undo writes of a transaction that aborts inside another.
      cache: false,
      // Values are the clients' opaque bytes; compressing them costs CPU on every apply.
      compression: false,
      // Left at their defaults: no write map (a stray pointer cannot scribble on the
      // database, and pages are written with pwrite, which `flush()`'s fsync covers), and a
      // map that lmdb-js grows as the data does.
    });
    const named = (name: string): LmdbDatabase => main.openDB<Buffer, Buffer>({ name, keyEncoding: "binary", encoding: "binary", cache: false, compression: false });
    const databases = { main, history: named(HISTORY_DATABASE), leases: named(LEASES_DATABASE), groups: named(GROUPS_DATABASE) };
    const dataFd = openSync(join(path, DATA_FILE), "r");
    let environment: LmdbKvEnvironment;
    try {
      environment = new LmdbKvEnvironment(path, databases, bootId, dataFd, reason, options.log);
      environment.registerSingleGroupStore();
    } catch (error) {
      void main.close();
      closeSync(dataFd);
      throw error;
    }
    return environment;
  }

  /**
   * The backend of group `group`, over `span`. A group not stored yet is registered with the
   * span (its records are those already in the span, none unless a split left them there);
   * a stored group must be asked for with the span it is stored with (`spanOf`), which
   * `setSpan` changes. Throws KvGroupSpanError if the span overlaps another group's or is
   * not the stored one, InvalidInputError if it is not a span. Asking again for an open
   * group gives the same backend.
   */
  group(group: GroupId, span: KvSpan): LmdbKvBackend {
    assertGroupId(group);
    this.assertIdle();
    const bounds = spanBounds(span);
    const stored = this.registry.spanOf(group);
    if (stored !== undefined && !sameSpan(stored, span)) throw new KvGroupSpanError(`group ${group} is stored with the span ${describeSpan(stored)}, not ${describeSpan(span)}: setSpan changes a group's span`);
    const open = this.handles.get(group);
    if (open !== undefined) return open;
    if (stored === undefined) {
      const other = this.registry.overlapping(group, bounds);
      if (other !== undefined) throw new KvGroupSpanError(`group ${group}'s span ${describeSpan(span)} overlaps group ${other}'s, ${describeSpan(this.registry.spanOf(other) as KvSpan)}`);
      const { main } = this.databases;
      main.transactionSync(() => this.registry.write(group, span, bounds.whole ? 0 : main.getKeysCount({ start: bounds.from, end: bounds.to })));
      this.registry.remember(group, span);
    }
    const backend = new LmdbKvBackend(this, group, span, this.registry.storedCount(group));
    this.handles.set(group, backend);
    return backend;
  }

  /** The span group `group` is stored with, if it is. */
  spanOf(group: GroupId): KvSpan | undefined {
    return this.registry.spanOf(group);
  }

  /** Every group stored in the environment, by increasing id: what a node reopens at start. */
  groups(): { readonly group: GroupId; readonly span: KvSpan }[] {
    return this.registry.list();
  }

  /**
   * Removes everything of group `group` (its records, meta, sessions, leases, history and
   * auth state, and its registry entry) in one transaction, e.g. when its replica leaves
   * this node; its backend, if open, is closed. Nothing happens for a group not stored.
   */
  dropGroup(group: GroupId): void {
    assertGroupId(group);
    this.assertIdle();
    const span = this.registry.spanOf(group);
    if (span === undefined) return;
    const backend = this.handles.get(group) ?? new LmdbKvBackend(this, group, span, this.registry.storedCount(group));
    backend.dropStored();
    this.handles.delete(group);
  }

  /** A group's write transaction begins: no other may be running. */
  enterTransaction(group: GroupId): void {
    assert(!this.closed, "a transaction on a closed KV store");
    assert(this.writing === null, `a transaction of group ${group} inside one of group ${this.writing}`);
    this.writing = group;
  }

  leaveTransaction(): void {
    this.writing = null;
  }

  /** A group's backend was closed; the environment stays open. */
  release(group: GroupId, backend: LmdbKvBackend): void {
    if (this.handles.get(group) === backend) this.handles.delete(group);
  }

  /** The size of the database file (data.mdb) on disk, in bytes; 0 once closed. */
  sizeBytes(): number {
    return this.closed ? 0 : fstatSync(this.dataFd).size;
  }

  /** Makes every committed transaction durable: fsyncs data.mdb (kv-lmdb.ts, "Durability"). */
  flush(): void {
    assert(!this.closed, "flush of a closed KV store");
    fsyncSync(this.dataFd);
  }

  /** Flushes, closes LMDB and every group's backend, and marks the database clean, so the next open trusts it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.assertIdle();
    this.flush();
    this.closeHandles();
    await this.databases.main.close();
    closeSync(this.dataFd);
    writeMarker(this.path, { state: "clean", bootId: this.bootId });
  }

  /** Closes and deletes the database and its marker, every group with it, e.g. to rebuild it from scratch. */
  async destroy(): Promise<void> {
    if (!this.closed) {
      this.closeHandles();
      await this.databases.main.close();
      closeSync(this.dataFd);
    }
    removeDatabaseFiles(this.path);
    removeMarker(this.path);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private closeHandles(): void {
    this.closed = true;
    for (const backend of this.handles.values()) backend.detach();
    this.handles.clear();
  }

  private assertIdle(): void {
    assert(!this.closed, "the KV store is closed");
    assert(this.writing === null, `the KV store's groups change between transactions, not inside one of group ${this.writing}`);
  }

  /**
   * A database from before there were groups (data, and no registry) is group 0's, over the
   * whole key space: registered as such, so no other group can claim its records.
   */
  private registerSingleGroupStore(): void {
    if (this.registry.size > 0) return;
    const { main } = this.databases;
    if (main.getKeysCount({ end: Buffer.from([NAMED_DATABASES_FROM]), limit: 1 }) === 0) return;
    main.transactionSync(() => this.registry.write(0, WHOLE_KEY_SPACE, 0));
    this.registry.remember(0, WHOLE_KEY_SPACE);
  }
}

function removeDatabaseFiles(path: string): void {
  for (const name of [DATA_FILE, LOCK_FILE]) rmSync(join(path, name), { force: true });
}

/**
 * `synod snapshot restore`: seeds one node's data directory of a NEW cluster from a backup
 * (storage/backup-file.ts), so that the node starts with the backup's state and its log
 * continues after it. Run once per member, each with its own `--id` and the same `--peers`.
 *
 * What it writes (data-dir.ts has the layout):
 * - `snap/` and `wal/`: the backup's state as a snapshot at the backup's index and term,
 *   holding the new members as the configuration, and a checkpoint of a log that is empty
 *   after it, with a hard state in that term (consensus.ts says why the term). The index
 *   is kept, not renumbered: client session ids are entry indexes, and new sessions must
 *   not take the ids of restored ones.
 * - `kv/`: the state machine, at that index (so the node needs no rebuild at its start).
 * - `node.json`, last: a new cluster id, derived from the cluster token, the members and
 *   the backup's SHA-256. Every member restored from the same file with the same `--peers`
 *   agrees on it; members of the cluster the backup came from, or of another restore, have
 *   another, so their connections are refused (their logs are not this cluster's).
 *
 * A backup of a sharded cluster (format 2) restores every range, or nothing: `wal/` and
 * `snap/` get each range's snapshot as its log's start, in the shared log (the same write a
 * range born of a split gets at its birth, range-births.ts); `kv/` is one LMDB environment
 * (kv-lmdb-env.ts) with each range's state registered under its own span; `node.json`
 * records the ranges the cluster started with (`--shards`). At start, `recoverRanges`
 * (node-ranges.ts) finds the ranges the cluster started with by their ids, and those born of
 * splits by their logs, each with its span from the environment: no other startup path is
 * needed. A range's index and term are its own; each gets the new members.
 *
 * Nothing is written until the whole file has passed its checksum and its state decodes.
 * Only an empty directory (or one holding only `lost+found`, as a fresh volume does) is
 * restored into. `node.json` is the commit point: a node refuses a directory with a log
 * but no `node.json`, so a restore cut short (the machine died) cannot be started by
 * mistake; a restore that fails removes what it wrote.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { SynodError, InvalidInputError } from "../../core/common/errors.js";
import type { Membership, Snapshot } from "../../core/engine/contract.js";
import { decodeTxnState } from "../../core/kv/intents.js";
import { decodeSnapshot } from "../../core/kv/snapshot.js";
import { KvStore } from "../../core/kv/store.js";
import { BackupFileError, isShardedBackup, readBackupFile, type AnyBackupHeader, type RangeBackupHeader } from "../storage/backup-file.js";
import { LmdbKvBackend } from "../storage/kv-lmdb.js";
import { LmdbKvEnvironment } from "../storage/kv-lmdb-env.js";
import { LogStore } from "../storage/log-store.js";
import { SharedLog } from "../storage/shared-log.js";
import type { MemberAddress } from "./config.js";
import { consensusFor, type Consensus, type ConsensusProtocol } from "./consensus.js";
import { clusterIdFor, DATA_LAYOUT, lockDataDir, writeIdentity } from "./data-dir.js";

/** The restored log's first segment is small: the node's own segments (`--wal-segment-bytes`) follow it. */
const RESTORE_WAL_SEGMENT_BYTES = 1024 * 1024;
/** What a fresh file system puts at a volume's root; a directory holding only it is empty. */
const IGNORED_ENTRIES = new Set(["lost+found"]);

export interface RestoreOptions {
  /** The backup file. */
  readonly file: string;
  readonly dataDir: string;
  /** This node's id, one of `members`. */
  readonly id: number;
  /** Every member of the new cluster, with the peer addresses its nodes will be started with. */
  readonly members: readonly MemberAddress[];
  readonly clusterToken: string;
  readonly consensus: ConsensusProtocol;
}

export interface RestoreResult {
  readonly header: AnyBackupHeader;
  readonly sha256: string;
  readonly sessions: number;
  /** The new cluster's id. */
  readonly clusterId: string;
}

/** A restore refused before anything was written (a non-empty directory, a bad member list); the message says what to do. */
export class RestoreRefusedError extends SynodError {
  constructor(message: string) {
    super("restore_refused", message);
    this.name = "RestoreRefusedError";
  }
}

/** The state a verified backup holds, checked to decode whole. */
export interface VerifiedBackup {
  readonly header: AnyBackupHeader;
  /** The whole data, and each range's snapshot in it, in the header's order (one for format 1). */
  readonly data: Uint8Array;
  readonly parts: readonly Uint8Array[];
  readonly sha256: string;
  /** Client sessions, over every range. */
  readonly sessions: number;
}

/**
 * Reads `file` and checks it whole: its checksum, its header, and that each range's state
 * decodes and is the one the header names (its index, revision, keys, and for a sharded
 * backup its span and epoch, and no transaction across ranges left unresolved). Throws
 * BackupFileError (damaged, truncated, not a backup) or RestoreRefusedError (cannot be read).
 */
export function verifyBackupFile(file: string): VerifiedBackup {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new RestoreRefusedError(`cannot read ${file}: ${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : (error as Error).message}`);
  }
  const what = `the backup ${file}`;
  const { header, data, parts, sha256 } = readBackupFile(bytes, what);
  // What each state must be: the header's own for one range; each range's for a sharded backup.
  const expected = isShardedBackup(header) ? header.ranges.map((range) => ({ ...range, range })) : [{ ...header, range: null }];
  let sessions = 0;
  expected.forEach((wanted, i) => {
    const state = checkState(what, parts[i] as Uint8Array, wanted.range);
    if (state.index !== wanted.index || state.revision !== wanted.revision || state.keys !== wanted.keys) {
      const name = wanted.range === null ? "" : ` range ${wanted.range.id}:`;
      throw new BackupFileError(
        what,
        `passes its checksum but${name} its header (index ${wanted.index}, revision ${wanted.revision}, ${wanted.keys} keys) does not match its state (index ${state.index}, revision ${state.revision}, ${state.keys} keys)`,
      );
    }
    sessions += state.sessions;
  });
  return { header, data, parts, sha256, sessions };
}

/** One state's facts, decoded whole; for a range of a sharded backup, checked against its descriptor. */
function checkState(what: string, data: Uint8Array, range: RangeBackupHeader | null): { index: number; revision: number; keys: number; sessions: number } {
  let keys = 0;
  let sessions = 0;
  let intents = 0;
  const name = range === null ? "" : ` range ${range.id}:`;
  let decoded: ReturnType<typeof decodeSnapshot>;
  try {
    decoded = decodeSnapshot(data, { record: () => void keys++, session: () => void sessions++, txnState: (state) => void (intents = decodeTxnState(state).intents.length) });
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    throw new BackupFileError(what, `passes its checksum but${name} its state does not decode (${error.message}); it was written by another version of synod, or by a bug`);
  }
  if (range !== null) {
    const span = decoded.range ?? { start: "", end: null, epoch: 1 };
    if (span.start !== range.start || span.end !== range.end || span.epoch !== range.epoch) {
      throw new BackupFileError(what, `passes its checksum but${name} its header's span and epoch do not match its state's (${JSON.stringify(span.start)} to ${JSON.stringify(span.end)}, epoch ${span.epoch})`);
    }
    // GET /v1/snapshot reads no range while it holds one (backup.ts): such a file is not its.
    if (intents > 0) throw new BackupFileError(what, `passes its checksum but${name} it holds ${intents} transaction${intents === 1 ? "" : "s"} across ranges not resolved, which a restore cannot decide; it was not written by synod snapshot save`);
  }
  return { index: decoded.appliedIndex, revision: decoded.revision, keys, sessions };
}

/** Restores `options.file` into `options.dataDir`; see the file comment. Throws BackupFileError or RestoreRefusedError before writing anything. */
export async function restoreDataDir(options: RestoreOptions): Promise<RestoreResult> {
  const backup = verifyBackupFile(options.file);
  checkMembers(options);
  const created = checkEmpty(options.dataDir);
  const header = backup.header;
  const shards = isShardedBackup(header) ? header.shards : 1;
  const clusterId = clusterIdFor(`${options.clusterToken}\nrestored from ${backup.sha256}`, options.members, shards);
  let releaseLock: (() => void) | null = null;
  try {
    mkdirSync(options.dataDir, { recursive: true });
    releaseLock = lockDataDir(options.dataDir);
    if (isShardedBackup(header)) {
      await writeRangeLogs(options, header.ranges, backup.parts);
      await writeRangeStateMachines(options.dataDir, header.ranges, backup.parts);
    } else {
      await writeLog(options, header.index, header.term, backup.data);
      await writeStateMachine(options.dataDir, backup.data);
    }
    writeIdentity(options.dataDir, { clusterId, nodeId: options.id, consensus: options.consensus, joined: false, ...(shards > 1 ? { shards } : {}) });
  } catch (error) {
    releaseLock?.();
    releaseLock = null;
    for (const name of [DATA_LAYOUT.identity, DATA_LAYOUT.wal, DATA_LAYOUT.snapshots, DATA_LAYOUT.kv, DATA_LAYOUT.births]) rmSync(join(options.dataDir, name), { recursive: true, force: true });
    if (created) rmSync(options.dataDir, { recursive: true, force: true });
    throw error;
  } finally {
    releaseLock?.();
  }
  return { header: backup.header, sha256: backup.sha256, sessions: backup.sessions, clusterId };
}

function checkMembers(options: RestoreOptions): void {
  const ids = options.members.map((member) => member.id);
  if (new Set(ids).size !== ids.length) throw new RestoreRefusedError(`--peers lists a member twice (${ids.join(",")})`);
  if (!ids.includes(options.id)) throw new RestoreRefusedError(`--peers must list this node (${options.id}) too`);
}

/** Refuses a directory that holds anything; returns whether it must be created. */
function checkEmpty(dir: string): boolean {
  if (!existsSync(dir)) return true;
  if (!statSync(dir).isDirectory()) throw new RestoreRefusedError(`${dir} is a file, not a directory: give --data-dir a new or empty directory`);
  const entries = readdirSync(dir).filter((name) => !IGNORED_ENTRIES.has(name));
  if (entries.length > 0) {
    const shown = entries.slice(0, 5).join(", ") + (entries.length > 5 ? ", ..." : "");
    throw new RestoreRefusedError(`${dir} is not empty (it holds ${shown}): a restore never overwrites a node's data. Give --data-dir a new or empty directory`);
  }
  return false;
}

/** The new members, as every range's configuration. */
function restoredMembership(options: RestoreOptions): Membership {
  return { voters: options.members.map((member) => member.id), outgoing: [], learners: [], autoPromote: [], autoLeave: true, context: new Uint8Array(0) };
}

/** Where and how the restored write-ahead log is written (one range's, or every range's shared one). */
function restoredWal(options: RestoreOptions, consensus: Consensus) {
  return {
    dir: join(options.dataDir, DATA_LAYOUT.wal),
    snapshotDir: join(options.dataDir, DATA_LAYOUT.snapshots),
    encodeHardState: consensus.encodeHardState,
    decodeHardState: consensus.decodeHardState,
    segmentBytes: RESTORE_WAL_SEGMENT_BYTES,
  };
}

/** The snapshot the log continues from, with the new members as its configuration, and a hard state in its term. */
async function writeLog(options: RestoreOptions, index: number, term: number, data: Uint8Array): Promise<void> {
  const consensus = consensusFor(options.consensus, { electionTicks: 10, heartbeatTicks: 1 });
  const snapshot: Snapshot = { index, term, data, membership: restoredMembership(options) };
  const { store } = LogStore.open<unknown>(restoredWal(options, consensus));
  try {
    store.save({ snapshot, entries: [], hardState: consensus.restoredHardState(snapshot) });
  } finally {
    await store.close();
  }
}

async function writeStateMachine(dataDir: string, data: Uint8Array): Promise<void> {
  const { backend } = LmdbKvBackend.open({ path: join(dataDir, DATA_LAYOUT.kv) });
  try {
    KvStore.open(backend).restore(data);
  } finally {
    await backend.close();
  }
}

/** Each range's log, in the shared log: its snapshot (at its own index and term) with the new members, and a hard state in its term; one sync for all. */
async function writeRangeLogs(options: RestoreOptions, ranges: readonly RangeBackupHeader[], parts: readonly Uint8Array[]): Promise<void> {
  const consensus = consensusFor(options.consensus, { electionTicks: 10, heartbeatTicks: 1 });
  const { log } = SharedLog.open<unknown>(restoredWal(options, consensus));
  try {
    ranges.forEach((range, i) => {
      const snapshot: Snapshot = { index: range.index, term: range.term, data: parts[i] as Uint8Array, membership: restoredMembership(options) };
      new LogStore(log, range.id).save({ snapshot, entries: [], hardState: consensus.restoredHardState(snapshot) });
    });
    log.sync();
  } finally {
    await log.close();
  }
}

/** Every range's state in one LMDB environment, each registered under its span (the snapshot's range section sets it too). */
async function writeRangeStateMachines(dataDir: string, ranges: readonly RangeBackupHeader[], parts: readonly Uint8Array[]): Promise<void> {
  const environment = LmdbKvEnvironment.open({ path: join(dataDir, DATA_LAYOUT.kv) });
  try {
    ranges.forEach((range, i) => {
      KvStore.open(environment.group(range.id, { start: range.start, end: range.end })).restore(parts[i] as Uint8Array);
    });
  } finally {
    await environment.close();
  }
}

/**
 * A node's data directory: who it belongs to, and who is using it.
 *
 *   <dir>/node.json   cluster id, node id, consensus protocol, and whether the node joined
 *                     a running cluster, written once when the directory is new
 *   <dir>/LOCK        the pid of the process using the directory
 *   <dir>/wal/        the write-ahead log          <dir>/snap/   snapshots
 *   <dir>/kv/         the state machine (LMDB; every range's, on a sharded node)
 *
 * A directory of another cluster, another node id or another consensus protocol is refused
 * at start, with what to do: its log and state belong to that identity, and serving them as
 * another would be silent data corruption (a Raft log read as Paxos acceptances would hand
 * out votes as promises).
 */
import { createHash } from "node:crypto";
import { existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, sep } from "node:path";
import { SynodError } from "../../core/common/errors.js";
import { writeFileAtomic } from "../storage/atomic-file.js";
import { utf8Encode } from "../../core/common/utf8.js";
import { formatHostPort, type MemberAddress } from "./config.js";
import { decodeDirectory } from "./members.js";

/** The node cannot start with this configuration and data; the message says what to do. */
export class StartupError extends SynodError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("startup", message, options);
    this.name = "StartupError";
  }
}

export interface DataDirIdentity {
  readonly clusterId: string;
  readonly nodeId: number;
  /**
   * The consensus protocol whose log the directory holds ("raft" or "paxos"). Directories
   * written before the protocol was recorded are Raft's, the only one there was.
   */
  readonly consensus: string;
  /**
   * The node joined a running cluster (`--join`) rather than bootstrapping it: it must never
   * take its start-up peer list as a configuration, or it could elect itself alone.
   */
  readonly joined: boolean;
  /**
   * For a node that joined: the members (and their addresses) the cluster listed when it
   * joined. A snapshot or log of the bootstrap configuration names its members without
   * addresses (those were the bootstrap nodes' `--peers`), so this is where a joined node
   * finds them, across restarts.
   */
  readonly directory?: readonly MemberAddress[];
  /**
   * The ranges the cluster started with (`--shards`; absent: 1, as in every directory
   * written before there were ranges). A node restarted with another count is refused.
   */
  readonly shards?: number;
}

export const DATA_LAYOUT = { identity: "node.json", lock: "LOCK", wal: "wal", snapshots: "snap", kv: "kv", births: "births" } as const;

/**
 * The cluster id: a digest of the cluster token, the initial members' peer addresses and,
 * for a sharded cluster, its ranges: nodes started with different `--shards` are different
 * clusters, and refuse each other's connections.
 */
export function clusterIdFor(token: string, members: readonly MemberAddress[], shards = 1): string {
  const lines = [token, ...[...members].sort((a, b) => a.id - b.id).map((member) => `${member.id}=${formatHostPort(member.peer)}`)];
  if (shards > 1) lines.push(`shards=${shards}`);
  const text = lines.join("\n");
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/**
 * Checks (or, for a new directory, writes) the directory's identity. Returns the cluster id
 * to use: the one recorded, since a cluster keeps its id when its membership changes.
 */
export function checkIdentity(dir: string, wanted: DataDirIdentity): DataDirIdentity {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, DATA_LAYOUT.identity);
  if (!existsSync(path)) {
    const isNew = !existsSync(join(dir, DATA_LAYOUT.wal)) && !existsSync(join(dir, DATA_LAYOUT.kv));
    if (!isNew) throw new StartupError(`${dir} holds a log or a state machine but no ${DATA_LAYOUT.identity}; it was not written by a synod node of this version, or the file was deleted. Restore the file, or start with an empty directory.`);
    writeIdentity(dir, wanted);
    return wanted;
  }
  const recorded = readIdentity(dir);
  if (recorded === null) throw new StartupError(`${path} disappeared while the node was starting`);
  if (recorded.nodeId !== wanted.nodeId) {
    throw new StartupError(`${dir} belongs to node ${recorded.nodeId}, not ${wanted.nodeId}: start node ${recorded.nodeId} with it, or give node ${wanted.nodeId} its own --data-dir`);
  }
  if (recorded.consensus !== wanted.consensus) {
    throw new StartupError(
      `${dir} holds a ${recorded.consensus} log, and this node was started with --consensus ${wanted.consensus}: ` +
        `start it with --consensus ${recorded.consensus}, or give it an empty --data-dir to run ${wanted.consensus}`,
    );
  }
  const recordedShards = recorded.shards ?? 1;
  if (recordedShards !== (wanted.shards ?? 1)) {
    throw new StartupError(`${dir} belongs to a cluster started with --shards ${recordedShards}, and this node was started with --shards ${wanted.shards ?? 1}: start it with --shards ${recordedShards} (a cluster's ranges are fixed at its start), or give it an empty --data-dir`);
  }
  return recorded;
}

/** Records `identity` in `dir` (atomically: the file is there whole, or not at all). */
export function writeIdentity(dir: string, identity: DataDirIdentity): void {
  const directory = identity.directory?.map((m) => ({ id: m.id, peer: formatHostPort(m.peer), http: m.http }));
  const record = { clusterId: identity.clusterId, nodeId: identity.nodeId, consensus: identity.consensus, joined: identity.joined, ...(directory === undefined ? {} : { directory }), ...((identity.shards ?? 1) > 1 ? { shards: identity.shards } : {}), format: 1 };
  writeFileAtomic(join(dir, DATA_LAYOUT.identity), new TextEncoder().encode(`${JSON.stringify(record)}\n`));
}

/** The identity recorded in `dir`, or null for a directory without one. Throws StartupError when unreadable. */
export function readIdentity(dir: string): DataDirIdentity | null {
  const path = join(dir, DATA_LAYOUT.identity);
  if (!existsSync(path)) return null;
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    if (typeof parsed["clusterId"] !== "string" || typeof parsed["nodeId"] !== "number") throw new Error("missing clusterId or nodeId");
    // Directories written before `--join` existed were all bootstrapped; before the protocol
    // was recorded, all were Raft's.
    const consensus = parsed["consensus"] ?? "raft";
    if (typeof consensus !== "string") throw new Error("consensus is not a protocol name");
    const shards = parsed["shards"] ?? 1;
    if (typeof shards !== "number" || !Number.isSafeInteger(shards) || shards < 1) throw new Error("shards is not a positive integer");
    const identity = { clusterId: parsed["clusterId"], nodeId: parsed["nodeId"], consensus, joined: parsed["joined"] === true, ...(shards > 1 ? { shards } : {}) };
    return parsed["directory"] === undefined ? identity : { ...identity, directory: decodeDirectory(utf8Encode(JSON.stringify({ members: parsed["directory"] }))) ?? [] };
  } catch (error) {
    throw new StartupError(`${path} is unreadable (${(error as Error).message}); restore it from a backup or start with an empty data directory`, { cause: error });
  }
}

/**
 * Takes the directory's lock: one process at a time, since two nodes writing one log would
 * corrupt it. The lock file is created whole, with the pid in it, by a hard link of a file
 * written beforehand (a link is created atomically, or not at all), so no one ever reads a
 * half-written lock. A lock whose process is gone (killed) is moved aside and taken over;
 * the takeover is then checked by reading the lock back. (Two processes that find the same
 * stale lock within the same moment can still race; the read-back narrows that to the
 * instant between the two steps.)
 */
export function lockDataDir(dir: string): () => void {
  const path = join(dir, DATA_LAYOUT.lock);
  const mine = `${path}.${process.pid}`;
  writeFileSync(mine, `${process.pid}\n`);
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(mine, path);
        if (readHolder(path) !== process.pid) continue;
        return () => {
          if (readHolder(path) === process.pid) rmSync(path, { force: true });
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        const holder = readHolder(path);
        if (holder !== null && holder !== process.pid && processAlive(holder)) {
          throw new StartupError(`${dir} is in use by another process (pid ${holder}); stop it first, or give this node its own --data-dir`);
        }
        try {
          renameSync(path, `${path}.stale`);
        } catch (renameError) {
          if ((renameError as NodeJS.ErrnoException).code !== "ENOENT") throw renameError;
        }
      }
    }
  } finally {
    rmSync(mine, { force: true });
  }
  throw new StartupError(`could not lock ${dir}: another process keeps taking the lock`);
}

function readHolder(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, "utf8").trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * The live process holding `dir`'s lock, or null when none does (no lock, or its process is
 * gone): what `synod cluster` checks before it starts anything in a directory.
 */
export function lockHolder(dir: string): number | null {
  const holder = readHolder(join(dir, DATA_LAYOUT.lock));
  return holder !== null && holder !== process.pid && processAlive(holder) ? holder : null;
}

/**
 * A file system error met while creating or opening a data directory (`what`: the flag that
 * named it), as a StartupError whose one line says what is wrong and what to do; null for an
 * error that is not a file system one (a bug keeps its stack).
 */
export function dataDirFailure(error: unknown, dir: string, what = "--data-dir"): StartupError | null {
  const { code, path } = error as { code?: unknown; path?: unknown };
  if (typeof code !== "string" || typeof path !== "string") return null;
  // Only a failure on the directory, in it, or on the way to it is the directory's.
  const related = (inner: string, outer: string): boolean => inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : `${outer}${sep}`);
  if (!related(path, dir) && !related(dir, path)) return null;
  const where = path;
  const reason = ((): string | null => {
    switch (code) {
      case "EEXIST":
      case "ENOTDIR": {
        const file = firstFileOnPath(where);
        return `${what} ${dir} cannot be a directory: ${file ?? where} is a file. Choose another ${what}`;
      }
      case "EACCES":
      case "EPERM":
        return `cannot write in ${what} ${dir} (permission denied on ${where}): run as a user who may write there, or choose another ${what}`;
      case "EROFS":
        return `${what} ${dir} is on a read-only file system: choose another ${what}`;
      case "ENOSPC":
      case "EDQUOT":
        return `no space left for ${what} ${dir} (writing ${where}): free some, or choose another ${what}`;
      default:
        return null;
    }
  })();
  return reason === null ? null : new StartupError(reason, { cause: error });
}

/** The first path, from the root down to `path`, that exists and is not a directory; null if none. */
function firstFileOnPath(path: string): string | null {
  const chain: string[] = [];
  for (let at = path; ; at = dirname(at)) {
    chain.unshift(at);
    if (dirname(at) === at) break;
  }
  for (const at of chain) {
    try {
      if (!statSync(at).isDirectory()) return at;
    } catch {
      return null;
    }
  }
  return null;
}

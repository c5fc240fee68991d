/**
 * `synod snapshot save | restore | status`: backups of a running cluster, and new clusters
 * seeded from them (docs/operations.md). `save` asks the cluster over HTTP
 * (`GET /v1/snapshot`); `restore` and `status` work on files alone, with no node running.
 */
import { open, rename, rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { basename, dirname, join, resolve } from "node:path";
import { type Command, Option } from "commander";
import { InvalidInputError } from "../core/common/errors.js";
import { parsePeers, type MemberAddress } from "../runtime/server/config.js";
import { CONSENSUS_PROTOCOLS, type ConsensusProtocol } from "../runtime/server/consensus.js";
import { StartupError } from "../runtime/server/data-dir.js";
import { restoreDataDir, RestoreRefusedError, verifyBackupFile } from "../runtime/server/restore.js";
import { BackupFileError, BackupVerifier, isShardedBackup, type AnyBackupHeader, type ShardedBackupHeader } from "../runtime/storage/backup-file.js";
import { DEFAULT_NODE_CONFIG } from "../runtime/server/config.js";
import { commandAuthorization, endpointsOption, EXIT, integerIn } from "./client-options.js";
import { UsageError } from "./usage-error.js";

type SetExitCode = (code: number) => void;

/** Exit code of `status` and `restore` for a file that is damaged, truncated or not a backup. */
const EXIT_DAMAGED = 1;
/** How long a node may take to build the backup before its answer begins. */
const ANSWER_TIMEOUT_MS = 60_000;
/**
 * How long save waits out an election: while every node answers 503 no_leader (a majority
 * reached, a leader being chosen: a range just born of a split, or one whose leader just
 * died), it asks them all again every ELECTION_RETRY_MS, as the SDK retries a request.
 */
const ELECTION_WAIT_MS = 5_000;
const ELECTION_RETRY_MS = 200;
/** The default member list of a restore: `synod node`'s own defaults for a node alone. */
const DEFAULT_PEER = "127.0.0.1:7101";

interface SaveOptions {
  readonly endpoints: string[];
  readonly consistency: "linearizable" | "stale";
  readonly json: boolean;
}

interface RestoreFlags {
  readonly dataDir: string;
  readonly id: number;
  readonly peers?: string;
  readonly clusterToken: string;
  readonly consensus: ConsensusProtocol;
  readonly json: boolean;
}

const EXIT_CODES_HELP = `

Exit codes: 0 ok, 1 the file is damaged, truncated or not a backup (nothing written),
2 usage error or refused (e.g. a data directory that is not empty), 3 no node could give a backup.`;

export function registerSnapshotCommand(program: Command, setExitCode: SetExitCode): void {
  const snapshot = program.command("snapshot").description("back up a running cluster to a file, and seed a new cluster from one (docs/operations.md)");

  snapshot
    .command("save")
    .description("save a consistent backup of the cluster's state to FILE (written atomically, with a SHA-256)")
    .argument("<file>", "where to write the backup")
    .addOption(new Option("--consistency <level>", "linearizable: holds every write acknowledged before it (any member, after a read barrier); stale: the first reachable node's state as it is (works without a quorum)").choices(["linearizable", "stale"]).default("linearizable"))
    .addOption(endpointsOption())
    .option("--json", "print what was saved as JSON", false)
    .addHelpText("after", `
Examples:
  $ synod snapshot save backup.snap
  $ synod snapshot save /backups/synod-$(date +%F).snap --endpoints http://10.0.0.1:7001,http://10.0.0.2:7001
  $ synod snapshot save rescue.snap --consistency stale --endpoints http://127.0.0.1:7002   # quorum lost${EXIT_CODES_HELP}`)
    .action(async (file: string, options: SaveOptions) => setExitCode(await save(resolve(file), options)));

  snapshot
    .command("restore")
    .description("seed a new, empty data directory from a backup: one per member of the new cluster, each with its --id and the same --peers")
    .argument("<file>", "the backup (from synod snapshot save)")
    .requiredOption("--data-dir <dir>", "the new node's data directory (must not exist, or be empty)")
    .option("--id <n>", "the node's id in the new cluster", integerIn("--id", 1, Number.MAX_SAFE_INTEGER), 1)
    .option("--peers <list>", `every member of the new cluster: 1=HOST:PORT,2=HOST:PORT,... as its nodes will be started (default: this node alone, ${DEFAULT_PEER})`)
    .option("--cluster-token <text>", "names the new cluster with its members and the backup", DEFAULT_NODE_CONFIG.clusterToken)
    .addOption(new Option("--consensus <protocol>", "the consensus protocol of the new cluster").choices([...CONSENSUS_PROTOCOLS]).default(DEFAULT_NODE_CONFIG.consensus))
    .option("--json", "print what was restored as JSON", false)
    .addHelpText("after", `
Examples, a three-node cluster from one backup (then start each with synod node, same --id, --peers and --data-dir):
  $ PEERS=1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103
  $ synod snapshot restore backup.snap --data-dir restored/node-1 --id 1 --peers $PEERS
  $ synod snapshot restore backup.snap --data-dir restored/node-2 --id 2 --peers $PEERS
  $ synod snapshot restore backup.snap --data-dir restored/node-3 --id 3 --peers $PEERS
  $ synod cluster --data-dir restored      # the same ids and peer ports as above${EXIT_CODES_HELP}`)
    .action(async (file: string, flags: RestoreFlags) => setExitCode(await restore(resolve(file), flags)));

  snapshot
    .command("status")
    .description("verify a backup file (checksum, header, state) and print what it holds")
    .argument("<file>", "the backup")
    .option("--json", "print it as JSON", false)
    .addHelpText("after", `
Example:
  $ synod snapshot status backup.snap${EXIT_CODES_HELP}`)
    .action((file: string, options: { json: boolean }) => setExitCode(status(resolve(file), options.json)));
}

// ---- save ----

interface Saved {
  readonly header: AnyBackupHeader;
  readonly sha256: string;
  readonly bytes: number;
  readonly endpoint: string;
}

/**
 * Asks each endpoint in turn until one answers with a backup, again while an election is
 * under way on every one (up to ELECTION_WAIT_MS); writes it atomically.
 */
async function save(file: string, options: SaveOptions): Promise<number> {
  const deadlineMs = Date.now() + ELECTION_WAIT_MS;
  for (;;) {
    const round = await saveOnce(file, options);
    if (typeof round === "number") return round;
    if (!round.electing || Date.now() >= deadlineMs) return fail("save", `no node gave a backup:\n  ${round.failures.join("\n  ")}`, EXIT.unavailable);
    await sleep(ELECTION_RETRY_MS);
  }
}

/** One round of save: the exit code, or why no endpoint gave a backup and whether each said an election is under way. */
async function saveOnce(file: string, options: SaveOptions): Promise<number | { readonly failures: readonly string[]; readonly electing: boolean }> {
  const failures: string[] = [];
  let electing = true;
  for (const endpoint of options.endpoints) {
    let response: Response;
    // The timeout is for the answer to begin (the node builds the backup first); the
    // download itself may take as long as the backup's size needs.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`no answer within ${ANSWER_TIMEOUT_MS / 1000} s`)), ANSWER_TIMEOUT_MS);
    try {
      response = await fetch(`${endpoint}/v1/snapshot?consistency=${options.consistency}`, { signal: abort.signal, headers: commandAuthorization() });
    } catch (error) {
      failures.push(`${endpoint}: ${reachFailure(error)}`);
      electing = false;
      continue;
    } finally {
      clearTimeout(timer);
    }
    if (response.status !== 200 || response.body === null) {
      const answer = (await response.json().catch(() => ({}))) as Record<string, unknown>;
      const reason = `${endpoint}: ${String(answer["message"] ?? `HTTP ${response.status}`)}`;
      // A 4xx is this command's mistake and every node would say the same.
      if (response.status >= 400 && response.status < 500) return fail("save", reason, EXIT.usage);
      failures.push(reason);
      if (!(response.status === 503 && answer["error"] === "no_leader")) electing = false;
      continue;
    }
    try {
      const saved = await download(response.body, file, endpoint);
      report(options.json, { file, ...saved.header, sha256: saved.sha256, bytes: saved.bytes, endpoint }, () =>
        `saved ${displayPath(file)}: ${describeState(saved.header)}, ${formatBytes(saved.bytes)}, from node ${saved.header.nodeId} (${endpoint})\nsha256 ${saved.sha256}`,
      );
      return EXIT.ok;
    } catch (error) {
      if (error instanceof BackupFileError) return fail("save", `${error.message}; nothing was written`, EXIT_DAMAGED);
      if (isFileSystemError(error)) return fail("save", `cannot write ${file}: ${(error as Error).message}`, EXIT.usage);
      failures.push(`${endpoint}: the answer broke off (${reachFailure(error)})`);
      electing = false;
    }
  }
  return { failures, electing };
}

/**
 * Streams the answer into a temporary file beside `file` while checking it, then (only if
 * it is whole and its checksum holds) fsyncs it, renames it over `file` and fsyncs the
 * directory: `file` is the old one or the new one, never a part. A failure removes the
 * temporary file.
 */
async function download(body: ReadableStream<Uint8Array>, file: string, endpoint: string): Promise<Saved> {
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  const verifier = new BackupVerifier(`the answer of ${endpoint}`);
  let verified: ReturnType<BackupVerifier["finish"]>;
  const handle = await open(temp, "w");
  try {
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        verifier.update(chunk);
        await handle.write(chunk);
      }
      verified = verifier.finish();
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dirname(file));
  return { ...verified, bytes: verifier.bytes, endpoint };
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

// ---- restore ----

async function restore(file: string, flags: RestoreFlags): Promise<number> {
  let members: MemberAddress[];
  try {
    members = flags.peers === undefined ? parsePeers(`${flags.id}=${DEFAULT_PEER}`) : parsePeers(flags.peers);
  } catch (error) {
    if (error instanceof InvalidInputError) throw new UsageError(error.message);
    throw error;
  }
  const dataDir = resolve(flags.dataDir);
  try {
    const result = await restoreDataDir({ file, dataDir, id: flags.id, members, clusterToken: flags.clusterToken, consensus: flags.consensus });
    const peers = members.map((member) => `${member.id}=${member.peer.host}:${member.peer.port}`).join(",");
    report(flags.json, { file, dataDir, id: flags.id, clusterId: result.clusterId, backup: result.header, sessions: result.sessions, sha256: result.sha256 }, () =>
      [
        `restored ${displayPath(file)} into ${displayPath(dataDir)}: ${describeState(result.header)}`,
        `node ${flags.id} of a new cluster ${result.clusterId} (members ${members.map((m) => m.id).join(",")}). Start it with:`,
        // The directory now records its protocol and its ranges: a node started without the flags refuses it.
        `  synod node --id ${flags.id} --peers ${peers} --data-dir ${displayPath(dataDir)}${isShardedBackup(result.header) ? ` --shards ${result.header.shards}` : ""}${flags.consensus === "raft" ? "" : ` --consensus ${flags.consensus}`} ...`,
      ].join("\n"),
    );
    return EXIT.ok;
  } catch (error) {
    return fileFailure("restore", error);
  }
}

// ---- status ----

function status(file: string, json: boolean): number {
  try {
    const { header, sha256, sessions, data } = verifyBackupFile(file);
    const sessionText = `${sessions} client session${sessions === 1 ? "" : "s"}`;
    const lines = isShardedBackup(header)
      ? [
          `${displayPath(file)}: a synod backup of a sharded cluster (--shards ${header.shards}), checksum and every range's state verified`,
          `  state      ${describeState(header)}, ${sessionText}, ${formatBytes(data.length)}`,
          ...describeRanges(header).map((line) => `    ${line}`),
          `  taken      ${header.takenAt} from node ${header.nodeId} of cluster ${header.clusterId}, synod ${header.synodVersion}`,
        ]
      : [
          `${displayPath(file)}: a synod backup, checksum and state verified`,
          `  state      ${describeState(header)}, ${sessionText}, ${formatBytes(data.length)}`,
          `  taken      ${header.takenAt} from node ${header.nodeId} of cluster ${header.clusterId} (voters ${header.voters.join(",") || "unknown"}), synod ${header.synodVersion}`,
        ];
    report(json, { file, ...header, sessions, sha256, verified: true }, () => [...lines, `  sha256     ${sha256}`].join("\n"));
    return EXIT.ok;
  } catch (error) {
    return fileFailure("status", error);
  }
}

// ---- shared ----

/** One stderr line and an exit code for the errors a file command expects; anything else is a bug and propagates. */
function fileFailure(command: string, error: unknown): number {
  if (error instanceof BackupFileError) return fail(command, `${error.message}${command === "restore" ? "; nothing was written" : ""}`, EXIT_DAMAGED);
  if (error instanceof RestoreRefusedError || error instanceof StartupError) return fail(command, error.message, EXIT.usage);
  if (isFileSystemError(error)) return fail(command, (error as Error).message, EXIT.usage);
  throw error;
}

function isFileSystemError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" && /^E[A-Z]+$/.test(code) && typeof (error as NodeJS.ErrnoException).syscall === "string";
}

function fail(command: string, line: string, exitCode: number): number {
  process.stderr.write(`synod snapshot ${command}: ${line}\n`);
  return exitCode;
}

function report(json: boolean, value: object, text: () => string): void {
  process.stdout.write(`${json ? JSON.stringify(value) : text()}\n`);
}

function describeState(header: AnyBackupHeader): string {
  const keys = `${header.keys} key${header.keys === 1 ? "" : "s"}`;
  if (isShardedBackup(header)) return `${header.ranges.length} ranges, ${keys}`;
  return `${keys}, revision ${header.revision}, index ${header.index} (term ${header.term})`;
}

/** One line per range of a sharded backup: its id, span, keys, revision, index and term, epoch. */
function describeRanges(header: ShardedBackupHeader): string[] {
  const spans = header.ranges.map((range) => `[${JSON.stringify(range.start)}, ${range.end === null ? "end" : JSON.stringify(range.end)})`);
  const width = Math.max(...spans.map((span) => span.length));
  return header.ranges.map(
    (range, i) => `range ${range.id}  ${(spans[i] as string).padEnd(width)}  ${range.keys} key${range.keys === 1 ? "" : "s"}, revision ${range.revision}, index ${range.index} (term ${range.term}), epoch ${range.epoch}`,
  );
}

function reachFailure(error: unknown): string {
  // fetch wraps the socket's error (ECONNREFUSED, ...) in its cause, or in the cause's list.
  const cause = (error as { cause?: { code?: unknown; message?: unknown; errors?: { code?: unknown }[] } }).cause;
  const code = cause?.code ?? cause?.errors?.[0]?.code;
  if (typeof code === "string") return code;
  return typeof cause?.message === "string" ? cause.message : (error as Error).message;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function displayPath(path: string): string {
  const cwd = process.cwd();
  return path.startsWith(`${cwd}/`) ? path.slice(cwd.length + 1) : path;
}

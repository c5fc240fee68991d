import type { MetricsAccess } from "../runtime/server/auth-http.js";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import { InvalidInputError } from "../core/common/errors.js";
import { DEFAULT_NODE_CONFIG, isWildcard, parseHostPort, parsePeers, SHARDS_MAX, validateNodeConfig, type NodeConfig } from "../runtime/server/config.js";
import { integerIn } from "./client-options.js";
import { DEFAULT_CLIENT_LIMITS } from "../runtime/server/limits.js";
import { isStorageFailure, storageFailure } from "../runtime/server/disk-guard.js";
import { CONSENSUS_PROTOCOLS, type ConsensusProtocol } from "../runtime/server/consensus.js";
import { dataDirFailure, StartupError } from "../runtime/server/data-dir.js";
import { SynodNode } from "../runtime/server/node.js";
import type { TlsFiles } from "../runtime/tls/material.js";
import { createLogger, logFormatOption, stdoutLogFormat, type LogFormat } from "./logging.js";
import { UsageError } from "./usage-error.js";

interface NodeFlags {
  id?: number;
  idFromHostname: boolean;
  http: string;
  advertiseHttp?: string;
  peer: string;
  peers?: string;
  join?: string;
  dataDir: string;
  clusterToken: string;
  consensus: ConsensusProtocol;
  shards: number;
  splitKeys: number;
  splitLoad: number;
  replicas: number;
  replaceAfterMs: number;
  zone?: string;
  tickMs: number;
  electionTicks: number;
  requestTimeoutMs: number;
  snapshotEntries: number;
  walSegmentBytes: number;
  historyRevisions: number;
  authTokenTtlSeconds: number;
  metricsAuth: MetricsAccess;
  headersTimeoutMs: number;
  receiveTimeoutMs: number;
  maxConnections: number;
  maxInflightRequests: number;
  maxInflightBodyBytes: number;
  minFreeDiskBytes?: number;
  allowFaultInjection: boolean;
  logLevel: string;
  logFormat?: LogFormat;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

function positiveInteger(what: string) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidArgumentError(`${what} must be a positive integer`);
    return value;
  };
}

function nonNegativeInteger(what: string) {
  return (text: string): number => {
    const value = Number(text);
    if (text.trim() === "" || !Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer`);
    return value;
  };
}

export function registerNodeCommand(program: Command, setExitCode: (code: number) => void): void {
  program
    .command("node")
    .description("run one node of a cluster (for a local cluster, `synod cluster` starts three)")
    .addOption(new Option("--id <n>", "this node's id, a positive integer unique in the cluster").argParser(positiveInteger("--id")).conflicts("idFromHostname"))
    .option("--id-from-hostname", "take the id from the host name's trailing number, plus one: a StatefulSet's pod synod-0 is node 1, synod-2 node 3 (instead of --id)", false)
    .option("--http <host:port>", "where to serve the HTTP API", "127.0.0.1:7001")
    .option("--advertise-http <url>", "the HTTP URL other nodes and clients are told (default: http://<--http>)")
    .option("--peer <host:port>", "where to listen for the other nodes", "127.0.0.1:7101")
    .option("--peers <list>", "every member's peer address, this node's too: 1=HOST:PORT,2=HOST:PORT,... (default: this node alone)")
    .option("--join <url>", "join a running cluster: the HTTP URL of any member, which adds this node as a learner and promotes it once caught up (instead of --peers)")
    .option("--data-dir <dir>", "where the log, snapshots and state live", "./data")
    .option("--cluster-token <text>", "names the cluster with its members; nodes of another cluster are refused", DEFAULT_NODE_CONFIG.clusterToken)
    .addOption(new Option("--consensus <protocol>", "the consensus protocol").choices([...CONSENSUS_PROTOCOLS]).default(DEFAULT_NODE_CONFIG.consensus))
    .option("--shards <n>", `ranges the key space is cut into at the cluster's start, each its own consensus group (1 to ${SHARDS_MAX}; every node of the cluster the same)`, integerIn("--shards", 1, SHARDS_MAX), DEFAULT_NODE_CONFIG.shards)
    .option("--split-keys <n>", "on a sharded cluster, a range's leader splits it in two once it holds more than this many keys (0: never by itself)", integerIn("--split-keys", 0, Number.MAX_SAFE_INTEGER), DEFAULT_NODE_CONFIG.splitKeys)
    .option("--split-load <n>", "on a sharded cluster, a range's leader splits it at the key that halves its writes once it takes more than this many writes a second for 3 s (0: never by load)", integerIn("--split-load", 0, Number.MAX_SAFE_INTEGER), DEFAULT_NODE_CONFIG.splitLoad)
    .option("--replicas <n>", "on a sharded cluster with more members than this, each range but range 0 keeps this many replicas, placed and moved over the members (0: every member hosts every range)", integerIn("--replicas", 0, 7), DEFAULT_NODE_CONFIG.replicas)
    .option("--replace-after-ms <ms>", "with --replicas: a member unreachable this long has its ranges' replicas made again on other members", integerIn("--replace-after-ms", 1, Number.MAX_SAFE_INTEGER), DEFAULT_NODE_CONFIG.replaceAfterMs)
    .option("--zone <name>", "with --replicas: this node's failure domain (a rack, a data centre); each range spreads its replicas over as many zones as it can")
    .option("--tick-ms <ms>", "the engine's tick (heartbeat interval)", positiveInteger("--tick-ms"), DEFAULT_NODE_CONFIG.tickMs)
    .option("--election-ticks <n>", "ticks without a leader before a follower campaigns (randomized up to twice this)", positiveInteger("--election-ticks"), DEFAULT_NODE_CONFIG.electionTicks)
    .option("--request-timeout-ms <ms>", "a write or read not done by then is answered 503 timeout", positiveInteger("--request-timeout-ms"), DEFAULT_NODE_CONFIG.requestTimeoutMs)
    .option("--snapshot-entries <n>", "snapshot and compact the log after this many applied entries", positiveInteger("--snapshot-entries"), DEFAULT_NODE_CONFIG.snapshotEntries)
    .option("--wal-segment-bytes <n>", "size of a write-ahead log segment (preallocated)", positiveInteger("--wal-segment-bytes"), DEFAULT_NODE_CONFIG.walSegmentBytes)
    .option("--history-revisions <n>", "revisions of history kept for reads at a revision and watches (the leader compacts older ones); 0 keeps all until POST /v1/compact", nonNegativeInteger("--history-revisions"), DEFAULT_NODE_CONFIG.historyRevisions)
    .option("--auth-token-ttl-seconds <n>", "how long a token from POST /v1/auth/authenticate is good for", positiveInteger("--auth-token-ttl-seconds"), DEFAULT_NODE_CONFIG.authTokenTtlMs / 1000)
    .addOption(new Option("--metrics-auth <who>", "who may read /metrics once auth is enabled").choices(["open", "user", "admin"]).default(DEFAULT_NODE_CONFIG.metricsAccess))
    .option("--headers-timeout-ms <ms>", "a client's request headers must arrive within this, or it is answered 408 and closed (slowloris)", positiveInteger("--headers-timeout-ms"), DEFAULT_CLIENT_LIMITS.headersTimeoutMs)
    .option("--receive-timeout-ms <ms>", "a client's whole request, body included, must arrive within this (answers, watches among them, may take longer)", positiveInteger("--receive-timeout-ms"), DEFAULT_CLIENT_LIMITS.receiveTimeoutMs)
    .option("--max-connections <n>", "open client connections at most; a new one past it is closed at once", positiveInteger("--max-connections"), DEFAULT_CLIENT_LIMITS.connectionsMax)
    .option("--max-inflight-requests <n>", "client requests in progress at most (watches and health checks aside); past it, 503 overloaded", positiveInteger("--max-inflight-requests"), DEFAULT_CLIENT_LIMITS.inflightRequestsMax)
    .option("--max-inflight-body-bytes <n>", "bytes of request bodies being received at most; past it, 503 overloaded", positiveInteger("--max-inflight-body-bytes"), DEFAULT_CLIENT_LIMITS.inflightBodyBytesMax)
    .option("--min-free-disk-bytes <n>", "below this much free space on the data directory's disk, writes are refused (507 no_space) until space returns; 0: never (default: 64 MiB, at most 5% of the disk)", nonNegativeInteger("--min-free-disk-bytes"))
    .option("--allow-fault-injection", "let admins cut this node off from its peers, or drop a share of its messages, for a while (POST /v1/debug/faults; the dashboard's buttons)", false)
    .option("--log-level <level>", "trace, debug, info, warn, error", DEFAULT_NODE_CONFIG.logLevel)
    .addOption(logFormatOption())
    .option("--tls-cert <file>", "this node's certificate (PEM), naming urn:synod:node:<id>: serve HTTPS and use mutual TLS with peers (with --tls-key and --tls-ca)")
    .option("--tls-key <file>", "the certificate's private key (PEM)")
    .option("--tls-ca <file>", "the cluster's CA certificate (PEM): peers must present a certificate it signed")
    .addHelpText(
      "after",
      `
Example, a three-node cluster on one machine (one command per terminal):
  synod node --id 1 --http 127.0.0.1:7001 --peer 127.0.0.1:7101 --peers 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 --data-dir data/1
  synod node --id 2 --http 127.0.0.1:7002 --peer 127.0.0.1:7102 --peers 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 --data-dir data/2
  synod node --id 3 --http 127.0.0.1:7003 --peer 127.0.0.1:7103 --peers 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 --data-dir data/3
In a Kubernetes StatefulSet, each pod takes its id from its name (synod-0 is node 1):
  synod node --id-from-hostname --peers 1=synod-0.synod-peers:7101,2=synod-1.synod-peers:7101,3=synod-2.synod-peers:7101 ...
  (deploy/kubernetes/synod.yaml has the whole of it)
Then a fourth node joins it (added as a learner, a voter once it has caught up):
  synod node --id 4 --http 127.0.0.1:7004 --peer 127.0.0.1:7104 --join http://127.0.0.1:7001 --data-dir data/4
Logs go to stdout: JSON lines (pino), or one readable line per event when stdout is a
terminal (--log-format forces either). SIGINT or SIGTERM stops the node cleanly.
With TLS (synod tls makes a CA and node certificates; see docs/security.md):
  synod node --id 1 ... --tls-cert tls/node-1.pem --tls-key tls/node-1-key.pem --tls-ca tls/ca.pem
SIGHUP re-reads the three files: new connections use the new ones, no restart needed.`,
    )
    .action(async (flags: NodeFlags) => setExitCode(await runNode(flags)));
}

/**
 * The node's id: `--id`, or from the host name (`--id-from-hostname`), where an orchestrator
 * numbers its replicas from 0 (a Kubernetes StatefulSet's pods are NAME-0, NAME-1, ...) and
 * synod's ids start at 1.
 */
export function nodeIdFrom(flags: { readonly id?: number; readonly idFromHostname: boolean }, host: string = hostname()): number {
  if (flags.id !== undefined) return flags.id;
  if (!flags.idFromHostname) throw new InvalidInputError("give the node's id: --id N, or --id-from-hostname to take it from a host name like synod-0");
  const match = /-(\d{1,9})$/.exec(host);
  if (match === null) throw new InvalidInputError(`--id-from-hostname needs a host name ending in -NUMBER (like a StatefulSet's pod synod-0), not ${JSON.stringify(host)}; give --id instead`);
  return Number(match[1]) + 1;
}

function configFrom(flags: NodeFlags): NodeConfig {
  try {
    const id = nodeIdFrom(flags);
    const peer = parseHostPort(flags.peer, "--peer");
    const members = flags.peers === undefined ? [{ id, peer, http: null }] : parsePeers(flags.peers);
    const http = parseHostPort(flags.http, "--http");
    if (isWildcard(http.host) && flags.advertiseHttp === undefined) throw new InvalidInputError(`--http ${flags.http} listens on every address; say which one others should use with --advertise-http http://HOST:PORT`);
    if (flags.advertiseHttp !== undefined && !/^https?:\/\/[^/\s]+$/.test(flags.advertiseHttp)) throw new InvalidInputError("--advertise-http must be a URL like http://10.0.0.1:7001");
    return validateNodeConfig({
      ...DEFAULT_NODE_CONFIG,
      id,
      http,
      advertiseHttp: flags.advertiseHttp ?? null,
      peer,
      members,
      join: flags.join === undefined ? null : flags.join.replace(/\/$/, ""),
      dataDir: resolve(flags.dataDir),
      clusterToken: flags.clusterToken,
      consensus: flags.consensus,
      shards: flags.shards,
      splitKeys: flags.splitKeys,
      splitLoad: flags.splitLoad,
      replicas: flags.replicas,
      replaceAfterMs: flags.replaceAfterMs,
      ...(flags.zone === undefined ? {} : { zone: flags.zone }),
      tickMs: flags.tickMs,
      electionTicks: flags.electionTicks,
      requestTimeoutMs: flags.requestTimeoutMs,
      snapshotEntries: flags.snapshotEntries,
      walSegmentBytes: flags.walSegmentBytes,
      historyRevisions: flags.historyRevisions,
      authTokenTtlMs: flags.authTokenTtlSeconds * 1000,
      metricsAccess: flags.metricsAuth,
      clientLimits: {
        headersTimeoutMs: flags.headersTimeoutMs,
        receiveTimeoutMs: flags.receiveTimeoutMs,
        connectionsMax: flags.maxConnections,
        inflightRequestsMax: flags.maxInflightRequests,
        inflightBodyBytesMax: flags.maxInflightBodyBytes,
      },
      diskReserveBytes: flags.minFreeDiskBytes ?? null,
      allowFaultInjection: flags.allowFaultInjection,
      logLevel: flags.logLevel,
      tls: tlsFilesFrom(flags),
    });
  } catch (error) {
    if (error instanceof InvalidInputError) throw new UsageError(error.message);
    throw error;
  }
}

/** `--tls-cert`, `--tls-key` and `--tls-ca`: all three, or none. */
function tlsFilesFrom(flags: NodeFlags): TlsFiles | null {
  const given = [flags.tlsCert, flags.tlsKey, flags.tlsCa];
  if (given.every((file) => file === undefined)) return null;
  if (flags.tlsCert === undefined || flags.tlsKey === undefined || flags.tlsCa === undefined) {
    const missing = [flags.tlsCert === undefined ? "--tls-cert" : null, flags.tlsKey === undefined ? "--tls-key" : null, flags.tlsCa === undefined ? "--tls-ca" : null].filter((flag) => flag !== null);
    throw new InvalidInputError(`TLS needs --tls-cert, --tls-key and --tls-ca together; missing ${missing.join(" and ")}`);
  }
  if (flags.advertiseHttp?.startsWith("http://") === true) throw new InvalidInputError("--advertise-http must be an https:// URL when the node serves TLS");
  return { certFile: resolve(flags.tlsCert), keyFile: resolve(flags.tlsKey), caFile: resolve(flags.tlsCa) };
}

async function runNode(flags: NodeFlags): Promise<number> {
  const config = configFrom(flags);
  const logFormat = stdoutLogFormat(flags.logFormat);
  const log = createLogger({ level: config.logLevel, format: logFormat, base: { node: config.id } });
  let node: SynodNode;
  try {
    node = await SynodNode.start(config, log);
  } catch (error) {
    // A refusal that says what to do is one line on stderr (what `synod cluster` relays),
    // and a record in a JSON log (on a terminal, the line is enough); anything else is a
    // bug, whose stack goes to the log.
    const refusal = error instanceof StartupError ? error : dataDirFailure(error, config.dataDir);
    if (refusal === null) log.fatal({ err: error }, "cannot start");
    else if (logFormat === "json") log.fatal({ reason: refusal.message }, "cannot start");
    process.stderr.write(`synod node ${config.id}: cannot start: ${(refusal ?? (error as Error)).message}\n`);
    // Whatever the failed start left behind (a timer, a socket) must not keep a process
    // that is not a member alive.
    process.exit(1);
  }
  process.on("uncaughtException", (thrown) => {
    // A bug, or a storage failure the node cannot survive (an fsync error): stop at once
    // rather than serve from a state it can no longer vouch for.
    const error = isStorageFailure(thrown) ? storageFailure(thrown, config.dataDir) : thrown;
    log.fatal({ err: error }, "fatal error; exiting");
    process.stderr.write(`synod node ${config.id}: fatal: ${error.stack ?? error.message}\n`);
    process.exit(1);
  });
  return await new Promise<number>((resolveExit) => {
    let stopping = false;
    const shutdown = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "stopping");
      if (process.env["SYNOD_STOP_WITH_PARENT"] === "1") process.stdin.destroy();
      node.stop().then(
        () => resolveExit(0),
        (error: unknown) => {
          log.error({ err: error }, "error while stopping");
          resolveExit(1);
        },
      );
    };
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGHUP", () => {
      if (config.tls === null) return log.info({}, "SIGHUP: no TLS files to re-read");
      const refused = node.reloadTls();
      if (refused !== null) log.error({ reason: refused.message }, "SIGHUP: the TLS files were refused; the ones in use stay");
    });
    if (process.env["SYNOD_STOP_WITH_PARENT"] === "1") {
      // Started by `synod cluster` with a pipe on stdin: when the parent dies, however it
      // dies, the pipe closes and this node stops rather than live on as an orphan.
      process.stdin.resume();
      process.stdin.once("end", () => shutdown("parent exited"));
      process.stdin.once("error", () => shutdown("parent exited"));
    }
  });
}

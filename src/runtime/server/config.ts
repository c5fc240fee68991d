import type { MetricsAccess } from "./auth-http.js";
import type { TlsFiles } from "../tls/material.js";
import { assert } from "../../core/common/assert.js";
import { InvalidInputError } from "../../core/common/errors.js";
import { limits } from "../../core/common/limits.js";
import { isZoneName } from "../../core/multi/placement.js";
import { PRESPLIT_RANGES_MAX } from "../../core/multi/ranges.js";
import type { ConsensusProtocol } from "./consensus.js";
import { DEFAULT_CLIENT_LIMITS, validateClientLimits, type ClientLimits } from "./limits.js";

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** A member of the cluster as this node knows it from its command line. */
export interface MemberAddress {
  readonly id: number;
  /** Where its peer transport listens. */
  readonly peer: HostPort;
  /** Its HTTP API, when known (learned in the peer handshake otherwise). */
  readonly http: string | null;
}

/** Everything a node is started with. Durations in milliseconds, sizes in bytes. */
export interface NodeConfig {
  readonly id: number;
  readonly http: HostPort;
  /** The HTTP URL peers and clients are told (null: the bound `http` address). */
  readonly advertiseHttp: string | null;
  readonly peer: HostPort;
  /**
   * The bootstrap members, this node included (`--peers`). A node that joins (`join`) has
   * only itself here: it learns the members from the cluster.
   */
  readonly members: readonly MemberAddress[];
  /**
   * `--join URL`: the HTTP API of a member of a running cluster, which this node asks to
   * add it (as a learner, promoted once it has caught up). Null: bootstrap from `members`.
   */
  readonly join: string | null;
  readonly dataDir: string;
  /** Names the cluster together with its initial members; nodes of another cluster are refused. */
  readonly clusterToken: string;
  readonly consensus: ConsensusProtocol;
  /**
   * `--shards N`: the ranges the key space is cut into when the cluster starts, each its own
   * consensus group of every member (docs/sharding.md). 1: one group over every key. Fixed
   * at the cluster's start; its data directories record it.
   */
  readonly shards: number;
  /**
   * `--split-keys N`: on a sharded Raft cluster, a range's leader splits it at its middle
   * key once it holds more than N keys (0: never by itself; default 1,000,000).
   */
  readonly splitKeys?: number;
  /**
   * `--split-load N`: on a sharded Raft cluster, a range's leader splits it at the key that
   * halves its writes once it takes more than N writes a second for 3 s (0, the default: never).
   */
  readonly splitLoad?: number;
  /**
   * `--replicas N`: on a sharded Raft cluster with more than N members, each range but
   * range 0 keeps N replicas, placed and moved over the members (range-placement.ts);
   * 0 (the default): every member hosts every range.
   */
  readonly replicas?: number;
  /** `--replace-after-ms`: with `--replicas`, a member unreachable this long has its ranges' replicas made again on others. */
  readonly replaceAfterMs?: number;
  /** `--zone`: the node's failure domain (a rack, a data centre); with `--replicas`, each range spreads over as many zones as it can. */
  readonly zone?: string;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** A write or read that has not completed by then is answered 503 `timeout`. */
  readonly requestTimeoutMs: number;
  /** Snapshot the state machine and compact the log after this many applied entries. */
  readonly snapshotEntries: number;
  readonly walSegmentBytes: number;
  /** Largest request body; a PUT's body is the value, so at least the value limit. */
  readonly requestBodyBytesMax: number;
  /** Requests waiting for their entry to apply or their read to be confirmed. */
  readonly pendingRequestsMax: number;
  /**
   * Revisions of MVCC history kept: while leading, the node proposes compactions that keep
   * at least this many (and at most a tenth more). 0 keeps everything until `POST /v1/compact`.
   */
  readonly historyRevisions: number;
  /** How long a token from `POST /v1/auth/authenticate` is good for. */
  readonly authTokenTtlMs: number;
  /** Who may read /metrics once auth is enabled: anyone, any user, or admins. */
  readonly metricsAccess: MetricsAccess;
  /** Whether admins may inject faults into this node's peer transport (`POST /v1/debug/faults`). */
  readonly allowFaultInjection: boolean;
  readonly logLevel: string;
  /** Deadlines, connections and requests in progress a node gives its HTTP clients (limits.ts). */
  readonly clientLimits: ClientLimits;
  /**
   * `--min-free-disk-bytes`: below this much free space on the data directory's filesystem,
   * writes that add data are refused (507 `no_space`; disk-guard.ts). 0: never; null: 64 MiB,
   * at most 5% of the filesystem.
   */
  readonly diskReserveBytes: number | null;
  /**
   * `--tls-cert`, `--tls-key`, `--tls-ca`: HTTPS for clients and mutual TLS between peers,
   * with the cluster's CA (null: plain HTTP and TCP).
   */
  readonly tls: TlsFiles | null;
}

/**
 * The most ranges a cluster starts with (`--shards`): every range is a group of every member,
 * and idle ones go quiet, so what a range costs a node while idle is what limits this
 * (docs/benchmarks.md, "Idle cost of many ranges").
 */
export const SHARDS_MAX = PRESPLIT_RANGES_MAX;

/**
 * The most ranges a cluster runs, splits included; a split past it is refused with 409.
 * Each range costs every node some memory and a little CPU even when quiet
 * (docs/benchmarks.md, "Idle cost of many ranges").
 */
export const RANGES_MAX = 10_000;

export const DEFAULT_NODE_CONFIG = Object.freeze({
  clusterToken: "synod",
  consensus: "raft" as ConsensusProtocol,
  shards: 1,
  // A split copies nothing (docs/sharding.md, "Splits"): it costs a commit and a count of
  // the keys the parent keeps. A million keys is about 100 MB of 100-byte values, near
  // TiKV's 96 MiB regions.
  splitKeys: 1_000_000,
  splitLoad: 0,
  // Every member hosts every range until asked otherwise: requests for a range a node does
  // not host are forwarded to one that does, but not yet those over several ranges.
  replicas: 0,
  // A minute: long enough that a restart or a short partition does not move data.
  replaceAfterMs: 60_000,
  // 50 ms ticks, a heartbeat per tick, elections after 10 to 20 ticks: a dead leader is
  // replaced in about 0.5 to 1 s, and the lease (7 ticks) is 350 ms.
  tickMs: 50,
  electionTicks: 10,
  heartbeatTicks: 1,
  requestTimeoutMs: 5000,
  snapshotEntries: 100_000,
  walSegmentBytes: 64 * 1024 * 1024,
  requestBodyBytesMax: 4 * 1024 * 1024,
  pendingRequestsMax: 100_000,
  historyRevisions: 100_000,
  authTokenTtlMs: 10 * 60_000,
  metricsAccess: "open",
  allowFaultInjection: false,
  logLevel: "info",
  clientLimits: DEFAULT_CLIENT_LIMITS,
  diskReserveBytes: null as number | null,
  tls: null as TlsFiles | null,
});

export function validateNodeConfig(config: NodeConfig): NodeConfig {
  const positive = (value: number, name: string): void => {
    if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidInputError(`${name} must be a positive integer, got ${value}`);
  };
  positive(config.id, "--id");
  positive(config.tickMs, "tick duration");
  positive(config.electionTicks, "election ticks");
  positive(config.heartbeatTicks, "heartbeat ticks");
  positive(config.requestTimeoutMs, "--request-timeout-ms");
  positive(config.snapshotEntries, "--snapshot-entries");
  if (config.splitKeys !== undefined && (!Number.isSafeInteger(config.splitKeys) || config.splitKeys < 0)) throw new InvalidInputError(`--split-keys must be a non-negative integer (0: ranges do not split by themselves), got ${config.splitKeys}`);
  if (config.splitLoad !== undefined && (!Number.isSafeInteger(config.splitLoad) || config.splitLoad < 0)) throw new InvalidInputError(`--split-load must be a non-negative integer (writes a second; 0: ranges do not split by load), got ${config.splitLoad}`);
  if (config.replicas !== undefined && (!Number.isSafeInteger(config.replicas) || config.replicas < 0 || config.replicas > 7)) throw new InvalidInputError(`--replicas must be an integer from 0 (every member hosts every range) to 7, got ${config.replicas}`);
  if ((config.replicas ?? 0) > 0 && config.shards === 1) throw new InvalidInputError("--replicas places each range on some members only: it needs --shards 2 or more (a cluster of one range keeps it on every member)");
  if ((config.replicas ?? 0) > 0 && config.consensus !== "raft") throw new InvalidInputError("--replicas places ranges on some members only on a Raft cluster; a Paxos cluster's ranges are on every member (leave --replicas out)");
  if (config.replaceAfterMs !== undefined) positive(config.replaceAfterMs, "--replace-after-ms");
  if (config.zone !== undefined && !isZoneName(config.zone)) throw new InvalidInputError(`--zone must be 1 to 64 letters, digits, '.', '_' or '-', got ${JSON.stringify(config.zone)}`);
  if (!Number.isSafeInteger(config.shards) || config.shards < 1 || config.shards > SHARDS_MAX) throw new InvalidInputError(`--shards must be an integer from 1 to ${SHARDS_MAX}, got ${config.shards}`);
  positive(config.walSegmentBytes, "WAL segment size");
  positive(config.pendingRequestsMax, "pending requests");
  if (!Number.isSafeInteger(config.historyRevisions) || config.historyRevisions < 0) throw new InvalidInputError(`--history-revisions must be a non-negative integer, got ${config.historyRevisions}`);
  if (config.heartbeatTicks * 2 > config.electionTicks) throw new InvalidInputError("the election timeout must be at least twice the heartbeat interval");
  validateClientLimits(config.clientLimits);
  if (config.diskReserveBytes !== null && (!Number.isSafeInteger(config.diskReserveBytes) || config.diskReserveBytes < 0)) throw new InvalidInputError(`--min-free-disk-bytes must be a non-negative integer, got ${config.diskReserveBytes}`);
  if (config.requestBodyBytesMax < limits.valueBytesMax) throw new InvalidInputError(`the request body limit must hold a value of ${limits.valueBytesMax} bytes`);
  const ids = new Set<number>();
  for (const member of config.members) {
    positive(member.id, "a member id");
    if (ids.has(member.id)) throw new InvalidInputError(`member ${member.id} is listed twice in --peers`);
    ids.add(member.id);
  }
  if (!ids.has(config.id)) throw new InvalidInputError(`--peers must list this node (${config.id}) too`);
  if (config.join !== null) {
    if (config.members.length > 1) throw new InvalidInputError("--join and --peers do not go together: a joining node learns the members from the cluster");
    if (!/^https?:\/\/[^/\s]+\/?$/.test(config.join)) throw new InvalidInputError(`--join must be the URL of a member's HTTP API, like http://127.0.0.1:7001, got ${JSON.stringify(config.join)}`);
    if (config.peer.port === 0) throw new InvalidInputError("--join needs a fixed --peer port: the cluster records the address this node gives, and dials it after every restart");
    if (isWildcard(config.peer.host)) throw new InvalidInputError(`--peer ${formatHostPort(config.peer)} listens on every address, and a joining node tells the cluster where to reach it: give a reachable --peer address`);
  }
  const self = config.members.find((member) => member.id === config.id);
  assert(self !== undefined, "this node is a member");
  return config;
}

/** An address that means "every interface": fine to listen on, useless to tell others. */
export function isWildcard(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}

/** Parses `HOST:PORT` (IPv6 in brackets: `[::1]:7001`). */
export function parseHostPort(text: string, what: string): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const port = match === null ? NaN : Number(match[3]);
  if (match === null || port < 0 || port > 65535) throw new InvalidInputError(`${what} must be HOST:PORT, got ${JSON.stringify(text)}`);
  return { host: (match[1] ?? match[2]) as string, port };
}

/** Parses `--peers 1=HOST:PORT,2=HOST:PORT,...`. */
export function parsePeers(text: string): MemberAddress[] {
  return text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part.length > 0)
    .map((part) => {
      const equals = part.indexOf("=");
      const id = Number(part.slice(0, equals));
      if (equals <= 0 || !Number.isSafeInteger(id) || id <= 0) throw new InvalidInputError(`--peers entries must be ID=HOST:PORT with a positive integer ID, got ${JSON.stringify(part)}`);
      return { id, peer: parseHostPort(part.slice(equals + 1), `--peers entry ${id}`), http: null };
    });
}

export function formatHostPort(address: HostPort): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

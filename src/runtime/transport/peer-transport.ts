/**
 * The TCP transport between the members of a cluster. It carries the engine's messages,
 * which are opaque here (`unknown`, encoded by codec.ts), and knows nothing of Raft.
 *
 * Connections. Each node dials every peer and uses that connection only to send; it accepts
 * connections from its peers only to receive. So the messages from A to B always travel on
 * the connection A dialed, in the order A sent them, and "one connection per peer" means one
 * outbound connection per peer. An accepted connection carries nothing back but its
 * handshake reply.
 *
 * Handshake (handshake.ts). The dialer's first frame is `{ synod: 1, clusterId, from, to }`,
 * plus `http`, the client URL it serves, when it has one (`advertiseHttp`): that is how
 * members learn one another's HTTP addresses (reported through `onPeerHello`).
 * The acceptor checks the cluster id, that `to` is itself and that `from` is one of its
 * peers, and replies `{ ok: true }`, or `{ ok: false, reason }` and closes. A refusal is
 * logged at warn on both sides (with the remote address, the claimed ids and the reason);
 * the dialer backs off and retries. Until the hello is accepted a connection may send one
 * frame of at most 4 KiB, and must do so within `handshakeTimeoutMs` (under TLS, the TLS
 * handshake too); at most 64 such strangers are held at once, and 1088 accepted connections
 * in all. A second accepted connection from the same peer replaces the
 * first (the peer restarted, or its old connection is dead and it noticed first).
 *
 * Sending. `send` encodes at once and queues the frame on an open link, or on one whose
 * handshake is under way (at most 256 frames and 4 MiB: the first messages after a start,
 * a forwarded write or read among them, would otherwise be lost to a client's timeout).
 * While a link is down, `send` drops and returns false: the engine retransmits what
 * matters (Raft resends appends and heartbeats every tick), and a message held through a
 * backoff of seconds is stale on arrival. So no queue is kept across failed connects; what
 * is queued when a connection fails or is lost is dropped and counted. Frames queued in one event-loop turn are written together: a microtask
 * copies them into one buffer (batches of about 256 KiB) and makes one `socket.write`.
 * When the socket reports backpressure, writing stops until 'drain'; meanwhile the queue
 * grows up to `queueFramesMax` frames and `queueBytesMax` bytes, and `send` drops beyond.
 * Memory per peer is thus bounded by queueBytesMax plus one batch inside the socket.
 *
 * Reconnecting. A failed dial or a lost connection is retried after a delay with full
 * jitter between backoffMsMin and min(backoffMsMax, backoffMsMin * 2^failures); the count
 * resets when a handshake succeeds. The first failure in a streak logs a warning; repeats
 * are limited to one warning per 10 s per peer (debug in between, with a count).
 *
 * Groups. A node hosts replicas of many consensus groups, and one connection per pair of
 * nodes carries the messages of all of them: each frame's payload names its group
 * (core/wire/group.ts) and `onMessage` is told it. The hello is no group's (untagged). A
 * frame without a group header, from a node that predates groups, is group 0's.
 *
 * Heartbeat batches (heartbeat-batch.ts). The heartbeats and heartbeat responses one turn
 * sends a peer, of however many groups, go as one frame of compact entries (group, term,
 * commit, read round), queued after the turn's other frames (outbound.ts says why that
 * reordering is safe); the receiver hands each to its group as if it had come alone. Only
 * to a peer whose handshake reply said `heartbeatBatches: true`: a node of an older
 * version gets every heartbeat in a frame of its own, as before. Counted per peer in
 * heartbeatBatchesSent/Received and the heartbeats they held (/metrics shows them).
 *
 * Receiving. Each accepted connection has its own FrameDecoder (limit frameBytesMax once
 * the hello is accepted). A frame too large, a message that does not decode, or data that
 * breaks the handshake closes that connection with a warning naming the remote address;
 * nothing a peer sends can throw out of a socket handler. `onMessage` is called
 * synchronously from the socket's data handler, in order per sender; if it throws, the
 * error is logged (rate-limited) and the next message is delivered: one bad message must
 * not stop a peer's stream, and the engine is expected to validate what it is given.
 *
 * Limits (TransportLimits, defaults below): frame size, queue frames and bytes per peer,
 * backoff bounds, handshake deadline. Connection errors (ECONNREFUSED, ECONNRESET, EPIPE)
 * never surface as 'error' events; they end the connection and are logged as above.
 * `close()` stops the listener, destroys every socket and clears every timer, and resolves
 * when all sockets have closed, so nothing keeps the process alive.
 *
 * TLS (`tls`). With a TlsSource, every connection is mutual TLS with the cluster's CA: the
 * listener asks for a client certificate and refuses one the CA did not sign (logged at
 * warn, rate-limited, with the remote address and OpenSSL's reason); a dialer accepts only
 * a certificate naming the peer's id (`urn:synod:node:<id>`), and an acceptor refuses a
 * hello whose `from` is not the id its certificate names. So the hello's identity is proven
 * under TLS, and only a misconfiguration check without it. After `TlsSource.reload`, connections
 * made from then on use the new material; open ones keep theirs.
 *
 * Not here: authentication of clients (the HTTP API's business), and detecting a peer whose host vanished while data is unacknowledged (TCP
 * retransmits for minutes; the queue bound caps the cost meanwhile).
 */
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from "node:tls";
import { certificateNodeId, type TlsMaterial, type TlsSource } from "../tls/material.js";
import { assert } from "../../core/common/assert.js";
import { limits as coreLimits } from "../../core/common/limits.js";
import { FRAME_HEADER_BYTES, FRAME_PAYLOAD_BYTES_LIMIT } from "../../core/wire/frame.js";
import { DEFAULT_GROUP, type GroupId } from "../../core/multi/group.js";
import { describeError, newCounters, remoteOf, type PeerCounters, type TransportContext } from "./context.js";
import { CLUSTER_ID_LENGTH_MAX } from "./handshake.js";
import type { BatchedHeartbeat } from "./heartbeat-batch.js";
import { InboundConnection, type InboundHost } from "./inbound.js";
import { LogLimiter } from "./log-limiter.js";
import { OutboundLink } from "./outbound.js";

export interface PeerAddress {
  /** The peer's node id: a safe non-negative integer. */
  readonly id: number;
  readonly host: string;
  /** 1 .. 65535. */
  readonly port: number;
}

/** The subset of pino's logger the transport uses. */
export interface TransportLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

export interface TransportLimits {
  /** Largest frame payload, sent or received, in bytes. */
  frameBytesMax: number;
  /** Bytes queued per peer (payloads with headers) beyond which `send` drops. */
  queueBytesMax: number;
  /** Frames queued per peer beyond which `send` drops. */
  queueFramesMax: number;
  /** The shortest delay before a reconnect attempt. */
  backoffMsMin: number;
  /** The longest delay before a reconnect attempt. */
  backoffMsMax: number;
  /** How long a connection may take from dial (or accept) to an accepted hello. */
  handshakeTimeoutMs: number;
}

export const DEFAULT_TRANSPORT_LIMITS: Readonly<TransportLimits> = Object.freeze({
  // A Raft append holds about 1 MiB of entries, but one entry may be a whole command
  // (a key and two values of up to 1 MiB each); 16 MiB leaves room for both and more.
  frameBytesMax: 16 * 1024 * 1024,
  queueBytesMax: 64 * 1024 * 1024,
  queueFramesMax: 65_536,
  backoffMsMin: 50,
  backoffMsMax: 2000,
  handshakeTimeoutMs: 5000,
});

assert(DEFAULT_TRANSPORT_LIMITS.frameBytesMax >= 2 * coreLimits.commandBytesMax, "a frame must fit an append carrying the largest command");

export interface TransportOptions {
  /** Must be equal on both ends of a connection; 1 .. 256 characters. */
  readonly clusterId: string;
  /** This node's id. */
  readonly nodeId: number;
  /** Where to accept peers; port 0 binds an ephemeral port (see `port`). */
  readonly listen: { readonly host: string; readonly port: number };
  /** The other members; an entry with this node's id is ignored. Ids must be unique. */
  readonly peers: readonly PeerAddress[];
  /**
   * Called once per message received, with the group it is for, in order per sender; see
   * the file comment on throwing. A frame from a node that predates groups is group 0's.
   */
  readonly onMessage: (from: number, message: unknown, group: GroupId) => void;
  readonly log: TransportLogger;
  readonly limits?: Partial<TransportLimits>;
  /** This node's HTTP URL, sent in every hello; peers learn it through `onPeerHello`. */
  readonly advertiseHttp?: string;
  /** A peer's hello was accepted; `http` is the client URL it advertised, if any. */
  readonly onPeerHello?: (from: number, info: { readonly http: string | null }) => void;
  /** Mutual TLS with the cluster's CA (see the file comment); absent: plain TCP. */
  readonly tls?: TlsSource;
}

function tlsServerOptions(material: TlsMaterial) {
  return { cert: material.cert, key: material.key, ca: material.ca, requestCert: true, rejectUnauthorized: true };
}

export interface PeerStats {
  /** The outbound connection is open (handshake done): `send` may queue. */
  readonly connected: boolean;
  /** An accepted connection from this peer is open. */
  readonly inboundConnected: boolean;
  /** Frames handed to the socket, and their bytes with headers. */
  readonly framesSent: number;
  readonly bytesSent: number;
  /** `socket.write` calls: far fewer than framesSent when writes coalesce. */
  readonly socketWrites: number;
  /** Sends refused (down, queue full, oversize) plus queued frames lost with a connection. */
  readonly framesDropped: number;
  readonly framesReceived: number;
  /** Payload bytes received (headers not counted). */
  readonly bytesReceived: number;
  readonly dialAttempts: number;
  /** Handshakes that succeeded after the first. */
  readonly reconnects: number;
  /** Heartbeat batch frames sent (each counted once in framesSent too), and the heartbeats they carried. */
  readonly heartbeatBatchesSent: number;
  readonly heartbeatsBatchedSent: number;
  /** Heartbeat batch frames received (each counted once in framesReceived too), and the heartbeats they carried. */
  readonly heartbeatBatchesReceived: number;
  readonly heartbeatsBatchedReceived: number;
  readonly queueBytes: number;
  readonly queueFrames: number;
}

/**
 * Faults injected into this transport on purpose (`POST /v1/debug/faults`, for the
 * dashboard and for demonstrations): `isolate` drops every message to and from every peer,
 * as a partition would, while connections stay up; `dropRate` drops that share of them, each
 * message drawn at random. Dropped sends count in `framesDropped`.
 */
export interface TransportFaults {
  readonly isolate: boolean;
  /** 0 .. 1. */
  readonly dropRate: number;
}

/** Strangers (connections before their hello) held at once; more are closed on arrival. */
const PENDING_INBOUND_MAX = 64;
/**
 * Accepted connections at most, strangers and peers together (one per peer), counted from
 * the TCP accept: under TLS a stranger counts among the pending only once its TLS handshake
 * is done, and this bounds the ones still in it (each for at most `handshakeTimeoutMs`).
 */
const INBOUND_CONNECTIONS_MAX = PENDING_INBOUND_MAX + 1024;
const LOG_INTERVAL_MS = 10_000;
const LOG_KEYS_MAX = 1024;

export class PeerTransport {
  private readonly links = new Map<number, OutboundLink>();
  private readonly counters = new Map<number, PeerCounters>();
  private readonly pending = new Set<InboundConnection>();
  private readonly inbound = new Map<number, InboundConnection>();
  private readonly context: TransportContext;
  private readonly inboundHost: InboundHost;
  private boundPort = 0;
  private faults: TransportFaults | null = null;
  private closing: Promise<void> | null = null;

  /** Listens, then dials every peer; resolves once listening. Rejects if the address cannot be bound. */
  static async start(options: TransportOptions): Promise<PeerTransport> {
    const limits = resolveLimits(options.limits);
    checkOptions(options);
    const tls = options.tls;
    // Node's default TLS handshake deadline is 120 s: the hello's deadline applies to the TLS handshake too.
    const server = tls === undefined ? createServer({ noDelay: true }) : createTlsServer({ ...tlsServerOptions(tls.current), noDelay: true, handshakeTimeout: limits.handshakeTimeoutMs });
    server.maxConnections = INBOUND_CONNECTIONS_MAX;
    const transport = new PeerTransport(options, server, limits);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: options.listen.host, port: options.listen.port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (error) => options.log.error({ error: describeError(error) }, "the peer listener failed"));
    const address = server.address();
    assert(address !== null && typeof address === "object", "a listening TCP server has an address");
    transport.boundPort = address.port;
    transport.setPeers(options.peers);
    return transport;
  }

  private constructor(
    private readonly options: TransportOptions,
    private readonly server: Server,
    limits: TransportLimits,
  ) {
    const limiter = new LogLimiter(LOG_INTERVAL_MS, LOG_KEYS_MAX);
    const log = options.log;
    const limited = (level: "warn" | "error") => (key: string, fields: object, message: string) => {
      const suppressed = limiter.admit(key);
      if (suppressed === null) log.debug?.(fields, message);
      else log[level](suppressed > 0 ? { ...fields, suppressed } : fields, message);
    };
    this.context = { clusterId: options.clusterId, nodeId: options.nodeId, advertiseHttp: options.advertiseHttp ?? null, limits, tls: options.tls ?? null, log, warnLimited: limited("warn"), errorLimited: limited("error") };
    this.inboundHost = {
      context: this.context,
      isKnownPeer: (id) => this.links.has(id),
      adopt: (connection, from, hello) => {
        this.adopt(connection, from);
        this.options.onPeerHello?.(from, { http: hello.http ?? null });
      },
      deliver: (connection, message, frameBytes, group) => this.deliver(connection, message, frameBytes, group),
      deliverHeartbeats: (connection, heartbeats, frameBytes) => this.deliverHeartbeats(connection, heartbeats, frameBytes),
      forget: (connection) => this.forget(connection),
    };
    if (options.tls === undefined) {
      server.on("connection", (socket) => this.accept(socket));
    } else {
      const tlsServer = server as TlsServer;
      tlsServer.on("secureConnection", (socket: TLSSocket) => this.accept(socket, certificateNodeId(socket.getPeerCertificate().subjectaltname)));
      tlsServer.on("tlsClientError", (error, socket) => {
        this.context.warnLimited(`tls:${socket.remoteAddress}`, { remote: remoteOf(socket), error: describeError(error) }, "refused a peer's TLS handshake");
        // Node leaves a socket whose handshake timed out open: close it here.
        socket.destroy();
      });
      // Renewed material serves connections accepted from then on; dials read it each time.
      options.tls.onReload((material) => tlsServer.setSecureContext(tlsServerOptions(material)));
    }
  }

  /** The port actually bound (useful with `listen.port` 0). */
  get port(): number {
    return this.boundPort;
  }

  /**
   * Queues `message`, a message of `group` (default: group 0), for peer `to`. Returns false, and counts a drop, when `to` is not a
   * peer (or is this node), its connection is not open, or its queue is full. Delivery is
   * never certain even when true: a connection lost later loses what it had queued.
   * Throws only if `message` cannot be encoded (a cycle, say): a programming error.
   */
  send(to: number, message: unknown, group: GroupId = DEFAULT_GROUP): boolean {
    if (this.closing !== null) return false;
    const link = this.links.get(to);
    if (link === undefined) return false;
    if (this.faults !== null && this.dropsNow()) {
      const counters = this.counters.get(to);
      if (counters !== undefined) counters.framesDropped++;
      return false;
    }
    return link.send(message, group);
  }

  /** Injects faults (null: none); see TransportFaults. */
  setFaults(faults: TransportFaults | null): void {
    assert(faults === null || (faults.dropRate >= 0 && faults.dropRate <= 1), "dropRate is a share, 0 .. 1");
    this.faults = faults;
  }

  /** Whether the injected faults drop the next message. */
  private dropsNow(): boolean {
    const faults = this.faults;
    return faults !== null && (faults.isolate || Math.random() < faults.dropRate);
  }

  /**
   * Replaces the peer list: new peers are dialed, removed ones are disconnected (both
   * directions) and forgotten, and a peer whose address changed is redialed there.
   */
  setPeers(peers: readonly PeerAddress[]): void {
    assert(this.closing === null, "setPeers after close");
    const wanted = new Map<number, PeerAddress>();
    for (const peer of peers) {
      checkPeer(peer);
      assert(!wanted.has(peer.id), `peer id ${peer.id} is listed twice`);
      if (peer.id !== this.options.nodeId) wanted.set(peer.id, peer);
    }
    for (const [id, link] of this.links) {
      const next = wanted.get(id);
      if (next !== undefined && next.host === link.peer.host && next.port === link.peer.port) continue;
      void link.stop();
      this.links.delete(id);
      if (next === undefined) this.removePeer(id);
    }
    for (const [id, peer] of wanted) {
      if (this.links.has(id)) continue;
      let counters = this.counters.get(id);
      if (counters === undefined) this.counters.set(id, (counters = newCounters()));
      const link = new OutboundLink(peer, this.context, counters);
      this.links.set(id, link);
      link.start();
    }
  }

  /** A snapshot of every current peer's counters and connection state. */
  stats(): ReadonlyMap<number, PeerStats> {
    const out = new Map<number, PeerStats>();
    for (const [id, link] of this.links) {
      const counters = this.counters.get(id);
      assert(counters !== undefined, "every link has counters");
      out.set(id, { ...counters, connected: link.connected, inboundConnected: this.inbound.has(id), queueBytes: link.queueBytes, queueFrames: link.queueFrames });
    }
    return out;
  }

  /** Stops listening, closes every connection and clears every timer. Idempotent. */
  close(): Promise<void> {
    if (this.closing === null) this.closing = this.closeAll();
    return this.closing;
  }

  private async closeAll(): Promise<void> {
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const closing = [...this.links.values()].map((link) => link.stop());
    closing.push(...[...this.pending, ...this.inbound.values()].map((connection) => connection.close()));
    this.links.clear();
    await Promise.all([...closing, serverClosed]);
  }

  private accept(socket: Socket, certifiedNodeId?: number | null): void {
    if (this.closing !== null || this.pending.size >= PENDING_INBOUND_MAX) {
      this.context.warnLimited("inbound:pending-max", { remote: remoteOf(socket), pendingMax: PENDING_INBOUND_MAX }, "too many connections awaiting their handshake; closing a new one");
      socket.on("error", () => {});
      socket.destroy();
      return;
    }
    this.pending.add(new InboundConnection(socket, this.inboundHost, certifiedNodeId));
  }

  private adopt(connection: InboundConnection, from: number): void {
    this.pending.delete(connection);
    const previous = this.inbound.get(from);
    this.inbound.set(from, connection);
    if (previous !== undefined) {
      this.context.log.info({ peer: from, remote: connection.remote, previous: previous.remote }, "a peer connected again; replacing its previous connection");
      void previous.close();
    } else {
      this.context.log.info({ peer: from, remote: connection.remote }, "accepted a peer connection");
    }
    // The peer is up (it may have just restarted): the link to it need not wait out its backoff.
    this.links.get(from)?.peerConnected();
  }

  private deliver(connection: InboundConnection, message: unknown, frameBytes: number, group: GroupId): void {
    const from = connection.from;
    assert(from !== null, "only adopted connections deliver");
    if (this.faults !== null && this.dropsNow()) return;
    const counters = this.counters.get(from);
    if (counters !== undefined) {
      counters.framesReceived++;
      counters.bytesReceived += frameBytes;
    }
    this.handOver(from, message, group);
  }

  /**
   * A heartbeat batch: one frame received, then each heartbeat handed to its group as if it
   * had come alone (injected faults drop each on its own, as they would have).
   */
  private deliverHeartbeats(connection: InboundConnection, heartbeats: readonly BatchedHeartbeat[], frameBytes: number): void {
    const from = connection.from;
    assert(from !== null, "only adopted connections deliver");
    const counters = this.counters.get(from);
    if (counters !== undefined) {
      counters.framesReceived++;
      counters.bytesReceived += frameBytes;
      counters.heartbeatBatchesReceived++;
      counters.heartbeatsBatchedReceived += heartbeats.length;
    }
    for (const { group, message } of heartbeats) {
      if (this.faults !== null && this.dropsNow()) continue;
      this.handOver(from, message, group);
      // Delivering may have closed the connection (the peer removed, the transport closed): the rest is dropped, as later frames are.
      if (!connection.open) return;
    }
  }

  /** Calls onMessage; what it throws is logged and the stream goes on. */
  private handOver(from: number, message: unknown, group: GroupId): void {
    try {
      this.options.onMessage(from, message, group);
    } catch (error) {
      this.context.errorLimited(`on-message:${from}`, { peer: from, error: describeError(error), stack: error instanceof Error ? error.stack : undefined }, "onMessage threw; the message is lost, the connection goes on");
    }
  }

  private forget(connection: InboundConnection): void {
    this.pending.delete(connection);
    const from = connection.from;
    if (from !== null && this.inbound.get(from) === connection) this.inbound.delete(from);
  }

  private removePeer(id: number): void {
    this.counters.delete(id);
    const connection = this.inbound.get(id);
    this.inbound.delete(id);
    if (connection !== undefined) void connection.close();
  }
}

function resolveLimits(overrides: Partial<TransportLimits> | undefined): TransportLimits {
  const limits: TransportLimits = { ...DEFAULT_TRANSPORT_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(limits)) assert(Number.isSafeInteger(value) && value > 0, `limit ${name} must be a positive integer, got ${value}`);
  assert(limits.frameBytesMax <= FRAME_PAYLOAD_BYTES_LIMIT, "frameBytesMax must fit the u32 frame header");
  assert(limits.queueBytesMax >= limits.frameBytesMax + FRAME_HEADER_BYTES, "queueBytesMax must hold at least one frame of frameBytesMax");
  assert(limits.backoffMsMin <= limits.backoffMsMax, "backoffMsMin must not exceed backoffMsMax");
  return limits;
}

function checkOptions(options: TransportOptions): void {
  assert(typeof options.clusterId === "string" && options.clusterId.length > 0 && options.clusterId.length <= CLUSTER_ID_LENGTH_MAX, `clusterId must be 1 .. ${CLUSTER_ID_LENGTH_MAX} characters`);
  assert(Number.isSafeInteger(options.nodeId) && options.nodeId >= 0, `nodeId must be a safe non-negative integer, got ${options.nodeId}`);
  assert(Number.isInteger(options.listen.port) && options.listen.port >= 0 && options.listen.port <= 65_535, `listen port out of range: ${options.listen.port}`);
}

function checkPeer(peer: PeerAddress): void {
  assert(Number.isSafeInteger(peer.id) && peer.id >= 0, `a peer id must be a safe non-negative integer, got ${peer.id}`);
  assert(typeof peer.host === "string" && peer.host.length > 0, `peer ${peer.id} has no host`);
  assert(Number.isInteger(peer.port) && peer.port >= 1 && peer.port <= 65_535, `peer ${peer.id} has port ${peer.port}, outside 1 .. 65535`);
}

/**
 * One peer's outbound connection: dial, handshake, queue, coalesced writes, backoff.
 * See peer-transport.ts for the design; this file holds its sending half.
 */
import { connect, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import { certificateNodeId } from "../tls/material.js";
import { FRAME_HEADER_BYTES, FrameDecoder, frame, writeFrameHeader } from "../../core/wire/frame.js";
import { groupHeaderBytes, writeGroupHeader } from "../../core/wire/group.js";
import { DEFAULT_GROUP, type GroupId } from "../../core/multi/group.js";
import { decodeMessage, encodeMessage } from "./codec.js";
import { KEEPALIVE_DELAY_MS, describeError, type PeerCounters, type TransportContext } from "./context.js";
import { HANDSHAKE_FRAME_BYTES_MAX, PROTOCOL_VERSION, parseReply, type Hello, type HelloReply } from "./handshake.js";
import type { PeerAddress } from "./peer-transport.js";

/** A flush writes batches of about this size, so one huge queue is not one huge copy. */
const WRITE_BATCH_BYTES_TARGET = 256 * 1024;
/** Consumed queue slots are compacted away once this many have piled up at the front. */
const QUEUE_COMPACT_SLOTS = 4096;

/**
 * The delay before reconnect attempt number `failures` (0 after a connection that worked):
 * "full jitter" over [backoffMsMin, min(backoffMsMax, backoffMsMin * 2^failures)], so a
 * cluster that lost a node does not redial it in lockstep. `random` returns [0, 1).
 */
export function backoffDelayMs(failures: number, limits: { readonly backoffMsMin: number; readonly backoffMsMax: number }, random: () => number = Math.random): number {
  const ceilingMs = Math.min(limits.backoffMsMax, limits.backoffMsMin * 2 ** Math.min(failures, 30));
  return Math.round(limits.backoffMsMin + random() * (ceilingMs - limits.backoffMsMin));
}

type LinkState = "waiting" | "handshaking" | "open" | "stopped";

/** What may wait for a handshake to finish: a start's first messages, not a backlog. */
const HANDSHAKE_QUEUE_FRAMES_MAX = 256;
const HANDSHAKE_QUEUE_BYTES_MAX = 4 * 1024 * 1024;

/** A message waiting to be written: its frame is the group header, then `encoded`. */
interface QueuedMessage {
  readonly group: GroupId;
  readonly encoded: Uint8Array;
  /** The frame's payload size: group header and message. */
  readonly payloadBytes: number;
}

export class OutboundLink {
  private state: LinkState = "waiting";
  private socket: Socket | null = null;
  private replyDecoder: FrameDecoder | null = null;
  private lastError: string | null = null;
  /** Consecutive attempts that did not reach an open connection. */
  private failures = 0;
  private everOpened = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  /** Encoded messages not yet written, with their groups; `queue[queueHead]` is the oldest. */
  private queue: QueuedMessage[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private flushScheduled = false;
  private readonly flushNow = (): void => this.flush();

  constructor(
    readonly peer: PeerAddress,
    private readonly context: TransportContext,
    private readonly counters: PeerCounters,
  ) {}

  get connected(): boolean {
    return this.state === "open";
  }

  /** Bytes queued (payloads and their headers) and not yet handed to the socket. */
  get queueBytes(): number {
    return this.queuedBytes;
  }

  get queueFrames(): number {
    return this.queue.length - this.queueHead;
  }

  start(): void {
    if (this.state === "waiting" && this.socket === null && this.retryTimer === null) this.dial();
  }

  /**
   * The peer just connected to this node, so it is up: a link waiting out its backoff (up to
   * backoffMsMax, 2 s) dials now. A restarted peer otherwise hears nothing from this node —
   * no heartbeat, no answer — until the retry, while its own connection here already works.
   */
  peerConnected(): void {
    if (this.state !== "waiting" || this.socket !== null || this.retryTimer === null) return;
    clearTimeout(this.retryTimer);
    this.dial();
  }

  /**
   * Queues `message` if the link is open (or its handshake is under way, within a small
   * bound) and has room; false (and counted) otherwise. A connection is often still
   * handshaking just after a start, when a peer's first messages (a forwarded write, a
   * read index request) matter most and would otherwise be lost to a client's timeout;
   * what is queued then goes out once the handshake succeeds, or is dropped if it fails.
   */
  send(message: unknown, group: GroupId = DEFAULT_GROUP): boolean {
    const { limits } = this.context;
    const handshaking = this.state === "handshaking" && this.queueFrames < HANDSHAKE_QUEUE_FRAMES_MAX;
    if ((this.state !== "open" && !handshaking) || this.queueFrames >= limits.queueFramesMax) return this.drop();
    const encoded = encodeMessage(message);
    const payloadBytes = groupHeaderBytes(group) + encoded.length;
    if (payloadBytes > limits.frameBytesMax) {
      this.context.errorLimited(`oversize:${this.peer.id}`, { peer: this.peer.id, frameBytes: payloadBytes, frameBytesMax: limits.frameBytesMax }, "a message is larger than the frame limit; dropped (the engine's batch limits must stay below frameBytesMax)");
      return this.drop();
    }
    const frameBytes = FRAME_HEADER_BYTES + payloadBytes;
    if (this.queuedBytes + frameBytes > (this.state === "open" ? limits.queueBytesMax : HANDSHAKE_QUEUE_BYTES_MAX)) return this.drop();
    this.queue.push({ group, encoded, payloadBytes });
    this.queuedBytes += frameBytes;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushNow);
    }
    return true;
  }

  /** Ends the link for good; resolves once its socket, if any, has closed. */
  stop(): Promise<void> {
    this.state = "stopped";
    this.clearTimers();
    this.dropQueue();
    const socket = this.socket;
    this.socket = null;
    if (socket === null || socket.closed) return Promise.resolve();
    return new Promise((resolve) => {
      socket.once("close", () => resolve());
      socket.destroy();
    });
  }

  private drop(): false {
    this.counters.framesDropped++;
    return false;
  }

  private dial(): void {
    this.retryTimer = null;
    this.counters.dialAttempts++;
    this.state = "handshaking";
    this.lastError = null;
    this.replyDecoder = new FrameDecoder({ frameBytesMax: HANDSHAKE_FRAME_BYTES_MAX });
    const socket = this.connectSocket();
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    this.handshakeTimer = setTimeout(() => this.abandon(socket, "the handshake timed out"), this.context.limits.handshakeTimeoutMs);
    const base: Hello = { synod: PROTOCOL_VERSION, clusterId: this.context.clusterId, from: this.context.nodeId, to: this.peer.id };
    const hello: Hello = this.context.advertiseHttp === null ? base : { ...base, http: this.context.advertiseHttp };
    socket.once(this.context.tls === null ? "connect" : "secureConnect", () => socket.write(frame(encodeMessage(hello))));
    socket.on("data", (chunk: Buffer) => this.onData(socket, chunk));
    socket.on("drain", () => {
      if (this.socket === socket) this.flush();
    });
    socket.on("error", (error) => {
      if (this.socket === socket) this.lastError = describeError(error);
    });
    socket.on("close", () => this.onClose(socket));
  }

  /**
   * A TCP connection to the peer, or under TLS one that presents this node's certificate and
   * accepts only a certificate of the cluster's CA naming the peer's id (the host name is
   * not what identifies a peer; its id is).
   */
  private connectSocket(): Socket {
    const tls = this.context.tls;
    if (tls === null) return connect({ host: this.peer.host, port: this.peer.port });
    const { cert, key, ca } = tls.current;
    const expected = this.peer.id;
    return connectTls({
      host: this.peer.host,
      port: this.peer.port,
      cert,
      key,
      ca,
      checkServerIdentity: (_host, certificate) => {
        const named = certificateNodeId(certificate.subjectaltname);
        if (named === expected) return undefined;
        const error = new Error(`the peer's certificate ${named === null ? "names no node" : `names node ${named}`}, not node ${expected}`);
        (error as NodeJS.ErrnoException).code = "ERR_SYNOD_PEER_IDENTITY";
        return error;
      },
    });
  }

  /** The acceptor sends exactly one frame, its reply; anything else is a protocol error. */
  private onData(socket: Socket, chunk: Buffer): void {
    if (this.socket !== socket) return;
    const decoder = this.replyDecoder;
    if (this.state !== "handshaking" || decoder === null) return this.abandon(socket, "the peer sent data after its handshake reply");
    let reply: HelloReply | null;
    try {
      const frames = decoder.push(chunk);
      if (frames.length === 0) return;
      if (frames.length > 1 || decoder.bufferedBytes > 0) return this.abandon(socket, "the peer sent data after its handshake reply");
      reply = parseReply(decodeMessage(frames[0] as Uint8Array));
    } catch (error) {
      return this.abandon(socket, `the handshake reply is malformed: ${describeError(error)}`);
    }
    if (reply === null) return this.abandon(socket, "the handshake reply is malformed");
    if (!reply.ok) {
      this.context.warnLimited(`refused:${this.peer.id}`, this.fields(), `peer refused the handshake: ${reply.reason}`);
      this.lastError = `refused: ${reply.reason}`;
      socket.destroy();
      return;
    }
    this.opened();
  }

  private opened(): void {
    this.clearTimers();
    this.replyDecoder = null;
    this.state = "open";
    if (this.everOpened) this.counters.reconnects++;
    this.everOpened = true;
    this.context.log.info({ ...this.fields(), attempts: this.failures + 1 }, "connected to peer");
    this.failures = 0;
    if (this.queueFrames > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushNow);
    }
  }

  private abandon(socket: Socket, reason: string): void {
    if (this.socket !== socket) return;
    this.lastError = reason;
    this.context.warnLimited(`protocol:${this.peer.id}`, this.fields(), `closing the connection to a peer: ${reason}`);
    socket.destroy();
  }

  private onClose(socket: Socket): void {
    if (this.socket !== socket) return;
    const wasOpen = this.state === "open";
    this.clearTimers();
    this.dropQueue();
    this.socket = null;
    this.replyDecoder = null;
    this.state = "waiting";
    if (wasOpen) {
      this.context.log.warn({ ...this.fields(), error: this.lastError }, "lost the connection to a peer; reconnecting");
    } else {
      this.failures++;
      this.context.warnLimited(`unreachable:${this.peer.id}`, { ...this.fields(), error: this.lastError, failures: this.failures }, "cannot reach a peer; retrying with backoff");
    }
    this.retryTimer = setTimeout(() => this.dial(), backoffDelayMs(this.failures, this.context.limits));
  }

  private flush(): void {
    this.flushScheduled = false;
    const socket = this.socket;
    if (this.state !== "open" || socket === null || socket.writableNeedDrain) return;
    // Each batch takes at least one frame, so this ends within queueFramesMax batches.
    while (this.queueFrames > 0) {
      if (!this.writeBatch(socket)) return; // resumed by 'drain'
    }
  }

  /** Writes the oldest frames, up to about WRITE_BATCH_BYTES_TARGET, in one socket write. */
  private writeBatch(socket: Socket): boolean {
    let end = this.queueHead;
    let bytes = 0;
    while (end < this.queue.length) {
      const frameBytes = FRAME_HEADER_BYTES + (this.queue[end] as QueuedMessage).payloadBytes;
      if (bytes > 0 && bytes + frameBytes > WRITE_BATCH_BYTES_TARGET) break;
      bytes += frameBytes;
      end++;
    }
    const batch = Buffer.allocUnsafe(bytes);
    let at = 0;
    for (let i = this.queueHead; i < end; i++) {
      const { group, encoded, payloadBytes } = this.queue[i] as QueuedMessage;
      writeFrameHeader(batch, at, payloadBytes);
      // Every frame names its group, so one connection serves every group two nodes share.
      batch.set(encoded, writeGroupHeader(batch, at + FRAME_HEADER_BYTES, group));
      at += FRAME_HEADER_BYTES + payloadBytes;
    }
    this.counters.framesSent += end - this.queueHead;
    this.counters.bytesSent += bytes;
    this.counters.socketWrites++;
    this.queuedBytes -= bytes;
    this.consumeQueue(end);
    return socket.write(batch);
  }

  private consumeQueue(end: number): void {
    if (end === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else {
      this.queueHead = end;
      if (this.queueHead >= QUEUE_COMPACT_SLOTS) {
        this.queue = this.queue.slice(this.queueHead);
        this.queueHead = 0;
      }
    }
  }

  private dropQueue(): void {
    this.counters.framesDropped += this.queueFrames;
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
  }

  private clearTimers(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.retryTimer = null;
    this.handshakeTimer = null;
  }

  private fields(): Record<string, unknown> {
    return { peer: this.peer.id, address: `${this.peer.host}:${this.peer.port}` };
  }
}

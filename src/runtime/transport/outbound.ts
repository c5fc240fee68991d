/**
 * One peer's outbound connection: dial, handshake, queue, coalesced writes, backoff.
 * See peer-transport.ts for the design; this file holds its sending half.
 */
import { connect, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import { certificateNodeId } from "../tls/material.js";
import { assert } from "../../core/common/assert.js";
import { FRAME_HEADER_BYTES, FrameDecoder, frame, writeFrameHeader } from "../../core/wire/frame.js";
import { HEARTBEAT_BATCH_PREFIX, groupHeaderBytes, writeGroupHeader } from "../../core/wire/group.js";
import { DEFAULT_GROUP, type GroupId } from "../../core/multi/group.js";
import { decodeMessage, encodeMessage } from "./codec.js";
import { KEEPALIVE_DELAY_MS, describeError, type PeerCounters, type TransportContext } from "./context.js";
import { HANDSHAKE_FRAME_BYTES_MAX, PROTOCOL_VERSION, parseReply, type Hello, type HelloReply } from "./handshake.js";
import { HEARTBEAT_BATCH_OVERHEAD_BYTES, HEARTBEAT_ENTRY_BYTES_MAX, HEARTBEATS_PER_BATCH_MAX, appendHeartbeat, encodeHeartbeatBatch, heartbeatsOf } from "./heartbeat-batch.js";
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

/**
 * A frame waiting to be written: the group header (or, for a heartbeat batch, its prefix),
 * then `encoded`.
 */
interface QueuedMessage {
  readonly group: GroupId;
  readonly encoded: Uint8Array;
  /** The frame's payload size: group header (or batch prefix) and message. */
  readonly payloadBytes: number;
  /** The heartbeats of a heartbeat batch; 0 for one group's message. */
  readonly heartbeats: number;
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
  /** The peer's handshake reply said it reads heartbeat batches (heartbeat-batch.ts); reset on every dial. */
  private peerReadsBatches = false;
  /**
   * The heartbeat batch of this turn, not yet queued: entries as appendHeartbeat builds
   * them, `batchHeartbeats` of them. It counts as one queued frame of at most
   * batchBytesBound() bytes, and joins the queue when the turn's flush runs (or at
   * heartbeatsPerBatchMax).
   */
  private batch: number[] = [];
  private batchHeartbeats = 0;
  /** Heartbeats a batch may hold: HEARTBEATS_PER_BATCH_MAX, fewer if frameBytesMax is small (below 2: none are batched). */
  private readonly heartbeatsPerBatchMax: number;

  constructor(
    readonly peer: PeerAddress,
    private readonly context: TransportContext,
    private readonly counters: PeerCounters,
  ) {
    const fitting = Math.floor((context.limits.frameBytesMax - HEARTBEAT_BATCH_OVERHEAD_BYTES) / HEARTBEAT_ENTRY_BYTES_MAX);
    this.heartbeatsPerBatchMax = Math.max(0, Math.min(HEARTBEATS_PER_BATCH_MAX, fitting));
  }

  get connected(): boolean {
    return this.state === "open";
  }

  /** Bytes queued (payloads and their headers, an open heartbeat batch at its bound) and not yet handed to the socket. */
  get queueBytes(): number {
    return this.queuedBytes + this.batchBytesBound();
  }

  /** Frames queued, an open heartbeat batch counting as one. */
  get queueFrames(): number {
    return this.queue.length - this.queueHead + (this.batchHeartbeats > 0 ? 1 : 0);
  }

  /** The most bytes the open heartbeat batch's frame can take (0: none open). */
  private batchBytesBound(): number {
    return this.batchHeartbeats === 0 ? 0 : FRAME_HEADER_BYTES + HEARTBEAT_BATCH_OVERHEAD_BYTES + this.batchHeartbeats * HEARTBEAT_ENTRY_BYTES_MAX;
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
    if (this.state === "open" && this.peerReadsBatches && this.heartbeatsPerBatchMax >= 2) {
      const batched = this.batchHeartbeat(message, group);
      if (batched !== null) return batched;
    }
    const handshaking = this.state === "handshaking" && this.queueFrames < HANDSHAKE_QUEUE_FRAMES_MAX;
    if ((this.state !== "open" && !handshaking) || this.queueFrames >= limits.queueFramesMax) return this.drop();
    const encoded = encodeMessage(message);
    const payloadBytes = groupHeaderBytes(group) + encoded.length;
    if (payloadBytes > limits.frameBytesMax) {
      this.context.errorLimited(`oversize:${this.peer.id}`, { peer: this.peer.id, frameBytes: payloadBytes, frameBytesMax: limits.frameBytesMax }, "a message is larger than the frame limit; dropped (the engine's batch limits must stay below frameBytesMax)");
      return this.drop();
    }
    const frameBytes = FRAME_HEADER_BYTES + payloadBytes;
    if (this.queueBytes + frameBytes > (this.state === "open" ? limits.queueBytesMax : HANDSHAKE_QUEUE_BYTES_MAX)) return this.drop();
    this.queue.push({ group, encoded, payloadBytes, heartbeats: 0 });
    this.queuedBytes += frameBytes;
    this.scheduleFlush();
    return true;
  }

  /**
   * Adds a heartbeat (or heartbeat response) to this turn's batch: true, or false (dropped,
   * counted) when the queue has no room for it; null when `message` is not one
   * (heartbeat-batch.ts says which shapes are).
   *
   * Ordering. The batch joins the queue when the turn's flush runs, after every frame queued
   * in the turn, so a heartbeat may arrive after a message that was sent after it in the
   * same turn, of its own group or another, never before anything sent before it. Raft is
   * safe with that: its safety never rests on the order of messages (the network may
   * reorder them; the simulator does), only on terms, which every message carries. In
   * particular a heartbeat's commit is min(the follower's match, the leader's commit), an
   * index the follower already holds as the leader does, so it stays true however late it
   * arrives after an append of the same leader; a stale-term heartbeat (its leader stepped
   * down in the same turn) is refused as any stale message is; a late quiesce heartbeat
   * finds the follower's log past its commit and leaves it awake, as the append did; a
   * late heartbeat response only delays a read round or a lease. A heartbeat of a group
   * another message (in group 0, say) removed from this node in the same turn is a message
   * for a group not hosted there, as a third node's may be at any time.
   */
  private batchHeartbeat(message: unknown, group: GroupId): boolean | null {
    const { limits } = this.context;
    const opening = this.batchHeartbeats === 0;
    const before = this.batch.length;
    if (!appendHeartbeat(this.batch, group, message)) return null;
    const roomy = (!opening || this.queueFrames < limits.queueFramesMax) && this.queueBytes + HEARTBEAT_ENTRY_BYTES_MAX + (opening ? FRAME_HEADER_BYTES + HEARTBEAT_BATCH_OVERHEAD_BYTES : 0) <= limits.queueBytesMax;
    if (!roomy) {
      this.batch.length = before;
      return this.drop();
    }
    this.batchHeartbeats++;
    if (this.batchHeartbeats >= this.heartbeatsPerBatchMax) this.sealBatch();
    this.scheduleFlush();
    return true;
  }

  /** Queues the open heartbeat batch as one frame (a lone heartbeat as its own frame, as before batches). */
  private sealBatch(): void {
    if (this.batchHeartbeats === 0) return;
    const entries = this.batch;
    const heartbeats = this.batchHeartbeats;
    this.batch = [];
    this.batchHeartbeats = 0;
    if (heartbeats === 1) {
      const [only] = heartbeatsOf(entries);
      assert(only !== undefined, "a batch of one holds one heartbeat");
      const encoded = encodeMessage(only.message);
      const payloadBytes = groupHeaderBytes(only.group) + encoded.length;
      this.queue.push({ group: only.group, encoded, payloadBytes, heartbeats: 0 });
      this.queuedBytes += FRAME_HEADER_BYTES + payloadBytes;
      return;
    }
    const encoded = encodeHeartbeatBatch(entries);
    const payloadBytes = HEARTBEAT_BATCH_PREFIX.length + encoded.length;
    assert(payloadBytes <= HEARTBEAT_BATCH_OVERHEAD_BYTES + heartbeats * HEARTBEAT_ENTRY_BYTES_MAX, "a heartbeat batch stays within its bound");
    this.queue.push({ group: DEFAULT_GROUP, encoded, payloadBytes, heartbeats });
    this.queuedBytes += FRAME_HEADER_BYTES + payloadBytes;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(this.flushNow);
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
    this.peerReadsBatches = false;
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
    // A peer of an older version says nothing of batches, and gets every heartbeat alone.
    this.peerReadsBatches = reply.heartbeatBatches === true;
    this.opened();
  }

  private opened(): void {
    this.clearTimers();
    this.replyDecoder = null;
    this.state = "open";
    if (this.everOpened) this.counters.reconnects++;
    this.everOpened = true;
    this.context.log.info({ ...this.fields(), attempts: this.failures + 1, heartbeatBatches: this.peerReadsBatches }, "connected to peer");
    this.failures = 0;
    if (this.queueFrames > 0) this.scheduleFlush();
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
    // The turn is over: its heartbeats go as one frame, after what the turn queued before.
    this.sealBatch();
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
      const { group, encoded, payloadBytes, heartbeats } = this.queue[i] as QueuedMessage;
      writeFrameHeader(batch, at, payloadBytes);
      if (heartbeats > 0) {
        batch.set(HEARTBEAT_BATCH_PREFIX, at + FRAME_HEADER_BYTES);
        batch.set(encoded, at + FRAME_HEADER_BYTES + HEARTBEAT_BATCH_PREFIX.length);
        this.counters.heartbeatBatchesSent++;
        this.counters.heartbeatsBatchedSent += heartbeats;
      } else {
        // Every frame names its group, so one connection serves every group two nodes share.
        batch.set(encoded, writeGroupHeader(batch, at + FRAME_HEADER_BYTES, group));
      }
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

  /** Drops what is queued, and the open heartbeat batch: each frame counts one, and each heartbeat of a batch one. */
  private dropQueue(): void {
    for (let i = this.queueHead; i < this.queue.length; i++) this.counters.framesDropped += Math.max(1, (this.queue[i] as QueuedMessage).heartbeats);
    this.counters.framesDropped += this.batchHeartbeats;
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.batch = [];
    this.batchHeartbeats = 0;
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

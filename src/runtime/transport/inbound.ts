/**
 * One accepted connection: hello check, then frames in, messages out to the transport.
 * See peer-transport.ts for the design; this file holds its receiving half.
 */
import type { Socket } from "node:net";
import { FrameDecoder, frame } from "../../core/wire/frame.js";
import { isHeartbeatBatch, readGroupHeader } from "../../core/wire/group.js";
import type { GroupId } from "../../core/multi/group.js";
import { decodeMessage, encodeMessage } from "./codec.js";
import { KEEPALIVE_DELAY_MS, describeError, remoteOf, type TransportContext } from "./context.js";
import { decodeHeartbeatBatch, type BatchedHeartbeat } from "./heartbeat-batch.js";
import { HANDSHAKE_FRAME_BYTES_MAX, checkHello, describeHello, isRefusal, type Hello, type HelloReply } from "./handshake.js";

export interface InboundHost {
  readonly context: TransportContext;
  isKnownPeer(id: number): boolean;
  /** The hello checked out: this connection now speaks for `from`. */
  adopt(connection: InboundConnection, from: number, hello: Hello): void;
  /** One decoded message of `group` from an adopted connection. */
  deliver(connection: InboundConnection, message: unknown, frameBytes: number, group: GroupId): void;
  /** The heartbeats of one batch frame of `frameBytes`, each to be delivered to its group in order. */
  deliverHeartbeats(connection: InboundConnection, heartbeats: readonly BatchedHeartbeat[], frameBytes: number): void;
  /** The socket closed, for whatever reason. */
  forget(connection: InboundConnection): void;
}

/** The accepting reply; it says this node reads heartbeat batches, which every connection here decodes. */
const encodedOk = frame(encodeMessage({ ok: true, heartbeatBatches: true } satisfies HelloReply));

export class InboundConnection {
  /** The peer this connection speaks for, once its hello was accepted. */
  private peerId: number | null = null;
  private decoder = new FrameDecoder({ frameBytesMax: HANDSHAKE_FRAME_BYTES_MAX });
  private handshakeTimer: NodeJS.Timeout | null;
  private finished = false;
  private refused = false;
  readonly remote: string;

  constructor(
    private readonly socket: Socket,
    private readonly host: InboundHost,
    /** Under TLS, the node id the peer's certificate names (null: none); undefined without TLS. */
    private readonly certifiedNodeId?: number | null,
  ) {
    this.remote = remoteOf(socket);
    socket.setNoDelay(true);
    // Until its hello arrives the connection is a stranger: it gets a small frame limit and
    // a deadline, and is also closed at that deadline if it was refused but lingers.
    this.handshakeTimer = setTimeout(() => this.onDeadline(), host.context.limits.handshakeTimeoutMs);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (error) => host.context.log.debug?.({ remote: this.remote, peer: this.peerId, error: describeError(error) }, "peer connection error"));
    socket.on("close", () => {
      this.finish();
      host.forget(this);
    });
  }

  get from(): number | null {
    return this.peerId;
  }

  /** Not yet closed (nor closing): what arrives on it is still delivered. */
  get open(): boolean {
    return !this.finished;
  }

  /** Closes the connection; resolves once the socket has closed. */
  close(): Promise<void> {
    this.finish();
    if (this.socket.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once("close", () => resolve());
      this.socket.destroy();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.finished) return;
    let payloads: Uint8Array[];
    try {
      payloads = this.decoder.push(chunk);
    } catch (error) {
      return this.reject("frame", `a malformed frame: ${describeError(error)}`);
    }
    if (this.peerId === null) return this.onHello(payloads);
    for (const payload of payloads) {
      if (isHeartbeatBatch(payload)) {
        let heartbeats: BatchedHeartbeat[];
        try {
          heartbeats = decodeHeartbeatBatch(payload);
        } catch (error) {
          return this.reject("batch", describeError(error));
        }
        this.host.deliverHeartbeats(this, heartbeats, payload.length);
        if (this.finished) return;
        continue;
      }
      let message: unknown;
      let group: GroupId;
      try {
        // A frame from a node that predates groups has no group header: it is group 0's.
        const tagged = readGroupHeader(payload);
        group = tagged.group;
        message = decodeMessage(tagged.message);
      } catch (error) {
        return this.reject("decode", describeError(error));
      }
      this.host.deliver(this, message, payload.length, group);
      // Delivering may have closed this connection (a peer removed, the transport closed).
      if (this.finished) return;
    }
  }

  private onHello(payloads: Uint8Array[]): void {
    if (payloads.length === 0) return;
    if (payloads.length > 1 || this.decoder.bufferedBytes > 0) return this.reject("early", "data after the hello, before the reply");
    let hello: unknown;
    try {
      hello = decodeMessage(payloads[0] as Uint8Array);
    } catch (error) {
      return this.reject("decode", `the hello does not decode: ${describeError(error)}`);
    }
    const { context } = this.host;
    const checked = checkHello(hello, {
      clusterId: context.clusterId,
      nodeId: context.nodeId,
      isKnownPeer: (id) => this.host.isKnownPeer(id),
      ...(this.certifiedNodeId === undefined ? {} : { certifiedNodeId: this.certifiedNodeId }),
    });
    if (isRefusal(checked)) {
      context.warnLimited(`refuse:${this.socket.remoteAddress}:${checked.code}`, { remote: this.remote, ...describeHello(hello), reason: checked.reason }, "refused a peer's handshake");
      // The deadline timer stays armed: it closes the socket if the dialer never does.
      this.finished = true;
      this.refused = true;
      this.socket.end(frame(encodeMessage({ ok: false, reason: checked.reason } satisfies HelloReply)));
      return;
    }
    this.clearTimer();
    this.peerId = checked.from;
    this.decoder = new FrameDecoder({ frameBytesMax: context.limits.frameBytesMax });
    this.host.adopt(this, checked.from, checked);
    this.socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    this.socket.write(encodedOk);
  }

  private onDeadline(): void {
    this.handshakeTimer = null;
    if (this.refused) this.socket.destroy();
    else this.reject("timeout", "no hello before the handshake deadline");
  }

  /** Logs why, and closes without a reply: the peer broke the protocol. */
  private reject(code: string, reason: string): void {
    if (this.finished) return;
    this.host.context.warnLimited(`inbound:${this.socket.remoteAddress}:${code}`, { remote: this.remote, peer: this.peerId, reason }, "closing a peer connection");
    this.finish();
    this.socket.destroy();
  }

  private finish(): void {
    this.finished = true;
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
  }
}

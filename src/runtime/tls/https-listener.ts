/**
 * Serving HTTP over TLS on a port that answers a plain-text client with words, not silence.
 *
 * A TLS connection starts with a handshake record (its first byte is 22); anything else on
 * an HTTPS port is a client that forgot the `s` in `https://`. Node's HTTPS server would
 * drop it with an OpenSSL error the client never sees, so a plain TCP listener looks at the
 * first byte of each connection: a handshake goes on to the HTTPS server, anything else gets
 * a 400 in plain HTTP saying to use HTTPS with the cluster's CA, and is closed.
 *
 * Node cannot peek at a socket, and a TLS server reading a TCP socket reads its handle, not
 * what was pushed back into the stream: so the HTTPS server is handed a duplex stream that
 * replays the first chunk and then relays the socket (TLS wraps such a stream in JavaScript).
 */
import type { RequestListener } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from "node:net";
import { Duplex } from "node:stream";
import type { TlsMaterial, TlsSource } from "./material.js";

/** The first byte of a TLS record carrying a handshake. */
const TLS_HANDSHAKE = 22;
/** A connection that sends nothing for this long is closed (it would hold a socket for ever). */
const FIRST_BYTE_TIMEOUT_MS = 10_000;
/**
 * A TLS handshake not done by then is abandoned (Node's default is 120 s): until it is done
 * the HTTP server's own deadlines have not started.
 */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** How often the HTTP server checks its requests' deadlines (as limits.ts's for plain HTTP). */
const CONNECTIONS_CHECK_INTERVAL_MS = 1000;

/** What a node does with its client listener, HTTP or HTTPS alike. */
export interface ApiListener {
  listen(port: number, host: string, listening: () => void): void;
  once(event: "error", listener: (error: NodeJS.ErrnoException) => void): void;
  on(event: "error", listener: (error: Error) => void): void;
  address(): AddressInfo | string | null;
  readonly listening: boolean;
  close(closed: () => void): void;
  closeIdleConnections(): void;
  closeAllConnections(): void;
}

function serverOptions(material: TlsMaterial) {
  return { cert: material.cert, key: material.key, ca: material.ca };
}

/** A socket whose first chunk was already read, made whole again for the TLS layer. */
class Replayed extends Duplex {
  constructor(
    private readonly socket: Socket,
    first: Buffer,
  ) {
    super({ allowHalfOpen: false });
    this.push(first);
    socket.on("data", (chunk: Buffer) => {
      if (!this.push(chunk)) socket.pause();
    });
    socket.on("end", () => this.push(null));
    socket.on("close", () => this.destroy());
  }
  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }
  setNoDelay(noDelay?: boolean): this {
    this.socket.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, delayMs?: number): this {
    this.socket.setKeepAlive(enable, delayMs);
    return this;
  }
  override _read(): void {
    this.socket.resume();
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.socket.write(chunk, done);
  }
  override _final(done: (error?: Error | null) => void): void {
    this.socket.end(done);
  }
  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.socket.destroy();
    done(error);
  }
}

/** The answer to a plain-text request on an HTTPS port. */
function plainTextRefusal(): Buffer {
  const body = JSON.stringify({
    error: "tls_required",
    message: "this node serves HTTPS only: use an https:// URL and trust the cluster's CA (curl --cacert ca.pem https://...)",
  });
  return Buffer.from(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/**
 * An HTTPS listener for `handler` with `source`'s material (renewed material applies to new
 * connections after `source.reload()`), refusing plain-text clients with a readable 400.
 */
export function createHttpsListener(handler: RequestListener, source: TlsSource, configure: (server: HttpsServer) => void): ApiListener & { readonly tcp: TcpServer } {
  const https = createHttpsServer({ ...serverOptions(source.current), handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS, connectionsCheckingInterval: CONNECTIONS_CHECK_INTERVAL_MS }, handler);
  configure(https);
  // A handshake that failed or timed out: Node leaves the socket open after a timeout.
  https.on("tlsClientError", (_error, socket) => socket.destroy());
  source.onReload((material) => https.setSecureContext(serverOptions(material)));
  const tcp = createTcpServer({ noDelay: true });
  // Every open TCP connection, and those not yet past their first byte: closing the TCP
  // listener waits for all of them, and the HTTPS server's closeAllConnections cuts its TLS
  // sockets but not the TCP sockets under the Replayed streams (a node under SIGTERM
  // waited for its clients' keep-alive connections, and `synod cluster` killed it after
  // its 10 s grace).
  const open = new Set<Socket>();
  const waiting = new Set<Socket>();
  tcp.on("connection", (socket: Socket) => {
    open.add(socket);
    waiting.add(socket);
    socket.once("close", () => {
      open.delete(socket);
      waiting.delete(socket);
    });
    socket.setTimeout(FIRST_BYTE_TIMEOUT_MS, () => socket.destroy());
    socket.on("error", () => {});
    socket.once("data", (chunk: Buffer) => {
      waiting.delete(socket);
      socket.setTimeout(0);
      socket.pause();
      if (chunk[0] === TLS_HANDSHAKE) {
        https.emit("connection", new Replayed(socket, chunk));
        socket.resume();
      } else {
        socket.end(plainTextRefusal());
      }
    });
  });
  return {
    tcp,
    listen: (port, host, listening) => void tcp.listen(port, host, listening),
    once: (event, listener) => void tcp.once(event, listener),
    on: (event, listener) => {
      tcp.on(event, listener);
      https.on(event, listener);
    },
    address: () => tcp.address(),
    get listening() {
      return tcp.listening;
    },
    close: (closed) => {
      tcp.close(() => https.close(() => closed()));
    },
    closeIdleConnections: () => {
      https.closeIdleConnections();
      for (const socket of waiting) socket.destroy();
    },
    closeAllConnections: () => {
      https.closeAllConnections();
      for (const socket of open) socket.destroy();
    },
  };
}

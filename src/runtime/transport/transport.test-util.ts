// What the transport's tests share.
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { FrameDecoder, frame } from "../../core/wire/frame.js";
import { decodeMessage, encodeMessage } from "./codec.js";
import { PeerTransport, type PeerAddress, type TransportLimits, type TransportLogger } from "./peer-transport.js";

export interface LogLine {
  readonly level: "info" | "warn" | "error" | "debug";
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

/** A transport logger that keeps every line, for tests to look for what was logged. */
export class RecordingLog implements TransportLogger {
  readonly lines: LogLine[] = [];
  info(fields: object, message: string): void {
    this.lines.push({ level: "info", fields: fields as Record<string, unknown>, message });
  }
  warn(fields: object, message: string): void {
    this.lines.push({ level: "warn", fields: fields as Record<string, unknown>, message });
  }
  error(fields: object, message: string): void {
    this.lines.push({ level: "error", fields: fields as Record<string, unknown>, message });
  }
  debug(fields: object, message: string): void {
    this.lines.push({ level: "debug", fields: fields as Record<string, unknown>, message });
  }
  find(level: LogLine["level"], text: string): LogLine[] {
    return this.lines.filter((line) => line.level === level && line.message.includes(text));
  }
  /** Whether any line's message or fields mention `text`. */
  has(text: string): boolean {
    return this.lines.some((line) => `${line.message} ${JSON.stringify(line.fields)}`.includes(text));
  }
}

export const HOST = "127.0.0.1";
export const CLUSTER = "test-cluster";
/** Short backoffs and deadlines keep the file fast; the logic is the same as with defaults. */
export const FAST: Partial<TransportLimits> = { backoffMsMin: 10, backoffMsMax: 100, handshakeTimeoutMs: 300 };

export interface Node {
  readonly id: number;
  readonly transport: PeerTransport;
  readonly log: RecordingLog;
  readonly received: { from: number; message: unknown }[];
  readonly address: PeerAddress;
}

/** What a test opened; a test file closes it after each test (closeEverything) so the next starts from a quiet process. */
export const everything: { close(): Promise<void> | void }[] = [];

export async function closeEverything(): Promise<void> {
  await Promise.all(everything.splice(0).map((item) => item.close()));
}

export interface NodeOptions {
  readonly port?: number;
  readonly peers?: readonly PeerAddress[];
  readonly clusterId?: string;
  readonly limits?: Partial<TransportLimits>;
  readonly onMessage?: (from: number, message: unknown, group: number) => void;
}

export async function startNode(id: number, options: NodeOptions = {}): Promise<Node> {
  const log = new RecordingLog();
  const received: { from: number; message: unknown }[] = [];
  const transport = await PeerTransport.start({
    clusterId: options.clusterId ?? CLUSTER,
    nodeId: id,
    listen: { host: HOST, port: options.port ?? 0 },
    peers: options.peers ?? [],
    onMessage: (from, message, group) => {
      options.onMessage?.(from, message, group);
      received.push({ from, message });
    },
    log,
    limits: { ...FAST, ...options.limits },
  });
  everything.push(transport);
  return { id, transport, log, received, address: { id, host: HOST, port: transport.port } };
}

/** Starts nodes that all know each other. */
export async function startCluster(ids: readonly number[], options: NodeOptions = {}): Promise<Node[]> {
  const nodes = await Promise.all(ids.map((id) => startNode(id, options)));
  for (const node of nodes) node.transport.setPeers(nodes.map((other) => other.address));
  await waitFor(() => nodes.every((node) => [...node.transport.stats().values()].every((stats) => stats.connected)), "the cluster connects");
  return nodes;
}

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function stats(node: Node, peer: number) {
  const found = node.transport.stats().get(peer);
  assert.ok(found, `node ${node.id} has stats for peer ${peer}`);
  return found;
}

/** A port nothing listens on (bound once, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  await new Promise((resolve) => server.close(resolve));
  return address.port;
}

/** A raw client socket, connected, that records whether it was closed by the far end. */
export async function rawClient(port: number): Promise<{ socket: Socket; closed: Promise<void>; replies: unknown[] }> {
  const socket = connect({ host: HOST, port });
  socket.on("error", () => {});
  const replies: unknown[] = [];
  const decoder = new FrameDecoder({ frameBytesMax: 1 << 20 });
  socket.on("data", (chunk: Buffer) => {
    for (const payload of decoder.push(chunk)) replies.push(decodeMessage(payload));
  });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  everything.push({ close: () => void socket.destroy() });
  return { socket, closed, replies };
}

export const helloFrame = (from: number, to: number, clusterId = CLUSTER): Uint8Array => frame(encodeMessage({ synod: 1, clusterId, from, to }));

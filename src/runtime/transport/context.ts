/** What the transport's parts share: its identity, limits, logging and per-peer counters. */
import type { TlsSource } from "../tls/material.js";
import type { TransportLimits, TransportLogger } from "./peer-transport.js";

/** TCP keepalive probes start after this long idle, so a vanished host's socket is noticed. */
export const KEEPALIVE_DELAY_MS = 10_000;

export interface TransportContext {
  readonly clusterId: string;
  readonly nodeId: number;
  /** This node's HTTP URL, advertised in its hellos (null: none). */
  readonly advertiseHttp: string | null;
  readonly limits: TransportLimits;
  /** Mutual TLS between peers (null: plain TCP). */
  readonly tls: TlsSource | null;
  readonly log: TransportLogger;
  /** Logs at warn at most once per interval for `key`, and at debug otherwise. */
  warnLimited(key: string, fields: object, message: string): void;
  /** Logs at error at most once per interval for `key`, and at debug otherwise. */
  errorLimited(key: string, fields: object, message: string): void;
}

/** Per-peer counters, kept across reconnects and cleared when the peer is removed. */
export interface PeerCounters {
  framesSent: number;
  bytesSent: number;
  socketWrites: number;
  framesDropped: number;
  framesReceived: number;
  bytesReceived: number;
  dialAttempts: number;
  reconnects: number;
  /** Heartbeat batch frames (heartbeat-batch.ts) handed to the socket, and the heartbeats they held. */
  heartbeatBatchesSent: number;
  heartbeatsBatchedSent: number;
  /** Heartbeat batch frames received, and the heartbeats they held. */
  heartbeatBatchesReceived: number;
  heartbeatsBatchedReceived: number;
}

export function newCounters(): PeerCounters {
  return { framesSent: 0, bytesSent: 0, socketWrites: 0, framesDropped: 0, framesReceived: 0, bytesReceived: 0, dialAttempts: 0, reconnects: 0, heartbeatBatchesSent: 0, heartbeatsBatchedSent: 0, heartbeatBatchesReceived: 0, heartbeatsBatchedReceived: 0 };
}

/** `host:port` of a socket's far end, for logs. */
export function remoteOf(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
}

/** An error's code (ECONNREFUSED, ...) or message, for logs. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

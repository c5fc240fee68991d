/**
 * The transport's handshake, the first frame each way on a new connection. The dialer
 * sends a hello naming the cluster, itself and the node it believes it reached; the
 * acceptor answers `{ ok: true }`, or `{ ok: false, reason }` and closes. This is a check
 * against misconfiguration (a node of another cluster, a stale address book), not
 * authentication: anyone who can reach the port can claim any id. TLS and auth come later
 * (roadmap step 8).
 */
import { describeUntrusted } from "../../core/common/errors.js";

export const PROTOCOL_VERSION = 1;
/** Hellos and replies are small; an unauthenticated peer gets no more buffer than this. */
export const HANDSHAKE_FRAME_BYTES_MAX = 4096;
/** Long enough for any sensible name, short enough that a hello fits its frame. */
export const CLUSTER_ID_LENGTH_MAX = 256;

export interface Hello {
  readonly synod: typeof PROTOCOL_VERSION;
  readonly clusterId: string;
  readonly from: number;
  readonly to: number;
  /**
   * Where the dialer serves clients (its HTTP API's URL), so members learn one another's
   * client addresses from their peer connections rather than from every command line.
   */
  readonly http?: string;
}

/** Longest advertised HTTP address taken from a hello. */
export const ADVERTISED_URL_LENGTH_MAX = 256;

/**
 * The acceptor's answer. `heartbeatBatches`: this node reads heartbeat batches
 * (heartbeat-batch.ts), so the dialer may send them. A node of an older version omits it,
 * and a dialer that does not know the field ignores it, so either side may be the older.
 */
export type HelloReply = { readonly ok: true; readonly heartbeatBatches?: true } | { readonly ok: false; readonly reason: string };

/** Why a hello was refused: `code` is stable (log keys, tests), `reason` is for people. */
export interface Refusal {
  readonly code: "malformed" | "version" | "cluster" | "unknown-node" | "wrong-node" | "certificate";
  readonly reason: string;
}

export interface AcceptorIdentity {
  readonly clusterId: string;
  readonly nodeId: number;
  readonly isKnownPeer: (id: number) => boolean;
  /**
   * Under TLS, the node id the dialer's certificate names (null: none); undefined without
   * TLS. The hello's `from` must be that id: a certificate, unlike a hello, is proof.
   */
  readonly certifiedNodeId?: number | null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

const isNodeId = (value: unknown): value is number => typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

/** What a hello claims, for logs, whatever shape it has; strings are cut short. */
export function describeHello(value: unknown): Record<string, unknown> {
  if (!isRecord(value)) return {};
  const short = (field: unknown): unknown => (typeof field === "string" ? field.slice(0, 64) : typeof field === "number" ? field : undefined);
  return { claimedClusterId: short(value["clusterId"]), claimedFrom: short(value["from"]), claimedTo: short(value["to"]) };
}

/** The hello in `value`, or why it is refused. */
export function checkHello(value: unknown, self: AcceptorIdentity): Hello | Refusal {
  if (!isRecord(value) || typeof value["clusterId"] !== "string" || !isNodeId(value["from"]) || !isNodeId(value["to"])) {
    return { code: "malformed", reason: "the first frame is not a synod hello" };
  }
  const { synod, clusterId, from, to } = value;
  if (synod !== PROTOCOL_VERSION) return { code: "version", reason: `protocol version ${describeUntrusted(synod).slice(0, 24)} is not supported; this node speaks ${PROTOCOL_VERSION}` };
  if (clusterId !== self.clusterId) return { code: "cluster", reason: `cluster id ${JSON.stringify(clusterId.slice(0, 64))} does not match this node's ${JSON.stringify(self.clusterId)}` };
  if (to !== self.nodeId) return { code: "wrong-node", reason: `the hello is addressed to node ${to}, but this is node ${self.nodeId}` };
  if (!self.isKnownPeer(from)) return { code: "unknown-node", reason: `node ${from} is not a peer of node ${self.nodeId}` };
  if (self.certifiedNodeId !== undefined && self.certifiedNodeId !== from) {
    const named = self.certifiedNodeId === null ? "names no node" : `names node ${self.certifiedNodeId}`;
    return { code: "certificate", reason: `the hello claims node ${from}, but the certificate it connected with ${named}` };
  }
  const http = value["http"];
  const advertised = typeof http === "string" && http.length <= ADVERTISED_URL_LENGTH_MAX && /^https?:\/\//.test(http) ? http : null;
  return advertised === null ? { synod: PROTOCOL_VERSION, clusterId, from, to } : { synod: PROTOCOL_VERSION, clusterId, from, to, http: advertised };
}

export function isRefusal(value: Hello | Refusal): value is Refusal {
  return "code" in value;
}

/** The reply in `value`, or null when it is not one. */
export function parseReply(value: unknown): HelloReply | null {
  if (!isRecord(value)) return null;
  if (value["ok"] === true) return value["heartbeatBatches"] === true ? { ok: true, heartbeatBatches: true } : { ok: true };
  if (value["ok"] === false) return { ok: false, reason: typeof value["reason"] === "string" ? value["reason"].slice(0, 512) : "no reason given" };
  return null;
}

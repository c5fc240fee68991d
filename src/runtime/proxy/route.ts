/**
 * How the proxy routes one request of the v1 API: to the leader (writes and linearizable
 * reads, which a follower would only pass on), or to any node the balancer picks (lease
 * and stale reads, and what any node answers alike); and whether it may be sent again
 * after a failure that leaves its outcome unknown.
 */
import type { Consistency } from "../../client/api.js";
import { limits } from "../../core/common/limits.js";
import { DEFAULT_NODE_CONFIG } from "../server/config.js";

export interface Route {
  /** "leader": where writes and linearizable reads go; "any": the balancer's pick. */
  readonly target: "leader" | "any";
  /** The read's consistency, for reads; null for writes and the rest. */
  readonly consistency: Consistency | null;
  /** The key, for the hash strategy's affinity; null when the request has none. */
  readonly key: string | null;
  /**
   * Whether sending it again is harmless even if the first attempt was applied: reads, and
   * writes in a client session (the state machine applies a session's write once).
   */
  readonly repeatable: boolean;
}

const KV_PREFIX = "/v1/kv/";

/** Routes `method path?query` with the headers given; never throws (a request the nodes will refuse goes to any node, which answers it). */
export function routeOf(method: string, url: string, hasSession: boolean): Route {
  const question = url.indexOf("?");
  const path = question === -1 ? url : url.slice(0, question);
  const query = new URLSearchParams(question === -1 ? "" : url.slice(question + 1));
  const isRead = method === "GET" || method === "HEAD";
  if (path.startsWith(KV_PREFIX) || path === "/v1/kv" || path === "/v1/members") {
    let key: string | null = null;
    if (path.startsWith(KV_PREFIX)) {
      try {
        key = decodeURIComponent(path.slice(KV_PREFIX.length));
      } catch {
        key = path.slice(KV_PREFIX.length);
      }
    }
    if (isRead) {
      const consistency = consistencyOf(query.get("consistency"));
      return { target: consistency === "linearizable" ? "leader" : "any", consistency, key, repeatable: true };
    }
    return { target: "leader", consistency: null, key, repeatable: hasSession };
  }
  if (isRead) return { target: "any", consistency: null, key: null, repeatable: true };
  // /v1/txn, /v1/sessions, membership changes, leadership transfer, and unknown routes.
  return { target: "leader", consistency: null, key: null, repeatable: hasSession && path === "/v1/txn" };
}

/** The node's default is linearizable; an unknown value is the node's to refuse (400), so it is sent as linearizable. */
function consistencyOf(value: string | null): Consistency {
  return value === "stale" || value === "lease" ? value : "linearizable";
}

/** The most a node accepts in one request's body, and what it calls that body in its 413. */
export interface BodyLimit {
  readonly bytesMax: number;
  readonly what: string;
}

/**
 * The node's own limit on the body of `method path`, so the proxy answers 413 as the node
 * would, without sending anything (null: a route whose limit the node checks alone). A value
 * is capped by `limits.valueBytesMax`; a transaction by a node's default request body limit.
 */
export function bodyLimitOf(method: string, url: string): BodyLimit | null {
  const question = url.indexOf("?");
  const path = question === -1 ? url : url.slice(0, question);
  if (method === "PUT" && path.startsWith(KV_PREFIX)) return { bytesMax: limits.valueBytesMax, what: "a value" };
  if (method === "POST" && path === "/v1/txn") return { bytesMax: DEFAULT_NODE_CONFIG.requestBodyBytesMax, what: "a transaction" };
  return null;
}

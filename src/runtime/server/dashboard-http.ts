/**
 * The dashboard's routes (docs/dashboard.md): the stream of a node's view, and the page.
 * http-api.ts lists them in its ROUTES table with who may call them; the handlers are here.
 */
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FORWARDED_HEADER, HttpError, sendJson } from "./http-api.js";
import type { DashboardFeed } from "./dashboard-feed.js";
import { askClusterControl, parseClusterAction } from "./cluster-control.js";
import { parseFaultRequest } from "./fault-injection.js";

/** `GET /v1/dashboard/stream`: Server-Sent Events of this node's view (dashboard-feed.ts). */
export function serveDashboardStream(feed: DashboardFeed | undefined, request: IncomingMessage, response: ServerResponse): void {
  if (feed === undefined) throw new HttpError(404, "not_found", "this node serves no dashboard");
  if (!feed.serve(request, response)) {
    throw new HttpError(503, "overloaded", "too many dashboard streams are open on this node; close one, or watch another node", { "retry-after": "5" });
  }
}

/** `GET /v1/debug/faults`: the fault in force (null: none) and whether injection is allowed. */
export function serveFaults(feed: DashboardFeed | undefined, response: ServerResponse): void {
  if (feed === undefined) throw new HttpError(404, "not_found", "this node has no fault injection");
  sendJson(response, 200, { allowed: feed.actions.faults.allowed, faults: feed.actions.faults.view() });
}

/**
 * `POST /v1/debug/faults`: injects a fault into this node's peer transport for a while
 * (fault-injection.ts), or, with `"node"` naming another member, passes the request on to
 * it once, with the caller's credentials (the page talks to one node only).
 */
export async function serveInjectFault(feed: DashboardFeed | undefined, body: Uint8Array, response: ServerResponse, forwarded: boolean, credentials: string | undefined): Promise<void> {
  if (feed === undefined) throw new HttpError(404, "not_found", "this node has no fault injection");
  const request = parseFaultRequest(body);
  if (request.node !== null && request.node !== feed.nodeId) {
    const http = feed.memberHttp(request.node);
    if (http === null || forwarded) throw new HttpError(404, "member_not_found", `node ${request.node} is not a member this node can reach by HTTP`);
    const headers: Record<string, string> = { "content-type": "application/json", [FORWARDED_HEADER]: "1", ...(credentials === undefined ? {} : { authorization: credentials }) };
    try {
      const answer = await fetch(`${http}/v1/debug/faults`, { method: "POST", headers, body: Buffer.from(body), signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS) });
      return sendJson(response, answer.status, (await answer.json()) as object);
    } catch (error) {
      throw new HttpError(503, "member_unreachable", `node ${request.node} did not answer at ${http}: ${(error as Error).message}`, { "retry-after": "1" });
    }
  }
  const faults = feed.actions.faults.set(request);
  sendJson(response, 200, { node: feed.nodeId, allowed: true, faults });
}

const FORWARD_TIMEOUT_MS = 3000;

/** `POST /v1/debug/cluster {"node", "action"}`: kill or restart a node of a local cluster (cluster-control.ts). */
export async function serveClusterAction(feed: DashboardFeed | undefined, body: Uint8Array, response: ServerResponse): Promise<void> {
  const { node, action } = parseClusterAction(body);
  const answer = await askClusterControl(feed?.actions.control ?? null, node, action);
  sendJson(response, answer.status, answer.body);
}

/** The page's files as `npm run build` wrote them (scripts/build-dashboard.js), by name. */
const ASSET_TYPES: Readonly<Record<string, string>> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
};
const ASSET_DIR = fileURLToPath(new URL("../../dashboard/", import.meta.url));
/**
 * The page may talk to its own node only (other members are reached by loading their page),
 * may not be framed (its buttons kill nodes: no clickjacking), and runs no inline script.
 */
const PAGE_HEADERS = {
  "content-security-policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};
let assets: Map<string, Buffer> | null = null;

/** Reads the page's files once; a node built without them (tsc alone) says how to build them. */
function loadAssets(): Map<string, Buffer> {
  if (assets !== null) return assets;
  const loaded = new Map<string, Buffer>();
  for (const name of Object.keys(ASSET_TYPES)) {
    try {
      loaded.set(name, readFileSync(join(ASSET_DIR, name)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new HttpError(503, "dashboard_not_built", `the dashboard's page is not built (${join(ASSET_DIR, name)} is missing): run npm run build`);
      throw error;
    }
  }
  assets = loaded;
  return loaded;
}

/** `GET /dashboard` (the page) and `GET /dashboard/{asset}` (its script and stylesheet). */
export function serveDashboardAsset(name: string, request: IncomingMessage, response: ServerResponse): void {
  const type = ASSET_TYPES[name];
  if (type === undefined) throw new HttpError(404, "not_found", `the dashboard has no file ${JSON.stringify(name)}; open /dashboard`);
  const body = loadAssets().get(name) as Buffer;
  response.writeHead(200, { ...PAGE_HEADERS, "content-type": type, "content-length": body.length });
  response.end(request.method === "HEAD" ? undefined : body);
}

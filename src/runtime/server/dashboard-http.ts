/**
 * The dashboard's routes (docs/dashboard.md): the stream of a node's view, and the page.
 * http-api.ts lists them in its ROUTES table with who may call them; the handlers are here.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError } from "./http-api.js";
import type { DashboardFeed } from "./dashboard-feed.js";

/** `GET /v1/dashboard/stream`: Server-Sent Events of this node's view (dashboard-feed.ts). */
export function serveDashboardStream(feed: DashboardFeed | undefined, request: IncomingMessage, response: ServerResponse): void {
  if (feed === undefined) throw new HttpError(404, "not_found", "this node serves no dashboard");
  if (!feed.serve(request, response)) {
    throw new HttpError(503, "overloaded", "too many dashboard streams are open on this node; close one, or watch another node", { "retry-after": "5" });
  }
}

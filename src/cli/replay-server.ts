/**
 * `synod sim --open`: the dashboard's page and one replay file, served on a loopback port, so a
 * simulated run can be watched without a cluster. The page is the node's own (the same files,
 * served by the same function, with the same Content-Security-Policy); the replay is fetched
 * by the page from `/dashboard/replay.jsonl` (docs/dashboard.md, "Replay a simulation").
 */
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { serveDashboardAsset } from "../runtime/server/dashboard-http.js";
import { HttpError, sendJson } from "../runtime/server/http-api.js";

/** Where the page finds the replay: its fragment names this path, on the same origin. */
export const REPLAY_FILE_ROUTE = "/dashboard/replay.jsonl";

export interface ReplayServer {
  /** The page, told to load the replay. */
  readonly url: string;
  close(): Promise<void>;
}

/** Serves the page and `path` on 127.0.0.1 (`port` 0: any free one) until closed. */
export async function serveReplay(path: string, port = 0): Promise<ReplayServer> {
  const server = createServer((request, response) => {
    void answer(path, request, response).catch((error: unknown) => {
      const status = error instanceof HttpError ? error.status : 500;
      const code = error instanceof HttpError ? error.code : "internal";
      if (!response.headersSent) sendJson(response, status, { error: code, message: (error as Error).message });
      else response.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}/dashboard#replay=${REPLAY_FILE_ROUTE}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A browser keeps its connections open; closing is for the person who pressed Ctrl-C.
        server.closeAllConnections();
      }),
  };
}

async function answer(path: string, request: IncomingMessage, response: ServerResponse): Promise<void> {
  if (request.method !== "GET" && request.method !== "HEAD") throw new HttpError(405, "method_not_allowed", "this server only serves a replay: GET it");
  const route = new URL(request.url ?? "/", "http://localhost").pathname;
  if (route === REPLAY_FILE_ROUTE) {
    const body = await readFile(path).catch((error: NodeJS.ErrnoException) => {
      throw new HttpError(error.code === "ENOENT" ? 404 : 500, "replay_unreadable", `cannot read the replay ${path}: ${error.message}`);
    });
    response.writeHead(200, { "content-type": "application/x-ndjson; charset=utf-8", "content-length": body.length, "cache-control": "no-cache" });
    response.end(request.method === "HEAD" ? undefined : body);
    return;
  }
  if (route === "/dashboard" || route === "/dashboard/") return serveDashboardAsset("index.html", request, response);
  if (route.startsWith("/dashboard/")) return serveDashboardAsset(route.slice("/dashboard/".length), request, response);
  throw new HttpError(404, "not_found", `nothing at ${route}; the replay is at /dashboard#replay=${REPLAY_FILE_ROUTE}`);
}

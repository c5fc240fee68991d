/**
 * The supervisor's side of kill and restart from the dashboard (see
 * src/runtime/server/cluster-control.ts): an HTTP server on a loopback port of the
 * system's choosing, that only the nodes it started can use, since only they were given its
 * secret. `POST /nodes/{id}/kill` answers, then kills the node with SIGKILL (a crash, not a
 * clean stop: what a failover is about); `POST /nodes/{id}/restart` starts a killed node
 * again with the arguments it was first started with; `POST /nodes/add` starts one more
 * node, which joins the cluster through a running member (an auto-promoted learner).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";

export interface ControlTarget {
  /** Null when `action` can be done to node `id` now, else why not (answered 409). */
  check(id: number, action: "kill" | "restart"): string | null;
  perform(id: number, action: "kill" | "restart"): void;
  /** Starts one more node, which joins the cluster; its id, or why not (answered 409). */
  add(): number | string;
}

export interface ControlServer {
  readonly url: string;
  readonly token: string;
  close(): Promise<void>;
}

/** How long after answering a kill the node is killed: the answer has left the node by then. */
const KILL_AFTER_ANSWER_MS = 50;

export async function startControlServer(host: string, target: ControlTarget): Promise<ControlServer> {
  const token = randomBytes(24).toString("base64url");
  const expected = Buffer.from(`Bearer ${token}`);
  const server: Server = createServer((request, response) => {
    const send = (status: number, body: object): void => {
      response.writeHead(status, { "content-type": "application/json" });
      response.end(JSON.stringify(body));
    };
    const given = Buffer.from(request.headers.authorization ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return send(401, { error: "unauthenticated", message: "only the cluster's own nodes may ask" });
    if (request.method === "POST" && request.url === "/nodes/add") {
      const added = target.add();
      return typeof added === "string" ? send(409, { error: "refused", message: added }) : send(200, { node: added, action: "add", done: true });
    }
    const match = /^\/nodes\/(\d{1,6})\/(kill|restart)$/.exec(request.url ?? "");
    if (request.method !== "POST" || match === null) return send(404, { error: "not_found", message: "POST /nodes/{id}/kill or /nodes/{id}/restart" });
    const id = Number(match[1]);
    const action = match[2] as "kill" | "restart";
    const refused = target.check(id, action);
    if (refused !== null) return send(409, { error: "refused", message: refused });
    send(200, { node: id, action, done: true });
    // A node killing itself answers first: the answer leaves before the process dies.
    if (action === "kill") setTimeout(() => target.perform(id, action), KILL_AFTER_ANSWER_MS).unref();
    else target.perform(id, action);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return { url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`, token, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

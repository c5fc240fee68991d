// A fake synod node for tests of the client side (CLI, bench): an in-memory map behind the
// routes of docs/http-api.md that those clients use, answering as the document says. It is
// not the server and checks nothing about it; the real-server tests come with the runtime.
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after } from "node:test";

export interface FakeNodeOptions {
  readonly id: number;
  /** Default 0: an ephemeral port. */
  readonly port?: number;
  /** "leader" or "follower"; a follower names `leaderHttp` in its status. */
  readonly role?: string;
  readonly leaderHttp?: string | null;
  /** When set, every KV request is answered with this error (status, code). */
  readonly failWith?: { readonly status: number; readonly code: string } | null;
}

export interface FakeNode {
  url: string;
  readonly store: Map<string, { value: Buffer; revision: number; createRevision: number; version: number }>;
  /** KV requests received, by method. */
  readonly requests: Map<string, number>;
  options: FakeNodeOptions;
  close: () => Promise<void>;
}

export async function startFakeNode(options: FakeNodeOptions): Promise<FakeNode> {
  const store: FakeNode["store"] = new Map();
  const requests = new Map<string, number>();
  let revision = 1;
  const node: FakeNode = { url: "", store, requests, options, close: async () => undefined };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const [path = "", queryText = ""] = (request.url ?? "").split("?");
      const query = new URLSearchParams(queryText);
      const method = request.method ?? "";
      if (path === "/v1/status") {
        const role = node.options.role ?? "leader";
        return json(response, 200, { id: node.options.id, role, term: 2, leader: role === "leader" ? node.options.id : 1, leaderHttp: node.options.leaderHttp === undefined ? (role === "leader" ? node.url : null) : node.options.leaderHttp, commitIndex: revision, appliedIndex: revision, consensus: "raft", members: [] });
      }
      if (!path.startsWith("/v1/kv/")) return json(response, 404, { error: "not_found", message: "no such route" });
      requests.set(method, (requests.get(method) ?? 0) + 1);
      const failWith = node.options.failWith;
      if (failWith !== null && failWith !== undefined) return json(response, failWith.status, { error: failWith.code, message: `fake ${failWith.code}` }, failWith.status === 503 ? { "retry-after": "0" } : {});
      const key = decodeURIComponent(path.slice("/v1/kv/".length));
      const current = store.get(key);
      if (method === "GET") {
        if (current === undefined) return json(response, 404, { error: "key_not_found", message: `no key ${key}` });
        return json(response, 200, { key, value: current.value.toString("utf8"), revision: current.revision, createRevision: current.createRevision, version: current.version });
      }
      if (method === "PUT") {
        const previous = query.get("prevRevision");
        if (previous !== null && Number(previous) !== (current?.revision ?? 0)) return json(response, 409, { error: "compare_failed", message: "revision differs", revision: current?.revision ?? 0 });
        revision++;
        store.set(key, { value: Buffer.concat(chunks), revision, createRevision: current?.createRevision ?? revision, version: (current?.version ?? 0) + 1 });
        return json(response, 200, { revision });
      }
      if (method === "DELETE") {
        if (current !== undefined) revision++;
        store.delete(key);
        return json(response, 200, { deleted: current === undefined ? 0 : 1, revision });
      }
      return json(response, 405, { error: "method_not_allowed", message: method });
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  node.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  node.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return node;
}

function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { "content-type": "application/json", ...headers });
  response.end(JSON.stringify(body));
}

/** `startFakeNode` for one test file: every node it starts is closed when the file's tests end. */
export function fakeNodes(): (options: FakeNodeOptions) => Promise<FakeNode> {
  const started: FakeNode[] = [];
  after(() => Promise.all(started.map((node) => node.close())));
  return async (options) => {
    const node = await startFakeNode(options);
    started.push(node);
    return node;
  };
}

/** An endpoint nothing listens on: a port that was just free. */
export async function refusingEndpoint(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

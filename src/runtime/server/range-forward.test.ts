// Forwarding to the nodes that host a range (range-forward.ts), against two small HTTP servers
// standing for them: a read goes on to the next node when one fails, but a write that may
// have reached a node is never sent to another (it could apply twice): its outcome is unknown.
import assert from "node:assert/strict";
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { HttpError, type KvService } from "./http-api.js";
import { forwardRequest } from "./range-forward.js";

function listen(handler: (request: IncomingMessage, response: ServerResponse) => void): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })));
}

function ask(url: string, method: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/v1/kv/k`, { method }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("forwarding a request to the nodes that host its range", () => {
  const seen: { node: string; method: string }[] = [];
  const servers: Server[] = [];
  let front = "";

  before(async () => {
    // The first node takes the request, then drops the connection without answering (it died mid-request).
    const dying = await listen((request) => {
      seen.push({ node: "dying", method: request.method ?? "" });
      request.resume();
      request.on("end", () => request.socket.destroy());
    });
    const healthy = await listen((request, response) => {
      seen.push({ node: "healthy", method: request.method ?? "" });
      request.resume();
      request.on("end", () => response.end(JSON.stringify({ from: "healthy" })));
    });
    const service = { rangeHosts: () => [dying.url, healthy.url], forwarded: () => undefined } as unknown as KvService;
    const frontServer = await listen((request, response) => {
      forwardRequest(service, request, response, [3], 1 << 20).catch((error: unknown) => {
        const status = error instanceof HttpError ? error.status : 500;
        response.writeHead(status, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: error instanceof HttpError ? error.code : "internal", message: String(error) }));
      });
    });
    servers.push(dying.server, healthy.server, frontServer.server);
    front = frontServer.url;
  });

  after(() => {
    for (const server of servers) server.close();
  });

  test("a read goes on to the next node when one fails", async () => {
    seen.length = 0;
    const answer = await ask(front, "GET");
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(seen, [
      { node: "dying", method: "GET" },
      { node: "healthy", method: "GET" },
    ]);
  });

  test("a write that reached a node is not sent to another: 503 timeout, its outcome unknown", async () => {
    seen.length = 0;
    const answer = await ask(front, "PUT", "v");
    assert.equal(answer.status, 503, answer.text);
    assert.equal((JSON.parse(answer.text) as { error: string }).error, "timeout");
    assert.match(answer.text, /may or may not have been applied/);
    assert.deepEqual(seen, [{ node: "dying", method: "PUT" }], "sent once, to the first node only");
  });

  test("a write to a node that refuses the connection goes on to the next (it never left)", async () => {
    const closed = await listen(() => undefined);
    const port = (closed.server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.server.close(() => resolve()));
    const healthy = servers[1] as Server;
    const healthyUrl = `http://127.0.0.1:${(healthy.address() as AddressInfo).port}`;
    const service = { rangeHosts: () => [`http://127.0.0.1:${port}`, healthyUrl], forwarded: () => undefined } as unknown as KvService;
    const frontServer = await listen((request, response) => void forwardRequest(service, request, response, [3], 1 << 20));
    servers.push(frontServer.server);
    seen.length = 0;
    const answer = await ask(frontServer.url, "PUT", "v");
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(seen, [{ node: "healthy", method: "PUT" }]);
  });
});

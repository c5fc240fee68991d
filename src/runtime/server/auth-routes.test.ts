/**
 * Every route of the HTTP API (the ROUTES table, as routeQueryParameters lists it) against
 * the three kinds of caller once auth is enabled: no credentials, a user without any
 * permission, and root. A route added later without an access rule, or with the wrong one,
 * fails here. In-process, over a real KvStore and its replicated auth state.
 */
import assert from "node:assert/strict";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import type { AuthChange } from "../../core/kv/auth.js";
import type { KvCommand } from "../../core/kv/command.js";
import { KvStore } from "../../core/kv/store.js";
import { hashPassword } from "./auth-tokens.js";
import { ALL_REACHED, fakeService, READY, type Fault } from "./fake-service.test-util.js";
import { createHttpApi, routeQueryParameters, type KvService } from "./http-api.js";
import { request } from "./process-cluster.test-util.js";

const basic = (user: string, password: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` });

/** Open to anyone, auth or not. */
const PUBLIC = new Set(["GET /dashboard", "GET /dashboard/{asset}", "GET /healthz", "GET /readyz", "GET /v1/status", "GET /v1/members", "GET /metrics", "GET /v1/auth/status", "POST /v1/auth/authenticate"]);
/** Any authenticated user, without a permission on keys. */
/** Streams: checked apart (they stay open when served). */
const STREAMS = new Set(["GET /v1/watch", "GET /v1/dashboard/stream"]);
const ANY_USER = new Set(["GET /v1/dashboard/stream", "GET /v1/debug/faults", "POST /v1/txn", "POST /v1/leases", "GET /v1/leases", "GET /v1/leases/{id}", "DELETE /v1/leases/{id}", "POST /v1/leases/{id}/keepalive", "POST /v1/sessions", "GET /v1/shards", "GET /v1/auth/users/{name}"]);

const BODIES: Readonly<Record<string, string>> = {
  "POST /v1/txn": JSON.stringify({ compare: [], success: [], failure: [] }),
  "POST /v1/leases": JSON.stringify({ ttlSeconds: 10 }),
  "POST /v1/compact": JSON.stringify({ revision: 1 }),
  "POST /v1/members": JSON.stringify({ id: 9, peer: "127.0.0.1:1" }),
  "POST /v1/leader/transfer": "{}",
  "POST /v1/auth/authenticate": JSON.stringify({ name: "bob", password: "bobpw" }),
  "PUT /v1/auth/users/{name}": JSON.stringify({ password: "bobpw" }),
  "POST /v1/auth/users/{name}/grant": JSON.stringify({ role: "root" }),
  "POST /v1/auth/users/{name}/revoke": JSON.stringify({ role: "root" }),
  "POST /v1/auth/roles/{name}/grant": JSON.stringify({ prefix: "a/", read: true }),
  "POST /v1/auth/roles/{name}/revoke": JSON.stringify({ prefix: "a/" }),
};

function concrete(route: string): { method: string; path: string } {
  const [method, template] = route.split(" ") as [string, string];
  const path = template.replace("{key}", "a/k").replace("{id}", "1").replace("{name}", "bob");
  const assets: Record<string, string> = { "/v1/watch": "/v1/watch?key=a/k", "/dashboard/{asset}": "/dashboard/app.js" };
  return { method, path: assets[template] ?? path };
}

describe("auth: every route against strangers, a user without permissions, and root", { timeout: 60_000 }, () => {
  let server: Server;
  let url: string;
  let service: KvService;

  before(async () => {
    const store = new KvStore();
    const writes: KvCommand[] = [];
    const fault: Fault = { refuse: null, quorum: ALL_REACHED, readiness: READY };
    service = fakeService(store, fault, writes);
    const changes: AuthChange[] = [
      { kind: "user-add", name: "root", password: await hashPassword("rootpw") },
      { kind: "user-grant", name: "root", role: "root" },
      { kind: "user-add", name: "bob", password: await hashPassword("bobpw") },
      { kind: "role-add", name: "bob" },
      { kind: "enable", secret: new Uint8Array(32).fill(7) },
    ];
    for (const change of changes) assert.deepEqual((await service.write({ op: "auth", change })).op, "auth");
    server = createHttpApi(service, { requestBodyBytesMax: 1024 * 1024 });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  async function call(route: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
    const { method, path } = concrete(route);
    const body = BODIES[route] ?? (method === "PUT" ? "v" : undefined);
    const answer = await request(method, `${url}${path}`, body, { ...headers, "content-type": "application/json" });
    if (STREAMS.has(route) && answer.status === 200) return { status: 200, text: "" };
    return { status: answer.status, text: answer.text };
  }

  test("every route but the open ones answers 401 without credentials", async () => {
    const routes = Object.keys(routeQueryParameters());
    assert.ok(routes.length > 30, "the table lists the routes");
    for (const route of routes) {
      const { status, text } = await call(route, {});
      if (PUBLIC.has(route)) assert.notEqual(status, 401, `${route} is open: ${text}`);
      else assert.equal(status, 401, `${route} without credentials: ${text}`);
    }
  });

  test("a user without permissions is refused (403) every key and admin route, and served the rest", async () => {
    for (const route of Object.keys(routeQueryParameters())) {
      if (route === "GET /v1/watch") continue; // a stream on a key bob may not read: checked below
      const { status, text } = await call(route, basic("bob", "bobpw"));
      if (PUBLIC.has(route) || ANY_USER.has(route)) assert.ok(status !== 401 && status !== 403, `${route} for any user: ${status} ${text}`);
      else assert.equal(status, 403, `${route} for a user without permissions: ${status} ${text}`);
    }
    assert.equal((await call("GET /v1/watch", basic("bob", "bobpw"))).status, 403);
  });

  test("root is refused nothing", async () => {
    for (const route of Object.keys(routeQueryParameters())) {
      if (STREAMS.has(route) || route === "POST /v1/auth/disable" || route === "DELETE /v1/auth/users/{name}" || route === "PUT /v1/auth/users/{name}") continue;
      const { status, text } = await call(route, basic("root", "rootpw"));
      assert.ok(status !== 401 && status !== 403, `${route} for root: ${status} ${text}`);
    }
    assert.equal(service.auth().enabled, true);
  });
});

// A fake synod node for tests of the client side (SDK, CLI, bench): an in-memory map behind
// the routes of docs/http-api.md that those clients use, answering as the document says. It
// is not the server and checks nothing about it; the real-server tests come with the runtime.
// Several fakes can share one `FakeState` to act as one cluster (any node takes any request).
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after } from "node:test";

export interface FakeRecord {
  value: Buffer;
  revision: number;
  createRevision: number;
  version: number;
}

/** What a cluster of fakes shares: the store, its revision and the client sessions. */
export interface FakeState {
  readonly store: Map<string, FakeRecord>;
  revision: number;
  nextSession: number;
  /** Session id -> its latest sequence and the answer to it (the server keeps only that one). */
  readonly sessions: Map<number, { sequence: number; answer: FakeAnswer }>;
  /** Writes applied (duplicates in a session not counted). */
  applied: number;
}

export interface FakeAnswer {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/**
 * What a hook makes of a request, before the fake serves it: `pass` serves it; `hang` never
 * answers; `destroy` breaks the connection without applying it; `apply-then-destroy` applies
 * it and then breaks the connection (the answer is lost: the case sessions are for); an
 * answer is sent as it is.
 */
export type HookResult = "pass" | "hang" | "destroy" | "apply-then-destroy" | FakeAnswer;

export interface FakeNodeOptions {
  readonly id: number;
  /** Default 0: an ephemeral port. */
  readonly port?: number;
  /** "leader" or "follower"; a follower names `leaderHttp` in its status. */
  readonly role?: string;
  readonly leaderHttp?: string | null;
  /** The term in its status; default 2. */
  readonly term?: number;
  /** When set, every KV request is answered with this error (status, code). */
  readonly failWith?: { readonly status: number; readonly code: string } | null;
  /** Called for every request but status checks; see `HookResult`. */
  readonly hook?: ((request: SeenRequest) => HookResult) | null;
  /** Answers (not status checks) are sent this long after the request is served; default 0. */
  readonly delayMs?: number;
  /** Called as each answer (not a status check) is sent. */
  readonly onAnswer?: ((request: SeenRequest) => void) | null;
  /** Shared with other fakes (one cluster); default its own. */
  readonly state?: FakeState;
  /** The configuration its status and `GET /v1/members` list; default none (an empty list). */
  readonly members?: readonly { readonly id: number; readonly peer: string; readonly http: string | null; readonly role: string }[];
}

export interface FakeNode {
  url: string;
  readonly store: Map<string, FakeRecord>;
  readonly state: FakeState;
  /** KV requests received, by method. */
  readonly requests: Map<string, number>;
  /** Every request but status checks, in arrival order. */
  readonly seen: SeenRequest[];
  /** Status checks received. */
  statusChecks: number;
  options: FakeNodeOptions;
  close: () => Promise<void>;
}

export function fakeState(): FakeState {
  return { store: new Map(), revision: 1, nextSession: 100, sessions: new Map(), applied: 0 };
}

const SESSION_HEADER = "x-synod-session";
const SEQUENCE_HEADER = "x-synod-sequence";

export async function startFakeNode(options: FakeNodeOptions): Promise<FakeNode> {
  const state = options.state ?? fakeState();
  const node: FakeNode = { url: "", store: state.store, state, requests: new Map(), seen: [], statusChecks: 0, options, close: async () => undefined };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const url = request.url ?? "";
      const [path = ""] = url.split("?");
      const seen: SeenRequest = { method: request.method ?? "", path, url, headers: request.headers, body: Buffer.concat(chunks) };
      if (path === "/v1/status") {
        node.statusChecks += 1;
        return send(response, statusAnswer(node));
      }
      node.seen.push(seen);
      const hooked = node.options.hook?.(seen) ?? "pass";
      if (hooked === "hang") return;
      if (hooked === "destroy") return void response.socket?.destroy();
      if (typeof hooked === "object") return send(response, hooked);
      const answer = serve(node, seen);
      if (hooked === "apply-then-destroy") return void response.socket?.destroy();
      const answerNow = (): void => {
        node.options.onAnswer?.(seen);
        send(response, answer);
      };
      const delayMs = node.options.delayMs ?? 0;
      if (delayMs > 0) setTimeout(answerNow, delayMs);
      else answerNow();
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

function statusAnswer(node: FakeNode): FakeAnswer {
  const role = node.options.role ?? "leader";
  const leaderHttp = node.options.leaderHttp === undefined ? (role === "leader" ? node.url : null) : node.options.leaderHttp;
  const body = { id: node.options.id, role, term: node.options.term ?? 2, leader: role === "leader" ? node.options.id : leaderHttp === null ? null : 1, leaderHttp, commitIndex: node.state.revision, appliedIndex: node.state.revision, consensus: "raft", members: node.options.members ?? [] };
  return { status: 200, body };
}

/** The request served as a node would, session rules included. */
function serve(node: FakeNode, request: SeenRequest): FakeAnswer {
  const { method, path } = request;
  const failWith = node.options.failWith;
  const isKv = path.startsWith("/v1/kv") || path === "/v1/txn";
  if (isKv) node.requests.set(method, (node.requests.get(method) ?? 0) + 1);
  if (failWith !== null && failWith !== undefined && isKv) return { status: failWith.status, body: { error: failWith.code, message: `fake ${failWith.code}` }, headers: failWith.status === 503 ? { "retry-after": "0" } : {} };
  if (path === "/v1/members" && method === "GET") return { status: 200, body: { members: node.options.members ?? [], joint: false } };
  if (path === "/v1/sessions" && method === "POST") {
    const session = node.state.nextSession++;
    node.state.sessions.set(session, { sequence: 0, answer: { status: 200, body: {} } });
    return { status: 200, body: { session, ttlMs: 3_600_000 } };
  }
  const write = method === "PUT" || method === "DELETE" || (method === "POST" && path === "/v1/txn");
  if (!write) return read(node.state, request);
  const sessionHeader = request.headers[SESSION_HEADER];
  if (typeof sessionHeader !== "string") return applyWrite(node.state, request);
  const session = node.state.sessions.get(Number(sessionHeader));
  const sequence = Number(request.headers[SEQUENCE_HEADER]);
  if (session === undefined) return { status: 410, body: { error: "session_expired", message: `session ${sessionHeader} expired` } };
  if (sequence === session.sequence) return session.answer;
  if (sequence < session.sequence) {
    const body = { error: "sequence_superseded", message: `sequence ${sequence} is older than the session's latest (${session.sequence})`, session: Number(sessionHeader), sequence, latestSequence: session.sequence };
    return { status: 409, body };
  }
  const answer = applyWrite(node.state, request);
  node.state.sessions.set(Number(sessionHeader), { sequence, answer });
  return answer;
}

function read(state: FakeState, request: SeenRequest): FakeAnswer {
  const query = new URLSearchParams(request.url.split("?")[1] ?? "");
  if (request.method !== "GET") return { status: 405, body: { error: "method_not_allowed", message: request.method } };
  if (request.path === "/v1/kv") {
    const prefix = query.get("prefix") ?? "";
    const after = query.get("after");
    const limit = Number(query.get("limit") ?? "100");
    const keys = [...state.store.keys()].filter((key) => key.startsWith(prefix) && (after === null || key > after)).sort();
    const kvs = keys.slice(0, limit).map((key) => recordJson(key, state.store.get(key) as FakeRecord));
    return { status: 200, body: { kvs, more: keys.length > limit, revision: state.revision } };
  }
  if (!request.path.startsWith("/v1/kv/")) return { status: 404, body: { error: "not_found", message: "no such route" } };
  const key = decodeURIComponent(request.path.slice("/v1/kv/".length));
  const current = state.store.get(key);
  if (current === undefined) return { status: 404, body: { error: "key_not_found", message: `no key ${key}` } };
  return { status: 200, body: recordJson(key, current) };
}

function applyWrite(state: FakeState, request: SeenRequest): FakeAnswer {
  state.applied += 1;
  if (request.path === "/v1/txn") return applyTxn(state, JSON.parse(request.body.toString("utf8")) as FakeTxn);
  const key = decodeURIComponent(request.path.slice("/v1/kv/".length));
  const current = state.store.get(key);
  const query = new URLSearchParams(request.url.split("?")[1] ?? "");
  if (request.method === "DELETE" && query.has("prefix") && query.get("prefix") !== "false") {
    const under = [...state.store.keys()].filter((stored) => stored.startsWith(key));
    for (const stored of under) state.store.delete(stored);
    if (under.length > 0) state.revision++;
    return { status: 200, body: { deleted: under.length, revision: state.revision } };
  }
  if (request.method === "DELETE") {
    if (current !== undefined) state.revision++;
    state.store.delete(key);
    return { status: 200, body: { deleted: current === undefined ? 0 : 1, revision: state.revision } };
  }
  const previous = new URLSearchParams(request.url.split("?")[1] ?? "").get("prevRevision");
  if (previous !== null && Number(previous) !== (current?.revision ?? 0)) return { status: 409, body: { error: "compare_failed", message: "revision differs", revision: current?.revision ?? 0 } };
  put(state, key, request.body);
  return { status: 200, body: { revision: state.revision } };
}

interface FakeTxn {
  readonly compare?: { key: string; target: string; op: string; value: string | number; encoding?: string }[];
  readonly success?: FakeTxnOperation[];
  readonly failure?: FakeTxnOperation[];
}

interface FakeTxnOperation {
  readonly op: string;
  readonly key: string;
  readonly value?: string;
  readonly encoding?: string;
}

function txnBytes(item: { value?: string | number; encoding?: string }): Buffer {
  return Buffer.from(String(item.value ?? ""), item.encoding === "base64" ? "base64" : "utf8");
}

/**
 * Compares with `=` on value or version; put, get and delete, each answered with its `op`
 * (the writes of a branch sharing one revision, as a node's do).
 */
function applyTxn(state: FakeState, txn: FakeTxn): FakeAnswer {
  const holds = (txn.compare ?? []).every((compare) => {
    const record = state.store.get(compare.key);
    if (compare.target === "version") return (record?.version ?? 0) === compare.value;
    return record !== undefined && record.value.equals(txnBytes(compare));
  });
  const operations = holds ? (txn.success ?? []) : (txn.failure ?? []);
  const revision = state.revision + 1;
  let wrote = false;
  const results = operations.map((operation) => {
    const current = state.store.get(operation.key);
    if (operation.op === "get") return { op: "get", kv: current === undefined ? null : recordJson(operation.key, current) };
    if (operation.op === "delete") {
      if (current !== undefined) wrote = true;
      state.store.delete(operation.key);
      return { op: "delete", deleted: current === undefined ? 0 : 1 };
    }
    wrote = true;
    state.store.set(operation.key, { value: txnBytes(operation), revision, createRevision: current?.createRevision ?? revision, version: (current?.version ?? 0) + 1 });
    return { op: "put", revision };
  });
  if (wrote) state.revision = revision;
  return { status: 200, body: { succeeded: holds, revision: state.revision, results: results.map((result) => (result.op === "delete" ? { ...result, revision: state.revision } : result)) } };
}

function put(state: FakeState, key: string, value: Buffer): void {
  const current = state.store.get(key);
  state.revision++;
  state.store.set(key, { value, revision: state.revision, createRevision: current?.createRevision ?? state.revision, version: (current?.version ?? 0) + 1 });
}

function recordJson(key: string, record: FakeRecord): object {
  const text = record.value.toString("utf8");
  if (!Buffer.from(text, "utf8").equals(record.value)) return { key, value: record.value.toString("base64"), encoding: "base64", revision: record.revision, createRevision: record.createRevision, version: record.version };
  return { key, value: text, revision: record.revision, createRevision: record.createRevision, version: record.version };
}

function send(response: ServerResponse, answer: FakeAnswer): void {
  response.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
  response.end(JSON.stringify(answer.body));
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

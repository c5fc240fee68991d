#!/usr/bin/env node
// @ts-check
/**
 * One member of a replicated lock service: the LockMachine replicated by synod's
 * ReplicatedNode, and a small HTTP API for clients. Run three (see README.md); ask any of
 * them; any two keep the service up.
 *
 *   POST /locks/NAME/acquire  {"owner":"w1"}              200 {"ok":true,"token":7} | 409 {"ok":false,"holder":"w2"}
 *   POST /locks/NAME/release  {"owner":"w1","token":7}    200 {"ok":true} | 409 {"ok":false}
 *   GET  /locks/NAME                                      200 {"holder":{"owner":"w1","token":7}} or {"holder":null}
 *   GET  /status                                          the node's role, term, leader, indexes
 *
 * 503 means no leader right now (nothing was done: retry), 504 that the outcome is unknown
 * (an acquire may have been granted: read the lock to find out before acquiring again).
 */
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { InvalidInputError, NotLeaderError, ReplicatedNode, RequestTimeoutError, StoppedError, WriteOutcomeUnknownError } from "synod";
import { encodeCommand, LockMachine } from "./lock-machine.js";

const usage = "usage: node server.js --id N --http HOST:PORT --data-dir DIR --peers 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT";
const { values } = parseArgs({ options: { id: { type: "string" }, http: { type: "string" }, "data-dir": { type: "string" }, peers: { type: "string" } } });
if (values.id === undefined || values.http === undefined || values["data-dir"] === undefined || values.peers === undefined) {
  console.error(usage);
  process.exit(2);
}
const id = Number(values.id);
/** @type {Record<number, string>} */
const peers = Object.fromEntries(values.peers.split(",").map((pair) => pair.split("=")).map(([member, address]) => [Number(member), String(address)]));
const [httpHost, httpPort] = splitHostPort(values.http);

const machine = new LockMachine();
/** @type {import("synod").NodeLogger} */
const logger = {
  info: () => undefined,
  warn: (fields, message) => console.error(`node ${id} warn: ${message} ${JSON.stringify(fields)}`),
  error: (fields, message) => console.error(`node ${id} error: ${message} ${JSON.stringify(fields)}`),
};
const node = await ReplicatedNode.start({ id, dataDir: values["data-dir"], peers, stateMachine: machine, logger, snapshotEntries: 1000 });

const server = createServer((request, response) => {
  handle(request.method ?? "GET", new URL(request.url ?? "/", "http://localhost"), request).then(
    ({ status, body }) => reply(response, status, body),
    (error) => reply(response, ...failure(error)),
  );
});
server.listen(httpPort, httpHost, () => console.log(`lock service node ${id}: HTTP on http://${values.http}, peers on ${peers[id]}, data in ${values["data-dir"]}`));

for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    void node.stop().then(() => process.exit(0));
  });
}

/**
 * @param {string} method
 * @param {URL} url
 * @param {import("node:http").IncomingMessage} request
 * @returns {Promise<{ status: number, body: unknown }>}
 */
async function handle(method, url, request) {
  if (method === "GET" && url.pathname === "/status") return { status: 200, body: node.status() };
  const match = /^\/locks\/([^/]+)(?:\/(acquire|release))?$/.exec(url.pathname);
  if (match === null) return { status: 404, body: { error: "not_found", message: "routes: POST /locks/NAME/acquire, POST /locks/NAME/release, GET /locks/NAME, GET /status" } };
  const lock = decodeURIComponent(/** @type {string} */ (match[1]));
  const action = match[2];
  if (action === undefined) {
    if (method !== "GET") return { status: 405, body: { error: "method_not_allowed" } };
    // Linearizable: after the barrier, this member's state holds every grant and release
    // that completed anywhere before the request came.
    await node.read({ lease: url.searchParams.has("lease") });
    return { status: 200, body: { holder: machine.holder(lock) } };
  }
  if (method !== "POST") return { status: 405, body: { error: "method_not_allowed" } };
  const body = await readJson(request);
  if (typeof body.owner !== "string" || body.owner.length === 0) throw new InvalidInputError('the body needs an "owner": a non-empty string');
  if (action === "acquire") {
    const result = await node.propose(encodeCommand({ op: "acquire", lock, owner: body.owner }));
    return { status: result.ok ? 200 : 409, body: result };
  }
  if (!Number.isSafeInteger(body.token)) throw new InvalidInputError('a release needs the "token" its acquire returned');
  const result = await node.propose(encodeCommand({ op: "release", lock, owner: body.owner, token: /** @type {number} */ (body.token) }));
  return { status: result.ok ? 200 : 409, body: result };
}

/**
 * @param {unknown} error
 * @returns {[number, unknown]}
 */
function failure(error) {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof InvalidInputError) return [400, { error: "bad_request", message }];
  if (error instanceof NotLeaderError || error instanceof StoppedError) return [503, { error: "unavailable", message }];
  if (error instanceof RequestTimeoutError || error instanceof WriteOutcomeUnknownError) return [504, { error: "outcome_unknown", message }];
  logger.error({ err: message }, "request failed");
  return [500, { error: "internal", message }];
}

/**
 * @param {import("node:http").ServerResponse} response
 * @param {number} status
 * @param {unknown} body
 */
function reply(response, status, body) {
  response.writeHead(status, { "content-type": "application/json" }).end(`${JSON.stringify(body)}\n`);
}

/**
 * @param {import("node:http").IncomingMessage} request
 * @returns {Promise<Record<string, unknown>>}
 */
async function readJson(request) {
  const chunks = [];
  let bytes = 0;
  for await (const chunk of request) {
    bytes += chunk.length;
    if (bytes > 64 * 1024) throw new InvalidInputError("the body is over 64 KiB");
    chunks.push(chunk);
  }
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
  } catch {
    // answered below
  }
  throw new InvalidInputError("the body must be a JSON object");
}

/**
 * @param {string} text
 * @returns {[string, number]}
 */
function splitHostPort(text) {
  const at = text.lastIndexOf(":");
  return [text.slice(0, at), Number(text.slice(at + 1))];
}

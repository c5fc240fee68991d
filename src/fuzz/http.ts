/**
 * Fuzzes the HTTP API of one real node process (`synod node`, started as the tests start
 * nodes, on free loopback ports), with requests written byte by byte on a raw socket, so
 * that methods, paths, headers and lengths can be wrong in every way a client library
 * would not allow: unknown routes, keys with odd percent-encodings, bad and conflicting
 * Content-Length and Content-Type, invalid, huge and deeply nested JSON, query strings with
 * bad values. Now and then a burst of garbage (random bytes, hostile hellos) also goes to
 * the node's peer port.
 *
 * Allowed outcomes: a 2xx, or a 4xx whose body is a JSON error (`{"error": ...}`), or a 503
 * with a JSON error (documented in docs/http-api.md). Not allowed: any other 5xx, no answer at all (unless the
 * request declared more body than it sent), or the process exiting. After the run a put
 * and a get must still work.
 *
 * The node's state carries over from one request to the next, so a failure's shrunk input
 * may not fail alone; the report then still names the request that met the failure.
 */
import { connect } from "node:net";
import fc from "fast-check";
import { encodeMessage } from "../runtime/transport/codec.js";
import { frame } from "../core/wire/frame.js";
import { ProcessCluster, request } from "../runtime/server/process-cluster.test-util.js";
import { FuzzFinding, runFuzzAsync, type FuzzReport, type FuzzRun, type Outcomes } from "./harness.js";

interface HttpInput {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly headers: readonly string[];
  readonly body: string;
  /** How Content-Length relates to the body: right, absent, smaller, more than sent, not a number. */
  readonly length: "right" | "absent" | "smaller" | "more" | "garbage";
  readonly peerGarbage: Uint8Array | null;
}

const ROUTES = ["/v1/kv", "/v1/txn", "/v1/compact", "/v1/leases", "/v1/leases/1", "/v1/leases/x/keepalive", "/v1/leases/1/keepalive", "/v1/sessions", "/v1/status", "/v1/members", "/v1/members/0", "/v1/members/2/promote", "/v1/leader/transfer", "/metrics", "/readyz", "/healthz", "/", "/v2/kv/a", "//v1/kv/a", "/v1/kv/"];
const ODD_KEYS = ["a", "%00", "%ff", "%C0%80", "%ZZ", "%", "a%2Fb", "..", "%2e%2e", "a?b", "😀", "%F0%9F%98", "x".repeat(1100), " ", "%20", "a/b/c"];
const path = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...ODD_KEYS).map((key) => `/v1/kv/${key}`) },
  { weight: 3, arbitrary: fc.constantFrom(...ROUTES) },
  { weight: 1, arbitrary: fc.string({ maxLength: 30, unit: "grapheme-ascii" }).map((text) => `/${encodeURI(text)}`) },
);
const queryParameter = fc.tuple(
  fc.constantFrom("prefix", "limit", "after", "consistency", "revision", "key", "fromRevision", "prevValue", "linearizable", "lease", "ttlMs", "session", "foo", ""),
  fc.constantFrom("", "-1", "0", "1", "abc", "1e400", "99999999999999999999", "linearizable", "stale", "serializable", "%ZZ", "true", "a"),
);
const query = fc.array(queryParameter, { maxLength: 3 }).map((pairs) => (pairs.length === 0 ? "" : `?${pairs.map(([k, v]) => `${k}=${v}`).join("&")}`));
const header = fc.constantFrom(
  "Content-Type: application/json",
  "Content-Type: text/plain",
  "Content-Type: application/octet-stream",
  "Content-Type: application/json; charset=latin1",
  "Content-Type: ",
  "Content-Type: \u00ff\u00fe",
  "Transfer-Encoding: chunked",
  "Accept: text/event-stream",
  "X-Synod-Session: abc",
  "X-Synod-Session: 1",
  "X-Synod-Sequence: -1",
  "If-Match: *",
  "Expect: 100-continue",
);
const jsonBody = fc.oneof(
  fc.json({ maxDepth: 3 }),
  fc.constantFrom('{"compare":[],"success":[{"put":{"key":"a","value":"b"}}],"failure":[]}', '{"revision":0}', '{"ttlMs":-5}', '{"ttlMs":1000}', '{"voters":[1],"learners":[]}', '{"to":2}', '{"key":"","value":""}'),
);
const body = fc.oneof(
  { weight: 2, arbitrary: fc.constant("") },
  { weight: 4, arbitrary: jsonBody },
  { weight: 2, arbitrary: fc.string({ maxLength: 64 }) },
  { weight: 1, arbitrary: fc.constantFrom("{", "[", '{"a":', "null", "1e999", '"\\ud800"', "\u0000") },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 200_000 }).map((depth) => "[".repeat(depth) + "]".repeat(depth)) },
  { weight: 1, arbitrary: fc.constantFrom(2 * 1024 * 1024 + 100, 64 * 1024).map((size) => `{"value":"${"v".repeat(size)}"}`) },
);
const hostileHello = fc.constantFrom(
  { synod: { toString: 1 }, clusterId: "x", from: 2, to: 1 },
  { synod: 1, clusterId: "x".repeat(5000), from: 2, to: 1 },
  { synod: 1, clusterId: "synod", from: 2 ** 53, to: 1 },
  { synod: 2n, clusterId: 7, from: -1, to: null },
);
const peerGarbage = fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 300 }), hostileHello.map((hello) => frame(encodeMessage(hello))));

const httpInput: fc.Arbitrary<HttpInput> = fc.record({
  method: fc.oneof({ weight: 4, arbitrary: fc.constantFrom("GET", "PUT", "POST", "DELETE") }, { weight: 1, arbitrary: fc.constantFrom("HEAD", "PATCH", "OPTIONS", "TRACE", "FOO", "get", "G\u00e9T") }),
  path,
  // Mostly well-formed around one fault, so that requests also get past the first check.
  query: fc.oneof({ weight: 3, arbitrary: fc.constant("") }, { weight: 2, arbitrary: query }),
  headers: fc.oneof({ weight: 2, arbitrary: fc.constant([]) }, { weight: 2, arbitrary: fc.uniqueArray(header, { maxLength: 3 }) }),
  body,
  length: fc.constantFrom("right", "right", "right", "right", "right", "absent", "smaller", "more", "garbage"),
  peerGarbage: fc.oneof({ weight: 7, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: peerGarbage }),
});

interface RawAnswer {
  readonly status: number | null;
  readonly head: string;
  readonly body: string;
  readonly timedOut: boolean;
}

/** Writes `bytes` to host:port and reads until the server closes or `timeoutMs` passes. */
function exchange(port: number, bytes: Buffer | Uint8Array, timeoutMs: number): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (timedOut: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      // An interim "100 Continue" (the answer to Expect) precedes the real one.
      const text = Buffer.concat(chunks).toString("latin1").replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, "");
      const split = text.indexOf("\r\n\r\n");
      const head = split < 0 ? text : text.slice(0, split);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1];
      // The first answer's body only: a request whose Content-Length cut its body short gets a second answer for the rest.
      const length = /content-length: (\d+)/i.exec(head)?.[1];
      const rest = split < 0 ? "" : text.slice(split + 4);
      resolve({ status: status === undefined ? null : Number(status), head, body: length === undefined ? rest : rest.slice(0, Number(length)), timedOut });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", () => finish(false));
    socket.on("close", () => finish(false));
    // write, not end: a half-close before the answer makes Node's server drop the request.
    socket.on("connect", () => socket.write(bytes));
  });
}

function requestBytes(input: HttpInput): Buffer {
  const body = Buffer.from(input.body, "utf8");
  const lines = [`${input.method} ${input.path}${input.query} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close", ...input.headers];
  const chunked = input.headers.includes("Transfer-Encoding: chunked");
  if (!chunked) {
    if (input.length === "right") lines.push(`Content-Length: ${body.length}`);
    if (input.length === "smaller") lines.push(`Content-Length: ${Math.floor(body.length / 2)}`);
    if (input.length === "more") lines.push(`Content-Length: ${body.length + 10}`);
    if (input.length === "garbage") lines.push("Content-Length: 12abc");
  }
  const payload = chunked ? Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from("\r\n0\r\n\r\n")]) : body;
  return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), payload]);
}

/** Classifies one answer; throws a FuzzFinding for an answer that is not allowed. */
function judge(input: HttpInput, answer: RawAnswer, outcomes: Outcomes): void {
  const { status } = answer;
  const cutShort = input.length === "more" && !input.headers.includes("Transfer-Encoding: chunked");
  if (status === null) {
    // A request that declares more body than it sends may wait for the rest; a 100-continue too.
    if (cutShort || input.headers.includes("Expect: 100-continue")) return outcomes.count("no answer: the request promised more body");
    // A node that answers (say 400 for the key) and closes before reading a large body
    // resets the connection; the reset can discard the answer before this client reads it.
    if (!answer.timedOut && input.body.length >= 64 * 1024) return outcomes.count("reset while a large body was still being sent");
    throw new FuzzFinding(answer.timedOut ? "no answer within the timeout" : "the connection closed without an answer");
  }
  if (status >= 200 && status < 300) return outcomes.count(answer.timedOut ? "2xx (a stream, left open)" : `${status}`);
  const jsonError = /"error"\s*:/.test(answer.body) && /content-type: application\/json/i.test(answer.head);
  if (status >= 400 && status < 500) {
    // A HEAD answer has the headers of the JSON error and no body (what follows is the answer to the rest of the request).
    if (input.method === "HEAD" && /content-type: application\/json/i.test(answer.head)) return outcomes.count(`${status} (HEAD)`);
    if (jsonError) return outcomes.count(`${status} ${errorCode(answer.body)}`);
    throw new FuzzFinding(`a ${status} without a JSON error body: ${answer.head.slice(0, 300)} ${answer.body.slice(0, 300)}`);
  }
  if (status === 503 && jsonError) return outcomes.count(`503 ${errorCode(answer.body)}`);
  throw new FuzzFinding(`answered ${status}: ${answer.head.slice(0, 300)} ${answer.body.slice(0, 500)}`);
}

function errorCode(body: string): string {
  return /"error"\s*:\s*"([a-z_]+)"/.exec(body)?.[1] ?? "";
}

export async function fuzzHttp(options: FuzzRun): Promise<FuzzReport> {
  const cluster = await ProcessCluster.start({ size: 1 });
  try {
    await cluster.waitForLeader(30_000);
    const node = cluster.node(1);
    const httpPort = Number(new URL(node.http).port);
    const peerPort = Number(cluster.peerAddress(1).split(":")[1]);
    const report = await runFuzzAsync(
      "http",
      httpInput,
      async (input, outcomes) => {
        if (input.peerGarbage !== null) {
          await exchange(peerPort, input.peerGarbage, 300);
          outcomes.count("peer port: garbage sent");
        }
        const answer = await exchange(httpPort, requestBytes(input), 3000);
        if (node.process === null) throw new FuzzFinding(`the node exited:\n${node.output.slice(-3000)}`);
        try {
          judge(input, answer, outcomes);
        } catch (error) {
          // The node's recent log says more than the answer (an exit may not have been noticed yet).
          if (error instanceof FuzzFinding) throw new FuzzFinding(`${error.message}\nthe node's log ends:\n${node.output.slice(-1500)}`);
          throw error;
        }
      },
      options,
    );
    if (report.failure !== null) return report;
    const still = await servesAfterwards(cluster);
    if (still !== null) return { ...report, failure: { seed: options.seed, path: "", counterexample: "(the whole run)", error: still, reproduce: `npm run fuzz -- --target http --runs ${options.runs} --seed ${options.seed}` } };
    return report;
  } finally {
    await cluster.close();
  }
}

/** Null when a put and a get still work after the run; else what went wrong. */
async function servesAfterwards(cluster: ProcessCluster): Promise<string | null> {
  const node = cluster.node(1);
  if (node.process === null) return `the node exited:\n${node.output.slice(-3000)}`;
  const put = await request("PUT", `${node.http}/v1/kv/fuzz-after`, "still-serving");
  if (put.status !== 200) return `a put after the run answered ${put.status}: ${put.text.slice(0, 300)}`;
  const get = await request("GET", `${node.http}/v1/kv/fuzz-after`);
  if (get.status !== 200 || !get.text.includes("still-serving")) return `a get after the run answered ${get.status}: ${get.text.slice(0, 300)}`;
  return null;
}

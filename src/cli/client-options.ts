// Options and error reporting shared by the commands that talk to a running cluster
// (put, get, del, status, bench, leader, members).
import { readFileSync } from "node:fs";
import { type Command, InvalidArgumentError, Option } from "commander";
import type { ClientTls } from "../client/transport.js";
import { trustForFetch } from "../runtime/tls/trust.js";
import { InvalidInputError } from "../core/common/errors.js";
import type { Client } from "../client/client.js";
import { CompactedError, CompareFailedError, ConnectionError, HttpApiError, LeaseNotFoundError, TimeoutError, UnavailableError } from "../client/errors.js";
import { UsageError } from "./usage-error.js";

/** What `npm start` runs: three nodes on loopback. */
export const DEFAULT_ENDPOINTS = ["http://127.0.0.1:7001", "http://127.0.0.1:7002", "http://127.0.0.1:7003"];

/** The TLS files given to this command (`--cacert`, `--cert`, `--key`), read before its action runs. */
let commandTls: ClientTls | undefined;
/** The credentials given to this command (`--user name:password`), for a cluster with auth enabled. */
let commandAuth: { readonly user: string; readonly password: string } | undefined;

/** The TLS files of `--cacert`, `--cert` and `--key`, for commands that make their own connections (the proxy). */
export function commandClientTls(): ClientTls | undefined {
  return commandTls;
}

/** The Authorization header of `--user`, for the commands' plain HTTP requests. */
export function commandAuthorization(): Record<string, string> {
  return commandAuth === undefined ? {} : { authorization: `Basic ${Buffer.from(`${commandAuth.user}:${commandAuth.password}`).toString("base64")}` };
}

function readPemFlag(file: string, flag: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new UsageError(`${flag} ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/**
 * Gives every command that talks to a cluster (those with --endpoints) `--cacert`, `--cert`
 * and `--key`, for https:// endpoints: the CA to trust (a `synod cluster --tls` cluster's
 * `tls/ca.pem`) and a client certificate. They are read before the command runs and used by
 * its client and by its plain HTTP requests alike.
 */
export function addClientTlsOptions(program: Command): void {
  const visit = (command: Command): void => {
    if (command.options.some((option) => option.long === "--endpoints")) {
      command
        .addOption(new Option("--cacert <file>", "for https:// endpoints: the CA certificate to trust (PEM; a synod cluster --tls cluster's tls/ca.pem)").env("SYNOD_CACERT"))
        .addOption(new Option("--cert <file>", "a client certificate to present (PEM), with --key").env("SYNOD_CERT"))
        .addOption(new Option("--key <file>", "the client certificate's key (PEM)").env("SYNOD_KEY"))
        .addOption(new Option("--user <name:password>", "credentials, for a cluster with auth enabled (docs/security.md)").env("SYNOD_USER"))
        .hook("preAction", (_self, action) => {
          const { cacert, cert, key, user } = action.opts<{ cacert?: string; cert?: string; key?: string; user?: string }>();
          if (user !== undefined) {
            const colon = user.indexOf(":");
            if (colon <= 0) throw new UsageError("--user is name:password");
            commandAuth = { user: user.slice(0, colon), password: user.slice(colon + 1) };
          }
          if ((cert === undefined) !== (key === undefined)) throw new UsageError("--cert and --key go together");
          if (cacert === undefined && cert === undefined) return;
          const tls: ClientTls = {
            ...(cacert === undefined ? {} : { ca: readPemFlag(cacert, "--cacert") }),
            ...(cert === undefined || key === undefined ? {} : { cert: readPemFlag(cert, "--cert"), key: readPemFlag(key, "--key") }),
          };
          commandTls = tls;
          if (tls.ca !== undefined) trustForFetch({ ca: String(tls.ca), ...(tls.cert === undefined ? {} : { cert: String(tls.cert), key: String(tls.key) }) });
        });
    }
    for (const sub of command.commands) visit(sub);
  };
  visit(program);
}

/** Exit codes of the cluster commands, the same for every one. */
export const EXIT = Object.freeze({ ok: 0, notFoundOrCompareFailed: 1, usage: 2, unavailable: 3 });

export function endpointsOption(): Option {
  return new Option("--endpoints <urls>", "comma-separated node URLs")
    .env("SYNOD_ENDPOINTS")
    .default(DEFAULT_ENDPOINTS, DEFAULT_ENDPOINTS.join(","))
    .argParser(parseEndpoints);
}

export function parseEndpoints(text: string): string[] {
  const endpoints = text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  if (endpoints.length === 0) throw new InvalidArgumentError("give at least one URL, e.g. http://127.0.0.1:7001");
  for (const endpoint of endpoints) {
    let url: URL | null = null;
    try {
      url = new URL(endpoint);
    } catch {
      // Reported below with the expected form.
    }
    if (url === null || (url.protocol !== "http:" && url.protocol !== "https:") || url.pathname !== "/") {
      throw new InvalidArgumentError(`"${endpoint}" is not a node URL like http://127.0.0.1:7001`);
    }
  }
  return endpoints;
}

/** A commander parser for an integer of at least `min`. */
export function integerAtLeast(what: string, min: number) {
  return integerIn(what, min, Number.MAX_SAFE_INTEGER);
}

/** A commander parser for an integer in [min, max]. */
export function integerIn(what: string, min: number, max: number) {
  return (text: string): number => {
    const value = Number(text);
    if (text.trim() === "" || !Number.isSafeInteger(value) || value < min || value > max) throw new InvalidArgumentError(max === Number.MAX_SAFE_INTEGER ? `${what} must be an integer of at least ${min}` : `${what} must be an integer from ${min} to ${max}`);
    return value;
  };
}

/**
 * The one stderr line and the exit code for a failed cluster command. Errors that are not
 * operating errors (bugs) are not handled here: they propagate with their stack.
 */
export function describeFailure(error: unknown, endpoints: readonly string[]): { line: string; exitCode: number } | null {
  if (error instanceof CompareFailedError) {
    const revision = error.revision === null ? "" : error.revision === 0 ? " (the key does not exist)" : ` (the key is at revision ${error.revision})`;
    return { line: `compare failed: the key was not at the expected revision${revision}; nothing was written`, exitCode: EXIT.notFoundOrCompareFailed };
  }
  if (error instanceof InvalidInputError) return { line: error.message, exitCode: EXIT.usage };
  if (error instanceof LeaseNotFoundError) return { line: `${error.message} (HTTP 404 from ${error.endpoint})`, exitCode: EXIT.notFoundOrCompareFailed };
  if (error instanceof CompactedError) return { line: `${error.message} (HTTP 410 from ${error.endpoint})`, exitCode: EXIT.notFoundOrCompareFailed };
  if (error instanceof ConnectionError && !error.requestSent) {
    return { line: `cannot connect to ${endpoints.join(", ")} (${connectionCause(error)}); is the cluster running? (npm start)`, exitCode: EXIT.unavailable };
  }
  if (error instanceof ConnectionError || error instanceof TimeoutError || error instanceof UnavailableError) return { line: error.message, exitCode: EXIT.unavailable };
  if (error instanceof HttpApiError) {
    // The request was refused as it stands (bad, too large, no credentials or no permission): retrying will not help.
    const usage = error.status === 400 || error.status === 401 || error.status === 403 || error.status === 413 || error.status === 415;
    return { line: `${error.message} (HTTP ${error.status} from ${error.endpoint})`, exitCode: usage ? EXIT.usage : EXIT.unavailable };
  }
  return null;
}

/** The socket error's code (ECONNREFUSED, ...) behind a ConnectionError. */
export function connectionCause(error: ConnectionError): string {
  const cause = error.cause as { code?: unknown; errors?: { code?: unknown }[] } | undefined;
  const code = cause?.code ?? cause?.errors?.[0]?.code;
  return typeof code === "string" ? code : "connection failed";
}

/**
 * For the cluster-operation commands (leader, members): sends one request to the first
 * endpoint that answers (any node takes it and passes it to the leader), prints the API's
 * JSON with `--json` or calls `print` on success, and returns the exit code: 0, 2 for a
 * refusal (with the API's reason on stderr), 3 when the answer is 5xx or no node answers.
 */
/** Refusals that mean the node asked did nothing, so the next endpoint may be asked. */
const PASS_ON = new Set(["no_leader", "no_quorum", "not_member"]);

export async function callCluster(
  command: string,
  options: { readonly endpoints: readonly string[]; readonly json: boolean },
  request: { readonly method: string; readonly path: string; readonly body?: object; readonly timeoutMs?: number },
  print: (answer: Record<string, unknown>) => void,
): Promise<number> {
  let lastFailure = "";
  for (const endpoint of options.endpoints) {
    let response: Response;
    try {
      response = await fetch(`${endpoint}${request.path}`, {
        method: request.method,
        headers: { "content-type": "application/json", ...commandAuthorization() },
        ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
        signal: AbortSignal.timeout(request.timeoutMs ?? 15_000),
      });
    } catch (error) {
      lastFailure = `cannot reach ${endpoint} (${(error as Error).message}); is the cluster running? (npm start)`;
      continue;
    }
    const answer = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (response.status === 503 && PASS_ON.has(String(answer["error"]))) {
      // This node took nothing (no leader is known, or it is no longer a member): ask the next.
      lastFailure = `${endpoint}: ${String(answer["message"] ?? answer["error"])}`;
      continue;
    }
    if (options.json) process.stdout.write(`${JSON.stringify(answer)}\n`);
    if (response.status === 200) {
      if (!options.json) print(answer);
      return EXIT.ok;
    }
    process.stderr.write(`synod ${command}: ${String(answer["message"] ?? `HTTP ${response.status}`)}\n`);
    return response.status >= 500 ? EXIT.unavailable : EXIT.usage;
  }
  process.stderr.write(`synod ${command}: ${lastFailure}\n`);
  return EXIT.unavailable;
}

/** What every command that talks to the cluster through a Client takes. */
export interface ClientCommandOptions {
  readonly endpoints: string[];
  readonly json: boolean;
}

/**
 * How long one attempt of a read may wait before the command tries another node: a paused
 * or partitioned node (SIGSTOP, a full disk) accepts connections and never answers, and a
 * command should move on well before its own 15 s timeout. A write outside a session gets
 * the whole timeout (giving up early would only leave its outcome unknown).
 */
export const CLI_ATTEMPT_TIMEOUT_MS = 2_000;
export const CLI_TIMEOUT_MS = 15_000;

/**
 * Attempts per call of the commands that hold something for a while (`lock`, `elect`): as
 * many as the call's timeout allows (the client's limit), so a request refused while a new
 * leader is being elected is sent again until one is, instead of after six quick tries
 * (about half a second, less than a failover takes). A one-shot command keeps failing fast:
 * its user is there to run it again; a lock holder's command is not.
 */
export const CLI_PATIENT_ATTEMPTS_MAX = 100;

/** Runs `run` with a client, closes it, and turns operating errors into one stderr line and an exit code. */
export async function withClient(
  options: ClientCommandOptions,
  setExitCode: (code: number) => void,
  run: (client: Client) => Promise<void>,
  patience: { readonly rideOutFailovers?: boolean } = {},
): Promise<void> {
  // One command, a few requests: no sessions (a session would outlive the command by an
  // hour in the cluster), no health checks and no member lists (the first answer is all it
  // needs); failover across the endpoints with short pauses. The SDK (and undici under it,
  // about 0.1 s of CPU to load) is loaded here, not with this module: main.ts imports this
  // module into every process, `synod node` too, which never makes a Client.
  const { Client } = await import("../client/client.js");
  const client = new Client({
    endpoints: options.endpoints,
    sessions: false,
    healthCheckIntervalMs: 0,
    membersIntervalMs: 0,
    concurrency: Math.max(8, options.endpoints.length),
    timeoutMs: CLI_TIMEOUT_MS,
    attemptTimeoutMs: CLI_ATTEMPT_TIMEOUT_MS,
    retry: { attemptsMax: patience.rideOutFailovers === true ? CLI_PATIENT_ATTEMPTS_MAX : Math.max(3, 2 * options.endpoints.length), backoffMsBase: 25, backoffMsMax: 250 },
    ...(commandTls === undefined ? {} : { tls: commandTls }),
    ...(commandAuth === undefined ? {} : { auth: commandAuth }),
  });
  try {
    await run(client);
  } catch (error) {
    const failure = describeFailure(error, client.endpoints);
    if (failure === null) throw error;
    process.stderr.write(`synod: ${failure.line}\n`);
    setExitCode(failure.exitCode);
  } finally {
    await client.close();
  }
}

/** Writes `text` and a newline to stdout. */
export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Reads stdin whole, refusing more than `bytesMax` bytes (`what` names it in the message). */
export async function readStdin(bytesMax: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    total += buffer.length;
    if (total > bytesMax) throw new UsageError(`${what} on stdin is over ${bytesMax} bytes, the limit`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Refuses command-line text that held bytes which are not UTF-8. Node decodes the
 * arguments as UTF-8 and replaces each such byte with U+FFFD, so \`bad$'\\xff'key\` arrives
 * as \`bad\uFFFDkey\`, the same as a second, different key would: two keys would collide.
 * U+FFFD is the only trace left, so text holding it is refused (\`hint\` says what to do
 * instead). Returns `text`.
 * @throws UsageError (exit code 2).
 */
export function commandLineText(text: string, what: string, hint = ""): string {
  const at = text.indexOf("\uFFFD");
  if (at === -1) return text;
  throw new UsageError(
    `${what} holds U+FFFD (at character ${at}): the command line gave bytes that are not UTF-8, which arrive as U+FFFD, so two different keys would become one; give ${what} as UTF-8 text${hint}`,
  );
}

/**
 * "term 7" for Raft, "ballot 3.2" (round 3, node 2) for Paxos: a Paxos node's `term` is its
 * ballot as one number (round * 2^20 + node id), which reads better split. `answer` is a
 * status or transfer answer; one without a well-formed `ballot` is shown as a term.
 */
export function termText(answer: { readonly term?: unknown; readonly ballot?: unknown }): string {
  const ballot = answer.ballot as { round?: unknown; node?: unknown } | null | undefined;
  if (typeof ballot === "object" && ballot !== null && typeof ballot.round === "number" && typeof ballot.node === "number") return `ballot ${ballot.round}.${ballot.node}`;
  return `term ${String(answer.term ?? "?")}`;
}

// Options and error reporting shared by the commands that talk to a running cluster
// (put, get, del, status, bench, leader, members).
import { InvalidArgumentError, Option } from "commander";
import { InvalidInputError } from "../core/common/errors.js";
import { CompareFailedError, ConnectionError, HttpApiError, TimeoutError, UnavailableError } from "../client/errors.js";

/** What `npm start` runs: three nodes on loopback. */
export const DEFAULT_ENDPOINTS = ["http://127.0.0.1:7001", "http://127.0.0.1:7002", "http://127.0.0.1:7003"];

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

/** A commander parser for an integer in [min, max]. */
export function integerIn(what: string, min: number, max: number) {
  return (text: string): number => {
    const value = Number(text);
    if (text.trim() === "" || !Number.isSafeInteger(value) || value < min || value > max) throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}`);
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
  if (error instanceof ConnectionError && !error.requestSent) {
    return { line: `cannot connect to ${endpoints.join(", ")} (${connectionCause(error)}); is the cluster running? (npm start)`, exitCode: EXIT.unavailable };
  }
  if (error instanceof ConnectionError || error instanceof TimeoutError || error instanceof UnavailableError) return { line: error.message, exitCode: EXIT.unavailable };
  if (error instanceof HttpApiError) {
    const usage = error.status === 400 || error.status === 413 || error.status === 415;
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
  request: { readonly method: string; readonly path: string; readonly body?: object },
  print: (answer: Record<string, unknown>) => void,
): Promise<number> {
  let lastFailure = "";
  for (const endpoint of options.endpoints) {
    let response: Response;
    try {
      response = await fetch(`${endpoint}${request.path}`, {
        method: request.method,
        headers: { "content-type": "application/json" },
        ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
        signal: AbortSignal.timeout(15_000),
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

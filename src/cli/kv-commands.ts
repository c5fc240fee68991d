// `synod put | get | del | status`: talk to a running cluster over its HTTP API.
import { Command, Option } from "commander";
import { limits } from "../core/common/limits.js";
import { CONSISTENCIES, keyValueToJson, type Consistency, type NodeStatus } from "../client/api.js";
import { Client } from "../client/client.js";
import { ConnectionError } from "../client/errors.js";
import { connectionCause, describeFailure, endpointsOption, EXIT, integerIn } from "./client-options.js";
import { UsageError } from "./sim-command.js";

type SetExitCode = (code: number) => void;

interface CommonOptions {
  readonly endpoints: string[];
  readonly json: boolean;
}

const EXIT_CODES_HELP = `

Exit codes: 0 ok, 1 key not found (get) or compare failed (put --prev-revision),
2 usage error, 3 cluster unavailable (no leader, timeout, cannot connect).`;

/** Registers put, get, del and status on `program`; each reports its outcome through `setExitCode`. */
export function registerKvCommands(program: Command, setExitCode: SetExitCode): void {
  program
    .command("put")
    .description("write a value under a key")
    .argument("<key>", "the key (1 to 1024 bytes of UTF-8; slashes are part of it)")
    .argument("<value>", "the value, or - to read it from stdin")
    .option("--prev-revision <n>", "compare-and-set: write only if the key's revision is n (0: only if it does not exist)", integerIn("--prev-revision", 0, Number.MAX_SAFE_INTEGER))
    .addOption(endpointsOption())
    .option("--json", "print the API's JSON answer", false)
    .addHelpText("after", `
Examples:
  $ synod put greeting hello                  # OK revision=2
  $ synod put greeting again --prev-revision 2
  $ synod put config - < config.json${EXIT_CODES_HELP}`)
    .action(async (key: string, value: string, options: CommonOptions & { prevRevision?: number }) => {
      const bytes = value === "-" ? await readStdin(limits.valueBytesMax) : Buffer.from(value, "utf8");
      await withClient(options, setExitCode, async (client) => {
        const result = await client.put(key, bytes, options.prevRevision === undefined ? {} : { prevRevision: options.prevRevision });
        print(options.json ? JSON.stringify(result) : `OK revision=${result.revision}`);
      });
    });

  program
    .command("get")
    .description("read a key's value")
    .argument("<key>", "the key")
    .addOption(new Option("--consistency <level>", "linearizable: through the leader's read index; lease: the leader's lease; stale: this node's state, possibly behind").choices(CONSISTENCIES).default("linearizable"))
    .addOption(new Option("--raw", "print the value's bytes exactly, without a newline").default(false).conflicts("json"))
    .addOption(endpointsOption())
    .option("--json", "print the API's JSON record (key, value, revisions, version)", false)
    .addHelpText("after", `
Examples:
  $ synod get greeting                        # hello
  $ synod get greeting --consistency stale --endpoints http://127.0.0.1:7002
  $ synod get blob --raw > blob.bin
  $ synod get greeting --json${EXIT_CODES_HELP}`)
    .action(async (key: string, options: CommonOptions & { consistency: Consistency; raw: boolean }) => {
      await withClient(options, setExitCode, async (client) => {
        const record = await client.get(key, { consistency: options.consistency });
        if (record === null) {
          process.stderr.write(`synod: key ${JSON.stringify(key)} not found\n`);
          setExitCode(EXIT.notFoundOrCompareFailed);
        } else if (options.json) print(JSON.stringify(keyValueToJson(record)));
        else if (options.raw) process.stdout.write(record.value);
        else {
          process.stdout.write(record.value);
          process.stdout.write("\n");
        }
      });
    });

  program
    .command("del")
    .description("delete a key")
    .argument("<key>", "the key")
    .addOption(endpointsOption())
    .option("--json", "print the API's JSON answer", false)
    .addHelpText("after", `
Examples:
  $ synod del greeting                        # OK deleted=1 revision=3
  $ synod del greeting --json                 # {"deleted":0,"revision":3}${EXIT_CODES_HELP}`)
    .action(async (key: string, options: CommonOptions) => {
      await withClient(options, setExitCode, async (client) => {
        const result = await client.delete(key);
        print(options.json ? JSON.stringify(result) : `OK deleted=${result.deleted} revision=${result.revision}`);
      });
    });

  program
    .command("status")
    .description("show every endpoint's role, term, leader, commit and applied index")
    .addOption(endpointsOption())
    .option("--json", "print a JSON array: {endpoint, status} or {endpoint, error} per endpoint", false)
    .addHelpText("after", `
Examples:
  $ synod status
  $ synod status --endpoints http://127.0.0.1:7001 --json

Exit codes: 0 when at least one endpoint answered, 3 when none did.`)
    .action(async (options: CommonOptions) => {
      await withClient(options, setExitCode, async (client) => {
        const answers = await Promise.allSettled(client.endpoints.map((endpoint) => client.status(endpoint)));
        const rows = answers.map((answer, i) => ({ endpoint: client.endpoints[i] ?? "", answer }));
        if (options.json) {
          const report = rows.map(({ endpoint, answer }) => (answer.status === "fulfilled" ? { endpoint, status: answer.value } : { endpoint, error: errorJson(answer.reason) }));
          print(JSON.stringify(report, null, 2));
        } else print(statusTable(rows, options.endpoints));
        if (answers.every((answer) => answer.status === "rejected")) setExitCode(EXIT.unavailable);
      });
    });
}

/** Runs `run` with a client, closes it, and turns operating errors into one stderr line and an exit code. */
async function withClient(options: CommonOptions, setExitCode: SetExitCode, run: (client: Client) => Promise<void>): Promise<void> {
  // One command, one request: no sessions (a session would outlive the command by an hour
  // in the cluster) and no health checks (the first answer is all it needs); failover
  // across the endpoints with short pauses.
  const client = new Client({
    endpoints: options.endpoints,
    sessions: false,
    healthCheckIntervalMs: 0,
    concurrency: Math.max(8, options.endpoints.length),
    timeoutMs: 15_000,
    attemptTimeoutMs: 10_000,
    retry: { attemptsMax: Math.max(3, 2 * options.endpoints.length), backoffMsBase: 25, backoffMsMax: 250 },
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

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Reads stdin whole, refusing more than `bytesMax` (the store's value limit). */
async function readStdin(bytesMax: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    total += buffer.length;
    if (total > bytesMax) throw new UsageError(`the value on stdin is over ${bytesMax} bytes, the store's limit`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

function errorJson(error: unknown): { code: string; message: string } {
  if (error instanceof Error) return { code: (error as { code?: unknown }).code === undefined ? error.name : String((error as { code?: unknown }).code), message: error.message };
  return { code: "unknown", message: String(error) };
}

function statusTable(rows: readonly { endpoint: string; answer: PromiseSettledResult<NodeStatus> }[], endpoints: readonly string[]): string {
  const header = ["endpoint", "id", "role", "term", "leader", "commit", "applied"];
  const cells = rows.map(({ endpoint, answer }) => {
    if (answer.status === "rejected") {
      const reason: unknown = answer.reason;
      return [endpoint, "-", reason instanceof ConnectionError ? `unreachable (${connectionCause(reason)})` : `error: ${reason instanceof Error ? reason.message : String(reason)}`];
    }
    const status = answer.value;
    return [endpoint, String(status.id), status.role, String(status.term), status.leader === null ? "none" : String(status.leader), String(status.commitIndex), String(status.appliedIndex)];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...cells.filter((row) => row.length === header.length).map((row) => (row[column] ?? "").length)));
  const line = (row: readonly string[]): string => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join("  ");
  const reachable = rows.filter((row) => row.answer.status === "fulfilled").length;
  return [line(header), ...cells.map(line), `${reachable} of ${endpoints.length} endpoints answered`].join("\n");
}

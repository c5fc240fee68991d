// `synod put | get | ls | del | txn`: the key-value API of a running cluster from the
// command line. Human output by default, the API's JSON with --json.
import { readFile } from "node:fs/promises";
import { Command, Option } from "commander";
import { limits } from "../core/common/limits.js";
import { CONSISTENCIES, decodeUtf8Strict, keyValueToJson, type Consistency, type KeyValue, type RangeResult, type TxnRequest, type TxnResponse, type TxnResult } from "../client/api.js";
import type { Client } from "../client/client.js";
import { commandLineText, endpointsOption, EXIT, integerIn, print, readStdin, withClient, type ClientCommandOptions } from "./client-options.js";
import { UsageError } from "./usage-error.js";
import { registerWatchCommands } from "./watch-command.js";
import { registerLeaseCommands } from "./lease-command.js";
import { registerLockCommand } from "./lock-command.js";

type SetExitCode = (code: number) => void;

const EXIT_CODES_HELP = `

Exit codes: 0 ok, 1 key not found (get) or compare failed (put --prev-revision, txn),
2 usage error, 3 cluster unavailable (no leader, timeout, cannot connect).`;

/** Keys per range request when paging (the node's cap). */
const PAGE_KEYS_MAX = 1000;
/** The largest transaction file read: a node takes 4 MiB request bodies by default. */
const TXN_FILE_BYTES_MAX = 8 * 1024 * 1024;

/** Registers put, get, ls, del, txn, watch and compact on `program`; each reports its outcome through `setExitCode`. */
export function registerKvCommands(program: Command, setExitCode: SetExitCode): void {
  registerPut(program, setExitCode);
  registerGet(program, setExitCode);
  registerLs(program, setExitCode);
  registerDel(program, setExitCode);
  registerTxn(program, setExitCode);
  registerWatchCommands(program, setExitCode);
  registerLeaseCommands(program, setExitCode);
  registerLockCommand(program, setExitCode);
}

function registerPut(program: Command, setExitCode: SetExitCode): void {
  program
    .command("put")
    .description("write a value under a key")
    .argument("<key>", "the key (1 to 1024 bytes of UTF-8; slashes are part of it)")
    .argument("<value>", "the value, or - to read it (any bytes) from stdin")
    .option("--prev-revision <n>", "compare-and-set: write only if the key's revision is n (0: only if it does not exist)", integerIn("--prev-revision", 0, Number.MAX_SAFE_INTEGER))
    .option("--lease <id>", "attach the key to lease <id> (synod lease grant): deleted when it expires or is revoked", integerIn("--lease", 1, Number.MAX_SAFE_INTEGER))
    .addOption(endpointsOption())
    .option("--json", "print the API's JSON answer", false)
    .addHelpText("after", `
Examples:
  $ synod put greeting hello                  # OK revision=2
  $ synod put greeting again --prev-revision 2
  $ synod put config - < config.json
  $ synod put service/web/a up --lease 12     # deleted when lease 12 expires
Keys and values on the command line must be UTF-8 (other bytes would arrive changed);
a value of any bytes goes through stdin.${EXIT_CODES_HELP}`)
    .action(async (key: string, value: string, options: ClientCommandOptions & { prevRevision?: number; lease?: number }) => {
      commandLineText(key, "the key");
      const bytes = value === "-" ? await readStdin(limits.valueBytesMax, "the value") : Buffer.from(commandLineText(value, "the value", ", or pass other bytes on stdin: synod put KEY - < FILE"), "utf8");
      await withClient(options, setExitCode, async (client) => {
        const result = await client.put(key, bytes, { ...(options.prevRevision === undefined ? {} : { prevRevision: options.prevRevision }), ...(options.lease === undefined ? {} : { lease: options.lease }) });
        print(options.json ? JSON.stringify(result) : `OK revision=${result.revision}`);
      });
    });
}

interface GetOptions extends ClientCommandOptions {
  readonly consistency: Consistency;
  readonly raw: boolean;
  readonly prefix?: string;
  readonly limit?: number;
  readonly revision?: number;
}

function registerGet(program: Command, setExitCode: SetExitCode): void {
  program
    .command("get")
    .description("read a key's value, or with --prefix every key that starts with a prefix")
    .argument("[key]", "the key")
    .option("--prefix <prefix>", 'every key that starts with <prefix>, in key order ("" for all), read page by page')
    .option("--limit <n>", "with --prefix: at most n keys", integerIn("--limit", 1, Number.MAX_SAFE_INTEGER))
    .option("--revision <n>", "read as the store was at revision n (every page of a --prefix read at that one revision)", integerIn("--revision", 1, Number.MAX_SAFE_INTEGER))
    .addOption(consistencyOption())
    .addOption(new Option("--raw", "print the value's bytes exactly, without a newline").default(false).conflicts("json"))
    .addOption(endpointsOption())
    .option("--json", "print the API's JSON record (key, value, revisions, version); with --prefix {kvs, more, revision}", false)
    .addHelpText("after", `
Examples:
  $ synod get greeting                        # hello
  $ synod get greeting --consistency stale --endpoints http://127.0.0.1:7002
  $ synod get blob --raw > blob.bin
  $ synod get greeting --json
  $ synod get --prefix config/                # each key on a line, then its value
  $ synod get --prefix config/ --json --limit 10
  $ synod get greeting --revision 2           # the value it had at revision 2
With --prefix, each page of ${PAGE_KEYS_MAX} keys is a read of its own (pages may be at different
revisions, unless --revision pins them all to one).${EXIT_CODES_HELP}
A revision below the compaction point is refused (compacted, exit code 1).`)
    .action(async (key: string | undefined, options: GetOptions) => {
      if (options.prefix !== undefined) {
        if (key !== undefined) throw new UsageError("give a key, or --prefix, not both");
        if (options.raw) throw new UsageError("--raw prints one value: use it without --prefix");
        const prefix = commandLineText(options.prefix, "the prefix");
        return withClient(options, setExitCode, async (client) => printRange(await readRange(client, prefix, options), options.json));
      }
      if (key === undefined) throw new UsageError("give a key (synod get KEY), or --prefix PREFIX for a range");
      if (options.limit !== undefined) throw new UsageError("--limit goes with --prefix");
      commandLineText(key, "the key");
      await withClient(options, setExitCode, async (client) => {
        const record = await client.get(key, { consistency: options.consistency, ...(options.revision === undefined ? {} : { revision: options.revision }) });
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
}

function registerLs(program: Command, setExitCode: SetExitCode): void {
  program
    .command("ls")
    .description("list the keys that start with a prefix (all keys without one), in key order")
    .argument("[prefix]", "the prefix", "")
    .option("--limit <n>", "at most n keys", integerIn("--limit", 1, Number.MAX_SAFE_INTEGER))
    .addOption(consistencyOption())
    .addOption(endpointsOption())
    .option("--json", "print {keys, more, revision}", false)
    .addHelpText("after", `
Examples:
  $ synod ls config/                          # one key per line
  $ synod ls --limit 100 --json${EXIT_CODES_HELP}`)
    .action(async (prefix: string, options: ClientCommandOptions & { consistency: Consistency; limit?: number }) => {
      commandLineText(prefix, "the prefix");
      await withClient(options, setExitCode, async (client) => {
        const range = await readRange(client, prefix, options);
        const keys = range.kvs.map((kv) => kv.key);
        if (options.json) print(JSON.stringify({ keys, more: range.more, revision: range.revision }));
        else for (const key of keys) print(key);
      });
    });
}

function registerDel(program: Command, setExitCode: SetExitCode): void {
  program
    .command("del")
    .description("delete a key, or with --prefix every key that starts with a prefix")
    .argument("[key]", "the key")
    .option("--prefix <prefix>", "delete every key that starts with <prefix>, in one atomic write")
    .addOption(endpointsOption())
    .option("--json", "print the API's JSON answer", false)
    .addHelpText("after", `
Examples:
  $ synod del greeting                        # OK deleted=1 revision=3
  $ synod del greeting --json                 # {"deleted":0,"revision":3}
  $ synod del --prefix config/                # OK deleted=12 revision=15${EXIT_CODES_HELP}`)
    .action(async (key: string | undefined, options: ClientCommandOptions & { prefix?: string }) => {
      if (key !== undefined && options.prefix !== undefined) throw new UsageError("give a key, or --prefix, not both");
      const target = options.prefix ?? key;
      if (target === undefined) throw new UsageError("give a key (synod del KEY), or --prefix PREFIX for a range");
      if (target === "") throw new UsageError('the prefix must not be empty (a range delete of every key is not offered: list them with synod ls "")');
      commandLineText(target, options.prefix === undefined ? "the key" : "the prefix");
      await withClient(options, setExitCode, async (client) => {
        const result = await client.delete(target, { prefix: options.prefix !== undefined });
        print(options.json ? JSON.stringify(result) : `OK deleted=${result.deleted} revision=${result.revision}`);
      });
    });
}

function registerTxn(program: Command, setExitCode: SetExitCode): void {
  program
    .command("txn")
    .description("run a transaction: compares, then the success or the failure operations, atomically")
    .option("--file <file>", "the transaction's JSON (docs/http-api.md, POST /v1/txn); - or none: stdin")
    .addOption(endpointsOption())
    .option("--json", "print the API's JSON answer", false)
    .addHelpText("after", `
Examples:
  $ echo '{"compare":[{"key":"lock","target":"version","op":"=","value":0}],
           "success":[{"op":"put","key":"lock","value":"me"}],
           "failure":[{"op":"get","key":"lock"}]}' | synod txn
  SUCCEEDED revision=4
  put lock revision=4
  $ synod txn --file txn.json --json
Exit code 1 when a compare did not hold (the failure operations ran).${EXIT_CODES_HELP}`)
    .action(async (options: ClientCommandOptions & { file?: string }) => {
      const request = await readTxn(options.file);
      await withClient(options, setExitCode, async (client) => {
        const answer = await client.txn(request);
        print(options.json ? JSON.stringify(txnJson(answer)) : formatTxn(request, answer));
        if (!answer.succeeded) setExitCode(EXIT.notFoundOrCompareFailed);
      });
    });
}

function consistencyOption(): Option {
  return new Option("--consistency <level>", "linearizable: through the leader's read index; lease: the leader's lease; stale: this node's state, possibly behind")
    .choices(CONSISTENCIES)
    .default("linearizable");
}

/** Every key under `prefix` (up to `limit`), page after page; `more` when the limit cut it short. */
async function readRange(client: Client, prefix: string, options: { consistency: Consistency; limit?: number; revision?: number }): Promise<RangeResult> {
  const kvs: KeyValue[] = [];
  let revision: number | null = null;
  let after: string | undefined;
  for (;;) {
    const wanted = options.limit === undefined ? PAGE_KEYS_MAX : Math.min(PAGE_KEYS_MAX, options.limit - kvs.length);
    const page = await client.range(prefix, { consistency: options.consistency, limit: wanted, ...(after === undefined ? {} : { after }), ...(options.revision === undefined ? {} : { revision: options.revision }) });
    revision ??= page.revision;
    kvs.push(...page.kvs);
    const last = page.kvs.at(-1);
    if (!page.more || last === undefined) return { kvs, more: false, revision };
    if (options.limit !== undefined && kvs.length >= options.limit) return { kvs, more: true, revision };
    after = last.key;
  }
}

function printRange(range: RangeResult, json: boolean): void {
  if (json) return print(JSON.stringify({ kvs: range.kvs.map(keyValueToJson), more: range.more, revision: range.revision }));
  for (const kv of range.kvs) {
    print(kv.key);
    process.stdout.write(kv.value);
    process.stdout.write("\n");
  }
}

/** The transaction's JSON from `file`, or stdin for none or `-`: UTF-8, an object; its shape is the node's to check. */
async function readTxn(file: string | undefined): Promise<TxnRequest> {
  const fromStdin = file === undefined || file === "-";
  if (fromStdin && process.stdin.isTTY === true) process.stderr.write("synod txn: reading the transaction's JSON from stdin (end with Ctrl-D; or give --file FILE)\n");
  let bytes: Buffer;
  try {
    bytes = fromStdin ? await readStdin(TXN_FILE_BYTES_MAX, "the transaction") : await readFile(file);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot read ${file ?? "stdin"}: ${(error as Error).message}`);
  }
  if (bytes.length > TXN_FILE_BYTES_MAX) throw new UsageError(`${file ?? "stdin"} is over ${TXN_FILE_BYTES_MAX} bytes, larger than a node takes`);
  const source = fromStdin ? "stdin" : file;
  const text = decodeUtf8Strict(bytes);
  if (text === null) throw new UsageError(`the transaction in ${source} is not UTF-8 text`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`the transaction in ${source} is not JSON (${(error as Error).message}); see synod txn --help`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new UsageError(`the transaction in ${source} must be a JSON object: {"compare": [...], "success": [...], "failure": [...]}`);
  return parsed as TxnRequest;
}

function txnJson(answer: TxnResponse): object {
  return { succeeded: answer.succeeded, revision: answer.revision, results: answer.results.map((result) => (result.op === "get" ? { ...result, kv: result.kv === null ? null : keyValueToJson(result.kv) } : result)) };
}

/** `SUCCEEDED revision=R` (or FAILED), then a line per operation that ran, in order. */
function formatTxn(request: TxnRequest, answer: TxnResponse): string {
  const operations = (answer.succeeded ? request.success : request.failure) ?? [];
  const head = answer.succeeded ? `SUCCEEDED revision=${answer.revision}` : `FAILED: a compare did not hold; the failure operations ran; revision=${answer.revision}`;
  return [head, ...answer.results.map((result, i) => formatTxnResult(operations[i]?.key ?? "?", result))].join("\n");
}

function formatTxnResult(key: string, result: TxnResult): string {
  switch (result.op) {
    case "get": {
      if (result.forgotten) return `get ${key}: (not kept: this answer is a retried transaction's; read the key again)`;
      if (result.kv === null) return `get ${key}: not found`;
      const text = decodeUtf8Strict(result.kv.value);
      return `get ${key}: ${text ?? `(${result.kv.value.length} bytes, not UTF-8: see --json)`}`;
    }
    case "delete":
      return `delete ${key} deleted=${result.deleted}`;
    case "put":
      return `put ${key} revision=${result.revision}`;
  }
}

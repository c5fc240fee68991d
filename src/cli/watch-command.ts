// `synod watch` and `synod compact`: a key's (or a prefix's) changes as they happen, one line
// each, and the history's compaction. The watch is the SDK's: it moves to another node by
// itself when the one it reads from fails, missing and repeating nothing.
import { Command } from "commander";
import { decodeUtf8Strict } from "../client/api.js";
import { CompactedError } from "../client/errors.js";
import type { WatchEvent } from "../client/watch.js";
import { commandLineText, endpointsOption, EXIT, integerIn, print, withClient, type ClientCommandOptions } from "./client-options.js";

type SetExitCode = (code: number) => void;

interface WatchCommandOptions extends ClientCommandOptions {
  readonly prefix: boolean;
  readonly fromRevision?: number;
  readonly prevValue: boolean;
  readonly count?: number;
}

export function registerWatchCommands(program: Command, setExitCode: SetExitCode): void {
  program
    .command("watch")
    .description("print each change of a key (or of every key under a prefix) as it happens, until Ctrl-C")
    .argument("<key>", 'the key, or with --prefix the prefix ("" for every key)')
    .option("--prefix", "watch every key that starts with <key>", false)
    .option("--from-revision <n>", "start at revision n: replay the history from there (if not compacted), then go on", integerIn("--from-revision", 1, Number.MAX_SAFE_INTEGER))
    .option("--prev-value", "show each key's value before the change too", false)
    .option("--count <n>", "stop after n changes", integerIn("--count", 1, Number.MAX_SAFE_INTEGER))
    .addOption(endpointsOption())
    .option("--json", "one JSON object per line, as the API's events: {type, key, value, revision, createRevision, version, prevValue?}", false)
    .addHelpText("after", `
Examples:
  $ synod watch greeting                      # PUT greeting "hello" revision=7
  $ synod watch config/ --prefix --json
  $ synod watch config/ --prefix --from-revision 1 --count 10
Values are printed as JSON strings (UTF-8 text), or as their length when they are other bytes
(--json gives them in base64). Exit codes: 0 ended (Ctrl-C, --count), 1 the history to
replay was compacted, 2 usage error, 3 the cluster refused the watch.`)
    .action(async (key: string, options: WatchCommandOptions) => {
      commandLineText(key, options.prefix ? "the prefix" : "the key");
      await withClient(options, setExitCode, async (client) => {
        const watch = client.watch(key, {
          prefix: options.prefix,
          prevValue: options.prevValue,
          ...(options.fromRevision === undefined ? {} : { fromRevision: options.fromRevision }),
        });
        const stop = (): void => watch.close();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
        let seen = 0;
        try {
          for await (const event of watch) {
            print(options.json ? JSON.stringify(eventJson(event)) : formatEvent(event));
            if (options.count !== undefined && ++seen >= options.count) break;
          }
        } catch (error) {
          if (!(error instanceof CompactedError)) throw error;
          process.stderr.write(`synod: ${error.message}\n`);
          setExitCode(EXIT.notFoundOrCompareFailed);
        } finally {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
        }
      });
    });

  program
    .command("compact")
    .description("drop the history below a revision: reads at, and watches from, older revisions are refused from then on")
    .argument("<revision>", "the oldest revision to keep", integerIn("the revision", 1, Number.MAX_SAFE_INTEGER))
    .addOption(endpointsOption())
    .option("--json", "print the API's JSON answer", false)
    .addHelpText("after", `
Examples:
  $ synod compact 1000                        # OK compactRevision=1000 revision=1234
Nodes also compact by themselves, keeping --history-revisions (100000 by default).
An older revision than the compaction point changes nothing.`)
    .action(async (revision: number, options: ClientCommandOptions) => {
      await withClient(options, setExitCode, async (client) => {
        const result = await client.compact(revision);
        print(options.json ? JSON.stringify(result) : `OK compactRevision=${result.compactRevision} revision=${result.revision}`);
      });
    });
}

/** `PUT key "value" revision=R` or `DELETE key revision=R`, with ` prev="value"` when known. */
export function formatEvent(event: WatchEvent): string {
  const value = event.type === "put" ? ` ${shown(event.value)}` : "";
  const prev = event.prevValue === undefined ? "" : ` prev=${shown(event.prevValue)}`;
  return `${event.type.toUpperCase()} ${event.key}${value} revision=${event.revision}${prev}`;
}

function shown(bytes: Uint8Array): string {
  const text = decodeUtf8Strict(bytes);
  return text === null ? `(${bytes.length} bytes, not UTF-8: see --json)` : JSON.stringify(text);
}

function eventJson(event: WatchEvent): Record<string, unknown> {
  const json: Record<string, unknown> = { type: event.type, key: event.key };
  if (event.type === "put") Object.assign(json, valueJson(event.value, "value", "encoding"), { revision: event.revision, createRevision: event.createRevision, version: event.version });
  else json["revision"] = event.revision;
  if (event.prevValue !== undefined) Object.assign(json, valueJson(event.prevValue, "prevValue", "prevEncoding"));
  return json;
}

function valueJson(bytes: Uint8Array, name: string, encodingName: string): Record<string, string> {
  const text = decodeUtf8Strict(bytes);
  return text === null ? { [name]: Buffer.from(bytes).toString("base64"), [encodingName]: "base64" } : { [name]: text };
}

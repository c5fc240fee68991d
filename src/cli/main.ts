import { Command, CommanderError } from "commander";
import { addClientTlsOptions } from "./client-options.js";
import { UsageError } from "./usage-error.js";

type Register = (program: Command, setExitCode: (code: number) => void) => void;

/**
 * The modules that define `synod`'s commands, in the order `synod --help` lists them, each
 * with the names of the commands it defines. Each is loaded only when needed: a command
 * line naming one of these commands loads that module alone; any other (help, a name
 * mistyped, no command at all) loads them all. Loading them all costs a process about half
 * a second (the simulator, node-forge, the node's storage and metrics), paid by every
 * `synod node` a cluster starts and every command a script runs. main.test.ts checks that
 * each module defines exactly the names listed here.
 */
export const COMMAND_MODULES: readonly { readonly names: readonly string[]; readonly load: () => Promise<Register> }[] = [
  { names: ["sim", "protocols", "scenarios", "check"], load: async () => (await import("./sim-commands.js")).registerSimCommands },
  { names: ["node"], load: async () => (await import("./node-command.js")).registerNodeCommand },
  { names: ["cluster"], load: async () => (await import("./cluster-command.js")).registerClusterCommand },
  { names: ["demo"], load: async () => (await import("./sim-commands.js")).registerDemoCommand },
  { names: ["put", "get", "ls", "del", "txn", "watch", "compact", "lease", "elect", "lock"], load: async () => (await import("./kv-commands.js")).registerKvCommands },
  { names: ["status"], load: async () => (await import("./status-command.js")).registerStatusCommand },
  { names: ["bench"], load: async () => (await import("./bench-command.js")).registerBenchCommand },
  { names: ["leader"], load: async () => (await import("./leader-command.js")).registerLeaderCommand },
  { names: ["members"], load: async () => (await import("./members-command.js")).registerMembersCommand },
  { names: ["shards"], load: async () => (await import("./shards-command.js")).registerShardsCommand },
  { names: ["proxy"], load: async () => (await import("./proxy-command.js")).registerProxyCommand },
  { names: ["snapshot"], load: async () => (await import("./snapshot-command.js")).registerSnapshotCommand },
  { names: ["tls"], load: async () => (await import("./tls-command.js")).registerTlsCommand },
  { names: ["auth", "user", "role"], load: async () => (await import("./auth-command.js")).registerAuthCommands },
];

/** The modules `argv` needs: the one defining the command it names, else every one. */
export function commandModulesFor(argv: readonly string[]): typeof COMMAND_MODULES {
  const named = argv[2];
  const owner = named === undefined ? undefined : COMMAND_MODULES.find((module) => module.names.includes(named));
  return owner === undefined ? COMMAND_MODULES : [owner];
}

async function buildProgram(argv: readonly string[], setExitCode: (code: number) => void): Promise<Command> {
  const program = new Command("synod")
    .description("Consensus you can trust, for TypeScript: engines, a deterministic simulator, a replicated KV store.")
    .version("0.1.0")
    .exitOverride()
    .showHelpAfterError("(run with --help for usage)");
  const modules = commandModulesFor(argv);
  const registers = await Promise.all(modules.map((module) => module.load()));
  for (const register of registers) register(program, setExitCode);
  addClientTlsOptions(program);
  return program;
}

/** The status of a process killed by SIGPIPE (128 + 13), as a shell reports `seq 1 1e6 | head -1`'s writer. */
export const EXIT_CLOSED_PIPE = 141;

/**
 * Output to a reader that went away (`synod ... | head`) ends the process quietly, as a Unix
 * tool killed by SIGPIPE would end (Node ignores SIGPIPE and reports EPIPE instead). Any
 * other failure to write output is one line on stderr.
 */
function stopQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE") process.exit(EXIT_CLOSED_PIPE);
      if (stream !== process.stderr) process.stderr.write(`synod: cannot write the output: ${error.message}\n`);
      process.exit(1);
    });
  }
}

/**
 * A failed system call (a file that cannot be written, say) as one line, `cannot open PATH
 * (permission denied)`; null for any other error, which is a bug and keeps its stack.
 */
export function systemErrorLine(error: unknown): string | null {
  if (!(error instanceof Error)) return null;
  const { code, syscall, path } = error as NodeJS.ErrnoException;
  if (typeof code !== "string" || typeof syscall !== "string") return null;
  // Node's message is "CODE: what, syscall 'path'"; the "what" is the system's own words.
  const what = /^[A-Z0-9_]+: ([^,]+)/.exec(error.message)?.[1] ?? code;
  return `cannot ${syscall}${path === undefined ? "" : ` ${path}`} (${what})`;
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  stopQuietlyOnClosedPipe();
  let exitCode = 0;
  const program = await buildProgram(argv, (code) => (exitCode = code));
  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof UsageError) {
      process.stderr.write(`synod: ${error.message}\n`);
      return 2;
    }
    const line = systemErrorLine(error);
    if (line !== null) {
      process.stderr.write(`synod: ${line}\n`);
      return 1;
    }
    throw error;
  }
  return exitCode;
}

// `synod lock NAME -- COMMAND [ARGS...]`: runs a command while holding a lock, so two such
// commands never run at once anywhere (as long as each finishes or is stopped when its lease
// is lost). The command gets the lock's fencing token in SYNOD_LOCK_TOKEN, to hand to the
// resource it guards (docs/recipes.md).
import { spawn } from "node:child_process";
import { Command } from "commander";
import { endpointsOption, EXIT, integerIn, withClient, type ClientCommandOptions } from "./client-options.js";

type SetExitCode = (code: number) => void;

/** The exit code when the lock's lease was lost and the command was stopped. */
export const EXIT_LOCK_LOST = 4;

export function registerLockCommand(program: Command, setExitCode: SetExitCode): void {
  registerElectCommand(program, setExitCode);
  program
    .command("lock")
    .description("run a command while holding a lock: waits its turn, runs it, releases the lock when it exits")
    .argument("<name>", "the lock's name, a key prefix like locks/backup")
    .argument("<command...>", "the command and its arguments, after --")
    .option("--ttl <seconds>", "the time to live of the lease the lock is held under; renewed every third of it", integerIn("--ttl", 1, 31_536_000), 10)
    .addOption(endpointsOption())
    .addHelpText("after", `
Examples:
  $ synod lock locks/backup -- ./backup.sh
  $ synod lock locks/migrate --ttl 30 -- npm run migrate

The command runs with SYNOD_LOCK_TOKEN (the fencing token: it grows from holder to holder)
and SYNOD_LOCK_KEY in its environment. If the lock's lease is lost (no keep-alive
acknowledged within its time to live), the command gets SIGTERM: another may hold the lock
now. Exit code: the command's; ${EXIT_LOCK_LOST} when it was stopped because the lock was lost; 2 usage
error; 3 cluster unavailable.`)
    .action(async (name: string, command: string[], options: ClientCommandOptions & { ttl: number }) => {
      const [file, ...args] = command;
      if (file === undefined) return setExitCode(EXIT.usage);
      await withClient(options, setExitCode, async (client) => {
        const lock = await client.lock(name, { ttlSeconds: options.ttl });
        const child = spawn(file, args, { stdio: "inherit", env: { ...process.env, SYNOD_LOCK_TOKEN: String(lock.token), SYNOD_LOCK_KEY: lock.key } });
        let lost = false;
        void lock.lost.then((error) => {
          lost = true;
          process.stderr.write(`synod: the lock's lease was lost (${error.message}); stopping the command\n`);
          child.kill("SIGTERM");
        });
        const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
        process.on("SIGINT", forward);
        process.on("SIGTERM", forward);
        const code = await new Promise<number>((resolve) => {
          child.once("error", (error) => {
            process.stderr.write(`synod: cannot run ${file}: ${error.message}\n`);
            resolve(127);
          });
          child.once("exit", (exitCode, signal) => resolve(exitCode ?? (signal === null ? 1 : 128 + 15)));
        });
        process.off("SIGINT", forward);
        process.off("SIGTERM", forward);
        if (!lost) await lock.release();
        setExitCode(lost ? EXIT_LOCK_LOST : code);
      }, { rideOutFailovers: true });
    });
}

/** `synod elect NAME VALUE`: campaigns, says when it leads, leads until Ctrl-C (then resigns). */
function registerElectCommand(program: Command, setExitCode: SetExitCode): void {
  program
    .command("elect")
    .description("campaign in an election with a value: waits its turn, prints LEADER when it leads, resigns on Ctrl-C")
    .argument("<name>", "the election's name, a key prefix like elect/web")
    .argument("<value>", "this candidate's value, which observers see while it leads (e.g. its address)")
    .option("--ttl <seconds>", "the time to live of the lease the leadership is held under", integerIn("--ttl", 1, 31_536_000), 10)
    .addOption(endpointsOption())
    .addHelpText("after", `
Examples:
  $ synod elect elect/web 10.0.0.7:8080        # LEADER token=57 (once it leads), until Ctrl-C

Exit code: 0 resigned (Ctrl-C); ${EXIT_LOCK_LOST} the leadership's lease was lost; 3 cluster unavailable.`)
    .action(async (name: string, value: string, options: ClientCommandOptions & { ttl: number }) => {
      await withClient(options, setExitCode, async (client) => {
        const stopping = new AbortController();
        const stop = (): void => stopping.abort();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
        try {
          const leadership = await client.campaign(name, value, { ttlSeconds: options.ttl, signal: stopping.signal });
          process.stdout.write(`LEADER token=${leadership.token} key=${leadership.key}\n`);
          const lost = await Promise.race([leadership.lost, new Promise<null>((resolve) => stopping.signal.addEventListener("abort", () => resolve(null), { once: true }))]);
          if (lost !== null) {
            process.stderr.write(`synod: leadership lost (${lost.message})\n`);
            return setExitCode(EXIT_LOCK_LOST);
          }
          await leadership.resign();
        } catch (error) {
          if (!stopping.signal.aborted) throw error;
        } finally {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
        }
      }, { rideOutFailovers: true });
    });
}

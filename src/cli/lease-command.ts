// `synod lease grant | keepalive | revoke | get | list`: leases from the command line. A key
// is attached to one with `synod put KEY VALUE --lease ID`, and deleted when it expires or is
// revoked. `keepalive` renews a lease until Ctrl-C, as a process holding it would.
import { setTimeout as sleep } from "node:timers/promises";
import { performance } from "node:perf_hooks";
import { Command } from "commander";
import type { LeaseInfo } from "../client/api.js";
import type { Client } from "../client/client.js";
import { LeaseNotFoundError } from "../client/errors.js";
import { endpointsOption, EXIT, integerIn, print, withClient, type ClientCommandOptions } from "./client-options.js";

type SetExitCode = (code: number) => void;

/** A failed keep-alive is tried again after this long, until the lease's time to live is up. */
const RETRY_PAUSE_MS = 500;

const EXIT_CODES_HELP = `

Exit codes: 0 ok, 1 the lease does not exist (never granted, expired or revoked), 2 usage
error, 3 cluster unavailable (no leader, timeout, cannot connect).`;

export function registerLeaseCommands(program: Command, setExitCode: SetExitCode): void {
  const lease = program
    .command("lease")
    .description("grant, keep alive, revoke and list leases: keys attached to one are deleted when it expires or is revoked")
    .addHelpText("after", `
Examples:
  $ synod lease grant 10                      # OK id=12 ttl=10s
  $ synod put service/web/a up --lease 12     # the key lives as long as lease 12
  $ synod lease keepalive 12                  # renews it every 3 s until Ctrl-C
  $ synod lease get 12                        # id=12 ttl=10s remaining=9.2s keys=1, then the keys
  $ synod lease list
  $ synod lease revoke 12                     # OK deleted=1 revision=10`);
  lease
    .command("grant")
    .description("grant a lease that lives <ttl> seconds unless kept alive")
    .argument("<ttl>", "its time to live, in seconds (1 to 31536000)", integerIn("<ttl>", 1, 31_536_000))
    .addOption(endpointsOption())
    .option("--json", "print the API's JSON answer", false)
    .addHelpText("after", EXIT_CODES_HELP)
    .action(async (ttlSeconds: number, options: ClientCommandOptions) => {
      await withClient(options, setExitCode, async (client) => {
        const granted = await client.grantLease(ttlSeconds);
        print(options.json ? JSON.stringify(granted) : `OK id=${granted.id} ttl=${granted.ttlSeconds}s`);
      });
    });
  lease
    .command("keepalive")
    .description("renew a lease at a third of its time to live until Ctrl-C (or once, with --once)")
    .argument("<id>", "the lease's id", integerIn("<id>", 1, Number.MAX_SAFE_INTEGER))
    .option("--once", "renew it once and exit", false)
    .addOption(endpointsOption())
    .option("--json", "one JSON answer per renewal", false)
    .addHelpText("after", `
A renewal that fails (no leader, a node down) is tried again every ${RETRY_PAUSE_MS} ms on any node;
if none succeeds within the lease's time to live it may have expired: exit code 3.${EXIT_CODES_HELP}`)
    .action(async (id: number, options: ClientCommandOptions & { once: boolean }) => {
      await withClient(options, setExitCode, (client) => keepAlive(client, id, options, setExitCode));
    });
  lease
    .command("revoke")
    .description("revoke a lease now, deleting every key attached to it (in one revision)")
    .argument("<id>", "the lease's id", integerIn("<id>", 1, Number.MAX_SAFE_INTEGER))
    .addOption(endpointsOption())
    .option("--json", "print the API's JSON answer", false)
    .addHelpText("after", EXIT_CODES_HELP)
    .action(async (id: number, options: ClientCommandOptions) => {
      await withClient(options, setExitCode, async (client) => {
        const revoked = await client.revokeLease(id);
        print(options.json ? JSON.stringify({ id, ...revoked }) : `OK deleted=${revoked.deleted} revision=${revoked.revision}`);
      });
    });
  lease
    .command("get")
    .description("a lease's time to live, how long it lives yet, and its keys")
    .argument("<id>", "the lease's id", integerIn("<id>", 1, Number.MAX_SAFE_INTEGER))
    .addOption(endpointsOption())
    .option("--json", "print the API's JSON answer", false)
    .addHelpText("after", EXIT_CODES_HELP)
    .action(async (id: number, options: ClientCommandOptions) => {
      await withClient(options, setExitCode, async (client) => {
        const info = await client.leaseInfo(id);
        if (info === null) {
          process.stderr.write(`synod: lease ${id} does not exist (never granted, or expired or revoked)\n`);
          return setExitCode(EXIT.notFoundOrCompareFailed);
        }
        if (options.json) return print(JSON.stringify(info));
        print(formatLease(info) + ` keys=${info.keys.length}${info.moreKeys ? "+" : ""}`);
        for (const key of info.keys) print(key);
      });
    });
  lease
    .command("list")
    .description("every lease, by id, with its time to live and how long it lives yet")
    .addOption(endpointsOption())
    .option("--json", "one JSON object per lease", false)
    .action(async (options: ClientCommandOptions) => {
      await withClient(options, setExitCode, async (client) => {
        for (let after = 0; ; ) {
          const page = await client.leases({ limit: 1000, after });
          for (const info of page.leases) print(options.json ? JSON.stringify({ id: info.id, ttlSeconds: info.ttlSeconds, remainingMs: info.remainingMs }) : formatLease(info));
          const last = page.leases.at(-1);
          if (!page.more || last === undefined) return;
          after = last.id;
        }
      });
    });
}

function formatLease(info: LeaseInfo): string {
  return `id=${info.id} ttl=${info.ttlSeconds}s remaining=${(info.remainingMs / 1000).toFixed(1)}s`;
}

/** Renews until a signal (or once); exit 1 when the lease is gone, 3 when no renewal succeeded within its time to live. */
async function keepAlive(client: Client, id: number, options: { once: boolean; json: boolean }, setExitCode: SetExitCode): Promise<void> {
  let stopped = false;
  const stop = (): void => {
    stopped = true;
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    let renewedAtMs = performance.now();
    let ttlMs = Number.POSITIVE_INFINITY;
    while (!stopped) {
      const sentAtMs = performance.now();
      try {
        const renewed = await client.keepAliveLease(id);
        renewedAtMs = sentAtMs;
        ttlMs = renewed.ttlSeconds * 1000;
        print(options.json ? JSON.stringify(renewed) : `OK id=${id} ttl=${renewed.ttlSeconds}s`);
        if (options.once) return;
        await pause(ttlMs / 3, () => stopped);
      } catch (error) {
        if (error instanceof LeaseNotFoundError || options.once) throw error;
        if (performance.now() - renewedAtMs + RETRY_PAUSE_MS >= ttlMs) throw error;
        process.stderr.write(`synod: renewing lease ${id} failed (${(error as Error).message}); trying again\n`);
        await pause(RETRY_PAUSE_MS, () => stopped);
      }
    }
  } catch (error) {
    if (!(error instanceof LeaseNotFoundError)) throw error;
    process.stderr.write(`synod: lease ${id} does not exist (never granted, or expired or revoked)\n`);
    setExitCode(EXIT.notFoundOrCompareFailed);
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

/** Sleeps `ms`, waking early (checked every 100 ms) once `stopped()`. */
async function pause(ms: number, stopped: () => boolean): Promise<void> {
  const until = performance.now() + ms;
  while (!stopped() && performance.now() < until) await sleep(Math.min(100, until - performance.now()));
}

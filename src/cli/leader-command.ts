import type { Command } from "commander";
import { endpointsOption, EXIT, integerIn } from "./client-options.js";

/** `synod leader transfer`: hands leadership to a chosen member (any node takes the request). */
export function registerLeaderCommand(program: Command, setExitCode: (code: number) => void): void {
  const leader = program.command("leader").description("leadership operations");
  leader
    .command("transfer")
    .description("hand leadership to another member (or let the leader choose the most up-to-date one)")
    .option("--to <id>", "the member that should lead", integerIn("--to", 1, Number.MAX_SAFE_INTEGER))
    .addOption(endpointsOption())
    .option("--json", "print the API's JSON answer", false)
    .addHelpText(
      "after",
      `
Examples:
  synod leader transfer --to 2     # node 2 leads within about a heartbeat round trip
  synod leader transfer            # the leader picks the member with the most complete log`,
    )
    .action(async (opts: { to?: number; endpoints: string[]; json: boolean }) => setExitCode(await transfer(opts)));
}

async function transfer(opts: { to?: number; endpoints: string[]; json: boolean }): Promise<number> {
  let lastFailure = "";
  for (const endpoint of opts.endpoints) {
    let response: Response;
    try {
      response = await fetch(`${endpoint}/v1/leader/transfer`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(opts.to === undefined ? {} : { to: opts.to }),
        signal: AbortSignal.timeout(15_000),
      });
    } catch (error) {
      lastFailure = `cannot reach ${endpoint} (${(error as Error).message}); is the cluster running? (npm start)`;
      continue;
    }
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (opts.json) process.stdout.write(`${JSON.stringify(body)}\n`);
    if (response.status === 200) {
      if (!opts.json) process.stdout.write(`node ${String(body["leader"])} leads (term ${String(body["term"])}), after ${String(body["ms"])} ms\n`);
      return EXIT.ok;
    }
    process.stderr.write(`synod leader transfer: ${String(body["message"] ?? `HTTP ${response.status}`)}\n`);
    return response.status >= 500 ? EXIT.unavailable : EXIT.usage;
  }
  process.stderr.write(`synod leader transfer: ${lastFailure}\n`);
  return EXIT.unavailable;
}

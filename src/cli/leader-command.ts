import type { Command } from "commander";
import { callCluster, endpointsOption, integerIn, termText } from "./client-options.js";

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

function transfer(opts: { to?: number; endpoints: string[]; json: boolean }): Promise<number> {
  return callCluster("leader transfer", opts, { method: "POST", path: "/v1/leader/transfer", body: opts.to === undefined ? {} : { to: opts.to } }, (body) =>
    process.stdout.write(`node ${String(body["leader"])} leads (${termText(body)}), after ${String(body["ms"])} ms\n`),
  );
}

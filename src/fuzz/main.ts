/**
 * `npm run fuzz`: throws generated inputs at every decoder and entry point that takes
 * untrusted bytes (see docs/security.md, "Fuzzing"), prints per target the inputs tried and
 * their outcomes, and on a failure the seed, the shrunk input and the command that replays
 * it, exiting 1.
 *
 *   npm run fuzz                                   every target, default counts (about six minutes)
 *   npm run fuzz -- --target peer --runs 50000     one target
 *   npm run fuzz -- --target commands --seed 7 --runs 1000 --path 12:3:0   replay a failure
 */
import { Command, InvalidArgumentError } from "commander";
import { fuzzCommands } from "./commands.js";
import { formatReport, type FuzzReport, type FuzzRun } from "./harness.js";
import { fuzzHttp } from "./http.js";
import { fuzzPeer } from "./peer.js";
import { fuzzStorage } from "./storage.js";

interface Target {
  /** Inputs in a default run: each target's share of a few minutes on a small machine. */
  readonly defaultRuns: number;
  readonly run: (options: FuzzRun) => FuzzReport | Promise<FuzzReport>;
}

const TARGETS: Readonly<Record<string, Target>> = {
  commands: { defaultRuns: 3_000_000, run: fuzzCommands },
  peer: { defaultRuns: 400_000, run: fuzzPeer },
  storage: { defaultRuns: 40_000, run: fuzzStorage },
  http: { defaultRuns: 3_000, run: fuzzHttp },
};

function integer(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError("a non-negative integer");
  return value;
}

async function main(): Promise<void> {
  const program = new Command("fuzz")
    .description("throw generated inputs at synod's decoders and entry points; exit 1 on a crash, an untyped error, a hang or corrupt data accepted")
    .option("--target <name>", `one of ${Object.keys(TARGETS).join(", ")} (default: all)`)
    .option("--runs <n>", "inputs per target (default: each target's own)", integer)
    .option("--seed <n>", "the seed (default: from the clock, printed)", integer)
    .option("--path <path>", "replay one counterexample (from a failure report; needs the same --seed and --runs)")
    .parse();
  const options = program.opts<{ target?: string; runs?: number; seed?: number; path?: string }>();
  const names = options.target === undefined ? Object.keys(TARGETS) : [options.target];
  const unknown = names.filter((name) => TARGETS[name] === undefined);
  if (unknown.length > 0) program.error(`unknown target ${unknown.join(", ")}; the targets are ${Object.keys(TARGETS).join(", ")}`);
  const seed = options.seed ?? Date.now() % 2 ** 31;
  console.log(`fuzz: seed ${seed}`);
  let failed = false;
  for (const name of names) {
    const target = TARGETS[name] as Target;
    const report = await target.run({ runs: options.runs ?? target.defaultRuns, seed, ...(options.path === undefined ? {} : { path: options.path }) });
    console.log(formatReport(report));
    failed ||= report.failure !== null;
  }
  process.exitCode = failed ? 1 : 0;
}

await main();

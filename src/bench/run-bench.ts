/**
 * How a benchmark script starts: a command line it cannot read (an unknown option, a value
 * it refuses) gets one line that says what is wrong, and exit code 2, not a stack trace.
 * Anything else a run throws is a failure of the run and keeps its stack.
 */

import { InvalidInputError } from "../core/common/errors.js";

/** A benchmark's option that cannot be used as given. */
export class BenchUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BenchUsageError";
  }
}

/** Whether `error` is a command line the benchmark cannot read: node:util's parseArgs refusals, a BenchUsageError, or a value refused as input (a duration, say). */
function isUsageError(error: unknown): error is Error {
  if (error instanceof BenchUsageError || error instanceof InvalidInputError) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_");
}

/** Runs a benchmark's `main`; `name` starts the line a usage error prints (the script's path under dist/, say). */
export async function runBench(name: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    if (!isUsageError(error)) throw error;
    process.stderr.write(`${name}: ${error.message}\n`);
    process.exitCode = 2;
  }
}

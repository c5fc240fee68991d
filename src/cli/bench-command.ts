// `synod bench`: load a running cluster and print throughput and latency percentiles.
import cliProgress from "cli-progress";
import { Command, InvalidArgumentError, Option } from "commander";
import { InvalidInputError } from "../core/common/errors.js";
import { limits } from "../core/common/limits.js";
import { BenchSetupError, BENCH_OPS, BENCH_TARGETS, formatBenchResult, parseDurationMs, runKvBench, type BenchOp, type BenchOptions, type BenchResult, type BenchTarget } from "../bench/kv-load.js";
import { CONSISTENCIES, type Consistency } from "../client/api.js";
import { commandAuthorization, commandClientTls, describeFailure, endpointsOption, EXIT, integerIn } from "./client-options.js";

interface BenchCommandOptions {
  readonly endpoints: string[];
  readonly duration: number;
  readonly concurrency: number;
  readonly valueSize: number;
  readonly op: BenchOp;
  readonly keys?: number;
  readonly spreadKeys: boolean;
  readonly mixedGetRatio: number;
  readonly consistency: Consistency;
  readonly target: BenchTarget;
  readonly maxOps: number;
  readonly json: boolean;
}

/** Registers `synod bench` on `program`. */
export function registerBenchCommand(program: Command, setExitCode: (code: number) => void): void {
  program
    .command("bench")
    .description("load a running cluster: a closed loop of concurrent requests, then throughput and latency percentiles")
    .addOption(endpointsOption())
    .addOption(new Option("--duration <time>", "how long to send requests: 500ms, 10s, 2m or seconds").argParser(duration).default(10_000, "10s"))
    .option("--concurrency <n>", "requests kept outstanding (one connection each)", integerIn("--concurrency", 1, 4096), 64)
    .option("--value-size <bytes>", "bytes per written value", integerIn("--value-size", 0, limits.valueBytesMax), 100)
    .addOption(new Option("--op <op>", "what to send").choices(BENCH_OPS).default("put"))
    .option("--keys <n>", "key space: puts cycle over n keys (default: distinct keys), gets read n keys written first (default 1000)", integerIn("--keys", 1, 100_000_000))
    .option("--spread-keys", "keys start with '0' to 'z' in turn, so they fall in every range of a cluster started with --shards", false)
    .option("--mixed-get-ratio <r>", "share of gets in --op mixed, 0..1", ratio, 0.5)
    .addOption(new Option("--consistency <level>", "for gets").choices(CONSISTENCIES).default("linearizable"))
    .addOption(new Option("--target <where>", "leader: every request to the leader (found by /v1/status); all: round-robin over every endpoint; ranges: each request to its key's range's leader (GET /v1/shards, re-read every 250 ms)").choices(BENCH_TARGETS).default("leader"))
    .option("--max-ops <n>", "stop after this many requests even before the duration", integerIn("--max-ops", 1, 1_000_000_000), 10_000_000)
    .option("--json", "print one JSON object: ops, seconds, opsPerSecond, latencyMs {p50,p90,p99,max,mean}, errors", false)
    .addHelpText("after", `
Examples:
  $ synod bench                                         # 10 s of 100-byte puts to the leader
  $ synod bench --op get --consistency lease --duration 5s
  $ synod bench --op mixed --mixed-get-ratio 0.9 --target all --concurrency 128 --json

Prints e.g.
  put: 123456 ops in 10.0 s = 12345.6 ops/s | latency ms p50 4.12 p90 6.01 p99 9.87 max 31.2 | errors 0
Latencies are of successful requests; failures are counted by error code.
Exit codes: 0 ok, 1 every request failed, 2 usage error, 3 no leader or cannot connect.`)
    .action(async (options: BenchCommandOptions) => setExitCode(await benchCommand(options)));
}

async function benchCommand(options: BenchCommandOptions): Promise<number> {
  const info = (line: string): void => {
    if (!options.json) process.stderr.write(`${line}\n`);
  };
  info(`synod bench: ${options.op}, concurrency ${options.concurrency}, ${options.valueSize}-byte values, ${options.duration / 1000} s, target ${options.target}`);
  const bar = options.json || process.stderr.isTTY !== true ? null : progressBar(options.duration);
  const tls = commandClientTls();
  const authorization = commandAuthorization()["authorization"];
  const benchOptions: BenchOptions = {
    endpoints: options.endpoints,
    ...(tls === undefined ? {} : { tls }),
    ...(authorization === undefined ? {} : { authorization }),
    durationMs: options.duration,
    concurrency: options.concurrency,
    valueBytes: options.valueSize,
    op: options.op,
    ...(options.keys === undefined ? {} : { keys: options.keys }),
    ...(options.spreadKeys ? { spreadKeys: true } : {}),
    mixedGetRatio: options.mixedGetRatio,
    consistency: options.consistency,
    target: options.target,
    maxOps: options.maxOps,
    log: info,
    ...(bar === null ? {} : { onProgress: bar.update }),
  };
  let result: BenchResult;
  try {
    result = await runKvBench(benchOptions);
  } catch (error) {
    const failure = error instanceof BenchSetupError ? { line: error.message, exitCode: EXIT.unavailable } : describeFailure(error, options.endpoints);
    if (failure === null) throw error;
    process.stderr.write(`synod: ${failure.line}\n`);
    return failure.exitCode;
  } finally {
    bar?.stop();
  }
  process.stdout.write(`${options.json ? JSON.stringify(result) : formatBenchResult(result)}\n`);
  const errors = Object.values(result.errors).reduce((sum, n) => sum + n, 0);
  if (result.ops === 0 && errors > 0) {
    process.stderr.write("synod: every request failed\n");
    return EXIT.notFoundOrCompareFailed;
  }
  return EXIT.ok;
}

/** Started by the first progress report, so the setup lines printed before it stay readable. */
function progressBar(durationMs: number): { update(progress: { elapsedMs: number; ops: number; errors: number }): void; stop(): void } {
  const bar = new cliProgress.SingleBar(
    { format: "  {bar} {elapsed}/{total_s} s | {ops} ops | {rate} ops/s | {errors} errors", hideCursor: true, clearOnComplete: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update: ({ elapsedMs, ops, errors }) => {
      if (!started) bar.start(durationMs, 0, { elapsed: "0.0", total_s: (durationMs / 1000).toFixed(1), ops: 0, rate: "0", errors: 0 });
      started = true;
      const rate = elapsedMs > 0 ? ((ops * 1000) / elapsedMs).toFixed(0) : "0";
      bar.update(Math.min(elapsedMs, durationMs), { elapsed: (elapsedMs / 1000).toFixed(1), ops, rate, errors });
    },
    stop: () => {
      if (started) bar.stop();
      started = false;
    },
  };
}

function duration(text: string): number {
  try {
    return parseDurationMs(text);
  } catch (error) {
    if (error instanceof InvalidInputError) throw new InvalidArgumentError(error.message);
    throw error;
  }
}

function ratio(text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !(value >= 0 && value <= 1)) throw new InvalidArgumentError("--mixed-get-ratio must be a number from 0 to 1");
  return value;
}

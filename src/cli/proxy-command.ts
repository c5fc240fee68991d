import { type Command, InvalidArgumentError, Option } from "commander";
import { STRATEGIES, type Strategy } from "../core/balance/index.js";
import { parseHostPort } from "../runtime/server/config.js";
import { createProxyRouter, ProxyServer } from "../runtime/proxy/proxy.js";
import { commandClientTls, endpointsOption, integerIn } from "./client-options.js";
import { createLogger, logFormatOption, stdoutLogFormat, type LogFormat } from "./logging.js";

interface ProxyFlags {
  listen: string;
  endpoints: string[];
  strategy: Strategy;
  weights?: number[] | Map<string, number>;
  healthCheckIntervalMs: number;
  ejectionMs: number;
  slowStartMs: number;
  logLevel: string;
  logFormat?: LogFormat;
}

/**
 * `--weights 3,1,1` (in the order of --endpoints) or `--weights http://127.0.0.1:7001=3,...`
 * (by URL; unnamed endpoints weigh 1).
 */
export function parseWeights(text: string): number[] | Map<string, number> {
  const parts = text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  const weight = (value: string): number => {
    const number = Number(value);
    if (!Number.isSafeInteger(number) || number < 1 || number > 1_000_000) throw new InvalidArgumentError(`a weight must be an integer from 1 to 1000000, got ${JSON.stringify(value)}`);
    return number;
  };
  if (parts.every((part) => !part.includes("="))) return parts.map(weight);
  const byUrl = new Map<string, number>();
  for (const part of parts) {
    const equals = part.lastIndexOf("=");
    if (equals <= 0) throw new InvalidArgumentError(`--weights takes 3,1,1 or URL=3,URL=1; got ${JSON.stringify(part)}`);
    byUrl.set(part.slice(0, equals).replace(/\/$/, ""), weight(part.slice(equals + 1)));
  }
  return byUrl;
}

export function registerProxyCommand(program: Command, setExitCode: (code: number) => void): void {
  program
    .command("proxy")
    .description("serve the v1 HTTP API in front of a cluster: load balancing, health checks and failover for any HTTP client")
    .option("--listen <host:port>", "where to serve", "127.0.0.1:7000")
    .addOption(endpointsOption())
    .addOption(new Option("--strategy <name>", "how reads are spread (writes and linearizable reads go to the leader)").choices([...STRATEGIES]).default("weighted"))
    .option("--weights <list>", "relative shares: 3,1,1 in the order of --endpoints, or URL=3,URL=1", parseWeights)
    .option("--health-check-interval-ms <ms>", "how often each node's /v1/status is polled (0: never)", integerIn("--health-check-interval-ms", 0, 3_600_000), 1000)
    .option("--ejection-ms <ms>", "how long a node that failed 5 requests in a row is left out (growing with each repeat)", integerIn("--ejection-ms", 1, 3_600_000), 30_000)
    .option("--slow-start-ms <ms>", "how long a node that comes back takes to get its full share (0: at once)", integerIn("--slow-start-ms", 0, 3_600_000), 10_000)
    .option("--log-level <level>", "trace, debug, info, warn, error", "info")
    .addOption(logFormatOption())
    .addHelpText(
      "after",
      `
Example, in front of the cluster of \`npm start\`, node 1 taking three times the others' reads:
  synod proxy --listen 127.0.0.1:7000 --endpoints http://127.0.0.1:7001,http://127.0.0.1:7002,http://127.0.0.1:7003 --weights 3,1,1
  curl -X PUT --data-binary v http://127.0.0.1:7000/v1/kv/k
  curl 'http://127.0.0.1:7000/v1/kv/k?consistency=stale'
  curl http://127.0.0.1:7000/v1/proxy/stats`,
    )
    .action(async (flags: ProxyFlags) => setExitCode(await runProxy(flags)));
}

async function runProxy(flags: ProxyFlags): Promise<number> {
  const log = createLogger({ level: flags.logLevel, format: stdoutLogFormat(flags.logFormat), base: { component: "proxy" } });
  const endpoints = flags.endpoints.map((url) => url.replace(/\/$/, ""));
  const weights = flags.weights;
  if (Array.isArray(weights) && weights.length !== endpoints.length) {
    process.stderr.write(`synod proxy: --weights lists ${weights.length} weights for ${endpoints.length} endpoints\n`);
    return 2;
  }
  if (weights instanceof Map) {
    for (const url of weights.keys()) {
      if (!endpoints.includes(url)) {
        process.stderr.write(`synod proxy: --weights names ${url}, which is not one of --endpoints\n`);
        return 2;
      }
    }
  }
  const weightOf = (url: string, index: number): number => (Array.isArray(weights) ? (weights[index] as number) : (weights?.get(url) ?? 1));
  // https:// nodes: --cacert (and --cert/--key), as every command that talks to a cluster takes.
  const tls = commandClientTls();
  let proxy: ProxyServer;
  try {
    const router = createProxyRouter({
      endpoints: endpoints.map((url, index) => ({ url, weight: weightOf(url, index) })),
      strategy: flags.strategy,
      healthCheckIntervalMs: flags.healthCheckIntervalMs,
      ejectionMsBase: flags.ejectionMs,
      slowStartWindowMs: flags.slowStartMs,
      ...(tls === undefined ? {} : { tls }),
    });
    proxy = await ProxyServer.start({ listen: parseHostPort(flags.listen, "--listen"), endpoints, router, log, ...(tls === undefined ? {} : { tls }) });
  } catch (error) {
    process.stderr.write(`synod proxy: cannot start: ${(error as Error).message}\n`);
    return 1;
  }
  log.info({ url: proxy.url, endpoints, strategy: flags.strategy }, "proxying");
  process.stdout.write(`synod proxy on ${proxy.url} -> ${endpoints.join(", ")} (${flags.strategy})\n`);
  return await new Promise<number>((resolve) => {
    const stop = (): void => {
      proxy.close().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

/**
 * The loggers of the long-running commands (`synod node`, `synod proxy`): JSON lines for
 * machines (a file, a pipe, a log collector), pino-pretty's one line per event for a person
 * at a terminal. `--log-format` forces either; by default stdout being a terminal decides.
 */
import { createRequire } from "node:module";
import { Option } from "commander";
import { pino, type Logger } from "pino";
import type PinoPretty from "pino-pretty";

/**
 * pino-pretty, loaded when a logger is to print for a person: a node under a supervisor or a
 * test logs JSON, and need not spend start-up time loading it (and its colours and dates).
 */
function loadPretty(): typeof PinoPretty {
  return createRequire(import.meta.url)("pino-pretty") as typeof PinoPretty;
}

export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** `--log-format json|pretty`; absent: pretty on a terminal, JSON otherwise. */
export function logFormatOption(): Option {
  return new Option("--log-format <format>", "json lines, or pretty lines for a person (default: pretty when stdout is a terminal, else json)").choices([...LOG_FORMATS]);
}

/** The format to use: the one asked for, else pretty exactly when `stdoutIsTerminal`. */
export function resolveLogFormat(asked: LogFormat | undefined, stdoutIsTerminal: boolean): LogFormat {
  return asked ?? (stdoutIsTerminal ? "pretty" : "json");
}

/** The format to use for stdout as it is: `--log-format`, else pretty on a terminal. */
export function stdoutLogFormat(asked: LogFormat | undefined): LogFormat {
  return resolveLogFormat(asked, process.stdout.isTTY === true);
}

export interface LoggerOptions {
  readonly level: string;
  readonly format: LogFormat;
  /** Fields on every line (`{ node: 1 }`). */
  readonly base: Record<string, unknown>;
}

/** A logger to stdout. Writes are synchronous, so a line logged just before `process.exit` is not lost. */
export function createLogger(options: LoggerOptions): Logger {
  if (options.format === "json") return pino({ level: options.level, base: options.base });
  const stream = loadPretty()({
    destination: 1,
    sync: true,
    colorize: process.stdout.isTTY === true,
    // One line per event, with the time of day: what a person watching reads; the date,
    // pid and host add nothing there.
    singleLine: true,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname",
  });
  return pino({ level: options.level, base: options.base }, stream);
}

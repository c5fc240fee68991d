/**
 * What every fuzz target shares: outcome counts, the rule that tells a typed error from an
 * untyped one, byte mutations of valid encodings, and the run of a fast-check property
 * that turns its verdict into a report (with the seed, the shrunk input and the command that
 * replays it).
 *
 * A target's property classifies each input's outcome into `Outcomes` and throws a
 * `FuzzFinding` for anything that is not allowed: an untyped exception (TypeError,
 * RangeError, AssertionError from inside a decoder), a hang, or a corrupt input accepted.
 */
import fc from "fast-check";
import { SynodError } from "../core/common/errors.js";

/** Counts of outcomes by kind: "accepted", "refused: InvalidInputError", ... */
export class Outcomes {
  readonly counts = new Map<string, number>();
  /** Inputs generated (shrinking included); one input may count several outcomes (peer streams hold several frames). */
  inputs = 0;

  count(kind: string): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  }
}

/** A broken rule: what the property throws so that fast-check shrinks the input. */
export class FuzzFinding extends Error {
  override readonly name = "FuzzFinding";
}

export interface FuzzFailure {
  readonly seed: number;
  /** fast-check's path to the shrunk counterexample: `--path` replays exactly it. */
  readonly path: string;
  readonly counterexample: string;
  readonly error: string;
  readonly reproduce: string;
}

export interface FuzzReport {
  readonly target: string;
  readonly inputs: number;
  readonly outcomes: ReadonlyMap<string, number>;
  readonly ms: number;
  readonly failure: FuzzFailure | null;
}

export interface FuzzRun {
  readonly runs: number;
  readonly seed: number;
  /** Replays one counterexample (a fast-check path), as a failure report gives it. */
  readonly path?: string;
}

// A class a caller may name as a typed outcome: any constructor of errors.
type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * The class name of `error` when it is one of the typed errors (SynodError and its
 * subclasses always, plus `allowed`); otherwise throws a FuzzFinding naming what escaped.
 */
export function typedName(error: unknown, allowed: readonly ErrorClass[] = []): string {
  if (error instanceof SynodError || allowed.some((type) => error instanceof type)) return (error as Error).name;
  const description = error instanceof Error ? `${error.name}: ${error.message}\n${(error.stack ?? "").split("\n").slice(1, 6).join("\n")}` : String(error);
  throw new FuzzFinding(`an untyped exception escaped: ${description}`);
}

/** Runs `attempt`; counts "accepted" or the typed error's class, and returns the value or undefined. */
export function classify<T>(outcomes: Outcomes, label: string, attempt: () => T, allowed: readonly ErrorClass[] = []): T | undefined {
  try {
    const value = attempt();
    outcomes.count(`${label} accepted`);
    return value;
  } catch (error) {
    outcomes.count(`${label} refused: ${typedName(error, allowed)}`);
    return undefined;
  }
}

/** One change to an encoding: the kinds that break decoders in practice. */
export type Mutation =
  | { readonly kind: "flip"; readonly at: number; readonly bit: number }
  | { readonly kind: "truncate"; readonly at: number }
  | { readonly kind: "insert"; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: "delete"; readonly at: number; readonly count: number }
  | { readonly kind: "u32"; readonly at: number; readonly value: number; readonly littleEndian: boolean }
  | { readonly kind: "f64"; readonly at: number; readonly value: number; readonly littleEndian: boolean }
  | { readonly kind: "duplicate"; readonly at: number; readonly count: number };

/** Numbers that sit on the edges decoders check: lengths, counts, signs, NaN, 2^53. */
const INTERESTING_U32 = [0, 1, 2, 3, 4, 7, 8, 127, 128, 255, 256, 1024, 4096, 65535, 65536, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const INTERESTING_F64 = [0, -0, 1, -1, 0.5, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), Number.MAX_VALUE, Infinity, -Infinity, NaN];

const position = fc.nat({ max: 1 << 20 });

export const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("flip" as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: position }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("insert" as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), at: position, count: fc.integer({ min: 1, max: 9 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("u32" as const), at: position, value: fc.constantFrom(...INTERESTING_U32), littleEndian: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("f64" as const), at: position, value: fc.constantFrom(...INTERESTING_F64), littleEndian: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("duplicate" as const), at: position, count: fc.integer({ min: 1, max: 16 }) }) },
);

/** `bytes` with one mutation applied (a new array; positions wrap around the length). */
export function mutate(bytes: Uint8Array, mutation: Mutation): Uint8Array {
  const length = bytes.length;
  const at = length === 0 ? 0 : mutation.at % (length + 1);
  switch (mutation.kind) {
    case "flip": {
      if (length === 0) return bytes;
      const out = bytes.slice();
      out[mutation.at % length] = (out[mutation.at % length] as number) ^ (1 << mutation.bit);
      return out;
    }
    case "truncate":
      return bytes.slice(0, at);
    case "insert":
      return concat(bytes.subarray(0, at), mutation.bytes, bytes.subarray(at));
    case "delete":
      return concat(bytes.subarray(0, at), bytes.subarray(at + mutation.count));
    case "duplicate":
      return concat(bytes.subarray(0, at + mutation.count), bytes.subarray(at));
    case "u32":
    case "f64": {
      const width = mutation.kind === "u32" ? 4 : 8;
      if (length < width) return bytes;
      const out = bytes.slice();
      const view = new DataView(out.buffer);
      const start = mutation.at % (length - width + 1);
      if (mutation.kind === "u32") view.setUint32(start, mutation.value, mutation.littleEndian);
      else view.setFloat64(start, mutation.value, mutation.littleEndian);
      return out;
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Random bytes, and valid encodings from `valid` with one to four mutations: the second
 * kind gets deep into a decoder, past the checks that random bytes fail at once.
 */
export function bytesToDecode(valid: fc.Arbitrary<Uint8Array>, maxRandomBytes = 256): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: maxRandomBytes }) },
    { weight: 1, arbitrary: valid },
    { weight: 6, arbitrary: fc.tuple(valid, fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 })).map(([bytes, mutations]) => mutations.reduce(mutate, bytes)) },
  );
}

/** The command line that replays a failure. */
function reproduceCommand(target: string, runs: number, seed: number, path: string): string {
  return `npm run fuzz -- --target ${target} --runs ${runs} --seed ${seed} --path ${path}`;
}

function report(target: string, outcomes: Outcomes, startMs: number, options: FuzzRun, details: fc.RunDetails<unknown>): FuzzReport {
  const ms = Date.now() - startMs;
  if (!details.failed) return { target, inputs: outcomes.inputs, outcomes: outcomes.counts, ms, failure: null };
  const path = details.counterexamplePath ?? "";
  const counterexample = details.counterexample === null ? "(none)" : fc.stringify(details.counterexample).slice(0, 2000);
  const cause = details.errorInstance;
  const error = cause instanceof Error ? cause.message : String(cause);
  return { target, inputs: outcomes.inputs, outcomes: outcomes.counts, ms, failure: { seed: details.seed, path, counterexample, error, reproduce: reproduceCommand(target, options.runs, details.seed, path) } };
}

function parameters(options: FuzzRun): fc.Parameters<unknown> {
  return { numRuns: options.runs, seed: options.seed, ...(options.path === undefined ? {} : { path: options.path }), endOnFailure: false };
}

/** Runs a synchronous property over `options.runs` inputs; a report, never a throw. */
export function runFuzz<T>(target: string, arbitrary: fc.Arbitrary<T>, check: (value: T, outcomes: Outcomes) => void, options: FuzzRun): FuzzReport {
  const outcomes = new Outcomes();
  const startMs = Date.now();
  const details = fc.check(fc.property(arbitrary, (value) => {
      outcomes.inputs++;
      check(value, outcomes);
    }), parameters(options) as fc.Parameters<[T]>);
  return report(target, outcomes, startMs, options, details as fc.RunDetails<unknown>);
}

/** As `runFuzz`, for a property that does I/O. */
export async function runFuzzAsync<T>(target: string, arbitrary: fc.Arbitrary<T>, check: (value: T, outcomes: Outcomes) => Promise<void>, options: FuzzRun): Promise<FuzzReport> {
  const outcomes = new Outcomes();
  const startMs = Date.now();
  const details = await fc.check(fc.asyncProperty(arbitrary, async (value) => {
      outcomes.inputs++;
      await check(value, outcomes);
    }), parameters(options) as fc.Parameters<[T]>);
  return report(target, outcomes, startMs, options, details as fc.RunDetails<unknown>);
}

/** The report as people read it: outcomes by count, then the failure if there is one. */
export function formatReport(report: FuzzReport): string {
  const seconds = (report.ms / 1000).toFixed(1);
  const lines = [`${report.target}: ${report.inputs.toLocaleString("en-US")} inputs in ${seconds} s, ${report.failure === null ? "no failure" : "FAILED"}`];
  for (const [kind, count] of [...report.outcomes].sort((a, b) => b[1] - a[1])) lines.push(`  ${count.toLocaleString("en-US").padStart(11)}  ${kind}`);
  const failure = report.failure;
  if (failure !== null) {
    lines.push(`  seed ${failure.seed}, path ${failure.path}`, `  error: ${failure.error}`, `  shrunk input: ${failure.counterexample}`, `  reproduce: ${failure.reproduce}`);
  }
  return lines.join("\n");
}

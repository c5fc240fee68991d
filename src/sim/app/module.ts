/**
 * A user's state machine in the simulator (`synod sim --state-machine MODULE`): the shape
 * of the module, and the checks that it has that shape. docs/embedding.md documents it for
 * users; this file is the reference.
 *
 * The simulator runs the module's state machine on every simulated node (inside the same
 * replica as production), drives it with the module's workload from simulated clients,
 * and checks the history the clients saw against the module's sequential model.
 */
import type { Prng } from "../../core/common/prng.js";
import type { ReplicatedStateMachine } from "../../core/replica/embedded.js";

/** One operation a simulated client issues. */
export type SimOperation<I> =
  /** A command: proposed through the node the client talks to; its output is `output(result, input)`. */
  | { readonly kind: "write"; readonly input: I; readonly command: Uint8Array }
  /** A read: after a linearizable barrier on the node, `read(stateMachine, input)` is its output. */
  | { readonly kind: "read"; readonly input: I };

/** How an operation ended, as its client saw it. */
export type SimOutcome<O> =
  | { readonly status: "ok"; readonly output: O }
  /** Certainly not applied (refused). */
  | { readonly status: "fail" }
  /** Timed out: a write may or may not apply. */
  | { readonly status: "unknown" };

/** One simulated client's workload: its own state (held locks, tokens, ...) lives here. */
export interface SimClientWorkload<I, O> {
  /** The next operation. Draw every choice from the `random` the client was created with. */
  next(): SimOperation<I>;
  /** How the previous operation ended (optional): a client can remember a token it was granted. */
  observe?(input: I, outcome: SimOutcome<O>): void;
}

/**
 * The sequential specification, as in Porcupine: what each operation does to the state
 * and what it returns, one at a time. The checker searches for an order of the history's
 * operations — each placed between its call and its return — that this model explains.
 * Pure functions of their arguments; states are never modified in place.
 */
export interface SequentialModel<S, I, O> {
  init(): S;
  /** Applies `input` to `state`: the next state and the operation's output. Must not modify `state`. */
  step(state: S, input: I): { readonly state: S; readonly output: O };
  /** Whether the model's output and the one observed are the same. Default: equal canonical JSON. */
  equal?(expected: O, observed: O): boolean;
  /** A string that identifies a state, for the search's memo. Default: canonical JSON. */
  hash?(state: S): string;
  /**
   * Splits the history into independent sub-histories, checked apart (much faster): the
   * operations with the same key touch one part of the state and no other. Only for a
   * model that is a product of independent models (a map of locks, of registers).
   */
  partition?(input: I): string | number;
  /** A short text for an operation in a failure report. Default: JSON. */
  describe?(input: I, output: O | undefined): string;
}

/** What `synod sim --state-machine MODULE` imports: the module's default export (or its `simulation` export). */
export interface StateMachineSimModule<R = unknown, I = unknown, O = unknown, S = unknown, M extends ReplicatedStateMachine<R> = ReplicatedStateMachine<R>> {
  /** A name for reports (default: the module's file name). */
  readonly name?: string;
  /** A fresh, empty state machine: one per simulated node, and again at every restart. */
  createStateMachine(): M;
  /** The workload of client `clientId` (1, 2, ...), drawing from `random`, a seeded generator the simulator forks per client. */
  client(random: Prng, clientId: number): SimClientWorkload<I, O>;
  /** A read's output, from the node's state machine once the read barrier passed. Must not modify it. */
  read?(stateMachine: M, input: I): O;
  /** A write's output, from the state machine's result for its command. Default: the result itself. */
  output?(result: R, input: I): O;
  readonly model: SequentialModel<S, I, O>;
}

/** Typed identity for writing a module in TypeScript: `export default defineSimModule({ ... })`. */
export function defineSimModule<R, I, O, S, M extends ReplicatedStateMachine<R>>(module: StateMachineSimModule<R, I, O, S, M>): StateMachineSimModule<R, I, O, S, M> {
  return module;
}

/** A module as the simulator holds it, erased to `unknown`, with where it came from. */
export interface SimApplication {
  readonly module: StateMachineSimModule;
  /** What reproduces the run: the path given to --state-machine. */
  readonly path: string;
  readonly name: string;
}

/** Checks what was imported against the module's shape; an Error naming what is missing. */
export function checkSimModule(value: unknown, path: string): StateMachineSimModule {
  const candidate = (value as { simulation?: unknown; default?: unknown } | null) ?? {};
  const module = (candidate.default ?? candidate.simulation ?? value) as Record<string, unknown> | null;
  const fail = (what: string): never => {
    throw new Error(`${path}: ${what} (docs/embedding.md, "Testing in the simulator", describes the module)`);
  };
  if (typeof module !== "object" || module === null) return fail("the module must export default { createStateMachine, client, read, model }");
  if (typeof module["createStateMachine"] !== "function") fail("createStateMachine() is missing: it returns a fresh state machine");
  if (typeof module["client"] !== "function") fail("client(random, clientId) is missing: it returns a client's workload, { next() }");
  if (module["read"] !== undefined && typeof module["read"] !== "function") fail("read(stateMachine, input) must be a function");
  if (module["output"] !== undefined && typeof module["output"] !== "function") fail("output(result, input) must be a function");
  const model = module["model"] as Record<string, unknown> | undefined;
  if (typeof model !== "object" || model === null) return fail("model is missing: { init(), step(state, input) }");
  if (typeof model["init"] !== "function" || typeof model["step"] !== "function") fail("model needs init() and step(state, input)");
  for (const optional of ["equal", "hash", "partition", "describe"]) {
    if (model[optional] !== undefined && typeof model[optional] !== "function") fail(`model.${optional} must be a function`);
  }
  return module as unknown as StateMachineSimModule;
}

/**
 * A canonical text for plain data: object keys sorted, Maps and Sets as sorted entries,
 * bytes as hex, so equal values give equal text. The default model hash and equality.
 */
export function canonical(value: unknown): string {
  switch (typeof value) {
    case "undefined":
      return "u";
    case "number":
      return Number.isNaN(value) ? "NaN" : Object.is(value, -0) ? "0" : String(value);
    case "bigint":
      return `${value}n`;
    case "boolean":
    case "string":
      return JSON.stringify(value);
    case "object": {
      if (value === null) return "null";
      if (value instanceof Uint8Array) return `x${[...value].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
      if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
      if (value instanceof Map) return `M{${[...value].map(([k, v]) => `${canonical(k)}:${canonical(v)}`).sort().join(",")}}`;
      if (value instanceof Set) return `S{${[...value].map(canonical).sort().join(",")}}`;
      const record = value as Record<string, unknown>;
      return `{${Object.keys(record)
        .sort()
        .filter((key) => record[key] !== undefined)
        .map((key) => `${JSON.stringify(key)}:${canonical(record[key])}`)
        .join(",")}}`;
    }
    default:
      throw new Error(`a ${typeof value} has no canonical form: model states and outputs must be plain data (or give the model hash and equal)`);
  }
}

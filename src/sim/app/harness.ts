/**
 * A user's state machine in a simulated run (`synod sim --state-machine MODULE`): what the
 * nodes and the clients do instead of the KV store's, and the checks of what they saw.
 *
 * Nodes run the module's state machine inside the production replica (EmbeddedReplica, as
 * `ReplicatedNode` does): a client's write is proposed by the node it reached, and answered
 * with `output(result)` once applied there; a read waits for a linearizable barrier (the
 * engine's default: a lease read where the seed's tuning allows) and is answered with
 * `read(stateMachine)` on that node.
 *
 * Clients run the module's workload, one operation at a time, sticky to the leader or
 * roaming. A write that timed out is never sent again (there are no client sessions here:
 * a second copy would be another command, which could apply twice), so it ends "unknown";
 * a refused operation certainly did not apply, and is sent to another node while the
 * seed's retries last.
 *
 * Checks, besides the engine's: linearizability of the history against the module's model,
 * with every timed-out write resolved by what the simulator saw (applied: when and with
 * what result; never applied: failed); no acknowledged write lost; each command applied at
 * one index only; every node computing the same result for the same entry (determinism);
 * liveness after the heal.
 */
import { NotLeaderError } from "../../core/common/errors.js";
import type { Prng } from "../../core/common/prng.js";
import type { LogEntry, NodeId } from "../../core/engine/contract.js";
import type { EmbeddedApplied, EmbeddedReplica, ReplicatedStateMachine } from "../../core/replica/embedded.js";
import { RequestTimeoutError, WriteOutcomeUnknownError } from "../../core/replica/errors.js";
import { checkModelLinearizability, describeModelOperation, type ModelOperation } from "../check/model-linearizability.js";
import { InvariantViolation } from "../check/violation.js";
import { formatTime } from "../history.js";
import type { SimNodeApplication } from "../node.js";
import type { SimParams } from "../params.js";
import { canonical, type SimApplication, type SimClientWorkload, type SimOperation, type SimOutcome, type StateMachineSimModule } from "./module.js";

/** A client's request to a node. `sequence` is unique per client. */
export interface AppRequest {
  readonly type: "app-request";
  readonly clientId: number;
  readonly sequence: number;
  readonly kind: "write" | "read";
  readonly input: unknown;
  readonly command?: Uint8Array;
}

/** A node's answer; "refused" means the request certainly did not and will not take effect. */
export type AppResponse =
  | { readonly type: "app-response"; readonly sequence: number; readonly outcome: "ok"; readonly output: unknown }
  | { readonly type: "app-response"; readonly sequence: number; readonly outcome: "refused"; readonly reason: string; readonly leaderHint: NodeId | null };

/** What the harness needs from the simulation around it. Times are virtual microseconds. */
export interface AppWorld {
  now(): number;
  after(delayMicros: number, action: () => void): void;
  /** Sends a client's request to node `to` over the client link (delays, losses). */
  sendToNode(clientId: number, to: NodeId, request: AppRequest): void;
  /** Sends a node's answer to a client over the client link. */
  sendToClient(from: NodeId, clientId: number, response: AppResponse): void;
  note(actor: string, text: () => string): void;
}

/**
 * Scenarios that make sense for the KV store only, with why; a run of a user's state
 * machine never picks them, and asking for one by name is refused. None today: the
 * scenarios' nemeses and checks see engines, nodes and the network, never the state.
 */
export const KV_ONLY_SCENARIOS: ReadonlyMap<string, string> = new Map();

/** Why a scenario cannot run a user's state machine, or null when it can. */
export function appScenarioConflict(name: string): string | null {
  const why = KV_ONLY_SCENARIOS.get(name);
  return why === undefined ? null : `scenario ${name} checks the KV store only (${why}); it does not run a user's state machine`;
}

/** A search budget per partition: a few seconds at most. */
const STEP_BUDGET = 5_000_000;
/** After the heal, this long before operations count toward liveness. */
const LIVENESS_GRACE_MICROS = 2_000_000;

interface InFlight {
  readonly request: AppRequest;
  readonly call: number;
  attempts: number;
  target: NodeId;
}

export class AppHarness<M> implements SimNodeApplication<M> {
  readonly history: ModelOperation<unknown, unknown>[] = [];
  private readonly module: StateMachineSimModule;
  /** Request key (client:sequence) of each history entry, by position. */
  private readonly historyKeys: string[] = [];
  /** The request each node's proposal answers: "node:sequence" -> request key. */
  private readonly proposals = new Map<string, string>();
  /** Every request that proposed a command: its input, for computing an output from a result. */
  private readonly inputs = new Map<string, unknown>();
  /** The first application of each request's command, anywhere. */
  private readonly firstApplied = new Map<string, { readonly atMicros: number; readonly result: unknown }>();
  /** The index each request's command took effect at (exactly once). */
  private readonly appliedIndexOf = new Map<string, number>();
  /** By log index: what the first node to apply it computed, canonically, and which node that was. */
  private readonly resultAt = new Map<number, { readonly text: string; readonly node: NodeId }>();
  private readonly clients: AppClient[] = [];
  private readsIssued = 0;

  constructor(
    application: SimApplication,
    private readonly world: AppWorld,
    /** Whether to compare the results every node computes for an entry (off only to show the other checkers at work). */
    private readonly determinism = true,
  ) {
    this.module = application.module;
  }

  createClients(params: SimParams, nodeIds: readonly NodeId[], prng: Prng, firstClientId: number): void {
    for (let i = 0; i < params.clients; i++) {
      const id = firstClientId + i;
      // The module numbers its clients from 1; the simulation's ids are apart from node ids.
      const workload = userCall("client", () => this.module.client(prng.fork(), i + 1));
      this.clients.push(new AppClient(id, nodeIds, params, prng.fork(), this, workload, i < params.roamingClients));
    }
  }

  startClients(): void {
    for (const client of this.clients) client.start();
  }

  stopClients(): void {
    for (const client of this.clients) client.stop();
  }

  deliverToClient(clientId: number, from: NodeId, response: AppResponse): void {
    this.clients.find((client) => client.id === clientId)?.onResponse(from, response);
  }

  // ---- the nodes' side (SimNodeApplication) ----

  createStateMachine(): ReplicatedStateMachine<unknown> {
    return guardedStateMachine(userCall("createStateMachine", () => this.module.createStateMachine()));
  }

  requestOf(proposer: NodeId, sequence: number): string | null {
    return this.proposals.get(`${proposer}:${sequence}`) ?? null;
  }

  handle(node: NodeId, replica: EmbeddedReplica<M, unknown, unknown>, raw: unknown): void {
    const request = raw as AppRequest;
    const key = requestKey(request.clientId, request.sequence);
    const answer = (output: unknown): void => this.world.sendToClient(node, request.clientId, { type: "app-response", sequence: request.sequence, outcome: "ok", output });
    // A write that timed out or was cut short may still apply: its client hears nothing.
    const refuse = (error: Error): void => {
      if (error instanceof RequestTimeoutError || error instanceof WriteOutcomeUnknownError) return;
      const leaderHint = error instanceof NotLeaderError ? error.leaderHint : null;
      this.world.sendToClient(node, request.clientId, { type: "app-response", sequence: request.sequence, outcome: "refused", reason: error.message, leaderHint });
    };
    if (request.kind === "read") {
      // The engine's configured default: a lease read where the seed's tuning allows leases.
      replica.read({}, { resolve: () => answer(this.readOutput(replica.stateMachine.user, request.input)), reject: refuse });
      return;
    }
    this.inputs.set(key, request.input);
    const sequence = replica.propose(request.command ?? new Uint8Array(0), { resolve: (result) => answer(this.writeOutput(result, request.input)), reject: refuse });
    if (sequence !== null) this.proposals.set(`${node}:${sequence}`, key);
  }

  applied(node: NodeId, entry: LogEntry, applied: EmbeddedApplied<unknown>, request: string | null): void {
    if (request !== null) {
      // Exactly once: a request takes effect at one log index.
      const index = this.appliedIndexOf.get(request);
      if (index !== undefined && index !== entry.index) throw new InvariantViolation("exactly-once", `request ${request} took effect twice: at index ${index} and again at ${entry.index} (on node ${node})`);
      this.appliedIndexOf.set(request, entry.index);
      if (!this.firstApplied.has(request)) this.firstApplied.set(request, { atMicros: this.world.now(), result: applied.result });
    }
    if (this.determinism) this.checkDeterminism(node, entry.index, applied);
  }

  /** Every node that applies entry `index` must compute the same outcome and result for it. */
  private checkDeterminism(node: NodeId, index: number, applied: EmbeddedApplied<unknown>): void {
    let text: string;
    try {
      text = `${applied.outcome} ${canonical(applied.result)}`;
    } catch {
      return; // a result with no canonical form (functions): not compared
    }
    const first = this.resultAt.get(index);
    if (first === undefined) {
      this.resultAt.set(index, { text, node });
      return;
    }
    if (first.text === text) return;
    throw new InvariantViolation(
      "determinism",
      `entry ${index}: node ${node} computed ${text}, but node ${first.node} computed ${first.text}. ` +
        "Every member applies the same commands in the same order, so apply must compute the same result from the same state: " +
        "look for a clock, randomness or I/O in apply, or a snapshot/restore that loses part of the state",
    );
  }

  private readOutput(stateMachine: ReplicatedStateMachine<unknown>, input: unknown): unknown {
    const read = this.module.read;
    if (read === undefined) throw new InvariantViolation("module", "the workload issued a read, but the module has no read(stateMachine, input)");
    return userCall("read", () => read(unguarded(stateMachine), input));
  }

  private writeOutput(result: unknown, input: unknown): unknown {
    const output = this.module.output;
    return output === undefined ? result : userCall("output", () => output(result, input));
  }

  // ---- the clients' side ----

  send(client: AppClient, flight: InFlight): void {
    if (flight.request.kind === "read") this.readsIssued += flight.attempts === 1 ? 1 : 0;
    this.world.note(`client ${client.id}`, () => `-> ${flight.target}: ${flight.request.kind} ${describeInput(this.module, flight.request.input)}`);
    this.world.sendToNode(client.id, flight.target, flight.request);
  }

  record(operation: ModelOperation<unknown, unknown>, sequence: number): void {
    this.history.push(operation);
    this.historyKeys.push(requestKey(operation.client, sequence));
    this.world.note(`client ${operation.client}`, () => describeModelOperation(operation, this.module.model));
  }

  now(): number {
    return this.world.now();
  }

  after(delayMicros: number, action: () => void): void {
    this.world.after(delayMicros, action);
  }

  // ---- checks ----

  /** Every acknowledged write is applied on every node given (the final members, caught up). */
  checkNoLostWrites(appliedByNode: ReadonlyMap<NodeId, ReadonlySet<string>>): void {
    const acked = this.history.map((op, i) => ({ op, key: this.historyKeys[i] as string })).filter(({ op }) => op.status === "ok" && op.kind === "write");
    for (const [node, applied] of appliedByNode) {
      const missing = acked.filter(({ key }) => !applied.has(key));
      if (missing.length === 0) continue;
      const first = missing[0] as (typeof missing)[number];
      throw new InvariantViolation("lost-write", `${missing.length} acknowledged write(s) missing on node ${node}; the first: ${describeModelOperation(first.op, this.module.model)}`);
    }
  }

  checkLinearizability(): void {
    const result = userCall("model", () => checkModelLinearizability(this.resolvedHistory(), this.module.model, { stepBudget: STEP_BUDGET }));
    if (result.verdict === "violation") throw new InvariantViolation("linearizability", result.explanation);
    if (result.verdict === "inconclusive") throw new InvariantViolation("linearizability", `inconclusive: ${result.explanation}`);
  }

  /** After the heal (and a grace), the cluster completed a write, and a read if the workload reads. */
  checkLiveness(healStartMicros: number): void {
    const after = healStartMicros + LIVENESS_GRACE_MICROS;
    const served = this.history.filter((op) => op.status === "ok" && op.return >= after);
    const reads = served.filter((op) => op.kind === "read").length;
    const writes = served.length - reads;
    if ((reads === 0 && this.readsIssued > 0) || writes === 0) {
      throw new InvariantViolation("liveness", `no liveness: after healing at ${formatTime(healStartMicros)} (plus ${formatTime(LIVENESS_GRACE_MICROS)} grace) the cluster completed ${reads} read(s) and ${writes} write(s)`);
    }
  }

  /**
   * The history with every timed-out write resolved from what the simulator saw: applied
   * somewhere, it took effect by its first application, with the output computed there;
   * never applied, it did not happen. (As resolvedHistory in simulation.ts.)
   */
  resolvedHistory(): ModelOperation<unknown, unknown>[] {
    return this.history.map((op, position) => {
      if (op.status !== "unknown" || op.kind === "read") return op;
      const applied = this.firstApplied.get(this.historyKeys[position] as string);
      if (applied === undefined) return { ...op, status: "fail" as const };
      return { ...op, status: "ok" as const, output: this.writeOutput(applied.result, op.input), return: Math.max(op.call, applied.atMicros) };
    });
  }
}

/** A client running the module's workload: one operation at a time. */
class AppClient {
  private sequence = 0;
  private leaderGuess: NodeId | null = null;
  private inFlight: InFlight | null = null;
  private stopped = false;

  constructor(
    readonly id: number,
    private readonly nodes: readonly NodeId[],
    private readonly params: SimParams,
    private readonly prng: Prng,
    private readonly harness: AppHarness<unknown>,
    private readonly workload: SimClientWorkload<unknown, unknown>,
    private readonly roaming: boolean,
  ) {}

  start(): void {
    this.harness.after(this.prng.exponential(this.params.clientThinkMicrosMean), () => this.issue());
  }

  stop(): void {
    this.stopped = true;
  }

  private issue(): void {
    if (this.stopped || this.inFlight !== null) return;
    const operation = userCall("client(...).next", () => this.workload.next());
    checkOperation(operation);
    const sequence = ++this.sequence;
    const request: AppRequest = {
      type: "app-request",
      clientId: this.id,
      sequence,
      kind: operation.kind,
      input: operation.input,
      ...(operation.kind === "write" ? { command: operation.command } : {}),
    };
    const target = this.roaming ? this.prng.pick(this.nodes) : (this.leaderGuess ?? this.prng.pick(this.nodes));
    this.inFlight = { request, call: this.harness.now(), attempts: 0, target };
    this.send(this.inFlight, target);
  }

  private send(flight: InFlight, target: NodeId): void {
    flight.attempts++;
    flight.target = target;
    const attempt = flight.attempts;
    this.harness.send(this, flight);
    this.harness.after(this.params.clientTimeoutMicros, () => this.timeout(flight.request.sequence, attempt));
  }

  onResponse(from: NodeId, response: AppResponse): void {
    const flight = this.inFlight;
    if (flight === null || flight.request.sequence !== response.sequence) return; // late or duplicate
    if (response.outcome === "refused") {
      this.leaderGuess = response.leaderHint !== null && response.leaderHint !== from ? response.leaderHint : null;
      // Refused means not applied: sending it again (to the leader named, or another node) is safe.
      if (flight.attempts <= this.params.clientRetries) {
        const others = this.nodes.filter((node) => node !== flight.target);
        this.send(flight, this.leaderGuess ?? (others.length > 0 ? this.prng.pick(others) : flight.target));
        return;
      }
      this.complete({ status: "fail" });
      return;
    }
    this.leaderGuess = from;
    this.complete({ status: "ok", output: response.output });
  }

  private timeout(sequence: number, attempt: number): void {
    const flight = this.inFlight;
    if (flight === null || flight.request.sequence !== sequence || flight.attempts !== attempt) return;
    this.leaderGuess = null;
    this.complete({ status: "unknown" });
  }

  private complete(outcome: SimOutcome<unknown>): void {
    const flight = this.inFlight;
    if (flight === null) return;
    this.inFlight = null;
    const { request } = flight;
    this.harness.record(
      { client: this.id, kind: request.kind, input: request.input, output: outcome.status === "ok" ? outcome.output : undefined, call: flight.call, return: this.harness.now(), status: outcome.status },
      request.sequence,
    );
    const observe = this.workload.observe;
    if (observe !== undefined) userCall("client(...).observe", () => observe.call(this.workload, request.input, outcome));
    const think = outcome.status === "ok" ? this.prng.exponential(this.params.clientThinkMicrosMean) : this.prng.int(1000, 20_000);
    this.harness.after(think, () => this.issue());
  }
}

function requestKey(clientId: number, sequence: number): string {
  return `${clientId}:${sequence}`;
}

function describeInput(module: StateMachineSimModule, input: unknown): string {
  try {
    return module.model.describe?.(input, undefined) ?? JSON.stringify(input) ?? String(input);
  } catch {
    return String(input);
  }
}

function checkOperation(operation: SimOperation<unknown>): void {
  const kind = (operation as { kind?: unknown } | null)?.kind;
  if (kind === "read") return;
  if (kind !== "write") throw new InvariantViolation("module", `client(...).next() returned ${JSON.stringify(operation)}: an operation is { kind: "write", input, command } or { kind: "read", input }`);
  if (!(operation.kind === "write" && operation.command instanceof Uint8Array)) throw new InvariantViolation("module", "a write's command must be a Uint8Array (encode it, e.g. with TextEncoder)");
}

/** Runs the module's code; a throw out of it fails the run with the module named, not the simulator. */
function userCall<T>(what: string, action: () => T): T {
  try {
    return action();
  } catch (error) {
    if (error instanceof InvariantViolation) throw error;
    throw new InvariantViolation("module", `the module's ${what} threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  }
}

const GUARDED = Symbol("the user's state machine under the guard");

/** The user's state machine with every throw reported as the module's failure. */
function guardedStateMachine<R>(machine: ReplicatedStateMachine<R>): ReplicatedStateMachine<R> {
  const begin = machine.beginSnapshot;
  const guarded: ReplicatedStateMachine<R> & { [GUARDED]: ReplicatedStateMachine<R> } = {
    [GUARDED]: machine,
    apply: (commands) => userCall("state machine's apply", () => machine.apply(commands)),
    snapshot: () => userCall("state machine's snapshot", () => machine.snapshot()),
    restore: (snapshot) => userCall("state machine's restore", () => machine.restore(snapshot)),
    ...(begin === undefined ? {} : { beginSnapshot: () => userCall("state machine's beginSnapshot", () => begin.call(machine)) }),
  };
  return guarded;
}

/** The user's own object behind the guard, for `read(stateMachine, input)`. */
function unguarded<R>(machine: ReplicatedStateMachine<R>): ReplicatedStateMachine<R> {
  return (machine as { [GUARDED]?: ReplicatedStateMachine<R> })[GUARDED] ?? machine;
}

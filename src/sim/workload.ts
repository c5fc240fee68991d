import type { Prng } from "../core/common/prng.js";
import type { NodeId } from "../core/engine/contract.js";
import type { OpKind, Operation } from "./history.js";
import type { RangeDescriptor } from "../core/multi/ranges.js";
import type { ClientRangeView } from "./range-view.js";
import type { ClientRequest, ClientResponse } from "./messages.js";
import type { SimParams } from "./params.js";

/** What a simulated client needs from the world. */
export interface ClientHost {
  now(): number;
  send(clientId: number, to: NodeId, request: ClientRequest): void;
  after(delayMicros: number, action: () => void): void;
  /** Records a completed operation; `sequence` is the request's, unique per client. */
  record(operation: Operation, sequence: number, answeredBy: NodeId | null): void;
}

/**
 * The keys of a run with several groups, and the group that owns each: a client keeps its
 * idea of who leads per group, since each group has a leader of its own.
 */
export interface KeySpace {
  readonly names: readonly string[];
  groupOf(key: string): number;
}

interface InFlight {
  /** The request; with splits, sent again named for another range after a range mismatch. */
  request: ClientRequest;
  readonly call: number;
  /** Attempts sent so far (1 for the first). */
  attempts: number;
  /** An earlier attempt timed out: it may still take effect, so the outcome cannot be "fail". */
  mayHaveApplied: boolean;
  /** The node the latest attempt went to. */
  target: NodeId;
  /** Attempts sent again to another range after a range mismatch (splits only): no retry of the write's. */
  reroutes: number;
}

/** Range mismatches one operation follows to a refreshed range before it gives up (the SDK's RANGE_REFRESHES_MAX). */
const REROUTES_MAX = 3;

/**
 * A client issuing one operation at a time over a small key space. A sticky client goes to
 * the node it believes leads (learned from answers and refusals), or a random one; a roaming
 * client picks a random node every time, so its requests go through followers, and during
 * a partition it talks to both sides — where stale leaders and stale reads show. An operation with no answer
 * within the timeout is recorded as indeterminate and the client moves on: a real
 * application's view of a timed-out request.
 *
 * With `clientRetries` above 0, a write that timed out or was refused is first sent again,
 * up to that many times, to another node with the same client id and sequence: a client
 * session, which the state machine applies once however many copies reach the log. The
 * operation spans every attempt, and is "fail" only if no attempt can have taken effect.
 */
export class SimClient {
  private sequence = 0;
  /** By group: the node this client believes leads it (one group unless there is a key space). */
  private readonly leaderGuesses = new Map<number, NodeId | null>();
  /** The group of the operation in flight (or the last one). */
  private currentGroup = 0;
  private inFlight: InFlight | null = null;
  private stopped = false;
  /** The last value this client saw for each key, so its cas operations can succeed. */
  private readonly lastSeen = new Map<string, string | null>();

  constructor(
    readonly id: number,
    private nodes: readonly NodeId[],
    private readonly params: SimParams,
    private readonly prng: Prng,
    private readonly host: ClientHost,
    private readonly roaming = false,
    private readonly keySpace: KeySpace | null = null,
    /** With splits (`--splits`): this client's view of the ranges, possibly stale, which it routes by. */
    private readonly ranges: ClientRangeView | null = null,
  ) {}

  /**
   * Takes `node` out of the nodes this client sends to: a node lost for good, which an
   * operator takes out of the clients' configuration (`--replicas`). Its guesses of it go too.
   */
  forgetNode(node: NodeId): void {
    if (this.nodes.length <= 1) return;
    this.nodes = this.nodes.filter((id) => id !== node);
    for (const [group, guess] of this.leaderGuesses) if (guess === node) this.leaderGuesses.set(group, null);
  }

  /** The leader this client believes in for the group of the operation in flight. */
  private get leaderGuess(): NodeId | null {
    return this.leaderGuesses.get(this.currentGroup) ?? null;
  }

  private set leaderGuess(node: NodeId | null) {
    this.leaderGuesses.set(this.currentGroup, node);
  }

  start(): void {
    this.host.after(this.prng.exponential(this.params.clientThinkMicrosMean), () => this.issue());
  }

  stop(): void {
    this.stopped = true;
  }

  get busy(): boolean {
    return this.inFlight !== null;
  }

  private chooseOp(): OpKind {
    const mix = this.params.opMix;
    const r = this.prng.float() * (mix.get + mix.put + mix.delete + mix.cas);
    if (r < mix.get) return "get";
    if (r < mix.get + mix.put) return "put";
    if (r < mix.get + mix.put + mix.delete) return "delete";
    return "cas";
  }

  private issue(): void {
    if (this.stopped || this.inFlight !== null) return;
    const sequence = ++this.sequence;
    const key = this.keySpace === null ? `k${this.prng.int(1, this.params.keys)}` : this.prng.pick(this.keySpace.names);
    this.currentGroup = this.ranges !== null ? this.ranges.route(key) : this.keySpace === null ? 0 : this.keySpace.groupOf(key);
    let op = this.chooseOp();
    const seen = this.lastSeen.get(key);
    if (op === "cas" && (seen === undefined || seen === null)) op = "put";
    const value = `c${this.id}-${sequence}`;
    const request: ClientRequest = {
      type: "client-request",
      clientId: this.id,
      sequence,
      op,
      key,
      ...(op === "put" || op === "cas" ? { value } : {}),
      ...(op === "cas" ? { expected: seen as string } : {}),
      ...(this.ranges === null ? {} : { range: this.currentGroup }),
    };
    const target = this.roaming ? this.prng.pick(this.nodes) : (this.leaderGuess ?? this.prng.pick(this.nodes));
    this.inFlight = { request, call: this.host.now(), attempts: 0, mayHaveApplied: false, target, reroutes: 0 };
    this.send(this.inFlight, target);
  }

  private send(flight: InFlight, target: NodeId): void {
    flight.attempts++;
    flight.target = target;
    const attempt = flight.attempts;
    this.host.send(this.id, target, flight.request);
    this.host.after(this.params.clientTimeoutMicros, () => this.timeout(flight.request.sequence, attempt));
  }

  /** Sends the in-flight write again, to `hint` or another node than the last, if retries are left. */
  private retry(flight: InFlight, hint: NodeId | null): boolean {
    if (flight.request.op === "get" || flight.attempts - flight.reroutes > this.params.clientRetries) return false;
    const others = this.nodes.filter((node) => node !== flight.target);
    this.send(flight, hint ?? (others.length > 0 ? this.prng.pick(others) : flight.target));
    return true;
  }

  private complete(status: Operation["status"], output: string | null | boolean, answeredBy: NodeId | null): void {
    const flight = this.inFlight;
    if (flight === null) return;
    this.inFlight = null;
    const { request } = flight;
    this.host.record({
      client: this.id,
      op: request.op,
      key: request.key,
      ...(request.value === undefined ? {} : { value: request.value }),
      ...(request.expected === undefined ? {} : { expected: request.expected }),
      output: status === "ok" ? output : null,
      call: flight.call,
      return: this.host.now(),
      status,
    }, request.sequence, answeredBy);
    const think = status === "ok" ? this.prng.exponential(this.params.clientThinkMicrosMean) : this.prng.int(1000, 20_000);
    this.host.after(think, () => this.issue());
  }

  onResponse(from: NodeId, response: ClientResponse): void {
    const flight = this.inFlight;
    if (flight === null || flight.request.sequence !== response.sequence) return; // late or duplicate
    if (response.outcome === "refused") {
      if (response.mismatch === true && this.reroute(flight, response.ranges ?? [])) return;
      this.leaderGuess = response.leaderHint !== null && response.leaderHint !== from ? response.leaderHint : null;
      if (this.retry(flight, this.leaderGuess)) return;
      this.complete(flight.mayHaveApplied ? "unknown" : "fail", null, from);
      return;
    }
    this.leaderGuess = from;
    const { request } = flight;
    if (request.op === "get") this.lastSeen.set(request.key, response.output as string | null);
    else if (request.op === "put" || (request.op === "cas" && response.output === true)) this.lastSeen.set(request.key, request.value ?? null);
    else if (request.op === "delete") this.lastSeen.set(request.key, null);
    this.complete("ok", response.output, from);
  }

  /**
   * After a range mismatch (nothing was applied: the range that got it no longer owns the
   * key), refreshes the view from the ranges the refusal lists and sends the operation again, named for the range the refreshed view puts the key
   * in, as the SDK does (client/call-runner.ts sessionWrite). The SDK writes there in a
   * session of that range; a simulated client's session is self-assigned in every range, so
   * it keeps its sequence: no copy of it applied in the range that refused it.
   */
  private reroute(flight: InFlight, ranges: readonly RangeDescriptor[]): boolean {
    if (this.ranges === null) return false;
    this.ranges.learn(ranges);
    if (flight.reroutes >= REROUTES_MAX) return false;
    flight.reroutes++;
    this.currentGroup = this.ranges.route(flight.request.key);
    flight.request = { ...flight.request, range: this.currentGroup };
    this.send(flight, this.leaderGuess ?? this.prng.pick(this.nodes));
    return true;
  }

  private timeout(sequence: number, attempt: number): void {
    const flight = this.inFlight;
    if (flight === null || flight.request.sequence !== sequence || flight.attempts !== attempt) return;
    this.leaderGuess = null;
    flight.mayHaveApplied = flight.request.op !== "get";
    if (this.retry(flight, null)) return;
    this.complete("unknown", null, null);
  }
}

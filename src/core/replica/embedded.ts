/**
 * A user's own state machine, replicated: the pure adapter between the embedding API's
 * `ReplicatedStateMachine` (bytes in, results out, snapshot and restore) and the replica's
 * `StateMachine`. The runtime's `ReplicatedNode` and the simulator host it alike, over the
 * same `Replica`.
 *
 * Envelope. A command travels in the log as
 *
 *   u8 0xE1 | u32 proposer node id | f64 first sequence of the proposing process
 *   | f64 sequence (safe integers) | the user's bytes
 *
 * so the node that proposed it can match the applied entry to the caller waiting for its
 * result (`proposalKey`), and so a command that reached the log twice (a forwarded proposal
 * the network duplicated) is applied once. Entries that are not commands — the engine's
 * no-ops (empty data), configuration entries, anything that does not decode — never reach
 * the user's `apply`; every replica skips them alike, since whether an entry decodes depends
 * on its bytes alone.
 *
 * Exactly once. Each process of a node numbers its commands consecutively from a first
 * sequence above any an earlier process of the node used (the host's job), and says in
 * every envelope where its numbering began. The adapter remembers, per proposer, the
 * highest sequence applied and the lower ones of the same process not yet seen, within a
 * window below it (`SEQUENCE_WINDOW`): a command seen before is a duplicate, one older than
 * the window (or from an earlier process, once a later one's commands applied) is stale;
 * both are skipped. That memory is part of the replicated state: it changes only by
 * applying entries and travels in the snapshot, so every replica decides alike.
 *
 * Snapshot format: u8 0xE5 | u32 proposers | per proposer: u32 id, f64 highest, u32 missing
 * count, u32 distance below highest per missing sequence | the user's snapshot bytes.
 */
import { assert } from "../common/assert.js";
import { ByteReader, ByteWriter } from "../common/bytes.js";
import { InvalidInputError } from "../common/errors.js";
import { limits } from "../common/limits.js";
import type { Engine, LogEntry, NodeId, ReadOptions, Snapshot } from "../engine/contract.js";
import type { ProposalKey, ReplicaObserver, SnapshotBuilder, StateMachine, Waiter } from "./contract.js";
import { createReplica, type ReplicaMutant } from "./mutants.js";
import type { Replica, ReplicaOptions } from "./replica.js";

/** A committed command, as the state machine is given it: its log index and its bytes. */
export interface Command {
  /** The command's log index: unique, increasing, the same on every replica. */
  readonly index: number;
  /** The bytes that were proposed. The state machine must not modify them. */
  readonly data: Uint8Array;
}

/**
 * An incremental capture of the state (for a state too large to serialize in one go): the
 * replica calls `step` a piece at a time between other work. It must capture the state as
 * of the moment `beginSnapshot` was called, although `apply` goes on meanwhile (copy on
 * write, an immutable structure, or a store's read transaction).
 */
export interface StateSnapshotBuilder {
  /** Does up to `recordsMax` more of the work; true once `data` is complete. */
  step(recordsMax: number): boolean;
  /** The snapshot's bytes, once `step` returned true. */
  readonly data: Uint8Array;
  /** Gives up the capture (the leader's snapshot replaced the state, or the node stopped). */
  abort(): void;
}

/**
 * Your state machine, replicated by synod. Every member applies the same commands in the
 * same order, so every member must reach the same state and compute the same results:
 * `apply` is deterministic. In practice that means, inside `apply`:
 *   - no clocks (`Date.now`, timers): a time the state machine needs travels in the command;
 *   - no randomness (`Math.random`, random ids): draw it before proposing, put it in the command;
 *   - no I/O (files, network, a database of its own): the log and the snapshots are the
 *     durable copy, and a side effect would run once per member, and again on every replay;
 *   - no dependence on iteration order that is not defined by the commands (use a Map's
 *     insertion order, sort, or keep arrays; never rely on object key order of numbers
 *     mixed with strings, on `WeakMap`s or on addresses).
 * Results go back to the caller of `propose` on the node that proposed the command and are
 * dropped everywhere else, so they are for that caller only; the state is what every member shares.
 */
export interface ReplicatedStateMachine<R> {
  /**
   * Applies a batch of committed commands, in log order, and returns one result per
   * command, in the same order. The commands are the ones proposed (never the engine's own
   * entries), each applied exactly once per state (a duplicate in the log is skipped). A
   * throw is fatal: the node stops, since its state may be half-changed.
   */
  apply(commands: readonly Command[]): readonly R[];
  /** The whole state as bytes, for `restore` on this or another member. */
  snapshot(): Uint8Array;
  /** Replaces the whole state with one `snapshot` produced (here or on another member). */
  restore(snapshot: Uint8Array): void;
  /** Optional: an incremental capture instead of `snapshot()`, for a large state. */
  beginSnapshot?(): StateSnapshotBuilder;
}

/** What became of one log entry at the adapter. */
export type EmbeddedOutcome =
  /** A command, applied: `result` is the state machine's. */
  | "applied"
  /** A command applied before, here at another index: skipped. */
  | "duplicate"
  /** A command older than its proposer's window: skipped (its proposer stopped waiting long ago). */
  | "stale"
  /** Bytes that are no command envelope: skipped. */
  | "malformed"
  /** The engine's own entry (an empty no-op, a configuration). */
  | "engine";

/** What applying one entry yields: the replica's result type for an embedded state machine. */
export interface EmbeddedApplied<R> {
  readonly index: number;
  readonly outcome: EmbeddedOutcome;
  /** The command's proposer and sequence (null for the engine's entries and malformed ones). */
  readonly proposer: NodeId | null;
  readonly sequence: number | null;
  /** The state machine's result, for "applied" only. */
  readonly result: R | undefined;
}

const ENVELOPE_TAG = 0xe1;
const SNAPSHOT_TAG = 0xe5;
/** Tag, proposer id, first sequence, sequence. */
export const ENVELOPE_HEADER_BYTES = 1 + 4 + 8 + 8;
/** The largest command a user may propose: the log's command limit less the envelope. */
export const COMMAND_BYTES_MAX = limits.commandBytesMax - ENVELOPE_HEADER_BYTES;
/**
 * How far below a proposer's highest applied sequence a command may still arrive and apply
 * (reordered on the way to the leader). More than a node keeps waiting at once in practice;
 * the bound keeps the memory per proposer, and the snapshot, at most 64 KiB.
 */
export const SEQUENCE_WINDOW = 16_384;
/** Proposers remembered, at most: node ids of one cluster over its life. */
const PROPOSERS_MAX = 65_536;

/** A command as it travels in the log. */
export interface Envelope {
  readonly proposer: NodeId;
  /** Where the proposing process's numbering began: its sequences below this are not its own. */
  readonly firstSequence: number;
  readonly sequence: number;
  readonly command: Uint8Array;
}

export function encodeEnvelope({ proposer, firstSequence, sequence, command }: Envelope): Uint8Array {
  assert(Number.isSafeInteger(proposer) && proposer > 0 && proposer <= 0xffff_ffff, `a proposer id must be a u32 above 0, got ${proposer}`);
  assert(Number.isSafeInteger(firstSequence) && firstSequence > 0 && Number.isSafeInteger(sequence) && sequence >= firstSequence, `a sequence must be a safe integer at or above the first, got ${sequence} from ${firstSequence}`);
  const writer = new ByteWriter(ENVELOPE_HEADER_BYTES + command.length);
  writer.u8(ENVELOPE_TAG);
  writer.u32(proposer);
  writer.f64(firstSequence);
  writer.f64(sequence);
  writer.raw(command);
  return writer.finish("a command envelope");
}

/** The envelope in an entry's data, or null when the bytes are not one (every replica decides alike). */
export function decodeEnvelope(data: Uint8Array): Envelope | null {
  if (data.length < ENVELOPE_HEADER_BYTES || data[0] !== ENVELOPE_TAG) return null;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const proposer = view.getUint32(1);
  const firstSequence = view.getFloat64(5);
  const sequence = view.getFloat64(13);
  if (proposer === 0 || !Number.isSafeInteger(firstSequence) || firstSequence <= 0 || !Number.isSafeInteger(sequence) || sequence < firstSequence) return null;
  return { proposer, firstSequence, sequence, command: data.subarray(ENVELOPE_HEADER_BYTES) };
}

/** Per proposer: the highest sequence applied, and the lower ones within the window not seen yet. */
interface ProposerRecord {
  highest: number;
  missing: Set<number>;
}

/**
 * A `ReplicatedStateMachine` as the replica's state machine: it unwraps envelopes, skips
 * what is no command, applies each command once, and tracks the applied index itself (the
 * user's state machine need not know it).
 */
export class EmbeddedStateMachine<R> implements StateMachine<EmbeddedApplied<R>> {
  private applied = 0;
  private readonly proposers = new Map<NodeId, ProposerRecord>();

  constructor(
    readonly user: ReplicatedStateMachine<R>,
    /** This node: its own commands are the ones whose results are waited for here. */
    private readonly self: NodeId,
  ) {}

  get appliedIndex(): number {
    return this.applied;
  }

  /** The highest sequence of `proposer` applied so far (0 for none): where a restarted node's numbering must start above. */
  highestSequence(proposer: NodeId): number {
    return this.proposers.get(proposer)?.highest ?? 0;
  }

  apply(entries: readonly LogEntry[]): readonly EmbeddedApplied<R>[] {
    const outcomes: EmbeddedApplied<R>[] = [];
    const commands: { readonly index: number; readonly data: Uint8Array }[] = [];
    /** Positions in `outcomes` of the commands handed to the user, in order. */
    const positions: number[] = [];
    for (const entry of entries) {
      assert(entry.index === this.applied + 1, `entry ${entry.index} applied after ${this.applied}`);
      this.applied = entry.index;
      if (entry.kind === "config" || entry.data.length === 0) {
        outcomes.push({ index: entry.index, outcome: "engine", proposer: null, sequence: null, result: undefined });
        continue;
      }
      const envelope = decodeEnvelope(entry.data);
      if (envelope === null) {
        outcomes.push({ index: entry.index, outcome: "malformed", proposer: null, sequence: null, result: undefined });
        continue;
      }
      const { proposer, sequence } = envelope;
      const verdict = this.admit(envelope);
      if (verdict !== "applied") {
        outcomes.push({ index: entry.index, outcome: verdict, proposer, sequence, result: undefined });
        continue;
      }
      positions.push(outcomes.length);
      outcomes.push({ index: entry.index, outcome: "applied", proposer, sequence, result: undefined });
      commands.push({ index: entry.index, data: envelope.command });
    }
    if (commands.length === 0) return outcomes;
    const results = this.user.apply(commands);
    assert(Array.isArray(results) && results.length === commands.length, `the state machine's apply returned ${Array.isArray(results) ? `${results.length} results` : "no array"} for ${commands.length} commands; it must return one result per command`);
    positions.forEach((position, i) => {
      outcomes[position] = { ...(outcomes[position] as EmbeddedApplied<R>), result: results[i] as R };
    });
    return outcomes;
  }

  /**
   * Whether a command applies now, and records it. A sequence above the highest applies,
   * and the ones it skips (of its own process, within the window) become missing; a
   * missing one applies once; anything else within the window was applied already; below
   * the window, nothing can be told apart any more, so it is stale.
   */
  private admit({ proposer, firstSequence, sequence }: Envelope): "applied" | "duplicate" | "stale" {
    let record = this.proposers.get(proposer);
    if (record === undefined) {
      if (this.proposers.size >= PROPOSERS_MAX) return "stale";
      record = { highest: 0, missing: new Set() };
      this.proposers.set(proposer, record);
    }
    if (sequence > record.highest) {
      const floor = sequence - SEQUENCE_WINDOW;
      for (const old of record.missing) if (old <= floor) record.missing.delete(old);
      for (let s = Math.max(record.highest + 1, floor + 1, firstSequence); s < sequence; s++) record.missing.add(s);
      record.highest = sequence;
      return "applied";
    }
    if (record.missing.delete(sequence)) return "applied";
    return sequence > record.highest - SEQUENCE_WINDOW ? "duplicate" : "stale";
  }

  restore(snapshot: Snapshot): void {
    const { proposers, user } = decodeSnapshot(snapshot.data);
    this.proposers.clear();
    for (const [id, record] of proposers) this.proposers.set(id, record);
    this.user.restore(user);
    this.applied = snapshot.index;
  }

  beginSnapshot(): SnapshotBuilder {
    // The dedup memory is small: captured now, with the index; the user's state may take steps.
    const header = encodeSnapshotHeader(this.proposers);
    const index = this.applied;
    const incremental = this.user.beginSnapshot?.();
    if (incremental === undefined) {
      const data = concat(header, this.user.snapshot());
      return { index, data, step: () => true, abort: () => undefined };
    }
    let data: Uint8Array | null = null;
    return {
      index,
      step: (recordsMax) => {
        if (data !== null) return true;
        if (!incremental.step(recordsMax)) return false;
        data = concat(header, incremental.data);
        return true;
      },
      get data(): Uint8Array {
        assert(data !== null, "a snapshot's data read before it was complete");
        return data;
      },
      abort: () => incremental.abort(),
    };
  }

  proposalKey(applied: EmbeddedApplied<R>): ProposalKey | null {
    return applied.outcome === "applied" && applied.proposer === this.self ? applied.sequence : null;
  }
}

function encodeSnapshotHeader(proposers: ReadonlyMap<NodeId, ProposerRecord>): Uint8Array {
  let size = 1 + 4;
  for (const record of proposers.values()) size += 4 + 8 + 4 + 4 * record.missing.size;
  const writer = new ByteWriter(size);
  writer.u8(SNAPSHOT_TAG);
  writer.u32(proposers.size);
  // In id order, so equal states give equal bytes on every member.
  for (const id of [...proposers.keys()].sort((a, b) => a - b)) {
    const record = proposers.get(id) as ProposerRecord;
    writer.u32(id);
    writer.f64(record.highest);
    writer.u32(record.missing.size);
    for (const sequence of [...record.missing].sort((a, b) => b - a)) writer.u32(record.highest - sequence);
  }
  return writer.finish("an embedded snapshot header");
}

/** Reads an adapter snapshot; InvalidInputError when it is not one (damaged, or another state machine's). */
function decodeSnapshot(data: Uint8Array): { readonly proposers: Map<NodeId, ProposerRecord>; readonly user: Uint8Array } {
  const reader = new ByteReader(data, "an embedded state machine snapshot");
  if (reader.u8() !== SNAPSHOT_TAG) throw new InvalidInputError("the snapshot is not an embedded state machine's (is this data directory a synod KV node's?)");
  const count = reader.u32();
  if (count > PROPOSERS_MAX) throw new InvalidInputError(`the snapshot names ${count} proposers, over the limit of ${PROPOSERS_MAX}`);
  const proposers = new Map<NodeId, ProposerRecord>();
  let at = 5;
  for (let i = 0; i < count; i++) {
    const id = reader.u32();
    const highest = reader.safeInteger();
    const missingCount = reader.u32();
    if (missingCount >= SEQUENCE_WINDOW) throw new InvalidInputError(`the snapshot has ${missingCount} missing sequences for proposer ${id}, over the window of ${SEQUENCE_WINDOW}`);
    const missing = new Set<number>();
    for (let m = 0; m < missingCount; m++) {
      const distance = reader.u32();
      if (distance === 0 || distance >= SEQUENCE_WINDOW || distance >= highest) throw new InvalidInputError(`the snapshot has a bad missing sequence for proposer ${id}`);
      missing.add(highest - distance);
    }
    proposers.set(id, { highest, missing });
    at += 4 + 8 + 4 + 4 * missingCount;
  }
  return { proposers, user: data.slice(at) };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

export interface EmbeddedReplicaOptions<M, H, R> extends Omit<ReplicaOptions<M, H, EmbeddedApplied<R>>, "stateMachine" | "observer"> {
  readonly engine: Engine<M, H>;
  /** The adapter over the user's state machine, already recovered (see `EmbeddedStateMachine.restore`). */
  readonly stateMachine: EmbeddedStateMachine<R>;
  /** The sequence of this process's first command: above any an earlier process of this node used. */
  readonly firstSequence: number;
  readonly observer?: ReplicaObserver<EmbeddedApplied<R>>;
  /** The simulator's broken replica, to prove it is caught; never set in production. */
  readonly replicaMutant?: ReplicaMutant | null;
}

/**
 * The request layer of an embedded state machine above a `Replica`: numbers this node's
 * commands, wraps them in envelopes, and hands each caller its command's result.
 *
 * A command a follower forwarded is lost if the leader it went to dies or is deposed before
 * the command commits. Since a command applies once however many copies reach the log, this
 * node proposes each command still waiting again whenever another leader (or another term)
 * appears: the caller waits through a failover instead of timing out.
 */
export class EmbeddedReplica<M, H, R> {
  readonly replica: Replica<M, H, EmbeddedApplied<R>>;
  readonly stateMachine: EmbeddedStateMachine<R>;
  private readonly firstSequence: number;
  private nextSequence: number;
  private readonly self: NodeId;
  /** The envelopes of this node's commands still waiting, by sequence, for proposing again. */
  private readonly waiting = new Map<number, Uint8Array>();
  private reproposeScheduled = false;

  constructor(private readonly options: EmbeddedReplicaOptions<M, H, R>) {
    assert(Number.isSafeInteger(options.firstSequence) && options.firstSequence > 0, "the first sequence must be a positive safe integer");
    this.stateMachine = options.stateMachine;
    this.self = options.engine.id;
    this.firstSequence = Math.max(options.firstSequence, options.stateMachine.highestSequence(this.self) + 1);
    this.nextSequence = this.firstSequence;
    const observer: ReplicaObserver<EmbeddedApplied<R>> = {
      ...options.observer,
      leadershipChanged: (status) => {
        options.observer?.leadershipChanged?.(status);
        if (status.leader !== null && this.waiting.size > 0) this.scheduleRepropose();
      },
    };
    this.replica = createReplica<M, H, EmbeddedApplied<R>>({ ...options, stateMachine: options.stateMachine, observer }, options.replicaMutant ?? null);
  }

  /** Proposes every waiting command again, soon (an observer must not call back into the replica at once). */
  private scheduleRepropose(): void {
    if (this.reproposeScheduled) return;
    this.reproposeScheduled = true;
    this.options.clock.soon(() => {
      this.reproposeScheduled = false;
      if (this.replica.isStopped) return;
      // A refusal (no leader after all) is no loss: the next leader brings another try.
      for (const data of this.waiting.values()) this.replica.proposeUnanswered(data);
    });
  }

  start(): void {
    this.replica.start();
  }

  /**
   * Proposes `command`; `waiter` resolves with the state machine's result once it applied
   * on this node, or rejects as `Replica.propose` does. A command over COMMAND_BYTES_MAX is
   * refused (InvalidInputError) before anything is proposed. Returns the command's sequence,
   * or null when it was refused at once (nothing proposed): the simulator follows commands
   * by it.
   */
  propose(command: Uint8Array, waiter: Waiter<R>): number | null {
    if (!(command instanceof Uint8Array)) {
      waiter.reject(new InvalidInputError("a command must be a Uint8Array (encode it first, e.g. with TextEncoder)"));
      return null;
    }
    if (command.length > COMMAND_BYTES_MAX) {
      waiter.reject(new InvalidInputError(`a command of ${command.length} bytes is over the limit of ${COMMAND_BYTES_MAX}`));
      return null;
    }
    const sequence = this.nextSequence++;
    // A refusal comes at once (the engine's, or the replica's bound): nothing was proposed,
    // so the number is given back rather than leave a gap the exactly-once memory keeps.
    let inline = true;
    let refused = false;
    const data = encodeEnvelope({ proposer: this.self, firstSequence: this.firstSequence, sequence, command });
    this.replica.propose(data, sequence, {
      resolve: (applied) => {
        this.waiting.delete(sequence);
        waiter.resolve(applied.result as R);
      },
      reject: (error) => {
        this.waiting.delete(sequence);
        if (inline) refused = true;
        waiter.reject(error);
      },
    });
    inline = false;
    if (!refused) {
      this.waiting.set(sequence, data);
      return sequence;
    }
    if (this.nextSequence === sequence + 1) this.nextSequence = sequence;
    return null;
  }

  /** A linearizable barrier (a lease read with `lease`): see `Replica.read`. */
  read(options: ReadOptions, waiter: Waiter<void>): void {
    this.replica.read(options, waiter);
  }
}

/** The highest sequence of `proposer` among `entries`' envelopes (0 for none): what a restarted node must number above. */
export function highestSequenceIn(entries: readonly LogEntry[], proposer: NodeId): number {
  let highest = 0;
  for (const entry of entries) {
    if (entry.kind === "config") continue;
    const envelope = decodeEnvelope(entry.data);
    if (envelope !== null && envelope.proposer === proposer && envelope.sequence > highest) highest = envelope.sequence;
  }
  return highest;
}

import { assert } from "../core/common/assert.js";
import { NotLeaderError } from "../core/common/errors.js";
import { utf8Decode, utf8Encode } from "../core/common/utf8.js";
import type { Admission, Engine, EngineFactory, LogEntry, MembershipChange, NodeId, Ready } from "../core/engine/contract.js";
import { encodeCommand, type KvCommand } from "../core/kv/command.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM } from "../core/kv/store.js";
import { SimDisk } from "./disk.js";
import type { ClientRequest, ClientResponse } from "./messages.js";

/** What a simulated node needs from the world around it. */
export interface NodeHost<M> {
  now(): number;
  sendToPeer(from: NodeId, to: NodeId, message: M): void;
  sendToClient(from: NodeId, clientId: number, response: ClientResponse): void;
  /** Runs `action` after the disk's fsync latency, unless the node crashed meanwhile. */
  afterFsync(node: SimNode<M>, action: () => void): void;
  /** An entry was applied; for a client's write, `output` is what the client would be told. */
  onApply(node: NodeId, entry: LogEntry, requestKey: string | null, output: string | null | boolean): void;
  onStatus(node: SimNode<M>): void;
  /**
   * The request keys of every write applied at or before `index` (as the cluster applied
   * them): what a state machine restored from a snapshot at `index` holds.
   */
  requestsThrough(index: number): Set<string>;
  trace(node: NodeId, text: string): void;
}

interface PendingWrite {
  readonly clientId: number;
  readonly sequence: number;
  readonly expiresAt: number;
}

interface PendingRead {
  readonly clientId: number;
  readonly sequence: number;
  readonly key: string;
  readonly expiresAt: number;
  /** Set once the engine says at which index the read is safe. */
  index: number | null;
}

const NO_COMMAND = new Uint8Array(0);

export function requestKey(clientId: number, sequence: number): string {
  return `${clientId}:${sequence}`;
}

/**
 * One simulated process: an engine, a disk that survives crashes, and a volatile KV state
 * machine rebuilt on restart by re-applying the committed log. It drives the engine by the
 * contract: send `messages` at once, write and fsync, then send `messagesAfterPersist`,
 * apply, serve reads, `advance`.
 */
export class SimNode<M> {
  engine: Engine<M, unknown>;
  kv = new KvStore();
  /** Request keys of every write applied by this incarnation's state machine. */
  appliedRequests = new Set<string>();
  up = true;
  paused = false;
  incarnation = 0;
  /** Snapshots installed from a leader, over every incarnation. */
  snapshotsInstalled = 0;
  /** Counts pauses, so a timer set for one pause cannot end a later one. */
  pauses = 0;
  private readyInFlight: Ready<M, unknown> | null = null;
  private pendingWrites = new Map<string, PendingWrite>();
  private pendingReads = new Map<number, PendingRead>();
  private nextReadId = 1;
  /** Inputs that arrived while paused, replayed in order on resume. */
  private deferred: (() => void)[] = [];
  private missedTicks = 0;

  constructor(
    readonly id: NodeId,
    private readonly peers: readonly NodeId[],
    private readonly factory: EngineFactory<M, unknown>,
    readonly disk: SimDisk<unknown>,
    private readonly host: NodeHost<M>,
    private readonly engineSeed: () => number,
    private readonly requestTimeoutMicros: number,
    private readonly mutant: string | null,
    /** Take a snapshot and compact the log every this many applied entries (0: never). */
    private readonly snapshotEveryEntries: number,
  ) {
    this.engine = this.createEngine();
  }

  private createEngine(): Engine<M, unknown> {
    const durable = this.disk.recover();
    this.kv = durable.snapshot === null ? new KvStore() : KvStore.restore(durable.snapshot.data);
    this.appliedRequests = durable.snapshot === null ? new Set() : this.host.requestsThrough(durable.snapshot.index);
    const options = { id: this.id, peers: this.peers, durable, appliedIndex: this.kv.applied, seed: this.engineSeed() };
    return this.mutant === null ? this.factory.create(options) : this.factory.create(options, this.mutant);
  }

  /** Runs an input now, or later if the process is paused. Crashed processes get nothing. */
  private input(action: () => void): void {
    if (!this.up) return;
    if (this.paused) {
      this.deferred.push(action);
      return;
    }
    action();
    this.pump();
  }

  tick(): void {
    if (!this.up) return;
    if (this.paused) {
      // A paused process's timer does not fire, but its monotonic clock runs on.
      this.missedTicks++;
      return;
    }
    this.engine.tick();
    this.expireRequests();
    this.pump();
  }

  deliver(from: NodeId, message: M): void {
    this.input(() => this.engine.step(from, message));
  }

  request(request: ClientRequest): void {
    this.input(() => this.handleRequest(request));
  }

  private handleRequest(request: ClientRequest): void {
    const expiresAt = this.host.now() + this.requestTimeoutMicros;
    if (request.op === "get") {
      const readId = this.nextReadId++;
      const admission = this.engine.readIndex(readId);
      if (!admission.accepted) return this.refuse(request, admission.error);
      this.pendingReads.set(readId, { clientId: request.clientId, sequence: request.sequence, key: request.key, expiresAt, index: null });
      return;
    }
    const admission = this.engine.propose(encodeCommand(toCommand(request)));
    if (!admission.accepted) return this.refuse(request, admission.error);
    this.pendingWrites.set(requestKey(request.clientId, request.sequence), { clientId: request.clientId, sequence: request.sequence, expiresAt });
  }

  private refuse(request: ClientRequest, error: Error): void {
    const leaderHint = error instanceof NotLeaderError ? error.leaderHint : null;
    this.host.sendToClient(this.id, request.clientId, { type: "client-response", sequence: request.sequence, outcome: "refused", reason: error.message, leaderHint });
  }

  /** Takes the next Ready if there is one and none is outstanding. */
  private pump(): void {
    if (!this.up || this.paused || this.readyInFlight !== null || !this.engine.hasReady()) return;
    const ready = this.engine.ready();
    this.readyInFlight = ready;
    this.host.onStatus(this);
    for (const { to, message } of ready.messages) this.host.sendToPeer(this.id, to, message);
    if (ready.snapshot !== null) this.disk.write({ kind: "snapshot", snapshot: ready.snapshot });
    if (ready.entries.length > 0) this.disk.write({ kind: "entries", entries: ready.entries });
    if (ready.hardState !== null) this.disk.write({ kind: "hard-state", hardState: ready.hardState });
    const incarnation = this.incarnation;
    if (this.disk.hasUnsynced) {
      this.host.afterFsync(this, () => {
        if (this.incarnation !== incarnation || !this.up) return;
        this.disk.sync();
        this.input(() => this.finishReady(ready));
      });
    } else this.finishReady(ready);
  }

  private finishReady(ready: Ready<M, unknown>): void {
    assert(this.readyInFlight === ready, "finishing a Ready that is not in flight");
    for (const { to, message } of ready.messagesAfterPersist) this.host.sendToPeer(this.id, to, message);
    if (ready.snapshot !== null) {
      this.kv = KvStore.restore(ready.snapshot.data);
      this.appliedRequests = this.host.requestsThrough(ready.snapshot.index);
      this.snapshotsInstalled++;
      this.host.trace(this.id, `installed the leader's snapshot at ${ready.snapshot.index}`);
    }
    for (const entry of ready.committedEntries) this.apply(entry);
    for (const { requestId, index } of ready.readStates) {
      const read = this.pendingReads.get(requestId);
      if (read !== undefined) read.index = index;
    }
    this.serveReads();
    this.engine.advance(ready);
    this.readyInFlight = null;
    this.maybeSnapshot();
    this.host.onStatus(this);
    this.pump();
  }

  /** Snapshots the state machine and compacts the log once enough entries were applied. */
  private maybeSnapshot(): void {
    if (this.snapshotEveryEntries === 0 || this.engine.compact === undefined) return;
    const index = this.kv.applied;
    if (index - this.engine.status().snapshotIndex < this.snapshotEveryEntries) return;
    const term = this.engine.entryTerm(index);
    assert(term !== null, `no term for the applied index ${index}`);
    // The configuration at the snapshot's index goes with it: the log that held it goes.
    const membership = this.engine.membershipAt?.(index);
    const data = this.kv.snapshot();
    const snapshot = membership === undefined ? { index, term, data } : { index, term, data, membership };
    // Durable first: the engine may drop the log behind it at once.
    this.disk.saveSnapshot(snapshot);
    this.engine.compact(index, snapshot.data);
    this.host.trace(this.id, `snapshot at ${index} (${snapshot.data.length} bytes), log compacted`);
  }

  private apply(entry: LogEntry): void {
    if (entry.kind === "config") {
      // The engine's own entry: the state machine only moves past it.
      this.kv.apply(entry.index, NO_COMMAND);
      this.host.onApply(this.id, entry, null, null);
      return;
    }
    const applied = this.kv.apply(entry.index, entry.data);
    const key = applied.request === null ? null : requestKey(applied.request.clientId - SELF_ASSIGNED_SESSIONS_FROM, applied.request.sequence);
    const output = applied.result.op === "cas" ? applied.result.succeeded : null;
    // A duplicate changed nothing: it does not count as this request taking effect (again).
    if (key !== null && !applied.duplicate) this.appliedRequests.add(key);
    this.host.onApply(this.id, entry, applied.duplicate ? null : key, output);
    if (key === null || applied.result.op === "rejected" || applied.result.op === "superseded") return;
    const pending = this.pendingWrites.get(key);
    if (pending === undefined) return;
    this.pendingWrites.delete(key);
    this.host.sendToClient(this.id, pending.clientId, { type: "client-response", sequence: pending.sequence, outcome: "ok", output });
  }

  private serveReads(): void {
    for (const [readId, read] of this.pendingReads) {
      if (read.index === null || read.index > this.kv.applied) continue;
      this.pendingReads.delete(readId);
      const record = this.kv.get(read.key);
      const output = record === undefined ? null : utf8Decode(record.value);
      this.host.sendToClient(this.id, read.clientId, { type: "client-response", sequence: read.sequence, outcome: "ok", output });
    }
  }

  /** Forgets requests whose client has surely given up, so the maps stay bounded. */
  private expireRequests(): void {
    const now = this.host.now();
    for (const [key, write] of this.pendingWrites) if (write.expiresAt < now) this.pendingWrites.delete(key);
    for (const [id, read] of this.pendingReads) if (read.expiresAt < now) this.pendingReads.delete(id);
  }

  /** Loses the process: engine, state machine, requests. The caller crashes the disk. */
  crash(): void {
    assert(this.up, "crash of a node that is down");
    this.up = false;
    this.paused = false;
    this.incarnation++;
    this.readyInFlight = null;
    this.pendingWrites.clear();
    this.pendingReads.clear();
    this.deferred = [];
  }

  restart(): void {
    assert(!this.up, "restart of a node that is up");
    this.up = true;
    this.engine = this.createEngine();
    this.host.onStatus(this);
    this.pump();
  }

  /** Asks this node's engine to change the configuration (engines with membership); whether it took the request. */
  changeMembership(change: MembershipChange): Admission | null {
    if (!this.up || this.paused || this.engine.changeMembership === undefined) return null;
    const admission = this.engine.changeMembership(change);
    this.pump();
    return admission;
  }

  /** Asks this node's engine to hand leadership over (engines that support it); whether it took the request. */
  transferLeadership(to: NodeId | null): boolean {
    if (!this.up || this.paused || this.engine.transferLeadership === undefined) return false;
    const admission = this.engine.transferLeadership(to);
    this.pump();
    return admission.accepted;
  }

  pause(): void {
    if (!this.up) return;
    this.paused = true;
    this.pauses++;
    this.missedTicks = 0;
  }

  resume(): void {
    if (!this.up || !this.paused) return;
    this.paused = false;
    // Like the runtime's driver, which counts ticks by the monotonic clock: on waking, time
    // passes for the engine first (a leader sees its lease gone) and only then do the
    // messages that queued up meanwhile arrive.
    const missed = this.missedTicks;
    this.missedTicks = 0;
    for (let i = 0; i < missed && this.up && !this.paused; i++) {
      this.engine.tick();
      this.pump();
    }
    const queued = this.deferred;
    this.deferred = [];
    for (const action of queued) {
      if (!this.up || this.paused) break;
      action();
      this.pump();
    }
  }
}

function toCommand(request: ClientRequest): KvCommand {
  // Simulated clients number themselves from 1; their sessions are self-assigned (created
  // on first use) in the store, so they live in that id range.
  const requestId = { clientId: SELF_ASSIGNED_SESSIONS_FROM + request.clientId, sequence: request.sequence };
  switch (request.op) {
    case "put":
      return { op: "put", request: requestId, key: request.key, value: utf8Encode(request.value ?? "") };
    case "delete":
      return { op: "delete", request: requestId, key: request.key };
    case "cas":
      return { op: "cas-value", request: requestId, key: request.key, expected: utf8Encode(request.expected ?? ""), value: utf8Encode(request.value ?? "") };
    case "get":
      throw new Error("a get is not a command");
  }
}

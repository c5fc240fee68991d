// A test harness for Raft engines: N engines wired through a message queue the test
// controls (deliver, drop, partition), with persistence simulated by keeping each Ready's
// writes. Not the simulator: no time, no randomness but the engines' own, every step explicit.
import type { DurableState, LogEntry, NodeId, Outbound, Snapshot } from "../engine/contract.js";
import { appendEntries } from "../../sim/disk.js";
import { utf8Decode, utf8Encode } from "../common/utf8.js";
import { DEFAULT_RAFT_CONFIG, type RaftConfig } from "./config.js";
import type { RaftHardState, RaftMessage } from "./messages.js";
import { createRaftMutant, type RaftMutant } from "./mutants.js";
import { RaftEngine } from "./raft.js";

export interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly message: RaftMessage;
  /** True when the engine put it in messagesAfterPersist. */
  readonly afterPersist: boolean;
}

interface Disk {
  hardState: RaftHardState | null;
  snapshot: Snapshot | null;
  entries: LogEntry[];
}

/** The harness's state machine is the list of applied entries; a snapshot is that list. */
export function encodeApplied(entries: readonly LogEntry[]): Uint8Array {
  // Configuration entries keep their kind (their bytes are not text: only the kind matters).
  return utf8Encode(JSON.stringify(entries.map((e) => (e.kind === "config" ? [e.index, e.term, "", "config"] : [e.index, e.term, utf8Decode(e.data)]))));
}

function decodeApplied(bytes: Uint8Array): LogEntry[] {
  return (JSON.parse(utf8Decode(bytes)) as [number, number, string, string?][]).map(([index, term, text, kind]) =>
    kind === "config" ? { index, term, data: utf8Encode(text), kind } : { index, term, data: utf8Encode(text) },
  );
}

export class TestCluster {
  readonly engines = new Map<NodeId, RaftEngine>();
  readonly disks = new Map<NodeId, Disk>();
  readonly applied = new Map<NodeId, LogEntry[]>();
  readonly readStates = new Map<NodeId, { requestId: number; index: number }[]>();
  /** Messages produced and not yet delivered or dropped. */
  queue: Envelope[] = [];
  /** Every message ever produced, in order (for asserting traces and counts). */
  readonly sent: Envelope[] = [];
  private readonly cut = new Set<string>();
  /** Nodes that start waiting for a leader's snapshot at this index or later (EngineOptions.awaitSnapshot). */
  readonly awaitSnapshot = new Map<NodeId, number>();
  /** Nodes whose state machine holds nothing of their disk's snapshot (a held first state whose records were lost): they start with applied index 0. */
  readonly unmade = new Set<NodeId>();
  /** When set, matching messages are dropped on delivery (a scripted, selective fault). */
  dropWhere: ((envelope: Envelope) => boolean) | null = null;
  readonly ids: NodeId[];

  /** The bootstrap voters: the first `bootstrapVoters` ids; the rest start empty, to join later. */
  readonly bootstrap: NodeId[];

  constructor(
    size: number,
    private readonly config: RaftConfig = { ...DEFAULT_RAFT_CONFIG },
    private readonly mutant: RaftMutant | null = null,
    bootstrapVoters = size,
  ) {
    this.ids = Array.from({ length: size }, (_, i) => i + 1);
    this.bootstrap = this.ids.slice(0, bootstrapVoters);
    for (const id of this.ids) {
      this.disks.set(id, { hardState: null, snapshot: null, entries: [] });
      this.start(id);
    }
  }

  /** (Re)starts a node from its disk, as after a crash. */
  start(id: NodeId, seed = id): RaftEngine {
    const disk = this.disks.get(id) as Disk;
    const durable: DurableState<RaftHardState> = { hardState: disk.hardState, snapshot: disk.snapshot, entries: [...disk.entries] };
    const peers = this.bootstrap.includes(id) ? this.bootstrap : [];
    const awaited = this.awaitSnapshot.get(id);
    const unmade = this.unmade.has(id);
    const options = { id, peers, durable, appliedIndex: unmade ? 0 : (disk.snapshot?.index ?? 0), seed, ...(awaited === undefined ? {} : { awaitSnapshot: awaited }) };
    const engine = this.mutant === null ? new RaftEngine(options, this.config) : createRaftMutant(this.mutant, options, this.config);
    this.engines.set(id, engine);
    this.applied.set(id, disk.snapshot === null || unmade ? [] : decodeApplied(disk.snapshot.data));
    this.readStates.set(id, []);
    this.queue = this.queue.filter((e) => e.to !== id && e.from !== id);
    return engine;
  }

  engine(id: NodeId): RaftEngine {
    return this.engines.get(id) as RaftEngine;
  }

  /** Processes every node's Ready: persist, queue messages, apply, advance. */
  flush(): void {
    for (const [id, engine] of this.engines) {
      let rounds = 0;
      while (engine.hasReady() && rounds++ < 100) {
        const ready = engine.ready();
        const disk = this.disks.get(id) as Disk;
        if (ready.snapshot !== null) {
          disk.snapshot = ready.snapshot;
          disk.entries = [];
          this.applied.set(id, decodeApplied(ready.snapshot.data));
        }
        if (ready.entries.length > 0) disk.entries = appendEntries(disk.entries, ready.entries, disk.snapshot);
        if (ready.hardState !== null) disk.hardState = ready.hardState;
        const queueAll = (list: readonly Outbound<RaftMessage>[], afterPersist: boolean): void => {
          for (const { to, message } of list) {
            const envelope = { from: id, to, message, afterPersist };
            this.sent.push(envelope);
            this.queue.push(envelope);
          }
        };
        queueAll(ready.messages, false);
        queueAll(ready.messagesAfterPersist, true);
        (this.applied.get(id) as LogEntry[]).push(...ready.committedEntries);
        (this.readStates.get(id) as { requestId: number; index: number }[]).push(...ready.readStates);
        engine.advance(ready);
      }
    }
  }

  /** Cuts the links between two groups, both ways. */
  partition(groupA: readonly NodeId[], groupB: readonly NodeId[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        this.cut.add(`${a}>${b}`);
        this.cut.add(`${b}>${a}`);
      }
    }
  }

  /** Restores the links between two groups, both ways. */
  mend(groupA: readonly NodeId[], groupB: readonly NodeId[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        this.cut.delete(`${a}>${b}`);
        this.cut.delete(`${b}>${a}`);
      }
    }
  }

  isolate(id: NodeId): void {
    this.partition([id], this.ids.filter((n) => n !== id));
  }

  heal(): void {
    this.cut.clear();
  }

  /** Delivers queued messages (dropping those across a cut) until quiet; returns how many. */
  stabilize(limit = 100_000): number {
    let delivered = 0;
    this.flush();
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      for (const e of batch) {
        if (this.cut.has(`${e.from}>${e.to}`) || (this.dropWhere !== null && this.dropWhere(e))) continue;
        this.engines.get(e.to)?.step(e.from, e.message);
        if (++delivered > limit) throw new Error("stabilize: message storm");
      }
      this.flush();
    }
    return delivered;
  }

  /** Ticks one node `count` times (processing its output, not delivering it). */
  tick(id: NodeId, count = 1): void {
    for (let i = 0; i < count; i++) this.engine(id).tick();
    this.flush();
  }

  /** Ticks every node once per round, delivering between rounds. */
  tickAll(rounds: number): void {
    for (let r = 0; r < rounds; r++) {
      for (const id of this.ids) this.engine(id).tick();
      this.stabilize();
    }
  }

  /**
   * Makes `id` campaign (by running out its election timer) and lets the election finish.
   * The others first forget their leader, as if its lease had run out while they waited.
   */
  elect(id: NodeId): void {
    for (const other of this.ids) if (other !== id) this.engine(other).forgetLeader();
    this.tick(id, 2 * this.config.electionTicks);
    this.stabilize();
  }

  /** Keeps making `id` campaign until it leads (a lost election raises its term for the next). */
  electUntil(id: NodeId, attempts = 5): void {
    for (let i = 0; i < attempts && this.engine(id).status().role !== "leader"; i++) this.elect(id);
    if (this.engine(id).status().role !== "leader") throw new Error(`node ${id} did not win an election in ${attempts} attempts`);
  }

  /** Snapshots node `id`'s state machine at what it applied and compacts its log behind it. */
  compact(id: NodeId): void {
    const applied = this.applied.get(id) as LogEntry[];
    const last = applied[applied.length - 1];
    if (last === undefined) return;
    const snapshot = this.engine(id).compact(last.index, encodeApplied(applied));
    if (snapshot === null) return;
    const disk = this.disks.get(id) as Disk;
    disk.snapshot = snapshot;
    disk.entries = disk.entries.filter((e) => e.index > snapshot.index);
  }

  leaders(): NodeId[] {
    return this.ids.filter((id) => this.engine(id).status().role === "leader");
  }

  appliedData(id: NodeId): string[] {
    return (this.applied.get(id) as LogEntry[]).filter((e) => e.data.length > 0 && e.kind !== "config").map((e) => utf8Decode(e.data));
  }
}

export const data = (text: string): Uint8Array => utf8Encode(text);

/**
 * How a simulated node hosts ranges that split (`synod sim --splits N`; the run's side is
 * split-run.ts). The store, the `split` command and the child's first state are
 * production's (core/kv/split.ts, store-ranges.ts); this is the node's glue around them,
 * what runtime/server/node-range-admin.ts and range-births.ts do on a real node:
 *
 * - Each range's store holds its span: the presplit table's for the first ranges
 *   (`RangeTable.presplit`, as a sharded node starts), the snapshot's for the others.
 * - The split host: `prepare` (inside the parent's apply) makes the child's first snapshot
 *   durable at RANGE_BIRTH_INDEX on the node's disk, with the configuration in force at the
 *   split; `born` (once the apply committed) hosts the child from it and starts it.
 * - A replica that missed the split (its parent caught up from a snapshot taken after it)
 *   learns of the child from its leader's first message: it asks the sender for the
 *   child's span, and hosts the child with no state when no range here holds any of those
 *   keys any more; the leader sends it the snapshot.
 * - Clients' requests name a range: served by it when it holds the key (checked on arrival
 *   and, for reads, again once the read index applied), else refused as a range mismatch
 *   (nothing applied), with this node's ranges for the client to refresh its view from (as
 *   the SDK reads GET /v1/shards on a range mismatch).
 *
 * - The ranges' stores are memory stores in one `MemoryKvGroups` per process lifetime
 *   (core/kv/memory-groups.ts): a split hands the child its records with no copy and its
 *   first state only names them (`heldFirstState`), as on a real node. A crash loses them,
 *   as a machine crash loses an LMDB store that cannot be trusted, so a restarted node
 *   rebuilds every range from its disk: a child whose log starts with a held first state is
 *   hosted only once its parent applies the split again from its log (which the parent's
 *   compaction hold keeps there: core/multi/held-births.ts).
 *
 * One difference from production: a restarted node hosts every child whose disk holds a
 * full snapshot at once, even while the parent, replaying its log, has not applied the
 * split again (each range's store is its own object, so they cannot overlap; the parent
 * serves nothing before it applies past the split).
 */
import type { DurableState, Engine, Membership, NodeId } from "../core/engine/contract.js";
import { compareUtf8, utf8Decode } from "../core/common/utf8.js";
import type { KvOperation, KvReplica } from "../core/kv/kv-replica.js";
import type { KvResult } from "../core/kv/model.js";
import { readSnapshotRange } from "../core/kv/snapshot.js";
import { heldFirstStateOf, RANGE_BIRTH_INDEX, type KeySpan, type KvSplitHost } from "../core/kv/split.js";
import { MemoryKvGroups } from "../core/kv/memory-groups.js";
import { createRangeStore, readRangeCheck, type SplitMutant } from "../core/kv/split-mutants.js";
import { KvStore, SELF_ASSIGNED_SESSIONS_FROM } from "../core/kv/store.js";
import type { GroupId } from "../core/multi/group.js";
import { splitsWitnessed, unmadeChildState, withWitnessedCommit, type HeldSplit } from "../core/multi/held-births.js";
import type { RangeDescriptor, RangeTable } from "../core/multi/ranges.js";
import type { Replica } from "../core/replica/replica.js";
import type { SimDisk } from "./disk.js";
import type { ClientRequest, ClientResponse } from "./messages.js";
import { refuseKvRequest, toOperation } from "./node-requests.js";
import type { SimRangeEntry } from "./placement.js";
import { snapshotFloor } from "../core/multi/placement-directory.js";
import { kvStateOf, type ReplicaState } from "./check/replica-state.js";

/** How long a node waits for a peer's answer about a range's span before it may ask again (production's fetch of it times out after 2 s). */
const ASK_TIMEOUT_MICROS = 1_000_000;

/** The term of a born range's first snapshot (production's RANGE_BIRTH_TERM, runtime/server/range-births.ts). */
export const SIM_RANGE_BIRTH_TERM = 1;

/** A split, as the node that applied it tells the run. */
export interface SplitApplied {
  readonly node: NodeId;
  readonly parent: GroupId;
  readonly child: GroupId;
  /** The child's first key: the split key. */
  readonly at: string;
  /** The split's index in the parent's log. */
  readonly index: number;
}

/** How a node takes part in a run whose ranges split. */
export interface SimNodeSplitOptions {
  /** The ranges the cluster starts with (`RangeTable.presplit`): groups 0 .. size - 1. */
  readonly table: RangeTable;
  readonly mutant: SplitMutant | null;
  /** A split applied on this node (before its child is hosted here). */
  applied(split: SplitApplied): void;
}

/** What the split glue needs of its node, in the incarnation that runs. */
export interface SplitsNode<M> {
  readonly id: NodeId;
  readonly disk: SimDisk<unknown>;
  incarnation(): number;
  hostedGroups(): readonly GroupId[];
  replica(group: GroupId): Replica<M, unknown, unknown> | null;
  layer(group: GroupId): KvReplica<M, unknown> | null;
  /** Hosts a replica of `group` from its durable state (not started); with `awaitSnapshot`, one that waits for its leader's snapshot (EngineOptions.awaitSnapshot). */
  host(group: GroupId, durable: DurableState<unknown>, awaitSnapshot?: number): { start(): void };
  onStatus(group: GroupId): void;
  /** Runs `action` in this incarnation once the input under way is done. */
  soon(action: () => void): void;
  /** Runs `action` in this incarnation after `delayMicros` of virtual time (not if it crashed meanwhile). */
  after(delayMicros: number, action: () => void): void;
  /** Asks node `to`, over the link between the nodes, for its description of range `group`; `answer` runs in this incarnation. */
  askRange(to: NodeId, group: GroupId, answer: (range: (RangeDescriptor & { readonly applied: number; readonly spanSince: number }) | null) => void): void;
  trace(group: GroupId, text: string): void;
}

/** What a node's split glue did, over every incarnation. */
export interface SplitCounts {
  /** Ranges hosted for a member's message: their split was missed here. */
  adoptions: number;
  /** Requests refused as a range mismatch: reads on arrival, reads once their read index applied (a split applied meanwhile), writes at apply. */
  readMismatchesOnArrival: number;
  readMismatchesAfterReadIndex: number;
  writeMismatches: number;
}

export class SimNodeSplits<M> {
  readonly counts: SplitCounts = { adoptions: 0, readMismatchesOnArrival: 0, readMismatchesAfterReadIndex: 0, writeMismatches: 0 };
  /** Spans of the ranges this node adopted (it missed their split), over every incarnation: a real node keeps them with the range's files. */
  private readonly adoptedSpans = new Map<GroupId, KeySpan>();
  /** Ranges whose span is being asked of a peer: the ask under way (a crash ends it; so does a timeout, as production's fetch of the span does). */
  private readonly asking = new Map<GroupId, { readonly incarnation: number }>();
  private readonly readCheck: ReturnType<typeof readRangeCheck>;
  /** The stores splits made in the incarnation that runs (a crash loses them), and which incarnation that is. */
  private groups = new MemoryKvGroups();
  private groupsIncarnation = -1;
  /** The splits the held children on the disk name, by parent, as the incarnation that started found them. */
  private witnessed = new Map<GroupId, number>();
  private witnessedIncarnation = -1;

  constructor(
    private readonly node: SplitsNode<M>,
    private readonly options: SimNodeSplitOptions,
  ) {
    this.readCheck = readRangeCheck(options.mutant);
  }

  /**
   * The ranges an incarnation hosts from its start: the first ones, and every range its disk
   * holds but those whose log starts with a held first state (their parent's split, applied
   * again from its log, makes their records and hosts them: `splitHost`'s `born`).
   */
  groupsAtStart(): GroupId[] {
    const first = this.options.table.list().map((range) => range.id);
    const born = this.node.disk.groupsWithLog().filter((group) => {
      const snapshot = this.node.disk.replay(group).snapshot;
      return this.options.table.get(group) !== undefined || snapshot === null || heldFirstStateOf(snapshot.data) === null;
    });
    return [...new Set([...first, ...born])].sort((a, b) => a - b);
  }

  /**
   * Range `group`'s durable state for a new incarnation: its commit index raised to any split
   * a held child of it on the disk names, as production's recovery does (runtime/server/node-ranges.ts; held-births.ts, `withWitnessedCommit`).
   */
  recovered(group: GroupId, durable: DurableState<unknown>): DurableState<unknown> {
    if (this.options.mutant === "split-trusts-parent-log") return durable;
    if (this.witnessedIncarnation !== this.node.incarnation()) {
      const held: HeldSplit[] = [];
      for (const other of this.node.disk.groupsWithLog()) {
        const snapshot = this.node.disk.replay(other).snapshot;
        const split = snapshot === null ? null : heldFirstStateOf(snapshot.data);
        if (split !== null) held.push(split);
      }
      this.witnessed = splitsWitnessed(held);
      this.witnessedIncarnation = this.node.incarnation();
    }
    const witnessed = this.witnessed.get(group);
    return witnessed === undefined ? durable : withWitnessedCommit(durable, witnessed);
  }

  /** This incarnation's stores of the ranges splits made. */
  private storesNow(): MemoryKvGroups {
    if (this.groupsIncarnation !== this.node.incarnation()) {
      this.groups = new MemoryKvGroups();
      this.groupsIncarnation = this.node.incarnation();
    }
    return this.groups;
  }

  /** The voters a range's engine starts from with nothing on disk: `peers` (the bootstrap voters) for the first ranges, none for a child (its snapshot says). */
  bootstrapPeers(group: GroupId, peers: readonly NodeId[]): readonly NodeId[] {
    return this.options.table.get(group) === undefined ? [] : peers;
  }

  /**
   * Range `group`'s store, able to split: the one its parent's split made in this
   * incarnation (a held first state names it), or one from its snapshot or over its first span.
   */
  createStore(group: GroupId, snapshot: Uint8Array | undefined, awaiting = false): KvStore {
    const groups = this.storesNow();
    const made = groups.backend(group);
    const kv = made === undefined ? createRangeStore(this.options.mutant, groups) : new KvStore(made);
    // Hosted to wait for its leader's snapshot, from a held first state whose records this
    // node's store lost (its log past it kept: adoptedState): it starts with nothing.
    const unmade = awaiting && !this.keepsUnmadeChild() && snapshot !== undefined && heldFirstStateOf(snapshot) !== null && kv.applied < RANGE_BIRTH_INDEX;
    if (snapshot !== undefined && !unmade) kv.restore(snapshot);
    else {
      const first = this.adoptedSpans.get(group) ?? this.options.table.get(group);
      if (first === undefined) throw new Error(`node ${this.node.id} hosts range ${group} with no snapshot and no span`);
      kv.backend.transaction(() => kv.backend.setSpan?.({ start: first.start, end: first.end }));
    }
    kv.setSplitHost(this.splitHost(group, kv));
    return kv;
  }

  /** Where range `parent`'s splits put their children: this node's disk, then a replica of each. */
  private splitHost(parent: GroupId, kv: KvStore): KvSplitHost {
    const { node } = this;
    return {
      parent,
      prepare: (child, data) => {
        const range = readSnapshotRange(data);
        if (range === null) throw new Error(`range ${parent}'s split made a child ${child} with no span`);
        this.options.applied({ node: node.id, parent, child, at: range.start, index: kv.applied });
        // Its log holds its first state already (the split applies again after a restart).
        if (node.replica(child) !== null || node.disk.replay(child).snapshot !== null) return;
        const engine = node.replica(parent)?.engine;
        node.disk.saveBirth({ index: RANGE_BIRTH_INDEX, term: SIM_RANGE_BIRTH_TERM, data, ...membershipAt(engine, kv.applied) }, child);
      },
      // Hosted once the apply under way is done (production hosts it at once): the entries
      // applied with the split are told to the run first, as the child's first state holds them.
      born: (child) =>
        node.soon(() => {
          if (node.replica(child) !== null) return;
          node.host(child, node.disk.replay(child)).start();
          node.trace(child, `born of range ${parent}'s split`);
          node.onStatus(child);
        }),
    };
  }

  /**
   * A member's message for a range this node does not host, as production's node takes it
   * (runtime/server/node-range-admin.ts, adoptRange). Without placement, a child whose split
   * it missed: its span is asked of the sender. With placement (`directory`), a range the
   * directory counts this node in: its span is the directory's (asked of the sender when the
   * directory has no word of it); none when the directory leaves this node out. When no
   * range here holds any of its keys, it is hosted with no state, and waits for its leader's
   * snapshot taken at or after the description (EngineOptions.awaitSnapshot): its log's first
   * entries may predate a split. A span still held here is left to the parent's split.
   */
  adopt(from: NodeId, group: GroupId, directory?: { readonly described: SimRangeEntry | null | undefined }): void {
    const { node } = this;
    if ((directory === undefined && this.options.table.get(group) !== undefined) || node.replica(group) !== null || this.asking.get(group)?.incarnation === node.incarnation()) return;
    const described = directory?.described;
    if (described === null) return;
    const hostOver = (span: KeySpan, awaitFrom: number): void => {
      // A split applied here made it a moment ago (its birth runs once the apply is done, as `born` says): it is born, not adopted.
      if (node.replica(group) !== null || this.overlapsHosted(span) || this.storesNow().backend(group) !== undefined) return;
      this.adoptedSpans.set(group, { start: span.start, end: span.end });
      this.counts.adoptions++;
      // A replica of it dropped here once starts from its tombstone (RaftHardState.forgot: it votes once it holds what it did).
      node.host(group, this.adoptedState(node.disk.replay(group)), this.options.mutant === "split-moved-replica-replays-log" ? undefined : awaitFrom).start();
      node.trace(group, `hosting a range this node missed the split of, or was added to, until its leader sends its state (at ${awaitFrom} or later)`);
      node.onStatus(group);
    };
    if (described !== undefined && described.start !== undefined && described.end !== undefined) return hostOver({ start: described.start, end: described.end }, this.awaitFrom(described));
    const ask = { incarnation: node.incarnation() };
    this.asking.set(group, ask);
    // An answer lost on the way: the next message from the range's members asks again.
    node.after(ASK_TIMEOUT_MICROS, () => {
      if (this.asking.get(group) === ask) this.asking.delete(group);
    });
    node.askRange(from, group, (range) => {
      if (this.asking.get(group) !== ask) return;
      this.asking.delete(group);
      // Asked of the sender, as production's node reads GET /v1/shards.
      if (range !== null) hostOver(range, this.awaitFrom(range));
    });
  }

  /** The least index of the snapshot a range hosted with no state from `described` waits for (`snapshotFloor`, but for the mutant that waits for the description's applied index). */
  private awaitFrom(described: { readonly applied: number; readonly spanSince?: number }): number {
    return this.options.mutant === "split-moved-replica-awaits-applied" ? Math.max(1, described.applied) : snapshotFloor(described);
  }

  /** The mutants that host a held child from its held first state though its records are gone here. */
  private keepsUnmadeChild(): boolean {
    return this.options.mutant === "split-keeps-unmade-child" || this.options.mutant === "split-trusts-parent-log";
  }

  /** The node dropped its replica of `group` (it left the range): its store and adopted span go with it. */
  dropped(group: GroupId): void {
    this.storesNow().unregister(group);
    this.adoptedSpans.delete(group);
  }

  /**
   * What an adopted range starts from: what its disk holds, but for a held first state of a
   * split this node's parent will not apply again (its records were lost with the crash):
   * with nothing past it in the log, no state (production's range-births.ts `hostFreed`; held-births.ts, `unmadeChildState`);
   * with entries past it, its log and the held state kept as its log's base, the store empty
   * (createStore) while the engine waits for a full snapshot and keeps the log after it.
   */
  private adoptedState(durable: DurableState<unknown>): DurableState<unknown> {
    const held = durable.snapshot === null ? null : heldFirstStateOf(durable.snapshot.data);
    if (held === null || this.keepsUnmadeChild()) return durable;
    return unmadeChildState(durable) ?? durable;
  }

  private overlapsHosted(span: KeySpan): boolean {
    return this.view().some((range) => (range.end === null || compareUtf8(span.start, range.end) < 0) && (span.end === null || compareUtf8(range.start, span.end) < 0));
  }

  /** Range `group` as this node holds it (null: not hosted, or no state yet). */
  describe(group: GroupId): RangeDescriptor | null {
    const kv = this.node.layer(group)?.kv;
    if (kv === undefined || !this.holdsState(group, kv)) return null;
    const span = kv.backend.span ?? { start: "", end: null };
    return { id: group, start: span.start, end: span.end, epoch: kv.rangeEpoch };
  }

  /** Range `group`'s state here, as a snapshot, and the index it applied (null: not hosted, or no state yet). */
  stateOf(group: GroupId): Omit<ReplicaState, "node"> | null {
    const kv = this.node.layer(group)?.kv;
    return kv === undefined || !this.holdsState(group, kv) ? null : kvStateOf(kv);
  }

  /** The index this node's replica of `group` applied (0: not hosted). */
  appliedOf(group: GroupId): number {
    return this.node.layer(group)?.kv.applied ?? 0;
  }

  /** The index the span of this node's replica of `group` was last set at (KvMeta.spanSince; 0: never, or not hosted). */
  spanSinceOf(group: GroupId): number {
    return this.node.layer(group)?.kv.spanSince ?? 0;
  }

  /** Every range this node holds, as it sees them now. */
  view(): RangeDescriptor[] {
    return this.node.hostedGroups().flatMap((group) => this.describe(group) ?? []);
  }

  /** Whether this replica holds its range's state: one adopted with nothing waits for its leader's snapshot. */
  private holdsState(group: GroupId, kv: KvStore): boolean {
    if (kv.applied === 0 && this.adoptedSpans.has(group)) return false;
    return this.options.table.get(group) !== undefined || kv.applied >= RANGE_BIRTH_INDEX;
  }

  /** A node's own command in range `group` (a range id, a split): `done` gets the result, or the error. */
  propose(group: GroupId, operation: KvOperation, done: (outcome: KvResult | Error) => void): void {
    const layer = this.node.layer(group);
    if (layer === null) return done(new Error(`node ${this.node.id} hosts no replica of range ${group}`));
    layer.write(operation, null, { resolve: done, reject: done });
  }

  /** The range a client's request names (by the first table, when it names none). */
  rangeOf(request: ClientRequest): GroupId {
    return request.range ?? this.options.table.forKey(request.key).id;
  }

  /** Whether `group` is one of the ranges the cluster started with. */
  isFirstRange(group: GroupId): boolean {
    return this.options.table.get(group) !== undefined;
  }

  /** A KV client's request, named for a range (see the module comment). */
  serve(request: ClientRequest, respond: (response: ClientResponse) => void): void {
    const group = this.rangeOf(request);
    const refuse = (reason: string, mismatch: boolean): void =>
      respond({ type: "client-response", sequence: request.sequence, outcome: "refused", reason, leaderHint: null, ...(mismatch ? { mismatch: true, ranges: this.view() } : {}) });
    const layer = this.node.layer(group);
    const replica = this.node.replica(group);
    if (layer === null || replica === null || !this.holdsState(group, layer.kv)) return refuse(`node ${this.node.id} does not hold range ${group} yet`, false);
    const kv = layer.kv;
    const mismatch = (): void => refuse(`key ${JSON.stringify(request.key)} is not in range ${group}`, true);
    const answer = (output: string | null | boolean): void => respond({ type: "client-response", sequence: request.sequence, outcome: "ok", output });
    if (request.op === "get") {
      if (this.readCheck.onArrival && !kv.holdsKey(request.key)) return (this.counts.readMismatchesOnArrival++, mismatch());
      replica.read({}, {
        resolve: () => {
          // A split that applied while the read waited moved the key away.
          if (this.readCheck.afterReadIndex && !kv.holdsKey(request.key)) return (this.counts.readMismatchesAfterReadIndex++, mismatch());
          const record = kv.get(request.key);
          answer(record === undefined ? null : utf8Decode(record.value));
        },
        reject: (error) => refuseKvRequest(request, error, respond),
      });
      return;
    }
    const client = { clientId: SELF_ASSIGNED_SESSIONS_FROM + request.clientId, sequence: request.sequence };
    layer.write(toOperation(request), client, {
      resolve: (result) => {
        if (result.op === "range-mismatch") return (this.counts.writeMismatches++, mismatch());
        if (result.op === "rejected" || result.op === "superseded") return;
        answer(result.op === "cas" ? result.succeeded : null);
      },
      reject: (error) => refuseKvRequest(request, error, respond),
    });
  }
}

/** The configuration in force at `index` in a range's log: what its child starts with on every replica alike. */
function membershipAt(engine: Pick<Engine<unknown, unknown>, "membership" | "membershipAt"> | undefined, index: number): { readonly membership?: Membership } {
  let membership: Membership | undefined;
  try {
    membership = engine?.membershipAt?.(index) ?? engine?.membership?.();
  } catch {
    // Compacted past (it cannot be, at the entry being applied): the latest is what it holds.
    membership = engine?.membership?.();
  }
  return membership === undefined ? {} : { membership };
}
